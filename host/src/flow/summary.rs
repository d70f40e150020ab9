//! Hubble-style one-line summaries: `HTTP/1.1 GET http://api/`,
//! `DNS Query google.com. A`, `TCP dropped (POLICY_DENIED)`.

use serde_json::Value;

use std::borrow::Cow;

use super::{Flow, L4, Verdict};

pub(super) fn of(flow: &Flow) -> String {
    if let Some(l7) = &flow.l7 {
        return l7_summary(&l7.value());
    }
    let transport: Cow<'static, str> = match flow.l4 {
        L4::Icmpv4 { r#type: 8, .. } => "ICMPv4 EchoRequest".into(),
        L4::Icmpv4 { r#type: 0, .. } => "ICMPv4 EchoReply".into(),
        L4::Icmpv4 { r#type, code } => format!("ICMPv4 type {type} code {code}").into(),
        L4::Other { protocol } => format!("IP protocol {protocol}").into(),
        L4::Tcp(_) | L4::Udp(_) => flow.l4.transport().into(),
    };
    let reason = flow.drop_reason_desc.as_deref();
    match (&flow.proxy, flow.verdict, reason) {
        (Some(proxy), _, Some(reason)) => format!("{transport} via filter {}: {reason}", proxy.filter),
        (Some(proxy), _, None) => format!("{transport} connection via filter {}", proxy.filter),
        (None, Verdict::Redirected, _) => format!("{transport} to proxy"),
        (None, _, Some(reason)) if flow.policy_revoked => {
            format!("{transport} connection revoked by policy ({reason})")
        }
        (None, _, Some(reason)) => format!("{transport} dropped ({reason})"),
        (None, _, None) => format!("{transport} new flow"),
    }
}

/// The summary of an `l7` object.
pub(super) fn l7_summary(l7: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let list = |v: &Value| -> String {
        v.as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(",")).unwrap_or_default()
    };
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
        let (query, qtypes) = (text(&dns["query"]), list(&dns["qtypes"]));
        return match kind {
            "RESPONSE" => {
                format!(
                    "DNS Answer \"{}\" TTL: {} (Query {query} {qtypes})",
                    list(&dns["ips"]),
                    text(&dns["ttl"])
                )
            }
            _ => format!("DNS Query {query} {qtypes}"),
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
        None => {
            // A custom filter's record: its protocol and fields, briefly.
            let custom = l7.as_object().and_then(|o| o.iter().find(|(_, v)| v.is_object()));
            match custom {
                Some((protocol, Value::Object(fields))) => {
                    let fields: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
                    format!("{} {} {}", protocol.to_uppercase(), kind.to_lowercase(), fields.join(" "))
                }
                _ => kind.to_string(),
            }
        }
    }
}
