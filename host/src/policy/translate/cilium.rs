//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.

use std::sync::Arc;

use super::{Ctx, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX};
use crate::diagnostic::{Diagnostic, Location};
use crate::identity::Entity;
use crate::labels::{LabelKey, Source};
use crate::manifest::cilium::{self, CidrRule, CiliumPolicy, EgressRule, IngressRule};
use crate::manifest::meta::LabelSelector;
use crate::policy::resolved::{PortRange, Protocol};
use crate::policy::rule::{
    Peer, PolicyKind, PolicyRef, PolicySpec, Port, PortProtocol, PortRule, Rule, RuleRef, Section,
};
use crate::selector::{Operator, Requirement, Selector};

/// Translates a CNP (`clusterwide == false`) or CCNP. Returns no specs when
/// the object has errors.
pub(crate) fn translate_cilium(
    policy: &CiliumPolicy,
    clusterwide: bool,
    location: &Location,
) -> (Vec<PolicySpec>, Vec<Diagnostic>) {
    let mut ctx = Ctx::new(location);
    let namespace = match (clusterwide, &policy.metadata.namespace) {
        (true, _) => None,
        (false, Some(ns)) => Some(ns.clone()),
        (false, None) => Some("default".to_string()),
    };
    let kind = if clusterwide {
        PolicyKind::CiliumClusterwideNetworkPolicy
    } else {
        PolicyKind::CiliumNetworkPolicy
    };
    let policy_ref =
        Arc::new(PolicyRef { kind, namespace: namespace.clone(), name: policy.metadata.name.clone() });
    if policy.metadata.name.is_empty() {
        ctx.error("metadata.name", "a policy needs a name");
    }
    let specs: Vec<(Option<usize>, &cilium::Rule)> = policy
        .spec
        .iter()
        .map(|spec| (None, spec))
        .chain(policy.specs.iter().enumerate().map(|(i, spec)| (Some(i), spec)))
        .collect();
    if specs.is_empty() {
        ctx.error("spec", "the policy has neither `spec` nor `specs`");
    }
    let mut translated = Vec::new();
    for (index, spec) in specs {
        let field = index.map_or_else(|| "spec".to_string(), |i| format!("specs[{i}]"));
        let mut translator = SpecTranslator {
            ctx: &mut ctx,
            namespace: namespace.as_deref(),
            policy: &policy_ref,
            spec_index: index,
            field,
            subject_matches_init: false,
        };
        if let Some(spec) = translator.spec(spec) {
            translated.push(spec);
        }
    }
    if ctx.failed() {
        translated.clear();
    }
    (translated, ctx.diagnostics)
}

struct SpecTranslator<'c, 'l> {
    ctx: &'c mut Ctx<'l>,
    /// `None` for a clusterwide policy.
    namespace: Option<&'c str>,
    policy: &'c Arc<PolicyRef>,
    spec_index: Option<usize>,
    field: String,
    subject_matches_init: bool,
}

/// The peer fields of an ingress or egress rule, under either spelling.
struct PeerFields<'a> {
    direction: &'static str,
    endpoints: Option<&'a [LabelSelector]>,
    requires: Option<&'a [LabelSelector]>,
    cidr: Option<&'a [String]>,
    cidr_set: Option<&'a [CidrRule]>,
    entities: Option<&'a [String]>,
    /// Peer fields porin does not enforce yet: (field name, present).
    unsupported: Vec<(&'static str, bool)>,
    to_ports: Option<&'a [cilium::PortRule]>,
    icmps: bool,
    authentication: bool,
}

impl<'a> From<&'a IngressRule> for PeerFields<'a> {
    fn from(rule: &'a IngressRule) -> Self {
        PeerFields {
            direction: "from",
            endpoints: rule.from_endpoints.as_deref(),
            requires: rule.from_requires.as_deref(),
            cidr: rule.from_cidr.as_deref(),
            cidr_set: rule.from_cidr_set.as_deref(),
            entities: rule.from_entities.as_deref(),
            unsupported: vec![
                ("fromGroups", rule.from_groups.is_some()),
                ("fromNodes", rule.from_nodes.is_some()),
            ],
            to_ports: rule.to_ports.as_deref(),
            icmps: rule.icmps.is_some(),
            authentication: rule.authentication.is_some(),
        }
    }
}

impl<'a> From<&'a EgressRule> for PeerFields<'a> {
    fn from(rule: &'a EgressRule) -> Self {
        PeerFields {
            direction: "to",
            endpoints: rule.to_endpoints.as_deref(),
            requires: rule.to_requires.as_deref(),
            cidr: rule.to_cidr.as_deref(),
            cidr_set: rule.to_cidr_set.as_deref(),
            entities: rule.to_entities.as_deref(),
            unsupported: vec![
                ("toServices", rule.to_services.is_some()),
                ("toFQDNs", rule.to_fqdns.is_some()),
                ("toGroups", rule.to_groups.is_some()),
                ("toNodes", rule.to_nodes.is_some()),
            ],
            to_ports: rule.to_ports.as_deref(),
            icmps: rule.icmps.is_some(),
            authentication: rule.authentication.is_some(),
        }
    }
}

fn namespace_key(source: Source) -> LabelKey {
    LabelKey::new(source, NAMESPACE_LABEL)
}

impl SpecTranslator<'_, '_> {
    fn spec(&mut self, spec: &cilium::Rule) -> Option<PolicySpec> {
        let subject = match (&spec.endpoint_selector, &spec.node_selector) {
            (Some(_), Some(_)) => {
                self.ctx.error(&self.field, "endpointSelector and nodeSelector are mutually exclusive");
                return None;
            }
            (None, None) => {
                self.ctx.error(&self.field, "the spec needs an endpointSelector");
                return None;
            }
            (None, Some(_)) if self.namespace.is_some() => {
                let field = format!("{}.nodeSelector", self.field);
                self.ctx.error(&field, "nodeSelector is only valid in a CiliumClusterwideNetworkPolicy");
                return None;
            }
            (None, Some(_)) => {
                let field = format!("{}.nodeSelector", self.field);
                self.ctx.warning(
                    &field,
                    "host policies (nodeSelector) are not supported yet; this spec has no effect",
                );
                return None;
            }
            (Some(selector), None) => self.subject(selector),
        };
        self.subject_matches_init = subject.has_key(&Source::Reserved, "init");
        let defaults = spec.enable_default_deny.unwrap_or_default();
        let ingress_section = !spec.ingress.is_empty() || !spec.ingress_deny.is_empty();
        let egress_section = !spec.egress.is_empty() || !spec.egress_deny.is_empty();
        let mut rules = Vec::new();
        for (section, list) in [(Section::Ingress, &spec.ingress), (Section::IngressDeny, &spec.ingress_deny)]
        {
            for (index, rule) in list.iter().enumerate() {
                rules.extend(self.rule(section, index, PeerFields::from(rule)));
            }
        }
        for (section, list) in [(Section::Egress, &spec.egress), (Section::EgressDeny, &spec.egress_deny)] {
            for (index, rule) in list.iter().enumerate() {
                rules.extend(self.rule(section, index, PeerFields::from(rule)));
            }
        }
        Some(PolicySpec {
            policy: self.policy.clone(),
            subject,
            ingress_default_deny: ingress_section && defaults.ingress.unwrap_or(true),
            egress_default_deny: egress_section && defaults.egress.unwrap_or(true),
            rules,
        })
    }

    /// The endpoint selector; a CNP only ever selects pods in its namespace.
    fn subject(&mut self, selector: &LabelSelector) -> Selector {
        let field = format!("{}.endpointSelector", self.field);
        let subject = self.ctx.selector(&field, selector, Source::Any, "");
        let Some(namespace) = self.namespace else { return subject };
        let own = Requirement::equals(namespace_key(Source::K8s), namespace);
        let foreign = subject.requirements().iter().any(|r| {
            r.key.key == NAMESPACE_LABEL
                && matches!(r.key.source, Source::K8s | Source::Any)
                && r.op != Operator::In(vec![namespace.to_string()])
        });
        if foreign {
            let message = format!(
                "a CiliumNetworkPolicy only selects pods in its own namespace `{namespace}`; \
                 the namespace in endpointSelector is replaced"
            );
            self.ctx.warning(&field, message);
        }
        subject.without_key(NAMESPACE_LABEL).with(own)
    }

    /// Cilium's scoping of `fromEndpoints`/`toEndpoints` selectors: a CNP
    /// peer without a namespace requirement is limited to the policy's
    /// namespace; a CCNP peer to pods of any namespace.
    fn scope_peer(&self, selector: Selector) -> Selector {
        if selector.has_source(&Source::Reserved)
            || selector.has_key(&Source::K8s, NAMESPACE_LABEL)
            || selector.has_key(&Source::Any, NAMESPACE_LABEL)
        {
            return selector;
        }
        match self.namespace {
            None if self.subject_matches_init => selector,
            None => selector.with(Requirement { key: namespace_key(Source::K8s), op: Operator::Exists }),
            Some(_)
                if selector.has_key_prefix(&Source::K8s, NAMESPACE_LABELS_PREFIX)
                    || selector.has_key_prefix(&Source::Any, NAMESPACE_LABELS_PREFIX) =>
            {
                selector
            }
            Some(namespace) => selector.with(Requirement::equals(namespace_key(Source::K8s), namespace)),
        }
    }

    /// A peer field porin does not enforce yet: allows nothing in an allow
    /// rule, and cannot be honoured in a deny rule.
    fn unsupported(&mut self, field: &str, what: &str, deny: bool) {
        if deny {
            self.ctx.error(
                field,
                format!("{what} is not supported in deny rules yet; porin cannot enforce this deny"),
            );
        } else {
            self.ctx.warning(field, format!("{what} is not supported yet; it allows nothing (fail closed)"));
        }
    }

    fn rule(&mut self, section: Section, index: usize, fields: PeerFields<'_>) -> Option<Rule> {
        let field = format!("{}.{}[{index}]", self.field, section.field());
        let deny = section.is_deny();
        let from = fields.direction;
        if fields.authentication {
            self.ctx.error(&format!("{field}.authentication"), "mutual authentication is not supported");
        }
        if fields.requires.is_some_and(|r| !r.is_empty()) {
            let message = "is deprecated in Cilium and not supported; express it in the peer selectors";
            self.ctx.error(&format!("{field}.{from}Requires"), message);
        }
        let mut peers = Vec::new();
        let mut has_peer_field = false;
        for (j, selector) in fields.endpoints.unwrap_or_default().iter().enumerate() {
            has_peer_field = true;
            let selector =
                self.ctx.selector(&format!("{field}.{from}Endpoints[{j}]"), selector, Source::Any, "");
            peers.push(Peer::Endpoints(self.scope_peer(selector)));
        }
        for (j, text) in fields.cidr.unwrap_or_default().iter().enumerate() {
            has_peer_field = true;
            if let Some(net) = self.ctx.cidr(&format!("{field}.{from}CIDR[{j}]"), text) {
                peers.push(Peer::Cidr { net, except: Vec::new() });
            }
        }
        for (j, cidr_rule) in fields.cidr_set.unwrap_or_default().iter().enumerate() {
            has_peer_field = true;
            let set_field = format!("{field}.{from}CIDRSet[{j}]");
            if cidr_rule.cidr_group_ref.is_some() || cidr_rule.cidr_group_selector.is_some() {
                self.unsupported(&set_field, "CiliumCIDRGroup references", deny);
                continue;
            }
            let Some(cidr) = &cidr_rule.cidr else {
                self.ctx.error(&set_field, "a CIDR rule needs `cidr`");
                continue;
            };
            if let Some((net, except)) = self.ctx.cidr_with_except(&set_field, cidr, &cidr_rule.except) {
                peers.push(Peer::Cidr { net, except });
            }
        }
        for (j, name) in fields.entities.unwrap_or_default().iter().enumerate() {
            has_peer_field = true;
            let entity_field = format!("{field}.{from}Entities[{j}]");
            match name.parse::<Entity>() {
                Ok(entity) => peers.push(Peer::Entity(entity)),
                Err(_) if name == "world-ipv4" || name == "world-ipv6" => {
                    self.unsupported(&entity_field, &format!("entity `{name}`"), deny);
                }
                Err(message) => self.ctx.error(&entity_field, message),
            }
        }
        for (name, present) in fields.unsupported {
            if present {
                has_peer_field = true;
                self.unsupported(&format!("{field}.{name}"), name, deny);
            }
        }
        let ports = self.port_rules(&field, fields.to_ports, deny)?;
        if fields.icmps {
            self.unsupported(&format!("{field}.icmps"), "ICMP rules", deny);
        }
        if !has_peer_field && ports.is_some() {
            peers.push(Peer::All);
        }
        // An ICMP-only allow rule must not turn into an every-port rule.
        if fields.icmps && ports.is_none() {
            peers.clear();
        }
        let origin = RuleRef { policy: self.policy.clone(), spec: self.spec_index, section, index };
        Some(Rule { origin, peers, ports })
    }

    /// `toPorts`: `None` when absent or empty (every port).
    fn port_rules(
        &mut self,
        field: &str,
        to_ports: Option<&[cilium::PortRule]>,
        deny: bool,
    ) -> Option<Option<Vec<PortRule>>> {
        let Some(to_ports) = to_ports.filter(|p| !p.is_empty()) else { return Some(None) };
        let mut rules = Vec::new();
        let mut failed = false;
        for (j, port_rule) in to_ports.iter().enumerate() {
            let field = format!("{field}.toPorts[{j}]");
            for (name, present) in [
                ("terminatingTLS", port_rule.terminating_tls.is_some()),
                ("originatingTLS", port_rule.originating_tls.is_some()),
                ("serverNames", port_rule.server_names.is_some()),
                ("listener", port_rule.listener.is_some()),
            ] {
                if present {
                    self.ctx.error(&format!("{field}.{name}"), format!("{name} is not supported yet"));
                    failed = true;
                }
            }
            let mut ports = Vec::new();
            for (k, port) in port_rule.ports.iter().enumerate() {
                let port_field = format!("{field}.ports[{k}]");
                let Some(protocol) = self.ctx.protocol(&port_field, port.protocol.as_deref(), Protocol::Any)
                else {
                    failed = true;
                    continue;
                };
                match self.ctx.port(&port_field, port.port.as_ref(), port.end_port, protocol) {
                    Some(port) => ports.push(port),
                    None => failed = true,
                }
            }
            let l7 = match &port_rule.rules {
                Some(_) if deny => {
                    self.ctx.error(&format!("{field}.rules"), "deny rules cannot carry L7 rules");
                    failed = true;
                    None
                }
                Some(l7) => self.ctx.l7_rules(&format!("{field}.rules"), l7, &ports).unwrap_or_else(|()| {
                    failed = true;
                    None
                }),
                None => None,
            };
            if port_rule.ports.is_empty() && l7.is_none() {
                ports.push(PortProtocol { port: Port::Range(PortRange::ALL), protocol: Protocol::Any });
            }
            rules.push(PortRule { ports, l7 });
        }
        (!failed).then_some(Some(rules))
    }
}
