//! A complete porin filter in one file: it enforces which commands a
//! line-based text protocol (memcached, SMTP, a chat server...) may send.
//!
//! Policy: `rules: {l7proto: lines, l7: [{command: get}, {command: version}]}`.
//! Each client line's first word must equal one rule's `command` (any case);
//! other lines are dropped and answered with `ERROR denied`.
//!
//! Build: cargo build -p porin-sdk --example line_filter --profile wasm --target wasm32-unknown-unknown
//! Try:   porin filter test --filter target/wasm32-unknown-unknown/wasm/examples/line_filter.wasm \
//!            --rules rules.yaml --input session.txt

// Natively (tests) the filter is reached only through the harness, not the Wasm exports.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use porin_sdk::{
    ConnectionMeta, Record, RecordVerdict, Rules, Stream, StreamFilter, export_filter, from_json,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Policy {
    l7: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    command: Option<String>,
}

/// Allowed commands; `None` means every command.
struct Commands(Option<Vec<String>>);

impl Rules for Commands {
    fn parse(json: &str) -> Result<Self, String> {
        let policy: Policy = from_json(json)?;
        let any = policy.l7.iter().any(|rule| rule.command.is_none());
        Ok(Commands((!any).then(|| policy.l7.into_iter().filter_map(|r| r.command).collect())))
    }
}

struct LineFilter;

impl StreamFilter for LineFilter {
    type Rules = Commands;

    fn new(_meta: &ConnectionMeta) -> Self {
        LineFilter
    }

    fn on_data(&mut self, stream: &mut Stream<'_, Commands>, reply: bool, _end: bool, data: &[u8]) {
        if reply {
            return stream.pass(data.len() as u64); // server output is not policed
        }
        let Some(end) = data.iter().position(|b| *b == b'\n') else { return stream.more(1) };
        let line = String::from_utf8_lossy(&data[..end]);
        let command = line.split_whitespace().next().unwrap_or("");
        let allowed = match stream.rules().map(|r| &r.0) {
            Some(None) => true,
            Some(Some(commands)) => commands.iter().any(|c| c.eq_ignore_ascii_case(command)),
            None => false, // rule set removed: fail closed
        };
        let verdict = if allowed { RecordVerdict::Forwarded } else { RecordVerdict::Dropped };
        stream.record(Record::request(verdict).str("lines.command", command));
        if allowed {
            stream.pass(end as u64 + 1);
        } else {
            stream.discard(end as u64 + 1);
            stream.reply(&b"ERROR denied\r\n"[..]);
        }
    }
}

export_filter!(rules = Commands, stream = LineFilter);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}

#[cfg(test)]
mod tests {
    use porin_sdk::testing::StreamTester;

    use super::LineFilter;

    #[test]
    fn only_allowed_commands_pass() {
        let mut t =
            StreamTester::<LineFilter>::new(r#"{"l7proto":"lines","l7":[{"command":"get"}]}"#).unwrap();
        t.send(b"GET a\r\nset a 1\r\nget b\r\n");
        assert_eq!(t.upstream(), b"GET a\r\nget b\r\n");
        assert_eq!(t.downstream(), b"ERROR denied\r\n");
        assert_eq!(t.records()[1]["verdict"], "DROPPED");
    }
}
