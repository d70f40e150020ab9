//! The policy engine: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
//! and NetworkPolicy plus workloads in; identities and per-endpoint
//! resolved policy out.
//!
//! [`compile`] is deterministic: the same manifests give the same
//! identities, entries and rule set ids.

pub mod enforcement;
pub mod explain;
pub mod l7;
pub mod resolved;
pub mod rule;

mod resolve;
mod translate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

pub use self::enforcement::EnforcementMode;
use self::l7::RuleSets;
use self::resolve::Resolver;
use self::resolved::EndpointPolicy;
use self::rule::{Peer, PolicyKind, PolicyRef, PolicySpec};
use crate::diagnostic::Diagnostic;
use crate::endpoint::{Endpoint, Workloads};
use crate::identity::{IdentityTable, NumericIdentity};
use crate::manifest::{Body, Manifests};

/// One endpoint with its identity and resolved policy.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedEndpoint {
    pub namespace: String,
    pub name: String,
    pub identity: NumericIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<crate::endpoint::Workload>,
    /// Shared between endpoints whose identity and named ports are equal.
    pub policy: Arc<EndpointPolicy>,
}

/// The output of the policy engine.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    pub identities: IdentityTable,
    pub endpoints: Vec<ResolvedEndpoint>,
    pub rule_sets: RuleSets,
    /// The policies in force (those without errors).
    pub policies: Vec<Arc<PolicyRef>>,
    /// Problems found in the input, in input order.
    pub diagnostics: Vec<Diagnostic>,
    /// The mode the endpoints' policies were resolved in.
    pub enforcement: EnforcementMode,
}

impl ResolvedPolicy {
    /// The rule sets some redirect entry names (after [`recompile`] the
    /// interner also holds earlier, now unused ones).
    pub fn rule_sets_in_use(&self) -> std::collections::BTreeSet<porin_sdk::RuleSetId> {
        self.endpoints
            .iter()
            .flat_map(|e| [&e.policy.ingress, &e.policy.egress])
            .flat_map(|direction| &direction.entries)
            .filter_map(|entry| match &entry.action {
                resolved::Action::Redirect { rule_set, .. } => Some(*rule_set),
                _ => None,
            })
            .collect()
    }

    pub fn endpoint(&self, namespace: &str, name: &str) -> Option<&ResolvedEndpoint> {
        self.endpoints.iter().find(|e| e.namespace == namespace && e.name == name)
    }

    /// IP → identity entries for the datapath's ipcache: endpoint addresses
    /// and the CIDR prefixes that policies name. Everything else is `world`.
    pub fn ipcache(&self) -> Vec<(IpNet, NumericIdentity)> {
        let mut entries: Vec<(IpNet, NumericIdentity)> =
            self.endpoints.iter().filter_map(|e| Some((IpNet::from(e.ip?), e.identity))).collect();
        entries.extend_from_slice(self.identities.prefixes());
        entries.sort();
        entries
    }

    /// The identity of an address: a local endpoint's, else the longest
    /// policy prefix's, else `world`.
    pub fn identity_of(&self, ip: IpAddr) -> NumericIdentity {
        self.endpoints
            .iter()
            .find(|e| e.ip == Some(ip))
            .map(|e| e.identity)
            .unwrap_or_else(|| self.identities.outside_identity(ip))
    }
}

/// Translates every policy object of `manifests`, allocates identities for
/// `workloads`, and resolves the policy of every endpoint in Cilium's
/// `default` enforcement mode.
pub fn compile(manifests: &Manifests, workloads: &Workloads) -> ResolvedPolicy {
    compile_with(manifests, workloads, EnforcementMode::Default)
}

/// [`compile`] in enforcement mode `mode`.
pub fn compile_with(manifests: &Manifests, workloads: &Workloads, mode: EnforcementMode) -> ResolvedPolicy {
    compile_with_rule_sets(manifests, workloads, RuleSets::default(), mode)
}

/// Compiles a change to `previous`, in `previous`'s enforcement mode: rule
/// sets keep their ids, so a rule set id never changes meaning while
/// connections use it.
pub fn recompile(manifests: &Manifests, workloads: &Workloads, previous: &ResolvedPolicy) -> ResolvedPolicy {
    compile_with_rule_sets(manifests, workloads, previous.rule_sets.clone(), previous.enforcement)
}

fn compile_with_rule_sets(
    manifests: &Manifests,
    workloads: &Workloads,
    rule_sets: RuleSets,
    mode: EnforcementMode,
) -> ResolvedPolicy {
    let mut diagnostics = manifests.diagnostics.clone();
    let mut specs: Vec<PolicySpec> = Vec::new();
    let mut policies = Vec::new();
    // As with `kubectl apply`, a later object of the same kind and name replaces an earlier one.
    let mut latest: HashMap<(PolicyKind, Option<&str>, &str), usize> = HashMap::new();
    for (index, object) in manifests.objects.iter().enumerate() {
        if let Some(key) = policy_key(&object.body) {
            latest.insert(key, index);
        }
    }
    for (index, object) in manifests.objects.iter().enumerate() {
        if let Some(later) = policy_key(&object.body).map(|key| latest[&key]).filter(|later| *later != index)
        {
            let message =
                format!("replaced by the later definition at {}", manifests.objects[later].location);
            diagnostics.push(Diagnostic::note(object.location.clone(), message));
            continue;
        }
        let (translated, found) = match &object.body {
            Body::CiliumNetworkPolicy(policy) => translate::translate_cilium(policy, false, &object.location),
            Body::CiliumClusterwideNetworkPolicy(policy) => {
                translate::translate_cilium(policy, true, &object.location)
            }
            Body::NetworkPolicy(policy) => translate::translate_network_policy(policy, &object.location),
            _ => continue,
        };
        if !crate::diagnostic::has_errors(&found) {
            if let Some(spec) = translated.first() {
                policies.push(spec.policy.clone());
            }
            specs.extend(translated);
        }
        diagnostics.extend(found);
    }

    let prefixes = specs.iter().flat_map(|s| &s.rules).flat_map(|r| &r.peers).flat_map(|peer| match peer {
        Peer::Cidr { net, except } => std::iter::once(*net).chain(except.iter().copied()).collect(),
        _ => Vec::new(),
    });
    let endpoint_labels: Vec<_> = workloads.endpoints.iter().map(|e| workloads.identity_labels(e)).collect();
    let identities = IdentityTable::build(endpoint_labels.iter().cloned(), prefixes);
    let endpoint_identities: Vec<NumericIdentity> = endpoint_labels
        .iter()
        .map(|labels| identities.by_labels(labels).expect("every endpoint label set has an identity"))
        .collect();

    let mut resolver = Resolver::new(
        &identities,
        endpoint_identities.iter().zip(&workloads.endpoints).map(|(id, e)| (*id, &e.named_ports)).collect(),
        rule_sets,
        mode,
    );
    // Under `never` the policies are still translated (and their errors
    // reported) but select no endpoint: no entries, no redirects.
    let applied: &[PolicySpec] = if mode.applies_policies() { &specs } else { &[] };
    let mut subjects: HashMap<NumericIdentity, Vec<&PolicySpec>> = HashMap::new();
    let mut shared: HashMap<(NumericIdentity, &crate::endpoint::NamedPorts), Arc<EndpointPolicy>> =
        HashMap::new();
    let mut endpoints = Vec::with_capacity(workloads.endpoints.len());
    for (endpoint, identity) in workloads.endpoints.iter().zip(endpoint_identities) {
        let selecting = subjects.entry(identity).or_insert_with(|| {
            let labels = &identities.get(identity).expect("allocated identity").labels;
            applied.iter().filter(|spec| spec.subject.matches(labels)).collect()
        });
        let policy = shared
            .entry((identity, &endpoint.named_ports))
            .or_insert_with(|| {
                Arc::new(resolver.endpoint_policy(&endpoint.key(), selecting, &endpoint.named_ports))
            })
            .clone();
        endpoints.push(resolved_endpoint(endpoint, identity, policy));
    }
    let mut conflicts = std::mem::take(&mut resolver.diagnostics);
    conflicts.dedup_by(|a, b| a.message == b.message);
    diagnostics.extend(conflicts);
    let rule_sets = resolver.rule_sets;
    ResolvedPolicy { identities, endpoints, rule_sets, policies, diagnostics, enforcement: mode }
}

/// Kind, namespace and name of a policy object.
fn policy_key(body: &Body) -> Option<(PolicyKind, Option<&str>, &str)> {
    fn namespaced(meta: &crate::manifest::meta::ObjectMeta) -> Option<&str> {
        Some(meta.namespace.as_deref().unwrap_or("default"))
    }
    match body {
        Body::CiliumNetworkPolicy(p) => {
            Some((PolicyKind::CiliumNetworkPolicy, namespaced(&p.metadata), &p.metadata.name))
        }
        Body::CiliumClusterwideNetworkPolicy(p) => {
            Some((PolicyKind::CiliumClusterwideNetworkPolicy, None, &p.metadata.name))
        }
        Body::NetworkPolicy(p) => {
            Some((PolicyKind::NetworkPolicy, namespaced(&p.metadata), &p.metadata.name))
        }
        _ => None,
    }
}

fn resolved_endpoint(
    endpoint: &Endpoint,
    identity: NumericIdentity,
    policy: Arc<EndpointPolicy>,
) -> ResolvedEndpoint {
    ResolvedEndpoint {
        namespace: endpoint.namespace.clone(),
        name: endpoint.name.clone(),
        identity,
        ip: endpoint.ip,
        workload: endpoint.workload.clone(),
        policy,
    }
}

#[cfg(test)]
mod tests;
