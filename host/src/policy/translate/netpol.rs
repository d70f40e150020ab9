//! Kubernetes NetworkPolicy, translated the way Cilium does it.

use std::sync::Arc;

use super::{Ctx, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX};
use crate::diagnostic::{Diagnostic, Location};
use crate::labels::{LabelKey, Source};
use crate::manifest::netpol::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use crate::policy::resolved::Protocol;
use crate::policy::rule::{Peer, PolicyKind, PolicyRef, PolicySpec, PortRule, Rule, RuleRef, Section};
use crate::selector::{Operator, Requirement, Selector};

/// Translates a NetworkPolicy. Returns no spec when the object has errors.
pub(crate) fn translate_network_policy(
    policy: &NetworkPolicy,
    location: &Location,
) -> (Vec<PolicySpec>, Vec<Diagnostic>) {
    let mut ctx = Ctx::new(location);
    let namespace = policy.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let policy_ref = Arc::new(PolicyRef {
        kind: PolicyKind::NetworkPolicy,
        namespace: Some(namespace.clone()),
        name: policy.metadata.name.clone(),
    });
    let spec = &policy.spec;
    let namespace_key = LabelKey::new(Source::K8s, NAMESPACE_LABEL);
    let subject = ctx
        .selector("spec.podSelector", &spec.pod_selector, Source::K8s, "")
        .with(Requirement::equals(namespace_key.clone(), namespace.clone()));

    // Without policyTypes, Ingress always applies and Egress when there are egress rules.
    let (mut ingress_on, mut egress_on) = (true, !spec.egress.is_empty());
    if let Some(types) = &spec.policy_types {
        ingress_on = false;
        egress_on = false;
        for (i, policy_type) in types.iter().enumerate() {
            match policy_type.as_str() {
                "Ingress" => ingress_on = true,
                "Egress" => egress_on = true,
                other => ctx.error(
                    &format!("spec.policyTypes[{i}]"),
                    format!("unknown policy type `{other}`; expected Ingress or Egress"),
                ),
            }
        }
    }

    let mut translator = NetpolTranslator { ctx: &mut ctx, namespace: &namespace, policy: &policy_ref };
    let mut rules = Vec::new();
    if ingress_on {
        for (index, rule) in spec.ingress.iter().enumerate() {
            rules.push(translator.rule(Section::Ingress, index, rule.from.as_deref(), &rule.ports));
        }
    }
    if egress_on {
        for (index, rule) in spec.egress.iter().enumerate() {
            rules.push(translator.rule(Section::Egress, index, rule.to.as_deref(), &rule.ports));
        }
    }
    if ctx.failed() {
        return (Vec::new(), ctx.diagnostics);
    }
    let spec = PolicySpec {
        policy: policy_ref,
        subject,
        ingress_default_deny: ingress_on,
        egress_default_deny: egress_on,
        rules,
    };
    (vec![spec], ctx.diagnostics)
}

struct NetpolTranslator<'c, 'l> {
    ctx: &'c mut Ctx<'l>,
    namespace: &'c str,
    policy: &'c Arc<PolicyRef>,
}

impl NetpolTranslator<'_, '_> {
    fn rule(
        &mut self,
        section: Section,
        index: usize,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: &[NetworkPolicyPort],
    ) -> Rule {
        let field = format!("spec.{}[{index}]", section.field());
        let peer_field = if section == Section::Ingress { "from" } else { "to" };
        let peers = match peers.filter(|p| !p.is_empty()) {
            // No peers: every source or destination, inside or outside the cluster.
            None => vec![Peer::All],
            Some(peers) => peers
                .iter()
                .enumerate()
                .filter_map(|(j, peer)| self.peer(&format!("{field}.{peer_field}[{j}]"), peer))
                .collect(),
        };
        let ports = (!ports.is_empty()).then(|| {
            let ports = ports
                .iter()
                .enumerate()
                .filter_map(|(j, port)| {
                    let port_field = format!("{field}.ports[{j}]");
                    let protocol = self.ctx.protocol(&port_field, port.protocol.as_deref(), Protocol::Tcp)?;
                    if protocol == Protocol::Any {
                        self.ctx.error(
                            &format!("{port_field}.protocol"),
                            "NetworkPolicy ports are TCP, UDP or SCTP",
                        );
                        return None;
                    }
                    self.ctx.port(&port_field, port.port.as_ref(), port.end_port, protocol)
                })
                .collect();
            vec![PortRule { ports, l7: None }]
        });
        let origin = RuleRef { policy: self.policy.clone(), spec: None, section, index };
        Rule { origin, peers, ports }
    }

    fn peer(&mut self, field: &str, peer: &NetworkPolicyPeer) -> Option<Peer> {
        let has_selector = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
        if let Some(block) = &peer.ip_block {
            if has_selector {
                self.ctx.error(field, "ipBlock cannot be combined with podSelector or namespaceSelector");
                return None;
            }
            let (net, except) =
                self.ctx.cidr_with_except(&format!("{field}.ipBlock"), &block.cidr, &block.except)?;
            return Some(Peer::Cidr { net, except });
        }
        let namespace_key = LabelKey::new(Source::K8s, NAMESPACE_LABEL);
        let pods = match &peer.pod_selector {
            Some(selector) => self.ctx.selector(&format!("{field}.podSelector"), selector, Source::K8s, ""),
            None => Selector::default(),
        };
        let selector = match &peer.namespace_selector {
            Some(namespaces) => {
                let field = format!("{field}.namespaceSelector");
                let namespaces = self.ctx.selector(&field, namespaces, Source::K8s, NAMESPACE_LABELS_PREFIX);
                // An empty namespace selector selects every namespace (pods only).
                let namespaces = if namespaces.is_empty() {
                    Selector::new(vec![Requirement { key: namespace_key, op: Operator::Exists }])
                } else {
                    namespaces
                };
                pods.requirements().iter().cloned().fold(namespaces, Selector::with)
            }
            None if peer.pod_selector.is_some() => {
                pods.with(Requirement::equals(namespace_key, self.namespace))
            }
            None => {
                self.ctx.error(field, "a peer needs podSelector, namespaceSelector or ipBlock");
                return None;
            }
        };
        Some(Peer::Endpoints(selector))
    }
}
