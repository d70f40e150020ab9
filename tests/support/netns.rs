//! A small Kubernetes-like node built from network namespaces, for datapath
//! tests: a node namespace (the node's host namespace, where the agent runs)
//! and one namespace per pod, joined by veth pairs and routed the way Calico
//! and Cilium route pods:
//!
//! ```text
//!   pod netns                         node netns (ip_forward=1)
//!   eth0  10.0.0.2/32  <-- veth -->   lxc<hash>  169.254.1.1/32
//!   169.254.1.1 dev eth0 scope link   10.0.0.2/32 dev lxc<hash>
//!   default via 169.254.1.1
//! ```
//!
//! Every pod reaches every other pod through the node namespace, and the node
//! finds each pod's host interface from its /32 route. The machine's own
//! (root) namespace is never touched: no address, route or rule is added there.
//! The wiring is the lab's ([`porin::lab::netns`]); this fixture adds the
//! test's bookkeeping (names, labels, manifests, clean-up on drop).
//!
//! Dropping a [`Node`] stops whatever still runs in its namespaces (by PID)
//! and deletes them, which removes the veths and routes. Namespaces left by
//! an earlier run that crashed (their names carry a PID that no longer exists)
//! are deleted when the next [`Node`] is created.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use porin::lab::netns as lab_netns;

use crate::Process;

/// Every namespace this fixture creates is named `porin-nt-<pid>-<n>-...`.
pub const NETNS_PREFIX: &str = "porin-nt-";

/// A node: its own network namespace, with pods attached to it.
#[derive(Debug)]
pub struct Node {
    name: String,
    /// Every pod namespace created (or being created), deleted on drop.
    pod_netns: Vec<String>,
    pods: Vec<Pod>,
}

/// One pod on a [`Node`]: a network namespace with `eth0` holding `ip`/32.
/// A handle: the node owns the namespace and deletes it.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    /// The pod's network namespace (`ip netns exec NETNS ...`).
    pub netns: String,
    /// The host side of the pod's veth, in the node namespace.
    pub host_if: String,
    pub host_ifindex: u32,
}

impl Node {
    /// Creates the node namespace `porin-nt-<pid>-<n>-<hint>` with loopback
    /// up and IPv4 forwarding on. Panics (after cleaning up) when `ip` fails.
    pub fn new(name_hint: &str) -> Node {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale_netns();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let hint: String = name_hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .take(16)
            .collect();
        let name = format!("{NETNS_PREFIX}{}-{n}-{hint}", std::process::id());
        lab_netns::Node::create(&name).unwrap_or_else(|err| panic!("node {name}: {err:#}"));
        Node { name, pod_netns: Vec::new(), pods: Vec::new() }
    }

    /// The node's network namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pods added so far.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// Adds pod `namespace/name` with address `ip` and `labels`: its own
    /// namespace, a veth pair (`eth0` in the pod, `lxc<hash>` in the node),
    /// the gateway and default route in the pod and a /32 route in the node.
    pub fn add_pod(&mut self, namespace: &str, name: &str, ip: Ipv4Addr, labels: &[(&str, &str)]) -> Pod {
        assert!(
            !self.pods.iter().any(|p| p.ip == ip || (p.namespace == namespace && p.name == name)),
            "pod {namespace}/{name} ({ip}) is already on node {}",
            self.name
        );
        let netns = format!("{}-p{}", self.name, self.pod_netns.len());
        self.pod_netns.push(netns.clone());
        let wired = lab_netns::Node::open(&self.name).add_pod(&netns, ip);
        let host_if = wired.unwrap_or_else(|err| panic!("pod {namespace}/{name}: {err:#}")).host_if;
        let index = self.exec_ok("cat", &[&format!("/sys/class/net/{host_if}/ifindex")]);
        let host_ifindex = String::from_utf8_lossy(&index.stdout).trim().parse().expect("an ifindex");
        let pod = Pod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ip,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            netns,
            host_if,
            host_ifindex,
        };
        self.pods.push(pod.clone());
        pod
    }

    /// `cmd args...` in the node namespace, to completion.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        exec_in(&self.name, cmd, args)
    }

    /// Like [`Node::exec`]; panics with its stderr when it fails.
    pub fn exec_ok(&self, cmd: &str, args: &[&str]) -> Output {
        exec_ok_in(&self.name, cmd, args)
    }

    /// `cmd args...` started in the node namespace, stopped (by PID) when
    /// the [`Process`] is dropped.
    pub fn spawn(&self, cmd: &str, args: &[&str]) -> Process {
        Process(self.command(cmd, args).spawn().unwrap_or_else(|err| panic!("{cmd} does not start: {err}")))
    }

    /// A [`Command`] running `cmd args...` in the node namespace.
    pub fn command(&self, cmd: &str, args: &[&str]) -> Command {
        command_in(&self.name, cmd, args)
    }

    /// A [`Command`] running `cmd args...` in the node's network namespace
    /// only (`nsenter --net`), keeping the machine's mounts. Use it for the
    /// agent: `ip netns exec` remounts `/sys` for the namespace, which hides
    /// the bpffs at `/sys/fs/bpf`, so pins made there would not outlive the
    /// process nor be seen by `porin agent uninstall`. The other side of it:
    /// `/sys/class/net` shows the root namespace's interfaces (netlink, and
    /// ioctls on sockets, see the node's own).
    pub fn command_keeping_mounts(&self, cmd: &str, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net=/run/netns/{}", self.name)).arg("--").arg(cmd).args(args);
        command
    }

    /// Kubernetes manifests for the node's pods: one `Namespace` per pod
    /// namespace, then one `Pod` each with its labels and `status.podIP`,
    /// as the porin agent reads them.
    pub fn pod_manifests(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        let namespaces: std::collections::BTreeSet<&str> =
            self.pods.iter().map(|p| p.namespace.as_str()).collect();
        let mut docs = Vec::new();
        for namespace in namespaces {
            docs.push(format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n", quote(namespace)));
        }
        for pod in &self.pods {
            let mut doc = format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {}\n",
                quote(&pod.name),
                quote(&pod.namespace)
            );
            if pod.labels.is_empty() {
                doc.push_str("  labels: {}\n");
            } else {
                doc.push_str("  labels:\n");
                for (key, value) in &pod.labels {
                    doc.push_str(&format!("    {}: {}\n", quote(key), quote(value)));
                }
            }
            doc.push_str(&format!(
                "spec:\n  containers:\n    - name: main\n      image: porin-netns-fixture\nstatus:\n  phase: Running\n  podIP: {}\n  podIPs:\n    - ip: {}\n",
                quote(&pod.ip.to_string()),
                quote(&pod.ip.to_string())
            ));
            docs.push(doc);
        }
        docs.join("---\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for netns in self.pod_netns.iter().rev().chain(std::iter::once(&self.name)) {
            delete_netns(netns);
        }
    }
}

impl Pod {
    /// `cmd args...` in the pod namespace, to completion.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        exec_in(&self.netns, cmd, args)
    }

    /// Like [`Pod::exec`]; panics with its stderr when it fails.
    pub fn exec_ok(&self, cmd: &str, args: &[&str]) -> Output {
        exec_ok_in(&self.netns, cmd, args)
    }

    /// `cmd args...` started in the pod namespace, stopped (by PID) when
    /// the [`Process`] is dropped.
    pub fn spawn(&self, cmd: &str, args: &[&str]) -> Process {
        Process(self.command(cmd, args).spawn().unwrap_or_else(|err| panic!("{cmd} does not start: {err}")))
    }

    /// A [`Command`] running `cmd args...` in the pod namespace.
    pub fn command(&self, cmd: &str, args: &[&str]) -> Command {
        command_in(&self.netns, cmd, args)
    }

    /// `curl` from this pod: the HTTP status, `000` when no answer came.
    pub fn curl_status(&self, args: &[&str]) -> String {
        let options = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"];
        let output = self.exec("curl", &[&options, args].concat());
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Whether `ip` answers one ICMP echo from this pod within `timeout_ms`
    /// (a raw socket from Python: no `ping` binary needed).
    pub fn ping(&self, ip: Ipv4Addr, timeout_ms: u32) -> bool {
        const PING: &str = r#"
import socket, struct, sys, time
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
dst, timeout = sys.argv[1], float(sys.argv[2]) / 1000
ident = 0x5052
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"porin-netns"
packet = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(packet, (dst, 0))
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    s.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        data, (src, _) = s.recvfrom(2048)
    except socket.timeout:
        break
    icmp = data[(data[0] & 0x0F) * 4:]
    if src == dst and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
        sys.exit(0)
sys.exit(1)
"#;
        let python = crate::python();
        self.exec(&python, &["-c", PING, &ip.to_string(), &timeout_ms.to_string()]).status.success()
    }
}

fn command_in(netns: &str, cmd: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, cmd]).args(args);
    command
}

fn exec_in(netns: &str, cmd: &str, args: &[&str]) -> Output {
    command_in(netns, cmd, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("ip netns exec {netns} {cmd} does not run: {err}"))
}

fn exec_ok_in(netns: &str, cmd: &str, args: &[&str]) -> Output {
    let output = exec_in(netns, cmd, args);
    assert!(
        output.status.success(),
        "ip netns exec {netns} {cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The network namespaces that exist (`ip netns list`).
pub fn list_netns() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output();
    let Ok(output) = output else { return Vec::new() };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Stops what still runs in `netns` (the PIDs `ip netns pids` lists: only
/// processes started there, by this fixture's users) and deletes it. Never
/// panics: it runs in `Drop`.
fn delete_netns(netns: &str) {
    let pids = || -> Vec<String> {
        Command::new("ip")
            .args(["netns", "pids", netns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    for (signal, wait) in [("TERM", 50), ("KILL", 50)] {
        let running = pids();
        if running.is_empty() {
            break;
        }
        Command::new("kill").arg(format!("-{signal}")).args(&running).stderr(Stdio::null()).status().ok();
        for _ in 0..wait {
            if pids().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Command::new("ip").args(["netns", "delete", netns]).stderr(Stdio::null()).status().ok();
}

/// Deletes namespaces `porin-nt-<pid>-...` whose `<pid>` no longer runs:
/// left by a test process that crashed or was killed.
fn remove_stale_netns() {
    for netns in list_netns() {
        let Some(rest) = netns.strip_prefix(NETNS_PREFIX) else { continue };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(&netns);
        }
    }
}
