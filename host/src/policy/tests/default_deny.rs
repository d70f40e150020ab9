//! When default deny switches on, per direction.

use super::*;

#[test]
fn without_policy_everything_is_allowed() {
    let e = explain_query("", &query("frontend/web", "backend/api", 80, TCP));
    assert_eq!(e.verdict, Verdict::Allowed);
    assert!(matches!(e.egress.decided_by, DecidedBy::NoPolicy));
    assert!(matches!(e.ingress.decided_by, DecidedBy::NoPolicy));
}

#[test]
fn empty_rule_in_a_section_denies_everything_in_that_direction_only() {
    let policy = cnp("backend", "deny-in", "endpointSelector: {}\ningress:\n  - {}");
    check(
        &policy,
        &[
            ("frontend/web", "backend/api", 80, TCP, false),
            ("world", "backend/api", 80, TCP, false),
            ("backend/api", "db/postgres", 5432, TCP, true),
        ],
    );
    let e = explain_query(&policy, &query("frontend/web", "backend/api", 80, TCP));
    let DecidedBy::DefaultDeny { enforced_by } = &e.ingress.decided_by else { panic!("{e}") };
    assert_eq!(enforced_by[0].to_string(), "backend/deny-in");
}

#[test]
fn empty_section_list_does_not_switch_default_deny_on() {
    let policy = cnp("backend", "nothing", "endpointSelector: {}\ningress: []\negress: []");
    check(
        &policy,
        &[("frontend/web", "backend/api", 80, TCP, true), ("backend/api", "world", 443, TCP, true)],
    );
}

#[test]
fn ciliums_deny_all_example_egress_empty_rule() {
    let policy = cnp("frontend", "deny-egress", "endpointSelector: {}\negress:\n  - {}");
    check(
        &policy,
        &[("frontend/web", "backend/api", 80, TCP, false), ("backend/api", "frontend/web", 80, TCP, true)],
    );
}

#[test]
fn deny_sections_with_empty_rules_switch_default_deny_on_and_allows_still_open_paths() {
    let policies = cnp(
        "frontend",
        "default-deny",
        "endpointSelector: {}\ningressDeny: [ {} ]\negressDeny: [ {} ]",
    ) + &cnp(
        "frontend",
        "allow-api",
        "endpointSelector: {}\negress:\n  - toEndpoints:\n      - matchLabels: {\"k8s:io.kubernetes.pod.namespace\": backend}",
    );
    check(
        &policies,
        &[
            ("frontend/web", "backend/api", 80, TCP, true),
            ("frontend/web", "db/postgres", 5432, TCP, false),
            ("frontend/web", "world", 443, TCP, false),
            ("backend/api", "frontend/web", 80, TCP, false),
        ],
    );
}

#[test]
fn enable_default_deny_false_adds_allows_without_denying_the_rest() {
    let policy = cnp(
        "backend",
        "audit-like",
        r#"endpointSelector: {}
enableDefaultDeny: {ingress: false}
ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": frontend, app: web}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]"#,
    );
    check(
        &policy,
        &[
            ("frontend/web", "backend/api", 80, TCP, true),
            ("frontend/other", "backend/api", 80, TCP, true),
            ("world", "backend/api", 9999, TCP, true),
        ],
    );
    let e = explain_query(&policy, &query("frontend/other", "backend/api", 80, TCP));
    assert!(matches!(e.ingress.decided_by, DecidedBy::NoPolicy), "{e}");
}

#[test]
fn enable_default_deny_false_still_enforces_l7_rules() {
    // Cilium: EnableDefaultDeny does not apply to L7 rules.
    let policy = cnp(
        "backend",
        "l7-no-default-deny",
        r#"endpointSelector: {}
enableDefaultDeny: {ingress: false, egress: false}
ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": frontend, app: web}}]
    toPorts:
      - ports: [{port: "80", protocol: TCP}]
        rules: {http: [{method: GET, path: "/public/.*"}]}"#,
    );
    assert_eq!(http(&policy, "frontend/web", "backend/api", "GET", "/public/a").verdict, Verdict::Allowed);
    let denied = http(&policy, "frontend/web", "backend/api", "POST", "/public/a");
    assert_eq!(denied.verdict, Verdict::Denied);
    assert_eq!(denied.l7.unwrap().verdict, L7Verdict::Denied);
    // Peers the L7 rule does not name, and other ports, stay default-allow.
    let other = http(&policy, "frontend/other", "backend/api", "POST", "/admin");
    assert_eq!(other.verdict, Verdict::Allowed);
    assert!(other.l7.is_none());
    check(&policy, &[("frontend/web", "backend/api", 8080, TCP, true)]);
}

#[test]
fn default_deny_is_per_endpoint_selection() {
    let policy = cnp("backend", "api-only", "endpointSelector: {matchLabels: {app: api}}\ningress: [{}]");
    check(
        &policy,
        &[("frontend/web", "backend/api", 80, TCP, false), ("frontend/web", "backend/web", 80, TCP, true)],
    );
}
