//! Kubernetes NetworkPolicy semantics.

use super::*;

#[test]
fn pod_selector_peers_stay_in_the_policy_namespace() {
    let policy = netpol(
        "backend",
        "from-web",
        "podSelector: {matchLabels: {app: api}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: web}}}]\n    ports: [{port: 80}]",
    );
    check(
        &policy,
        &[
            ("backend/web", "backend/api", 80, TCP, true),
            ("backend/web", "backend/api", 80, UDP, false),
            ("frontend/web", "backend/api", 80, TCP, false),
            ("backend/web", "backend/api", 81, TCP, false),
            // Not selected by podSelector: unaffected.
            ("frontend/web", "backend/web", 81, TCP, true),
        ],
    );
}

#[test]
fn namespace_selectors_select_namespace_labels() {
    let policy = netpol(
        "backend",
        "from-frontend",
        "podSelector: {}\ningress:\n  - from:\n      - namespaceSelector: {matchLabels: {tier: frontend}}\n        podSelector: {matchLabels: {app: web}}",
    );
    check(
        &policy,
        &[("frontend/web", "backend/api", 80, TCP, true), ("frontend/other", "backend/api", 80, TCP, false)],
    );
    let any_namespace =
        netpol("backend", "from-any-ns", "podSelector: {}\ningress:\n  - from: [{namespaceSelector: {}}]");
    check(
        &any_namespace,
        &[("frontend/other", "backend/api", 80, TCP, true), ("world", "backend/api", 80, TCP, false)],
    );
    let by_name = netpol(
        "backend",
        "by-name",
        "podSelector: {}\ningress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: db}}}]",
    );
    check(
        &by_name,
        &[("db/postgres", "backend/api", 80, TCP, true), ("frontend/web", "backend/api", 80, TCP, false)],
    );
}

#[test]
fn empty_from_allows_every_source_including_world() {
    let policy =
        netpol("backend", "all-80", "podSelector: {}\ningress:\n  - ports: [{port: 80, protocol: TCP}]");
    check(&policy, &[("world", "backend/api", 80, TCP, true), ("world", "backend/api", 22, TCP, false)]);
}

#[test]
fn ip_blocks_with_except() {
    let policy = netpol(
        "backend",
        "ipblock",
        "podSelector: {}\npolicyTypes: [Egress]\negress:\n  - to: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]",
    );
    check(
        &policy,
        &[
            ("backend/api", "192.0.2.1", 443, TCP, true),
            ("backend/api", "192.0.2.200", 443, TCP, false),
            ("world", "backend/api", 80, TCP, true),
        ],
    );
}

#[test]
fn policy_types_choose_the_enforced_directions() {
    let egress_only = netpol("backend", "deny-egress", "podSelector: {}\npolicyTypes: [Egress]");
    check(
        &egress_only,
        &[("backend/api", "world", 443, TCP, false), ("world", "backend/api", 80, TCP, true)],
    );
    let implicit_ingress = netpol("backend", "deny-ingress", "podSelector: {}");
    check(
        &implicit_ingress,
        &[("world", "backend/api", 80, TCP, false), ("backend/api", "world", 443, TCP, true)],
    );
    // Without policyTypes, egress applies when egress rules exist.
    let implicit_egress =
        netpol("backend", "egress-rules", "podSelector: {}\negress:\n  - ports: [{port: 53, protocol: UDP}]");
    check(
        &implicit_egress,
        &[("backend/api", "world", 53, UDP, true), ("backend/api", "world", 443, TCP, false)],
    );
}

#[test]
fn network_policy_and_cnp_allows_add_up() {
    let policies = netpol(
        "backend",
        "np",
        "podSelector: {}\ningress:\n  - from: [{namespaceSelector: {matchLabels: {tier: frontend}}}]\n    ports: [{port: 80}]",
    ) + &cnp(
        "backend",
        "cnp",
        "endpointSelector: {}\ningress:\n  - fromEntities: [world]\n    toPorts: [{ports: [{port: \"443\"}]}]",
    );
    check(
        &policies,
        &[
            ("frontend/web", "backend/api", 80, TCP, true),
            ("world", "backend/api", 443, TCP, true),
            ("world", "backend/api", 80, TCP, false),
        ],
    );
}
