//! Ports, ranges, named ports and protocols.

use super::*;

fn ingress_ports(ports: &str) -> String {
    cnp("backend", "ports", &format!("endpointSelector: {{}}\ningress:\n  - toPorts: [{{ports: [{ports}]}}]"))
}

#[test]
fn port_ranges_are_inclusive() {
    let policy = ingress_ports("{port: \"8000\", endPort: 8080, protocol: TCP}");
    check(
        &policy,
        &[
            ("world", "backend/api", 8000, TCP, true),
            ("world", "backend/api", 8042, TCP, true),
            ("world", "backend/api", 8080, TCP, true),
            ("world", "backend/api", 8081, TCP, false),
            ("world", "backend/api", 7999, TCP, false),
            ("world", "backend/api", 8042, UDP, false),
        ],
    );
}

#[test]
fn protocol_any_covers_tcp_udp_and_sctp_and_defaults() {
    for ports in ["{port: \"53\", protocol: ANY}", "{port: \"53\"}"] {
        let policy = ingress_ports(ports);
        check(
            &policy,
            &[
                ("world", "backend/api", 53, TCP, true),
                ("world", "backend/api", 53, UDP, true),
                ("world", "backend/api", 53, Protocol::Sctp, true),
                ("world", "backend/api", 54, UDP, false),
            ],
        );
    }
    let sctp = ingress_ports("{port: \"9999\", protocol: SCTP}");
    check(
        &sctp,
        &[("world", "backend/api", 9999, Protocol::Sctp, true), ("world", "backend/api", 9999, TCP, false)],
    );
}

#[test]
fn named_ports_resolve_against_the_destination() {
    let ingress = ingress_ports("{port: http-alt, protocol: TCP}");
    check(&ingress, &[("world", "backend/api", 8080, TCP, true), ("world", "backend/api", 80, TCP, false)]);
    let egress = cnp(
        "backend",
        "to-pg",
        "endpointSelector: {}\negress:\n  - toEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": db}}]\n    toPorts: [{ports: [{port: pg}]}]",
    );
    check(
        &egress,
        &[("backend/api", "db/postgres", 5432, TCP, true), ("backend/api", "db/postgres", 5433, TCP, false)],
    );
    let any_peer = cnp(
        "frontend",
        "any-pg",
        "endpointSelector: {}\negress:\n  - toPorts: [{ports: [{port: pg, protocol: TCP}]}]",
    );
    check(
        &any_peer,
        &[("frontend/web", "db/postgres", 5432, TCP, true), ("frontend/web", "db/postgres", 80, TCP, false)],
    );
}

#[test]
fn port_zero_means_every_port_of_the_protocol() {
    let policy = ingress_ports("{port: \"0\", protocol: UDP}");
    check(&policy, &[("world", "backend/api", 1234, UDP, true), ("world", "backend/api", 1234, TCP, false)]);
}

#[test]
fn a_peer_without_ports_is_allowed_on_every_port() {
    let policy = cnp(
        "backend",
        "l3",
        "endpointSelector: {}\ningress:\n  - fromEndpoints: [{matchLabels: {\"k8s:io.kubernetes.pod.namespace\": frontend}}]",
    );
    check(
        &policy,
        &[
            ("frontend/web", "backend/api", 1, TCP, true),
            ("frontend/web", "backend/api", 65535, Protocol::Sctp, true),
        ],
    );
}
