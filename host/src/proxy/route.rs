//! What the proxy knows about a flow: where it goes, which filter and rule
//! set apply, and who the two sides are.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use porin_sdk::{ConnectionMeta, Peer, RuleSetId, TrafficDirection};

use super::Transport;
use super::mark::identity_mark;
use crate::policy::ResolvedPolicy;
use crate::policy::resolved::{Action, Direction, Lookup, PolicyEntry, Protocol};

/// One filter a flow passes through: which filter, with which rule set, for
/// which endpoint's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub filter: String,
    pub rule_set: RuleSetId,
    pub direction: TrafficDirection,
}

/// Everything needed to proxy one connection or datagram flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: SocketAddr,
    /// The filters requests pass, in order (replies pass them in reverse).
    /// Never empty: a flow without a filter has no route.
    pub stages: Vec<Stage>,
    /// Source and destination as the filters see them (addresses filled in).
    pub source: Peer,
    pub destination: Peer,
    /// `SO_MARK` for the upstream socket.
    pub mark: Option<u32>,
}

impl Route {
    /// What the filter of `stage` is told when the flow opens.
    pub fn meta(&self, stage: &Stage) -> ConnectionMeta {
        ConnectionMeta {
            rule_set: stage.rule_set.0,
            direction: stage.direction,
            source: self.source.clone(),
            destination: self.destination.clone(),
        }
    }
}

/// Decides the route of a new flow from its addresses (`destination` is the
/// listener's address in gateway mode, the original destination in
/// transparent mode). `None` means the flow has no business here: refuse.
pub trait Resolver: Send + Sync {
    fn resolve(&self, source: SocketAddr, destination: SocketAddr, transport: Transport) -> Option<Route>;
}

/// Gateway mode: one fixed route per listener.
#[derive(Debug, Clone)]
pub struct StaticRoute {
    pub route: Route,
}

impl Resolver for StaticRoute {
    fn resolve(&self, source: SocketAddr, _destination: SocketAddr, _transport: Transport) -> Option<Route> {
        let mut route = self.route.clone();
        route.source.address = Some(source);
        route.destination.address = Some(route.upstream);
        Some(route)
    }
}

/// Transparent mode: routes from the resolved policy. A flow passes the
/// source endpoint's egress redirect, then the destination endpoint's
/// ingress redirect, whichever of the two exist: the datapath steers a flow
/// into the proxy once, so both policies are enforced on that one pass.
pub struct PolicyResolver {
    policy: RwLock<Arc<ResolvedPolicy>>,
}

impl std::fmt::Debug for PolicyResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyResolver")
    }
}

impl PolicyResolver {
    pub fn new(policy: Arc<ResolvedPolicy>) -> PolicyResolver {
        PolicyResolver { policy: RwLock::new(policy) }
    }

    /// Swaps in a new policy; new flows use it.
    pub fn update(&self, policy: Arc<ResolvedPolicy>) {
        *self.policy.write().expect("policy lock") = policy;
    }

    fn peer(policy: &ResolvedPolicy, address: SocketAddr) -> Peer {
        let ip = address.ip();
        match policy.endpoints.iter().find(|e| e.ip == Some(ip)) {
            Some(endpoint) => Peer {
                identity: endpoint.identity.0,
                address: Some(address),
                namespace: endpoint.namespace.clone(),
                pod: endpoint.name.clone(),
                labels: policy
                    .identities
                    .get(endpoint.identity)
                    .map(|i| i.labels.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            },
            None => Peer { identity: policy.identity_of(ip).0, address: Some(address), ..Peer::default() },
        }
    }
}

impl Resolver for PolicyResolver {
    fn resolve(&self, source: SocketAddr, destination: SocketAddr, transport: Transport) -> Option<Route> {
        let policy = self.policy.read().expect("policy lock").clone();
        let protocol = match transport {
            Transport::Tcp => Protocol::Tcp,
            Transport::Udp => Protocol::Udp,
        };
        let (src, dst) = (Self::peer(&policy, source), Self::peer(&policy, destination));
        let redirect = |ip: std::net::IpAddr, direction: Direction, remote: u32| {
            let endpoint = policy.endpoints.iter().find(|e| e.ip == Some(ip))?;
            let lookup = endpoint.policy.direction(direction).lookup(
                crate::identity::NumericIdentity(remote),
                protocol,
                destination.port(),
            );
            let Lookup::Entry(PolicyEntry { action: Action::Redirect { filter, rule_set }, .. }) = lookup
            else {
                return None;
            };
            let direction = match direction {
                Direction::Egress => TrafficDirection::Egress,
                Direction::Ingress => TrafficDirection::Ingress,
            };
            Some(Stage { filter: filter.clone(), rule_set: *rule_set, direction })
        };
        let stages: Vec<Stage> = [
            redirect(source.ip(), Direction::Egress, dst.identity),
            redirect(destination.ip(), Direction::Ingress, src.identity),
        ]
        .into_iter()
        .flatten()
        .collect();
        if stages.is_empty() {
            return None;
        }
        Some(Route {
            upstream: destination,
            stages,
            mark: Some(identity_mark(src.identity)),
            source: src,
            destination: dst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Location;
    use crate::endpoint::Workloads;
    use crate::manifest::Manifests;

    /// web may GET from api; api takes /public/ from frontend pods. Both
    /// policies redirect web -> api:80.
    const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: frontend}
---
apiVersion: v1
kind: Namespace
metadata: {name: backend}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: frontend, labels: {app: web}}
status: {podIP: 10.1.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: frontend, labels: {app: other}}
status: {podIP: 10.1.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: backend, labels: {app: api}}
status: {podIP: 10.1.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: backend, labels: {app: db}}
status: {podIP: 10.1.0.30}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-egress, namespace: frontend}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": backend, app: api}}]
      toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-ingress, namespace: backend}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
    - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": frontend}}]
      toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{path: "/public/.*"}]}}]
"#;

    fn resolver() -> (PolicyResolver, Arc<ResolvedPolicy>) {
        let mut manifests = Manifests::default();
        manifests.parse(MANIFESTS, Location::default());
        let (workloads, diagnostics) = Workloads::from_manifests(&manifests);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let policy = Arc::new(crate::policy::compile(&manifests, &workloads));
        assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);
        (PolicyResolver::new(policy.clone()), policy)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_flow_both_pods_redirect_passes_the_egress_then_the_ingress_stage() {
        let (resolver, policy) = resolver();
        let rules = |stage: &Stage| policy.rule_sets.get(stage.rule_set).expect("interned").rules.clone();
        let route = resolver.resolve(addr("10.1.0.10:40000"), addr("10.1.0.20:80"), Transport::Tcp).unwrap();
        let directions: Vec<TrafficDirection> = route.stages.iter().map(|s| s.direction).collect();
        assert_eq!(directions, [TrafficDirection::Egress, TrafficDirection::Ingress]);
        assert!(route.stages.iter().all(|s| s.filter == "http"));
        assert_eq!(rules(&route.stages[0]), serde_json::json!({"http": [{"method": "GET"}]}));
        assert_eq!(rules(&route.stages[1]), serde_json::json!({"http": [{"path": "/public/.*"}]}));
        assert_eq!((route.source.pod.as_str(), route.destination.pod.as_str()), ("web", "api"));
        assert_eq!(route.upstream, addr("10.1.0.20:80"));
        // Without an egress policy of its own, `other` passes api's ingress stage only.
        let other = resolver.resolve(addr("10.1.0.11:40000"), addr("10.1.0.20:80"), Transport::Tcp).unwrap();
        assert_eq!(other.stages, [route.stages[1].clone()]);
        // The egress stage is looked up for the destination's identity (db is
        // not api), the ingress stage for the source's (db is not in frontend).
        assert_eq!(resolver.resolve(addr("10.1.0.10:40000"), addr("10.1.0.30:80"), Transport::Tcp), None);
        assert_eq!(resolver.resolve(addr("10.1.0.30:40000"), addr("10.1.0.20:80"), Transport::Tcp), None);
        assert_eq!(resolver.resolve(addr("10.1.0.10:40000"), addr("10.1.0.20:80"), Transport::Udp), None);
    }
}
