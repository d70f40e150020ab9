//! A cgroup v2 directory of a test's own: socket programs attached there
//! translate Services for its processes only, not for the whole machine.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use porin::datapath::sock::default_cgroup_root;

#[derive(Debug)]
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    /// Creates `porin-test-NAME-PID` under the cgroup2 root.
    pub fn new(name: &str) -> TestCgroup {
        let path = default_cgroup_root().join(format!("porin-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|err| panic!("creating cgroup {}: {err}", path.display()));
        TestCgroup { path }
    }
}

impl Drop for TestCgroup {
    /// Kills what still runs in it (only the test put processes there),
    /// then removes it.
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status().ok();
        }
        // Processes that just exited leave the cgroup a moment later.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && self.path.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
