//! `porin agent`: the node agent (datapath, proxy, filters), and
//! `porin agent uninstall`, which removes what it left in the kernel.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::Agent;
use crate::datapath::{self, Datapath, EventReader, Settings};
use crate::filter::{FilterRegistry, RuntimeConfig};
use crate::flow::{self, Flow};
use crate::proxy::{Limits, Listener, PolicyResolver, Proxy, Transport};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Manifest files or directories: namespaces, pods (with status.podIP),
    /// and policies. Re-read on SIGHUP.
    #[arg(short = 'f', long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
    /// Where the datapath's maps and links are pinned.
    #[arg(long, value_name = "DIR", default_value = datapath::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// The transparent proxy's port (TCP and UDP) that L7 redirects go to.
    #[arg(long, default_value_t = 15001)]
    pub proxy_port: u16,
    /// Print every flow (datapath and proxy) as a JSON line on standard output.
    #[arg(long)]
    pub log_flows: bool,
    #[arg(long, value_name = "N", default_value_t = Settings::default().ipcache_entries)]
    pub ipcache_entries: u32,
    #[arg(long, value_name = "N", default_value_t = Settings::default().endpoint_entries)]
    pub endpoints_entries: u32,
    #[arg(long, value_name = "N", default_value_t = Settings::default().policy_entries)]
    pub policy_entries: u32,
    #[arg(long, value_name = "N", default_value_t = Settings::default().ct_entries)]
    pub ct_entries: u32,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Detach the datapath and remove its pinned maps, links and routing.
    Uninstall {
        #[arg(long, value_name = "DIR", default_value = datapath::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
}

fn transparent_listener(
    name: &str,
    port: u16,
    transport: Transport,
    resolver: &Arc<PolicyResolver>,
) -> Listener {
    Listener {
        name: name.to_string(),
        listen: SocketAddr::from(([0, 0, 0, 0], port)),
        transport,
        transparent: true,
        resolver: resolver.clone(),
    }
}

pub(super) fn run(args: AgentArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if let Some(AgentCommand::Uninstall { pin_dir }) = &args.command {
        datapath::uninstall(pin_dir)?;
        writeln!(err, "porin agent: removed the datapath pinned under {}", pin_dir.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.manifests.is_empty() {
        bail!("porin agent needs at least one manifest source: -f FILE_OR_DIR");
    }
    let settings = Settings {
        pin_dir: args.pin_dir.clone(),
        ipcache_entries: args.ipcache_entries,
        endpoint_entries: args.endpoints_entries,
        policy_entries: args.policy_entries,
        ct_entries: args.ct_entries,
    };

    let registry = Arc::new(FilterRegistry::with_builtins(RuntimeConfig::default())?);
    let empty = crate::policy::compile(&Default::default(), &Default::default());
    let resolver = Arc::new(PolicyResolver::new(Arc::new(empty)));
    let listeners = vec![
        transparent_listener("transparent-tcp", args.proxy_port, Transport::Tcp, &resolver),
        transparent_listener("transparent-udp", args.proxy_port, Transport::Udp, &resolver),
    ];
    let flows = flow::channel(65_536);
    let mut proxy_flows = flows.subscribe();
    let proxy = Proxy::start(listeners, registry.clone(), Limits::default(), flows)?;

    let mut datapath = Datapath::load(settings.clone())?;
    let events = datapath.take_events()?;
    datapath::install_redirect_routing()?;
    let mut agent =
        Agent::new(args.manifests.clone(), registry, resolver, datapath, args.proxy_port, &settings)?;
    let report = |agent: &mut Agent, err: &mut dyn Write| -> anyhow::Result<()> {
        let applied = agent.apply()?;
        for diagnostic in &applied.diagnostics {
            writeln!(err, "porin agent: {diagnostic}")?;
        }
        let maps = applied.maps;
        writeln!(
            err,
            "porin agent: policy revision {}: {} local endpoints, {} policy entries, {} ipcache entries \
             ({} written, {} removed)",
            maps.revision,
            applied.local_endpoints,
            maps.policy_entries,
            maps.ipcache_entries,
            maps.changed,
            maps.removed
        )?;
        Ok(())
    };
    report(&mut agent, err)?;
    writeln!(err, "porin agent: datapath ready; proxy on port {} (TCP, UDP)", args.proxy_port)?;

    let node_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "porin".into(), |h| h.trim().to_string());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut events = EventReader::new(events)?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let print = |flow: &Flow, out: &mut dyn Write| -> std::io::Result<()> {
            writeln!(out, "{}", serde_json::to_string(flow).expect("flows serialize"))?;
            out.flush()
        };
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    if let Err(e) = report(&mut agent, err) {
                        writeln!(err, "porin agent: update failed, the policy in force stays: {e:#}")?;
                    }
                }
                batch = events.next_batch() => {
                    let policy = agent.policy();
                    for event in batch? {
                        if args.log_flows {
                            print(&datapath::flow_of(&event, &policy, &node_name), out)?;
                        }
                    }
                }
                flow = proxy_flows.recv(), if args.log_flows => match flow {
                    Ok(flow) => print(&flow, out)?,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(lost)) => {
                        writeln!(err, "porin agent: {lost} proxy flows lost (output too slow)")?
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        anyhow::Ok(())
    })?;
    // The datapath stays attached and enforcing; a restarted agent takes it over.
    writeln!(err, "porin agent: stopping; the datapath keeps enforcing (porin agent uninstall removes it)")?;
    proxy.shutdown();
    Ok(ExitCode::SUCCESS)
}
