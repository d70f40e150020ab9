//! DNS over UDP, replaying datagrams dig and dnsmasq exchanged.

use hickory_proto::rr::RecordType;
use porin_sdk::testing::{DatagramTester, TEST_RULE_SET, take_logs, test_meta};
use porin_sdk::{DatagramFilter, RuleSets, Verdict};
use serde_json::Value;

use super::{ALLOW_ALL, FIXTURE_RULES, assert_denial, fixture, parse, query, strs};
use crate::{DnsRules, DnsUdp};

/// The fixture pairs: (name, query, response).
fn exchange(name: &str) -> (Vec<u8>, Vec<u8>) {
    (fixture(&format!("udp-{name}.query.bin")), fixture(&format!("udp-{name}.response.bin")))
}

const EXCHANGES: &[&str] = &[
    "a-example",
    "a-sub-example",
    "mixed-case",
    "a-host",
    "aaaa-host",
    "cname-chain",
    "cname-chain-aaaa",
    "nxdomain",
    "refused",
    "no-edns",
];

/// Runs one query and its response through a fresh flow; returns both
/// verdicts and the records.
fn run(rules: &str, name: &str) -> (Verdict, Verdict, Vec<Value>) {
    let (q, r) = exchange(name);
    let mut flow = DatagramTester::<DnsUdp>::new(rules).expect("rules");
    let sent = flow.send(&q);
    let received = flow.receive(&r);
    (sent, received, flow.records().to_vec())
}

#[test]
fn allowed_exchanges_pass_unchanged_with_records() {
    for name in EXCHANGES {
        let (q, r) = exchange(name);
        let (sent, received, records) = run(ALLOW_ALL, name);
        assert_eq!(sent, Verdict::Pass, "{name}");
        assert_eq!(received, Verdict::Pass, "{name}");
        let (query, response) = (parse(&q), parse(&r));
        let qname = query.queries[0].name().to_ascii().to_ascii_lowercase();
        let [request, answer] = &records[..] else { panic!("{name}: {records:?}") };
        assert_eq!(request["type"], "REQUEST");
        assert_eq!(request["verdict"], "FORWARDED");
        assert_eq!(request["dns.query"], qname.as_str());
        assert_eq!(request["dns.id"], query.id);
        assert_eq!(answer["type"], "RESPONSE");
        assert_eq!(answer["verdict"], "FORWARDED");
        assert_eq!(answer["dns.query"], qname.as_str());
        assert_eq!(answer["dns.id"], response.id);
        assert_eq!(answer["dns.rcode"], u16::from(response.response_code));
        assert!(answer["latency_ns"].as_u64().is_some(), "{name}: {answer}");
    }
}

/// The exact answers dnsmasq was configured with (see capture.py).
#[test]
fn records_carry_exact_addresses_cnames_and_ttls() {
    let response = |name: &str| run(ALLOW_ALL, name).2.pop().expect("response record");
    let a = response("a-host");
    assert_eq!(a["dns.query"], "db.internal.test.");
    assert_eq!(strs(&a, "dns.qtypes"), ["A"]);
    assert_eq!(strs(&a, "dns.ips"), ["192.0.2.10"]);
    assert!(strs(&a, "dns.cnames").is_empty());
    assert_eq!(a["dns.ttl"], 300);
    assert_eq!(a["dns.rcode"], 0);
    assert_eq!(strs(&a, "dns.answers"), ["db.internal.test. A 300 192.0.2.10"]);

    let aaaa = response("aaaa-host");
    assert_eq!(strs(&aaaa, "dns.qtypes"), ["AAAA"]);
    assert_eq!(strs(&aaaa, "dns.ips"), ["2001:db8::10"]);
    assert_eq!(aaaa["dns.ttl"], 300);
    assert_eq!(strs(&aaaa, "dns.answers"), ["db.internal.test. AAAA 300 2001:db8::10"]);

    // www -> edge (TTL 600) -> db (TTL 120) -> addresses (TTL 300).
    for (name, ip, rtype) in
        [("cname-chain", "192.0.2.10", "A"), ("cname-chain-aaaa", "2001:db8::10", "AAAA")]
    {
        let chain = response(name);
        assert_eq!(chain["dns.query"], "www.internal.test.");
        assert_eq!(strs(&chain, "dns.cnames"), ["edge.internal.test.", "db.internal.test."]);
        assert_eq!(strs(&chain, "dns.ips"), [ip]);
        assert_eq!(chain["dns.ttl"], 120);
        assert_eq!(
            strs(&chain, "dns.answers"),
            [
                "www.internal.test. CNAME 600 edge.internal.test.".to_string(),
                "edge.internal.test. CNAME 120 db.internal.test.".to_string(),
                format!("db.internal.test. {rtype} 300 {ip}"),
            ]
        );
    }

    let wildcard = response("a-sub-example");
    assert_eq!(strs(&wildcard, "dns.ips"), ["192.0.2.1"]);

    let nxdomain = response("nxdomain");
    assert_eq!(nxdomain["dns.rcode"], 3);
    assert!(strs(&nxdomain, "dns.ips").is_empty());
    assert!(nxdomain.get("dns.ttl").is_none());

    let refused = response("refused");
    assert_eq!(refused["dns.rcode"], 5);
}

#[test]
fn mixed_case_names_match_and_are_recorded_lowercase() {
    let (sent, received, records) = run(r#"{"dns":[{"matchName":"API.example.test"}]}"#, "mixed-case");
    assert_eq!((sent, received), (Verdict::Pass, Verdict::Pass));
    assert_eq!(records[0]["dns.query"], "api.example.test.");
    assert_eq!(strs(&records[1], "dns.answers"), ["api.example.test. A 300 192.0.2.1"]);
}

#[test]
fn denied_queries_are_answered_refused() {
    let (q, r) = exchange("refused");
    let mut flow = DatagramTester::<DnsUdp>::new(FIXTURE_RULES).expect("rules");
    let Verdict::Reply(answer) = flow.send(&q) else { panic!("not answered") };
    assert_denial(&answer, &q, 5);
    let record = &flow.records()[0];
    assert_eq!(record["type"], "REQUEST");
    assert_eq!(record["verdict"], "DROPPED");
    assert_eq!(record["dns.query"], "blocked.other.test.");
    assert_eq!(strs(record, "dns.qtypes"), ["A"]);
    assert_eq!(record["dns.id"], parse(&q).id);
    assert_eq!(record["dns.rcode"], 5);
    // The server never saw the query: a response to it is unsolicited.
    assert_eq!(flow.receive(&r), Verdict::Drop);
    assert_eq!(flow.records().len(), 1);

    // The rest of the fixtures are allowed by the same rules.
    for name in EXCHANGES.iter().filter(|n| **n != "refused") {
        let (sent, received, _) = run(FIXTURE_RULES, name);
        assert_eq!((sent, received), (Verdict::Pass, Verdict::Pass), "{name}");
    }
}

#[test]
fn denied_queries_can_be_answered_nxdomain() {
    let rules = r#"{"dns":[{"matchName":"example.test"}],"rejectResponseCode":"nameError"}"#;
    for name in ["a-host", "cname-chain", "no-edns", "mixed-case"] {
        let (q, _) = exchange(name);
        let mut flow = DatagramTester::<DnsUdp>::new(rules).expect("rules");
        let Verdict::Reply(answer) = flow.send(&q) else { panic!("{name} not answered") };
        assert_denial(&answer, &q, 3);
        assert_eq!(flow.records()[0]["dns.rcode"], 3);
    }
    let refused = r#"{"dns":[],"rejectResponseCode":"refused"}"#;
    let Verdict::Reply(answer) =
        DatagramTester::<DnsUdp>::new(refused).expect("rules").send(&exchange("a-host").0)
    else {
        panic!("not answered")
    };
    assert_denial(&answer, &exchange("a-host").0, 5);
}

#[test]
fn unsolicited_and_repeated_responses_are_dropped() {
    let (q, r) = exchange("a-host");
    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
    take_logs();
    assert_eq!(flow.receive(&r), Verdict::Drop);
    assert!(flow.records().is_empty());
    assert!(
        take_logs().iter().any(|(level, line)| *level == 1 && line.contains("answers no outstanding query"))
    );

    assert_eq!(flow.send(&q), Verdict::Pass);
    assert_eq!(flow.receive(&r), Verdict::Pass);
    assert_eq!(flow.receive(&r), Verdict::Drop, "a second answer to the same query");
    assert_eq!(flow.records().len(), 2);

    // Same id, other question: not the answer to this query.
    let (q2, _) = exchange("aaaa-host");
    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
    assert_eq!(flow.send(&q2), Verdict::Pass);
    let mut spoofed = r.clone();
    spoofed[..2].copy_from_slice(&q2[..2]);
    assert_eq!(flow.receive(&spoofed), Verdict::Drop);
    assert_eq!(flow.records().len(), 1);
}

#[test]
fn several_outstanding_queries_match_by_id() {
    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
    let pairs: Vec<_> = ["a-host", "aaaa-host", "cname-chain"].iter().map(|n| exchange(n)).collect();
    for (q, _) in &pairs {
        assert_eq!(flow.send(q), Verdict::Pass);
    }
    for (_, r) in pairs.iter().rev() {
        assert_eq!(flow.receive(r), Verdict::Pass);
    }
    let responses: Vec<_> = flow.records().iter().filter(|r| r["type"] == "RESPONSE").collect();
    assert_eq!(strs(responses[0], "dns.cnames").len(), 2);
    assert_eq!(strs(responses[1], "dns.ips"), ["2001:db8::10"]);
    assert_eq!(strs(responses[2], "dns.ips"), ["192.0.2.10"]);
}

#[test]
fn multiple_questions_need_every_name_allowed() {
    let rules = r#"{"dns":[{"matchPattern":"*.example.test"}]}"#;
    let both = query(7, &[("a.example.test.", RecordType::A), ("b.example.test.", RecordType::AAAA)]);
    let mut flow = DatagramTester::<DnsUdp>::new(rules).expect("rules");
    assert_eq!(flow.send(&both), Verdict::Pass);
    assert_eq!(strs(&flow.records()[0], "dns.qtypes"), ["A", "AAAA"]);
    assert_eq!(flow.records()[0]["dns.query"], "a.example.test.");

    let one_denied = query(8, &[("a.example.test.", RecordType::A), ("other.test.", RecordType::A)]);
    let Verdict::Reply(answer) = flow.send(&one_denied) else { panic!("not denied") };
    assert_denial(&answer, &one_denied, 5);
}

/// A flow with its own rule sets, to replace and remove them.
struct Flow {
    rules: RuleSets<DnsRules>,
    filter: DnsUdp,
    meta: porin_sdk::ConnectionMeta,
}

impl Flow {
    fn send(&mut self, data: &[u8]) -> Verdict {
        let rules = self.rules.get(TEST_RULE_SET);
        porin_sdk::datagram(&mut self.filter, &self.meta, rules.as_deref(), false, data).0
    }
}

#[test]
fn replaced_rules_apply_to_the_next_query_and_removed_rules_deny() {
    let meta = test_meta();
    let mut flow = Flow { rules: RuleSets::default(), filter: DnsUdp::new(&meta), meta };
    flow.rules.set(TEST_RULE_SET, r#"{"dns":[{"matchName":"db.internal.test"}]}"#).expect("rules");
    let (a, _) = exchange("a-host");
    let (example, _) = exchange("a-example");
    assert_eq!(flow.send(&a), Verdict::Pass);
    assert!(matches!(flow.send(&example), Verdict::Reply(_)));

    flow.rules.set(TEST_RULE_SET, r#"{"dns":[{"matchName":"example.test"}]}"#).expect("rules");
    assert!(matches!(flow.send(&a), Verdict::Reply(_)));
    assert_eq!(flow.send(&example), Verdict::Pass);

    // A refused replacement keeps the rules in force.
    assert!(flow.rules.set(TEST_RULE_SET, r#"{"dns":[{"matchName":"bad name"}]}"#).is_err());
    assert_eq!(flow.send(&example), Verdict::Pass);

    flow.rules.remove(TEST_RULE_SET);
    let Verdict::Reply(answer) = flow.send(&example) else { panic!("removed rules must deny") };
    assert_denial(&answer, &example, 5);
}
