//! The resolved policy: the contract between the policy engine and what
//! enforces it.
//!
//! For every local endpoint and direction, [`DirectionPolicy`] holds whether
//! default deny is on and a list of [`PolicyEntry`]s keyed by (remote
//! identity or any, protocol, port range). The datapath writes these entries
//! into its policy map and the proxy loads the L7 rule sets that `Redirect`
//! entries name.
//!
//! Lookup semantics (what [`DirectionPolicy::lookup`] implements and the
//! datapath must implement the same way):
//!
//! 1. Among the entries that match (remote, protocol, port), the most
//!    specific wins: a longer protocol/port prefix first (a concrete protocol
//!    is 8 bits, each port bit one more; port ranges count as the aligned
//!    power-of-two block containing the port), then a concrete remote
//!    identity over "any". Ties go to deny, then redirect, then allow.
//! 2. The engine guarantees deny precedence under this rule: wherever an
//!    allow or redirect entry overlaps a deny entry, a deny entry exists at
//!    the overlap (or the allow was removed), so a more specific allow can
//!    never shadow a deny.
//! 3. No matching entry: denied when the direction is enforced (default
//!    deny), allowed otherwise.

use std::fmt;
use std::sync::Arc;

use porin_sdk::RuleSetId;
use serde::{Serialize, Serializer};

use super::rule::{PolicyRef, RuleRef};
use crate::identity::NumericIdentity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// An L4 protocol. `Any` appears only together with the full port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Any,
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const CONCRETE: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    pub fn parse(text: &str) -> Result<Protocol, String> {
        match text {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            "ANY" => Ok(Protocol::Any),
            _ => Err(format!("unknown protocol `{text}`; expected TCP, UDP, SCTP or ANY (upper case)")),
        }
    }

    /// IP protocol number; 0 for any.
    pub fn ip_proto(self) -> u8 {
        match self {
            Protocol::Any => 0,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn covers(self, other: Protocol) -> bool {
        self == Protocol::Any || self == other
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Any => "ANY",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive destination port range; `0-65535` means every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange { first: 0, last: u16::MAX };

    pub fn single(port: u16) -> PortRange {
        PortRange { first: port, last: port }
    }

    pub fn is_all(self) -> bool {
        self == PortRange::ALL
    }

    pub fn is_single(self) -> bool {
        self.first == self.last
    }

    pub fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    pub fn intersect(self, other: PortRange) -> Option<PortRange> {
        let first = self.first.max(other.first);
        let last = self.last.min(other.last);
        (first <= last).then_some(PortRange { first, last })
    }

    /// The range split into maximal aligned power-of-two blocks, as an
    /// LPM-keyed datapath map stores it: (first port, prefix length 0..=16).
    pub fn blocks(self) -> Vec<(u16, u8)> {
        let (mut start, last) = (u32::from(self.first), u32::from(self.last));
        let mut blocks = Vec::new();
        while start <= last {
            let align = if start == 0 { 1 << 16 } else { 1u32 << start.trailing_zeros() };
            let mut size = align.min(1 << 16);
            while start + size - 1 > last {
                size /= 2;
            }
            blocks.push((start as u16, (16 - size.trailing_zeros()) as u8));
            start += size;
        }
        blocks
    }

    /// Prefix length of the block of [`PortRange::blocks`] that contains `port`.
    pub fn prefix_len_at(self, port: u16) -> u8 {
        self.blocks().into_iter().rev().find(|&(start, _)| start <= port).map_or(16, |(_, len)| len)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_all(), self.is_single()) {
            (true, _) => f.write_str("all"),
            (false, true) => write!(f, "{}", self.first),
            (false, false) => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenyReason {
    /// An explicit `ingressDeny` / `egressDeny` rule (Hubble: POLICY_DENY).
    PolicyDeny,
    /// Two policies name different L7 filters for the same port; the port is
    /// closed until that is fixed.
    L7ParserConflict,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase", tag = "action")]
pub enum Action {
    Allow,
    Deny {
        reason: DenyReason,
    },
    /// Allowed at L4 and handed to the L7 proxy, which runs `filter` with
    /// the rule set `rule_set`.
    Redirect {
        filter: String,
        rule_set: RuleSetId,
    },
}

impl Action {
    /// Tie-break order at equal specificity: deny, then redirect, then allow.
    fn precedence(&self) -> u8 {
        match self {
            Action::Deny { .. } => 2,
            Action::Redirect { .. } => 1,
            Action::Allow => 0,
        }
    }

    pub fn allows(&self) -> bool {
        !matches!(self, Action::Deny { .. })
    }
}

/// One datapath policy entry of a local endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyEntry {
    /// The peer's identity; `None` matches every peer.
    pub remote: Option<NumericIdentity>,
    pub protocol: Protocol,
    pub ports: PortRange,
    #[serde(flatten)]
    pub action: Action,
    /// The policy rules this entry comes from.
    pub derived_from: Vec<RuleRef>,
}

impl PolicyEntry {
    pub fn matches(&self, remote: NumericIdentity, protocol: Protocol, port: u16) -> bool {
        self.remote.is_none_or(|r| r == remote) && self.protocol.covers(protocol) && self.ports.contains(port)
    }

    fn specificity(&self, port: u16) -> (u8, bool, u8) {
        let prefix = match self.protocol {
            Protocol::Any => 0,
            _ => 8 + self.ports.prefix_len_at(port),
        };
        (prefix, self.remote.is_some(), self.action.precedence())
    }
}

/// The policy of one endpoint in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectionPolicy {
    /// Default deny is on: traffic without a matching entry is dropped.
    pub enforced: bool,
    /// The policies that switched default deny on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enforced_by: Vec<Arc<PolicyRef>>,
    pub entries: Vec<PolicyEntry>,
}

/// Why a lookup came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The most specific matching entry decided.
    Entry(&'a PolicyEntry),
    /// No entry matched and default deny is on.
    DefaultDeny,
    /// No entry matched and no policy enforces this direction.
    NotEnforced,
}

impl Lookup<'_> {
    pub fn allowed(&self) -> bool {
        match self {
            Lookup::Entry(entry) => entry.action.allows(),
            Lookup::DefaultDeny => false,
            Lookup::NotEnforced => true,
        }
    }
}

impl DirectionPolicy {
    /// Decides traffic to/from `remote` on `protocol`/`port` (protocol must be concrete).
    pub fn lookup(&self, remote: NumericIdentity, protocol: Protocol, port: u16) -> Lookup<'_> {
        let best = self
            .entries
            .iter()
            .filter(|entry| entry.matches(remote, protocol, port))
            .max_by_key(|entry| entry.specificity(port));
        match best {
            Some(entry) => Lookup::Entry(entry),
            None if self.enforced => Lookup::DefaultDeny,
            None => Lookup::NotEnforced,
        }
    }
}

/// The resolved policy of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointPolicy {
    pub ingress: DirectionPolicy,
    pub egress: DirectionPolicy,
}

impl EndpointPolicy {
    pub fn direction(&self, direction: Direction) -> &DirectionPolicy {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_prefix_follows_aligned_blocks() {
        assert_eq!(PortRange::ALL.prefix_len_at(80), 0);
        assert_eq!(PortRange::single(80).prefix_len_at(80), 16);
        // 80-90 = 80-87 (/13), 88-89 (/15), 90 (/16)
        let range = PortRange { first: 80, last: 90 };
        assert_eq!(range.prefix_len_at(81), 13);
        assert_eq!(range.prefix_len_at(89), 15);
        assert_eq!(range.prefix_len_at(90), 16);
        assert_eq!(PortRange { first: 0, last: 1023 }.prefix_len_at(500), 6);
        assert_eq!(PortRange { first: 1, last: 65535 }.prefix_len_at(65535), 1);
    }

    #[test]
    fn intersection_and_display() {
        let a = PortRange { first: 80, last: 90 };
        assert_eq!(a.intersect(PortRange::single(85)), Some(PortRange::single(85)));
        assert_eq!(a.intersect(PortRange { first: 91, last: 95 }), None);
        assert_eq!(a.to_string(), "80-90");
        assert_eq!(PortRange::ALL.to_string(), "all");
    }

    #[test]
    fn port_blocks_cover_the_range_exactly() {
        for range in [
            PortRange::ALL,
            PortRange::single(80),
            PortRange { first: 80, last: 90 },
            PortRange { first: 1, last: 65535 },
            PortRange { first: 1000, last: 1023 },
        ] {
            let mut next = u32::from(range.first);
            for (start, bits) in range.blocks() {
                assert_eq!(u32::from(start), next, "{range}: blocks are contiguous");
                let size = 1u32 << (16 - bits);
                assert_eq!(u32::from(start) % size, 0, "{range}: blocks are aligned");
                next += size;
            }
            assert_eq!(next, u32::from(range.last) + 1, "{range}: nothing left over");
        }
    }
}
