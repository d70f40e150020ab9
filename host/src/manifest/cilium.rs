//! `cilium.io/v2` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy,
//! field for field. Unknown fields are errors: a typo must not silently
//! weaken security. Fields porin does not enforce yet are still parsed so
//! that the policy engine can report them precisely.

use std::collections::BTreeMap;

use porin_filter_http::HttpRule;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::meta::{IntOrString, LabelSelector, ObjectMeta};

/// A CNP or CCNP object (the loader has already taken `apiVersion`, `kind`
/// and the controller-written `status` off the document).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumPolicy {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<Rule>,
    #[serde(default)]
    pub specs: Vec<Rule>,
}

/// `api.Rule`: one spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub endpoint_selector: Option<LabelSelector>,
    pub node_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    #[serde(default)]
    pub ingress_deny: Vec<IngressRule>,
    #[serde(default)]
    pub egress: Vec<EgressRule>,
    #[serde(default)]
    pub egress_deny: Vec<EgressRule>,
    pub enable_default_deny: Option<DefaultDeny>,
    #[serde(default)]
    pub labels: Vec<IgnoredAny>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub log: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultDeny {
    pub ingress: Option<bool>,
    pub egress: Option<bool>,
}

/// `IngressRule` and `IngressDenyRule` (a deny rule has no L7 `rules` and no
/// `authentication`; the policy engine rejects them there).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    pub from_endpoints: Option<Vec<LabelSelector>>,
    pub from_requires: Option<Vec<LabelSelector>>,
    #[serde(rename = "fromCIDR")]
    pub from_cidr: Option<Vec<String>>,
    #[serde(rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    pub from_entities: Option<Vec<String>>,
    pub from_groups: Option<Vec<IgnoredAny>>,
    pub from_nodes: Option<Vec<LabelSelector>>,
    pub to_ports: Option<Vec<PortRule>>,
    pub icmps: Option<Vec<IgnoredAny>>,
    pub authentication: Option<IgnoredAny>,
}

/// `EgressRule` and `EgressDenyRule`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    pub to_endpoints: Option<Vec<LabelSelector>>,
    pub to_requires: Option<Vec<LabelSelector>>,
    #[serde(rename = "toCIDR")]
    pub to_cidr: Option<Vec<String>>,
    #[serde(rename = "toCIDRSet")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    pub to_entities: Option<Vec<String>>,
    pub to_services: Option<Vec<IgnoredAny>>,
    #[serde(rename = "toFQDNs")]
    pub to_fqdns: Option<Vec<IgnoredAny>>,
    pub to_groups: Option<Vec<IgnoredAny>>,
    pub to_nodes: Option<Vec<LabelSelector>>,
    pub to_ports: Option<Vec<PortRule>>,
    pub icmps: Option<Vec<IgnoredAny>>,
    pub authentication: Option<IgnoredAny>,
}

/// `CIDRRule`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRule {
    pub cidr: Option<String>,
    #[serde(default)]
    pub except: Vec<String>,
    pub cidr_group_ref: Option<String>,
    pub cidr_group_selector: Option<LabelSelector>,
}

/// `PortRule` (and `PortDenyRule`, which has only `ports`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    #[serde(default)]
    pub ports: Vec<PortProtocol>,
    pub rules: Option<L7Rules>,
    #[serde(rename = "terminatingTLS")]
    pub terminating_tls: Option<IgnoredAny>,
    #[serde(rename = "originatingTLS")]
    pub originating_tls: Option<IgnoredAny>,
    pub server_names: Option<Vec<String>>,
    pub listener: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    pub port: Option<IntOrString>,
    pub end_port: Option<i64>,
    pub protocol: Option<String>,
}

/// `L7Rules`: exactly one member may be set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L7Rules {
    pub http: Option<Vec<HttpRule>>,
    pub kafka: Option<Vec<KafkaRule>>,
    pub dns: Option<Vec<DnsRule>>,
    pub l7proto: Option<String>,
    pub l7: Option<Vec<BTreeMap<String, String>>>,
}

/// `PortRuleKafka`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// `PortRuleDNS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}
