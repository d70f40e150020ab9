//! Cilium HTTP rule semantics.
//!
//! A rule set is a list of `PortRuleHTTP` objects. A request is allowed when
//! at least one rule matches; an empty list allows everything. Within a rule
//! every given field must match: `method`, `path` and `host` are regular
//! expressions matched against the whole value (anchored at both ends, as
//! Envoy's `safe_regex` does for Cilium), `headers` lists `Name` (present) or
//! `Name: value` (present with exactly that value), and `headerMatches` lists
//! name/value pairs whose `mismatch` action, when set, turns a mismatch into
//! an action on the request instead of a failed match.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One Cilium `PortRuleHTTP`, as written in policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_matches: Vec<HeaderMatch>,
}

/// One entry of `headerMatches`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<MismatchAction>,
    /// Values taken from a Kubernetes Secret; parsed so that policies carrying
    /// it are rejected with a clear error rather than a schema error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
}

/// A reference to a Kubernetes Secret (`headerMatches[].secret`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub namespace: String,
    pub name: String,
}

/// What to do when a `headerMatches` entry does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MismatchAction {
    /// Allow the request and log the mismatch.
    Log,
    /// Allow the request and add the header with the expected value.
    Add,
    /// Allow the request and delete the header.
    Delete,
    /// Allow the request and replace the header's value with the expected one.
    Replace,
}

/// A header change or log entry that an allowed request carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderAction {
    pub action: MismatchAction,
    pub name: String,
    pub value: String,
}

/// An invalid rule, with the field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Index of the rule in the list.
    pub rule: usize,
    /// Field path inside the rule, e.g. `path` or `headerMatches[1].name`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http[{}].{}: {}", self.rule, self.field, self.message)
    }
}

impl std::error::Error for RuleError {}

/// The parts of a request that rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent: path and query.
    pub path: &'a str,
    /// The `Host` header (or `:authority`), if any.
    pub host: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
}

impl Request<'_> {
    fn header_values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }
}

/// The outcome of evaluating a request against a rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// Index of the first matching rule.
    pub matched_rule: Option<usize>,
    /// Header actions of the matching rule (`headerMatches` with `mismatch`).
    pub header_actions: Vec<HeaderAction>,
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    method: Option<Pattern>,
    path: Option<Pattern>,
    host: Option<Pattern>,
    headers: Vec<(String, Option<String>)>,
    header_matches: Vec<HeaderMatch>,
}

impl RuleSet {
    /// Compiles rules; every regex is checked and anchored here, once.
    pub fn compile(rules: &[HttpRule]) -> Result<Self, RuleError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| CompiledRule::new(index, rule))
            .collect::<Result<_, _>>()?;
        Ok(RuleSet { rules })
    }

    /// Evaluates a request: allowed when any rule matches, or when there are no rules.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        if self.rules.is_empty() {
            return Decision { allowed: true, matched_rule: None, header_actions: Vec::new() };
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if let Some(header_actions) = rule.matches(request) {
                return Decision { allowed: true, matched_rule: Some(index), header_actions };
            }
        }
        Decision { allowed: false, matched_rule: None, header_actions: Vec::new() }
    }
}

/// A compiled `method`, `path` or `host` pattern.
#[derive(Debug, Clone)]
enum Pattern {
    /// A pattern without regex metacharacters (`GET`, `/healthz`): its
    /// anchored regex matches exactly this string, so compare directly.
    Literal(String),
    Regex(Regex),
}

impl Pattern {
    fn is_match(&self, value: &str) -> bool {
        match self {
            Pattern::Literal(literal) => literal == value,
            Pattern::Regex(regex) => regex.is_match(value),
        }
    }
}

fn anchored(rule: usize, field: &str, pattern: &Option<String>) -> Result<Option<Pattern>, RuleError> {
    pattern
        .as_deref()
        .map(|pattern| {
            if regex::escape(pattern) == pattern {
                return Ok(Pattern::Literal(pattern.to_string()));
            }
            Regex::new(&format!("^(?:{pattern})$")).map(Pattern::Regex).map_err(|err| RuleError {
                rule,
                field: field.to_string(),
                message: format!("invalid regular expression {pattern:?}: {err}"),
            })
        })
        .transpose()
}

impl CompiledRule {
    fn new(index: usize, rule: &HttpRule) -> Result<Self, RuleError> {
        let error = |field: String, message: String| RuleError { rule: index, field, message };
        let mut headers = Vec::with_capacity(rule.headers.len());
        for (i, header) in rule.headers.iter().enumerate() {
            let (name, value) = match header.split_once(':') {
                Some((name, value)) => (name.trim(), Some(value.trim().to_string())),
                None => (header.trim(), None),
            };
            if name.is_empty() {
                return Err(error(format!("headers[{i}]"), "empty header name".into()));
            }
            headers.push((name.to_string(), value));
        }
        for (i, header_match) in rule.header_matches.iter().enumerate() {
            if header_match.name.trim().is_empty() {
                return Err(error(format!("headerMatches[{i}].name"), "empty header name".into()));
            }
            if header_match.secret.is_some() {
                return Err(error(
                    format!("headerMatches[{i}].secret"),
                    "header values from Secrets are not supported yet; use `value`".into(),
                ));
            }
        }
        Ok(CompiledRule {
            method: anchored(index, "method", &rule.method)?,
            path: anchored(index, "path", &rule.path)?,
            host: anchored(index, "host", &rule.host)?,
            headers,
            header_matches: rule.header_matches.clone(),
        })
    }

    /// Returns the header actions when the rule matches, `None` otherwise.
    fn matches(&self, request: &Request<'_>) -> Option<Vec<HeaderAction>> {
        let regex_ok = |pattern: &Option<Pattern>, value: Option<&str>| match pattern {
            None => true,
            Some(pattern) => value.is_some_and(|value| pattern.is_match(value)),
        };
        if !regex_ok(&self.method, Some(request.method))
            || !regex_ok(&self.path, Some(request.path))
            || !regex_ok(&self.host, request.host)
        {
            return None;
        }
        let headers_ok = self.headers.iter().all(|(name, expected)| {
            let mut values = request.header_values(name);
            match expected {
                None => values.next().is_some(),
                Some(expected) => values.any(|value| value == expected),
            }
        });
        if !headers_ok {
            return None;
        }
        let mut actions = Vec::new();
        for header_match in &self.header_matches {
            let mut values = request.header_values(&header_match.name);
            let matched = if header_match.value.is_empty() {
                values.next().is_some()
            } else {
                values.any(|value| value == header_match.value)
            };
            if matched {
                continue;
            }
            let action = header_match.mismatch?;
            actions.push(HeaderAction {
                action,
                name: header_match.name.clone(),
                value: header_match.value.clone(),
            });
        }
        Some(actions)
    }
}

#[cfg(test)]
mod tests;
