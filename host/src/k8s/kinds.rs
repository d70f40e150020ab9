//! The object kinds the agent watches, and how each is addressed.

use kube::core::{ApiResource, GroupVersionKind};

/// What the agent does with a kind's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Policy input: each object is a unit of the agent's reading.
    Policy,
    /// `FilterModule`: which filter modules to load.
    FilterModule,
    /// ConfigMaps in the agent's own namespace: filter modules' bytes.
    ModuleBytes,
}

#[derive(Debug)]
pub(crate) struct Kind {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) plural: &'static str,
    /// Watched in the agent's own namespace only (else cluster-wide).
    pub(crate) own_namespace: bool,
    pub(crate) role: Role,
    /// A kind whose API the cluster may not serve (a CRD that is not
    /// installed) counts as having no objects rather than blocking the agent.
    pub(crate) optional: bool,
}

impl Kind {
    pub(crate) fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        ApiResource::from_gvk_with_plural(&gvk, self.plural)
    }

    /// `apiVersion` as objects of this kind carry it.
    pub(crate) fn api_version(&self) -> String {
        match self.group {
            "" => self.version.to_string(),
            group => format!("{group}/{}", self.version),
        }
    }
}

const fn kind(group: &'static str, version: &'static str, kind: &'static str, plural: &'static str) -> Kind {
    Kind { group, version, kind, plural, own_namespace: false, role: Role::Policy, optional: false }
}

/// Every kind the agent watches.
pub(crate) const KINDS: &[Kind] = &[
    kind("", "v1", "Namespace", "namespaces"),
    // All nodes' pods: the ipcache maps every pod IP to its identity.
    kind("", "v1", "Pod", "pods"),
    kind("", "v1", "Service", "services"),
    kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
    Kind { optional: true, ..kind("cilium.io", "v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies") },
    Kind {
        optional: true,
        ..kind("cilium.io", "v2", "CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies")
    },
    Kind {
        role: Role::FilterModule,
        optional: true,
        ..kind("porin.dev", "v1alpha1", "FilterModule", "filtermodules")
    },
    Kind { role: Role::ModuleBytes, own_namespace: true, ..kind("", "v1", "ConfigMap", "configmaps") },
];

/// Kinds whose objects count as policies (events report on them).
pub(crate) fn is_policy_kind(kind: &str) -> bool {
    matches!(kind, "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" | "NetworkPolicy")
}
