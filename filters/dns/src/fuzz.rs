//! One fuzz input through every path, with the invariants that must hold
//! (used by the mutation test and by `fuzz/fuzz_targets/message.rs`).

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use porin_sdk::Verdict;
use porin_sdk::testing::{DatagramTester, StreamTester};

use crate::message;
use crate::{DnsTcp, DnsUdp};

/// Rules for the query paths: some names allowed, most denied.
const RULES: &str = r#"{"dns":[{"matchName":"example.test"},{"matchPattern":"*.example.test"},{"matchPattern":"api-*.svc"}]}"#;
/// Rules for the response paths, so that the query before them passes.
const ALLOW_ALL: &str = r#"{"dns":[{"matchPattern":"*"}]}"#;

/// Runs `data` through the UDP and TCP paths, as a query and as a
/// response to a matching query. Panics when an invariant breaks: a
/// message the filter accepts must survive a hickory round trip, a
/// well-formed query is never dropped silently, and a denial answers the
/// query it denies.
pub fn fuzz_one(data: &[u8]) {
    let parsed = message::parse(data).ok();
    if let Some(message) = &parsed {
        round_trip(message);
    }
    udp(data, parsed.as_ref());
    tcp(data);
    // Native builds keep log lines in memory: do not let them pile up.
    drop(porin_sdk::testing::take_logs());
}

fn round_trip(message: &Message) {
    let bytes = message.to_vec().expect("an accepted message encodes again");
    let again = message::parse(&bytes).expect("a re-encoded message parses");
    assert_eq!(&again, message, "DNS round trip changed the message");
}

fn udp(data: &[u8], parsed: Option<&Message>) {
    let mut flow = DatagramTester::<DnsUdp>::new(RULES).expect("fuzz rules parse");
    match (flow.send(data), parsed) {
        (Verdict::Drop, Some(query)) => {
            assert_eq!(query.message_type, MessageType::Response, "a well-formed query was dropped silently")
        }
        (Verdict::Drop, None) | (Verdict::Pass, Some(_)) => {}
        (Verdict::Pass, None) => panic!("a malformed query was forwarded"),
        (Verdict::Reply(answer), query) => {
            let query = query.expect("only well-formed queries are answered");
            let answer = Message::from_vec(&answer).expect("our answer parses");
            assert_eq!(answer.id, query.id);
            assert_eq!(answer.message_type, MessageType::Response);
            assert!(answer.queries == query.queries || answer.queries.is_empty());
        }
    }
    assert!(flow.records().iter().all(|r| r["type"] == "REQUEST"));

    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("fuzz rules parse");
    if let Some(query) = query_for(data) {
        assert_eq!(flow.send(&query), Verdict::Pass);
    }
    let verdict = flow.receive(data);
    let answered = parsed.is_some_and(|m| m.message_type == MessageType::Response);
    assert!(verdict == Verdict::Drop || answered, "a malformed response was forwarded");
}

fn tcp(data: &[u8]) {
    // The bytes as a raw client stream, whole and in two pieces.
    let split = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut conn = StreamTester::<DnsTcp>::new(RULES).expect("fuzz rules parse");
    conn.send(&data[..split]).send(&data[split..]).send_end();

    // The bytes framed, as a query and as the response to a matching query.
    let framed = frame(data);
    let mut conn = StreamTester::<DnsTcp>::new(RULES).expect("fuzz rules parse");
    conn.send(&framed).send_end();
    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("fuzz rules parse");
    if let Some(query) = query_for(data) {
        conn.send(&frame(&query));
    }
    let split = split.min(framed.len());
    conn.receive(&framed[..split]).receive(&framed[split..]).receive_end();
}

/// A standard query with the id and questions of `data`'s header and
/// question section, if those parse.
fn query_for(data: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = BinDecoder::new(data);
    let header = Header::read(&mut decoder).ok()?;
    let count = usize::from(header.counts.queries).min(16);
    let queries = (0..count).map(|_| Query::read(&mut decoder)).collect::<Result<Vec<_>, _>>().ok()?;
    if queries.is_empty() {
        return None;
    }
    let mut query = Message::new(header.id, MessageType::Query, OpCode::Query);
    query.queries = queries;
    query.to_vec().ok()
}

fn frame(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&data[..usize::from(len)]);
    out
}
