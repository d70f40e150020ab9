//! `porin lab`: a small cluster in network namespaces, driven like kubectl.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::observe::ObserveFilters;
use crate::agent::api::ApiAddress;
use crate::observe::forward;

use crate::lab::{self, Lab, Started, State};
use crate::manifest::Body;

#[derive(Debug, Args)]
pub struct LabArgs {
    /// The lab: names its network namespaces (NAME and NAME.*), its pin
    /// directory /sys/fs/bpf/NAME and its state directory /run/NAME (or
    /// $PORIN_LAB_DIR).
    #[arg(long = "name", global = true, value_name = "NAME", default_value = lab::DEFAULT_NAME)]
    pub lab: String,
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab: node, world, the app's pods running their programs, and the agent.
    Up {
        /// The app's manifests [default: the seed article's app and the cluster DNS, built in].
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Create or update objects (policies, namespaces, services, pods), like kubectl apply.
    Apply {
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete the objects of the files, like kubectl delete -f.
    Delete {
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// List pods or policies.
    Get {
        resource: Resource,
        #[arg(short = 'n', long, value_name = "NAMESPACE", default_value = "default")]
        namespace: String,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Run CMD in an ad-hoc pod labelled run=NAME, removed afterwards (kubectl run --rm -it).
    Run {
        #[arg(short = 'n', long, value_name = "NAMESPACE", default_value = "default")]
        namespace: String,
        name: String,
        /// More pod labels: k=v,k2=v2.
        #[arg(long, value_name = "LABELS", value_delimiter = ',', value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run CMD in a pod: NAMESPACE/POD (or POD with -n).
    Exec {
        #[arg(short = 'n', long, value_name = "NAMESPACE", default_value = "default")]
        namespace: String,
        pod: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Show the node, the agent, the world and the pods, and whether their processes run.
    Status,
    /// Restart the agent on the running datapath (kubectl rollout restart of the DaemonSet).
    RestartAgent {
        /// SIGKILL instead of SIGTERM: a crash.
        #[arg(long)]
        kill: bool,
    },
    /// Show the lab's flows, like hubble observe (`porin observe` against the lab's agent).
    Observe(Box<ObserveFilters>),
    /// Serve the agent's web UI (and API) on the host until interrupted.
    Ui {
        /// Where to listen; port 0 picks a free one.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:12000")]
        listen: SocketAddr,
    },
    /// Remove the lab: its processes, datapath, namespaces and state.
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resource {
    #[value(alias = "pod", alias = "po")]
    Pods,
    #[value(alias = "ciliumnetworkpolicy", alias = "ciliumnetworkpolicies")]
    Cnp,
    #[value(alias = "ciliumclusterwidenetworkpolicy", alias = "ciliumclusterwidenetworkpolicies")]
    Ccnp,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("invalid label `{text}`: expected key=value")),
    }
}

pub(super) fn run(args: LabArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let lab = Lab::new(&args.lab)?;
    match args.command {
        LabCommand::Up { files } => lab.up(&files, out, err)?,
        LabCommand::Apply { files } => lab.apply(&files, out, err)?,
        LabCommand::Delete { files } => {
            if !lab.delete(&files, out, err)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        LabCommand::Get { resource, namespace, all_namespaces } => {
            let namespace = (!all_namespaces).then_some(namespace.as_str());
            return get(&lab, resource, namespace, out, err);
        }
        LabCommand::Run { namespace, name, labels, command } => {
            out.flush()?;
            return lab.run(&namespace, &name, &labels.into_iter().collect(), &command, err);
        }
        LabCommand::Exec { namespace, pod, command } => {
            let (namespace, pod) = pod.split_once('/').unwrap_or((&namespace, &pod));
            out.flush()?;
            return lab.exec(namespace, pod, &command);
        }
        LabCommand::Status => return status(&lab, out),
        LabCommand::RestartAgent { kill } => lab.restart_agent(kill, out)?,
        LabCommand::Observe(filters) => {
            return super::observe::observe(&ApiAddress::Unix(lab.api_socket()), &filters, out);
        }
        LabCommand::Ui { listen } => ui(&lab, listen, out)?,
        LabCommand::Down => lab.down(out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `namespace`: `None` for every namespace.
fn get(
    lab: &Lab,
    resource: Resource,
    namespace: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let in_scope = |ns: Option<&str>| namespace.is_none() || ns == namespace;
    let mut rows = Vec::new();
    match resource {
        Resource::Pods => {
            rows.push(["NAMESPACE", "NAME", "IP", "LABELS", "PROGRAM"].map(String::from).to_vec());
            for pod in lab.state()?.pods.iter().filter(|p| in_scope(Some(&p.namespace))) {
                let program = pod.program.map_or("<none>", |p| p.name());
                let ip = pod.attachment.ip.to_string();
                rows.push(vec![
                    pod.namespace.clone(),
                    pod.name.clone(),
                    ip,
                    labels(&pod.labels),
                    program.into(),
                ]);
            }
        }
        Resource::Cnp | Resource::Ccnp => {
            lab.state()?;
            rows.push(match resource {
                Resource::Cnp => vec!["NAMESPACE".to_string(), "NAME".to_string()],
                _ => vec!["NAME".to_string()],
            });
            for object in lab.manifests().objects {
                match (&object.body, resource) {
                    (Body::CiliumNetworkPolicy(policy), Resource::Cnp) => {
                        let ns = policy.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                        if in_scope(Some(&ns)) {
                            rows.push(vec![ns, policy.metadata.name.clone()]);
                        }
                    }
                    (Body::CiliumClusterwideNetworkPolicy(policy), Resource::Ccnp) => {
                        rows.push(vec![policy.metadata.name.clone()])
                    }
                    _ => {}
                }
            }
        }
    }
    if rows.len() == 1 {
        match (resource, namespace) {
            (Resource::Ccnp, _) | (_, None) => writeln!(err, "No resources found")?,
            (_, Some(namespace)) => writeln!(err, "No resources found in {namespace} namespace.")?,
        }
    } else {
        table(&rows, out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn status(lab: &Lab, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let state: State = lab.state()?;
    let mut healthy = true;
    let mut shown = |netns: &str, processes: &[Started]| -> String {
        let parts: Vec<String> = processes
            .iter()
            .map(|p| {
                let up = lab::running(netns, p.pid);
                healthy &= up;
                format!("{} (pid {}, {})", p.program, p.pid, if up { "running" } else { "NOT RUNNING" })
            })
            .collect();
        if parts.is_empty() { "-".to_string() } else { parts.join(", ") }
    };
    writeln!(out, "lab {}: state in {}", lab.name(), lab.dir().display())?;
    let node = if lab::netns::exists(&state.node) { "present" } else { "MISSING" };
    writeln!(out, "node:  network namespace {} ({node})", state.node)?;
    let agent: Vec<Started> =
        state.agent.map(|pid| Started { program: "porin agent".into(), pid }).into_iter().collect();
    let pins = lab.pin_dir();
    writeln!(out, "agent: {}; pinned under {}", shown(&state.node, &agent), pins.display())?;
    writeln!(out, "       log {}, flows {}", lab.agent_log().display(), lab.flows().display())?;
    writeln!(
        out,
        "       API unix:{} (porin lab observe; porin lab ui for the web UI)",
        lab.api_socket().display()
    )?;
    if let Some(world) = &state.world {
        let processes = shown(&world.attachment.netns, &world.processes);
        writeln!(out, "world: {} in {}: {processes}", world.attachment.ip, world.attachment.netns)?;
    }
    let mut rows = vec![["NAMESPACE", "NAME", "IP", "NETNS", "PROCESSES"].map(String::from).to_vec()];
    for pod in &state.pods {
        let processes = shown(&pod.attachment.netns, &pod.processes);
        let ip = pod.attachment.ip.to_string();
        rows.push(vec![pod.namespace.clone(), pod.name.clone(), ip, pod.attachment.netns.clone(), processes]);
    }
    writeln!(out)?;
    table(&rows, out)?;
    Ok(if healthy && node == "present" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Forwards `listen` to the lab agent's API socket until interrupted.
fn ui(lab: &Lab, listen: SocketAddr, out: &mut dyn Write) -> anyhow::Result<()> {
    let target = ApiAddress::Unix(lab.api_socket());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (listener, bound) = forward::bind(listen).await?;
        writeln!(out, "porin UI of lab {} at http://{bound}/ (Ctrl-C stops)", lab.name())?;
        out.flush()?;
        tokio::select! {
            served = forward::forward(listener, target) => served,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

fn labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Columns padded to their widest cell, as kubectl prints them.
fn table(rows: &[Vec<String>], out: &mut dyn Write) -> std::io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(String::len).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        writeln!(out, "{}", cells.join("   ").trim_end())?;
    }
    Ok(())
}
