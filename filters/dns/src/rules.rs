//! The rule language: Cilium's `matchName` and `matchPattern`, and the
//! answer a denied query gets. See the crate documentation for semantics.

use hickory_proto::rr::Name;
use porin_sdk::{Rules, from_json};
use serde::Deserialize;

/// The rules object as the host hands it over.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Policy {
    #[serde(default)]
    dns: Vec<RuleJson>,
    #[serde(default)]
    reject_response_code: Option<RejectCode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleJson {
    #[serde(default)]
    match_name: Option<String>,
    #[serde(default)]
    match_pattern: Option<String>,
}

/// The RCODE of the answer to a denied query (Cilium's
/// `--tofqdns-dns-reject-response-code`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum RejectCode {
    /// REFUSED (5), the default.
    #[default]
    #[serde(rename = "refused")]
    Refused,
    /// NXDOMAIN (3).
    #[serde(rename = "nameError")]
    NameError,
}

impl RejectCode {
    /// The RCODE number.
    pub fn rcode(self) -> u8 {
        match self {
            RejectCode::Refused => 5,
            RejectCode::NameError => 3,
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// Every name: a lone `*`.
    Any,
    /// Lowercase labels, root last omitted; a label matches exactly.
    Name(Vec<Vec<u8>>),
    /// Lowercase label globs; `*` matches `[-a-z0-9_]*` within one label.
    Pattern(Vec<Vec<u8>>),
}

/// A parsed DNS rule set: a query name is allowed if any rule matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRules {
    rules: Vec<Rule>,
    reject: RejectCode,
}

impl Rules for DnsRules {
    fn parse(json: &str) -> Result<Self, String> {
        let policy: Policy = from_json(json)?;
        let mut rules = Vec::with_capacity(policy.dns.len());
        for (i, rule) in policy.dns.iter().enumerate() {
            if rule.match_name.is_none() && rule.match_pattern.is_none() {
                return Err(format!("dns[{i}]: a DNS rule needs matchName or matchPattern"));
            }
            if let Some(name) = &rule.match_name {
                let labels = labels(name, false)
                    .ok_or_else(|| format!("dns[{i}].matchName: invalid DNS name `{name}`"))?;
                rules.push(Rule::Name(labels));
            }
            if let Some(pattern) = &rule.match_pattern {
                if pattern == "*" {
                    rules.push(Rule::Any);
                } else {
                    let labels = labels(pattern, true)
                        .ok_or_else(|| format!("dns[{i}].matchPattern: invalid DNS pattern `{pattern}`"))?;
                    rules.push(Rule::Pattern(labels));
                }
            }
        }
        Ok(DnsRules { rules, reject: policy.reject_response_code.unwrap_or_default() })
    }
}

impl DnsRules {
    /// True when some rule allows the name.
    pub fn allows(&self, name: &Name) -> bool {
        self.rules.iter().any(|rule| match rule {
            Rule::Any => true,
            Rule::Name(want) => eq_labels(want, name.iter(), |w, l| w.eq_ignore_ascii_case(l)),
            Rule::Pattern(want) => eq_labels(want, name.iter(), glob),
        })
    }

    /// The RCODE for denied queries.
    pub fn reject_code(&self) -> RejectCode {
        self.reject
    }
}

fn eq_labels<'a>(
    want: &[Vec<u8>],
    mut name: impl Iterator<Item = &'a [u8]>,
    eq: impl Fn(&[u8], &[u8]) -> bool,
) -> bool {
    want.iter().all(|w| name.next().is_some_and(|l| eq(w, l))) && name.next().is_none()
}

/// Splits a rule into lowercase labels (Cilium's validation:
/// `^([-a-zA-Z0-9_]+[.]?)+$`, `*` too for patterns), dropping the optional
/// trailing dot.
fn labels(text: &str, wildcard: bool) -> Option<Vec<Vec<u8>>> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let allowed = |b: u8| dns_char(b) || (wildcard && b == b'*');
    let labels: Vec<Vec<u8>> = text.split('.').map(|l| l.as_bytes().to_ascii_lowercase()).collect();
    let valid = labels.iter().all(|l| !l.is_empty() && l.iter().all(|b| allowed(*b)));
    valid.then_some(labels)
}

/// The characters Cilium's `*` stands for (`[-a-zA-Z0-9_]`).
fn dns_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Matches one label against a lowercase glob whose `*` matches any run of
/// DNS characters (possibly empty); other bytes match ignoring ASCII case.
/// Iterative with one backtrack point: linear in practice, no recursion.
fn glob(pattern: &[u8], label: &[u8]) -> bool {
    let (mut p, mut l) = (0, 0);
    // Where the last `*` was and how far its run reaches.
    let mut star: Option<(usize, usize)> = None;
    while l < label.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, l));
            p += 1;
        } else if p < pattern.len() && pattern[p] == label[l].to_ascii_lowercase() {
            p += 1;
            l += 1;
        } else if let Some((sp, sl)) = star
            && dns_char(label[sl])
        {
            // Let the last `*` swallow one more character and retry.
            star = Some((sp, sl + 1));
            p = sp + 1;
            l = sl + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}
