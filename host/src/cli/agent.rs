//! `porin agent`: the node agent (datapath, proxy, filters), and
//! `porin agent uninstall`, which removes what it left in the kernel.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::agent::api::{ApiAddress, ApiServer, ApiState, DEFAULT_API_ADDRESS};
use crate::agent::{Agent, Consumers, Watcher};
use crate::datapath::{self, Datapath, EventReader, Settings};
use crate::filter::{FilterRegistry, RuntimeConfig};
use crate::flow::{self, FlowStore};
use crate::observe::export::{self, ExportSettings, RotatingFile};
use crate::observe::{FlowFollower, Observer};
use crate::proxy::{Limits, Listener, PolicyResolver, Proxy, Transport};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Manifest files or directories: namespaces, pods (with status.podIP),
    /// and policies. Watched: changes apply as they are saved; SIGHUP
    /// forces a re-read.
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
    /// Flows the node keeps in memory for `porin observe`, the API and the UI.
    #[arg(long, value_name = "N", default_value_t = FlowStore::DEFAULT_CAPACITY)]
    pub flow_buffer: usize,
    /// Also write every flow as a JSON line to FILE, rotated by size (FILE.1, FILE.2, ...).
    #[arg(long, value_name = "FILE")]
    pub export_flows: Option<PathBuf>,
    /// Rotate the export file when it reaches this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub export_max_size: u64,
    /// Rotated export files to keep.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub export_max_backups: usize,
    /// More filter modules: NAME.wasm is the filter NAME; new and changed
    /// files are loaded before each update.
    #[arg(long, value_name = "DIR")]
    pub filters_dir: Option<PathBuf>,
    /// Where the HTTP API (/healthz, /readyz, /v1/status, /v1/flows,
    /// /metrics, the web UI at /) listens: unix:PATH or IP:PORT; repeat to
    /// listen on several.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_API_ADDRESS)]
    pub api: Vec<ApiAddress>,
    /// Which log events to print on standard error, e.g. `debug` or
    /// `porin=debug,warn`. Default: $RUST_LOG, else `info`.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
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
    init_logging(args.log_level.as_deref())?;
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
    let observer = Observer::new(args.flow_buffer);
    let export = match &args.export_flows {
        Some(path) => Some(RotatingFile::open(ExportSettings {
            path: path.clone(),
            max_bytes: args.export_max_size << 20,
            max_backups: args.export_max_backups,
        })?),
        None => None,
    };
    let mut logged_flows = args.log_flows.then(|| FlowFollower::new(&observer));
    let proxy = Proxy::start(listeners, registry.clone(), Limits::default(), Some(observer.clone()))?;

    let mut datapath = Datapath::load(settings.clone())?;
    let events = datapath.take_events()?;
    datapath::install_redirect_routing()?;
    let mut agent = Agent::new(
        args.manifests.clone(),
        Consumers { registry, resolver, observer: observer.clone() },
        datapath,
        args.proxy_port,
        &settings,
        args.filters_dir.clone(),
    )?;

    let node_name: Arc<str> = flow::node_name().into();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        // Signals first: SIGHUP's default action would end the agent.
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let state = ApiState { status: agent.status(), observer: observer.clone() };
        let _api = args
            .api
            .iter()
            .map(|address| ApiServer::start(address, state.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let _export = export.map(|file| tokio::spawn(export::run(observer.clone(), file)));
        let mut watcher = Watcher::new(agent.source_paths().to_vec());
        agent.update();
        let mut events = EventReader::new(events)?;
        let mut counters = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    watcher.mark_seen();
                    agent.update();
                }
                () = watcher.changed() => agent.update_if_changed(),
                batch = events.next_batch() => {
                    let endpoints = observer.endpoints();
                    for event in batch? {
                        observer.publish(datapath::flow_of(&event, &endpoints, &node_name));
                    }
                }
                _ = counters.tick() => agent.report_counters(),
                (lost, batch) = FlowFollower::next_of(&mut logged_flows) => {
                    if lost > 0 {
                        tracing::warn!("{lost} flows not logged (output too slow)");
                    }
                    for stored in batch {
                        writeln!(out, "{}", serde_json::to_string(&stored.flow)?)?;
                    }
                    out.flush()?;
                }
            }
        }
        anyhow::Ok(())
    })?;
    // The datapath stays attached and enforcing; a restarted agent takes it over.
    tracing::info!("stopping; the datapath keeps enforcing (porin agent uninstall removes it)");
    proxy.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Log events go to standard error, one compact line each.
fn init_logging(filter: Option<&str>) -> anyhow::Result<()> {
    let filter = filter.map(str::to_string).or_else(|| std::env::var("RUST_LOG").ok());
    let filter = filter.filter(|f| !f.is_empty()).unwrap_or_else(|| "info".to_string());
    let targets: Targets = filter.parse().with_context(|| format!("bad log filter `{filter}`"))?;
    let layer = tracing_subscriber::fmt::layer().compact().with_target(false).with_writer(std::io::stderr);
    // Fails only when a subscriber is already set (a second run in one
    // process), which then keeps logging.
    tracing_subscriber::registry().with(layer).with(targets).try_init().ok();
    Ok(())
}
