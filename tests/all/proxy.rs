//! The L7 proxy in gateway mode, in front of a real nginx, driven by curl
//! and by raw sockets where curl cannot (pipelining); and in the agent, with
//! a policy naming a filter module that is not loaded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use porin_tests::agent::Agent;
use porin_tests::netns::Node;
use porin_tests::{Gateway, Nginx, curl, free_port, have};

fn gateway_for(nginx: &Nginx, port: u16, rules: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "listeners:\n  - name: api\n    listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{}\n    filter: http\n    rules: {rules}\n{extra}limits: {{workers: 2, header_timeout: 500ms}}\n",
        nginx.port
    ))
}

/// Reads HTTP responses from `stream` until `count` status lines arrived.
fn read_statuses(stream: &mut TcpStream, count: usize) -> Vec<u16> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if text.matches("HTTP/1.1 ").count() >= count && text.ends_with('\n') {
            break;
        }
    }
    String::from_utf8_lossy(&seen)
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| String::from_utf8_lossy(&seen[i + 9..i + 12]).parse().unwrap())
        .collect()
}

#[test]
fn allowed_requests_reach_nginx_and_denied_ones_get_403_from_porin() {
    let Some(nginx) = Nginx::start() else { return };
    if !have("curl") {
        return;
    }
    let port = free_port();
    let gateway = gateway_for(&nginx, port, "{http: [{method: GET}]}", "");
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(curl(&[&format!("{url}/")]), (200, "hello from nginx\n".into()));
    assert_eq!(curl(&["-X", "POST", &format!("{url}/admin")]), (403, "Access denied\r\n".into()));
    let flows = gateway.flows();
    let l7: Vec<(&str, &str)> = flows
        .iter()
        .filter(|f| f["Type"] == "L7")
        .map(|f| (f["verdict"].as_str().unwrap(), f["Summary"].as_str().unwrap()))
        .collect();
    assert!(l7.contains(&("FORWARDED", &format!("HTTP/1.1 GET {url}/")[..])), "{l7:?}");
    assert!(l7.iter().any(|(v, s)| *v == "FORWARDED" && s.starts_with("HTTP/1.1 200")), "{l7:?}");
    let denied = flows.iter().find(|f| f["verdict"] == "DROPPED").expect("a DROPPED flow");
    assert_eq!(denied["drop_reason_desc"], "POLICY_DENIED");
    assert_eq!(denied["l7"]["http"]["method"], "POST");
    assert_eq!(denied["proxy"]["filter"], "http");
}

#[test]
fn keep_alive_and_pipelined_requests_are_each_enforced_in_order() {
    let Some(nginx) = Nginx::start() else { return };
    if !have("curl") {
        return;
    }
    let port = free_port();
    let _gateway = gateway_for(&nginx, port, "{http: [{method: GET}]}", "");
    // curl reuses one connection for both URLs.
    let output = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}:%{num_connects} "])
        .arg(format!("http://127.0.0.1:{port}/a"))
        .arg(format!("http://127.0.0.1:{port}/b"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200:1 200:0 ");
    // Three pipelined requests, the middle one denied: answers keep order.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /admin HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_statuses(&mut stream, 3), [200, 403, 200]);
}

#[test]
fn a_rule_change_applies_to_the_next_request_on_an_open_connection() {
    let Some(nginx) = Nginx::start() else { return };
    let port = free_port();
    let gateway = gateway_for(&nginx, port, "{http: [{method: GET}]}", "");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_statuses(&mut stream, 1), [200]);
    let config = std::fs::read_to_string(&gateway.config).unwrap().replace("method: GET", "method: POST");
    std::fs::write(&gateway.config, config).unwrap();
    gateway.signal("HUP");
    gateway.wait_for_stderr("rules reloaded", 1);
    stream.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_statuses(&mut stream, 1), [403]);
    // A bad reload keeps the rules in force.
    let broken = std::fs::read_to_string(&gateway.config).unwrap().replace("method: POST", "path: \"/a(\"");
    std::fs::write(&gateway.config, broken).unwrap();
    gateway.signal("HUP");
    gateway.wait_for_stderr("previous rules stay", 1);
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n").unwrap();
    assert_eq!(read_statuses(&mut stream, 1), [200]);
}

#[test]
fn an_unreachable_upstream_gets_503_and_an_error_flow() {
    if !have("curl") {
        return;
    }
    let (port, dead) = (free_port(), free_port());
    let gateway = Gateway::start(&format!(
        "listeners:\n  - listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{dead}\n    filter: http\n    rules: {{http: [{{}}]}}\n"
    ));
    assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/")]), (503, "no healthy upstream".into()));
    let flows = gateway.flows();
    let error = flows.iter().find(|f| f["verdict"] == "ERROR").expect("an ERROR flow");
    assert!(error["drop_reason_desc"].as_str().unwrap().contains("unreachable"), "{error}");
}

#[test]
fn an_incomplete_request_is_cut_off_by_the_header_timeout() {
    let Some(nginx) = Nginx::start() else { return };
    let port = free_port();
    let _gateway = gateway_for(&nginx, port, "{http: [{}]}", "");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 64];
    // Closed by porin (0 bytes), not by the read timeout.
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
}

/// Traps when the data starts with 'X', else passes everything.
const HOSTILE: &str = include_str!("../fixtures/filters/hostile.wat");

#[test]
fn a_hostile_filter_closes_its_connection_and_the_proxy_carries_on() {
    let Some(nginx) = Nginx::start() else { return };
    let (port, good) = (free_port(), free_port());
    let config = format!(
        "filters_dir: {{dir}}\nlisteners:\n  - listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{n}\n    filter: hostile\n  - listen: 127.0.0.1:{good}\n    upstream: 127.0.0.1:{n}\n    filter: http\n    rules: {{http: [{{}}]}}\n",
        n = nginx.port
    );
    let gateway = Gateway::start_with(&config, |dir| {
        std::fs::write(dir.join("hostile.wasm"), wat::parse_str(HOSTILE).unwrap()).unwrap();
    });
    let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
    bad.write_all(b"X marks the spot\r\n").unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(bad.read(&mut buf).unwrap_or(0), 0, "closed");
    // A new connection through the same filter gets a fresh instance.
    let mut fine = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fine.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_statuses(&mut fine, 1), [200]);
    // Other listeners never noticed.
    let mut other = TcpStream::connect(("127.0.0.1", good)).unwrap();
    other.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_statuses(&mut other, 1), [200]);
    let flows = gateway.flows();
    let error = flows.iter().find(|f| f["verdict"] == "ERROR").expect("an ERROR flow");
    assert!(error["drop_reason_desc"].as_str().unwrap().contains("unreachable"), "{error}");
}

/// Runs dig against 127.0.0.1:`port`; returns its full output.
fn dig(port: u16, args: &[&str]) -> String {
    let output = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=5", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn dns_over_udp_and_tcp_through_the_proxy_to_a_real_dnsmasq() {
    if !have("dnsmasq") && !have("/usr/sbin/dnsmasq") || !have("dig") {
        return;
    }
    let dns_port = free_port();
    let dnsmasq =
        if std::path::Path::new("/usr/sbin/dnsmasq").exists() { "/usr/sbin/dnsmasq" } else { "dnsmasq" };
    let _dnsmasq = porin_tests::Process(
        std::process::Command::new(dnsmasq)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ])
            .arg(format!("--port={dns_port}"))
            .args(["--address=/example.test/192.0.2.1", "--address=/blocked.test/192.0.2.66", "--user=root"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq starts"),
    );
    porin_tests::wait_for_port(dns_port);
    let (udp, tcp) = (free_port(), free_port());
    let rules = "{dns: [{matchName: example.test}, {matchPattern: \"*.example.test\"}]}";
    let gateway = Gateway::start(&format!(
        "listeners:\n  - listen: 127.0.0.1:{udp}\n    upstream: 127.0.0.1:{dns_port}\n    protocol: udp\n    filter: dns\n    rules: {rules}\n  - listen: 127.0.0.1:{tcp}\n    upstream: 127.0.0.1:{dns_port}\n    filter: dns\n    rules: {rules}\n"
    ));
    assert_eq!(dig(udp, &["+short", "www.example.test"]).trim(), "192.0.2.1");
    let refused = dig(udp, &["blocked.test"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    assert_eq!(dig(tcp, &["+tcp", "+short", "api.example.test"]).trim(), "192.0.2.1");
    let refused = dig(tcp, &["+tcp", "blocked.test"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    let flows = gateway.flows();
    let denied = flows.iter().find(|f| f["verdict"] == "DROPPED").expect("a DROPPED flow");
    assert_eq!(denied["l7"]["dns"]["query"], "blocked.test.");
    assert!(denied["Summary"].as_str().unwrap().starts_with("DNS Query blocked.test."), "{denied}");
    let answer = flows
        .iter()
        .find(|f| f["is_reply"] == true && f["l7"]["dns"]["ips"].is_array())
        .expect("an answer flow");
    assert_eq!(answer["l7"]["dns"]["ips"], serde_json::json!(["192.0.2.1"]));
}

/// api admits web on 80 through the http filter and on 6379 through
/// `redis`, a filter module the agent does not have.
const API_WITH_A_MISSING_MODULE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-l7, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: web}}]
      toPorts:
        - ports: [{port: "80", protocol: TCP}]
          rules: {http: [{method: GET}]}
        - ports: [{port: "6379", protocol: TCP}]
          rules: {l7proto: redis, l7: [{command: GET}]}
"#;

#[test]
fn a_port_whose_filter_module_is_not_loaded_is_refused_and_the_rest_of_the_policy_applies() {
    if !super::datapath::can_run() {
        return;
    }
    let (web_ip, api_ip) = ([10, 212, 0, 10].into(), [10, 212, 0, 20].into());
    let mut node = Node::new("nomodule");
    let web = node.add_pod("app", "web", web_ip, &[("app", "web")]);
    let api = node.add_pod("app", "api", api_ip, &[("app", "api")]);
    let _servers = [80, 6379].map(|port| super::datapath::serve(&api, port));
    let pods = node.pod_manifests();
    let agent = Agent::start(&node, &[("pods.yaml", &pods), ("api.yaml", API_WITH_A_MISSING_MODULE)]);
    let stderr = agent.stderr();
    assert!(
        stderr.contains("of filter `redis` is unavailable, its connections are refused: filter module `redis` is not loaded"),
        "{stderr}"
    );

    // Port 80 is filtered as the policy says.
    assert_eq!(web.curl_status(&[&format!("http://{api_ip}/")]), "200");
    assert_eq!(web.curl_status(&["-X", "POST", &format!("http://{api_ip}/")]), "403");
    // 6379 is refused by the proxy, with a flow saying why.
    assert_eq!(web.curl_status(&[&format!("http://{api_ip}:6379/")]), "000");
    let flows = agent.flows();
    let refused = flows
        .iter()
        .find(|f| f["proxy"]["filter"] == "redis")
        .unwrap_or_else(|| panic!("no flow of the redis stage: {flows:#?}"));
    assert_eq!(refused["verdict"], "DROPPED", "{refused}");
    assert_eq!(refused["drop_reason_desc"], "filter module `redis` is not loaded", "{refused}");
    assert_eq!(refused["l4"]["TCP"]["destination_port"], 6379, "{refused}");
    assert_eq!(
        (refused["source"]["pod_name"].as_str(), refused["destination"]["pod_name"].as_str()),
        (Some("web"), Some("api"))
    );
    assert!(
        !flows.iter().any(|f| f["proxy"]["filter"] == "redis" && f["verdict"] == "FORWARDED"),
        "{flows:#?}"
    );
}
