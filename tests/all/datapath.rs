//! The eBPF datapath on real traffic: `porin agent` in a node namespace
//! enforces policy between pod namespaces (curl to nginx, dig to dnsmasq,
//! ICMP echo), revokes established connections, survives restarts without a
//! window of allow, and redirects L7 ports through the proxy's filters.

use std::net::Ipv4Addr;
use std::process::Output;
use std::time::{Duration, Instant};

use porin_tests::agent::Agent;
use porin_tests::netns::{Node, Pod};
use porin_tests::{Nginx, have, must_run, python};

const WEB: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 10);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 11);
const API: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 20);
const EXT: Ipv4Addr = Ipv4Addr::new(10, 210, 9, 9);

pub(crate) fn can_run() -> bool {
    if !must_run() {
        eprintln!(
            "SKIPPED: datapath and agent tests need root (BPF, network namespaces); run as root or with CI set"
        );
        return false;
    }
    have("ip") && have("nsenter") && have("curl") && have(&python())
}

/// A node with web, other and api (nginx on :80) in namespace `app`, and
/// `ext` (nginx, no manifest: the world) when `with_world`.
struct Lab {
    node: Node,
    web: Pod,
    other: Pod,
    pods_yaml: String,
    _servers: Vec<Nginx>,
}

impl Lab {
    fn new(hint: &str, with_world: bool) -> Lab {
        let mut node = Node::new(hint);
        let web = node.add_pod("app", "web", WEB, &[("app", "web")]);
        let other = node.add_pod("app", "other", OTHER, &[("app", "other")]);
        let api = node.add_pod("app", "api", API, &[("app", "api")]);
        let pods_yaml = node.pod_manifests();
        let mut servers = vec![serve(&api, 80)];
        if with_world {
            servers.push(serve(&node.add_pod("world", "ext", EXT, &[]), 80));
        }
        Lab { node, web, other, pods_yaml, _servers: servers }
    }

    fn agent(&self, policies: &[(&str, &str)]) -> Agent {
        let mut files = vec![("pods.yaml", self.pods_yaml.as_str())];
        files.extend_from_slice(policies);
        Agent::start(&self.node, &files)
    }
}

/// nginx in `pod` on `port`, once it answers.
pub(crate) fn serve(pod: &Pod, port: u16) -> Nginx {
    let nginx = Nginx::spawn(&format!("0.0.0.0:{port}"), port, |binary| pod.command(binary, &[]))
        .expect("nginx is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("http://{}:{port}/", pod.ip);
    while !pod.exec("curl", &["-sf", "--max-time", "1", &url]).status.success() {
        assert!(Instant::now() < deadline, "nginx in {} does not answer on {port}", pod.name);
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

/// `curl http://IP/` from `pod`, failing fast.
fn http_get(pod: &Pod, ip: Ipv4Addr, seconds: u32) -> Output {
    pod.exec("curl", &["-sf", "--max-time", &seconds.to_string(), &format!("http://{ip}/")])
}

fn reaches(pod: &Pod, ip: Ipv4Addr) -> bool {
    http_get(pod, ip, 2).status.success()
}

fn flows_with(agent: &Agent, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    agent.flows().into_iter().filter(|f| pred(f)).collect()
}

const API_INGRESS: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-ingress, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: web}}]
      toPorts: [{ports: [{port: "80", endPort: 90, protocol: TCP}]}]
    - fromEntities: [host]
"#;

pub(crate) const API_DENY_WEB: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-deny-web, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingressDeny:
    - fromEndpoints: [{matchLabels: {app: web}}]
"#;

const WEB_EGRESS: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-egress, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toEndpoints: [{matchLabels: {app: api}}]
    - toCIDR: [10.210.9.9/32]
"#;

#[test]
fn l3_l4_policy_decides_real_traffic_by_identity() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("l3l4", true);
    let agent = lab.agent(&[]);
    // No policy selects anyone: everything flows.
    assert!(reaches(&lab.web, API) && reaches(&lab.other, API));
    assert!(lab.web.ping(API, 1000) && lab.other.ping(OTHER, 1000));

    // api admits web on 80-90 and the host; other falls to default deny, and
    // ICMP (no port rule covers it) too.
    agent.update("api.yaml", Some(API_INGRESS));
    assert!(reaches(&lab.web, API), "web is allowed by the port range 80-90");
    assert!(!reaches(&lab.other, API), "other is not selected: default deny");
    assert!(!lab.web.ping(API, 500), "ICMP is not in api's port rules");
    let node_curl = lab.node.exec("curl", &["-sf", "--max-time", "2", &format!("http://{API}/")]);
    assert!(node_curl.status.success(), "the host entity is allowed");
    let drops = flows_with(&agent, |f| {
        f["verdict"] == "DROPPED"
            && f["source"]["pod_name"] == "other"
            && f["destination"]["pod_name"] == "api"
    });
    let drop = drops.first().expect("other -> api drops are reported");
    assert_eq!(drop["drop_reason_desc"], "POLICY_DENIED");
    assert_eq!(drop["traffic_direction"], "INGRESS");
    assert_eq!(drop["l4"]["TCP"]["destination_port"], 80);

    // An explicit deny beats the allow.
    agent.update("deny.yaml", Some(API_DENY_WEB));
    assert!(!reaches(&lab.web, API), "ingressDeny beats the allow");
    let denied = flows_with(&agent, |f| f["drop_reason_desc"] == "POLICY_DENY");
    assert!(!denied.is_empty(), "explicit denies are reported as POLICY_DENY");
    agent.update("deny.yaml", None);
    assert!(reaches(&lab.web, API));

    // web's egress: api by identity, ext (no pod manifest: world) by CIDR;
    // other (a pod, which CIDR rules never match) is denied.
    agent.update("web.yaml", Some(WEB_EGRESS));
    assert!(reaches(&lab.web, API));
    assert!(reaches(&lab.web, EXT), "toCIDR admits the world address");
    assert!(!lab.web.ping(OTHER, 500), "egress default deny");
    let egress_drop = flows_with(&agent, |f| {
        f["verdict"] == "DROPPED" && f["traffic_direction"] == "EGRESS" && f["source"]["pod_name"] == "web"
    });
    assert!(!egress_drop.is_empty(), "egress drops are reported");
}

/// A client in `pod` that sends a request on one keep-alive connection
/// every 100 ms and prints a line per answer, until a request goes
/// unanswered for a second.
fn keep_alive_client(pod: &Pod, ip: Ipv4Addr) -> porin_tests::Process {
    const CLIENT: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=1)
while True:
    s.sendall(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")
    try:
        data = s.recv(4096)
    except OSError:
        break
    if not data:
        break
    print("answer", flush=True)
    time.sleep(0.1)
print("stopped", flush=True)
"#;
    let mut command = pod.command(&python(), &["-c", CLIENT, &ip.to_string()]);
    command.stdout(std::process::Stdio::piped());
    porin_tests::Process(command.spawn().expect("python runs"))
}

fn read_lines(process: &mut porin_tests::Process) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = process.0.stdout.take().expect("piped");
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

#[test]
fn revoking_policy_stops_established_connections_and_restarts_leave_no_gap() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("revoke", false);
    let mut agent = lab.agent(&[("api.yaml", API_INGRESS)]);
    let mut client = keep_alive_client(&lab.web, API);
    let answers = read_lines(&mut client);
    for _ in 0..3 {
        assert_eq!(answers.recv_timeout(Duration::from_secs(5)).as_deref(), Ok("answer"));
    }

    // Restart the agent while `other` keeps trying: no attempt gets through,
    // and the established connection carries on.
    let mut prober = lab.other.command(&python(), &["-c", PROBER, &API.to_string()]);
    prober.stdout(std::process::Stdio::piped());
    let mut prober = porin_tests::Process(prober.spawn().expect("python runs"));
    let probes = read_lines(&mut prober);
    agent.stop();
    assert!(!reaches(&lab.other, API), "enforcement stays while no agent runs");
    assert!(reaches(&lab.web, API), "allowed traffic flows while no agent runs");
    agent.restart(&lab.node);
    assert!(reaches(&lab.web, API));
    drop(prober);
    let probed: Vec<String> = probes.try_iter().collect();
    assert!(probed.iter().any(|l| l == "blocked"), "the prober ran: {probed:?}");
    assert!(!probed.iter().any(|l| l == "connected"), "a denied connection got through: {probed:?}");
    while answers.try_recv().is_ok() {}
    assert_eq!(answers.recv_timeout(Duration::from_secs(5)).as_deref(), Ok("answer"), "survived the restart");

    // Revoke: api keeps default deny but no longer admits web. The open
    // connection stops getting answers.
    let deny_all = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api-ingress, namespace: app}\nspec:\n  endpointSelector: {matchLabels: {app: api}}\n  ingress: [{}]\n";
    agent.update("api.yaml", Some(deny_all));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match answers.recv_timeout(Duration::from_secs(5)) {
            Ok(line) if line == "stopped" => break,
            Ok(_) => assert!(Instant::now() < deadline, "the revoked connection still gets answers"),
            Err(err) => panic!("client output ended without stopping: {err}"),
        }
    }
    let revoked = flows_with(&agent, |f| f["Summary"].as_str().is_some_and(|s| s.contains("revoked")));
    assert!(!revoked.is_empty(), "the revocation is reported");

    // Uninstall removes the programs (traffic flows again) and every pin.
    let pin_dir = agent.pin_dir.clone();
    drop(agent);
    assert!(reaches(&lab.other, API), "nothing enforces after uninstall");
    assert!(!pin_dir.exists(), "{} is left behind", pin_dir.display());
}

/// Tries to connect every 20 ms; prints `connected` or `blocked` per try.
const PROBER: &str = r#"
import socket, sys, time
while True:
    try:
        socket.create_connection((sys.argv[1], 80), timeout=0.2).close()
        print("connected", flush=True)
    except OSError:
        print("blocked", flush=True)
    time.sleep(0.02)
"#;

const API_L7: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-l7, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: web}}]
      toPorts:
        - ports: [{port: "80", protocol: TCP}]
          rules: {http: [{method: GET, path: "/"}, {method: GET, path: "/public/.*"}]}
"#;

const WEB_L7: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-l7, namespace: app}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toEndpoints: [{matchLabels: {app: api}}]
      toPorts:
        - ports: [{port: "80", protocol: TCP}]
          rules: {http: [{method: GET, path: "/"}]}
"#;

#[test]
fn l7_ports_go_through_the_proxy_with_identities_and_destination_kept() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("l7", false);
    let agent = lab.agent(&[("api.yaml", API_L7)]);
    let url = format!("http://{API}/");
    assert_eq!(lab.web.curl_status(&[&url]), "200", "GET / is allowed");
    assert_eq!(lab.web.curl_status(&[&format!("{url}public/x")]), "200");
    assert_eq!(lab.web.curl_status(&["-X", "POST", &url]), "403", "POST is denied by the filter");
    assert_eq!(lab.other.curl_status(&[&url]), "000", "other is denied at L3");

    let l7 = flows_with(&agent, |f| f["Type"] == "L7" && f["l7"]["type"] == "REQUEST");
    let post = l7.iter().find(|f| f["l7"]["http"]["method"] == "POST").expect("the POST is recorded");
    assert_eq!(post["verdict"], "DROPPED");
    assert_eq!(post["traffic_direction"], "INGRESS");
    // The proxy knew both sides from the original addresses.
    assert_eq!(
        (post["source"]["pod_name"].as_str(), post["destination"]["pod_name"].as_str()),
        (Some("web"), Some("api"))
    );
    assert_eq!(post["IP"]["destination"], API.to_string());
    assert_eq!(post["l4"]["TCP"]["destination_port"], 80);
    let redirected = flows_with(&agent, |f| f["verdict"] == "REDIRECTED");
    assert!(!redirected.is_empty(), "the datapath reports the redirect");

    // web's own egress L7 rule too: the request passes web's filter, then
    // api's, each with its own rules and records.
    agent.update("web.yaml", Some(WEB_L7));
    let before = agent.flows().len();
    assert_eq!(lab.web.curl_status(&[&url]), "200");
    assert_eq!(lab.web.curl_status(&[&format!("{url}public/x")]), "403", "web's egress rule denies it");
    let stages: Vec<serde_json::Value> = agent.flows().split_off(before);
    let request_directions: Vec<&str> = stages
        .iter()
        .filter(|f| f["Type"] == "L7" && f["l7"]["type"] == "REQUEST")
        .filter_map(|f| f["traffic_direction"].as_str())
        .collect();
    assert!(request_directions.contains(&"EGRESS") && request_directions.contains(&"INGRESS"), "{stages:#?}");
}
