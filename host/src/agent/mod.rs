//! The node agent: policy sources in, datapath maps, proxy routes and
//! filter rule sets out.
//!
//! Each [`Agent::apply`] reads the sources, compiles them and pushes the
//! result everywhere, in an order that never opens a hole: rule sets first
//! (the proxy can serve new redirects), then the proxy's routes, then the
//! datapath maps (which start steering), then stale rule sets go.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use porin_sdk::RuleSetId;

use crate::datapath::{self, Datapath, MapWriter, WriteSummary};
use crate::diagnostic::{Diagnostic, Severity, has_errors};
use crate::endpoint::Workloads;
use crate::filter::FilterRegistry;
use crate::manifest::Manifests;
use crate::policy::{self, ResolvedPolicy};
use crate::proxy::PolicyResolver;

/// What one apply did.
#[derive(Debug)]
pub struct Applied {
    pub diagnostics: Vec<Diagnostic>,
    pub local_endpoints: usize,
    pub maps: WriteSummary,
}

/// The agent's state between applies.
#[derive(Debug)]
pub struct Agent {
    sources: Vec<PathBuf>,
    registry: Arc<FilterRegistry>,
    resolver: Arc<PolicyResolver>,
    datapath: Datapath,
    writer: MapWriter,
    policy: Arc<ResolvedPolicy>,
    installed_rule_sets: BTreeSet<RuleSetId>,
}

impl Agent {
    pub fn new(
        sources: Vec<PathBuf>,
        registry: Arc<FilterRegistry>,
        resolver: Arc<PolicyResolver>,
        mut datapath: Datapath,
        proxy_port: u16,
        settings: &datapath::Settings,
    ) -> anyhow::Result<Agent> {
        let writer = MapWriter::new(datapath.take_maps()?, proxy_port, settings);
        let empty = policy::compile(&Manifests::default(), &Workloads::default());
        Ok(Agent {
            sources,
            registry,
            resolver,
            datapath,
            writer,
            policy: Arc::new(empty),
            installed_rule_sets: BTreeSet::new(),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<ResolvedPolicy> {
        self.policy.clone()
    }

    pub fn datapath_mut(&mut self) -> &mut Datapath {
        &mut self.datapath
    }

    /// Reads the sources and enforces what they say. On error the state in
    /// force before the call stays in force.
    pub fn apply(&mut self) -> anyhow::Result<Applied> {
        let mut manifests = Manifests::load(&self.sources);
        let (workloads, found) = Workloads::from_manifests(&manifests);
        manifests.diagnostics.extend(found);
        if manifests.objects.is_empty() && has_errors(&manifests.diagnostics) {
            let first =
                manifests.diagnostics.iter().find(|d| d.severity == Severity::Error).expect("an error");
            anyhow::bail!("no policy source could be read ({first}); the policy in force stays");
        }
        let policy = Arc::new(policy::recompile(&manifests, &workloads, &self.policy));

        let in_use = policy.rule_sets_in_use();
        for id in &in_use {
            let set = policy.rule_sets.get(*id).expect("rule sets in use are interned");
            let json = set.rules.to_string();
            self.registry
                .set_rule_set(*id, &set.filter, &json)
                .with_context(|| format!("filter `{}` rejected rule set {}", set.filter, id.0))?;
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

        for stale in self.installed_rule_sets.difference(&in_use) {
            // Connections still using it deny from their next request.
            self.registry.remove_rule_set(*stale);
        }
        self.installed_rule_sets = in_use;
        let diagnostics = policy.diagnostics.clone();
        self.policy = policy;
        Ok(Applied { diagnostics, local_endpoints: local.len(), maps })
    }
}
