//! Endpoints: the pods porin enforces policy for, built from workload
//! manifests, with the labels their security identity is derived from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diagnostic::Diagnostic;
use crate::labels::{Label, LabelSet};
use crate::manifest::meta::ObjectMeta;
use crate::manifest::workload::{PodSpec, Service};
use crate::manifest::{Body, Manifests};
use crate::policy::resolved::Protocol;

/// Pod labels that never become part of an identity (they differ per
/// replica or per rollout, as in Cilium's default label filter).
const NON_IDENTITY_LABELS: [&str; 6] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
];

/// Container port names → (port, protocol).
pub type NamedPorts = BTreeMap<String, Vec<(u16, Protocol)>>;

/// The controller that owns a pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    pub name: String,
    /// `Deployment`, `StatefulSet`, ...
    pub kind: String,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub namespace: String,
    pub name: String,
    /// The pod's own labels.
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub named_ports: NamedPorts,
    pub ip: Option<IpAddr>,
    /// The container images, which the lab uses to pick a real program.
    pub images: Vec<String>,
    pub workload: Option<Workload>,
}

impl Endpoint {
    /// A pod as `kubectl run NAME` makes it: label `run=NAME`.
    pub fn ad_hoc(namespace: &str, name: &str) -> Endpoint {
        Endpoint {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: BTreeMap::from([("run".to_string(), name.to_string())]),
            service_account: "default".to_string(),
            named_ports: NamedPorts::new(),
            ip: None,
            images: Vec::new(),
            workload: None,
        }
    }

    fn from_spec(namespace: &str, name: &str, labels: &BTreeMap<String, String>, spec: &PodSpec) -> Endpoint {
        let mut named_ports = NamedPorts::new();
        for port in spec.containers.iter().flat_map(|c| &c.ports) {
            let protocol = match port.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            if let Some(port_name) = &port.name {
                named_ports.entry(port_name.clone()).or_default().push((port.container_port, protocol));
            }
        }
        Endpoint {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: labels.clone(),
            service_account: spec.service_account_name.clone().unwrap_or_else(|| "default".to_string()),
            named_ports,
            ip: None,
            images: spec.containers.iter().map(|c| c.image.clone()).collect(),
            workload: None,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The workload a pod belongs to, from its controlling owner. A ReplicaSet
/// that a Deployment made (`NAME-HASH`, with the pod's `pod-template-hash`)
/// stands for the Deployment, as Hubble reports it.
fn owner_workload(meta: &ObjectMeta) -> Option<Workload> {
    let owners = &meta.owner_references;
    let owner = owners.iter().find(|o| o.controller == Some(true)).or(owners.first())?;
    if owner.kind == "ReplicaSet"
        && let Some(hash) = meta.labels.get("pod-template-hash")
        && let Some(deployment) = owner.name.strip_suffix(&format!("-{hash}"))
    {
        return Some(Workload { name: deployment.to_string(), kind: "Deployment".to_string() });
    }
    Some(Workload { name: owner.name.clone(), kind: owner.kind.clone() })
}

/// The workloads of a cluster (or of a lab): namespaces with their labels,
/// endpoints and services.
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub endpoints: Vec<Endpoint>,
    pub services: Vec<Service>,
}

impl Workloads {
    /// Collects workloads from manifests. Each pod controller yields one pod
    /// named after it.
    pub fn from_manifests(manifests: &Manifests) -> (Workloads, Vec<Diagnostic>) {
        let mut workloads = Workloads::default();
        let mut diagnostics = Vec::new();
        for object in &manifests.objects {
            let endpoint = match &object.body {
                Body::Namespace(ns) => {
                    workloads.namespaces.insert(ns.metadata.name.clone(), ns.metadata.labels.clone());
                    continue;
                }
                Body::Service(service) => {
                    workloads.services.push(service.clone());
                    continue;
                }
                Body::Pod(pod) => {
                    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                    let mut endpoint =
                        Endpoint::from_spec(namespace, &pod.metadata.name, &pod.metadata.labels, &pod.spec);
                    endpoint.workload = owner_workload(&pod.metadata);
                    if let Some(ip) = &pod.status.pod_ip {
                        match ip.parse() {
                            Ok(ip) => endpoint.ip = Some(ip),
                            Err(_) => diagnostics.push(Diagnostic::error(
                                object.location.at_field("status.podIP"),
                                format!("invalid pod IP `{ip}`"),
                            )),
                        }
                    }
                    endpoint
                }
                Body::Controller(controller) => {
                    let namespace = controller.metadata.namespace.as_deref().unwrap_or("default");
                    let template = &controller.spec.template;
                    let mut endpoint = Endpoint::from_spec(
                        namespace,
                        &controller.metadata.name,
                        &template.metadata.labels,
                        &template.spec,
                    );
                    let name = controller.metadata.name.clone();
                    endpoint.workload = Some(Workload { name, kind: controller.kind.clone() });
                    endpoint
                }
                _ => continue,
            };
            if let Some(existing) = workloads.endpoint(&endpoint.namespace, &endpoint.name) {
                let message = format!("duplicate pod {}; the first definition is used", existing.key());
                diagnostics.push(Diagnostic::warning(object.location.clone(), message));
                continue;
            }
            workloads.endpoints.push(endpoint);
        }
        (workloads, diagnostics)
    }

    pub fn endpoint(&self, namespace: &str, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.namespace == namespace && e.name == name)
    }

    pub fn endpoint_mut(&mut self, namespace: &str, name: &str) -> Option<&mut Endpoint> {
        self.endpoints.iter_mut().find(|e| e.namespace == namespace && e.name == name)
    }

    /// The labels of a namespace: its own plus `kubernetes.io/metadata.name`,
    /// which Kubernetes sets on every namespace.
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self.namespaces.get(namespace).cloned().unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".to_string(), namespace.to_string());
        labels
    }

    /// The labels an endpoint's identity is derived from, as Cilium builds them.
    pub fn identity_labels(&self, endpoint: &Endpoint) -> LabelSet {
        let mut labels: Vec<Label> = endpoint
            .labels
            .iter()
            .filter(|(key, _)| !NON_IDENTITY_LABELS.contains(&key.as_str()))
            .map(|(key, value)| Label::k8s(key.clone(), value.clone()))
            .collect();
        labels.push(Label::k8s("io.kubernetes.pod.namespace", endpoint.namespace.clone()));
        labels.push(Label::k8s("io.cilium.k8s.policy.serviceaccount", endpoint.service_account.clone()));
        labels.push(Label::k8s("io.cilium.k8s.policy.cluster", "default"));
        for (key, value) in self.namespace_labels(&endpoint.namespace) {
            labels.push(Label::k8s(format!("io.cilium.k8s.namespace.labels.{key}"), value));
        }
        LabelSet::new(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::meta::OwnerReference;

    fn owned_by(kind: &str, name: &str, hash: Option<&str>) -> Option<Workload> {
        let meta = ObjectMeta {
            labels: hash.map(|h| ("pod-template-hash".to_string(), h.to_string())).into_iter().collect(),
            owner_references: vec![OwnerReference {
                kind: kind.into(),
                name: name.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }],
            ..ObjectMeta::default()
        };
        owner_workload(&meta)
    }

    #[test]
    fn pods_belong_to_their_controller_and_replica_sets_to_their_deployment() {
        let workload = |name: &str, kind: &str| Some(Workload { name: name.into(), kind: kind.into() });
        assert_eq!(
            owned_by("ReplicaSet", "api-7d9f4c8b6f", Some("7d9f4c8b6f")),
            workload("api", "Deployment")
        );
        assert_eq!(owned_by("ReplicaSet", "api-abc", None), workload("api-abc", "ReplicaSet"));
        assert_eq!(owned_by("StatefulSet", "db", None), workload("db", "StatefulSet"));
        assert_eq!(owner_workload(&ObjectMeta::default()), None);
    }
}
