//! The porin filter SDK and ABI.
//!
//! porin runs every L7 protocol as a sandboxed WebAssembly module. This
//! crate is both halves of the contract:
//!
//! * [`abi`]: the version, names, numbers and encodings of ABI v1 (specified
//!   in `sdk/ABI.md`), which the host uses too;
//! * [`driver`]: the stream operation semantics (MORE, PASS, DROP, INJECT,
//!   ERROR), implemented once for the host and for tests;
//! * the guest SDK: implement [`StreamFilter`] and/or [`DatagramFilter`]
//!   with a [`Rules`] type, then call [`export_filter!`];
//! * [`testing`]: run the same filter natively in unit tests.
//!
//! A filter is one short file; see `sdk/examples/`.
#![deny(missing_docs)]

pub mod abi;
pub mod driver;
mod filter;
mod record;
mod sys;
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

use serde::{Deserialize, Serialize};

pub use abi::{ConnectionMeta, Peer, TrafficDirection};
pub use driver::Op;
pub use filter::{
    Connections, Datagram, DatagramFilter, Level, Output, RuleSets, Rules, Stream, StreamFilter, Verdict,
    datagram, from_json, stream_close, stream_data, stream_upstream_failure,
};
pub use record::{Record, Verdict as RecordVerdict};
pub use sys::{log, now_ns};

/// Identifies one L7 rule set: the rules a filter enforces for one
/// (endpoint, direction, port, peer) combination of the resolved policy.
///
/// Ids are assigned by the host's policy engine and are stable for the same
/// policy input. Id 0 is never assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleSetId(pub u32);

impl std::fmt::Display for RuleSetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Exports a filter module: its [`Rules`] type and its stream and/or
/// datagram filter.
///
/// ```ignore
/// porin_sdk::export_filter!(rules = MyRules, stream = MyFilter);
/// porin_sdk::export_filter!(rules = DnsRules, stream = DnsTcp, datagram = DnsUdp);
/// ```
///
/// The exports exist only when compiling for `wasm32`; native builds of
/// the same crate are plain libraries for tests.
#[macro_export]
macro_rules! export_filter {
    (rules = $rules:ty $(, stream = $stream:ty)? $(, datagram = $datagram:ty)? $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use ::std::cell::RefCell;
            thread_local! {
                static RULES: RefCell<$crate::RuleSets<$rules>> = RefCell::new(Default::default());
            }
            #[unsafe(no_mangle)]
            extern "C" fn porin_abi_version() -> i32 {
                $crate::abi::ABI_VERSION as i32
            }
            #[unsafe(no_mangle)]
            extern "C" fn porin_buffer(len: i32) -> i32 {
                $crate::guest::buffer(len)
            }
            #[unsafe(no_mangle)]
            extern "C" fn porin_rules_set(id: i32, len: i32) -> i32 {
                RULES.with(|rules| $crate::guest::rules_set(rules, id, len))
            }
            #[unsafe(no_mangle)]
            extern "C" fn porin_rules_remove(id: i32) {
                RULES.with(|rules| $crate::guest::rules_remove(rules, id))
            }
            $(
                thread_local! {
                    static STREAMS: RefCell<$crate::Connections<$stream>> = RefCell::new(Default::default());
                }
                #[unsafe(no_mangle)]
                extern "C" fn porin_stream_open(id: i32, len: i32) -> i32 {
                    STREAMS.with(|c| $crate::guest::stream_open::<$stream>(c, id, len))
                }
                #[unsafe(no_mangle)]
                extern "C" fn porin_stream_data(id: i32, flags: i32, len: i32) -> i32 {
                    RULES.with(|r| STREAMS.with(|c| $crate::guest::stream_data::<$stream>(r, c, id, flags, len)))
                }
                #[unsafe(no_mangle)]
                extern "C" fn porin_stream_close(id: i32) {
                    RULES.with(|r| STREAMS.with(|c| $crate::guest::stream_close::<$stream>(r, c, id)))
                }
            )?
            $(
                thread_local! {
                    static FLOWS: RefCell<$crate::Connections<$datagram>> = RefCell::new(Default::default());
                }
                #[unsafe(no_mangle)]
                extern "C" fn porin_datagram_open(id: i32, len: i32) -> i32 {
                    FLOWS.with(|c| $crate::guest::datagram_open::<$datagram>(c, id, len))
                }
                #[unsafe(no_mangle)]
                extern "C" fn porin_datagram(id: i32, flags: i32, len: i32) -> i32 {
                    RULES.with(|r| FLOWS.with(|c| $crate::guest::datagram::<$datagram>(r, c, id, flags, len)))
                }
                #[unsafe(no_mangle)]
                extern "C" fn porin_datagram_close(id: i32) {
                    FLOWS.with(|c| $crate::guest::datagram_close::<$datagram>(c, id))
                }
            )?
        };
    };
}
