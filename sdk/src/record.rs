//! L7 records: what a filter tells the host about each request and
//! response, under Hubble's field names (`http.method`, `dns.query`, ...).
//!
//! A record is a flat JSON object: `type` (REQUEST or RESPONSE), `verdict`
//! (FORWARDED, DROPPED or ERROR) and dotted field names.

use std::fmt::Write;

/// The outcome a record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let through.
    Forwarded,
    /// Denied by policy.
    Dropped,
    /// Malformed or failed; the connection is closed.
    Error,
}

impl Verdict {
    /// Hubble's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forwarded => "FORWARDED",
            Verdict::Dropped => "DROPPED",
            Verdict::Error => "ERROR",
        }
    }
}

/// Builds one record.
#[derive(Debug, Clone)]
pub struct Record {
    json: String,
}

impl Record {
    fn new(kind: &str, verdict: Verdict) -> Record {
        let mut json = String::with_capacity(160);
        let _ = write!(json, "{{\"type\":\"{kind}\",\"verdict\":\"{}\"", verdict.as_str());
        Record { json }
    }

    /// A request record.
    pub fn request(verdict: Verdict) -> Record {
        Record::new("REQUEST", verdict)
    }

    /// A response record.
    pub fn response(verdict: Verdict) -> Record {
        Record::new("RESPONSE", verdict)
    }

    fn key(&mut self, key: &str) {
        self.json.push(',');
        escape(&mut self.json, key);
        self.json.push(':');
    }

    /// Adds a string field.
    pub fn str(mut self, key: &str, value: &str) -> Record {
        self.key(key);
        escape(&mut self.json, value);
        self
    }

    /// Adds a number field.
    pub fn int(mut self, key: &str, value: i64) -> Record {
        self.key(key);
        let _ = write!(self.json, "{value}");
        self
    }

    /// Adds a list of strings.
    pub fn strs<'a>(mut self, key: &str, values: impl IntoIterator<Item = &'a str>) -> Record {
        self.key(key);
        self.json.push('[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.json.push(',');
            }
            escape(&mut self.json, value);
        }
        self.json.push(']');
        self
    }

    /// The finished JSON object.
    pub fn into_json(mut self) -> String {
        self.json.push('}');
        self.json
    }
}

/// Writes `value` as a JSON string literal; bytes that are not valid text
/// never reach here (callers pass `&str`).
fn escape(out: &mut String, value: &str) {
    out.push('"');
    // Most values need no escaping: copy them whole.
    if !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(value);
        out.push('"');
        return;
    }
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_flat_json_objects() {
        let json = Record::request(Verdict::Dropped)
            .str("http.method", "GET")
            .str("http.url", "/a\"b\u{1}")
            .int("http.code", 403)
            .strs("http.headers", ["x: 1", "y"])
            .into_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "REQUEST");
        assert_eq!(value["verdict"], "DROPPED");
        assert_eq!(value["http.url"], "/a\"b\u{1}");
        assert_eq!(value["http.code"], 403);
        assert_eq!(value["http.headers"][1], "y");
    }
}
