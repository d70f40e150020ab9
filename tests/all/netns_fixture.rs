//! The network-namespace node fixture (`porin_tests::netns`) on its own,
//! without any porin program: pods reach each other through the node by
//! ICMP and TCP, the node routes each pod by a /32 to its host veth, the
//! manifests it writes are the pods porin sees, and nothing is left behind.

use std::net::Ipv4Addr;

use porin_tests::netns::{NETNS_PREFIX, Node, list_netns};
use porin_tests::{TempDir, have, must_run, porin, python};

fn can_run() -> bool {
    if !must_run() {
        eprintln!(
            "SKIPPED: the netns fixture needs root (network namespaces, veth); run as root or with CI set"
        );
        return false;
    }
    have("ip") && have("curl") && have(&python())
}

#[test]
fn pods_reach_each_other_through_the_node_and_nothing_is_left() {
    if !can_run() {
        return;
    }
    let client_ip = Ipv4Addr::new(10, 200, 0, 2);
    let server_ip = Ipv4Addr::new(10, 200, 0, 3);
    let mut node = Node::new("fixture");
    let node_name = node.name().to_string();
    let client = node.add_pod("frontend", "client", client_ip, &[("app", "client")]);
    let server = node.add_pod("backend", "server", server_ip, &[("app", "server"), ("tier", "api")]);

    // Host interfaces: valid names, distinct, and the /32 routes point at them.
    for pod in [&client, &server] {
        assert!(pod.host_if.len() <= 15 && pod.host_if.starts_with("lxc"), "{}", pod.host_if);
        assert!(pod.host_ifindex > 0);
    }
    assert_ne!(client.host_if, server.host_if);
    let routes = String::from_utf8(node.exec_ok("ip", &["-4", "route", "show"]).stdout).unwrap();
    for pod in [&client, &server] {
        assert!(routes.contains(&format!("{} dev {}", pod.ip, pod.host_if)), "{routes}");
    }

    // ICMP both ways, through the node.
    assert!(client.ping(server_ip, 2000), "client cannot ping server");
    assert!(server.ping(client_ip, 2000), "server cannot ping client");

    // TCP: a real HTTP server in one pod, curl in the other; the server sees
    // the client's own address (routed, not NATed).
    let dir = TempDir::new("netns-fixture");
    std::fs::write(dir.path("hello.txt"), "hello across the node\n").unwrap();
    let log = std::fs::File::create(dir.path("server.log")).unwrap();
    let directory = dir.0.display().to_string();
    let server_process = server
        .command(
            &python(),
            &["-m", "http.server", "8080", "--bind", &server_ip.to_string(), "--directory", &directory],
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(porin_tests::Process)
        .expect("python3 -m http.server starts");
    let url = format!("http://{server_ip}:8080/hello.txt");
    let mut body = String::new();
    for _ in 0..100 {
        let output = client.exec("curl", &["-sf", "--max-time", "2", &url]);
        if output.status.success() {
            body = String::from_utf8_lossy(&output.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body, "hello across the node\n");
    let server_log = std::fs::read_to_string(dir.path("server.log")).unwrap();
    assert!(server_log.contains(&format!("{client_ip} - - ")), "server log: {server_log}");
    drop(server_process);

    // The manifests are the pods porin compiles, with their addresses.
    let manifests = dir.path("pods.yaml");
    std::fs::write(&manifests, node.pod_manifests()).unwrap();
    let compiled = porin(["policy", "compile", "-o", "json", "-f", manifests.to_str().unwrap()]);
    assert!(compiled.success, "{}", compiled.stderr);
    let json = compiled.json();
    let endpoints = json["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{json:#}");
    for (namespace, name, ip) in [("frontend", "client", client_ip), ("backend", "server", server_ip)] {
        let endpoint = endpoints
            .iter()
            .find(|e| e["namespace"] == namespace && e["name"] == name)
            .unwrap_or_else(|| panic!("no endpoint {namespace}/{name}: {json:#}"));
        assert_eq!(endpoint["ip"], ip.to_string(), "{endpoint:#}");
    }

    drop(node);
    let left: Vec<_> = list_netns().into_iter().filter(|n| n.starts_with(&node_name)).collect();
    assert!(left.is_empty(), "namespaces left after drop: {left:?}");
}

#[test]
fn namespaces_of_a_dead_test_process_are_removed() {
    if !can_run() {
        return;
    }
    // A PID that does not run (the highest possible one, or below it).
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    let dead = (1..max).rev().find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()).unwrap();
    let stale = format!("{NETNS_PREFIX}{dead}-0-stale");
    let created = std::process::Command::new("ip").args(["netns", "add", &stale]).status().unwrap();
    assert!(created.success());
    let node = Node::new("stale-check");
    let names = list_netns();
    let stale_left = names.contains(&stale);
    if stale_left {
        std::process::Command::new("ip").args(["netns", "delete", &stale]).status().ok();
    }
    assert!(!stale_left, "the stale namespace {stale} was not removed");
    assert!(names.contains(&node.name().to_string()), "{names:?}");
}
