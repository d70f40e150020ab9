//! DNS over TCP, replaying the byte streams of dig/dnsmasq connections.

use porin_sdk::driver::DriverError;
use porin_sdk::testing::StreamTester;
use serde_json::Value;

use super::{ALLOW_ALL, FIXTURE_RULES, assert_denial, fixture, frame, frames, parse, strs};
use crate::DnsTcp;
use crate::tcp::ERROR_QUERY;

fn session(name: &str) -> (Vec<u8>, Vec<u8>) {
    (fixture(&format!("tcp-{name}.client.bin")), fixture(&format!("tcp-{name}.server.bin")))
}

const SESSIONS: &[&str] = &["keepopen", "single", "pipelined"];

/// Feeds a whole session in chunks of `chunk` bytes: first the client's
/// bytes, then the server's.
fn replay(rules: &str, client: &[u8], server: &[u8], chunk: usize) -> StreamTester<DnsTcp> {
    let mut conn = StreamTester::<DnsTcp>::new(rules).expect("rules");
    for piece in client.chunks(chunk) {
        conn.send(piece);
    }
    for piece in server.chunks(chunk) {
        conn.receive(piece);
    }
    conn.send_end().receive_end();
    conn
}

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

#[test]
fn allowed_sessions_pass_byte_exact() {
    for name in SESSIONS {
        let (client, server) = session(name);
        for chunk in [usize::MAX, 1, 3] {
            let conn = replay(ALLOW_ALL, &client, &server, chunk);
            assert_eq!(conn.closed(), None, "{name}");
            assert_eq!(conn.upstream(), client, "{name} by {chunk}");
            assert_eq!(conn.downstream(), server, "{name} by {chunk}");
            let queries = frames(&client);
            let requests = of_type(conn.records(), "REQUEST");
            let responses = of_type(conn.records(), "RESPONSE");
            assert_eq!(requests.len(), queries.len(), "{name}");
            assert_eq!(responses.len(), queries.len(), "{name}");
            for (record, query) in requests.iter().zip(&queries) {
                assert_eq!(record["verdict"], "FORWARDED");
                assert_eq!(record["dns.id"], parse(query).id);
            }
        }
    }
}

#[test]
fn pipelined_queries_are_each_enforced() {
    // Client: api.example.test, www.internal.test, blocked.other.test, db.internal.test.
    let (client, server) = session("pipelined");
    let queries = frames(&client);
    let answers = frames(&server);
    for chunk in [usize::MAX, 1] {
        let conn = replay(FIXTURE_RULES, &client, &server, chunk);
        assert_eq!(conn.closed(), None);
        let forwarded: Vec<u8> = [0, 1, 3].iter().flat_map(|i| frame(queries[*i])).collect();
        assert_eq!(conn.upstream(), forwarded, "the third query is held back");
        // Our REFUSED goes out as soon as the query is read; the server's
        // answer to the query it never got is unsolicited and dropped.
        let downstream = frames(conn.downstream());
        assert_eq!(downstream.len(), 4);
        assert_denial(downstream[0], queries[2], 5);
        assert_eq!(downstream[1..], [answers[0], answers[1], answers[3]]);

        let requests = of_type(conn.records(), "REQUEST");
        let verdicts: Vec<_> = requests.iter().map(|r| r["verdict"].as_str().expect("verdict")).collect();
        assert_eq!(verdicts, ["FORWARDED", "FORWARDED", "DROPPED", "FORWARDED"]);
        assert_eq!(requests[2]["dns.query"], "blocked.other.test.");
        let responses = of_type(conn.records(), "RESPONSE");
        assert_eq!(responses.len(), 3);
        assert_eq!(strs(responses[1], "dns.cnames"), ["edge.internal.test.", "db.internal.test."]);
        assert_eq!(strs(responses[1], "dns.ips"), ["192.0.2.10"]);
        assert_eq!(responses[1]["dns.ttl"], 120);
        assert_eq!(strs(responses[2], "dns.ips"), ["2001:db8::10"]);
    }
}

#[test]
fn a_denied_query_in_the_middle_leaves_the_others_alone() {
    // keepopen: example.test, www.internal.test, db.internal.test AAAA, blocked.other.test.
    let (client, server) = session("keepopen");
    let queries = frames(&client);
    let rules = r#"{"dns":[{"matchName":"example.test"},{"matchName":"db.internal.test"}],"rejectResponseCode":"nameError"}"#;
    let mut conn = StreamTester::<DnsTcp>::new(rules).expect("rules");
    conn.send(&client);
    let forwarded: Vec<u8> = [0, 2].iter().flat_map(|i| frame(queries[*i])).collect();
    assert_eq!(conn.upstream(), forwarded);
    let refused = conn.downstream().to_vec();
    let denials = frames(&refused);
    assert_eq!(denials.len(), 2);
    assert_denial(denials[0], queries[1], 3);
    assert_denial(denials[1], queries[3], 3);
    conn.receive(&server);
    let answers = frames(&server);
    let downstream: Vec<u8> = [0, 2].iter().flat_map(|i| frame(answers[*i])).collect();
    assert_eq!(conn.downstream()[refused.len()..], downstream);
    assert_eq!(conn.closed(), None);
}

#[test]
fn replaced_rules_apply_to_the_next_query() {
    let (client, _) = session("pipelined");
    let queries = frames(&client);
    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
    conn.send(&frame(queries[0]));
    assert_eq!(conn.upstream(), frame(queries[0]));

    conn.set_rules(r#"{"dns":[{"matchName":"db.internal.test"}]}"#).expect("rules");
    conn.send(&frame(queries[1]));
    conn.send(&frame(queries[3]));
    assert_eq!(conn.upstream(), [frame(queries[0]), frame(queries[3])].concat());
    assert_denial(&conn.downstream()[2..], queries[1], 5);

    conn.remove_rules();
    let before = conn.downstream().len();
    conn.send(&frame(queries[3]));
    assert_eq!(conn.upstream(), [frame(queries[0]), frame(queries[3])].concat(), "removed rules deny");
    assert_denial(&conn.downstream()[before + 2..], queries[3], 5);
    assert_eq!(conn.closed(), None);
}

#[test]
fn a_malformed_query_closes_after_the_earlier_ones_pass() {
    let (client, _) = session("pipelined");
    let queries = frames(&client);
    let mut bad = queries[1].to_vec();
    bad[2] |= 0x80; // QR=1 from the client
    let stream = [frame(queries[0]), frame(&bad), frame(queries[3])].concat();
    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
    conn.send(&stream);
    assert_eq!(conn.upstream(), frame(queries[0]));
    assert!(
        matches!(conn.closed(), Some(DriverError::Filter { code: ERROR_QUERY, .. })),
        "{:?}",
        conn.closed()
    );
    let last = conn.records().last().expect("records");
    assert_eq!(last["verdict"], "ERROR");
    assert_eq!(last["dns.id"], parse(queries[1]).id);
}

#[test]
fn client_half_close_still_lets_answers_through() {
    let (client, server) = session("single");
    let mut conn = StreamTester::<DnsTcp>::new(ALLOW_ALL).expect("rules");
    conn.send(&client).send_end().receive(&server).receive_end();
    assert_eq!(conn.closed(), None);
    assert_eq!(conn.downstream(), server);
    let response = of_type(conn.records(), "RESPONSE")[0];
    assert_eq!(strs(response, "dns.ips"), ["2001:db8::10"]);
    assert_eq!(strs(response, "dns.qtypes"), ["AAAA"]);
}
