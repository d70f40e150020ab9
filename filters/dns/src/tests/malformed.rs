//! Malformed messages: dropped (UDP) or the connection closed (TCP), with
//! an ERROR record, and never a panic. Also the well-formed queries that
//! are not lookups, which are refused.

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::RecordType;
use porin_sdk::Verdict;
use porin_sdk::driver::DriverError;
use porin_sdk::testing::{DatagramTester, StreamTester};

use super::{ALLOW_ALL, assert_denial, frame, parse, query};
use crate::tcp::{ERROR_QUERY, ERROR_RESPONSE};
use crate::{DnsTcp, DnsUdp};

/// A 12-byte header: id 0x1234, the flag bytes, and the four counts.
fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = vec![0x12, 0x34];
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// A question for `a.test` IN A, raw.
const QUESTION: &[u8] = b"\x01a\x04test\x00\x00\x01\x00\x01";
/// An OPT record, raw.
const OPT: &[u8] = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/// Messages that are not DNS, by what is wrong; `qr` is the QR bit to set
/// so each is otherwise what the side sending it would send.
fn corpus(qr: u16) -> Vec<(&'static str, Vec<u8>)> {
    let flags = qr | 0x0100;
    let with = |counts: [u16; 4], body: &[&[u8]]| [header(flags, counts), body.concat()].concat();
    let long_label = [&[63u8][..], &[b'x'; 63]].concat();
    let too_long_name = [long_label.repeat(5), b"\x00\x00\x01\x00\x01".to_vec()].concat();
    vec![
        ("empty", vec![]),
        ("one byte", vec![0x12]),
        ("truncated header", header(flags, [1, 0, 0, 0])[..11].to_vec()),
        ("question missing", with([1, 0, 0, 0], &[])),
        ("question without class", with([1, 0, 0, 0], &[&QUESTION[..QUESTION.len() - 2]])),
        ("label past the end", with([1, 0, 0, 0], &[b"\x05ab"])),
        ("name without its root label", with([1, 0, 0, 0], &[b"\x01a\x04test"])),
        ("reserved label type 01", with([1, 0, 0, 0], &[b"\x41a\x00\x00\x01\x00\x01"])),
        ("reserved label type 10", with([1, 0, 0, 0], &[b"\x81a\x00\x00\x01\x00\x01"])),
        ("name over 255 bytes", with([1, 0, 0, 0], &[&too_long_name])),
        ("pointer to itself", with([1, 0, 0, 0], &[b"\xc0\x0c\x00\x01\x00\x01"])),
        ("pointer forwards", with([1, 0, 0, 0], &[b"\xc0\x12\x00\x01\x00\x01\x01a\x00"])),
        (
            "pointer loop",
            with([2, 0, 0, 0], &[b"\x01a\xc0\x12\x00\x01\x00\x01\x01b\xc0\x0c\x00\x01\x00\x01"]),
        ),
        ("pointer past the end", with([1, 0, 0, 0], &[b"\xc3\xff\x00\x01\x00\x01"])),
        ("huge question count", with([0xffff, 0, 0, 0], &[QUESTION])),
        ("huge record counts", with([1, 0xffff, 0xffff, 0xffff], &[QUESTION])),
        ("record count past the end", with([1, 0, 0, 1], &[QUESTION])),
        (
            "rdlength past the end",
            with([1, 0, 0, 1], &[QUESTION, b"\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x64\x01\x02"]),
        ),
        (
            "A record of 3 bytes",
            with([1, 1, 0, 0], &[QUESTION, b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x03\x01\x02\x03"]),
        ),
        ("two OPT records", with([1, 0, 0, 2], &[QUESTION, OPT, OPT])),
        ("OPT in the answers", with([1, 1, 0, 0], &[QUESTION, OPT])),
        ("trailing bytes", with([1, 0, 0, 0], &[QUESTION, b"\x00"])),
        ("trailing garbage", with([1, 0, 0, 0], &[QUESTION, b"GET / HTTP/1.1\r\n\r\n"])),
        ("not DNS at all", b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec()),
    ]
}

/// The wrong QR bit for the side: a response from the client, a query
/// from the server.
fn wrong_direction(qr: u16) -> Vec<u8> {
    [header(qr | 0x0100, [1, 0, 0, 0]), QUESTION.to_vec()].concat()
}

fn assert_error_record(records: &[serde_json::Value], kind: &str, case: &str) {
    let record = records.last().unwrap_or_else(|| panic!("{case}: no record"));
    assert_eq!(record["type"], kind, "{case}");
    assert_eq!(record["verdict"], "ERROR", "{case}");
    assert!(record["error"].as_str().is_some_and(|e| !e.is_empty()), "{case}: {record}");
}

#[test]
fn malformed_queries_are_dropped_over_udp() {
    let mut cases = corpus(0);
    cases.push(("QR set from the client", wrong_direction(0x8000)));
    for (case, data) in cases {
        let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
        assert_eq!(flow.send(&data), Verdict::Drop, "{case}");
        assert_eq!(flow.records().len(), 1, "{case}");
        assert_error_record(flow.records(), "REQUEST", case);
    }
}

#[test]
fn malformed_responses_are_dropped_over_udp() {
    let mut cases = corpus(0x8000);
    cases.push(("QR clear from the server", wrong_direction(0)));
    for (case, data) in cases {
        let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
        assert_eq!(flow.send(&query(0x1234, &[("a.test.", RecordType::A)])), Verdict::Pass);
        assert_eq!(flow.receive(&data), Verdict::Drop, "{case}");
        assert_error_record(flow.records(), "RESPONSE", case);
    }
}

#[test]
fn malformed_queries_close_tcp_connections() {
    let mut cases = corpus(0);
    cases.push(("QR set from the client", wrong_direction(0x8000)));
    for (case, data) in cases.into_iter().filter(|(_, d)| !d.is_empty()) {
        let good = query(1, &[("a.test.", RecordType::A)]);
        let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
        conn.send(&[frame(&good), frame(&data), frame(&good)].concat());
        assert_eq!(conn.upstream(), frame(&good), "{case}: only the query before it passes");
        assert!(
            matches!(conn.closed(), Some(DriverError::Filter { code: ERROR_QUERY, .. })),
            "{case}: {:?}",
            conn.closed()
        );
        assert_error_record(conn.records(), "REQUEST", case);
    }
}

#[test]
fn malformed_responses_close_tcp_connections() {
    let mut cases = corpus(0x8000);
    cases.push(("QR clear from the server", wrong_direction(0)));
    for (case, data) in cases.into_iter().filter(|(_, d)| !d.is_empty()) {
        let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
        conn.send(&frame(&query(0x1234, &[("a.test.", RecordType::A)])));
        conn.receive(&frame(&data));
        assert!(conn.downstream().is_empty(), "{case}");
        assert!(
            matches!(conn.closed(), Some(DriverError::Filter { code: ERROR_RESPONSE, .. })),
            "{case}: {:?}",
            conn.closed()
        );
        assert_error_record(conn.records(), "RESPONSE", case);
    }
}

#[test]
fn tcp_framing_errors_close_the_connection() {
    let good = frame(&query(1, &[("a.test.", RecordType::A)]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length message", [good.clone(), vec![0, 0]].concat()),
        ("length prefix cut at end of stream", [good.clone(), vec![0]].concat()),
        ("message cut at end of stream", [good.clone(), frame(&good)[..10].to_vec()].concat()),
        (
            "length bigger than the rest at end of stream",
            [good.clone(), vec![0xff, 0xff], good.clone()].concat(),
        ),
    ];
    for (case, stream) in cases {
        for reply in [false, true] {
            let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
            if reply {
                conn.send(&good);
                conn.receive(&stream).receive_end();
            } else {
                conn.send(&stream).send_end();
                assert_eq!(conn.upstream(), good, "{case}");
            }
            let code = if reply { ERROR_RESPONSE } else { ERROR_QUERY };
            let closed = conn.closed();
            assert!(
                matches!(closed, Some(DriverError::Filter { code: c, .. }) if *c == code),
                "{case}/{reply}: {closed:?}"
            );
            assert_error_record(conn.records(), if reply { "RESPONSE" } else { "REQUEST" }, case);
        }
    }
}

#[test]
fn a_partial_message_waits_for_the_rest() {
    let good = frame(&query(1, &[("a.test.", RecordType::A)]));
    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
    conn.send(&good[..1]).send(&good[1..5]);
    assert!(conn.upstream().is_empty() && conn.records().is_empty());
    conn.send(&good[5..]);
    assert_eq!(conn.upstream(), good);
    assert_eq!(conn.closed(), None);
}

#[test]
fn other_opcodes_and_empty_questions_are_refused() {
    for opcode in [OpCode::Status, OpCode::Notify, OpCode::Update, OpCode::Unknown(1), OpCode::Unknown(15)] {
        let mut message = Message::new(9, MessageType::Query, opcode);
        message.queries = parse(&query(9, &[("a.test.", RecordType::SOA)])).queries;
        let bytes = message.to_vec().expect("encodes");
        let mut flow = DatagramTester::<DnsUdp>::new(
            r#"{"dns":[{"matchPattern":"*"}],"rejectResponseCode":"nameError"}"#,
        )
        .expect("rules");
        let Verdict::Reply(answer) = flow.send(&bytes) else { panic!("{opcode:?} not refused") };
        assert_denial(&answer, &bytes, 5);
        assert_eq!(flow.records()[0]["verdict"], "DROPPED");
    }
    let empty = query(10, &[]);
    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
    let Verdict::Reply(answer) = flow.send(&empty) else { panic!("no question, not refused") };
    assert_denial(&answer, &empty, 5);
    assert!(flow.records()[0].get("dns.query").is_none());
}

#[test]
fn unsolicited_tcp_responses_are_discarded() {
    let q = query(1, &[("a.test.", RecordType::A)]);
    let mut answer = parse(&q);
    answer.metadata.message_type = MessageType::Response;
    let answer = answer.to_vec().expect("encodes");
    let mut stray = parse(&answer);
    stray.metadata.id = 2;
    let stray = stray.to_vec().expect("encodes");
    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
    conn.send(&frame(&q));
    conn.receive(&[frame(&stray), frame(&answer)].concat());
    assert_eq!(conn.downstream(), frame(&answer));
    assert_eq!(conn.closed(), None);
}
