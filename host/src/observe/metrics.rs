//! Prometheus metrics, derived from flows as they are published, plus the
//! datapath's and the proxy's own counters. Names are prefixed `porin_` and
//! listed in the README. Every label takes values from a bounded set: words
//! a client chooses (an HTTP method, say) are folded into `OTHER`.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::flow::{Flow, FlowType, Verdict};

type Labels<const N: usize> = [(&'static str, &'static str); N];
type OwnedLabels<const N: usize> = [(&'static str, String); N];

fn histogram() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The fields of an `l7` object the metrics read, borrowed from its JSON.
#[derive(Debug, Deserialize)]
struct L7View<'a> {
    #[serde(rename = "type", default)]
    kind: &'a str,
    latency_ns: Option<u64>,
    #[serde(borrow)]
    http: Option<HttpView<'a>>,
    #[serde(borrow)]
    dns: Option<DnsView<'a>>,
    #[serde(borrow)]
    kafka: Option<KafkaView<'a>>,
}

#[derive(Debug, Deserialize)]
struct HttpView<'a> {
    method: Option<&'a str>,
    code: Option<u64>,
    protocol: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct DnsView<'a> {
    rcode: Option<serde_json::Value>,
    #[serde(borrow, default)]
    qtypes: Vec<&'a str>,
}

#[derive(Debug, Deserialize)]
struct KafkaView<'a> {
    api_key: Option<&'a str>,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    flows: Family<Labels<2>, Counter>,
    /// `flows`' series by [type][verdict], made once: every flow counts here.
    flow_counters: [[Counter; 4]; 2],
    drops: Family<Labels<2>, Counter>,
    http_requests: Family<Labels<2>, Counter>,
    http_responses: Family<OwnedLabels<2>, Counter>,
    http_duration: Family<Labels<1>, Histogram, fn() -> Histogram>,
    dns_queries: Family<OwnedLabels<1>, Counter>,
    dns_responses: Family<OwnedLabels<1>, Counter>,
    kafka_requests: Family<OwnedLabels<2>, Counter>,
    filter_errors: Family<OwnedLabels<2>, Counter>,
    proxy_connections: Family<OwnedLabels<2>, Counter>,
    pub proxy_active_connections: Gauge,
    lost_events: Family<Labels<1>, Counter>,
    pub flow_store_flows: Gauge,
    pub flow_store_overwritten: Counter,
    datapath: Family<Labels<1>, Counter>,
    /// The datapath's counters as last read, to turn totals into increments.
    datapath_seen: Mutex<Vec<u64>>,
}

/// Where flows are lost (`porin_lost_events_total{source}`).
#[derive(Debug, Clone, Copy)]
pub enum LostAt {
    /// The datapath's ring buffer was full.
    DatapathRingBuffer,
    /// The flow store overwrote a flow before a reader (API, exporter, UI) read it.
    FlowReader,
}

const HTTP_METHODS: [&str; 9] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// A method label: the standard ones as they are, anything else `OTHER`.
fn method_label(method: Option<&str>) -> &'static str {
    method.and_then(|m| HTTP_METHODS.iter().find(|known| **known == m)).copied().unwrap_or("OTHER")
}

/// A label from words that are ours when they look like Hubble's names
/// (`POLICY_DENIED`, `produce`), else `OTHER`.
fn name_label(text: &str) -> String {
    let plain = !text.is_empty()
        && text.len() <= 48
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain { text.to_string() } else { "OTHER".to_string() }
}

/// What kind of filter failure an error flow's reason names (the words of
/// `filter::CallError`).
fn filter_error_kind(reason: &str) -> &'static str {
    if reason.contains("trapped") {
        "trap"
    } else if reason.contains("CPU deadline") {
        "deadline"
    } else if reason.contains("memory limit") {
        "memory"
    } else if reason.contains("broke the ABI") {
        "abi"
    } else {
        "error"
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("porin");
        let metrics = Metrics {
            registry: Registry::default(),
            flows: Family::default(),
            flow_counters: Default::default(),
            drops: Family::default(),
            http_requests: Family::default(),
            http_responses: Family::default(),
            http_duration: Family::new_with_constructor(histogram),
            dns_queries: Family::default(),
            dns_responses: Family::default(),
            kafka_requests: Family::default(),
            filter_errors: Family::default(),
            proxy_connections: Family::default(),
            proxy_active_connections: Gauge::default(),
            lost_events: Family::default(),
            flow_store_flows: Gauge::default(),
            flow_store_overwritten: Counter::default(),
            datapath: Family::default(),
            datapath_seen: Mutex::new(Vec::new()),
        };
        let r = &mut registry;
        r.register(
            "flows_processed",
            "Flows processed, by type (L3_L4, L7) and verdict",
            metrics.flows.clone(),
        );
        r.register("drops", "Dropped flows, by drop reason and L4 protocol", metrics.drops.clone());
        r.register(
            "http_requests",
            "HTTP requests seen by the http filter, by method and protocol",
            metrics.http_requests.clone(),
        );
        r.register(
            "http_responses",
            "HTTP responses, by request method and status code",
            metrics.http_responses.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from an HTTP request to its response, by method",
            metrics.http_duration.clone(),
        );
        r.register(
            "dns_queries",
            "DNS queries seen by the dns filter, by query types",
            metrics.dns_queries.clone(),
        );
        r.register("dns_responses", "DNS responses, by rcode", metrics.dns_responses.clone());
        r.register(
            "kafka_requests",
            "Kafka requests seen by the kafka filter, by API key and verdict",
            metrics.kafka_requests.clone(),
        );
        r.register(
            "filter_errors",
            "Filter failures (trap, deadline, memory, abi, error) and malformed input, by filter",
            metrics.filter_errors.clone(),
        );
        r.register(
            "proxy_connections",
            "Connections the L7 proxy opened, by transport and filter",
            metrics.proxy_connections.clone(),
        );
        r.register(
            "proxy_active_connections",
            "TCP connections open through the L7 proxy",
            metrics.proxy_active_connections.clone(),
        );
        r.register(
            "lost_events",
            "Flows lost before a reader saw them, by where",
            metrics.lost_events.clone(),
        );
        r.register("flow_store_flows", "Flows held in the flow store", metrics.flow_store_flows.clone());
        r.register(
            "flow_store_overwritten",
            "Flows the full flow store overwrote with newer ones",
            metrics.flow_store_overwritten.clone(),
        );
        r.register(
            "datapath_events",
            "The datapath's counters (forwarded, dropped, redirected, conntrack events)",
            metrics.datapath.clone(),
        );
        let flow_counters = [FlowType::L3L4, FlowType::L7].map(|flow_type| {
            Verdict::ALL.map(|verdict| {
                let labels = [("type", flow_type.as_str()), ("verdict", verdict.as_str())];
                metrics.flows.get_or_create(&labels).clone()
            })
        });
        Metrics { registry, flow_counters, ..metrics }
    }

    /// Counts one flow.
    pub fn observe(&self, flow: &Flow) {
        let flow_type = flow.flow_type();
        let verdict = Verdict::ALL.iter().position(|v| *v == flow.verdict).expect("every verdict is in ALL");
        self.flow_counters[usize::from(flow_type == FlowType::L7)][verdict].inc();
        let protocol = flow.l4.transport();
        if flow.verdict == Verdict::Dropped {
            // Reasons of our own are static names; anything else is prose.
            let reason = match &flow.drop_reason_desc {
                Some(std::borrow::Cow::Borrowed(reason)) if name_label(reason) != "OTHER" => reason,
                Some(_) => "OTHER",
                None => "UNKNOWN",
            };
            self.drops.get_or_create(&[("reason", reason), ("protocol", protocol)]).inc();
        }
        if flow_type != FlowType::L7 {
            return;
        }
        let filter = flow.proxy.as_ref().map_or("", |p| &p.filter);
        let Some(l7) = &flow.l7 else {
            match (flow.verdict, flow.drop_reason_desc.as_deref()) {
                (Verdict::Forwarded, None) => {
                    let labels = [("transport", protocol.to_string()), ("filter", name_label(filter))];
                    // Once per connection: the allocations do not matter.
                    self.proxy_connections.get_or_create(&labels).inc();
                }
                (Verdict::Error, reason) => {
                    self.filter_error(filter, filter_error_kind(reason.unwrap_or("")))
                }
                _ => {}
            }
            return;
        };
        if flow.verdict == Verdict::Error {
            self.filter_error(filter, "malformed");
        }
        let Ok(l7) = serde_json::from_str::<L7View<'_>>(l7.json()) else { return };
        let response = l7.kind == "RESPONSE";
        if let Some(http) = l7.http {
            let method = method_label(http.method);
            if response {
                let status = http
                    .code
                    .filter(|c| (100..1000).contains(c))
                    .map_or("OTHER".to_string(), |c| c.to_string());
                self.http_responses
                    .get_or_create(&[("method", method.to_string()), ("status", status)])
                    .inc();
                if let Some(latency) = l7.latency_ns {
                    self.http_duration.get_or_create(&[("method", method)]).observe(latency as f64 / 1e9);
                }
            } else {
                let version = match http.protocol {
                    Some("HTTP/1.0") => "HTTP/1.0",
                    Some("HTTP/2" | "HTTP/2.0") => "HTTP/2",
                    _ => "HTTP/1.1",
                };
                self.http_requests.get_or_create(&[("method", method), ("protocol", version)]).inc();
            }
        }
        if let Some(dns) = l7.dns {
            if response {
                let rcode = match &dns.rcode {
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    Some(serde_json::Value::String(s)) => name_label(s),
                    _ => "OTHER".to_string(),
                };
                self.dns_responses.get_or_create(&[("rcode", rcode)]).inc();
            } else {
                let qtypes: Vec<String> = dns.qtypes.iter().map(|t| name_label(t)).collect();
                self.dns_queries.get_or_create(&[("qtypes", qtypes.join(","))]).inc();
            }
        }
        if let Some(kafka) = l7.kafka
            && !response
        {
            let api_key = name_label(kafka.api_key.unwrap_or(""));
            let labels = [("api_key", api_key), ("verdict", flow.verdict.as_str().to_string())];
            self.kafka_requests.get_or_create(&labels).inc();
        }
    }

    fn filter_error(&self, filter: &str, kind: &'static str) {
        self.filter_errors.get_or_create(&[("filter", name_label(filter)), ("kind", kind.to_string())]).inc();
    }

    pub fn lost(&self, at: LostAt, count: u64) {
        let source = match at {
            LostAt::DatapathRingBuffer => "datapath_ring_buffer",
            LostAt::FlowReader => "flow_reader",
        };
        self.lost_events.get_or_create(&[("source", source)]).inc_by(count);
    }

    /// Takes the datapath's counter totals (`names[i]` = `totals[i]`); the
    /// increase since the last call is counted. `events_lost` counts as a
    /// lost event.
    pub fn datapath_counters(&self, names: &[&'static str], totals: &[u64]) {
        let mut seen = self.datapath_seen.lock().expect("metrics lock");
        seen.resize(totals.len(), 0);
        for ((name, total), seen) in names.iter().zip(totals).zip(seen.iter_mut()) {
            // A total below what was seen means the maps were recreated.
            let increase = if *total >= *seen { total - *seen } else { *total };
            *seen = *total;
            if *name == "events_lost" {
                self.lost(LostAt::DatapathRingBuffer, increase);
            } else {
                self.datapath.get_or_create(&[("counter", name)]).inc_by(increase);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::L7;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn flows_become_counters_and_histograms() {
        let metrics = Metrics::new();
        let dropped = crate::flow::tests::sample_flow();
        metrics.observe(&dropped);
        let request = crate::flow::tests::http_flow("REQUEST", "GET", "http://api/", None);
        let response = crate::flow::tests::http_flow("RESPONSE", "GET", "http://api/", Some(200));
        let weird = crate::flow::tests::http_flow("REQUEST", "BREW", "http://api/", None);
        for flow in [&request, &response, &weird] {
            metrics.observe(flow);
        }
        let dns = serde_json::json!({"type": "RESPONSE", "dns": {"query": "a.", "rcode": 5}});
        metrics.observe(&Flow { l7: L7::new(&dns), ..request.clone() });
        metrics.lost(LostAt::FlowReader, 3);
        metrics.datapath_counters(&["forwarded", "events_lost"], &[10, 2]);
        metrics.datapath_counters(&["forwarded", "events_lost"], &[15, 2]);

        let text = metrics.render();
        assert!(
            line(&text, "porin_flows_processed_total{type=\"L3_L4\",verdict=\"DROPPED\"} 1").is_some(),
            "{text}"
        );
        assert!(
            line(&text, "porin_drops_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1").is_some(),
            "{text}"
        );
        assert!(
            line(&text, "porin_http_requests_total{method=\"GET\",protocol=\"HTTP/1.1\"} 1").is_some(),
            "{text}"
        );
        assert!(line(&text, "porin_http_requests_total{method=\"OTHER\"").is_some(), "{text}");
        assert!(
            line(&text, "porin_http_responses_total{method=\"GET\",status=\"200\"} 1").is_some(),
            "{text}"
        );
        assert!(
            line(&text, "porin_http_request_duration_seconds_count{method=\"GET\"} 1").is_some(),
            "{text}"
        );
        assert!(line(&text, "porin_dns_responses_total{rcode=\"5\"} 1").is_some(), "{text}");
        assert!(line(&text, "porin_lost_events_total{source=\"flow_reader\"} 3").is_some(), "{text}");
        assert!(
            line(&text, "porin_lost_events_total{source=\"datapath_ring_buffer\"} 2").is_some(),
            "{text}"
        );
        assert!(line(&text, "porin_datapath_events_total{counter=\"forwarded\"} 15").is_some(), "{text}");
    }

    #[test]
    fn filter_failures_are_counted_by_kind() {
        let metrics = Metrics::new();
        let mut flow = crate::flow::tests::http_flow("REQUEST", "GET", "/", None);
        flow.l7 = None;
        flow.verdict = Verdict::Error;
        flow.drop_reason_desc = Some("filter http trapped: unreachable".into());
        metrics.observe(&flow);
        let text = metrics.render();
        assert!(
            line(&text, "porin_filter_errors_total{filter=\"http\",kind=\"trap\"} 1").is_some(),
            "{text}"
        );
    }

    #[test]
    fn labels_from_clients_stay_bounded() {
        assert_eq!(name_label("POLICY_DENIED"), "POLICY_DENIED");
        assert_eq!(name_label("upstream 10.0.0.1:80: refused"), "OTHER");
        assert_eq!(method_label(Some("get")), "OTHER");
        assert_eq!(method_label(None), "OTHER");
    }
}
