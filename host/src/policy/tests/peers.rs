//! Endpoint selectors, namespace scoping, entities and CIDRs.

use super::*;

fn allow_from(namespace: &str, selector: &str) -> String {
    cnp(
        namespace,
        "allow-from",
        &format!("endpointSelector: {{}}\ningress:\n  - fromEndpoints:\n      - {selector}"),
    )
}

#[test]
fn cnp_peers_default_to_the_policy_namespace() {
    let policy = allow_from("backend", "matchLabels: {app: web}");
    // backend/web has app=web in the policy's namespace; frontend/web does not count.
    check(
        &policy,
        &[("backend/web", "backend/api", 80, TCP, true), ("frontend/web", "backend/api", 80, TCP, false)],
    );
}

#[test]
fn cnp_empty_peer_selector_means_the_policy_namespace() {
    let policy = allow_from("backend", "{}");
    check(
        &policy,
        &[
            ("backend/web", "backend/api", 80, TCP, true),
            ("frontend/web", "backend/api", 80, TCP, false),
            ("world", "backend/api", 80, TCP, false),
            ("host", "backend/api", 80, TCP, false),
        ],
    );
}

#[test]
fn ccnp_empty_peer_selector_means_pods_of_every_namespace() {
    let policy =
        ccnp("from-pods", "endpointSelector: {matchLabels: {app: api}}\ningress:\n  - fromEndpoints: [{}]");
    check(
        &policy,
        &[
            ("frontend/web", "backend/api", 80, TCP, true),
            ("kube-system/coredns", "backend/api", 80, TCP, true),
            ("world", "backend/api", 80, TCP, false),
            ("host", "backend/api", 80, TCP, false),
        ],
    );
}

#[test]
fn namespace_labels_select_across_namespaces() {
    let policy =
        allow_from("backend", "matchLabels: {\"k8s:io.cilium.k8s.namespace.labels.tier\": frontend}");
    check(
        &policy,
        &[("frontend/web", "backend/api", 80, TCP, true), ("backend/web", "backend/api", 80, TCP, false)],
    );
}

#[test]
fn match_expressions_follow_kubernetes_semantics() {
    let cases = [
        // NotIn matches pods that lack the label.
        ("matchExpressions: [{key: team, operator: NotIn, values: [red]}]", "frontend/web", true),
        ("matchExpressions: [{key: team, operator: NotIn, values: [blue]}]", "frontend/other", false),
        ("matchExpressions: [{key: team, operator: In, values: [blue, red]}]", "frontend/other", true),
        ("matchExpressions: [{key: team, operator: Exists}]", "frontend/web", false),
        ("matchExpressions: [{key: team, operator: DoesNotExist}]", "frontend/web", true),
        // Keys with an explicit source, and `any:`.
        ("matchLabels: {\"k8s:app\": web}", "frontend/web", true),
        ("matchLabels: {\"any:app\": web}", "frontend/web", true),
        ("matchLabels: {\"reserved:app\": web}", "frontend/web", false),
    ];
    for (selector, from, expected) in cases {
        let policy = ccnp(
            "expr",
            &format!(
                "endpointSelector: {{matchLabels: {{app: api}}}}\ningress:\n  - fromEndpoints:\n      - {selector}"
            ),
        );
        assert_eq!(allowed(&policy, from, "backend/api", 80, TCP), expected, "{selector} from {from}");
    }
}

#[test]
fn cnp_endpoint_selector_stays_in_its_namespace() {
    let policy = cnp("frontend", "web-deny", "endpointSelector: {matchLabels: {app: web}}\ningress: [{}]");
    check(&policy, &[("world", "frontend/web", 80, TCP, false), ("world", "backend/web", 80, TCP, true)]);
    let foreign = cnp(
        "frontend",
        "foreign",
        "endpointSelector: {matchLabels: {\"k8s:io.kubernetes.pod.namespace\": backend}}\ningress: [{}]",
    );
    assert!(warnings(&foreign).iter().any(|w| w.message.contains("own namespace `frontend`")));
    check(&foreign, &[("world", "frontend/web", 80, TCP, false), ("world", "backend/web", 80, TCP, true)]);
}

#[test]
fn entities_select_reserved_identities() {
    let cases = [
        ("world", "world", true),
        ("world", "203.0.113.9", true),
        ("world", "frontend/web", false),
        ("cluster", "frontend/web", true),
        ("cluster", "host", true),
        ("cluster", "world", false),
        ("all", "203.0.113.9", true),
        ("host", "host", true),
        ("host", "remote-node", false),
        ("remote-node", "remote-node", true),
        ("kube-apiserver", "kube-apiserver", true),
        ("health", "health", true),
        ("init", "init", true),
        ("unmanaged", "unmanaged", true),
        ("ingress", "ingress", true),
    ];
    for (entity, from, expected) in cases {
        let policy = cnp(
            "backend",
            "entities",
            &format!("endpointSelector: {{}}\ningress:\n  - fromEntities: [{entity}]"),
        );
        assert_eq!(allowed(&policy, from, "backend/api", 80, TCP), expected, "{entity} from {from}");
    }
    let egress = ccnp(
        "dns",
        "endpointSelector: {matchLabels: {k8s-app: kube-dns}}\negress:\n  - toEntities: [kube-apiserver]\n    toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]",
    );
    check(
        &egress,
        &[
            ("kube-system/coredns", "kube-apiserver", 443, TCP, true),
            ("kube-system/coredns", "host", 443, TCP, false),
        ],
    );
}

#[test]
fn cidr_rules_with_except() {
    let policy = cnp(
        "backend",
        "cidr",
        r#"endpointSelector: {}
egress:
  - toCIDR: [192.0.2.7]
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.96.0.0/12]}]"#,
    );
    check(
        &policy,
        &[
            ("backend/api", "192.0.2.7", 443, TCP, true),
            ("backend/api", "192.0.2.8", 443, TCP, false),
            ("backend/api", "10.200.0.1", 443, TCP, true),
            ("backend/api", "10.96.0.1", 443, TCP, false),
            ("backend/api", "10.111.255.255", 443, TCP, false),
            // Pod addresses keep their pod identity: CIDR rules do not select them.
            ("backend/api", "10.1.0.30", 5432, TCP, false),
            ("backend/api", "world", 443, TCP, false),
        ],
    );
    let zero = cnp("backend", "zero", "endpointSelector: {}\negress:\n  - toCIDR: [0.0.0.0/0]");
    check(
        &zero,
        &[("backend/api", "world", 443, TCP, true), ("backend/api", "frontend/web", 80, TCP, false)],
    );
}

#[test]
fn ip_peers_resolve_to_pods() {
    let policy =
        allow_from("backend", "matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend, app: web}");
    check(
        &policy,
        &[("10.1.0.10", "backend/api", 80, TCP, true), ("frontend/web", "10.1.0.20", 80, TCP, true)],
    );
}
