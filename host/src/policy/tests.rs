//! Table-driven tests of Cilium policy semantics, end to end through
//! translation, resolution and the datapath lookup (via explain).

use super::explain::{DecidedBy, Explanation, HttpQuery, L7Verdict, Query, Verdict, explain};
use super::resolved::{Action, DenyReason, Protocol};
use super::{EnforcementMode, ResolvedPolicy, compile, compile_with};
use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::endpoint::Workloads;
use crate::manifest::Manifests;

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: frontend, labels: {tier: frontend}}
---
apiVersion: v1
kind: Namespace
metadata: {name: backend, labels: {tier: backend}}
---
apiVersion: v1
kind: Namespace
metadata: {name: db, labels: {tier: db}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: frontend, labels: {app: web}}
status: {podIP: 10.1.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: frontend, labels: {app: other, team: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: backend, labels: {app: api, version: v1}}
spec:
  containers:
    - name: api
      image: nginx:1.27-alpine
      ports: [{name: http, containerPort: 80}, {name: http-alt, containerPort: 8080}]
status: {podIP: 10.1.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: backend, labels: {app: web}}
---
apiVersion: v1
kind: Pod
metadata: {name: postgres, namespace: db, labels: {app: postgres}}
spec:
  containers:
    - name: postgres
      image: postgres:15-alpine
      ports: [{name: pg, containerPort: 5432}]
status: {podIP: 10.1.0.30}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system}
spec:
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      containers: [{name: coredns, image: coredns, ports: [{name: dns, containerPort: 53, protocol: UDP}]}]
"#;

fn load(policies: &str) -> (Manifests, Workloads) {
    let mut manifests = Manifests::default();
    manifests.parse(WORKLOADS, Location::default());
    manifests.parse(
        policies,
        Location { file: Some(std::sync::Arc::new("policies.yaml".into())), ..Location::default() },
    );
    let (workloads, diagnostics) = Workloads::from_manifests(&manifests);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    (manifests, workloads)
}

fn resolve(policies: &str) -> ResolvedPolicy {
    let (manifests, workloads) = load(policies);
    compile(&manifests, &workloads)
}

fn query(from: &str, to: &str, port: u16, protocol: Protocol) -> Query {
    Query {
        from: from.parse().unwrap(),
        to: to.parse().unwrap(),
        from_labels: Default::default(),
        to_labels: Default::default(),
        port,
        protocol,
        http: None,
    }
}

fn explain_query(policies: &str, query: &Query) -> Explanation {
    explain_in(EnforcementMode::Default, policies, query)
}

fn explain_in(mode: EnforcementMode, policies: &str, query: &Query) -> Explanation {
    let (manifests, mut workloads) = load(policies);
    query.add_pods(&mut workloads);
    let resolved = compile_with(&manifests, &workloads, mode);
    let errors: Vec<&Diagnostic> =
        resolved.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    explain(&resolved, query).unwrap()
}

fn allowed(policies: &str, from: &str, to: &str, port: u16, protocol: Protocol) -> bool {
    explain_query(policies, &query(from, to, port, protocol)).verdict == Verdict::Allowed
}

/// Asserts each (from, to, port/protocol) → allowed case.
fn check(policies: &str, cases: &[(&str, &str, u16, Protocol, bool)]) {
    for (from, to, port, protocol, expected) in cases {
        let explanation = explain_query(policies, &query(from, to, *port, *protocol));
        assert_eq!(
            explanation.verdict == Verdict::Allowed,
            *expected,
            "{from} -> {to} {port}/{protocol}\n{explanation}"
        );
    }
}

fn http(policies: &str, from: &str, to: &str, method: &str, path: &str) -> Explanation {
    let mut q = query(from, to, 80, Protocol::Tcp);
    q.http = Some(HttpQuery { method: method.into(), path: path.into(), host: None });
    explain_query(policies, &q)
}

fn errors(policies: &str) -> Vec<Diagnostic> {
    resolve(policies).diagnostics.into_iter().filter(|d| d.severity == Severity::Error).collect()
}

fn warnings(policies: &str) -> Vec<Diagnostic> {
    resolve(policies).diagnostics.into_iter().filter(|d| d.severity == Severity::Warning).collect()
}

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

fn cnp(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{}\n",
        indent(spec)
    )
}

fn ccnp(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n{}\n",
        indent(spec)
    )
}

fn netpol(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{}\n",
        indent(spec)
    )
}

fn indent(text: &str) -> String {
    text.trim_matches('\n').lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

mod default_deny;
mod deny;
mod enforcement;
mod l7;
mod network_policy;
mod peers;
mod ports;
mod validation;
