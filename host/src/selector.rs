//! Label selectors over identity labels (Kubernetes `LabelSelector`
//! semantics with Cilium's label sources).

use std::fmt;

use crate::labels::{LabelKey, LabelSet, Source};

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    pub key: LabelKey,
    pub op: Operator,
}

/// A requirement's operator. `values` are sorted and deduplicated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

impl Requirement {
    pub fn equals(key: LabelKey, value: impl Into<String>) -> Requirement {
        Requirement { key, op: Operator::In(vec![value.into()]) }
    }

    fn matches(&self, labels: &LabelSet) -> bool {
        let mut values = labels.values(&self.key);
        match &self.op {
            Operator::In(wanted) => values.any(|v| wanted.iter().any(|w| w == v)),
            Operator::NotIn(unwanted) => values.all(|v| unwanted.iter().all(|u| u != v)),
            Operator::Exists => values.next().is_some(),
            Operator::DoesNotExist => values.next().is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Operator::In(values) if values.len() == 1 => write!(f, "{}={}", self.key, values[0]),
            Operator::In(values) => write!(f, "{} in ({})", self.key, values.join(",")),
            Operator::NotIn(values) => write!(f, "{} notin ({})", self.key, values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A conjunction of requirements; the empty selector matches every label set.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn new(mut requirements: Vec<Requirement>) -> Selector {
        for requirement in &mut requirements {
            if let Operator::In(values) | Operator::NotIn(values) = &mut requirement.op {
                values.sort();
                values.dedup();
            }
        }
        requirements.sort();
        requirements.dedup();
        Selector { requirements }
    }

    pub fn with(mut self, requirement: Requirement) -> Selector {
        self.requirements.push(requirement);
        Selector::new(self.requirements)
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Drops the requirements on `key` written with source `k8s` or `any`.
    pub fn without_key(mut self, key: &str) -> Selector {
        self.requirements
            .retain(|r| !(r.key.key == key && matches!(r.key.source, Source::K8s | Source::Any)));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when some requirement is on `key` (a selector key of source `any`
    /// or the same source).
    pub fn has_key(&self, source: &Source, key: &str) -> bool {
        self.requirements.iter().any(|r| r.key.key == key && r.key.source == *source)
    }

    pub fn has_key_prefix(&self, source: &Source, prefix: &str) -> bool {
        self.requirements.iter().any(|r| r.key.source == *source && r.key.key.starts_with(prefix))
    }

    pub fn has_source(&self, source: &Source) -> bool {
        self.requirements.iter().any(|r| r.key.source == *source)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;

    fn key(text: &str) -> LabelKey {
        LabelKey::parse(text, Source::Any)
    }

    fn labels() -> LabelSet {
        LabelSet::new(vec![Label::k8s("app", "api"), Label::k8s("io.kubernetes.pod.namespace", "backend")])
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (Requirement::equals(key("app"), "api"), true),
            (Requirement::equals(key("k8s:app"), "api"), true),
            (Requirement::equals(key("reserved:app"), "api"), false),
            (Requirement { key: key("app"), op: Operator::In(values(&["web", "api"])) }, true),
            (Requirement { key: key("app"), op: Operator::NotIn(values(&["api"])) }, false),
            // NotIn matches when the label is missing.
            (Requirement { key: key("tier"), op: Operator::NotIn(values(&["db"])) }, true),
            (Requirement { key: key("tier"), op: Operator::Exists }, false),
            (Requirement { key: key("tier"), op: Operator::DoesNotExist }, true),
            (Requirement { key: key("k8s:app"), op: Operator::Exists }, true),
        ];
        for (requirement, expected) in cases {
            let text = requirement.to_string();
            assert_eq!(Selector::new(vec![requirement]).matches(&labels()), expected, "{text}");
        }
        assert!(Selector::default().matches(&labels()));
    }
}
