use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;

/// api (two ready pods, `http` named 8080) and a pod of another app.
const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api-1, namespace: app, labels: {app: api}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 5353, protocol: UDP}]}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: api-2, namespace: app, labels: {app: api}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8081}]}]}
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: api-elsewhere, namespace: other, labels: {app: api}}
status: {podIP: 10.1.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
status: {podIP: 10.1.0.4}
"#;

fn table(yaml: &str) -> (ServiceTable, Vec<Diagnostic>) {
    let mut manifests = Manifests::default();
    manifests.parse(&format!("{PODS}---\n{yaml}"), Location::default());
    let (workloads, _) = Workloads::from_manifests(&manifests);
    ServiceTable::new(&manifests, &workloads)
}

fn frontend(address: [u8; 4], port: u16, protocol: Protocol) -> Frontend {
    Frontend { address: Ipv4Addr::from(address), port, protocol }
}

fn backends(table: &ServiceTable, frontend: Frontend) -> Vec<String> {
    let found = table.frontends.get(&frontend).unwrap_or_else(|| panic!("no {frontend:?} in {table:#?}"));
    found.addresses.iter().map(SocketAddrV4::to_string).collect()
}

#[test]
fn selector_backends_are_the_namespace_pods_on_the_target_port() {
    let (table, diagnostics) = table(
        r#"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: app}
spec:
  clusterIP: 10.96.0.20
  selector: {app: api}
  ports:
    - {name: web, port: 80, targetPort: http}
    - {name: plain, port: 81, targetPort: 9000}
    - {name: same, port: 82}
    - {name: dns, port: 53, targetPort: dns, protocol: UDP}
"#,
    );
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let tcp = |port| frontend([10, 96, 0, 20], port, Protocol::Tcp);
    // A named targetPort is each pod's own container port of that name.
    assert_eq!(backends(&table, tcp(80)), ["10.1.0.1:8080", "10.1.0.2:8081"]);
    assert_eq!(backends(&table, tcp(81)), ["10.1.0.1:9000", "10.1.0.2:9000"]);
    assert_eq!(backends(&table, tcp(82)), ["10.1.0.1:82", "10.1.0.2:82"]);
    // Only api-1 names a UDP port `dns`.
    assert_eq!(backends(&table, frontend([10, 96, 0, 20], 53, Protocol::Udp)), ["10.1.0.1:5353"]);
    assert_eq!(table.frontends[&tcp(80)].service, "app/api");
}

#[test]
fn endpoint_slices_take_precedence_and_not_ready_endpoints_are_left_out() {
    let (table, _) = table(
        r#"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: app}
spec:
  clusterIP: 10.96.0.20
  selector: {app: api}
  ports: [{name: web, port: 80, targetPort: http}, {port: 90, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-abc, namespace: app, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: web, port: 7000, protocol: TCP}, {name: "", port: 9090, protocol: UDP}]
endpoints:
  - addresses: [10.2.0.1]
    conditions: {ready: true}
    nodeName: node-1
  - addresses: [10.2.0.2]
    conditions: {ready: false}
  - addresses: [10.2.0.3]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-def, namespace: app, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: web, port: 7001}]
endpoints: [{addresses: [10.2.0.4]}]
"#,
    );
    let address = [10, 96, 0, 20];
    assert_eq!(
        backends(&table, frontend(address, 80, Protocol::Tcp)),
        ["10.2.0.1:7000", "10.2.0.3:7000", "10.2.0.4:7001"]
    );
    assert_eq!(backends(&table, frontend(address, 90, Protocol::Udp)), ["10.2.0.1:9090", "10.2.0.3:9090"]);
}

#[test]
fn services_without_an_address_are_skipped() {
    let (table, diagnostics) = table(
        r#"
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: app}
spec: {clusterIP: None, selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: pending, namespace: app}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: app}
spec: {type: ExternalName, externalName: example.com, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: bad, namespace: app}
spec: {clusterIP: 10.96.0.300, selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: app}
spec: {clusterIPs: ["fd00::1", 10.96.0.7], selector: {app: web}, ports: [{port: 80}]}
"#,
    );
    let services: Vec<&str> = table.frontends.values().map(|b| b.service.as_str()).collect();
    assert_eq!(services, ["app/dual"]);
    assert_eq!(backends(&table, frontend([10, 96, 0, 7], 80, Protocol::Tcp)), ["10.1.0.4:80"]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(diagnostics[0].message.contains("invalid ClusterIP `10.96.0.300`"), "{diagnostics:?}");
}

#[test]
fn a_service_without_selector_or_slices_has_no_backends() {
    let (table, _) = table(
        "apiVersion: v1\nkind: Service\nmetadata: {name: manual, namespace: app}\n\
         spec: {clusterIP: 10.96.0.30, ports: [{port: 80}, {port: 5000, protocol: SCTP}]}\n",
    );
    let found = &table.frontends[&frontend([10, 96, 0, 30], 80, Protocol::Tcp)];
    assert!(found.addresses.is_empty());
    assert_eq!(table.frontends.len(), 1, "SCTP is not translated");
}
