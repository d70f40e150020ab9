//! The rule set JSON the host hands the filter.

use porin_sdk::Rules;

use super::*;
use crate::HttpRules;

#[test]
fn rules_objects_parse() {
    assert!(HttpRules::parse(VISIBILITY).is_ok());
    assert!(HttpRules::parse(PUBLIC).is_ok());
    assert!(HttpRules::parse(r#"{"http":[]}"#).is_ok());
    let full = r#"{"http":[{"method":"GET","path":"/a","host":"h\\..*","headers":["X-A: 1"],
        "headerMatches":[{"name":"X-B","value":"2","mismatch":"LOG"}]}]}"#;
    assert!(HttpRules::parse(full).is_ok());
}

#[test]
fn invalid_rules_explain_themselves() {
    let err = HttpRules::parse(r#"{"http":[{}, {"path":"/a("}]}"#).unwrap_err();
    assert!(err.contains("http[1].path") && err.contains("regular expression"), "{err}");
    assert!(HttpRules::parse(r#"{"http":[{"methd":"GET"}]}"#).unwrap_err().contains("methd"));
    assert!(HttpRules::parse(r#"{"kafka":[]}"#).is_err());
    assert!(HttpRules::parse("{}").unwrap_err().contains("http"));
    assert!(HttpRules::parse("not json").is_err());
}

#[test]
fn an_invalid_replacement_keeps_the_old_rules() {
    let mut t = tester(PUBLIC);
    assert!(t.set_rules(r#"{"http":[{"path":"("}]}"#).is_err());
    t.send(b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(t.downstream(), FORBIDDEN);
}

#[test]
fn host_and_header_rules_see_the_request() {
    let rules = r#"{"http":[{"host":"api\\.example(:8080)?","headers":["X-Env: prod"]}]}"#;
    let allowed = b"GET /x HTTP/1.1\r\nHost: api.example:8080\r\nX-Env:  prod\r\n\r\n";
    let wrong_host = b"GET /x HTTP/1.1\r\nHost: www.api.example\r\nX-Env: prod\r\n\r\n";
    let no_header = b"GET /x HTTP/1.1\r\nHost: api.example\r\n\r\n";
    let mut t = tester(rules);
    t.send(allowed).receive(&ok("")).send(wrong_host).send(no_header);
    assert_eq!(t.upstream(), allowed);
    assert_eq!(t.downstream(), [&ok("")[..], FORBIDDEN, FORBIDDEN].concat());
}
