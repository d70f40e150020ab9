//! The porin filter ABI and SDK.
//!
//! This crate is the one source of truth for what the porin host and its L7
//! filters share. For now it holds the identifiers the policy engine hands to
//! filters; the stream and datagram filter ABI (`sdk/ABI.md`) builds on them.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

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
