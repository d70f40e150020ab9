//! Cilium's policy enforcement modes: `default`, `always`, `never`.

use super::*;
use crate::policy::recompile;

use EnforcementMode::{Always, Never};

/// api's ingress: web on 80 with HTTP GET only; everything else default-denied.
fn api_policy() -> String {
    cnp(
        "backend",
        "api",
        r#"endpointSelector: {matchLabels: {app: api}}
ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": frontend, app: web}}]
    toPorts:
      - ports: [{port: "80", protocol: TCP}]
        rules: {http: [{method: GET}]}"#,
    )
}

fn compiled_in(mode: EnforcementMode, policies: &str) -> ResolvedPolicy {
    let (manifests, workloads) = load(policies);
    compile_with(&manifests, &workloads, mode)
}

#[test]
fn an_endpoint_no_policy_selects_is_denied_only_under_always() {
    let to_api = query("frontend/web", "backend/api", 80, TCP);
    let by_default = explain_in(EnforcementMode::Default, "", &to_api);
    assert_eq!(by_default.verdict, Verdict::Allowed);
    assert!(matches!(by_default.ingress.decided_by, DecidedBy::NoPolicy));

    let always = explain_in(Always, "", &to_api);
    assert_eq!(always.verdict, Verdict::Denied);
    for decision in [&always.egress, &always.ingress] {
        let DecidedBy::DefaultDeny { enforced_by } = &decision.decided_by else { panic!("{always}") };
        assert!(enforced_by.is_empty(), "no policy switched it on: the mode did");
        assert!(decision.reason.contains("policy enforcement mode `always`"), "{}", decision.reason);
    }

    let never = explain_in(Never, "", &to_api);
    assert_eq!(never.verdict, Verdict::Allowed);
    assert!(never.ingress.reason.contains("`never`"), "{}", never.ingress.reason);
}

#[test]
fn always_leaves_the_policy_of_a_selected_direction_as_it_is() {
    let policies = api_policy();
    let api = |mode| compiled_in(mode, &policies).endpoint("backend", "api").unwrap().policy.clone();
    let (by_default, always) = (api(EnforcementMode::Default), api(Always));
    assert_eq!(always.ingress, by_default.ingress);
    // The direction no policy selects is default-deny under `always` only.
    assert!(!by_default.egress.enforced);
    assert!(always.egress.enforced && always.egress.entries.is_empty());

    // Ingress decisions at api are the same; under `always` web's own
    // egress is default-deny too, so web reaches nothing.
    for (from, port, allowed) in [("frontend/web", 80, true), ("frontend/other", 80, false)] {
        let q = query(from, "backend/api", port, TCP);
        let (d, a) = (explain_in(EnforcementMode::Default, &policies, &q), explain_in(Always, &policies, &q));
        assert_eq!(d.ingress.verdict == Verdict::Allowed, allowed, "{d}");
        assert_eq!(a.ingress.verdict, d.ingress.verdict, "{a}");
        assert_eq!(a.verdict, Verdict::Denied, "{a}");
    }
}

#[test]
fn always_overrides_enable_default_deny_false() {
    let policy = cnp(
        "backend",
        "audit",
        "endpointSelector: {}\nenableDefaultDeny: {ingress: false}\ningress:\n  - fromEntities: [world]",
    );
    check(&policy, &[("frontend/web", "backend/api", 80, TCP, true)]);
    let e = explain_in(Always, &policy, &query("frontend/web", "backend/api", 80, TCP));
    assert_eq!(e.ingress.verdict, Verdict::Denied, "{e}");
}

#[test]
fn never_allows_everything_and_redirects_nothing() {
    let policies = api_policy() + &cnp("backend", "deny-all", "endpointSelector: {}\ningressDeny: [{}]");
    let by_default = compiled_in(EnforcementMode::Default, &api_policy());
    assert!(!by_default.rule_sets_in_use().is_empty(), "the L7 rule redirects by default");

    let never = compiled_in(Never, &policies);
    assert!(never.rule_sets_in_use().is_empty());
    for endpoint in &never.endpoints {
        for direction in [&endpoint.policy.ingress, &endpoint.policy.egress] {
            assert!(
                !direction.enforced && direction.entries.is_empty(),
                "{}/{}",
                endpoint.namespace,
                endpoint.name
            );
        }
    }
    // The policies are still checked and in force for reporting.
    assert_eq!(never.policies.len(), 2);

    let mut q = query("frontend/other", "backend/api", 80, TCP);
    q.http = Some(HttpQuery { method: "DELETE".into(), path: "/".into(), host: None });
    let e = explain_in(Never, &policies, &q);
    assert_eq!(e.verdict, Verdict::Allowed, "{e}");
    assert!(e.l7.is_none(), "{e}");
}

#[test]
fn never_still_reports_invalid_policies() {
    let bad = cnp("backend", "bad", "endpointSelector: {}\ningress:\n  - fromEntities: [galaxy]");
    let never = compiled_in(Never, &bad);
    assert!(never.diagnostics.iter().any(|d| d.severity == Severity::Error), "{:?}", never.diagnostics);
}

#[test]
fn recompile_keeps_the_mode() {
    let (manifests, workloads) = load(&api_policy());
    let always = compile_with(&manifests, &workloads, Always);
    assert_eq!(recompile(&manifests, &workloads, &always).enforcement, Always);
    assert_eq!(compile(&manifests, &workloads).enforcement, EnforcementMode::Default);
}

#[test]
fn modes_are_named_in_lower_case() {
    for (mode, name) in [(EnforcementMode::Default, "default"), (Always, "always"), (Never, "never")] {
        assert_eq!(serde_json::to_value(mode).unwrap(), name);
        assert_eq!(serde_json::from_value::<EnforcementMode>(name.into()).unwrap(), mode);
        assert_eq!(<EnforcementMode as clap::ValueEnum>::from_str(name, false).unwrap(), mode);
        assert_eq!(mode.to_string(), name);
    }
}
