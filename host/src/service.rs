//! Services as the socket load balancer translates them: every frontend
//! (ClusterIP, port, protocol) of every Service, with the backends (pod
//! address and port) a connection to it may go to.
//!
//! Backends come from the Service's EndpointSlices when it has any, as in
//! a cluster. Without one (standalone mode, the lab) they are computed from
//! the Service's selector over the known pods, as the endpointslice
//! controller would: ready pods of its namespace with an address, and the
//! target port by number or by the pods' named container ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use crate::diagnostic::{Diagnostic, Location};
use crate::endpoint::{Endpoint, Workloads};
use crate::manifest::meta::{IntOrString, ObjectMeta};
use crate::manifest::workload::{EndpointSlice, Service, ServicePort};
use crate::manifest::{Body, Manifests};
use crate::policy::resolved::Protocol;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An address and port a Service is reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    pub address: Ipv4Addr,
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// Where a frontend's connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backends {
    /// The Service, `namespace/name`.
    pub service: String,
    /// Sorted; empty refuses connections, as kube-proxy rejects them.
    pub addresses: Vec<SocketAddrV4>,
}

/// Every frontend of the cluster's Services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub frontends: BTreeMap<Frontend, Backends>,
}

impl ServiceTable {
    /// The frontends of the Services in `manifests`, with backends from
    /// their EndpointSlices or, lacking those, from `workloads`' pods.
    /// Services that cannot be translated are reported and left out.
    pub fn new(manifests: &Manifests, workloads: &Workloads) -> (ServiceTable, Vec<Diagnostic>) {
        // A later object with the same namespace and name replaces an earlier one.
        let mut services: BTreeMap<(String, String), (&Service, &Location)> = BTreeMap::new();
        let mut slices: BTreeMap<(String, String), BTreeMap<String, &EndpointSlice>> = BTreeMap::new();
        for object in &manifests.objects {
            match &object.body {
                Body::Service(service) => {
                    services.insert(key(&service.metadata), (service, &object.location));
                }
                Body::EndpointSlice(slice) => {
                    if let Some(owner) = slice.metadata.labels.get(SERVICE_NAME_LABEL) {
                        let namespace = namespace_of(&slice.metadata);
                        slices
                            .entry((namespace, owner.clone()))
                            .or_default()
                            .insert(slice.metadata.name.clone(), slice);
                    }
                }
                _ => {}
            }
        }

        let (mut table, mut diagnostics) = (ServiceTable::default(), Vec::new());
        for ((namespace, name), (service, location)) in services {
            let Some(address) = cluster_ip(service, location, &mut diagnostics) else { continue };
            let id = format!("{namespace}/{name}");
            let own_slices: Vec<&EndpointSlice> = slices
                .get(&(namespace.clone(), name))
                .map(|s| s.values().copied().collect())
                .unwrap_or_default();
            for (index, port) in service.spec.ports.iter().enumerate() {
                let location = location.at_field(format!("spec.ports[{index}]"));
                let Some(protocol) = parse_protocol(port.protocol.as_deref()) else {
                    let other = port.protocol.as_deref().unwrap_or_default();
                    let message = format!("Service {id}: {other} ports are not translated (TCP and UDP are)");
                    diagnostics.push(Diagnostic::note(location, message));
                    continue;
                };
                let addresses = match own_slices.is_empty() {
                    false => slice_backends(&own_slices, port, protocol),
                    true => selected_backends(workloads, &namespace, service, port, protocol),
                };
                let frontend = Frontend { address, port: port.port, protocol };
                if let Some(first) = table.frontends.get(&frontend) {
                    let message = format!(
                        "Service {id}: {}:{} is already Service {}'s; this port is not translated",
                        address, port.port, first.service
                    );
                    diagnostics.push(Diagnostic::warning(location, message));
                    continue;
                }
                let addresses = addresses.into_iter().collect();
                table.frontends.insert(frontend, Backends { service: id.clone(), addresses });
            }
        }
        (table, diagnostics)
    }
}

fn key(meta: &ObjectMeta) -> (String, String) {
    (namespace_of(meta), meta.name.clone())
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".to_string())
}

/// The Service's IPv4 ClusterIP; `None` for headless Services, those
/// without an address yet, ExternalName ones and IPv6-only ones.
fn cluster_ip(service: &Service, location: &Location, diagnostics: &mut Vec<Diagnostic>) -> Option<Ipv4Addr> {
    let spec = &service.spec;
    if spec.service_type.as_deref() == Some("ExternalName") {
        return None;
    }
    let addresses = spec.cluster_ip.iter().chain(&spec.cluster_ips);
    let mut found = None;
    for text in addresses.filter(|a| !a.is_empty() && *a != "None") {
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(address)) => return Some(address),
            Ok(IpAddr::V6(_)) => {}
            Err(_) => found = Some(text),
        }
    }
    if let Some(bad) = found {
        let message = format!("invalid ClusterIP `{bad}`; the Service is not translated");
        diagnostics.push(Diagnostic::warning(location.at_field("spec.clusterIP"), message));
    }
    None
}

/// The ready IPv4 endpoints of the slices, on the slice port that matches
/// `port` by name and protocol.
fn slice_backends(
    slices: &[&EndpointSlice],
    port: &ServicePort,
    protocol: Protocol,
) -> BTreeSet<SocketAddrV4> {
    let wanted = port.name.as_deref().unwrap_or("");
    let mut backends = BTreeSet::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let matching = slice.ports.iter().find(|p| {
            p.name.as_deref().unwrap_or("") == wanted
                && parse_protocol(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(target) = matching.and_then(|p| p.port) else { continue };
        for endpoint in slice.endpoints.iter().filter(|e| e.conditions.ready != Some(false)) {
            // Consumers use the first address; the others are the same endpoint.
            if let Some(Ok(address)) = endpoint.addresses.first().map(|a| a.parse::<Ipv4Addr>()) {
                backends.insert(SocketAddrV4::new(address, target));
            }
        }
    }
    backends
}

/// A Service or EndpointSlice port's protocol (TCP by default), if translated.
fn parse_protocol(protocol: Option<&str>) -> Option<Protocol> {
    match protocol {
        None | Some("TCP") => Some(Protocol::Tcp),
        Some("UDP") => Some(Protocol::Udp),
        _ => None,
    }
}

/// The pods the Service selects, on its target port: what the endpointslice
/// controller would publish. A Service without a selector has none.
fn selected_backends(
    workloads: &Workloads,
    namespace: &str,
    service: &Service,
    port: &ServicePort,
    protocol: Protocol,
) -> BTreeSet<SocketAddrV4> {
    let selector = &service.spec.selector;
    if selector.is_empty() {
        return BTreeSet::new();
    }
    workloads
        .endpoints
        .iter()
        .filter(|pod| {
            pod.namespace == namespace && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
        })
        .filter_map(|pod| {
            let Some(IpAddr::V4(address)) = pod.ip else { return None };
            Some(SocketAddrV4::new(address, target_port(pod, port, protocol)?))
        })
        .collect()
}

/// The port on `pod` that `port` forwards to: its targetPort as a number,
/// or the pod's container port of that name; the service port when unset.
fn target_port(pod: &Endpoint, port: &ServicePort, protocol: Protocol) -> Option<u16> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => u16::try_from(*number).ok().filter(|n| *n > 0),
        Some(IntOrString::String(text)) => match text.parse::<u16>() {
            Ok(number) => Some(number),
            Err(_) => pod
                .named_ports
                .get(text)?
                .iter()
                .find(|(_, named_protocol)| *named_protocol == protocol)
                .map(|(number, _)| *number),
        },
    }
}

#[cfg(test)]
mod tests;
