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
    let error = raw("error").and_then(|text| serde_json::from_str::<String>(text).ok());
    let is_reply = raw("type") == Some(r#""RESPONSE""#);
    let mut l7 = String::with_capacity(record.len() + 16);
    l7.push('{');
    let mut group: Option<&str> = None;
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
        assert_eq!(parse_record(b"{}").unwrap().l7.value(), serde_json::json!({}));
    }
}
