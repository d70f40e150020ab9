//! The rule language (Cilium's `PortRuleKafka`) and its matching.

use porin_sdk::{Rules, from_json};
use serde::Deserialize;

use crate::api;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    kafka: Vec<RuleJson>,
}

/// One rule as written. Empty strings mean "not set", as in Cilium.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleJson {
    #[serde(default)]
    role: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    api_version: String,
    #[serde(default, rename = "clientID")]
    client_id: String,
    #[serde(default)]
    topic: String,
}

/// One compiled rule; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The API keys the rule allows (from `role` or `apiKey`).
    pub keys: Option<Vec<i16>>,
    /// `apiVersion`: exact.
    pub version: Option<i16>,
    /// `clientID`: exact.
    pub client_id: Option<String>,
    /// `topic`: exact.
    pub topic: Option<String>,
}

/// Kafka's topic name limit and alphabet (Cilium validates the same).
const MAX_TOPIC_LEN: usize = 255;

fn valid_topic(topic: &str) -> bool {
    topic.len() <= MAX_TOPIC_LEN && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Rule {
    fn compile(json: RuleJson, index: usize) -> Result<Rule, String> {
        let fail = |what: String| Err(format!("kafka rule {index}: {what}"));
        if !json.role.is_empty() && !json.api_key.is_empty() {
            return fail(format!(
                "role {:?} and apiKey {:?} cannot be set together",
                json.role, json.api_key
            ));
        }
        let keys = if !json.role.is_empty() {
            match json.role.to_ascii_lowercase().as_str() {
                "produce" => Some(api::PRODUCE_ROLE.to_vec()),
                "consume" => Some(api::CONSUME_ROLE.to_vec()),
                _ => return fail(format!("unknown role {:?} (produce or consume)", json.role)),
            }
        } else if !json.api_key.is_empty() {
            match api::by_rule_name(&json.api_key) {
                Some(key) => Some(vec![key]),
                None => return fail(format!("unknown apiKey {:?}", json.api_key)),
            }
        } else {
            None
        };
        let version = if json.api_version.is_empty() {
            None
        } else {
            match json.api_version.parse::<i16>() {
                Ok(v) if v >= 0 => Some(v),
                _ => return fail(format!("apiVersion {:?} is not a version number", json.api_version)),
            }
        };
        if !json.topic.is_empty() && !valid_topic(&json.topic) {
            return fail(format!("invalid topic name {:?}", json.topic));
        }
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        Ok(Rule { keys, version, client_id: non_empty(json.client_id), topic: non_empty(json.topic) })
    }

    /// Everything but the topic.
    fn matches_request(&self, key: i16, version: i16, client_id: Option<&str>) -> bool {
        self.keys.as_ref().is_none_or(|keys| keys.contains(&key))
            && self.version.is_none_or(|v| v == version)
            && self.client_id.as_deref().is_none_or(|c| Some(c) == client_id)
    }

    fn matches_item(&self, item: &Item<'_>) -> bool {
        match (&self.topic, item) {
            (None, _) => true,
            (Some(topic), Item::Topic(name)) => topic == name,
            (Some(_), Item::Unnamed) => false,
        }
    }
}

/// Something a request touches, for the topic part of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A topic by name.
    Topic(&'a str),
    /// Something a topic constraint cannot vouch for: a topic id we cannot
    /// resolve, "all topics", a non-topic config resource, or the contents
    /// of a body we do not parse. Only rules without a topic allow it.
    Unnamed,
}

/// A compiled rule set. Matching follows Cilium: a request is allowed when
/// every item it touches is allowed by some rule whose other fields
/// (api key or role, version, client id) match; a request that touches
/// nothing (topic-free APIs, or an explicitly empty topic list) needs one
/// such rule, whatever its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRules {
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

impl KafkaRules {
    /// Decides a request.
    pub fn allows(&self, key: i16, version: i16, client_id: Option<&str>, items: &[Item<'_>]) -> bool {
        let mut candidates = self.rules.iter().filter(|r| r.matches_request(key, version, client_id));
        if items.is_empty() {
            return candidates.next().is_some();
        }
        let candidates: Vec<&Rule> = candidates.collect();
        items.iter().all(|item| candidates.iter().any(|r| r.matches_item(item)))
    }

    /// Whether any rule constrains topics (then topic-id versions must be
    /// avoided: see the ApiVersions clamp).
    pub fn constrains_topics(&self) -> bool {
        self.rules.iter().any(|r| r.topic.is_some())
    }
}

impl Rules for KafkaRules {
    fn parse(json: &str) -> Result<Self, String> {
        let policy: Policy = from_json(json)?;
        let rules = policy
            .kafka
            .into_iter()
            .enumerate()
            .map(|(i, r)| Rule::compile(r, i))
            .collect::<Result<_, _>>()?;
        Ok(KafkaRules { rules })
    }
}
