//! The lab's objects as the agent reads them: one file per object in the
//! manifests directory, named after its kind, namespace and name, so that a
//! later version replaces an earlier one as `kubectl apply` does. A Pod or
//! pod controller is stored as the pod the lab runs for it (named after it,
//! as `crate::endpoint` models it), with its address in `status.podIP`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_yaml::Value;

use super::programs::Program;
use super::state::write_file;
use crate::manifest::meta::{ObjectMeta, OwnerReference};

/// Kinds that live outside namespaces.
const CLUSTER_SCOPED: [&str; 4] =
    ["Namespace", "Node", "CiliumClusterwideNetworkPolicy", "CustomResourceDefinition"];

/// Pod controllers, each modelled as one pod.
const CONTROLLERS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"];

/// One object of a manifest file.
#[derive(Debug, Clone)]
pub(super) struct Document {
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) namespace: Option<String>,
    pub(super) name: String,
    value: Value,
}

impl Document {
    /// Every object of a multi-document YAML text, namespaced ones in
    /// `default` unless they say otherwise.
    pub(super) fn parse_all(text: &str) -> anyhow::Result<Vec<Document>> {
        let mut documents = Vec::new();
        for document in serde_yaml::Deserializer::from_str(text) {
            let mut value = Value::deserialize(document)?;
            if value.is_null() {
                continue;
            }
            let field =
                |value: &Value, name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
            let (Some(api_version), Some(kind)) = (field(&value, "apiVersion"), field(&value, "kind")) else {
                anyhow::bail!("a document lacks apiVersion or kind");
            };
            let metadata = value.get_mut("metadata").context("a document lacks metadata")?;
            let name = field(metadata, "name").context("a document lacks metadata.name")?;
            let namespace = match CLUSTER_SCOPED.contains(&kind.as_str()) || kind.starts_with("Cluster") {
                true => None,
                false => {
                    let namespace = field(metadata, "namespace").unwrap_or_else(|| "default".to_string());
                    metadata["namespace"] = Value::from(namespace.clone());
                    Some(namespace)
                }
            };
            documents.push(Document { api_version, kind, namespace, name, value });
        }
        Ok(documents)
    }

    /// How kubectl names it: `deployment.apps/web`, `namespace/db`.
    pub(super) fn reference(&self) -> String {
        let kind = self.kind.to_lowercase();
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{kind}.{group}/{}", self.name),
            None => format!("{kind}/{}", self.name),
        }
    }

    /// The pod it stands for, when it is a Pod or a pod controller.
    pub(super) fn workload(&self) -> anyhow::Result<Option<Workload>> {
        let template = match self.kind.as_str() {
            "Pod" => &self.value,
            kind if CONTROLLERS.contains(&kind) => &self.value["spec"]["template"],
            _ => return Ok(None),
        };
        let labels = template["metadata"]["labels"].clone();
        let labels = match labels {
            Value::Null => BTreeMap::new(),
            labels => serde_yaml::from_value(labels).context("metadata.labels")?,
        };
        // The lab's pod of a controller is owned by the controller itself
        // (no ReplicaSet in between).
        let owner = (self.kind != "Pod").then(|| OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            controller: Some(true),
        });
        Ok(Some(Workload {
            namespace: self.namespace.clone().unwrap_or_default(),
            name: self.name.clone(),
            labels,
            owner,
            spec: template["spec"].clone(),
        }))
    }

    /// Its file in the manifests directory.
    pub(super) fn file_name(&self) -> String {
        let resource = self.reference();
        let (resource, _) = resource.split_once('/').expect("a reference has a slash");
        file_name(resource, self.namespace.as_deref(), &self.name)
    }

    /// A core Service's `namespace/name` and `spec.clusterIP`; `None` for
    /// other objects.
    pub(super) fn service(&self) -> Option<(String, Option<&str>)> {
        (self.api_version == "v1" && self.kind == "Service").then(|| {
            let key = format!("{}/{}", self.namespace.as_deref().unwrap_or_default(), self.name);
            (key, self.value["spec"]["clusterIP"].as_str())
        })
    }

    /// Sets a Service's `spec.clusterIP` (and `clusterIPs`), as the API
    /// server does when it allocates one.
    pub(super) fn set_cluster_ip(&mut self, address: Ipv4Addr) {
        let spec = &mut self.value["spec"];
        spec["clusterIP"] = Value::from(address.to_string());
        spec["clusterIPs"] = Value::Sequence(vec![Value::from(address.to_string())]);
    }

    /// The object as stored.
    pub(super) fn yaml(&self) -> anyhow::Result<String> {
        Ok(serde_yaml::to_string(&self.value)?)
    }
}

/// A pod to run: from a Pod, a pod controller, or `porin lab run`.
#[derive(Debug, Clone)]
pub(super) struct Workload {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
    spec: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodManifest<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: &'a Value,
    status: PodStatus,
}

#[derive(Debug, Serialize)]
struct PodStatus {
    phase: &'static str,
    #[serde(rename = "podIP")]
    pod_ip: Ipv4Addr,
    #[serde(rename = "podIPs")]
    pod_ips: [PodIp; 1],
}

#[derive(Debug, Serialize)]
struct PodIp {
    ip: Ipv4Addr,
}

#[derive(Debug, Default, Deserialize)]
struct Containers {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    image: String,
    #[serde(default)]
    env: Vec<EnvVar>,
}

#[derive(Debug, Deserialize)]
struct EnvVar {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

impl Workload {
    /// An ad-hoc pod as `kubectl run NAME` makes it: labelled `run=NAME`.
    pub(super) fn ad_hoc(namespace: &str, name: &str, labels: &BTreeMap<String, String>) -> Workload {
        let mut all = BTreeMap::from([("run".to_string(), name.to_string())]);
        all.extend(labels.clone());
        let spec = json!({ "containers": [{ "name": name, "image": "porin-lab-run" }] });
        Workload {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: all,
            owner: None,
            spec: serde_yaml::to_value(spec).expect("JSON is YAML"),
        }
    }

    /// The first container whose image stands for a program, with that
    /// container's environment.
    pub(super) fn program(&self) -> Option<(Program, BTreeMap<String, String>)> {
        let pod: Containers = serde_yaml::from_value(self.spec.clone()).unwrap_or_default();
        pod.containers.into_iter().find_map(|container| {
            let program = Program::for_image(&container.image)?;
            let env = container.env.into_iter().filter_map(|var| Some((var.name, var.value?))).collect();
            Some((program, env))
        })
    }

    /// The pod manifest the agent reads.
    pub(super) fn manifest(&self, ip: Ipv4Addr) -> anyhow::Result<String> {
        let pod = PodManifest {
            api_version: "v1",
            kind: "Pod",
            metadata: ObjectMeta {
                name: self.name.clone(),
                namespace: Some(self.namespace.clone()),
                labels: self.labels.clone(),
                owner_references: self.owner.iter().cloned().collect(),
            },
            spec: &self.spec,
            status: PodStatus { phase: "Running", pod_ip: ip, pod_ips: [PodIp { ip }] },
        };
        Ok(serde_yaml::to_string(&pod)?)
    }

    pub(super) fn file_name(&self) -> String {
        file_name("pod", Some(&self.namespace), &self.name)
    }
}

/// `RESOURCE_NAMESPACE_NAME.yaml`: `_` appears in no resource, namespace or
/// object name, so names never collide.
fn file_name(resource: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("{resource}_{namespace}_{name}.yaml"),
        None => format!("{resource}_{name}.yaml"),
    }
}

/// What storing an object did, in kubectl's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Created,
    Configured,
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        })
    }
}

/// The manifests directory.
#[derive(Debug, Clone)]
pub(super) struct Store {
    pub(super) dir: PathBuf,
}

impl Store {
    pub(super) fn write(&self, file: &str, yaml: &str) -> anyhow::Result<Change> {
        let path = self.dir.join(file);
        let change = match std::fs::read_to_string(&path) {
            Ok(old) if old == yaml => return Ok(Change::Unchanged),
            Ok(_) => Change::Configured,
            Err(_) => Change::Created,
        };
        write_file(&path, yaml)?;
        Ok(change)
    }

    /// Removes a file; false when there was none.
    pub(super) fn remove(&self, file: &str) -> anyhow::Result<bool> {
        let path: &Path = &self.dir.join(file);
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
        }
    }
}
