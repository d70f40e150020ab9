//! The lab's porin agent: started detached in the node namespace, then told
//! to re-read the manifests with SIGHUP. Its log says when it is ready
//! (`datapath ready`) and the outcome of every re-read: `policy revision N`
//! or `update failed, the policy in force stays: REASON`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::netns::Node;
use super::process::{signal, spawn_detached, wait_ready};

const READY: &str = "datapath ready";
const APPLIED: &str = "policy revision";
const FAILED: &str = "update failed";

/// Loading the programs and applying a policy can take a while on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// Where the agent reads and writes.
#[derive(Debug, Clone, Copy)]
pub(super) struct AgentPaths<'a> {
    pub(super) manifests: &'a Path,
    pub(super) pin_dir: &'a Path,
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
/// an error carries the agent's reason when it refused the update.
pub(super) fn reload(pid: u32, log: &Path) -> anyhow::Result<()> {
    let count = |needle: &str| read(log).lines().filter(|line| line.contains(needle)).count();
    let (applied, failed) = (count(APPLIED), count(FAILED));
    signal(pid, "HUP")?;
    wait_ready("the porin agent", pid, log, LIMIT, || count(APPLIED) > applied || count(FAILED) > failed)?;
    if count(FAILED) > failed {
        let text = read(log);
        let reason = text.lines().rev().find(|line| line.contains(FAILED)).unwrap_or_default();
        bail!("the agent did not apply the change: {reason}");
    }
    Ok(())
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}
