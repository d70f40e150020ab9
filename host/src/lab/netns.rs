//! Network namespaces wired the way Calico and Cilium wire pods: a node
//! namespace (the node's host namespace, where the agent runs) and one
//! namespace per pod, joined by veth pairs:
//!
//! ```text
//!   pod netns                         node netns (ip_forward=1, rp_filter=0)
//!   eth0  10.244.0.10/32  <-- veth --> lxc<hash>  169.254.1.1/32
//!   169.254.1.1 dev eth0 scope link   10.244.0.10/32 dev lxc<hash>
//!   default via 169.254.1.1
//! ```
//!
//! Every pod reaches every other pod through the node, and the agent finds
//! each pod's host interface from its /32 route. The machine's own (root)
//! namespace is never touched. Deleting a pod's namespace removes its veth
//! and route with it, once nothing runs in it any more.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::command::{ip, output};

/// The pods' default gateway: a link-local address on every host-side veth
/// (as Calico uses 169.254.1.1), so that no pod subnet is needed.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The node namespace's settings: routing between veths, and no reverse-path
/// check (replies steered through the proxy arrive on another interface).
const NODE_SYSCTLS: [(&str, &str); 5] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    // The lab is IPv4 only (the datapath drops IPv6): no router or
    // neighbour solicitations on the veths to show up as drops.
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// A node: a network namespace standing for the node's host namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    name: String,
}

/// A namespace attached to a [`Node`] with `eth0` holding `ip`/32.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// The pod's network namespace (`ip netns exec NETNS ...`).
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The host side of the pod's veth, in the node namespace.
    pub host_if: String,
    /// The cgroup (v2 directory) its commands run in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

/// A shell line that moves itself into the cgroup whose `cgroup.procs` is
/// `$1`, then becomes the rest of its arguments (same PID). It runs before
/// `ip netns exec`, which mounts a `/sys` without the cgroup filesystems.
const ENTER_CGROUP: &str = r#"echo $$ > "$1" && shift && exec "$@""#;

impl Node {
    /// Creates the node namespace `name` with loopback up and forwarding on.
    pub fn create(name: &str) -> anyhow::Result<Node> {
        ip(&["netns", "add", name])?;
        let node = Node::open(name);
        let setup = || -> anyhow::Result<()> {
            ip(&["-n", name, "link", "set", "lo", "up"])?;
            for (key, value) in NODE_SYSCTLS {
                output(node.command("sysctl").args(["-q", "-w", &format!("{key}={value}")]))
                    .context("setting the node's sysctls (install procps)")?;
            }
            Ok(())
        };
        setup().inspect_err(|_| delete(name))?;
        Ok(node)
    }

    /// The node namespace `name`, which exists already.
    pub fn open(name: &str) -> Node {
        Node { name: name.to_string() }
    }

    /// Creates namespace `netns` and wires it to the node: a veth pair
    /// (`eth0` in the pod, `lxc<hash>` in the node), the gateway and default
    /// route in the pod, a /32 route to `address` in the node.
    pub fn add_pod(&self, netns: &str, address: Ipv4Addr) -> anyhow::Result<Pod> {
        ip(&["netns", "add", netns])?;
        let pod =
            Pod { netns: netns.to_string(), ip: address, host_if: host_interface_name(netns), cgroup: None };
        self.wire(&pod).inspect_err(|_| delete(netns))?;
        Ok(pod)
    }

    fn wire(&self, pod: &Pod) -> anyhow::Result<()> {
        let (node, netns, host_if) = (self.name.as_str(), pod.netns.as_str(), pod.host_if.as_str());
        let (address, gateway) = (format!("{}/32", pod.ip), GATEWAY.to_string());
        ip(&["-n", node, "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns])?;
        // IPv4 only, like the node (see NODE_SYSCTLS).
        output(pod.command("sysctl").args(["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]))?;
        output(pod.command("sysctl").args(["-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"]))?;
        ip(&["-n", netns, "link", "set", "lo", "up"])?;
        ip(&["-n", netns, "addr", "add", &address, "dev", "eth0"])?;
        ip(&["-n", netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", netns, "route", "add", &gateway, "dev", "eth0", "scope", "link"])?;
        ip(&["-n", netns, "route", "add", "default", "via", &gateway, "dev", "eth0"])?;
        // The gateway address answers the pod's ARP for it; the /32 route is
        // what the agent discovers the pod's interface from.
        ip(&["-n", node, "addr", "add", &format!("{gateway}/32"), "dev", host_if])?;
        ip(&["-n", node, "link", "set", host_if, "up"])?;
        ip(&["-n", node, "route", "add", &address, "dev", host_if])?;
        Ok(())
    }

    /// A [`Command`] running `program` in the node's network namespace only
    /// (`nsenter --net`), keeping the machine's mounts: `ip netns exec`
    /// remounts `/sys`, which would hide the bpffs at `/sys/fs/bpf` from the
    /// agent, so its pins would neither outlive it nor be found by
    /// `porin agent uninstall`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net={}", netns_path(&self.name).display())).arg("--").arg(program);
        command
    }
}

impl Pod {
    /// A [`Command`] running `program` in the pod (`ip netns exec`, so the
    /// pod's own `resolv.conf` applies), and in its cgroup if it has one.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = match &self.cgroup {
            Some(cgroup) => {
                let mut command = Command::new("sh");
                command.args(["-c", ENTER_CGROUP, "sh"]).arg(cgroup.join("cgroup.procs")).arg("ip");
                command
            }
            None => Command::new("ip"),
        };
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }

    /// Gives the pod its own `/etc/resolv.conf` (`ip netns exec` mounts
    /// `/etc/netns/NETNS/resolv.conf` over it).
    pub fn set_resolv_conf(&self, text: &str) -> anyhow::Result<()> {
        let dir = etc_dir(&self.netns);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("resolv.conf");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// Whether namespace `name` exists.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Whether process `pid` runs in namespace `name`: a PID the lab recorded
/// is only signalled while this holds, so a reused PID is never hit.
pub fn holds(name: &str, pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let namespace = std::fs::metadata(netns_path(name));
    let process = std::fs::metadata(format!("/proc/{pid}/ns/net"));
    matches!((namespace, process), (Ok(n), Ok(p)) if n.dev() == p.dev() && n.ino() == p.ino())
}

/// The network namespaces that exist (`ip netns list`).
pub fn list() -> Vec<String> {
    let listed = output(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    listed.lines().filter_map(|line| line.split_whitespace().next().map(str::to_string)).collect()
}

/// The processes running in namespace `name`.
pub fn pids(name: &str) -> Vec<u32> {
    let listed = output(Command::new("ip").args(["netns", "pids", name])).unwrap_or_default();
    listed.split_whitespace().filter_map(|pid| pid.parse().ok()).collect()
}

/// Deletes namespace `name` and its `/etc/netns` files; a missing one is
/// fine. Processes still running in it keep it alive: stop them first.
pub fn delete(name: &str) {
    if exists(name) {
        output(Command::new("ip").args(["netns", "delete", name])).ok();
    }
    std::fs::remove_dir_all(etc_dir(name)).ok();
}

fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

fn etc_dir(name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(name)
}

/// `lxc` and 12 hex digits of a hash of the pod's namespace name: at most 15
/// bytes (IFNAMSIZ - 1), and unique within the node.
fn host_interface_name(netns: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for byte in netns.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("lxc{:012x}", hash & 0xffff_ffff_ffff)
}
