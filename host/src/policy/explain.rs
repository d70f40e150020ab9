//! `porin policy explain`: would this traffic be allowed, and by which rule?
//!
//! Explain reads the same resolved entries the datapath enforces, through
//! the same lookup, so its answer is the enforcement's answer.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use porin_filter_http::{Request, RuleSet};
use porin_sdk::RuleSetId;
use serde::Serialize;
use serde_json::Value;

use super::l7::L7Rules;
use super::resolved::{Action, Direction, Lookup, PolicyEntry, Protocol};
use super::rule::{PolicyRef, RuleRef};
use super::{EnforcementMode, ResolvedPolicy};
use crate::endpoint::{Endpoint, Workloads};
use crate::identity::{Entity, NumericIdentity};
use crate::labels::LabelSet;

/// A source or destination as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerQuery {
    /// `NAMESPACE/NAME`: a pod or controller from the manifests, or an ad-hoc pod.
    Pod {
        namespace: String,
        name: String,
    },
    Entity(Entity),
    Ip(IpAddr),
}

impl FromStr for PeerQuery {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = text.parse() {
            return Ok(PeerQuery::Ip(ip));
        }
        if let Ok(entity) = text.parse::<Entity>() {
            return match entity {
                Entity::All | Entity::Cluster => {
                    Err(format!("`{text}` is a group of identities, not one peer"))
                }
                entity => Ok(PeerQuery::Entity(entity)),
            };
        }
        match text.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(PeerQuery::Pod { namespace: namespace.to_string(), name: name.to_string() })
            }
            _ => Err(format!(
                "cannot understand `{text}`: expected NAMESPACE/NAME, an entity (world, host, kube-apiserver, \
                 remote-node, health, init, unmanaged, ingress) or an IP address"
            )),
        }
    }
}

/// An HTTP request to evaluate against the L7 rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpQuery {
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: PeerQuery,
    pub to: PeerQuery,
    /// Extra labels for the source/destination pod.
    pub from_labels: BTreeMap<String, String>,
    pub to_labels: BTreeMap<String, String>,
    pub port: u16,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    pub http: Option<HttpQuery>,
}

impl Query {
    /// Adds the pods the query names to `workloads`: a name not in the
    /// manifests becomes a pod labelled `run=NAME`, as `kubectl run` makes
    /// it, and extra labels are added to the pod.
    pub fn add_pods(&self, workloads: &mut Workloads) {
        for (peer, labels) in [(&self.from, &self.from_labels), (&self.to, &self.to_labels)] {
            let PeerQuery::Pod { namespace, name } = peer else { continue };
            if workloads.endpoint(namespace, name).is_none() {
                workloads.endpoints.push(Endpoint::ad_hoc(namespace, name));
            }
            if let Some(endpoint) = workloads.endpoint_mut(namespace, name) {
                endpoint.labels.extend(labels.clone());
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allowed,
    Denied,
}

impl Verdict {
    fn from_allowed(allowed: bool) -> Verdict {
        if allowed { Verdict::Allowed } else { Verdict::Denied }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    /// `namespace/name`, the entity, or the address.
    pub name: String,
    pub kind: PeerKind,
    pub identity: NumericIdentity,
    pub labels: LabelSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    Pod,
    Entity,
    Ip,
}

/// What decided one direction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "decided_by")]
pub enum DecidedBy {
    /// A policy entry; `rule` is the first rule it comes from, `rules` all of them.
    Rule {
        rule: RuleRef,
        rules: Vec<RuleRef>,
        #[serde(flatten)]
        action: Action,
    },
    /// No rule matched and these policies switched default deny on.
    DefaultDeny { enforced_by: Vec<Arc<PolicyRef>> },
    /// No policy enforces this direction on the endpoint.
    NoPolicy,
    /// This side is not a local endpoint, so it has no policy here.
    NotAnEndpoint,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectionDecision {
    pub verdict: Verdict,
    #[serde(flatten)]
    pub decided_by: DecidedBy,
    /// The same in one sentence.
    pub reason: String,
}

/// The L7 rules a redirected direction applies, and the request's fate.
#[derive(Debug, Clone, Serialize)]
pub struct L7Decision {
    pub direction: Direction,
    pub rule_set: RuleSetId,
    pub rules: Value,
    /// `None` when no request was given or the filter is not `http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_rule: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum L7Verdict {
    Allowed,
    Denied,
    /// No request was given, or explain cannot evaluate this filter's rules.
    NotEvaluated,
}

#[derive(Debug, Clone, Serialize)]
pub struct L7Explanation {
    pub filter: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpQuery>,
    pub verdict: L7Verdict,
    pub decisions: Vec<L7Decision>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub verdict: Verdict,
    pub from: PeerInfo,
    pub to: PeerInfo,
    pub port: u16,
    pub protocol: Protocol,
    pub egress: DirectionDecision,
    pub ingress: DirectionDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<L7Explanation>,
    pub policy_enforcement: EnforcementMode,
}

/// Explains `query` against `resolved` (compiled with [`Query::add_pods`]).
pub fn explain(resolved: &ResolvedPolicy, query: &Query) -> Result<Explanation, String> {
    let (from, from_endpoint) = peer_info(resolved, &query.from)?;
    let (to, to_endpoint) = peer_info(resolved, &query.to)?;
    let mode = resolved.enforcement;
    let egress = decide(from_endpoint, Direction::Egress, &from, &to, query, mode);
    let ingress = decide(to_endpoint, Direction::Ingress, &to, &from, query, mode);
    let l7 = l7_explanation(resolved, query, [&egress, &ingress]);
    let l4_allowed = egress.verdict == Verdict::Allowed && ingress.verdict == Verdict::Allowed;
    let l7_allowed = l7.as_ref().is_none_or(|l7| l7.verdict != L7Verdict::Denied);
    Ok(Explanation {
        verdict: Verdict::from_allowed(l4_allowed && l7_allowed),
        from,
        to,
        port: query.port,
        protocol: query.protocol,
        egress,
        ingress,
        l7,
        policy_enforcement: mode,
    })
}

fn peer_info<'r>(
    resolved: &'r ResolvedPolicy,
    query: &PeerQuery,
) -> Result<(PeerInfo, Option<&'r super::ResolvedEndpoint>), String> {
    let labels =
        |id: NumericIdentity| resolved.identities.get(id).map(|i| i.labels.clone()).unwrap_or_default();
    let pod_info = |endpoint: &super::ResolvedEndpoint| PeerInfo {
        name: format!("{}/{}", endpoint.namespace, endpoint.name),
        kind: PeerKind::Pod,
        identity: endpoint.identity,
        labels: labels(endpoint.identity),
    };
    match query {
        PeerQuery::Pod { namespace, name } => {
            let endpoint = resolved
                .endpoint(namespace, name)
                .ok_or_else(|| format!("no pod {namespace}/{name}: add it to the workloads first"))?;
            Ok((pod_info(endpoint), Some(endpoint)))
        }
        PeerQuery::Entity(entity) => {
            let identity =
                entity.reserved_identity().ok_or_else(|| format!("`{entity}` is not a single peer"))?;
            let info = PeerInfo {
                name: entity.to_string(),
                kind: PeerKind::Entity,
                identity,
                labels: labels(identity),
            };
            Ok((info, None))
        }
        PeerQuery::Ip(ip) => match resolved.endpoints.iter().find(|e| e.ip == Some(*ip)) {
            Some(endpoint) => Ok((pod_info(endpoint), Some(endpoint))),
            None => {
                let identity = resolved.identity_of(*ip);
                let info =
                    PeerInfo { name: ip.to_string(), kind: PeerKind::Ip, identity, labels: labels(identity) };
                Ok((info, None))
            }
        },
    }
}

fn decide(
    local: Option<&super::ResolvedEndpoint>,
    direction: Direction,
    local_info: &PeerInfo,
    remote: &PeerInfo,
    query: &Query,
    mode: EnforcementMode,
) -> DirectionDecision {
    let dir = direction.as_str();
    let Some(local) = local else {
        return DirectionDecision {
            verdict: Verdict::Allowed,
            decided_by: DecidedBy::NotAnEndpoint,
            reason: format!("{} is not a local endpoint; no {dir} policy applies there", local_info.name),
        };
    };
    let policy = local.policy.direction(direction);
    let lookup = policy.lookup(remote.identity, query.protocol, query.port);
    let allowed = lookup.allowed();
    let (decided_by, reason) = match lookup {
        Lookup::Entry(entry) => {
            let reason = entry_reason(entry, local_info, direction);
            let rule = entry.derived_from[0].clone();
            (
                DecidedBy::Rule { rule, rules: entry.derived_from.clone(), action: entry.action.clone() },
                reason,
            )
        }
        Lookup::DefaultDeny => {
            let by = match mode {
                EnforcementMode::Always => "policy enforcement mode `always`".to_string(),
                _ => {
                    let policies: Vec<String> =
                        policy.enforced_by.iter().map(|p| format!("{:?} {p}", p.kind)).collect();
                    format!("switched on by {}", policies.join(", "))
                }
            };
            let reason = format!("no {dir} rule of {} matches; default deny is on ({by})", local_info.name);
            (DecidedBy::DefaultDeny { enforced_by: policy.enforced_by.clone() }, reason)
        }
        Lookup::NotEnforced => {
            let reason = match mode {
                EnforcementMode::Never => {
                    format!("policy enforcement mode `never`: {dir} of {} is not enforced", local_info.name)
                }
                _ => format!("no policy enforces {dir} on {}; allowed by default", local_info.name),
            };
            (DecidedBy::NoPolicy, reason)
        }
    };
    DirectionDecision { verdict: Verdict::from_allowed(allowed), decided_by, reason }
}

fn entry_reason(entry: &PolicyEntry, local: &PeerInfo, direction: Direction) -> String {
    let rules: Vec<String> = entry.derived_from.iter().map(ToString::to_string).collect();
    let rules = rules.join("; ");
    let at = format!("{} at {}", direction.as_str(), local.name);
    match &entry.action {
        Action::Allow => format!("allowed ({at}) by {rules}"),
        Action::Deny { reason: super::resolved::DenyReason::PolicyDeny } => {
            format!("denied ({at}) by {rules}")
        }
        Action::Deny { reason: super::resolved::DenyReason::L7ParserConflict } => {
            format!("denied ({at}): the L7 filters of these rules conflict: {rules}")
        }
        Action::Redirect { filter, rule_set } => {
            format!("allowed ({at}) by {rules}; redirected to L7 filter `{filter}` with rule set {rule_set}")
        }
    }
}

fn l7_explanation(
    resolved: &ResolvedPolicy,
    query: &Query,
    decisions: [&DirectionDecision; 2],
) -> Option<L7Explanation> {
    let mut filter = None;
    let mut l7_decisions = Vec::new();
    for (direction, decision) in [Direction::Egress, Direction::Ingress].into_iter().zip(decisions) {
        let DecidedBy::Rule { action: Action::Redirect { filter: name, rule_set }, .. } =
            &decision.decided_by
        else {
            continue;
        };
        let set = resolved.rule_sets.get(*rule_set)?;
        filter.get_or_insert_with(|| name.clone());
        let evaluation = match (&query.http, &set.typed) {
            (Some(http), L7Rules::Http(rules)) => RuleSet::compile(rules).ok().map(|rules| {
                let request = Request {
                    method: &http.method,
                    path: &http.path,
                    host: http.host.as_deref(),
                    headers: &[],
                };
                rules.evaluate(&request)
            }),
            _ => None,
        };
        l7_decisions.push(L7Decision {
            direction,
            rule_set: *rule_set,
            rules: set.rules.clone(),
            verdict: evaluation.as_ref().map(|e| Verdict::from_allowed(e.allowed)),
            matched_rule: evaluation.and_then(|e| e.matched_rule),
        });
    }
    let filter = filter?;
    let verdict = if l7_decisions.iter().any(|d| d.verdict == Some(Verdict::Denied)) {
        L7Verdict::Denied
    } else if l7_decisions.iter().any(|d| d.verdict.is_none()) {
        L7Verdict::NotEvaluated
    } else {
        L7Verdict::Allowed
    };
    Some(L7Explanation { filter, request: query.http.clone(), verdict, decisions: l7_decisions })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Allowed => "ALLOWED",
            Verdict::Denied => "DENIED",
        };
        writeln!(
            f,
            "{} (identity {}) -> {} (identity {}) port {}/{}: {verdict}",
            self.from.name, self.from.identity, self.to.name, self.to.identity, self.port, self.protocol
        )?;
        writeln!(f, "  egress:  {}", self.egress.reason)?;
        writeln!(f, "  ingress: {}", self.ingress.reason)?;
        if let Some(l7) = &self.l7 {
            let request = match &l7.request {
                Some(r) => format!(
                    "{} {}{}",
                    r.method,
                    r.path,
                    r.host.as_ref().map(|h| format!(" (host {h})")).unwrap_or_default()
                ),
                None => "no request given (use --http-method/--http-path)".to_string(),
            };
            let verdict = match l7.verdict {
                L7Verdict::Allowed => "allowed",
                L7Verdict::Denied => "denied",
                L7Verdict::NotEvaluated => "not evaluated",
            };
            writeln!(f, "  l7 {}: {request}: {verdict}", l7.filter)?;
            for decision in &l7.decisions {
                let outcome = match (decision.verdict, decision.matched_rule) {
                    (Some(Verdict::Allowed), Some(rule)) => format!("allowed by rule {rule}"),
                    (Some(Verdict::Allowed), None) => "allowed".to_string(),
                    (Some(Verdict::Denied), _) => "denied: no rule matches".to_string(),
                    (None, _) => "not evaluated".to_string(),
                };
                writeln!(
                    f,
                    "    {} rule set {} {}: {outcome}",
                    decision.direction.as_str(),
                    decision.rule_set,
                    decision.rules
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
