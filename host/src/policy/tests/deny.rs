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

/// Random allow/deny mixes checked against the plain meaning of the rules:
/// denied if any deny rule matches, else allowed if any allow rule matches.
/// This exercises the overlap handling that keeps deny precedence under a
/// most-specific-match lookup.
#[test]
fn random_allow_deny_mixes_keep_deny_precedence() {
    #[derive(Clone, Copy, Debug)]
    enum PeerKind {
        Web,
        World,
        Any,
    }
    let peers = [PeerKind::Web, PeerKind::World, PeerKind::Any];
    let port_choices: [Option<(u16, u16)>; 5] =
        [None, Some((80, 80)), Some((80, 90)), Some((85, 85)), Some((0, 0))];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..60 {
        let mut rules = Vec::new();
        for _ in 0..1 + next(4) {
            rules.push((next(2) == 0, peers[next(3)], port_choices[next(5)]));
        }
        let (mut allow_yaml, mut deny_yaml) = (String::new(), String::new());
        for (deny, peer, ports) in &rules {
            let peer = match peer {
                PeerKind::Web => {
                    "  - fromEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend, app: web}}]\n"
                }
                PeerKind::World => "  - fromEntities: [world]\n",
                PeerKind::Any if ports.is_none() => "  - fromEntities: [all]\n",
                PeerKind::Any => "  -\n",
            };
            let ports = match ports {
                None => String::new(),
                Some((0, _)) => "    toPorts: [{ports: [{port: \"0\", protocol: TCP}]}]\n".to_string(),
                Some((first, last)) if first == last => {
                    format!("    toPorts: [{{ports: [{{port: \"{first}\", protocol: TCP}}]}}]\n")
                }
                Some((first, last)) => format!(
                    "    toPorts: [{{ports: [{{port: \"{first}\", endPort: {last}, protocol: TCP}}]}}]\n"
                ),
            };
            let target = if *deny { &mut deny_yaml } else { &mut allow_yaml };
            target.push_str(peer);
            target.push_str(&ports);
        }
        let mut spec = "endpointSelector: {}\n".to_string();
        if !allow_yaml.is_empty() {
            spec += &format!("ingress:\n{allow_yaml}");
        }
        if !deny_yaml.is_empty() {
            spec += &format!("ingressDeny:\n{deny_yaml}");
        }
        let policy = cnp("backend", "random", &spec);
        for (from, peer_matches) in [
            ("frontend/web", [true, false, true]),
            ("world", [false, true, true]),
            ("frontend/other", [false, false, true]),
        ] {
            for port in [79u16, 80, 85, 90, 91] {
                let matches = |(_, peer, ports): &(bool, PeerKind, Option<(u16, u16)>)| {
                    let peer_ok = peer_matches[*peer as usize];
                    let port_ok = match ports {
                        None | Some((0, _)) => true,
                        Some((first, last)) => (*first..=*last).contains(&port),
                    };
                    peer_ok && port_ok
                };
                let denied = rules.iter().any(|r| r.0 && matches(r));
                let allowed_by_rule = rules.iter().any(|r| !r.0 && matches(r));
                let expected = !denied && allowed_by_rule;
                assert_eq!(
                    allowed(&policy, from, "backend/api", port, TCP),
                    expected,
                    "round {round}: {from} port {port}\n{spec}"
                );
            }
        }
    }
}
