//! The structs and constants shared with the C datapath, mirrored from
//! `bpf/lib/shared.h` (the source of truth). The assertions at the bottom
//! fail the build when the two drift apart.

// The datapath reads and writes these as raw bytes; aya requires `Pod`.
#![allow(unsafe_code)]

use std::mem::{offset_of, size_of};

pub const DIR_INGRESS: u8 = 0;
pub const DIR_EGRESS: u8 = 1;

pub const ENDPOINT_F_INGRESS_ENFORCED: u32 = 1 << 0;
pub const ENDPOINT_F_EGRESS_ENFORCED: u32 = 1 << 1;

pub const POLICY_PREFIX_FIXED: u32 = 72;
pub const POLICY_PREFIX_FULL: u32 = 96;

pub const ACTION_ALLOW: u8 = 1;
pub const ACTION_DENY: u8 = 2;
pub const ACTION_REDIRECT: u8 = 3;

pub const CT_F_REDIRECT: u16 = 1 << 0;
pub const CT_F_MARK_IDENTITY: u16 = 1 << 1;

pub const MARK_MAGIC_REDIRECT: u32 = 0x0B00;
pub const MARK_MAGIC_MASK: u32 = 0xFFFF;

/// Hubble drop reason codes the datapath reports.
pub const DROP_INVALID_SOURCE_IP: u8 = 132;
pub const DROP_POLICY_DENIED: u8 = 133;
pub const DROP_INVALID_PACKET: u8 = 134;
pub const DROP_PROXY_LOOKUP_FAILED: u8 = 137;
pub const DROP_PROXY_SET_FAILED: u8 = 138;
pub const DROP_UNSUPPORTED_L3_PROTOCOL: u8 = 139;
pub const DROP_CT_MAP_INSERTION_FAILED: u8 = 155;
pub const DROP_PROXY_REDIRECT_UNSUPPORTED: u8 = 180;
pub const DROP_POLICY_DENY: u8 = 181;

/// Hubble's name for a drop reason code.
pub fn drop_reason_name(code: u8) -> &'static str {
    match code {
        DROP_INVALID_SOURCE_IP => "INVALID_SOURCE_IP",
        DROP_POLICY_DENIED => "POLICY_DENIED",
        DROP_INVALID_PACKET => "INVALID_PACKET_DROPPED",
        DROP_PROXY_LOOKUP_FAILED => "PROXY_LOOKUP_FAILED",
        DROP_PROXY_SET_FAILED => "PROXY_SET_FAILED",
        DROP_UNSUPPORTED_L3_PROTOCOL => "UNSUPPORTED_L3_PROTOCOL",
        DROP_CT_MAP_INSERTION_FAILED => "CT_MAP_INSERTION_FAILED",
        DROP_PROXY_REDIRECT_UNSUPPORTED => "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL",
        DROP_POLICY_DENY => "POLICY_DENY",
        _ => "UNKNOWN_REASON",
    }
}

pub const EVENT_FLOW: u8 = 1;
pub const EVENT_DROP: u8 = 2;
pub const EVENT_REVOKED: u8 = 3;

pub const VERDICT_FORWARDED: u8 = 1;
pub const VERDICT_DROPPED: u8 = 2;
pub const VERDICT_REDIRECTED: u8 = 3;

/// Indexes of the per-CPU counters, with the names the agent reports.
pub const COUNTERS: [&str; 8] =
    ["forwarded", "dropped", "redirected", "ct_created", "ct_full", "revalidated", "revoked", "events_lost"];

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpcacheKey {
    /// Network byte order.
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcacheValue {
    pub identity: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointValue {
    pub id: u32,
    pub identity: u32,
    pub ifindex: u32,
    pub flags: u32,
}

/// The policy key without its LPM prefix length (aya's `lpm_trie::Key`
/// carries that).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub endpoint: u32,
    pub identity: u32,
    pub direction: u8,
    pub protocol: u8,
    /// Network byte order.
    pub port: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyValue {
    pub action: u8,
    pub drop_reason: u8,
    pub prefixlen: u8,
    pub pad: u8,
    pub proxy_port: u16,
    pub pad2: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatapathConfig {
    pub revision: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub protocol: u8,
    pub direction: u8,
    pub pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEntry {
    pub last_seen_ns: u64,
    pub revision: u32,
    pub remote_identity: u32,
    pub proxy_port: u16,
    pub flags: u16,
    pub pad: u32,
    pub packets: u64,
    pub bytes: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEvent {
    pub timestamp_ns: u64,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub src_identity: u32,
    pub dst_identity: u32,
    pub ifindex: u32,
    pub protocol: u8,
    pub kind: u8,
    pub verdict: u8,
    pub drop_reason: u8,
    pub direction: u8,
    pub is_reply: u8,
    pub proxy_port: u16,
    pub len: u32,
    pub pad: u32,
}

impl FlowEvent {
    /// Reads an event from ring buffer bytes; `None` if too short.
    pub fn parse(bytes: &[u8]) -> Option<FlowEvent> {
        let b = bytes.get(..size_of::<FlowEvent>())?;
        let u16_ne = |at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
        let u32_ne = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let four = |at: usize| -> [u8; 4] { b[at..at + 4].try_into().expect("4 bytes") };
        let two = |at: usize| -> [u8; 2] { [b[at], b[at + 1]] };
        Some(FlowEvent {
            timestamp_ns: u64::from_ne_bytes(b[0..8].try_into().expect("8 bytes")),
            saddr: four(offset_of!(FlowEvent, saddr)),
            daddr: four(offset_of!(FlowEvent, daddr)),
            sport: two(offset_of!(FlowEvent, sport)),
            dport: two(offset_of!(FlowEvent, dport)),
            src_identity: u32_ne(offset_of!(FlowEvent, src_identity)),
            dst_identity: u32_ne(offset_of!(FlowEvent, dst_identity)),
            ifindex: u32_ne(offset_of!(FlowEvent, ifindex)),
            protocol: b[offset_of!(FlowEvent, protocol)],
            kind: b[offset_of!(FlowEvent, kind)],
            verdict: b[offset_of!(FlowEvent, verdict)],
            drop_reason: b[offset_of!(FlowEvent, drop_reason)],
            direction: b[offset_of!(FlowEvent, direction)],
            is_reply: b[offset_of!(FlowEvent, is_reply)],
            proxy_port: u16_ne(offset_of!(FlowEvent, proxy_port)),
            len: u32_ne(offset_of!(FlowEvent, len)),
            pad: 0,
        })
    }
}

pub const SERVICES_MAX: u32 = 16_384;
pub const BACKENDS_MAX: u32 = 65_536;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Network byte order.
    pub address: [u8; 4],
    /// Network byte order.
    pub port: [u8; 2],
    pub protocol: u8,
    pub pad: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceValue {
    pub id: u32,
    pub count: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub service: u32,
    pub slot: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendValue {
    /// Network byte order.
    pub address: [u8; 4],
    /// Network byte order.
    pub port: [u8; 2],
    pub pad: u16,
}

// SAFETY: every type is #[repr(C)], made only of integers and byte arrays,
// with explicit padding fields, so any bit pattern is valid and no byte is
// uninitialised.
unsafe impl aya::Pod for IpcacheKey {}
unsafe impl aya::Pod for IpcacheValue {}
unsafe impl aya::Pod for EndpointValue {}
unsafe impl aya::Pod for PolicyKey {}
unsafe impl aya::Pod for PolicyValue {}
unsafe impl aya::Pod for DatapathConfig {}
unsafe impl aya::Pod for CtKey {}
unsafe impl aya::Pod for CtEntry {}
unsafe impl aya::Pod for ServiceKey {}
unsafe impl aya::Pod for ServiceValue {}
unsafe impl aya::Pod for BackendKey {}
unsafe impl aya::Pod for BackendValue {}

// Layouts of bpf/lib/shared.h (`struct ipcache_key` and `struct policy_key`
// include the u32 prefixlen that aya's lpm_trie::Key prepends).
const _: () = {
    assert!(size_of::<IpcacheKey>() == 4);
    assert!(size_of::<IpcacheValue>() == 4);
    assert!(size_of::<EndpointValue>() == 16);
    assert!(offset_of!(EndpointValue, ifindex) == 8 && offset_of!(EndpointValue, flags) == 12);
    assert!(size_of::<PolicyKey>() == 12);
    assert!(offset_of!(PolicyKey, identity) == 4 && offset_of!(PolicyKey, direction) == 8);
    assert!(offset_of!(PolicyKey, protocol) == 9 && offset_of!(PolicyKey, port) == 10);
    assert!(size_of::<PolicyValue>() == 8);
    assert!(offset_of!(PolicyValue, prefixlen) == 2 && offset_of!(PolicyValue, proxy_port) == 4);
    assert!(size_of::<DatapathConfig>() == 8);
    assert!(size_of::<CtKey>() == 16);
    assert!(offset_of!(CtKey, protocol) == 12 && offset_of!(CtKey, direction) == 13);
    assert!(size_of::<CtEntry>() == 40);
    assert!(offset_of!(CtEntry, revision) == 8 && offset_of!(CtEntry, remote_identity) == 12);
    assert!(offset_of!(CtEntry, proxy_port) == 16 && offset_of!(CtEntry, flags) == 18);
    assert!(offset_of!(CtEntry, packets) == 24 && offset_of!(CtEntry, bytes) == 32);
    assert!(size_of::<FlowEvent>() == 48);
    assert!(offset_of!(FlowEvent, saddr) == 8 && offset_of!(FlowEvent, sport) == 16);
    assert!(offset_of!(FlowEvent, src_identity) == 20 && offset_of!(FlowEvent, ifindex) == 28);
    assert!(offset_of!(FlowEvent, protocol) == 32 && offset_of!(FlowEvent, is_reply) == 37);
    assert!(offset_of!(FlowEvent, proxy_port) == 38 && offset_of!(FlowEvent, len) == 40);
    assert!(size_of::<ServiceKey>() == 8);
    assert!(offset_of!(ServiceKey, port) == 4 && offset_of!(ServiceKey, protocol) == 6);
    assert!(size_of::<ServiceValue>() == 8 && offset_of!(ServiceValue, count) == 4);
    assert!(size_of::<BackendKey>() == 8 && offset_of!(BackendKey, slot) == 4);
    assert!(size_of::<BackendValue>() == 8 && offset_of!(BackendValue, port) == 4);
};
