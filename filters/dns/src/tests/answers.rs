//! How responses become `dns.ips`, `dns.cnames` and `dns.ttl`: the
//! answers FQDN policy will learn from.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use porin_sdk::Verdict;
use porin_sdk::testing::DatagramTester;
use serde_json::Value;

use super::{ALLOW_ALL, parse, query, strs};
use crate::DnsUdp;

fn rr(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(owner).expect("name"), ttl, data)
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    rr(owner, ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn cname(owner: &str, ttl: u32, target: &str) -> Record {
    rr(owner, ttl, RData::CNAME(CNAME(Name::from_ascii(target).expect("name"))))
}

/// The RESPONSE record for `answers` to a query for `qname`/`qtype`.
fn answer(qname: &str, qtype: RecordType, answers: Vec<Record>) -> Value {
    let q = query(42, &[(qname, qtype)]);
    let mut response = Message::new(42, MessageType::Response, OpCode::Query);
    response.queries = parse(&q).queries;
    response.answers = answers;
    let mut flow = DatagramTester::<DnsUdp>::new(ALLOW_ALL).expect("rules");
    assert_eq!(flow.send(&q), Verdict::Pass);
    assert_eq!(flow.receive(&response.to_vec().expect("encodes")), Verdict::Pass);
    flow.records()[1].clone()
}

#[test]
fn addresses_of_the_name_asked() {
    let record = answer(
        "web.test.",
        RecordType::A,
        vec![a("web.test.", 60, [192, 0, 2, 1]), a("WEB.test.", 30, [192, 0, 2, 2])],
    );
    assert_eq!(strs(&record, "dns.ips"), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(record["dns.ttl"], 30);
    assert!(strs(&record, "dns.cnames").is_empty());
}

#[test]
fn chains_are_followed_in_chain_order_whatever_the_record_order() {
    let record = answer(
        "www.test.",
        RecordType::AAAA,
        vec![
            rr("c.test.", 500, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
            cname("b.test.", 400, "c.test."),
            cname("www.test.", 300, "a.test."),
            cname("a.test.", 200, "b.test."),
        ],
    );
    assert_eq!(strs(&record, "dns.cnames"), ["a.test.", "b.test.", "c.test."]);
    assert_eq!(strs(&record, "dns.ips"), ["::1"]);
    assert_eq!(record["dns.ttl"], 200);
    // dns.answers keeps the server's order.
    assert_eq!(strs(&record, "dns.answers")[0], "c.test. AAAA 500 ::1");
}

#[test]
fn records_off_the_chain_count_for_nothing() {
    let record = answer(
        "www.test.",
        RecordType::A,
        vec![
            cname("www.test.", 300, "cdn.test."),
            // An address for the alias itself, and for names nobody asked.
            a("www.test.", 1, [203, 0, 113, 1]),
            a("evil.test.", 1, [203, 0, 113, 2]),
            cname("other.test.", 1, "cdn.test."),
            a("cdn.test.", 60, [192, 0, 2, 7]),
        ],
    );
    assert_eq!(strs(&record, "dns.cnames"), ["cdn.test."]);
    assert_eq!(strs(&record, "dns.ips"), ["192.0.2.7"]);
    assert_eq!(record["dns.ttl"], 60);
    assert_eq!(strs(&record, "dns.answers").len(), 5);
}

#[test]
fn chains_without_addresses_and_loops_end() {
    let dangling = answer("www.test.", RecordType::A, vec![cname("www.test.", 300, "gone.test.")]);
    assert_eq!(strs(&dangling, "dns.cnames"), ["gone.test."]);
    assert!(strs(&dangling, "dns.ips").is_empty());
    assert_eq!(dangling["dns.ttl"], 300);

    let looped = answer(
        "a.test.",
        RecordType::A,
        vec![
            cname("a.test.", 10, "b.test."),
            cname("b.test.", 10, "A.test."),
            a("a.test.", 10, [192, 0, 2, 1]),
        ],
    );
    assert_eq!(strs(&looped, "dns.cnames"), ["b.test."]);
    assert!(strs(&looped, "dns.ips").is_empty());

    // A chain longer than any resolver follows is cut.
    let mut long: Vec<Record> =
        (0..40).map(|i| cname(&format!("n{i}.test."), 10, &format!("n{}.test.", i + 1))).collect();
    long.push(a("n40.test.", 10, [192, 0, 2, 1]));
    let cut = answer("n0.test.", RecordType::A, long);
    assert_eq!(strs(&cut, "dns.cnames").len(), 32);
    assert!(strs(&cut, "dns.ips").is_empty());
}

#[test]
fn only_class_in_addresses_count() {
    let mut chaos = a("web.test.", 10, [192, 0, 2, 9]);
    chaos.dns_class = DNSClass::CH;
    let record = answer("web.test.", RecordType::A, vec![chaos, a("web.test.", 10, [192, 0, 2, 1])]);
    assert_eq!(strs(&record, "dns.ips"), ["192.0.2.1"]);
}

#[test]
fn answers_are_shown_in_presentation_form() {
    let record = answer(
        "odd.test.",
        RecordType::TXT,
        vec![rr("Odd.Test.", 5, RData::TXT(TXT::new(vec!["say \"hi\"".into(), "x\\y\u{1}".into()])))],
    );
    assert_eq!(strs(&record, "dns.answers"), [r#"odd.test. TXT 5 "say \"hi\"" "x\\y\001""#]);
    assert!(strs(&record, "dns.ips").is_empty());
    assert!(record.get("dns.ttl").is_none(), "no chain record, no TTL");
}
