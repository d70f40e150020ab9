//! Workload objects: Namespace, Pod, the controllers that stamp out pods
//! (Deployment, StatefulSet, DaemonSet, ReplicaSet), and Service. Only the
//! fields porin uses are read; everything else is ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::meta::{IntOrString, ObjectMeta};

#[derive(Debug, Clone, Deserialize)]
pub struct Namespace {
    pub metadata: ObjectMeta,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub service_account_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
}

/// Deployment, StatefulSet, DaemonSet or ReplicaSet: porin models each as one
/// pod named after the controller, with the template's labels.
#[derive(Debug, Clone, Deserialize)]
pub struct Controller {
    /// `Deployment`, `StatefulSet`, ...: the manifest's `kind`.
    #[serde(skip)]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ControllerSpec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ControllerSpec {
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub target_port: Option<IntOrString>,
    #[serde(default)]
    pub protocol: Option<String>,
}
