//! Bad input is rejected with a precise error, without touching the
//! policies beside it; unsupported parts fail closed.

use super::*;

fn only_error(policies: &str) -> Diagnostic {
    let mut found = errors(policies);
    assert_eq!(found.len(), 1, "{found:#?}");
    found.remove(0)
}

#[test]
fn invalid_fields_are_errors_naming_the_field() {
    let cases = [
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"80\", protocol: TCPP}]}]",
            "spec.ingress[0].toPorts[0].ports[0].protocol",
            "unknown protocol",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"90\", endPort: 80}]}]",
            "spec.ingress[0].toPorts[0].ports[0].endPort",
            "below port",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"70000\"}]}]",
            "spec.ingress[0].toPorts[0].ports[0].port",
            "out of range",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: http, endPort: 90}]}]",
            "spec.ingress[0].toPorts[0].ports[0].endPort",
            "named port",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: Not_A_Name}]}]",
            "spec.ingress[0].toPorts[0].ports[0].port",
            "invalid port",
        ),
        ("ingress:\n  - fromEntities: [galaxy]", "spec.ingress[0].fromEntities[0]", "unknown entity"),
        ("ingress:\n  - fromCIDR: [10.0.0.300/8]", "spec.ingress[0].fromCIDR[0]", "invalid CIDR"),
        (
            "ingress:\n  - fromCIDRSet: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]",
            "spec.ingress[0].fromCIDRSet[0].except[0]",
            "not inside",
        ),
        (
            "ingress:\n  - fromEndpoints: [{matchExpressions: [{key: a, operator: Includes, values: [b]}]}]",
            "spec.ingress[0].fromEndpoints[0].matchExpressions[0]",
            "unknown operator",
        ),
        (
            "ingress:\n  - fromEndpoints: [{matchExpressions: [{key: a, operator: In}]}]",
            "spec.ingress[0].fromEndpoints[0].matchExpressions[0]",
            "at least one value",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"80\"}], rules: {http: [{path: \"/a(\"}]}}]",
            "spec.ingress[0].toPorts[0].rules.http[0].path",
            "invalid regular expression",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"80\", endPort: 90}], rules: {http: [{}]}}]",
            "spec.ingress[0].toPorts[0].rules.ports[0].port",
            "single port",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"80\", protocol: UDP}], rules: {http: [{}]}}]",
            "spec.ingress[0].toPorts[0].rules.ports[0].protocol",
            "cannot apply to UDP",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"80\"}], rules: {http: [{}], dns: [{matchName: a.b}]}}]",
            "spec.ingress[0].toPorts[0].rules",
            "only one of",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"9092\"}], rules: {kafka: [{role: produce, apiKey: fetch}]}}]",
            "spec.ingress[0].toPorts[0].rules.kafka[0]",
            "mutually exclusive",
        ),
        (
            "ingress:\n  - toPorts: [{ports: [{port: \"9092\"}], rules: {kafka: [{apiKey: nonsense}]}}]",
            "spec.ingress[0].toPorts[0].rules.kafka[0].apiKey",
            "unknown Kafka apiKey",
        ),
        (
            "egress:\n  - toPorts: [{ports: [{port: \"53\"}], rules: {dns: [{matchName: \"bad name\"}]}}]",
            "spec.egress[0].toPorts[0].rules.dns[0].matchName",
            "invalid DNS name",
        ),
        (
            "ingressDeny:\n  - toPorts: [{ports: [{port: \"80\"}], rules: {http: [{}]}}]",
            "spec.ingressDeny[0].toPorts[0].rules",
            "cannot carry L7",
        ),
        (
            "egressDeny:\n  - toFQDNs: [{matchName: a.com}]",
            "spec.egressDeny[0].toFQDNs",
            "not supported in deny rules",
        ),
        ("ingress:\n  - fromRequires: [{matchLabels: {a: b}}]", "spec.ingress[0].fromRequires", "deprecated"),
    ];
    for (rules, field, message) in cases {
        let policy = cnp("backend", "bad", &format!("endpointSelector: {{}}\n{rules}"));
        let error = only_error(&policy);
        assert_eq!(error.location.field.as_deref(), Some(field), "{rules}\n{error}");
        assert!(error.message.contains(message), "{rules}\n{error}");
        assert_eq!(error.location.object.as_deref(), Some("CiliumNetworkPolicy backend/bad"));
    }
}

#[test]
fn typos_are_schema_errors_with_the_field_path() {
    let policy = cnp("backend", "typo", "endpointSelector: {}\ningress:\n  - fromEndpoint: [{}]");
    let error = only_error(&policy);
    assert!(error.message.contains("unknown field `fromEndpoint`"), "{error}");
    assert_eq!(error.location.field.as_deref(), Some("spec.ingress[0].fromEndpoint"));
    assert_eq!(error.location.document, Some(1));
}

#[test]
fn a_bad_policy_does_not_take_down_its_neighbours() {
    let good = cnp("backend", "good", "endpointSelector: {}\ningress:\n  - fromEntities: [world]");
    let bad = cnp("backend", "bad", "endpointSelector: {}\ningress:\n  - fromEntities: [galaxy]");
    let policies = bad + &good;
    let resolved = resolve(&policies);
    assert_eq!(resolved.policies.len(), 1);
    assert_eq!(resolved.policies[0].name, "good");
    check(&policies.replace("galaxy", "world"), &[("world", "backend/api", 80, TCP, true)]);
    let (manifests, mut workloads) = load(&policies);
    let q = query("frontend/web", "backend/api", 80, TCP);
    q.add_pods(&mut workloads);
    let e = explain(&compile(&manifests, &workloads), &q).unwrap();
    assert_eq!(e.verdict, Verdict::Denied, "the good policy still switches default deny on");
}

#[test]
fn unsupported_allow_peers_fail_closed_with_a_warning() {
    let policy = cnp(
        "backend",
        "fqdn",
        "endpointSelector: {}\negress:\n  - toFQDNs: [{matchName: example.com}]\n    toPorts: [{ports: [{port: \"443\"}]}]",
    );
    let found = warnings(&policy);
    assert!(
        found.iter().any(|w| w.location.field.as_deref() == Some("spec.egress[0].toFQDNs")),
        "{found:#?}"
    );
    // The rule must not turn into "any peer on 443".
    check(
        &policy,
        &[("backend/api", "world", 443, TCP, false), ("backend/api", "frontend/web", 443, TCP, false)],
    );
    let icmp_only = cnp(
        "backend",
        "icmp",
        "endpointSelector: {}\ningress:\n  - fromEntities: [world]\n    icmps: [{fields: [{type: 8}]}]",
    );
    check(&icmp_only, &[("world", "backend/api", 80, TCP, false)]);
}

#[test]
fn node_selector_policies_are_reported_and_have_no_effect() {
    let policy = ccnp("host", "nodeSelector: {}\ningress: [{}]");
    let found = warnings(&policy);
    assert!(found[0].message.contains("host policies"), "{found:#?}");
    check(&policy, &[("world", "backend/api", 80, TCP, true)]);
    let in_cnp = cnp("backend", "host", "nodeSelector: {}\ningress: [{}]");
    assert!(only_error(&in_cnp).message.contains("only valid in a CiliumClusterwideNetworkPolicy"));
}

#[test]
fn later_definitions_replace_earlier_ones() {
    let first = cnp("backend", "p", "endpointSelector: {}\ningress: [{}]");
    let second = cnp("backend", "p", "endpointSelector: {}\ningress:\n  - fromEntities: [world]");
    check(&(first + &second), &[("world", "backend/api", 80, TCP, true)]);
}

#[test]
fn network_policy_errors() {
    let policy = netpol(
        "backend",
        "bad",
        "podSelector: {}\npolicyTypes: [Ingress, Sideways]\ningress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]",
    );
    let found = errors(&policy);
    let fields: Vec<_> = found.iter().map(|e| e.location.field.clone().unwrap_or_default()).collect();
    assert_eq!(fields, ["spec.policyTypes[1]", "spec.ingress[0].from[0]"], "{found:#?}");
}
