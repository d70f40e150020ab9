//! Bringing a lab up and taking it down.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::apply::{read_sources, validated};
use super::netns::{self, Node};
use super::objects::Document;
use super::state::{Lock, State, World, create_dir, write_file};
use super::{DEFAULT_APP, Lab, WORLD_IP, agent, cgroup, dns, process, programs, remove_netns};

impl Lab {
    /// Builds the lab from `files` (the default app when empty) and starts
    /// the agent, reporting progress to `out`.
    pub fn up(&self, files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
        let sources = match files.is_empty() {
            true => DEFAULT_APP.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect(),
            false => read_sources(files)?,
        };
        let documents = validated(&sources, err)?;
        // /proc/self belongs to the effective user.
        if std::fs::metadata("/proc/self").is_ok_and(|proc| proc.uid() != 0) {
            bail!("porin lab needs root: it creates network namespaces and loads the datapath");
        }
        if self.state_path().exists() || netns::exists(&self.name) {
            bail!(
                "lab {} is already up (state in {}); porin lab down removes it",
                self.name,
                self.dir.display()
            );
        }
        for dir in ["manifests", "dns", "logs", "filters"] {
            create_dir(&self.dir.join(dir))?;
        }
        let _lock = Lock::acquire(&self.dir)?;
        if let Err(error) = self.build(&documents, out) {
            writeln!(out, "setting up failed; removing what was set up")?;
            self.remove(out)?;
            return Err(error);
        }
        Ok(())
    }

    fn build(&self, documents: &[Document], out: &mut dyn Write) -> anyhow::Result<()> {
        writeln!(out, "creating node namespace {} (state in {})", self.name, self.dir.display())?;
        let node = Node::create(&self.name)?;
        let mut state = State {
            node: self.name.clone(),
            agent: None,
            world: None,
            pods: Vec::new(),
            cluster_ips: Default::default(),
        };
        state.save(&self.state_path())?;
        cgroup::create(&self.cgroup())?;
        self.add_world(&node, &mut state, out)?;
        self.refresh_dns(&state)?;
        self.store_documents(&node, &mut state, documents, out)?;
        self.refresh_dns(&state)?;

        writeln!(out, "starting the porin agent in {}", self.name)?;
        self.start_agent(&node, &mut state, out)?;
        writeln!(out, "lab {} is up; flows go to {}", self.name, self.flows().display())?;
        Ok(())
    }

    /// Starts the agent, records it in the state, and waits until it enforces.
    fn start_agent(&self, node: &Node, state: &mut State, out: &mut dyn Write) -> anyhow::Result<()> {
        let (manifests, pin_dir, api) = (self.store().dir, self.pin_dir(), self.api_socket());
        let (log, flows, filters) = (self.agent_log(), self.flows(), self.dir.join("filters"));
        let cgroup = self.cgroup();
        let paths = agent::AgentPaths {
            manifests: &manifests,
            pin_dir: &pin_dir,
            cgroup: &cgroup,
            api: &api,
            log: &log,
            flows: &flows,
            filters: &filters,
        };
        let pid = agent::start(node, paths)?;
        state.agent = Some(pid);
        state.save(&self.state_path())?;
        writeln!(out, "agent: pid {pid}, pinned under {}; log {}", pin_dir.display(), log.display())?;
        Ok(())
    }

    /// Stops the agent (SIGTERM, or SIGKILL with `kill`: a crash) and starts
    /// a new one on the same pinned datapath, as a DaemonSet rollout would.
    /// The datapath enforces throughout.
    pub fn restart_agent(&self, kill: bool, out: &mut dyn Write) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        if let Some(pid) = state.agent.filter(|pid| super::running(&state.node, *pid)) {
            process::signal(pid, if kill { "KILL" } else { "TERM" })?;
            process::stop(&[pid]);
            writeln!(out, "agent pid {pid} {}", if kill { "killed" } else { "stopped" })?;
        }
        self.start_agent(&Node::open(&state.node), &mut state, out)
    }

    fn add_world(&self, node: &Node, state: &mut State, out: &mut dyn Write) -> anyhow::Result<()> {
        let attachment = node.add_pod(&format!("{}.world", self.name), WORLD_IP)?;
        state.world = Some(World { attachment: attachment.clone(), processes: Vec::new() });
        state.save(&self.state_path())?;
        let hosts = self.dir.join("dns/world.hosts");
        write_file(&hosts, &dns::world_hosts(WORLD_IP))?;
        let dir = self.dir.join("world");
        let dnsmasq = programs::dnsmasq(&attachment, &hosts, "#", None, &self.log("world", "dnsmasq"));
        let nginx = || programs::nginx(&attachment, &dir, &self.log("world", "nginx"));
        for started in [dnsmasq, nginx()] {
            let started = started?;
            state.world.as_mut().expect("set above").processes.push(started);
            state.save(&self.state_path())?;
        }
        writeln!(out, "world {WORLD_IP}: dnsmasq answering {}; nginx on :80", dns::WORLD_NAMES.join(", "))?;
        Ok(())
    }

    /// Removes the lab: stops its processes, removes the datapath, deletes
    /// its namespaces and state. Works from the names alone when the state
    /// is lost, and when there is nothing to remove.
    pub fn down(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let _lock = match self.dir.exists() {
            true => Some(Lock::acquire(&self.dir)?),
            false => None,
        };
        self.remove(out)
    }

    fn remove(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let mut namespaces: Vec<String> = netns::list().into_iter().filter(|n| self.owns(n)).collect();
        // Pods and world first: the node holds their veths' other ends.
        namespaces.sort_by_key(|n| n == &self.name);
        let (node_exists, pin_dir) = (netns::exists(&self.name), self.pin_dir());
        if node_exists {
            // The agent first, so it does not react to the pods going away.
            process::stop(&netns::pids(&self.name));
        }
        if pin_dir.exists() {
            if node_exists {
                let porin = std::env::current_exe().context("finding the porin binary")?;
                let mut uninstall = Node::open(&self.name).command(porin);
                uninstall.args(["agent", "uninstall", "--pin-dir"]).arg(&pin_dir);
                if let Err(error) = crate::command::output(&mut uninstall) {
                    writeln!(out, "warning: {error:#}")?;
                }
            }
            // Pins of a node namespace that is gone attach to nothing.
            if pin_dir.exists() {
                std::fs::remove_dir_all(&pin_dir)
                    .with_context(|| format!("removing {}", pin_dir.display()))?;
            }
            writeln!(out, "removed the datapath pinned under {}", pin_dir.display())?;
        }
        for netns in &namespaces {
            remove_netns(netns);
            writeln!(out, "deleted network namespace {netns}")?;
        }
        let cgroup = self.cgroup();
        if cgroup.exists() {
            match cgroup::remove(&cgroup) {
                Ok(()) => writeln!(out, "removed cgroup {}", cgroup.display())?,
                Err(error) => writeln!(out, "warning: {error:#}")?,
            }
        }
        // resolv.conf files of namespaces that are gone already.
        for entry in std::fs::read_dir("/etc/netns").into_iter().flatten().flatten() {
            if entry.file_name().to_str().is_some_and(|name| self.owns(name)) {
                std::fs::remove_dir_all(entry.path()).ok();
            }
        }
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))?;
            writeln!(out, "removed {}", self.dir.display())?;
        }
        writeln!(out, "lab {} is down", self.name)?;
        Ok(())
    }
}
