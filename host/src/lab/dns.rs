//! The lab's names: the cluster DNS answers `<svc>.<ns>.svc.cluster.local`
//! (and `<svc>.<ns>.svc`) for every Service with its ClusterIP, or for a
//! headless one with the addresses of the pods it selects; the world's DNS
//! answers a few external names with the world's address; every pod's
//! resolv.conf points at the cluster DNS with Kubernetes' search path.

use std::net::Ipv4Addr;

use super::cluster_ip;
use super::state::LabPod;
use crate::manifest::workload::Service;

pub(super) const CLUSTER_DOMAIN: &str = "cluster.local";

/// The external names the world's DNS knows.
pub(super) const WORLD_NAMES: [&str; 5] =
    ["example.com", "www.example.com", "google.com", "www.google.com", "api.github.com"];

/// Hosts-file lines for the cluster DNS: `kubernetes.default` (the lab runs
/// no API server: the name resolves, as the article's `dig` expects, but
/// nothing answers there), then each Service's names with its ClusterIP,
/// or for a headless Service once per pod of its namespace that its
/// selector matches.
pub(super) fn service_hosts(services: &[Service], pods: &[LabPod]) -> String {
    let kubernetes = "kubernetes.default.svc";
    let mut lines = format!("{} {kubernetes}.{CLUSTER_DOMAIN} {kubernetes}\n", cluster_ip::KUBERNETES);
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = format!("{}.{namespace}.svc", service.metadata.name);
        let cluster_ip = service.spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let selector = &service.spec.selector;
        let addresses: Vec<Ipv4Addr> = match cluster_ip {
            Some(address) => vec![address],
            // Endpoints of a headless Service without selector are managed by hand; the lab has none.
            None if selector.is_empty() => Vec::new(),
            None => pods
                .iter()
                .filter(|pod| {
                    pod.namespace == namespace && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
                })
                .map(|pod| pod.attachment.ip)
                .collect(),
        };
        for address in addresses {
            lines.push_str(&format!("{address} {name}.{CLUSTER_DOMAIN} {name}\n"));
        }
    }
    lines
}

/// The hosts file of the world's DNS.
pub(super) fn world_hosts(world: Ipv4Addr) -> String {
    format!("{world} {}\n", WORLD_NAMES.join(" "))
}

/// A pod's resolv.conf, as the kubelet writes it for `ClusterFirst`.
pub(super) fn resolv_conf(namespace: &str, nameserver: Ipv4Addr) -> String {
    format!(
        "search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n\
         nameserver {nameserver}\noptions ndots:5\n"
    )
}
