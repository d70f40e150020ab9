//! The lab's names: the cluster DNS answers `<svc>.<ns>.svc.cluster.local`
//! (and `<svc>.<ns>.svc`) for every Service with the addresses of the pods
//! it selects, since there are no ClusterIPs yet; the world's DNS answers a
//! few external names with the world's address; every pod's resolv.conf
//! points at the cluster DNS with Kubernetes' search path.

use std::net::Ipv4Addr;

use super::state::LabPod;
use crate::manifest::workload::Service;

pub(super) const CLUSTER_DOMAIN: &str = "cluster.local";

/// The external names the world's DNS knows.
pub(super) const WORLD_NAMES: [&str; 5] =
    ["example.com", "www.example.com", "google.com", "www.google.com", "api.github.com"];

/// The `kubernetes` Service every cluster has, at the ClusterIP kubeadm
/// gives it. The lab runs no API server: the name resolves (as the article's
/// `dig` expects) but nothing answers there.
const KUBERNETES_SERVICE: &str = "10.96.0.1 kubernetes.default.svc.cluster.local kubernetes.default.svc\n";

/// Hosts-file lines for the cluster DNS: `kubernetes.default`, then each
/// Service's names, once per pod of its namespace that its selector matches.
pub(super) fn service_hosts(services: &[Service], pods: &[LabPod]) -> String {
    let mut lines = String::from(KUBERNETES_SERVICE);
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let selector = &service.spec.selector;
        if selector.is_empty() {
            continue; // Its endpoints are managed by hand; the lab has none.
        }
        let selected = pods.iter().filter(|pod| {
            pod.namespace == namespace && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
        });
        let name = format!("{}.{namespace}.svc", service.metadata.name);
        for pod in selected {
            lines.push_str(&format!("{} {name}.{CLUSTER_DOMAIN} {name}\n", pod.attachment.ip));
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
