//! The lab's cgroup: every pod process the lab starts, and every command
//! run in a pod, is in it from its first instruction, and the lab's agent
//! attaches its socket programs (Service translation) there. Attaching at
//! the cgroup2 root instead would translate for every process on the
//! machine, other labs included.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::process;
use crate::datapath::sock::{check_cgroup2, default_cgroup_root};

/// `/sys/fs/cgroup[/unified]/porin-lab-NAME`.
pub(super) fn path(lab: &str) -> PathBuf {
    default_cgroup_root().join(format!("porin-lab-{lab}"))
}

/// Creates the cgroup (an existing one is kept).
pub(super) fn create(path: &Path) -> anyhow::Result<()> {
    let parent = path.parent().context("a cgroup has a parent")?;
    check_cgroup2(parent)?;
    match std::fs::create_dir(path) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(err).with_context(|| format!("creating cgroup {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Stops what still runs in the cgroup (only the lab puts processes
/// there), then removes it; a missing one is fine.
pub(super) fn remove(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
    let pids: Vec<u32> = procs.lines().filter_map(|pid| pid.trim().parse().ok()).collect();
    process::stop(&pids);
    // Processes that just exited leave the cgroup a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) if Instant::now() > deadline => {
                return Err(err).with_context(|| format!("removing cgroup {}", path.display()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
