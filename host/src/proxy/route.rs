//! What the proxy knows about a flow: where it goes, which filter and rule
//! set apply, and who the two sides are.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use porin_sdk::{ConnectionMeta, Peer, RuleSetId, TrafficDirection};

use super::Transport;
use super::mark::identity_mark;
use crate::policy::ResolvedPolicy;
use crate::policy::resolved::{Action, Direction, Lookup, Protocol};

/// Everything needed to proxy one connection or datagram flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: SocketAddr,
    pub filter: String,
    pub rule_set: RuleSetId,
    pub direction: TrafficDirection,
    /// Source and destination as the filter sees them (addresses filled in).
    pub source: Peer,
    pub destination: Peer,
    /// `SO_MARK` for the upstream socket.
    pub mark: Option<u32>,
}

impl Route {
    pub fn meta(&self) -> ConnectionMeta {
        ConnectionMeta {
            rule_set: self.rule_set.0,
            direction: self.direction,
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

/// Transparent mode: routes from the resolved policy. The source endpoint's
/// egress redirect wins; else the destination endpoint's ingress redirect.
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
            match lookup {
                Lookup::Entry(entry) => match &entry.action {
                    Action::Redirect { filter, rule_set } => Some((filter.clone(), *rule_set)),
                    _ => None,
                },
                _ => None,
            }
        };
        let (filter, rule_set, direction) = redirect(source.ip(), Direction::Egress, dst.identity)
            .map(|(f, r)| (f, r, TrafficDirection::Egress))
            .or_else(|| {
                redirect(destination.ip(), Direction::Ingress, src.identity)
                    .map(|(f, r)| (f, r, TrafficDirection::Ingress))
            })?;
        Some(Route {
            upstream: destination,
            filter,
            rule_set,
            direction,
            mark: Some(identity_mark(src.identity)),
            source: src,
            destination: dst,
        })
    }
}
