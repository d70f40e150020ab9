//! Flow enrichment: who an address or identity is, from the policy in force
//! when the flow happened.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::{EndpointInfo, FlowEndpoint};
use crate::identity::NumericIdentity;
use crate::policy::ResolvedPolicy;

/// Endpoint metadata by pod address and by identity, built once per policy
/// so that enriching a flow is two hash lookups and reference counts.
#[derive(Debug, Default)]
pub struct EndpointIndex {
    pods: HashMap<IpAddr, (u32, Arc<EndpointInfo>)>,
    identities: HashMap<u32, Arc<EndpointInfo>>,
}

impl EndpointIndex {
    pub fn new(policy: &ResolvedPolicy) -> EndpointIndex {
        let labels = |identity: NumericIdentity| -> Vec<String> {
            policy
                .identities
                .get(identity)
                .map(|i| i.labels.iter().map(ToString::to_string).collect())
                .unwrap_or_default()
        };
        let identities = policy
            .identities
            .iter()
            .map(|identity| {
                (
                    identity.id.0,
                    Arc::new(EndpointInfo { labels: labels(identity.id), ..EndpointInfo::default() }),
                )
            })
            .collect();
        let pods = policy
            .endpoints
            .iter()
            .filter_map(|endpoint| {
                let info = EndpointInfo {
                    namespace: endpoint.namespace.clone(),
                    pod_name: endpoint.name.clone(),
                    labels: labels(endpoint.identity),
                    workloads: endpoint.workload.iter().cloned().collect(),
                };
                Some((endpoint.ip?, (endpoint.identity.0, Arc::new(info))))
            })
            .collect();
        EndpointIndex { pods, identities }
    }

    /// The flow endpoint for `ip`, whose identity the datapath or proxy
    /// resolved as `identity`: the pod at that address if the identities
    /// agree, else what the identity alone says.
    pub fn endpoint(&self, ip: IpAddr, identity: u32) -> FlowEndpoint {
        if let Some((pod_identity, info)) = self.pods.get(&ip)
            && *pod_identity == identity
        {
            return FlowEndpoint { identity, info: info.clone() };
        }
        FlowEndpoint { identity, info: self.identities.get(&identity).cloned().unwrap_or_default() }
    }
}
