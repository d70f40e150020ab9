//! Policy compile benchmark: 10,000 endpoints in 100 namespaces with 1,000
//! policies (mixed selectors, ports, ranges, CIDRs, denies, some L7).
//! Prints wall time and peak memory; goal: under 1 s and under 300 MB.
//!
//! Run with `make bench-policy` (or `cargo bench -p porin --bench policy_compile`).

use std::fmt::Write;
use std::time::Instant;

use porin::diagnostic::has_errors;
use porin::endpoint::Workloads;
use porin::manifest::Manifests;
use porin::policy::compile;

const NAMESPACES: usize = 100;
const APPS: usize = 10;
const REPLICAS: usize = 10;

fn workloads() -> String {
    let mut yaml = String::new();
    for ns in 0..NAMESPACES {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{ns}, labels: {{team: t{}}}}}\n",
            ns % 7
        );
        for app in 0..APPS {
            for replica in 0..REPLICAS {
                let _ = write!(
                    yaml,
                    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: app-{app}-{replica}\n  namespace: ns-{ns}\n  labels: {{app: app-{app}, tier: t{}, pod-template-hash: h{replica}}}\nspec:\n  containers: [{{name: c, image: nginx, ports: [{{name: http, containerPort: 8080}}]}}]\nstatus: {{podIP: 10.{}.{}.{}}}\n",
                    app % 3,
                    ns / 50 + 1,
                    ns % 50 * 5 + app / 2,
                    app % 2 * 100 + replica + 1,
                );
            }
        }
    }
    yaml
}

fn policies() -> String {
    let mut yaml = String::new();
    for ns in 0..NAMESPACES {
        let next = (ns + 1) % NAMESPACES;
        let cnp = |yaml: &mut String, name: &str, spec: &str| {
            let _ = write!(
                yaml,
                "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: ns-{ns}}}\nspec:\n{spec}\n"
            );
        };
        cnp(&mut yaml, "default-deny", "  endpointSelector: {}\n  ingressDeny: [{}]\n  egressDeny: [{}]");
        for app in 0..5 {
            cnp(
                &mut yaml,
                &format!("app-{app}-from-app-{}", app + 1),
                &format!(
                    "  endpointSelector: {{matchLabels: {{app: app-{app}}}}}\n  ingress:\n    - fromEndpoints: [{{matchLabels: {{app: app-{}}}}}]\n      toPorts: [{{ports: [{{port: http, protocol: TCP}}]}}]",
                    app + 1
                ),
            );
        }
        cnp(
            &mut yaml,
            "l7-from-next-namespace",
            &format!(
                "  endpointSelector: {{matchLabels: {{app: app-0}}}}\n  ingress:\n    - fromEndpoints: [{{matchLabels: {{\"k8s:io.kubernetes.pod.namespace\": ns-{next}, app: app-9}}}}]\n      toPorts:\n        - ports: [{{port: \"80\", protocol: TCP}}]\n          rules: {{http: [{{method: GET, path: \"/api/.*\"}}, {{method: POST, path: /login}}]}}"
            ),
        );
        cnp(
            &mut yaml,
            "dns",
            "  endpointSelector: {}\n  egress:\n    - toEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": ns-0, app: app-9}}]\n      toPorts: [{ports: [{port: \"53\", protocol: UDP}, {port: \"53\", protocol: TCP}]}]",
        );
        cnp(
            &mut yaml,
            "external",
            &format!(
                "  endpointSelector: {{matchExpressions: [{{key: tier, operator: NotIn, values: [t2]}}]}}\n  egress:\n    - toCIDRSet: [{{cidr: 172.{}.0.0/16, except: [172.{}.1.0/24]}}]\n      toPorts: [{{ports: [{{port: \"443\", protocol: TCP}}]}}]\n    - toEntities: [world]\n      toPorts: [{{ports: [{{port: \"9000\", endPort: 9100, protocol: TCP}}]}}]",
                16 + ns % 16,
                16 + ns % 16
            ),
        );
        cnp(
            &mut yaml,
            "team-and-deny",
            &format!(
                "  endpointSelector: {{}}\n  ingress:\n    - fromEndpoints: [{{matchLabels: {{\"k8s:io.cilium.k8s.namespace.labels.team\": t{}}}}}]\n      toPorts: [{{ports: [{{port: \"8443\"}}]}}]\n  ingressDeny:\n    - fromEndpoints: [{{matchLabels: {{\"k8s:io.kubernetes.pod.namespace\": ns-{}}}}}]\n      toPorts: [{{ports: [{{port: \"22\", protocol: TCP}}]}}]",
                ns % 7,
                (ns + 2) % NAMESPACES
            ),
        );
    }
    yaml
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    let (workloads_yaml, policies_yaml) = (workloads(), policies());
    let start = Instant::now();
    let mut manifests = Manifests::default();
    manifests.parse(&workloads_yaml, Default::default());
    manifests.parse(&policies_yaml, Default::default());
    let (workloads, diagnostics) = Workloads::from_manifests(&manifests);
    let parsed = start.elapsed();
    assert!(diagnostics.is_empty() && !has_errors(&manifests.diagnostics), "{:?}", manifests.diagnostics);

    let start = Instant::now();
    let resolved = compile(&manifests, &workloads);
    let compiled = start.elapsed();
    assert!(
        !has_errors(&resolved.diagnostics),
        "{:?}",
        &resolved.diagnostics[..3.min(resolved.diagnostics.len())]
    );

    let entries: usize = resolved
        .endpoints
        .iter()
        .map(|e| e.policy.ingress.entries.len() + e.policy.egress.entries.len())
        .sum();
    let shared = {
        let mut policies: Vec<*const _> =
            resolved.endpoints.iter().map(|e| std::sync::Arc::as_ptr(&e.policy)).collect();
        policies.sort();
        policies.dedup();
        policies.len()
    };
    println!("policy compile benchmark");
    println!(
        "  input:     {} endpoints, {} namespaces, {} policies",
        resolved.endpoints.len(),
        NAMESPACES,
        resolved.policies.len()
    );
    println!(
        "  output:    {} identities, {} distinct endpoint policies, {entries} entries (per endpoint, summed), {} L7 rule sets",
        resolved.identities.len(),
        shared,
        resolved.rule_sets.len()
    );
    println!(
        "  parse:     {:>8.1} ms  (YAML -> objects, {} documents)",
        parsed.as_secs_f64() * 1e3,
        manifests.objects.len()
    );
    println!("  compile:   {:>8.1} ms  (goal < 1000 ms)", compiled.as_secs_f64() * 1e3);
    println!("  peak RSS:  {:>8.1} MB  (goal < 300 MB; includes the generated YAML)", peak_rss_mb());
}
