//! Filter records to `l7` objects. A filter writes a flat JSON object with
//! dotted Hubble names (`{"type":"REQUEST","verdict":"FORWARDED",
//! "http.method":"GET"}`); a flow nests them (`l7.http.method`).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde_json::value::RawValue;

use super::{L7, Verdict};

/// An L7 record from a filter, as a flow's verdict, `l7` object and error.
#[derive(Debug, Clone, PartialEq)]
pub struct L7Record {
    pub verdict: Verdict,
    pub l7: L7,
    /// The record is about a response.
    pub is_reply: bool,
    pub error: Option<String>,
}

/// Most bytes of an `l7` object kept in a flow: a record may be 64 KiB
/// (huge headers, say), and the store holds tens of thousands of flows.
/// Fields past the budget are left out and the object says
/// `"truncated":true`; `type` and `latency_ns` are always kept.
pub(crate) const MAX_L7_BYTES: usize = 4096;

/// Most characters of a record's `error` kept.
const MAX_ERROR_CHARS: usize = 256;

/// Parses a filter's record; `None` if it is not a JSON object with plain
/// (unescaped) keys. A verdict other than FORWARDED or DROPPED counts as
/// ERROR. Values are copied as they are, never re-encoded: a record costs
/// one parse that borrows from it and one string.
pub fn parse_record(record: &[u8]) -> Option<L7Record> {
    // Sorted, so the fields of one protocol (`http.*`) are contiguous.
    let fields: BTreeMap<&str, &RawValue> = serde_json::from_slice(record).ok()?;
    let raw = |key: &str| fields.get(key).map(|value| value.get());
    let verdict = match raw("verdict") {
        Some(r#""FORWARDED""#) => Verdict::Forwarded,
        Some(r#""DROPPED""#) => Verdict::Dropped,
        _ => Verdict::Error,
    };
    let error = raw("error")
        .and_then(|text| serde_json::from_str::<String>(text).ok())
        .map(|error| error.chars().take(MAX_ERROR_CHARS).collect());
    let is_reply = raw("type") == Some(r#""RESPONSE""#);
    let mut l7 = String::with_capacity(record.len().min(MAX_L7_BYTES) + 32);
    l7.push('{');
    let mut group: Option<&str> = None;
    let mut truncated = false;
    for (key, value) in &fields {
        let (protocol, field) = match key.split_once('.') {
            Some((protocol, field)) => (Some(protocol), field),
            None => (None, *key),
        };
        // `verdict` is the flow's; a plain key that names a protocol group
        // would be a second member of the same name.
        let shadowed = protocol.is_none()
            && fields
                .range::<str, _>((Bound::Excluded(*key), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(*key))
                .any(|(k, _)| k.as_bytes().get(key.len()) == Some(&b'.'));
        if (protocol.is_none() && *key == "verdict") || shadowed {
            continue;
        }
        let essential = protocol.is_none() && matches!(*key, "type" | "latency_ns");
        // The field, its separators and its group's name at most.
        let cost = key.len() + value.get().len() + 8;
        if !essential && l7.len() + cost > MAX_L7_BYTES {
            truncated = true;
            continue;
        }
        if group.is_some() && group != protocol {
            l7.push('}');
        }
        if !l7.ends_with('{') {
            l7.push(',');
        }
        if let Some(protocol) = protocol.filter(|p| group != Some(*p)) {
            l7.extend(["\"", protocol, "\":{"]);
        }
        group = protocol;
        l7.extend(["\"", field, "\":", value.get()]);
    }
    if group.is_some() {
        l7.push('}');
    }
    if truncated {
        l7.push_str(if l7.ends_with('{') { "\"truncated\":true" } else { ",\"truncated\":true" });
    }
    l7.push('}');
    let l7 = L7::from_json(l7)?;
    Some(L7Record { verdict, l7, is_reply, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_nest_under_their_protocol() {
        let record = br#"{"type":"RESPONSE","verdict":"FORWARDED","http.method":"GET","http.code":200}"#;
        let parsed = parse_record(record).unwrap();
        assert_eq!(parsed.verdict, Verdict::Forwarded);
        assert!(parsed.is_reply);
        let l7 = parsed.l7.value();
        assert_eq!(l7["http"]["method"], "GET");
        assert_eq!(l7["http"]["code"], 200);
        assert_eq!(l7["type"], "RESPONSE");
        assert!(l7.get("verdict").is_none());
        let odd = parse_record(br#"{"type":"REQUEST","verdict":"MAYBE","error":"bad frame"}"#).unwrap();
        assert_eq!((odd.verdict, odd.error.as_deref()), (Verdict::Error, Some("bad frame")));
        assert!(parse_record(b"not json").is_none());
        assert!(parse_record(b"[1]").is_none());
    }

    #[test]
    fn groups_close_and_plain_keys_never_collide_with_groups() {
        let record = br#"{"type":"REQUEST","verdict":"DROPPED","dns.query":"a.","dns.qtypes":["A"],"kafka.topic":"t","latency_ns":5,"redis":1,"redis.command":"GET"}"#;
        let l7 = parse_record(record).unwrap().l7.value();
        assert_eq!(
            l7,
            serde_json::json!({"type": "REQUEST", "latency_ns": 5, "dns": {"query": "a.", "qtypes": ["A"]}, "kafka": {"topic": "t"}, "redis": {"command": "GET"}})
        );
        assert!(parse_record(br#"{"ty\u0070e":"REQUEST"}"#).is_none(), "escaped keys are refused");
    }

    #[test]
    fn oversized_records_are_cut_to_the_budget() {
        let huge = "x".repeat(60_000);
        let record = format!(
            r#"{{"type":"REQUEST","verdict":"FORWARDED","http.headers":["cookie: {huge}"],"http.method":"GET","error":"{huge}","latency_ns":1}}"#
        );
        let parsed = parse_record(record.as_bytes()).unwrap();
        let l7 = parsed.l7.value();
        assert!(parsed.l7.json().len() <= MAX_L7_BYTES + 32, "{}", parsed.l7.json().len());
        assert_eq!((l7["type"].as_str(), l7["latency_ns"].as_u64()), (Some("REQUEST"), Some(1)));
        assert_eq!(l7["http"]["method"], "GET");
        assert!(l7["http"].get("headers").is_none() && l7["truncated"] == true, "{l7}");
        assert_eq!(parsed.error.unwrap().len(), MAX_ERROR_CHARS);
        assert_eq!(parse_record(b"{}").unwrap().l7.value(), serde_json::json!({}));
    }
}
