//! Policy rules after translation from CNP, CCNP and NetworkPolicy: one
//! shape for all three, with Cilium's namespace defaulting already applied.

use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::l7::L7Rules;
use super::resolved::{Direction, PortRange, Protocol};
use crate::identity::Entity;
use crate::selector::Selector;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PolicyKind {
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    NetworkPolicy,
}

/// A policy object, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyRef {
    pub kind: PolicyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The list a rule sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Section {
    Ingress,
    IngressDeny,
    Egress,
    EgressDeny,
}

impl Section {
    pub fn direction(self) -> Direction {
        match self {
            Section::Ingress | Section::IngressDeny => Direction::Ingress,
            Section::Egress | Section::EgressDeny => Direction::Egress,
        }
    }

    pub fn is_deny(self) -> bool {
        matches!(self, Section::IngressDeny | Section::EgressDeny)
    }

    pub fn field(self) -> &'static str {
        match self {
            Section::Ingress => "ingress",
            Section::IngressDeny => "ingressDeny",
            Section::Egress => "egress",
            Section::EgressDeny => "egressDeny",
        }
    }
}

/// One rule of one policy: `spec.egress[0]`, `specs[1].ingressDeny[2]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    pub policy: Arc<PolicyRef>,
    /// Index into `specs` when the rule comes from `specs` rather than `spec`.
    pub spec: Option<usize>,
    pub section: Section,
    pub index: usize,
}

/// Serialized flat, as users name a rule: `{"policy": "frontend/allow-web",
/// "kind": "CiliumNetworkPolicy", "direction": "egress", "section": "egress", "index": 0}`.
impl Serialize for RuleRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("policy", &self.policy.to_string())?;
        map.serialize_entry("kind", &self.policy.kind)?;
        map.serialize_entry("direction", &self.section.direction())?;
        map.serialize_entry("section", &self.section)?;
        if let Some(spec) = self.spec {
            map.serialize_entry("spec", &spec)?;
        }
        map.serialize_entry("index", &self.index)?;
        map.end()
    }
}

impl RuleRef {
    /// The rule's field path, e.g. `egress[0]` or `specs[1].egress[0]`.
    pub fn path(&self) -> String {
        match self.spec {
            Some(spec) => format!("specs[{spec}].{}[{}]", self.section.field(), self.index),
            None => format!("{}[{}]", self.section.field(), self.index),
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} {}", self.policy.kind, self.policy, self.path())
    }
}

/// A peer a rule talks about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Every peer (a rule with ports and no peer fields; NetworkPolicy with no `from`/`to`).
    All,
    Endpoints(Selector),
    Entity(Entity),
    Cidr {
        net: IpNet,
        except: Vec<IpNet>,
    },
}

/// A port as written: a range (a single port, `port`-`endPort`, or all) or a
/// container port name resolved per endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Port {
    Range(PortRange),
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortProtocol {
    pub port: Port,
    pub protocol: Protocol,
}

/// `toPorts[i]`: ports and, optionally, the L7 rules that apply on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub ports: Vec<PortProtocol>,
    pub l7: Option<L7Rules>,
}

/// One ingress/egress (allow or deny) rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub origin: RuleRef,
    /// The peers; empty means the rule selects no peer (it can still switch
    /// default deny on).
    pub peers: Vec<Peer>,
    /// `None`: every port and protocol (an L3-only rule).
    pub ports: Option<Vec<PortRule>>,
}

/// One spec of a policy: which endpoints it applies to and its rules.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub policy: Arc<PolicyRef>,
    pub subject: Selector,
    /// Whether the spec switches default deny on, per direction.
    pub ingress_default_deny: bool,
    pub egress_default_deny: bool,
    pub rules: Vec<Rule>,
}

impl PolicySpec {
    pub fn default_deny(&self, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.ingress_default_deny,
            Direction::Egress => self.egress_default_deny,
        }
    }
}
