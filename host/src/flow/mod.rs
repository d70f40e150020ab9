//! Flows: what happened to a connection or a request, under Hubble's field
//! names, so tools that read Hubble JSON read porin's.
//!
//! The proxy publishes flows on a [`FlowSender`]; the observability layer
//! (store, API, `porin observe`) subscribes.

mod time;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

pub use time::rfc3339_now;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Forwarded,
    Dropped,
    Error,
    /// Handed to the L7 proxy by the datapath.
    Redirected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficDirection {
    Ingress,
    Egress,
}

/// One side of a flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowEndpoint {
    pub identity: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ip {
    pub source: String,
    pub destination: String,
    #[serde(rename = "ipVersion")]
    pub ip_version: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ports {
    pub source_port: u16,
    pub destination_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum L4 {
    #[serde(rename = "TCP")]
    Tcp(Ports),
    #[serde(rename = "UDP")]
    Udp(Ports),
    #[serde(rename = "ICMPv4")]
    Icmpv4 { r#type: u8, code: u8 },
    /// Another IP protocol, by number.
    #[serde(rename = "other")]
    Other { protocol: u8 },
}

/// Which L7 filter handled a redirected flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyInfo {
    pub filter: String,
    pub rule_set: u32,
}

/// One flow record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    pub time: String,
    pub uuid: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason_desc: Option<String>,
    #[serde(rename = "IP")]
    pub ip: Ip,
    pub l4: L4,
    pub source: FlowEndpoint,
    pub destination: FlowEndpoint,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub node_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<Value>,
    pub traffic_direction: TrafficDirection,
    pub is_reply: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyInfo>,
    #[serde(rename = "Summary")]
    pub summary: String,
}

/// Where flows go: a broadcast channel; slow subscribers lose the oldest
/// flows and are told how many (never silently).
pub type FlowSender = broadcast::Sender<std::sync::Arc<Flow>>;

/// A sender with room for `capacity` flows per subscriber.
pub fn channel(capacity: usize) -> FlowSender {
    broadcast::channel(capacity).0
}

/// A subscription taken only when someone reads it: unread flows would pile
/// up in the channel, and with no subscriber the proxy builds none.
pub type Subscription = Option<broadcast::Receiver<std::sync::Arc<Flow>>>;

/// The next flow of a subscription; never resolves without one.
pub async fn next(
    subscription: &mut Subscription,
) -> Result<std::sync::Arc<Flow>, broadcast::error::RecvError> {
    match subscription {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// The name flows carry as `node_name`: the host name, else `porin`.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "porin".into(), |h| h.trim().to_string())
}

/// The addresses and ports of a flow.
pub fn addressing(tcp: bool, source: SocketAddr, destination: SocketAddr) -> (Ip, L4) {
    let ip = Ip {
        source: source.ip().to_string(),
        destination: destination.ip().to_string(),
        ip_version: if source.is_ipv4() { "IPv4" } else { "IPv6" },
    };
    let ports = Ports { source_port: source.port(), destination_port: destination.port() };
    (ip, if tcp { L4::Tcp(ports) } else { L4::Udp(ports) })
}

/// A random-looking, unique UUID (v4 layout) without a random source.
pub fn new_uuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
            as u64;
    let mut x = seed ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// An L7 record from a filter, as a flow's verdict, `l7` object and error.
#[derive(Debug, Clone, PartialEq)]
pub struct L7Record {
    pub verdict: Verdict,
    pub l7: Value,
    pub error: Option<String>,
}

/// Turns a filter record (flat JSON with dotted Hubble names) into the
/// nested `l7` object of a flow: `http.method` becomes `l7.http.method`.
pub fn parse_record(record: &[u8]) -> Option<L7Record> {
    let Value::Object(fields) = serde_json::from_slice::<Value>(record).ok()? else { return None };
    let verdict = match fields.get("verdict").and_then(Value::as_str) {
        Some("FORWARDED") => Verdict::Forwarded,
        Some("DROPPED") => Verdict::Dropped,
        _ => Verdict::Error,
    };
    let error = fields.get("error").and_then(Value::as_str).map(str::to_string);
    let mut l7 = Map::new();
    for (key, value) in fields {
        match key.split_once('.') {
            Some((protocol, field)) => {
                let group = l7.entry(protocol.to_string()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(group) = group {
                    group.insert(field.to_string(), value);
                }
            }
            None if key == "verdict" => {}
            None => {
                l7.insert(key, value);
            }
        }
    }
    Some(L7Record { verdict, l7: Value::Object(l7), error })
}

/// A one-line summary of an L7 record, as Hubble writes them.
pub fn summarize(l7: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let kind = l7.get("type").and_then(Value::as_str).unwrap_or("REQUEST");
    if let Some(http) = l7.get("http") {
        let (protocol, method, url) = (text(&http["protocol"]), text(&http["method"]), text(&http["url"]));
        return match kind {
            "RESPONSE" => {
                let latency = l7.get("latency_ns").and_then(Value::as_u64).unwrap_or(0) / 1_000_000;
                format!("{protocol} {} {latency}ms ({method} {url})", text(&http["code"]))
            }
            _ => format!("{protocol} {method} {url}"),
        };
    }
    if let Some(dns) = l7.get("dns") {
        let query = text(&dns["query"]);
        let qtypes: Vec<String> =
            dns["qtypes"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
        return match kind {
            "RESPONSE" => {
                let ips: Vec<String> =
                    dns["ips"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
                format!(
                    "DNS Answer \"{}\" TTL: {} (Query {query} {})",
                    ips.join(","),
                    text(&dns["ttl"]),
                    qtypes.join(",")
                )
            }
            _ => format!("DNS Query {query} {}", qtypes.join(",")),
        };
    }
    if let Some(kafka) = l7.get("kafka") {
        return format!(
            "Kafka {} {} topic {}",
            kind.to_lowercase(),
            text(&kafka["api_key"]),
            text(&kafka["topic"])
        );
    }
    match l7.get("error").and_then(Value::as_str) {
        Some(error) => format!("{kind} error: {error}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_nest_under_their_protocol_and_summarize_like_hubble() {
        let record = br#"{"type":"REQUEST","verdict":"FORWARDED","http.method":"GET","http.url":"http://api/","http.protocol":"HTTP/1.1"}"#;
        let parsed = parse_record(record).unwrap();
        assert_eq!(parsed.verdict, Verdict::Forwarded);
        assert_eq!(parsed.l7["http"]["method"], "GET");
        assert_eq!(parsed.l7["type"], "REQUEST");
        assert_eq!(summarize(&parsed.l7), "HTTP/1.1 GET http://api/");
        let dns = parse_record(
            br#"{"type":"REQUEST","verdict":"DROPPED","dns.query":"google.com.","dns.qtypes":["A"]}"#,
        );
        assert_eq!(summarize(&dns.unwrap().l7), "DNS Query google.com. A");
        assert!(parse_record(b"not json").is_none());
    }

    #[test]
    fn uuids_look_like_v4_and_differ() {
        let (a, b) = (new_uuid(), new_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
