//! Pods: created for workloads (with their programs), run ad hoc, entered,
//! and kept in the cluster DNS.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::netns::{self, Node};
use super::objects::Workload;
use super::programs::{self, Program};
use super::state::{LabPod, Started, State, write_file};
use super::{Lab, POD_FIRST, POD_LAST, dns, process, remove_netns, running};
use crate::endpoint::Workloads;

impl Lab {
    /// The address of the workload's pod, created (and its program started)
    /// unless it exists; an existing pod takes the workload's labels.
    pub(super) fn ensure_pod(
        &self,
        node: &Node,
        state: &mut State,
        workload: &Workload,
        out: &mut dyn Write,
    ) -> anyhow::Result<Ipv4Addr> {
        let (namespace, name) = (workload.namespace.as_str(), workload.name.as_str());
        if let Some(pod) = state.pods.iter_mut().find(|p| p.namespace == namespace && p.name == name) {
            pod.labels = workload.labels.clone();
            let ip = pod.attachment.ip;
            state.save(&self.state_path())?;
            return Ok(ip);
        }
        for part in [namespace, name] {
            if part.is_empty()
                || !part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
            {
                bail!(
                    "invalid name `{part}` for pod {namespace}/{name}: use lower-case letters, digits, `-` and `.`"
                );
            }
        }
        let ip = state.free_ip(POD_FIRST, POD_LAST).context("no free address left in 10.244.0.0/24")?;
        let program = workload.program();
        let mut attachment = node.add_pod(&format!("{}.{namespace}.{name}", self.name), ip)?;
        attachment.cgroup = Some(self.cgroup());
        // Recorded before anything runs in it, so `down` finds it whatever happens next.
        state.pods.push(LabPod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: workload.labels.clone(),
            program: program.as_ref().map(|(program, _)| *program),
            attachment: attachment.clone(),
            processes: Vec::new(),
        });
        state.save(&self.state_path())?;
        let shown = program.as_ref().map_or("no program", |(program, _)| program.name());
        writeln!(out, "pod {namespace}/{name} {ip} ({shown})")?;
        if let Some((program, env)) = program {
            let started = self.start_program(state, workload, &attachment, program, &env)?;
            state.pods.last_mut().expect("pushed above").processes.push(started);
            state.save(&self.state_path())?;
        }
        Ok(ip)
    }

    fn start_program(
        &self,
        state: &State,
        workload: &Workload,
        pod: &netns::Pod,
        program: Program,
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<Started> {
        let owner = format!("{}.{}", workload.namespace, workload.name);
        let (dir, log) = (self.dir.join("pods").join(&owner), self.log(&owner, program.name()));
        match program {
            Program::Nginx => programs::nginx(pod, &dir, &log),
            Program::Postgres => {
                let password = env.get("POSTGRES_PASSWORD").with_context(|| {
                    let pod = format!("{}/{}", workload.namespace, workload.name);
                    format!("pod {pod}: POSTGRES_PASSWORD is not set (the postgres image refuses to start without it)")
                })?;
                programs::postgres(pod, &dir, password, &log)
            }
            Program::ClusterDns => {
                let world = state.world.as_ref().map(|world| world.attachment.ip);
                programs::dnsmasq(pod, &self.cluster_hosts(), dns::CLUSTER_DOMAIN, world, &log)
            }
            Program::Redis => programs::redis(pod, &dir, &log),
            Program::Kafka => programs::tansu(pod, &log),
            Program::GrpcEcho => programs::grpc_echo(pod, &dir, &log),
        }
    }

    /// Rewrites the cluster DNS's records and every pod's resolv.conf from
    /// the stored Services and the pods, and makes dnsmasq reload them.
    pub(super) fn refresh_dns(&self, state: &State) -> anyhow::Result<()> {
        let (workloads, _) = Workloads::from_manifests(&self.manifests());
        write_file(&self.cluster_hosts(), &dns::service_hosts(&workloads.services, &state.pods))?;
        if let Some(nameserver) = state.cluster_dns() {
            for pod in &state.pods {
                pod.attachment.set_resolv_conf(&dns::resolv_conf(&pod.namespace, nameserver))?;
            }
        }
        for pod in state.pods.iter().filter(|p| p.program == Some(Program::ClusterDns)) {
            for started in pod.processes.iter().filter(|p| running(&pod.attachment.netns, p.pid)) {
                process::signal(started.pid, "HUP")?;
            }
        }
        Ok(())
    }

    /// `kubectl run --rm -it`: an ad-hoc pod labelled `run=NAME` (and
    /// `labels`) that runs `command` with this terminal and is removed
    /// afterwards. Progress goes to `err`, keeping stdout the command's.
    pub fn run(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        command: &[String],
        err: &mut dyn Write,
    ) -> anyhow::Result<ExitCode> {
        let (program, args) = command.split_first().context("no command to run")?;
        let workload = Workload::ad_hoc(namespace, name, labels);
        let pod = {
            let _lock = self.lock()?;
            let mut state = self.state()?;
            if state.pod(namespace, name).is_some() {
                bail!("pod {namespace}/{name} already exists");
            }
            match self.create_ad_hoc(&mut state, &workload, err) {
                Ok(pod) => pod,
                Err(error) => {
                    if let Err(cleanup) = self.remove_ad_hoc(&mut state, &workload) {
                        writeln!(err, "warning: removing pod {namespace}/{name}: {cleanup:#}")?;
                    }
                    return Err(error);
                }
            }
        };
        ignore_interrupts()?;
        let code = process::run_attached(pod.command(program).args(args));
        let _lock = self.lock()?;
        self.remove_ad_hoc(&mut self.state()?, &workload)?;
        writeln!(err, "pod \"{name}\" deleted")?;
        code
    }

    fn create_ad_hoc(
        &self,
        state: &mut State,
        workload: &Workload,
        err: &mut dyn Write,
    ) -> anyhow::Result<netns::Pod> {
        let ip = self.ensure_pod(&Node::open(&state.node), state, workload, err)?;
        self.store().write(&workload.file_name(), &workload.manifest(ip)?)?;
        self.refresh_dns(state)?;
        self.reload(state)?;
        let pod = state.pod(&workload.namespace, &workload.name).expect("created above");
        Ok(pod.attachment.clone())
    }

    /// Removes an ad-hoc pod; its namespace goes even when the agent fails.
    fn remove_ad_hoc(&self, state: &mut State, workload: &Workload) -> anyhow::Result<()> {
        let reloaded = match self.store().remove(&workload.file_name())? {
            true => self.reload(state),
            false => Ok(()),
        };
        if let Some(pod) = state.take_pod(&workload.namespace, &workload.name) {
            remove_netns(&pod.attachment.netns);
        }
        state.save(&self.state_path())?;
        self.refresh_dns(state)?;
        reloaded
    }

    /// Runs `command` in pod `namespace/name` with this terminal.
    pub fn exec(&self, namespace: &str, name: &str, command: &[String]) -> anyhow::Result<ExitCode> {
        let (program, args) = command.split_first().context("no command to run")?;
        let state = self.state()?;
        let pod = state.pod(namespace, name).with_context(|| {
            format!("pod {namespace}/{name} not found (porin lab get pods -A lists the pods)")
        })?;
        process::run_attached(pod.attachment.command(program).args(args))
    }
}

/// Keeps Ctrl-C from ending porin while a command runs in a pod: the
/// command gets it from the terminal, and porin then removes the pod.
fn ignore_interrupts() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let _entered = runtime.enter();
    // Once registered, tokio's handler stays for the life of the process.
    let _interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(())
}
