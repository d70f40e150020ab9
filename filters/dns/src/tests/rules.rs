//! The rule language: Cilium's matchName / matchPattern semantics.

use hickory_proto::rr::{Name, RecordType};
use porin_sdk::testing::DatagramTester;
use porin_sdk::{Rules, Verdict};

use super::query;
use crate::{DnsRules, DnsUdp, RejectCode};

fn rules(json: &str) -> DnsRules {
    DnsRules::parse(json).unwrap_or_else(|err| panic!("{json}: {err}"))
}

/// A name in presentation form, `\.` and decimal `\DDD` escapes included
/// (hickory reads `\DDD` as octal).
fn name(text: &str) -> Name {
    let mut labels: Vec<Vec<u8>> = vec![Vec::new()];
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'.' => labels.push(Vec::new()),
            b'\\' => {
                let first = bytes.next().expect("escape");
                let byte = if first.is_ascii_digit() {
                    let digits = [first, bytes.next().expect("digit"), bytes.next().expect("digit")];
                    std::str::from_utf8(&digits).expect("ascii").parse().expect("decimal")
                } else {
                    first
                };
                labels.last_mut().expect("label").push(byte);
            }
            _ => labels.last_mut().expect("label").push(byte),
        }
    }
    labels.retain(|l| !l.is_empty());
    let mut name = Name::from_labels(labels).expect("name");
    name.set_fqdn(true);
    name
}

/// (rule, name, allowed)
const TABLE: &[(&str, &str, bool)] = &[
    // matchName: exact, any case, trailing dot optional on both sides.
    (r#"{"matchName":"example.com"}"#, "example.com.", true),
    (r#"{"matchName":"example.com."}"#, "example.com.", true),
    (r#"{"matchName":"Example.COM"}"#, "example.com.", true),
    (r#"{"matchName":"example.com"}"#, "EXAMPLE.com.", true),
    (r#"{"matchName":"example.com"}"#, "www.example.com.", false),
    (r#"{"matchName":"example.com"}"#, "example.com.evil.", false),
    (r#"{"matchName":"example.com"}"#, "xexample.com.", false),
    (r#"{"matchName":"example.com"}"#, "com.", false),
    (r#"{"matchName":"example.com"}"#, ".", false),
    (r#"{"matchName":"under_score.example"}"#, "under_score.example.", true),
    // A label holding a dot byte is not two labels.
    (r#"{"matchName":"a.b.example"}"#, "a\\.b.example.", false),
    // matchPattern: `*` stays within one label.
    (r#"{"matchPattern":"*.example.com"}"#, "a.example.com.", true),
    (r#"{"matchPattern":"*.example.com"}"#, "WWW.Example.Com.", true),
    (r#"{"matchPattern":"*.example.com"}"#, "a.b.example.com.", false),
    (r#"{"matchPattern":"*.example.com"}"#, "example.com.", false),
    (r#"{"matchPattern":"*.example.com"}"#, "a.example.com.evil.", false),
    (r#"{"matchPattern":"*.example.com"}"#, "a.xexample.com.", false),
    (r#"{"matchPattern":"*.svc.cluster.local"}"#, "db.svc.cluster.local.", true),
    (r#"{"matchPattern":"*.svc.cluster.local"}"#, "db.ns.svc.cluster.local.", false),
    // `*` inside a label, and more than one.
    (r#"{"matchPattern":"api-*.example.com"}"#, "api-v1.example.com.", true),
    (r#"{"matchPattern":"api-*.example.com"}"#, "api-.example.com.", true),
    (r#"{"matchPattern":"api-*.example.com"}"#, "API-V2.example.com.", true),
    (r#"{"matchPattern":"api-*.example.com"}"#, "api.example.com.", false),
    (r#"{"matchPattern":"api-*.example.com"}"#, "xapi-v1.example.com.", false),
    (r#"{"matchPattern":"*cilium.io"}"#, "cilium.io.", true),
    (r#"{"matchPattern":"*cilium.io"}"#, "sub-cilium.io.", true),
    (r#"{"matchPattern":"*cilium.io"}"#, "www.cilium.io.", false),
    (r#"{"matchPattern":"sub*.cilium.io"}"#, "subdomain.cilium.io.", true),
    (r#"{"matchPattern":"sub*.cilium.io"}"#, "www.cilium.io.", false),
    (r#"{"matchPattern":"a*b*c.test"}"#, "abc.test.", true),
    (r#"{"matchPattern":"a*b*c.test"}"#, "a-bb-cc.test.", true),
    (r#"{"matchPattern":"a*b*c.test"}"#, "a-bb-c-d.test.", false),
    (r#"{"matchPattern":"*.*.test"}"#, "a.b.test.", true),
    (r#"{"matchPattern":"*.*.test"}"#, "b.test.", false),
    (r#"{"matchPattern":"web.*"}"#, "web.com.", true),
    (r#"{"matchPattern":"web.*"}"#, "web.co.uk.", false),
    (r#"{"matchPattern":"*."}"#, "com.", true),
    (r#"{"matchPattern":"*."}"#, "example.com.", false),
    // `*` stands for DNS characters only ([-a-zA-Z0-9_]), as in Cilium.
    (r#"{"matchPattern":"*.example.com"}"#, "a\\032b.example.com.", false),
    (r#"{"matchPattern":"*.example.com"}"#, "a\\.b.example.com.", false),
    // A pattern without `*` is an exact name.
    (r#"{"matchPattern":"example.com"}"#, "example.com.", true),
    (r#"{"matchPattern":"example.com"}"#, "a.example.com.", false),
    // A lone `*` matches every name, the root and odd bytes included.
    (r#"{"matchPattern":"*"}"#, ".", true),
    (r#"{"matchPattern":"*"}"#, "com.", true),
    (r#"{"matchPattern":"*"}"#, "a.b.c.d.example.com.", true),
    (r#"{"matchPattern":"*"}"#, "a\\032b.example.com.", true),
    // Both fields in one rule: either matches.
    (r#"{"matchName":"a.test","matchPattern":"*.b.test"}"#, "a.test.", true),
    (r#"{"matchName":"a.test","matchPattern":"*.b.test"}"#, "x.b.test.", true),
    (r#"{"matchName":"a.test","matchPattern":"*.b.test"}"#, "x.a.test.", false),
];

#[test]
fn rule_semantics_table() {
    for (rule, qname, allowed) in TABLE {
        let set = rules(&format!(r#"{{"dns":[{rule}]}}"#));
        assert_eq!(set.allows(&name(qname)), *allowed, "{rule} vs {qname}");
    }
}

#[test]
fn any_rule_matching_allows() {
    let set = rules(
        r#"{"dns":[{"matchName":"a.test"},{"matchPattern":"*.b.test"},{"matchPattern":"api-*.c.test"}]}"#,
    );
    for (qname, allowed) in [
        ("a.test.", true),
        ("x.b.test.", true),
        ("api-1.c.test.", true),
        ("b.test.", false),
        ("x.a.test.", false),
        ("c.test.", false),
    ] {
        assert_eq!(set.allows(&name(qname)), allowed, "{qname}");
    }
    let none = rules(r#"{"dns":[]}"#);
    assert!(!none.allows(&name("a.test.")));
    assert!(!rules("{}").allows(&name(".")));
}

#[test]
fn reject_response_code_option() {
    assert_eq!(rules(r#"{"dns":[]}"#).reject_code(), RejectCode::Refused);
    assert_eq!(rules(r#"{"dns":[],"rejectResponseCode":"refused"}"#).reject_code(), RejectCode::Refused);
    assert_eq!(rules(r#"{"dns":[],"rejectResponseCode":"nameError"}"#).reject_code(), RejectCode::NameError);
    assert!(DnsRules::parse(r#"{"dns":[],"rejectResponseCode":"servfail"}"#).is_err());
}

#[test]
fn invalid_rules_are_refused_with_a_reason() {
    for (json, reason) in [
        (r#"{"dns":[{}]}"#, "needs matchName or matchPattern"),
        (r#"{"dns":[{"matchName":""}]}"#, "invalid DNS name"),
        (r#"{"dns":[{"matchName":"a..b"}]}"#, "invalid DNS name"),
        (r#"{"dns":[{"matchName":".a.b"}]}"#, "invalid DNS name"),
        (r#"{"dns":[{"matchName":"."}]}"#, "invalid DNS name"),
        (r#"{"dns":[{"matchName":"a b.test"}]}"#, "invalid DNS name"),
        (r#"{"dns":[{"matchName":"*.test"}]}"#, "invalid DNS name"),
        (r#"{"dns":[{"matchPattern":"a.*.b/c"}]}"#, "invalid DNS pattern"),
        (r#"{"dns":[{"matchPattern":"**.."}]}"#, "invalid DNS pattern"),
        (r#"{"dns":[{"matchname":"a.test"}]}"#, "unknown field"),
        (r#"{"http":[{}]}"#, "unknown field"),
        (r#"{"dns":{"matchName":"a"}}"#, "invalid"),
        ("not json", "invalid rules"),
    ] {
        let err = DnsRules::parse(json).expect_err(json);
        assert!(err.contains(reason), "{json}: {err}");
    }
}

#[test]
fn rules_decide_through_the_filter() {
    let mut flow =
        DatagramTester::<DnsUdp>::new(r#"{"dns":[{"matchPattern":"*.svc.cluster.local"}]}"#).expect("rules");
    assert_eq!(flow.send(&query(1, &[("db.svc.cluster.local.", RecordType::A)])), Verdict::Pass);
    assert!(matches!(
        flow.send(&query(2, &[("db.ns.svc.cluster.local.", RecordType::A)])),
        Verdict::Reply(_)
    ));
    assert!(matches!(flow.send(&query(3, &[("svc.cluster.local.", RecordType::A)])), Verdict::Reply(_)));
    // The root, asked by a lone-`*` rule set, is a name like any other.
    let mut all = DatagramTester::<DnsUdp>::new(super::ALLOW_ALL).expect("rules");
    assert_eq!(all.send(&query(4, &[(".", RecordType::NS)])), Verdict::Pass);
    assert_eq!(all.records()[0]["dns.query"], ".");
    assert_eq!(all.records()[0]["dns.qtypes"][0], "NS");
}
