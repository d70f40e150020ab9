//! The lab's porin agent: started detached in the node namespace, then told
//! to re-read the manifests with SIGHUP. Its log says when it is ready
//! (`datapath ready`); its API's `/v1/status` counts the re-reads done and
//! says why the last one was not applied.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::netns::Node;
use super::process::{signal, spawn_detached, wait_ready};

const READY: &str = "datapath ready";

/// Loading the programs and applying a policy can take a while on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// Where the agent reads and writes.
#[derive(Debug, Clone, Copy)]
pub(super) struct AgentPaths<'a> {
    pub(super) manifests: &'a Path,
    pub(super) pin_dir: &'a Path,
    /// Where the socket programs translate Services.
    pub(super) cgroup: &'a Path,
    /// Its HTTP API's unix socket.
    pub(super) api: &'a Path,
    /// Its stderr.
    pub(super) log: &'a Path,
    /// Its stdout: one flow per line.
    pub(super) flows: &'a Path,
    /// Extra filter modules (`NAME.wasm`), loaded on each update.
    pub(super) filters: &'a Path,
}

/// Starts `porin agent` (this very binary) in `node` and waits until it
/// enforces; its PID.
pub(super) fn start(node: &Node, paths: AgentPaths<'_>) -> anyhow::Result<u32> {
    let porin = std::env::current_exe().context("finding the porin binary")?;
    let mut command = node.command(porin);
    command.args(["agent", "--log-flows", "-f"]).arg(paths.manifests).arg("--pin-dir").arg(paths.pin_dir);
    command.arg("--cgroup-root").arg(paths.cgroup);
    // A socket of its own: agents of other labs (and the machine's) run too.
    command.arg("--api").arg(format!("unix:{}", paths.api.display()));
    command.arg("--filters-dir").arg(paths.filters);
    // The log is appended to across restarts: only this agent's lines count.
    let start = read(paths.log).len();
    let pid = spawn_detached(&command, paths.flows, paths.log)?;
    let ready = || read(paths.log).get(start..).is_some_and(|new| new.contains(READY));
    wait_ready("the porin agent", pid, paths.log, LIMIT, ready)?;
    Ok(pid)
}

/// Makes the agent `pid` re-read its manifests and waits for the outcome;
/// an error carries the agent's reason when it refused the update. Done
/// means the agent counted this re-read in its status (`reloads`): neither
/// log lines nor the revision tell it from an update the agent's file
/// watcher made meanwhile, perhaps from half-written files.
pub(super) fn reload(pid: u32, api: &Path, log: &Path) -> anyhow::Result<()> {
    let before = status(api)?["reloads"].as_u64().unwrap_or(0);
    signal(pid, "HUP")?;
    let done = || status(api).ok().filter(|now| now["reloads"].as_u64().unwrap_or(0) > before);
    wait_ready("the porin agent", pid, log, LIMIT, || done().is_some())?;
    let status = done().context("the agent's status went away")?;
    let problems: Vec<&str> = status["last_error"]
        .as_str()
        .into_iter()
        .chain(status["rejected"].as_array().into_iter().flatten().filter_map(|r| r.as_str()))
        .collect();
    if !problems.is_empty() {
        bail!("the agent did not apply the change: {}", problems.join("; "));
    }
    Ok(())
}

/// The agent's `GET /v1/status`, on its socket.
fn status(api: &Path) -> anyhow::Result<serde_json::Value> {
    let mut stream =
        UnixStream::connect(api).with_context(|| format!("connecting to the agent at {}", api.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /v1/status HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading the agent's status")?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).with_context(|| format!("the agent's status is not JSON: {response}"))
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}
