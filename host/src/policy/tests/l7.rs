//! L7 rules: redirects, merging and rule sets.

use super::*;

const FROM_WEB: &str =
    "fromEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend, app: web}}]";
const FROM_OTHER: &str =
    "fromEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend, app: other}}]";

fn http_rule(name: &str, from: &str, rules: &str) -> String {
    cnp(
        "backend",
        name,
        &format!(
            "endpointSelector: {{matchLabels: {{app: api}}}}\ningress:\n  - {from}\n    toPorts:\n      - ports: [{{port: \"80\", protocol: TCP}}]\n        rules: {{http: {rules}}}"
        ),
    )
}

fn rule_set(e: &Explanation, direction: &str) -> serde_json::Value {
    let l7 = e.l7.as_ref().expect("redirected");
    l7.decisions.iter().find(|d| d.direction.as_str() == direction).expect("decision").rules.clone()
}

#[test]
fn visibility_rule_redirects_and_allows_everything() {
    let policy = http_rule("visibility", FROM_WEB, "[{}]");
    let e = http(&policy, "frontend/web", "backend/api", "DELETE", "/anything");
    assert_eq!(e.verdict, Verdict::Allowed);
    assert_eq!(e.l7.as_ref().unwrap().filter, "http");
    assert_eq!(rule_set(&e, "ingress"), serde_json::json!({"http": [{}]}));
}

#[test]
fn l7_rules_allow_only_matching_requests() {
    let policy = http_rule(
        "get-public",
        FROM_WEB,
        "[{method: GET, path: \"/public/.*\"}, {method: POST, path: /login}]",
    );
    let cases = [
        ("GET", "/public/x", true),
        ("POST", "/login", true),
        ("POST", "/admin", false),
        ("GET", "/", false),
    ];
    for (method, path, expected) in cases {
        let e = http(&policy, "frontend/web", "backend/api", method, path);
        assert_eq!(e.verdict == Verdict::Allowed, expected, "{method} {path}\n{e}");
    }
    // Without a request, explain reports the rule set and cannot decide L7.
    let e = explain_query(&policy, &query("frontend/web", "backend/api", 80, TCP));
    assert_eq!(e.l7.unwrap().verdict, L7Verdict::NotEvaluated);
    assert_eq!(e.verdict, Verdict::Allowed);
}

#[test]
fn l4_only_peer_on_an_l7_port_is_redirected_with_allow_all() {
    let policies = http_rule("get-only", FROM_WEB, "[{method: GET}]")
        + &cnp(
            "backend",
            "l4-other",
            &format!(
                "endpointSelector: {{}}\ningress:\n  - {FROM_OTHER}\n    toPorts: [{{ports: [{{port: \"80\", protocol: TCP}}]}}]"
            ),
        );
    let other = http(&policies, "frontend/other", "backend/api", "DELETE", "/x");
    assert_eq!(other.verdict, Verdict::Allowed);
    assert_eq!(rule_set(&other, "ingress"), serde_json::json!({"http": [{}]}));
    assert_eq!(http(&policies, "frontend/web", "backend/api", "DELETE", "/x").verdict, Verdict::Denied);
}

#[test]
fn l3_allow_of_the_same_peer_makes_its_l7_rules_moot() {
    // Cilium: "If a layer 4 rule is specified in the policy, and a similar
    // layer 4 rule with layer 7 rules is also specified, then the layer 7
    // portions of the latter rule will have no effect."
    let policies = http_rule("get-only", FROM_WEB, "[{method: GET}]")
        + &cnp("backend", "l3-web", &format!("endpointSelector: {{}}\ningress:\n  - {FROM_WEB}"));
    let e = http(&policies, "frontend/web", "backend/api", "DELETE", "/x");
    assert_eq!(e.verdict, Verdict::Allowed, "{e}");
    assert!(e.l7.is_some(), "still redirected for visibility");
}

#[test]
fn rules_for_the_same_peer_merge_across_policies() {
    let policies = http_rule("a", FROM_WEB, "[{method: GET, path: /a}]")
        + &http_rule("b", FROM_WEB, "[{method: GET, path: /b}]");
    for (path, expected) in [("/a", true), ("/b", true), ("/c", false)] {
        assert_eq!(
            http(&policies, "frontend/web", "backend/api", "GET", path).verdict == Verdict::Allowed,
            expected
        );
    }
    let e = http(&policies, "frontend/web", "backend/api", "GET", "/a");
    let DecidedBy::Rule { rules, .. } = &e.ingress.decided_by else { panic!() };
    assert_eq!(rules.len(), 2);
}

#[test]
fn different_peers_get_their_own_rule_sets() {
    let policies =
        http_rule("web", FROM_WEB, "[{path: /web}]") + &http_rule("other", FROM_OTHER, "[{path: /other}]");
    assert_eq!(http(&policies, "frontend/web", "backend/api", "GET", "/web").verdict, Verdict::Allowed);
    assert_eq!(http(&policies, "frontend/web", "backend/api", "GET", "/other").verdict, Verdict::Denied);
    assert_eq!(http(&policies, "frontend/other", "backend/api", "GET", "/other").verdict, Verdict::Allowed);
    let resolved = resolve(&policies);
    assert_eq!(resolved.rule_sets.len(), 2);
}

#[test]
fn egress_and_ingress_filters_both_apply() {
    let policies = http_rule("in", FROM_WEB, "[{path: \"/in/.*\"}]")
        + &cnp(
            "frontend",
            "out",
            "endpointSelector: {}\negress:\n  - toEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": backend}}]\n    toPorts:\n      - ports: [{port: \"80\", protocol: TCP}]\n        rules: {http: [{path: \"/in/ok\"}]}",
        );
    assert_eq!(http(&policies, "frontend/web", "backend/api", "GET", "/in/ok").verdict, Verdict::Allowed);
    let e = http(&policies, "frontend/web", "backend/api", "GET", "/in/other");
    assert_eq!(e.verdict, Verdict::Denied);
    let l7 = e.l7.unwrap();
    assert_eq!(l7.decisions.len(), 2);
    assert_eq!(l7.decisions[0].verdict, Some(Verdict::Denied));
    assert_eq!(l7.decisions[1].verdict, Some(Verdict::Allowed));
}

#[test]
fn conflicting_filters_on_one_port_deny_that_port_only() {
    let policies = http_rule("http", FROM_WEB, "[{}]")
        + &cnp(
            "backend",
            "kafka",
            &format!(
                "endpointSelector: {{}}\ningress:\n  - {FROM_WEB}\n    toPorts:\n      - ports: [{{port: \"80\", protocol: TCP}}]\n        rules: {{kafka: [{{topic: orders}}]}}\n  - {FROM_WEB}\n    toPorts: [{{ports: [{{port: \"81\"}}]}}]"
            ),
        );
    let resolved = resolve(&policies);
    let conflict =
        resolved.diagnostics.iter().find(|d| d.message.contains("different L7 filters")).expect("conflict");
    assert_eq!(conflict.severity, Severity::Error);
    assert!(conflict.message.contains("http, kafka"), "{}", conflict.message);
    let api = resolved.endpoint("backend", "api").unwrap();
    let web = resolved.endpoint("frontend", "web").unwrap().identity;
    let lookup = api.policy.ingress.lookup(web, TCP, 80);
    let super::super::resolved::Lookup::Entry(entry) = lookup else { panic!("{lookup:?}") };
    assert_eq!(entry.action, Action::Deny { reason: DenyReason::L7ParserConflict });
    assert!(api.policy.ingress.lookup(web, TCP, 81).allowed());
}

#[test]
fn dns_rules_on_any_redirect_tcp_and_udp_and_generic_filters_are_named() {
    let dns = ccnp(
        "dns",
        r#"endpointSelector: {}
egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}}]
    toPorts:
      - ports: [{port: "53", protocol: ANY}]
        rules: {dns: [{matchPattern: "*"}]}"#,
    );
    for protocol in [TCP, UDP] {
        let e = explain_query(&dns, &query("frontend/web", "kube-system/coredns", 53, protocol));
        assert_eq!(e.l7.unwrap().filter, "dns", "{protocol}");
    }
    let redis = cnp(
        "backend",
        "redis",
        &format!(
            "endpointSelector: {{}}\ningress:\n  - {FROM_WEB}\n    toPorts:\n      - ports: [{{port: \"6379\", protocol: TCP}}]\n        rules:\n          l7proto: redis\n          l7: [{{command: GET, key: \"public:*\"}}]"
        ),
    );
    let e = explain_query(&redis, &query("frontend/web", "backend/api", 6379, TCP));
    let l7 = e.l7.unwrap();
    assert_eq!(l7.filter, "redis");
    assert_eq!(
        l7.decisions[0].rules,
        serde_json::json!({"l7proto": "redis", "l7": [{"command": "GET", "key": "public:*"}]})
    );
}

#[test]
fn rule_set_ids_are_deterministic() {
    let policies =
        http_rule("web", FROM_WEB, "[{path: /web}]") + &http_rule("other", FROM_OTHER, "[{path: /other}]");
    let ids = |resolved: &ResolvedPolicy| -> Vec<(u32, serde_json::Value)> {
        resolved.rule_sets.iter().map(|s| (s.id.0, s.rules.clone())).collect()
    };
    assert_eq!(ids(&resolve(&policies)), ids(&resolve(&policies)));
}
