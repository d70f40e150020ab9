//! The Wasm filter runtime: loads filter modules, runs one sandboxed
//! instance per module per worker thread, and drives connections through
//! them with the ABI v1 semantics (`porin_sdk::driver`).
//!
//! * [`FilterRegistry`] (shared): compiled modules by name, and the L7 rule
//!   sets the policy engine hands out. Rule sets are validated by the
//!   module itself before they are accepted.
//! * [`WorkerFilters`] (one per thread): instances, rebuilt after a failure
//!   with backoff. No lock is taken on the data path; instances notice rule
//!   set changes through an atomic generation counter.
//! * [`StreamSession`] / [`DatagramSession`]: one connection or flow.
//!
//! Sandbox: a memory cap per instance and a CPU deadline per call (epoch
//! interruption). A trap, overrun or malformed op fails closed: that
//! connection is closed with an ERROR record; the instance is replaced for
//! new connections and nothing else is affected.

mod builtin;
mod instance;
mod module;
mod registry;
mod session;
mod worker;

use std::time::Duration;

pub use builtin::BUILTIN_FILTERS;
pub use instance::CallError;
pub use module::{FilterModule, Kinds};
pub use registry::FilterRegistry;
pub use session::{DatagramSession, DatagramVerdict, StreamSession, TraceEvent};
pub use worker::WorkerFilters;

/// Limits and timings of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Linear memory cap per instance, in bytes.
    pub memory_limit: usize,
    /// CPU time one call into a filter may take.
    pub call_deadline: Duration,
    /// Bytes a filter may ask the host to buffer per direction (MORE).
    pub max_buffer: usize,
    /// First wait before rebuilding an instance that failed more than once.
    pub rebuild_backoff: Duration,
    /// Longest wait between rebuilds.
    pub max_rebuild_backoff: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            memory_limit: 64 << 20,
            call_deadline: Duration::from_millis(50),
            max_buffer: 1 << 20,
            rebuild_backoff: Duration::from_millis(100),
            max_rebuild_backoff: Duration::from_secs(30),
        }
    }
}

/// Why a filter could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter `{name}`: {message}")]
    Invalid { name: String, message: String },
    #[error("filter `{name}` speaks ABI version {found}; this porin speaks version {expected}")]
    AbiVersion { name: String, found: i64, expected: u32 },
    #[error("no filter named `{0}` is loaded")]
    Missing(String),
    #[error("filter `{name}` is unavailable after repeated failures; retrying in {retry_in:?}")]
    Unavailable { name: String, retry_in: Duration },
    #[error("filter `{name}` rejected rule set {rule_set}: {message}")]
    Rules { name: String, rule_set: u32, message: String },
    #[error("filter `{name}`: {source}")]
    Call {
        name: String,
        #[source]
        source: CallError,
    },
    #[error("cannot read filter {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests;
