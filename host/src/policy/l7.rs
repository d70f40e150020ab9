//! L7 rule sets: the rules a filter enforces for one redirected
//! (endpoint, direction, port, peer).
//!
//! Rules from every policy that allows the same peer on the same port are
//! merged (any matching rule allows); a peer allowed there at L3/L4 only gets
//! the filter's allow-all rule, so its traffic is still parsed and recorded.
//! Identical rule sets share one id.

use std::collections::{BTreeMap, HashMap};

use porin_filter_http::HttpRule;
use porin_sdk::RuleSetId;
use serde::Serialize;
use serde_json::{Value, json};

use crate::manifest::cilium::{DnsRule, KafkaRule};

/// The rules of one L7 protocol, as Cilium writes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum L7Rules {
    Http(Vec<HttpRule>),
    Kafka(Vec<KafkaRule>),
    Dns(Vec<DnsRule>),
    /// `l7proto` + `l7`: a filter registered under `proto`, with key/value rules.
    Generic {
        proto: String,
        rules: Vec<BTreeMap<String, String>>,
    },
}

impl L7Rules {
    /// The name of the filter that enforces these rules.
    pub fn filter(&self) -> &str {
        match self {
            L7Rules::Http(_) => "http",
            L7Rules::Kafka(_) => "kafka",
            L7Rules::Dns(_) => "dns",
            L7Rules::Generic { proto, .. } => proto,
        }
    }

    /// The rule list that allows everything for the same filter.
    pub fn allow_all(&self) -> L7Rules {
        match self {
            L7Rules::Http(_) => L7Rules::Http(vec![HttpRule::default()]),
            L7Rules::Kafka(_) => L7Rules::Kafka(vec![KafkaRule::default()]),
            L7Rules::Dns(_) => {
                L7Rules::Dns(vec![DnsRule { match_name: None, match_pattern: Some("*".to_string()) }])
            }
            L7Rules::Generic { proto, .. } => {
                L7Rules::Generic { proto: proto.clone(), rules: vec![BTreeMap::new()] }
            }
        }
    }

    pub fn is_allow_all(&self) -> bool {
        match self {
            L7Rules::Http(rules) => rules.iter().any(|r| *r == HttpRule::default()),
            L7Rules::Kafka(rules) => rules.iter().any(|r| *r == KafkaRule::default()),
            L7Rules::Dns(rules) => rules.iter().any(|r| r.match_pattern.as_deref() == Some("*")),
            L7Rules::Generic { rules, .. } => rules.iter().any(BTreeMap::is_empty),
        }
    }

    /// Adds `other`'s rules (same filter) to these, keeping the first
    /// occurrence of duplicates; an allow-all on either side wins.
    pub fn merge(&mut self, other: &L7Rules) {
        if self.is_allow_all() {
            return;
        }
        if other.is_allow_all() {
            *self = other.allow_all();
            return;
        }
        fn extend<T: Clone + PartialEq>(into: &mut Vec<T>, from: &[T]) {
            for rule in from {
                if !into.contains(rule) {
                    into.push(rule.clone());
                }
            }
        }
        match (self, other) {
            (L7Rules::Http(a), L7Rules::Http(b)) => extend(a, b),
            (L7Rules::Kafka(a), L7Rules::Kafka(b)) => extend(a, b),
            (L7Rules::Dns(a), L7Rules::Dns(b)) => extend(a, b),
            (L7Rules::Generic { rules: a, .. }, L7Rules::Generic { rules: b, .. }) => extend(a, b),
            (this, other) => unreachable!("merging {} rules into {} rules", other.filter(), this.filter()),
        }
    }

    /// The rule set as handed to the filter: Cilium's `rules` object in JSON.
    pub fn to_json(&self) -> Value {
        match self {
            L7Rules::Http(rules) => json!({ "http": rules }),
            L7Rules::Kafka(rules) => json!({ "kafka": rules }),
            L7Rules::Dns(rules) => json!({ "dns": rules }),
            L7Rules::Generic { proto, rules } => json!({ "l7proto": proto, "l7": rules }),
        }
    }
}

/// One interned rule set.
#[derive(Debug, Clone, Serialize)]
pub struct L7RuleSet {
    pub id: RuleSetId,
    pub filter: String,
    pub rules: Value,
    #[serde(skip)]
    pub typed: L7Rules,
}

/// Interns rule sets so identical ones share an id; ids count from 1 in
/// order of first use, which is deterministic for the same policy input.
#[derive(Debug, Clone, Default)]
pub struct RuleSets {
    by_rules: HashMap<L7Rules, RuleSetId>,
    sets: Vec<L7RuleSet>,
}

impl RuleSets {
    pub fn intern(&mut self, rules: L7Rules) -> RuleSetId {
        if let Some(id) = self.by_rules.get(&rules) {
            return *id;
        }
        let id = RuleSetId(self.sets.len() as u32 + 1);
        self.sets.push(L7RuleSet {
            id,
            filter: rules.filter().to_string(),
            rules: rules.to_json(),
            typed: rules.clone(),
        });
        self.by_rules.insert(rules, id);
        id
    }

    pub fn get(&self, id: RuleSetId) -> Option<&L7RuleSet> {
        self.sets.get((id.0 as usize).checked_sub(1)?)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, L7RuleSet> {
        self.sets.iter()
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}
