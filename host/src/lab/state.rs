//! What a lab is made of, kept in `state.json` in the lab's directory so
//! that every later command finds it, and file helpers for that directory.
//!
//! Commands that change the lab hold the directory's lock file; readers
//! need no lock because the state is replaced atomically (rename).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::programs::Program;
use super::{cluster_ip, netns};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The node's network namespace; the lab's other namespaces are named
    /// `<node>.<...>`.
    pub node: String,
    /// The agent's PID, once it runs.
    pub agent: Option<u32>,
    /// The namespace standing for everything outside the cluster.
    pub world: Option<World>,
    pub pods: Vec<LabPod>,
    /// The Services' ClusterIPs, by `namespace/name`.
    #[serde(default)]
    pub cluster_ips: BTreeMap<String, Ipv4Addr>,
}

/// The world: attached to the node like a pod, but no pod (no manifest), so
/// the datapath sees its address as the `world` entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    #[serde(flatten)]
    pub attachment: netns::Pod,
    pub processes: Vec<Started>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabPod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The program its image stands for, if any.
    pub program: Option<Program>,
    #[serde(flatten)]
    pub attachment: netns::Pod,
    pub processes: Vec<Started>,
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub program: String,
    pub pid: u32,
}

impl State {
    /// Reads `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> anyhow::Result<Option<State>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).map(Some).with_context(|| format!("{} is corrupt", path.display()))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_file(path, &serde_json::to_string_pretty(self)?)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }

    /// Removes pod `namespace/name` from the state, returning it.
    pub fn take_pod(&mut self, namespace: &str, name: &str) -> Option<LabPod> {
        let index = self.pods.iter().position(|p| p.namespace == namespace && p.name == name)?;
        Some(self.pods.remove(index))
    }

    /// The first address of `first..=last` no pod holds.
    pub fn free_ip(&self, first: Ipv4Addr, last: Ipv4Addr) -> Option<Ipv4Addr> {
        (u32::from(first)..=u32::from(last))
            .map(Ipv4Addr::from)
            .find(|ip| !self.pods.iter().any(|p| p.attachment.ip == *ip))
    }

    /// The cluster DNS, which every pod's resolv.conf names: the DNS
    /// Service's ClusterIP, as the kubelet writes it, else the DNS pod's
    /// address.
    pub fn cluster_dns(&self) -> Option<Ipv4Addr> {
        let pod = self.pods.iter().find(|p| p.program == Some(Program::ClusterDns))?;
        Some(self.cluster_ips.get(cluster_ip::DNS_SERVICE).copied().unwrap_or(pod.attachment.ip))
    }
}

/// An exclusive lock on a lab's directory, released when dropped.
#[derive(Debug)]
pub(super) struct Lock {
    _file: File,
}

impl Lock {
    pub(super) fn acquire(dir: &Path) -> anyhow::Result<Lock> {
        let path = dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock().with_context(|| format!("locking {}", path.display()))?;
        Ok(Lock { _file: file })
    }
}

/// Writes `text` to `path` atomically, readable by all: nginx workers,
/// dnsmasq and PostgreSQL drop root and must still read the lab's files.
pub(super) fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// Creates `dir` (and its parents) readable and searchable by all.
pub(super) fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}
