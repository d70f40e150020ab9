//! Cilium-style labels (`source:key=value`) and label sets.
//!
//! Workload labels carry source `k8s`; reserved identities carry `reserved`;
//! CIDR identities carry `cidr`. Selectors may use source `any`, which
//! matches a key from every source.

use std::fmt;

use serde::{Serialize, Serializer};

/// Where a label comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Matches every source (selectors only).
    Any,
    K8s,
    Reserved,
    Cidr,
    Other(String),
}

impl Source {
    pub fn parse(source: &str) -> Source {
        match source {
            "any" => Source::Any,
            "k8s" => Source::K8s,
            "reserved" => Source::Reserved,
            "cidr" => Source::Cidr,
            other => Source::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Source::Any => "any",
            Source::K8s => "k8s",
            Source::Reserved => "reserved",
            Source::Cidr => "cidr",
            Source::Other(other) => other,
        }
    }

    /// True when a selector key with this source applies to a label from `label`.
    pub fn covers(&self, label: &Source) -> bool {
        *self == Source::Any || self == label
    }
}

/// A label key with its source, as written in selectors: `k8s:app`, `app`
/// (source `any`), `reserved:host`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelKey {
    pub source: Source,
    pub key: String,
}

impl LabelKey {
    /// Parses `source:key`; a key without a source gets `default_source`.
    pub fn parse(text: &str, default_source: Source) -> LabelKey {
        match text.split_once(':') {
            Some((source, key)) => LabelKey { source: Source::parse(source), key: key.to_string() },
            None => LabelKey { source: default_source, key: text.to_string() },
        }
    }

    pub fn new(source: Source, key: impl Into<String>) -> LabelKey {
        LabelKey { source, key: key.into() }
    }
}

impl fmt::Display for LabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source.as_str(), self.key)
    }
}

/// One label of an identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub source: Source,
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn new(source: Source, key: impl Into<String>, value: impl Into<String>) -> Label {
        Label { source, key: key.into(), value: value.into() }
    }

    pub fn k8s(key: impl Into<String>, value: impl Into<String>) -> Label {
        Label::new(Source::K8s, key, value)
    }

    pub fn reserved(name: &str) -> Label {
        Label::new(Source::Reserved, name, "")
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source.as_str(), self.key)
        } else {
            write!(f, "{}:{}={}", self.source.as_str(), self.key, self.value)
        }
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A sorted, duplicate-free set of labels: the key of a security identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LabelSet(Vec<Label>);

impl LabelSet {
    pub fn new(mut labels: Vec<Label>) -> LabelSet {
        labels.sort();
        labels.dedup();
        LabelSet(labels)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Values of the labels that `key` applies to.
    pub fn values<'a>(&'a self, key: &'a LabelKey) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |l| l.key == key.key && key.source.covers(&l.source))
            .map(|l| l.value.as_str())
    }

    pub fn contains(&self, label: &Label) -> bool {
        self.0.binary_search(label).is_ok()
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{label}")?;
        }
        Ok(())
    }
}
