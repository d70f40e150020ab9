//! The host's per-call and per-record limits hold for the largest inputs.

use std::net::Ipv4Addr;
use std::time::Instant;

use hickory_proto::rr::RecordType;
use porin_sdk::Verdict;
use porin_sdk::testing::{DatagramTester, StreamTester};

use super::{ALLOW_ALL, frame, parse, query, strs};
use crate::{DnsTcp, DnsUdp};

/// The host refuses records over 64 KiB.
const RECORD_LIMIT: usize = 64 * 1024;

fn json_len(record: &serde_json::Value) -> usize {
    serde_json::to_string(record).expect("serialises").len()
}

#[test]
fn the_largest_response_keeps_its_record_under_the_limit() {
    let q = query(1, &[("many.test.", RecordType::A)]);
    // Written by hand: every owner a pointer to the question's name, 16
    // bytes a record, so about 4,000 addresses fit in 64 KiB.
    let mut bytes = q.clone();
    bytes[2] |= 0x80;
    bytes[6..8].copy_from_slice(&4000u16.to_be_bytes());
    for i in 0..4000u32 {
        bytes.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04");
        bytes.extend_from_slice(&Ipv4Addr::from(0x0a00_0000 + i).octets());
    }
    assert!(bytes.len() < 65536);
    assert_eq!(parse(&bytes).answers.len(), 4000);

    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
    conn.send(&frame(&q));
    let started = Instant::now();
    conn.receive(&frame(&bytes));
    eprintln!("4,000-answer response handled in {:?}", started.elapsed());
    assert!(conn.downstream() == frame(&bytes), "{:?}", conn.closed());
    let record = &conn.records()[1];
    assert!(json_len(record) < RECORD_LIMIT, "{} bytes", json_len(record));
    assert_eq!(record["dns.truncated"], "true");
    let ips = strs(record, "dns.ips");
    assert!(ips.len() > 1000);
    assert_eq!(ips[..2], ["10.0.0.0", "10.0.0.1"]);
}

#[test]
fn a_query_with_thousands_of_questions_is_refused_with_a_bounded_record() {
    let names: Vec<String> = (0..3000).map(|i| format!("n{i}.test.")).collect();
    let questions: Vec<(&str, RecordType)> = names.iter().map(|n| (n.as_str(), RecordType::AAAA)).collect();
    let q = query(3, &questions);
    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
    let Verdict::Reply(answer) = flow.send(&q) else { panic!("not refused") };
    assert_eq!(parse(&answer).queries.len(), 3000);
    let record = &flow.records()[0];
    assert_eq!(record["verdict"], "DROPPED");
    assert!(json_len(record) < RECORD_LIMIT);
    assert_eq!(record["dns.truncated"], "true");

    // Up to 16 questions are decided one by one.
    let sixteen = query(4, &questions[..16]);
    assert_eq!(flow.send(&sixteen), Verdict::Pass);
    let seventeen = query(5, &questions[..17]);
    assert!(matches!(flow.send(&seventeen), Verdict::Reply(_)));
}

#[test]
fn many_pipelined_queries_are_handled_in_batches() {
    let stream: Vec<u8> =
        (0..1000u16).flat_map(|id| frame(&query(id, &[("a.test.", RecordType::A)]))).collect();
    let mut conn = StreamTester::<DnsTcp>::new(r#"{"dns":[{"matchName":"b.test"}]}"#).expect("rules");
    conn.send(&stream);
    assert_eq!(conn.closed(), None);
    assert!(conn.upstream().is_empty());
    assert_eq!(conn.records().len(), 1000);
    let mut rest = conn.downstream();
    for id in 0..1000u16 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert_eq!(parse(&rest[2..2 + len]).id, id);
        rest = &rest[2 + len..];
    }
    assert!(rest.is_empty());
}
