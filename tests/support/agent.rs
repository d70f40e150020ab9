//! `porin agent` running in a [`Node`]'s namespace, with its own pin
//! directory; on drop it stops and `porin agent uninstall` removes what it
//! left in the kernel (links, pinned maps, routing).

use std::path::{Path, PathBuf};

use crate::apiserver::ApiServer;
use crate::cgroup::TestCgroup;
use crate::netns::Node;
use crate::{Daemon, TempDir, porin_binary};

#[derive(Debug)]
pub struct Agent {
    // Declared first: dropped (stopped) before the datapath is uninstalled.
    pub daemon: Daemon,
    pub pin_dir: PathBuf,
    pub proxy_port: u16,
    /// The manifest directory the agent reads (write files, then
    /// [`Agent::update`]); with a cluster source, it holds the kubeconfig.
    pub manifests: TempDir,
    source: Source,
    /// The unix socket of the agent's HTTP API (`--api unix:PATH`).
    pub api: PathBuf,
    /// Where the agent exports its flows (`--export-flows`).
    pub export: PathBuf,
    _api_dir: TempDir,
    _installed: Installed,
    /// Where the agent attaches its socket programs; removed after them.
    cgroup: TestCgroup,
}

/// Runs `porin agent uninstall` when dropped, also when the agent failed
/// to start or a test panicked.
#[derive(Debug)]
struct Installed {
    pin_dir: PathBuf,
    node_netns: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let netns = format!("--net=/run/netns/{}", self.node_netns);
        std::process::Command::new("nsenter")
            .arg(netns)
            .arg("--")
            .arg(porin_binary())
            .args(["agent", "uninstall", "--pin-dir"])
            .arg(&self.pin_dir)
            .output()
            .ok();
    }
}

impl std::ops::Deref for Agent {
    type Target = Daemon;

    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

/// Where the agent takes its objects from.
#[derive(Debug, Clone)]
enum Source {
    Files(PathBuf),
    /// `--kubernetes` with this kubeconfig.
    Cluster(PathBuf),
}

impl Agent {
    /// Writes `files` (name, YAML) into a fresh manifest directory and
    /// starts the agent in `node`, waiting until the datapath is ready.
    pub fn start(node: &Node, files: &[(&str, &str)]) -> Agent {
        let manifests = TempDir::new("agent-manifests");
        for (name, yaml) in files {
            std::fs::write(manifests.path(name), yaml).unwrap();
        }
        let source = Source::Files(manifests.0.clone());
        Agent::start_with(node, manifests, source)
    }

    /// Starts the agent in `node` with `--kubernetes`, watching `server`
    /// (which must listen in the node's namespace), as node `node-a`.
    pub fn start_watching(node: &Node, server: &ApiServer) -> Agent {
        let manifests = TempDir::new("agent-kubeconfig");
        std::fs::write(manifests.path("kubeconfig"), server.kubeconfig()).unwrap();
        let source = Source::Cluster(manifests.path("kubeconfig"));
        Agent::start_with(node, manifests, source)
    }

    fn start_with(node: &Node, manifests: TempDir, source: Source) -> Agent {
        let cgroup = TestCgroup::new(node.name());
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/{}", node.name()));
        let installed = Installed { pin_dir: pin_dir.clone(), node_netns: node.name().to_string() };
        let proxy_port = 15_001;
        // Each agent its own socket: tests run agents side by side.
        let api_dir = TempDir::new("agent-api");
        let (api, export) = (api_dir.path("agent.sock"), api_dir.path("flows.jsonl"));
        let daemon = Daemon::start(
            command(node, &source, &pin_dir, &cgroup.path, proxy_port, &api, &export),
            "datapath ready",
        );
        Agent {
            daemon,
            pin_dir,
            proxy_port,
            manifests,
            source,
            api,
            export,
            _api_dir: api_dir,
            _installed: installed,
            cgroup,
        }
    }

    /// Stops the agent (the datapath stays) and starts a new one on the same state.
    pub fn restart(&mut self, node: &Node) {
        self.daemon.stop();
        let (source, cgroup) = (&self.source, &self.cgroup.path);
        let command = command(node, source, &self.pin_dir, cgroup, self.proxy_port, &self.api, &self.export);
        self.daemon = Daemon::start(command, "datapath ready");
    }

    /// Stops the agent process only; the datapath keeps enforcing.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Replaces a manifest file (or removes it with `None`) and makes the
    /// agent apply the change (SIGHUP), waiting until it did.
    pub fn update(&self, name: &str, yaml: Option<&str>) {
        match yaml {
            Some(yaml) => std::fs::write(self.manifests.path(name), yaml).unwrap(),
            None => std::fs::remove_file(self.manifests.path(name)).unwrap(),
        }
        let before = self.reloads();
        self.signal("HUP");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.reloads() <= before {
            assert!(std::time::Instant::now() < deadline, "SIGHUP not handled:\n{}", self.stderr());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The re-reads (SIGHUP) the agent has done, from its status.
    fn reloads(&self) -> u64 {
        let (_, body) = self.api_get("/v1/status");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        status["reloads"].as_u64().unwrap_or(0)
    }

    /// `GET path` on the agent's API socket: (HTTP status, body).
    pub fn api_get(&self, path: &str) -> (u16, String) {
        let socket = self.api.to_str().expect("a UTF-8 socket path");
        crate::curl(&["--unix-socket", socket, &format!("http://agent{path}")])
    }
}

fn command(
    node: &Node,
    source: &Source,
    pin_dir: &Path,
    cgroup: &Path,
    proxy_port: u16,
    api: &Path,
    export: &Path,
) -> std::process::Command {
    let binary = porin_binary();
    let mut command = node.command_keeping_mounts(binary.to_str().unwrap(), &["agent", "--log-flows"]);
    match source {
        Source::Files(manifests) => command.arg("-f").arg(manifests),
        Source::Cluster(kubeconfig) => {
            command.args(["--kubernetes", "--node-name", "node-a", "--kubeconfig"]).arg(kubeconfig)
        }
    };
    command.arg("--pin-dir").arg(pin_dir).arg("--cgroup-root").arg(cgroup);
    command.args(["--proxy-port", &proxy_port.to_string()]);
    command.arg(format!("--api=unix:{}", api.display()));
    command.arg("--export-flows").arg(export);
    command
}
