//! The node agent: policy sources in, datapath maps, proxy routes and
//! filter rule sets out.
//!
//! Each update reads the source (files, or the cluster: [`PolicySource`]),
//! compiles it and applies the result
//! everywhere, in an order that never opens a hole: rule sets
//! first (the proxy can serve new redirects), then the proxy's routes, then
//! the datapath maps (which start steering), then stale rule sets go.
//! Updates come from the [`Watcher`] and from SIGHUP, and are reported as
//! log events and on the [`api`].

pub mod api;
mod filters;
pub mod sources;
mod status;
mod watch;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use porin_sdk::RuleSetId;
use tracing::{error, info, warn};

use self::filters::FilterDir;
use self::sources::Sources;
pub use self::status::Status;
pub use self::watch::Watcher;
use crate::datapath::{self, Datapath, MapWriter, WriteSummary};
use crate::diagnostic::{Diagnostic, Severity};
use crate::endpoint::Workloads;
use crate::filter::FilterRegistry;
use crate::flow::EndpointIndex;
use crate::k8s::Cluster;
use crate::manifest::Manifests;
use crate::observe::Observer;
use crate::policy::{self, EnforcementMode, ResolvedPolicy};
use crate::proxy::PolicyResolver;
use crate::reading::Reading;
use crate::service::ServiceTable;

/// What one apply did.
#[derive(Debug)]
struct Applied {
    /// The compile's diagnostics that the policy in force before did not have.
    diagnostics: Vec<Diagnostic>,
    local_endpoints: usize,
    maps: WriteSummary,
}

/// What an apply updates besides the datapath: the filters' rule sets, the
/// proxy's routes, and who is who in flows.
#[derive(Debug, Clone)]
pub struct Consumers {
    pub registry: Arc<FilterRegistry>,
    pub resolver: Arc<PolicyResolver>,
    pub observer: Arc<Observer>,
}

/// Where the agent's objects come from.
#[derive(Debug)]
pub enum PolicySource {
    /// Files and directories (`-f`), watched by the [`Watcher`].
    Files(Sources),
    /// The Kubernetes API server.
    Cluster(Box<Cluster>),
}

/// The agent's state between applies.
#[derive(Debug)]
pub struct Agent {
    source: PolicySource,
    /// What the source held at the last successful apply.
    in_force: Reading,
    registry: Arc<FilterRegistry>,
    resolver: Arc<PolicyResolver>,
    datapath: Datapath,
    writer: MapWriter,
    policy: Arc<ResolvedPolicy>,
    installed_rule_sets: BTreeSet<RuleSetId>,
    proxy_port: u16,
    status: tokio::sync::watch::Sender<Status>,
    filters: Option<FilterDir>,
    observer: Arc<Observer>,
}

impl Agent {
    pub fn new(
        source: PolicySource,
        consumers: Consumers,
        mut datapath: Datapath,
        proxy_port: u16,
        settings: &datapath::Settings,
        enforcement: EnforcementMode,
        filters_dir: Option<PathBuf>,
    ) -> anyhow::Result<Agent> {
        let Consumers { registry, resolver, observer } = consumers;
        let writer = MapWriter::new(datapath.take_maps()?, proxy_port, settings);
        // Every later apply recompiles from this one, keeping its mode.
        let empty = policy::compile_with(&Manifests::default(), &Workloads::default(), enforcement);
        Ok(Agent {
            source,
            in_force: Reading::default(),
            registry,
            resolver,
            datapath,
            writer,
            policy: Arc::new(empty),
            installed_rule_sets: BTreeSet::new(),
            proxy_port,
            status: tokio::sync::watch::Sender::new(Status::default()),
            filters: filters_dir.map(FilterDir::new),
            observer,
        })
    }

    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    /// The agent's status, kept current.
    pub fn status(&self) -> tokio::sync::watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<ResolvedPolicy> {
        self.policy.clone()
    }

    pub fn datapath_mut(&mut self) -> &mut Datapath {
        &mut self.datapath
    }

    /// Passes the datapath's counters to the metrics.
    pub fn report_counters(&self) {
        match self.writer.counters() {
            Ok(totals) => self.observer.metrics().datapath_counters(&datapath::abi::COUNTERS, &totals),
            Err(err) => warn!("cannot read the datapath's counters: {err:#}"),
        }
    }

    /// Reads the source and applies it (at start, on SIGHUP, and at each
    /// resync).
    pub fn update(&mut self) {
        if let Some(reading) = self.read() {
            self.update_to(reading);
        }
    }

    /// Re-reads and applies the source as asked (SIGHUP), and counts it in
    /// the status.
    pub fn reload(&mut self) {
        self.update();
        self.status.send_modify(|status| status.reloads += 1);
    }

    /// Reads the source and applies it if its content changed since the
    /// last apply (after the [`Watcher`] or the cluster's watchers saw a
    /// change).
    pub fn update_if_changed(&mut self) {
        if let Some(reading) = self.read().filter(|reading| reading.differs_from(&self.in_force)) {
            self.update_to(reading);
        }
    }

    /// The source as it is now; `None` while the cluster has not been
    /// listed (nothing is applied before: the datapath keeps what it had).
    fn read(&mut self) -> Option<Reading> {
        match &mut self.source {
            PolicySource::Files(sources) => Some(sources.read(&self.in_force)),
            PolicySource::Cluster(cluster) => {
                cluster.sync_modules(&self.registry);
                let reading = cluster.read(&self.in_force);
                if reading.is_none() {
                    let waiting = cluster.waiting_for().unwrap_or_default();
                    self.status
                        .send_modify(|status| status.waiting(format!("waiting for the cluster: {waiting}")));
                }
                reading
            }
        }
    }

    /// Applies `reading`, logging the outcome and keeping the status.
    fn update_to(&mut self, reading: Reading) {
        let rejected: Vec<String> = reading.rejections().map(described).collect();
        for rejection in &rejected {
            error!("update failed, the policy in force stays: {rejection}");
        }
        let was_enforcing = self.status.borrow().revision.is_some();
        let outcome = self.apply(&reading);
        if let PolicySource::Cluster(cluster) = &self.source {
            let error = outcome.as_ref().err().map(|err| format!("{err:#}"));
            let applied = match (&outcome, &error) {
                (Ok(applied), _) => Ok(applied.maps.revision),
                (Err(_), error) => Err(error.as_deref().unwrap_or_default()),
            };
            cluster.report(&self.in_force, &reading, applied);
        }
        match outcome {
            Ok(Applied { diagnostics, local_endpoints, maps }) => {
                self.in_force = reading;
                diagnostics.iter().for_each(log_diagnostic);
                info!(
                    local_endpoints,
                    policy_entries = maps.policy_entries,
                    ipcache_entries = maps.ipcache_entries,
                    written = maps.changed,
                    removed = maps.removed,
                    "policy revision {}",
                    maps.revision
                );
                self.status.send_modify(|status| status.applied(&maps, rejected));
                if !was_enforcing {
                    info!("datapath ready; proxy on port {} (TCP, UDP)", self.proxy_port);
                }
            }
            Err(err) => {
                error!("update failed, the policy in force stays: {err:#}");
                self.status.send_modify(|status| status.failed(format!("{err:#}"), rejected));
            }
        }
    }

    /// Enforces what `reading` says and makes it the reading in force. On
    /// error the state in force before the call stays in force.
    fn apply(&mut self, reading: &Reading) -> anyhow::Result<Applied> {
        let mut manifests = reading.manifests();
        if manifests.objects.is_empty()
            && let Some(first) = reading.rejections().next()
        {
            // Applying nothing would lift every policy a broken source held.
            bail!("no policy source could be read ({})", described(first));
        }
        let (workloads, found) = Workloads::from_manifests(&manifests);
        manifests.diagnostics.extend(found);
        let (services, found) = ServiceTable::new(&manifests, &workloads);
        manifests.diagnostics.extend(found);
        if let Some(filters) = &mut self.filters {
            let refreshed = filters.refresh(&self.registry);
            for name in refreshed.loaded {
                info!("filter {name} loaded");
            }
            for error in refreshed.errors {
                warn!("filter not loaded: {error}");
            }
        }
        let policy = Arc::new(policy::recompile(&manifests, &workloads, &self.policy));

        let in_use = policy.rule_sets_in_use();
        for id in &in_use {
            let set = policy.rule_sets.get(*id).expect("rule sets in use are interned");
            // A missing module or refused rules cost that rule set's
            // connections (refused, with a flow saying why), not the policy.
            let json = set.rules.to_string();
            if let Some(unavailable) = self.registry.install_rule_set(*id, &set.filter, &json) {
                warn!("{unavailable}");
            }
        }
        self.resolver.update(policy.clone());

        let interfaces = datapath::endpoint_interfaces()?;
        let local: BTreeMap<Ipv4Addr, u32> = policy
            .endpoints
            .iter()
            .filter_map(|e| match e.ip {
                Some(IpAddr::V4(ip)) => interfaces.get(&ip).map(|(_, index)| (ip, *index)),
                _ => None,
            })
            .collect();
        let mut attached = BTreeSet::new();
        for ip in local.keys() {
            let (name, index) = &interfaces[ip];
            self.datapath.attach(name, *index)?;
            attached.insert(name.clone());
        }
        let host = datapath::node_addresses()?;
        let maps = match self.writer.write(&policy, &local, &host) {
            Ok(maps) => maps,
            Err(err) => {
                self.resolver.update(self.policy.clone());
                return Err(err);
            }
        };
        self.datapath.detach_others(&attached)?;
        self.datapath.write_services(&services).context("writing the service maps")?;

        for stale in self.installed_rule_sets.difference(&in_use) {
            // Connections still using it deny from their next request.
            self.registry.remove_rule_set(*stale);
        }
        self.installed_rule_sets = in_use;
        let reported: HashSet<String> = self.policy.diagnostics.iter().map(ToString::to_string).collect();
        let diagnostics =
            policy.diagnostics.iter().filter(|d| !reported.contains(&d.to_string())).cloned().collect();
        self.observer.set_endpoints(EndpointIndex::new(&policy));
        self.policy = policy;
        Ok(Applied { diagnostics, local_endpoints: local.len(), maps })
    }
}

/// A diagnostic as a log line says it: where, then what (the event's
/// level gives the severity).
fn described(diagnostic: &Diagnostic) -> String {
    format!("{}: {}", diagnostic.location, diagnostic.message)
}

fn log_diagnostic(diagnostic: &Diagnostic) {
    match diagnostic.severity {
        Severity::Error => error!("{}", described(diagnostic)),
        Severity::Warning => warn!("{}", described(diagnostic)),
        Severity::Note => info!("{}", described(diagnostic)),
    }
}
