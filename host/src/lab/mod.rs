//! `porin lab`: a small cluster on one machine, driven like kubectl. A node
//! network namespace runs the porin agent; every pod is a namespace wired to
//! it ([`netns`]) running the real program its image stands for
//! (`programs`); a `world` namespace stands for the Internet; a dnsmasq
//! pod is the cluster DNS (`dns`). `lifecycle` brings a lab up and down,
//! `apply` stores objects where the agent reads them (`objects`), `pods`
//! creates, runs and enters pods; `state.json` remembers it all.
//!
//! Services get ClusterIPs (`cluster_ip`) that the agent's socket programs
//! translate for the pods' processes, which all run in the lab's `cgroup`.
//!
//! Everything a lab is made of is named after the lab: the node namespace
//! is `NAME`, the others `NAME.<...>`, the pins live in `/sys/fs/bpf/NAME`,
//! the cgroup is `porin-lab-NAME` and the state in `/run/NAME` (or
//! `$PORIN_LAB_DIR`). So `down` finds it all even when the state is lost,
//! and labs never touch each other.

mod agent;
mod apply;
mod cgroup;
mod cluster_ip;
mod dns;
mod lifecycle;
pub mod netns;
mod objects;
mod pods;
mod process;
mod programs;
mod state;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::manifest::Manifests;
use objects::Store;
pub use programs::Program;
use state::Lock;
pub use state::{LabPod, Started, State, World};

/// The lab's name when none is given.
pub const DEFAULT_NAME: &str = "porin-lab";

/// Pods get addresses from 10.244.0.10 up (Kubernetes' usual pod range).
const POD_FIRST: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 10);
const POD_LAST: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 254);

/// The world's address: documentation space (TEST-NET-2), never routed on
/// the Internet, so it looks external without being anyone's.
pub const WORLD_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

/// The default app: the seed article's three tiers and the cluster DNS.
const DEFAULT_APP: [(&str, &str); 2] = [
    ("test-app.yaml", include_str!("../../../tests/fixtures/seed/test-app.yaml")),
    ("kube-dns.yaml", include_str!("../../../tests/fixtures/lab/kube-dns.yaml")),
];

/// A lab, up or not.
#[derive(Debug, Clone)]
pub struct Lab {
    name: String,
    dir: PathBuf,
}

impl Lab {
    /// The lab `name`; its state lives in `$PORIN_LAB_DIR` if set, else
    /// `/run/NAME`.
    pub fn new(name: &str) -> anyhow::Result<Lab> {
        let valid = name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            bail!("invalid lab name `{name}`: use up to 32 lower-case letters, digits and `-`");
        }
        let dir =
            std::env::var_os("PORIN_LAB_DIR").map_or_else(|| Path::new("/run").join(name), PathBuf::from);
        Ok(Lab { name: name.to_string(), dir })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pin_dir(&self) -> PathBuf {
        Path::new("/sys/fs/bpf").join(&self.name)
    }

    /// The cgroup (v2) the pods' processes run in.
    pub fn cgroup(&self) -> PathBuf {
        cgroup::path(&self.name)
    }

    pub fn agent_log(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    pub fn flows(&self) -> PathBuf {
        self.dir.join("flows.jsonl")
    }

    /// The agent's HTTP API (`curl --unix-socket PATH http://agent/readyz`).
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn store(&self) -> Store {
        Store { dir: self.dir.join("manifests") }
    }

    fn cluster_hosts(&self) -> PathBuf {
        self.dir.join("dns/cluster.hosts")
    }

    fn log(&self, owner: &str, program: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{owner}.{program}.log"))
    }

    /// Whether a network namespace belongs to this lab.
    fn owns(&self, netns: &str) -> bool {
        netns == self.name || netns.strip_prefix(&self.name).is_some_and(|rest| rest.starts_with('.'))
    }

    /// The state of the lab, which must be up.
    pub fn state(&self) -> anyhow::Result<State> {
        State::load(&self.state_path())?
            .with_context(|| format!("lab {} is not up (porin lab up starts it)", self.name))
    }

    /// Every object the agent reads.
    pub fn manifests(&self) -> Manifests {
        Manifests::load(&[self.store().dir])
    }

    /// Has the agent re-read the manifests.
    fn reload(&self, state: &State) -> anyhow::Result<()> {
        let pid = state.agent.context("the lab has no agent")?;
        if !running(&state.node, pid) {
            bail!(
                "the lab's agent (pid {pid}) is not running; the end of {}:\n{}\n\
                 porin lab down, then porin lab up, restarts the lab",
                self.agent_log().display(),
                process::tail(&self.agent_log(), 20)
            );
        }
        agent::reload(pid, &self.api_socket(), &self.agent_log())
    }

    fn lock(&self) -> anyhow::Result<Lock> {
        if !self.dir.exists() {
            bail!("lab {} is not up (porin lab up starts it)", self.name);
        }
        Lock::acquire(&self.dir)
    }
}

/// Whether process `pid` still runs in the lab namespace `netns`.
pub fn running(netns: &str, pid: u32) -> bool {
    process::alive(pid) && netns::holds(netns, pid)
}

/// Stops whatever runs in a namespace, then deletes it.
fn remove_netns(name: &str) {
    process::stop(&netns::pids(name));
    netns::delete(name);
}
