//! Every policy-level outcome of the seed article, from the article's own
//! YAML files (tests/fixtures/seed) plus the lab's cluster DNS.

use porin_tests::{fixture, porin};

/// The article's files, applied in the article's order.
const APP: &[&str] = &["seed/test-app.yaml", "lab/kube-dns.yaml"];
const DENY_ALL: &str = "seed/cnp-deny-all.yaml";
const FLOWS: &[&str] = &[
    "seed/ccnp-allow-dns.yaml",
    "seed/cnp-ns-dns.yaml",
    "seed/cnp-front-to-back.yaml",
    "seed/cnp-back-to-db.yaml",
];

fn files(extra: &[&str]) -> Vec<String> {
    APP.iter().chain(extra).flat_map(|f| ["-f".to_string(), fixture(f).display().to_string()]).collect()
}

/// `porin policy explain ... -o json`, returning the whole answer.
fn explain(files: &[String], from: &str, to: &str, port: &str, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec!["policy".into(), "explain".into()];
    args.extend_from_slice(files);
    args.extend(["--from", from, "--to", to, "--port", port, "-o", "json"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = porin(args);
    assert!(run.success, "{}", run.stderr);
    run.json()
}

fn verdict(files: &[String], from: &str, to: &str, port: &str) -> String {
    explain(files, from, to, port, &[])["verdict"].as_str().unwrap().to_string()
}

const PEERS: &[&str] = &[
    "frontend/test",
    "frontend/web",
    "backend/api",
    "backend/app",
    "db/postgres",
    "kube-system/coredns",
    "world",
];
const DESTINATIONS: &[&str] =
    &["frontend/web", "backend/api", "db/postgres", "kube-system/coredns", "world", "kube-apiserver"];
const PORTS: &[&str] = &["80", "5432", "53/UDP", "53/TCP", "443"];

/// Runs the whole matrix and returns the allowed (from, to, port) triples.
fn allowed_matrix(files: &[String]) -> Vec<(String, String, String)> {
    let mut allowed = Vec::new();
    for from in PEERS {
        for to in DESTINATIONS.iter().filter(|to| *to != from) {
            if from == &"world" && !to.contains('/') {
                continue;
            }
            for port in PORTS {
                if verdict(files, from, to, port) == "allowed" {
                    allowed.push((from.to_string(), to.to_string(), port.to_string()));
                }
            }
        }
    }
    allowed
}

#[test]
fn seed_files_are_valid() {
    let run = porin(["policy", "validate", "-f", &fixture("seed").display().to_string()]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.starts_with("valid:"), "{}", run.stdout);
}

#[test]
fn before_policies_everything_is_allowed() {
    let files = files(&[]);
    for (from, to, port) in [
        ("frontend/test", "backend/api", "80"),
        ("frontend/test", "db/postgres", "5432"),
        ("frontend/test", "kube-system/coredns", "53/UDP"),
        ("backend/api", "frontend/web", "80"),
        ("kube-system/coredns", "world", "53/UDP"),
    ] {
        assert_eq!(verdict(&files, from, to, port), "allowed", "{from} -> {to}:{port}");
    }
}

#[test]
fn cnp_default_deny_blocks_the_frontend() {
    let files = files(&["seed/cnp-default-deny.yaml"]);
    assert_eq!(verdict(&files, "frontend/test", "backend/api", "80"), "denied");
    assert_eq!(verdict(&files, "frontend/test", "kube-system/coredns", "53/UDP"), "denied");
    assert_eq!(verdict(&files, "backend/api", "frontend/web", "80"), "denied");
    // Only the frontend namespace is affected.
    assert_eq!(verdict(&files, "backend/api", "db/postgres", "5432"), "allowed");
}

#[test]
fn after_deny_all_nothing_moves_in_the_three_namespaces() {
    let files = files(&[DENY_ALL]);
    let allowed = allowed_matrix(&files);
    // The cluster DNS is outside the three namespaces: only traffic that
    // does not leave or enter them flows.
    let expected: Vec<(String, String, String)> = PORTS
        .iter()
        .flat_map(|port| {
            [
                ("kube-system/coredns", "world"),
                ("kube-system/coredns", "kube-apiserver"),
                ("world", "kube-system/coredns"),
            ]
            .map(|(from, to)| (from.to_string(), to.to_string(), port.to_string()))
        })
        .collect();
    let mut expected_sorted = expected;
    expected_sorted.sort();
    let mut allowed_sorted = allowed;
    allowed_sorted.sort();
    assert_eq!(allowed_sorted, expected_sorted);
}

#[test]
fn after_dns_and_app_flows_exactly_the_seed_paths_are_open() {
    let mut extra = vec![DENY_ALL];
    extra.extend_from_slice(FLOWS);
    let files = files(&extra);
    let mut expected: Vec<(String, String, String)> = Vec::new();
    let mut add = |from: &str, to: &str, port: &str| expected.push((from.into(), to.into(), port.into()));
    add("frontend/test", "backend/api", "80");
    add("frontend/web", "backend/api", "80");
    add("backend/api", "db/postgres", "5432");
    add("backend/app", "db/postgres", "5432");
    for from in ["frontend/test", "frontend/web", "backend/api", "backend/app", "db/postgres"] {
        add(from, "kube-system/coredns", "53/UDP");
        add(from, "kube-system/coredns", "53/TCP");
    }
    add("kube-system/coredns", "world", "53/UDP");
    add("kube-system/coredns", "world", "53/TCP");
    add("kube-system/coredns", "kube-apiserver", "443");
    // Nothing enforces ingress on the cluster DNS, and world has no egress policy here.
    for port in PORTS {
        add("world", "kube-system/coredns", port);
    }
    expected.sort();
    let mut allowed = allowed_matrix(&files);
    allowed.sort();
    assert_eq!(allowed, expected);
}

#[test]
fn the_deciding_rules_are_named() {
    let mut extra = vec![DENY_ALL];
    extra.extend_from_slice(FLOWS);
    let files = files(&extra);
    let answer = explain(&files, "frontend/test", "backend/api", "80", &[]);
    assert_eq!(answer["egress"]["rule"]["policy"], "frontend/front-egress-to-back");
    assert_eq!(answer["egress"]["rule"]["direction"], "egress");
    assert_eq!(answer["egress"]["rule"]["index"], 0);
    assert_eq!(answer["ingress"]["rule"]["policy"], "backend/back-ingress-from-front");
    let denied = explain(&files, "frontend/test", "db/postgres", "5432", &[]);
    assert_eq!(denied["verdict"], "denied");
    assert_eq!(denied["egress"]["decided_by"], "default-deny");
    let enforced_by: Vec<&str> = denied["egress"]["enforced_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(enforced_by.contains(&"default-deny"), "{enforced_by:?}");
    let dns = explain(&files, "kube-system/coredns", "world", "53/UDP", &[]);
    assert_eq!(dns["egress"]["rule"]["policy"], "allow-coredns-egress");
    assert_eq!(dns["egress"]["rule"]["kind"], "CiliumClusterwideNetworkPolicy");
    assert_eq!(dns["egress"]["rule"]["index"], 1);
}

#[test]
fn l7_step_redirects_port_80_to_the_http_filter_in_both_directions() {
    let files = files(&[
        DENY_ALL,
        "seed/ccnp-allow-dns.yaml",
        "seed/cnp-ns-dns.yaml",
        "seed/cnp-front-to-back-l7.yaml",
        "seed/cnp-back-to-db.yaml",
    ]);
    for path in ["/", "/h"] {
        let answer = explain(
            &files,
            "frontend/test",
            "backend/api",
            "80",
            &["--http-method", "GET", "--http-path", path],
        );
        assert_eq!(answer["verdict"], "allowed", "{answer:#}");
        assert_eq!(answer["l7"]["filter"], "http");
        assert_eq!(answer["l7"]["verdict"], "allowed");
        for direction in ["egress", "ingress"] {
            assert_eq!(answer[direction]["action"], "redirect", "{direction}");
            assert_eq!(answer[direction]["filter"], "http", "{direction}");
        }
        let decisions = answer["l7"]["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), 2);
        assert!(decisions.iter().all(|d| d["rules"] == serde_json::json!({"http": [{}]})));
    }
    // L4 outcomes are unchanged by the visibility rule.
    assert_eq!(verdict(&files, "frontend/test", "db/postgres", "5432"), "denied");
    assert_eq!(verdict(&files, "backend/app", "db/postgres", "5432"), "allowed");
}
