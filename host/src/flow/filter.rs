//! Which flows a reader wants: the filters of `GET /v1/flows`, `porin
//! observe` and the web UI, one parser for all three.
//!
//! Values of one filter are alternatives (any may match); different filters
//! must all match. `pod`, `namespace`, `label` and `port` match either side
//! of a flow; `from_pod` only the source, `to_pod` only the destination.

use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use super::{Flow, FlowEndpoint, L4, Timestamp, Verdict};

/// The query parameters (described in the README's API section).
const PARAMETERS: [&str; 15] = [
    "namespace",
    "pod",
    "from_pod",
    "to_pod",
    "label",
    "verdict",
    "protocol",
    "port",
    "http_method",
    "http_path",
    "http_status",
    "dns_query",
    "since",
    "last",
    "follow",
];

/// `[namespace/]pod-prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodPattern {
    namespace: Option<String>,
    prefix: String,
}

impl PodPattern {
    fn parse(text: &str) -> Result<PodPattern, String> {
        let (namespace, prefix) = match text.split_once('/') {
            Some((namespace, prefix)) => (Some(namespace.to_string()), prefix.to_string()),
            None => (None, text.to_string()),
        };
        if text.is_empty() || namespace.as_deref() == Some("") {
            return Err(format!("`{text}` is not [NAMESPACE/]POD"));
        }
        Ok(PodPattern { namespace, prefix })
    }

    fn matches(&self, endpoint: &FlowEndpoint) -> bool {
        let info = &endpoint.info;
        !info.pod_name.is_empty()
            && self.namespace.as_ref().is_none_or(|ns| *ns == info.namespace)
            && info.pod_name.starts_with(&self.prefix)
    }
}

/// `key`, `key=value`, optionally with a source (`k8s:app=web`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelPattern(String);

impl LabelPattern {
    fn matches(&self, endpoint: &FlowEndpoint) -> bool {
        let wanted = self.0.as_str();
        endpoint.info.labels.iter().any(|label| {
            // Labels are `source:key=value`; a pattern without a source
            // matches any source.
            let unsourced = label.split_once(':').map_or(label.as_str(), |(_, rest)| rest);
            [label.as_str(), unsourced].iter().any(|l| {
                *l == wanted
                    || (!wanted.contains('=') && l.split_once('=').is_some_and(|(key, _)| key == wanted))
            })
        })
    }
}

/// `200`, or `5+` for every 5xx.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusPattern(String);

impl StatusPattern {
    fn parse(text: &str) -> Result<StatusPattern, String> {
        let digits = text.strip_suffix('+').unwrap_or(text);
        let exact = !text.ends_with('+');
        if digits.is_empty()
            || digits.len() > 3
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (exact && digits.len() != 3)
        {
            return Err(format!("`{text}` is not an HTTP status (200) or prefix (5+)"));
        }
        Ok(StatusPattern(text.to_string()))
    }

    fn matches(&self, code: u64) -> bool {
        let code = code.to_string();
        match self.0.strip_suffix('+') {
            Some(prefix) => code.starts_with(prefix),
            None => code == self.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    namespaces: Vec<String>,
    pods: Vec<PodPattern>,
    from_pods: Vec<PodPattern>,
    to_pods: Vec<PodPattern>,
    labels: Vec<LabelPattern>,
    verdicts: Vec<Verdict>,
    protocols: Vec<String>,
    ports: Vec<u16>,
    http_methods: Vec<String>,
    http_paths: Vec<Regex>,
    http_statuses: Vec<StatusPattern>,
    dns_queries: Vec<Regex>,
    since: Option<Timestamp>,
}

/// A request for flows: which, from where, and whether to keep following.
#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    pub filter: FlowFilter,
    /// Start with the `last` most recent matching flows.
    pub last: Option<usize>,
    pub follow: bool,
}

fn regex(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|err| format!("`{text}` is not a regular expression: {err}"))
}

/// `30s`, `5m`, `2h`, `1d`.
fn duration(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

impl FlowQuery {
    /// Parses `name=value` pairs (a URL query, or the CLI's flags), with
    /// `now` as the reference for relative `since` values.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: Timestamp,
    ) -> Result<FlowQuery, String> {
        let mut query = FlowQuery::default();
        let filter = &mut query.filter;
        for (name, value) in pairs {
            let bad = |what: &str| format!("{name}: `{value}` is not {what}");
            match name {
                "namespace" => filter.namespaces.push(value.to_string()),
                "pod" => filter.pods.push(PodPattern::parse(value)?),
                "from_pod" => filter.from_pods.push(PodPattern::parse(value)?),
                "to_pod" => filter.to_pods.push(PodPattern::parse(value)?),
                "label" if !value.is_empty() => filter.labels.push(LabelPattern(value.to_string())),
                "verdict" => filter.verdicts.push(
                    Verdict::ALL
                        .into_iter()
                        .find(|v| v.as_str().eq_ignore_ascii_case(value))
                        .ok_or_else(|| bad("a verdict (FORWARDED, DROPPED, ERROR, REDIRECTED)"))?,
                ),
                "protocol" if !value.is_empty() => filter.protocols.push(value.to_ascii_lowercase()),
                "port" => filter.ports.push(value.parse().map_err(|_| bad("a port number"))?),
                "http_method" if !value.is_empty() => filter.http_methods.push(value.to_ascii_uppercase()),
                "http_path" => filter.http_paths.push(regex(value)?),
                "http_status" => filter.http_statuses.push(StatusPattern::parse(value)?),
                "dns_query" => filter.dns_queries.push(regex(value)?),
                "since" => {
                    let since = match duration(value) {
                        Some(ago) => now.before(ago),
                        None => value.parse().map_err(|_| bad("an RFC 3339 time or a duration like 5m"))?,
                    };
                    filter.since = Some(since);
                }
                "last" => query.last = Some(value.parse().map_err(|_| bad("a number of flows"))?),
                "follow" => {
                    query.follow = match value {
                        "" | "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("true or false")),
                    }
                }
                _ if PARAMETERS.contains(&name) => return Err(bad("a value")),
                _ => return Err(format!("unknown filter `{name}`; filters are {}", PARAMETERS.join(", "))),
            }
        }
        Ok(query)
    }

    /// Parses a URL query string (`namespace=backend&verdict=DROPPED`).
    pub fn parse(query: &str, now: Timestamp) -> Result<FlowQuery, String> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        FlowQuery::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), now)
    }
}

impl FlowFilter {
    pub fn matches(&self, flow: &Flow) -> bool {
        let either = |f: &dyn Fn(&FlowEndpoint) -> bool| f(&flow.source) || f(&flow.destination);
        let any = |patterns: &[PodPattern], endpoint: &FlowEndpoint| {
            patterns.is_empty() || patterns.iter().any(|p| p.matches(endpoint))
        };
        let ports = flow.l4.ports();
        let l3_l4 = (self.namespaces.is_empty()
            || either(&|e| self.namespaces.iter().any(|ns| *ns == e.info.namespace)))
            && (self.pods.is_empty() || either(&|e| any(&self.pods, e)))
            && any(&self.from_pods, &flow.source)
            && any(&self.to_pods, &flow.destination)
            && (self.labels.is_empty() || either(&|e| self.labels.iter().any(|l| l.matches(e))))
            && (self.verdicts.is_empty() || self.verdicts.contains(&flow.verdict))
            && (self.ports.is_empty()
                || ports.is_some_and(|p| {
                    self.ports.iter().any(|&port| port == p.source_port || port == p.destination_port)
                }))
            && self.since.is_none_or(|since| flow.time >= since);
        if !l3_l4 {
            return false;
        }
        let wants_l7 = !(self.protocols.is_empty()
            && self.http_methods.is_empty()
            && self.http_paths.is_empty()
            && self.http_statuses.is_empty()
            && self.dns_queries.is_empty());
        if !wants_l7 {
            return true;
        }
        let l7 = flow.l7.as_ref().map(super::L7::value).unwrap_or(Value::Null);
        self.protocols_match(flow, &l7) && self.l7_matches(&l7)
    }

    fn protocols_match(&self, flow: &Flow, l7: &Value) -> bool {
        self.protocols.is_empty()
            || self.protocols.iter().any(|protocol| {
                let transport = matches!(
                    (&flow.l4, protocol.as_str()),
                    (L4::Tcp(_), "tcp") | (L4::Udp(_), "udp") | (L4::Icmpv4 { .. }, "icmp" | "icmpv4")
                );
                transport
                    || l7.get(protocol).is_some()
                    || flow.proxy.as_ref().is_some_and(|proxy| *proxy.filter == **protocol)
            })
    }

    fn l7_matches(&self, l7: &Value) -> bool {
        let http = &l7["http"];
        let dns = &l7["dns"];
        let method = http["method"].as_str();
        let path = http["url"].as_str().map(url_path);
        (self.http_methods.is_empty()
            || method.is_some_and(|m| self.http_methods.iter().any(|w| w.eq_ignore_ascii_case(m))))
            && (self.http_paths.is_empty()
                || path.is_some_and(|p| self.http_paths.iter().any(|r| r.is_match(p))))
            && (self.http_statuses.is_empty()
                || http["code"]
                    .as_u64()
                    .is_some_and(|code| self.http_statuses.iter().any(|s| s.matches(code))))
            && (self.dns_queries.is_empty()
                || dns["query"].as_str().is_some_and(|q| self.dns_queries.iter().any(|r| r.is_match(q))))
    }
}

/// The path of a URL (`http://host/a/b?x` → `/a/b`), or the text itself.
fn url_path(url: &str) -> &str {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = if url.contains("://") {
        without_scheme.find('/').map_or("/", |i| &without_scheme[i..])
    } else {
        without_scheme
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::tests::{http_flow, sample_flow};

    fn query(text: &str) -> FlowQuery {
        FlowQuery::parse(text, Timestamp(1_000_000_000_000)).unwrap()
    }

    fn matches(text: &str, flow: &Flow) -> bool {
        query(text).filter.matches(flow)
    }

    #[test]
    fn pods_namespaces_labels_and_ports_match_their_side() {
        let flow = sample_flow(); // frontend/web:40000 -> backend/api:80, DROPPED
        assert!(matches("", &flow));
        assert!(matches("namespace=backend", &flow));
        assert!(matches("namespace=other&namespace=frontend", &flow));
        assert!(!matches("namespace=other", &flow));
        assert!(matches("pod=backend/ap", &flow));
        assert!(matches("pod=web", &flow));
        assert!(matches("from_pod=frontend/web&to_pod=backend/api", &flow));
        assert!(!matches("from_pod=backend/api", &flow));
        assert!(matches("label=app=api", &flow));
        assert!(matches("label=k8s:app=web", &flow));
        assert!(matches("label=app", &flow));
        assert!(!matches("label=app=db", &flow));
        assert!(matches("port=80", &flow));
        assert!(!matches("port=81", &flow));
        assert!(matches("verdict=dropped&protocol=tcp", &flow));
        assert!(!matches("verdict=FORWARDED", &flow));
        assert!(!matches("protocol=http", &flow));
    }

    #[test]
    fn l7_filters_look_into_the_record() {
        let request = http_flow("REQUEST", "GET", "http://api.backend/v1/items?x=1", None);
        let response = http_flow("RESPONSE", "GET", "http://api.backend/v1/items", Some(503));
        assert!(matches("protocol=http&http_method=get&http_path=^/v1/", &request));
        assert!(!matches("http_path=^/v2", &request));
        assert!(!matches("http_status=503", &request));
        assert!(matches("http_status=5%2B", &response));
        assert!(matches("http_status=503", &response));
        assert!(!matches("http_status=2%2B", &response));
        assert!(!matches("dns_query=.", &request));
        assert!(!matches("http_method=GET", &sample_flow()));
    }

    #[test]
    fn since_last_and_follow() {
        let q = query("since=30s&last=5&follow=true");
        assert_eq!(q.filter.since, Some(Timestamp(970_000_000_000)));
        assert_eq!((q.last, q.follow), (Some(5), true));
        let q = query("since=2026-11-29T12:00:00Z");
        assert!(q.filter.since.is_some());
        let mut old = sample_flow();
        old.time = Timestamp(1);
        assert!(!query("since=1m").filter.matches(&old));
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let error = |text: &str| FlowQuery::parse(text, Timestamp(0)).unwrap_err();
        assert!(error("verdict=ALLOWED").contains("verdict"), "{}", error("verdict=ALLOWED"));
        assert!(error("colour=red").contains("unknown filter `colour`"));
        assert!(error("port=http").contains("port number"));
        assert!(error("http_path=(").contains("regular expression"));
        assert!(error("http_status=20").contains("HTTP status"));
        assert!(error("pod=/x").contains("NAMESPACE"));
        assert!(error("since=yesterday").contains("RFC 3339"));
        assert!(error("follow=maybe").contains("true or false"));
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path("http://h/a/b?q#f"), "/a/b");
        assert_eq!(url_path("http://h"), "/");
        assert_eq!(url_path("/x?y"), "/x");
    }
}
