//! Deny beats allow, across CNP, CCNP and NetworkPolicy.

use super::*;

fn allow_all_from_frontend(namespace: &str) -> String {
    cnp(
        namespace,
        "allow-frontend",
        r#"endpointSelector: {}
ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": frontend}}]"#,
    )
}

#[test]
fn ccnp_deny_beats_cnp_allow() {
    let policies = allow_all_from_frontend("backend")
        + &ccnp(
            "no-web-to-api",
            r#"endpointSelector: {matchLabels: {app: api}}
ingressDeny:
  - fromEndpoints: [{matchLabels: {app: web}}]"#,
        );
    check(
        &policies,
        &[("frontend/web", "backend/api", 80, TCP, false), ("frontend/other", "backend/api", 80, TCP, true)],
    );
    let e = explain_query(&policies, &query("frontend/web", "backend/api", 80, TCP));
    let DecidedBy::Rule { rule, action, .. } = &e.ingress.decided_by else { panic!("{e}") };
    assert_eq!(rule.path(), "ingressDeny[0]");
    assert_eq!(rule.policy.to_string(), "no-web-to-api");
    assert_eq!(*action, Action::Deny { reason: DenyReason::PolicyDeny });
}

#[test]
fn port_deny_closes_only_that_port() {
    // The table in Cilium's deny policy docs: allow L3 + 80 + 81, deny 80.
    let policies = allow_all_from_frontend("backend")
        + &cnp(
            "backend",
            "deny-80",
            r#"endpointSelector: {}
ingressDeny:
  - toPorts: [{ports: [{port: "80", protocol: TCP}]}]"#,
        );
    check(
        &policies,
        &[
            ("frontend/web", "backend/api", 80, TCP, false),
            ("frontend/web", "backend/api", 81, TCP, true),
            ("frontend/web", "backend/api", 80, UDP, true),
        ],
    );
}

#[test]
fn deny_of_a_peer_shadows_a_more_specific_port_allow() {
    // Allow any peer on 80 (specific port), deny web on every port (L3):
    // the overlap must be denied even though the allow is more specific.
    let policies = cnp(
        "backend",
        "allow-80",
        "endpointSelector: {}\ningress:\n  - toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]",
    ) + &cnp(
        "backend",
        "deny-web",
        "endpointSelector: {}\ningressDeny:\n  - fromEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend, app: web}}]",
    );
    check(
        &policies,
        &[
            ("frontend/web", "backend/api", 80, TCP, false),
            ("frontend/other", "backend/api", 80, TCP, true),
            ("world", "backend/api", 80, TCP, true),
            ("frontend/other", "backend/api", 81, TCP, false),
        ],
    );
}

#[test]
fn deny_beats_network_policy_allow() {
    let policies = netpol(
        "backend",
        "np-allow",
        "podSelector: {}\ningress:\n  - from: [{namespaceSelector: {matchLabels: {tier: frontend}}}]",
    ) + &cnp(
        "backend",
        "deny-web",
        "endpointSelector: {}\ningressDeny:\n  - fromEntities: [world]\n  - fromEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend, app: web}}]\n    toPorts: [{ports: [{port: \"80\"}]}]",
    );
    check(
        &policies,
        &[
            ("frontend/web", "backend/api", 80, TCP, false),
            ("frontend/web", "backend/api", 80, UDP, false),
            ("frontend/web", "backend/api", 443, TCP, true),
            ("frontend/other", "backend/api", 80, TCP, true),
        ],
    );
}

#[test]
fn deny_without_enforcement_still_denies() {
    let policy = cnp(
        "backend",
        "deny-only",
        "endpointSelector: {}\nenableDefaultDeny: {ingress: false}\ningressDeny:\n  - fromEntities: [world]",
    );
    check(
        &policy,
        &[("world", "backend/api", 80, TCP, false), ("frontend/web", "backend/api", 80, TCP, true)],
    );
}
