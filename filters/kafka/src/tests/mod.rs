//! Native tests: real client captures, the protocol oracle (the
//! kafka-protocol crate), rule semantics, malformed input and fuzzing.

use std::path::PathBuf;

use porin_sdk::testing::StreamTester;

use crate::KafkaFilter;

mod captures;
mod fuzz;
mod malformed;
mod oracle;
mod semantics;

pub(crate) type Tester = StreamTester<KafkaFilter>;

pub(crate) fn tester(rules: &str) -> Tester {
    Tester::new(rules).expect("rules parse")
}

pub(crate) const ALLOW_ALL: &str = r#"{"kafka":[{}]}"#;

pub(crate) fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/kafka")
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Splits a stream into size-prefixed frames.
pub(crate) fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = vec![];
    while data.len() >= 4 {
        let n = 4 + i32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        out.push(&data[..n]);
        data = &data[n..];
    }
    assert!(data.is_empty(), "stream ends mid-frame");
    out
}

pub(crate) fn correlation_id(frame: &[u8]) -> i32 {
    i32::from_be_bytes(frame[8..12].try_into().unwrap())
}

pub(crate) fn response_correlation_id(frame: &[u8]) -> i32 {
    i32::from_be_bytes(frame[4..8].try_into().unwrap())
}

/// Replays a captured session as it happened: each response right after
/// the request it answers (brokers answer in order).
pub(crate) fn replay(t: &mut Tester, client: &[u8], server: &[u8]) {
    let mut responses = frames(server).into_iter().peekable();
    let mut sent = vec![];
    for request in frames(client) {
        t.send(request);
        sent.push(correlation_id(request));
        while let Some(response) = responses.peek() {
            if !sent.contains(&response_correlation_id(response)) {
                break;
            }
            t.receive(response);
            responses.next();
        }
    }
    for response in responses {
        t.receive(response);
    }
}

/// Every capture session: (name, client bytes, server bytes).
pub(crate) fn sessions() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".client.bin").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "captures missing: {names:?}");
    names
        .into_iter()
        .map(|n| {
            let client = fixture(&format!("{n}.client.bin"));
            let server = fixture(&format!("{n}.server.bin"));
            (n, client, server)
        })
        .collect()
}
