//! Kubernetes as the agent's source (`porin agent --kubernetes`).
//!
//! A watcher per kind ([`kinds::KINDS`]) keeps a reflector store; the
//! agent reads the stores as units (one per object) through the same
//! manifest loader as files, so a policy means the same from either
//! source. Nothing is applied before every kind has been listed once: a
//! restarted agent leaves the pinned datapath enforcing until then. After
//! that, errors and a missing API server only delay changes: the stores
//! keep the last known objects and the watchers reconnect with backoff.

mod convert;
mod kinds;
mod modules;
mod report;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::Notify;

use self::kinds::{KINDS, Kind, Role, is_policy_kind};
use self::modules::ModuleLoader;
use self::report::{Outcome, Reporter};
use self::watch::Watched;
use crate::filter::FilterRegistry;
use crate::manifest::Manifests;
use crate::reading::{Reading, Unit, UnitKey};

/// Who this agent is in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This node's name: events and FilterModule statuses carry it.
    pub node_name: String,
    /// The agent's namespace: where filter modules' ConfigMaps are read.
    pub namespace: String,
}

/// A client for the cluster: from `kubeconfig`, else $KUBECONFIG,
/// ~/.kube/config, or the in-cluster service account.
pub async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await.context("no kubeconfig and not in a cluster")?,
    };
    Ok(Client::try_from(config)?)
}

/// The watched cluster.
#[derive(Debug)]
pub struct Cluster {
    watched: Vec<Watched>,
    changes: Arc<Notify>,
    modules: ModuleLoader,
    reporter: Reporter,
    /// Each policy unit's object, from the last reading, for events.
    references: HashMap<UnitKey, ObjectReference>,
}

impl Cluster {
    /// Starts the watchers; needs a tokio runtime.
    pub fn start(client: Client, settings: &ClusterSettings) -> Cluster {
        let changes = Arc::new(Notify::new());
        let watched = KINDS
            .iter()
            .map(|kind| watch::spawn(client.clone(), kind, &settings.namespace, changes.clone()))
            .collect();
        Cluster {
            watched,
            modules: ModuleLoader::new(settings.namespace.clone(), changes.clone()),
            changes,
            reporter: Reporter::new(client, settings.node_name.clone()),
            references: HashMap::new(),
        }
    }

    /// Notified after the stores change (or a module download ends).
    pub fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    /// Why the cluster cannot be read yet: the kinds not listed so far.
    pub fn waiting_for(&self) -> Option<String> {
        let waiting: Vec<String> =
            self.watched.iter().filter(|watched| !watched.ready()).map(Watched::waiting_because).collect();
        (!waiting.is_empty()).then(|| waiting.join("; "))
    }

    /// The policy units as the stores hold them now; objects unchanged
    /// since `in_force` are not parsed again. `None` until every kind has
    /// been listed.
    pub fn read(&mut self, in_force: &Reading) -> Option<Reading> {
        if self.waiting_for().is_some() {
            return None;
        }
        let previous: HashMap<&UnitKey, &Unit> =
            in_force.units().iter().map(|unit| (&unit.key, unit)).collect();
        let mut units = Vec::new();
        self.references.clear();
        for watched in self.watched.iter().filter(|watched| watched.kind.role == Role::Policy) {
            for object in watched.objects() {
                let unit = convert::unit_of(watched.kind, &object, &previous);
                if is_policy_kind(watched.kind.kind) {
                    self.references.insert(unit.key.clone(), reference(watched.kind, &object));
                }
                units.push(unit);
            }
        }
        Some(Reading::new(units))
    }

    /// Loads, reloads and unloads filter modules as the FilterModule objects
    /// say, and reports their status on this node.
    pub fn sync_modules(&mut self, registry: &FilterRegistry) {
        let objects_of = |role: Role| -> Vec<Arc<DynamicObject>> {
            self.watched.iter().filter(|w| w.kind.role == role).flat_map(Watched::objects).collect()
        };
        let (modules, config_maps) = (objects_of(Role::FilterModule), objects_of(Role::ModuleBytes));
        for (name, status) in self.modules.sync(&modules, &config_maps, registry) {
            self.reporter.module_status(name, status);
        }
    }

    /// Posts an event on each policy whose content changed between
    /// `before` and `after` (the reading just applied, or tried).
    pub fn report(&self, before: &Reading, after: &Reading, applied: Result<u32, &str>) {
        for unit in after.units() {
            let Some(reference) = self.references.get(&unit.key) else { continue };
            let unchanged = before.unit(&unit.key).is_some_and(|old| old.same_content(unit));
            if unchanged {
                continue;
            }
            let outcome = if !unit.rejected.is_empty() {
                let errors: Vec<String> = unit
                    .rejected
                    .iter()
                    .map(|d| match &d.location.field {
                        Some(field) => format!("{field}: {}", d.message),
                        None => d.message.clone(),
                    })
                    .collect();
                Outcome::Rejected(errors.join("; "))
            } else {
                match applied {
                    Ok(revision) => Outcome::Applied { revision },
                    Err(error) => Outcome::NotApplied(error.to_string()),
                }
            };
            self.reporter.policy(reference.clone(), outcome);
        }
    }
}

fn reference(kind: &Kind, object: &DynamicObject) -> ObjectReference {
    ObjectReference {
        api_version: Some(kind.api_version()),
        kind: Some(kind.kind.to_string()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Lists the policy kinds once: the cluster's objects as `porin policy`
/// reads files (`--from-cluster`). A kind the cluster does not serve
/// (Cilium's CRDs not installed) has no objects.
pub async fn list_manifests(client: &Client) -> anyhow::Result<Manifests> {
    let mut units = Vec::new();
    for kind in KINDS.iter().filter(|kind| kind.role == Role::Policy) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let objects = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if kind.optional && status.code == 404 => Vec::new(),
            Err(err) => {
                return Err(err).with_context(|| format!("listing {} {}", kind.api_version(), kind.plural));
            }
        };
        units.extend(objects.iter().map(|object| convert::unit_of(kind, object, &HashMap::new())));
    }
    let reading = Reading::new(units);
    let mut manifests = reading.manifests();
    manifests.diagnostics.extend(reading.rejections().cloned());
    Ok(manifests)
}
