//! Service translation at the socket with real clients: the socket
//! programs attached to a test cgroup, the service maps written from
//! Services the way the agent writes them, and curl, dig and Python
//! sockets in pod namespaces reaching ClusterIPs that exist nowhere on the
//! network. Only processes in the test cgroup are translated.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use porin::datapath::SocketLb;
use porin::datapath::sock::uninstall;
use porin::diagnostic::Location;
use porin::endpoint::Workloads;
use porin::manifest::Manifests;
use porin::service::ServiceTable;
use porin_tests::cgroup::TestCgroup;
use porin_tests::netns::{Node, Pod};
use porin_tests::{Process, TempDir, have, output_within, python};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 10);
const WEB_1: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 20);
const WEB_2: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 21);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 30);

/// `web` spreads over both web pods, `one` goes to web-1 only, `dns` is
/// dnsmasq (UDP and TCP), `empty` selects nothing.
const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec: {clusterIP: 10.96.100.1, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: one, namespace: app}
spec: {clusterIP: 10.96.100.2, selector: {app: web, n: "1"}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: app}
spec:
  clusterIP: 10.96.100.10
  selector: {app: dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: app}
spec: {clusterIP: 10.96.100.3, selector: {app: nothing}, ports: [{port: 80}]}
"#;

/// Removes, even when the test fails, what it left: the socket programs'
/// links and maps, then (as the field drops) the test cgroup.
struct Installed {
    pin_dir: PathBuf,
    cgroup: TestCgroup,
}

impl Drop for Installed {
    fn drop(&mut self) {
        uninstall(&self.pin_dir).ok();
        std::fs::remove_dir_all(&self.pin_dir).ok();
    }
}

/// A [`Command`] running `cmd args...` in `pod`, inside `cgroup` from its
/// first instruction (before `ip netns exec` remounts /sys).
fn in_cgroup(cgroup: &Path, pod: &Pod, cmd: &str, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", r#"echo $$ > "$1" && shift && exec "$@""#, "sh"]);
    command.arg(cgroup.join("cgroup.procs")).args(["ip", "netns", "exec", &pod.netns, cmd]).args(args);
    command
}

fn run(command: &mut Command) -> Output {
    output_within(command, b"", Duration::from_secs(30))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A Python HTTP server on :8080 in `pod` whose page is the pod's name.
fn http_server(pod: &Pod, dir: &TempDir) -> Process {
    let root = dir.path(&pod.name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), &pod.name).unwrap();
    let root = root.to_str().unwrap().to_string();
    let mut command =
        pod.command(&python(), &["-m", "http.server", "8080", "--bind", "0.0.0.0", "-d", &root]);
    let server = Process(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("http://{}:8080/", pod.ip);
    while !pod.exec("curl", &["-sf", "--max-time", "1", &url]).status.success() {
        assert!(Instant::now() < deadline, "the HTTP server in {} does not answer", pod.name);
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn table(node: &Node, services: &str) -> ServiceTable {
    let mut manifests = Manifests::default();
    manifests.parse(&format!("{}---\n{services}", node.pod_manifests()), Location::default());
    let (workloads, _) = Workloads::from_manifests(&manifests);
    let (table, diagnostics) = ServiceTable::new(&manifests, &workloads);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    table
}

#[test]
fn cluster_ips_are_translated_at_the_socket_for_the_cgroup_only() {
    if !crate::datapath::can_run() || !have("dig") || !have("dnsmasq") {
        return;
    }
    let installed = Installed {
        pin_dir: Path::new("/sys/fs/bpf").join(format!("porin-test-services-{}", std::process::id())),
        cgroup: TestCgroup::new("services"),
    };
    let mut node = Node::new("services");
    let client = node.add_pod("app", "client", CLIENT, &[("app", "client")]);
    let web_1 = node.add_pod("app", "web-1", WEB_1, &[("app", "web"), ("n", "1")]);
    let web_2 = node.add_pod("app", "web-2", WEB_2, &[("app", "web"), ("n", "2")]);
    let dns = node.add_pod("app", "dns", DNS, &[("app", "dns")]);
    let dir = TempDir::new("services");
    let _servers = [http_server(&web_1, &dir), http_server(&web_2, &dir)];
    std::fs::write(dir.path("hosts"), "10.1.2.3 web.example\n").unwrap();
    let hosts = format!("--addn-hosts={}", dir.path("hosts").display());
    let _dnsmasq = dns.spawn(
        "dnsmasq",
        &[
            "--conf-file=/dev/null",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            &hosts,
        ],
    );

    let mut lb = SocketLb::load(&installed.pin_dir).expect("the socket programs load and verify");
    lb.attach(&installed.cgroup.path).expect("attaching to the test cgroup");
    lb.write(&table(&node, SERVICES)).expect("writing the service maps");

    let curl = |url: &str| {
        let output =
            run(&mut in_cgroup(&installed.cgroup.path, &client, "curl", &["-s", "--max-time", "3", url]));
        (output.status.success(), text(&output.stdout))
    };
    // TCP: the ClusterIP reaches the backend's target port.
    assert_eq!(curl("http://10.96.100.2/"), (true, "web-1".to_string()));
    // Outside the cgroup nothing is translated, and nothing answers there.
    let outside = client.exec("curl", &["-s", "--max-time", "2", "http://10.96.100.2/"]);
    assert!(!outside.status.success(), "{}", text(&outside.stdout));

    // Connections spread over both backends.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (ok, body) = curl("http://10.96.100.1/");
        assert!(ok, "every connection reaches a backend");
        seen.insert(body);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["web-1", "web-2"]);

    // The application sees the ClusterIP as its peer.
    let peer = "import socket\ns = socket.create_connection(('10.96.100.2', 80), timeout=3)\nprint(*s.getpeername())";
    let output = run(&mut in_cgroup(&installed.cgroup.path, &client, &python(), &["-c", peer]));
    assert_eq!(text(&output.stdout).trim(), "10.96.100.2 80", "{}", text(&output.stderr));

    // UDP: dig accepts only an answer from the address it asked.
    for transport in ["+notcp", "+tcp"] {
        let args = ["@10.96.100.10", transport, "+short", "+time=2", "+tries=1", "web.example"];
        let output = run(&mut in_cgroup(&installed.cgroup.path, &client, "dig", &args));
        assert_eq!(text(&output.stdout).trim(), "10.1.2.3", "{transport}: {}", text(&output.stderr));
    }
    // An unconnected UDP socket (sendmsg4) gets the reply from the ClusterIP (recvmsg4).
    let query = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n\
                 q = bytes.fromhex('abcd01000001000000000000') + b'\\x03web\\x07example\\x00\\x00\\x01\\x00\\x01'\n\
                 s.sendto(q, ('10.96.100.10', 53)); data, source = s.recvfrom(512)\n\
                 print(*source, data[:2].hex())";
    let output = run(&mut in_cgroup(&installed.cgroup.path, &client, &python(), &["-c", query]));
    assert_eq!(text(&output.stdout).trim(), "10.96.100.10 53 abcd", "{}", text(&output.stderr));

    // No backends: connect() is refused at once (EPERM).
    let refused = "import socket\ntry:\n    socket.create_connection(('10.96.100.3', 80), timeout=3)\nexcept OSError as e:\n    print(e.errno)";
    let output = run(&mut in_cgroup(&installed.cgroup.path, &client, &python(), &["-c", refused]));
    assert_eq!(text(&output.stdout).trim(), "1", "EPERM: {}", text(&output.stderr));

    // A removed Service is no longer translated; the others still are.
    let without_one: String =
        SERVICES.split("---").filter(|doc| !doc.contains("name: one,")).collect::<Vec<_>>().join("---");
    lb.write(&table(&node, &without_one)).expect("rewriting the service maps");
    assert!(!curl("http://10.96.100.2/").0, "the removed Service still answers");
    assert!(curl("http://10.96.100.1/").0);
    drop(node);
}
