//! Cilium's policy enforcement modes (`policyEnforcementMode`,
//! `--enable-policy`): when an endpoint is default-deny.

use std::fmt;

use serde::{Deserialize, Serialize};

/// When default deny is on for an endpoint's direction.
///
/// It applies to the local endpoints (pods) only. The host and the other
/// reserved identities are never local endpoints here, so, as in Cilium
/// without the host firewall, no mode restricts them; traffic between them
/// and a pod is decided by the pod's side, so under `always` a pod must
/// allow `host` or `health` explicitly to be reached from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementMode {
    /// Default deny per direction once a policy selects the endpoint for it.
    #[default]
    Default,
    /// Default deny in both directions for every endpoint, selected or not.
    Always,
    /// No enforcement: policies are checked but not applied; everything is
    /// allowed and nothing is redirected to L7 filters.
    Never,
}

impl EnforcementMode {
    /// Whether policies apply to endpoints at all.
    pub fn applies_policies(self) -> bool {
        self != EnforcementMode::Never
    }

    /// Whether default deny is on for a direction where `switched_on` says
    /// whether a selecting policy switched it on (Cilium's `default` rule).
    pub fn default_deny(self, switched_on: bool) -> bool {
        match self {
            EnforcementMode::Default => switched_on,
            EnforcementMode::Always => true,
            EnforcementMode::Never => false,
        }
    }
}

impl fmt::Display for EnforcementMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnforcementMode::Default => "default",
            EnforcementMode::Always => "always",
            EnforcementMode::Never => "never",
        })
    }
}
