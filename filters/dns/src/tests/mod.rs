//! Native tests of the DNS filter, by area. Real traffic comes from
//! `tests/fixtures/dns/` (see `capture.py` there).

mod answers;
mod limits;
mod malformed;
mod mutation;
mod rules;
mod tcp;
mod udp;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use serde_json::Value;

/// Every name allowed.
const ALLOW_ALL: &str = r#"{"dns":[{"matchPattern":"*"}]}"#;
/// `example.test`, its direct subdomains and everything in `internal.test`
/// one level down: everything the fixtures ask except `blocked.other.test`.
const FIXTURE_RULES: &str = r#"{"dns":[{"matchName":"example.test"},{"matchPattern":"*.example.test"},{"matchPattern":"*.internal.test."}]}"#;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/dns/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Every captured file, by name.
fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/../../tests/fixtures/dns", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|entry| entry.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bin"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures missing from {dir}");
    names.into_iter().map(|name| (name.clone(), fixture(&name))).collect()
}

/// The messages of a TCP byte stream, without their length prefixes.
fn frames(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

/// A message behind its TCP length prefix.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(message.len()).expect("fits").to_be_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("parses")
}

/// A standard query with RD set and the given questions.
fn query(id: u16, questions: &[(&str, RecordType)]) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.queries = questions
        .iter()
        .map(|(name, rtype)| Query::query(Name::from_ascii(name).expect("name"), *rtype))
        .collect();
    message.to_vec().expect("encodes")
}

/// Checks that `answer` refuses `query` as documented.
fn assert_denial(answer: &[u8], query: &[u8], rcode: u16) {
    let (answer, query) = (parse(answer), parse(query));
    assert_eq!(answer.id, query.id);
    assert_eq!(answer.message_type, MessageType::Response);
    assert_eq!(answer.op_code, query.op_code);
    assert_eq!(answer.recursion_desired, query.recursion_desired);
    assert_eq!(answer.checking_disabled, query.checking_disabled);
    assert!(answer.recursion_available);
    assert!(!answer.authoritative && !answer.truncation);
    assert_eq!(u16::from(answer.response_code), rcode);
    assert_eq!(answer.queries, query.queries);
    // Case too: resolvers using 0x20 randomisation compare it.
    for (a, q) in answer.queries.iter().zip(&query.queries) {
        assert!(a.name().eq_case(q.name()));
    }
    assert!(answer.answers.is_empty() && answer.authorities.is_empty() && answer.additionals.is_empty());
}

/// A record's string list field.
fn strs(record: &Value, key: &str) -> Vec<String> {
    record[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing from {record}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}
