//! Filter records to `l7` objects. A filter writes a flat JSON object with
//! dotted Hubble names (`{"type":"REQUEST","verdict":"FORWARDED",
//! "http.method":"GET"}`); a flow nests them (`l7.http.method`).

use serde_json::{Map, Value};

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

/// Parses a filter's record; `None` if it is not a JSON object. A verdict
/// other than FORWARDED or DROPPED counts as ERROR.
pub fn parse_record(record: &[u8]) -> Option<L7Record> {
    let Value::Object(fields) = serde_json::from_slice::<Value>(record).ok()? else { return None };
    let verdict = match fields.get("verdict").and_then(Value::as_str) {
        Some("FORWARDED") => Verdict::Forwarded,
        Some("DROPPED") => Verdict::Dropped,
        _ => Verdict::Error,
    };
    let error = fields.get("error").and_then(Value::as_str).map(str::to_string);
    let is_reply = fields.get("type").and_then(Value::as_str) == Some("RESPONSE");
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
    let l7 = L7::new(&Value::Object(l7))?;
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
}
