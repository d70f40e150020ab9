//! `porin agent`: the node agent (datapath, proxy, filters), and
//! `porin agent uninstall`, which removes what it left in the kernel.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::agent::api::{ApiAddress, ApiServer, ApiState, DEFAULT_API_ADDRESS};
use crate::agent::sources::Sources;
use crate::agent::{Agent, Consumers, PolicySource, Watcher};
use crate::datapath::{self, Datapath, EventReader, Settings};
use crate::filter::{FilterRegistry, RuntimeConfig};
use crate::flow::{self, FlowStore};
use crate::k8s::{self, Cluster, ClusterSettings};
use crate::observe::export::{self, ExportSettings, RotatingFile};
use crate::observe::{FlowFollower, Observer};
use crate::policy::EnforcementMode;
use crate::proxy::{Limits, Listener, PolicyResolver, Proxy, Transport};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Manifest files or directories: namespaces, pods (with status.podIP),
    /// and policies. Watched: changes apply as they are saved; SIGHUP
    /// forces a re-read.
    #[arg(short = 'f', long = "manifests", value_name = "PATH", required_unless_present = "kubernetes")]
    pub manifests: Vec<PathBuf>,
    /// Take the objects from the Kubernetes API server instead: watch
    /// namespaces, pods, services, endpointslices, network policies
    /// (Kubernetes' and Cilium's) and porin's FilterModules.
    #[arg(long, conflicts_with = "manifests")]
    pub kubernetes: bool,
    /// The kubeconfig to reach the cluster with. Default: $KUBECONFIG,
    /// ~/.kube/config, or the in-cluster service account.
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// This node's name, in flows, events and FilterModule statuses.
    /// Default: the host name.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The agent's namespace, where FilterModules' ConfigMaps are read.
    #[arg(long, value_name = "NAMESPACE", env = "POD_NAMESPACE", default_value = "porin")]
    pub namespace: String,
    /// Cilium's policy enforcement mode: `default` (an endpoint is
    /// default-deny once a policy selects it), `always` (every endpoint is
    /// default-deny), `never` (nothing is enforced).
    #[arg(long, value_enum, value_name = "MODE", default_value_t)]
    pub policy_enforcement: EnforcementMode,
    /// With --kubernetes: re-apply everything from the watchers' stores
    /// this often, even if no change was seen.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_period: u64,
    /// Where the datapath's maps and links are pinned.
    #[arg(long, value_name = "DIR", default_value = datapath::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// The cgroup v2 directory whose processes get Services translated at
    /// the socket. Default: the cgroup2 root (/sys/fs/cgroup/unified on
    /// hybrid systems, else /sys/fs/cgroup).
    #[arg(long, value_name = "PATH")]
    pub cgroup_root: Option<PathBuf>,
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
    let cgroup_root = args.cgroup_root.clone().unwrap_or_else(datapath::sock::default_cgroup_root);
    datapath.attach_sockets(&cgroup_root)?;
    let events = datapath.take_events()?;
    datapath::install_redirect_routing()?;
    let node_name: Arc<str> = args.node_name.clone().unwrap_or_else(flow::node_name).into();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let source = if args.kubernetes {
            let client = k8s::client(args.kubeconfig.as_ref()).await?;
            let cluster =
                ClusterSettings { node_name: node_name.to_string(), namespace: args.namespace.clone() };
            PolicySource::Cluster(Box::new(Cluster::start(client, &cluster)))
        } else {
            PolicySource::Files(Sources::new(args.manifests.clone()))
        };
        let mut agent = Agent::new(
            source,
            Consumers { registry, resolver, observer: observer.clone() },
            datapath,
            args.proxy_port,
            &settings,
            args.policy_enforcement,
            args.filters_dir.clone(),
        )?;
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
        let mut changes = SourceChanges::of(agent.source());
        agent.update();
        let resync_period = std::time::Duration::from_secs(args.resync_period);
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + resync_period, resync_period);
        let mut events = EventReader::new(events)?;
        let mut counters = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    changes.mark_seen();
                    agent.reload();
                }
                () = changes.next() => {
                    changes.settle().await;
                    agent.update_if_changed();
                }
                _ = resync.tick(), if matches!(agent.source(), PolicySource::Cluster(_)) => agent.update(),
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

/// What tells the agent that its source changed.
enum SourceChanges {
    Files(Watcher),
    Cluster(Arc<Notify>),
}

impl SourceChanges {
    fn of(source: &PolicySource) -> SourceChanges {
        match source {
            PolicySource::Files(sources) => SourceChanges::Files(Watcher::new(sources.paths().to_vec())),
            PolicySource::Cluster(cluster) => SourceChanges::Cluster(cluster.changes()),
        }
    }

    /// Returns at the next change. Cancel-safe.
    async fn next(&mut self) {
        match self {
            SourceChanges::Files(watcher) => watcher.changed().await,
            SourceChanges::Cluster(changes) => changes.notified().await,
        }
    }

    /// Lets a burst of cluster events (a rollout) end before reading, so
    /// that it costs one apply rather than one per event.
    async fn settle(&self) {
        if let SourceChanges::Cluster(_) = self {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The files as they are now are seen (SIGHUP reads them anyway).
    fn mark_seen(&mut self) {
        if let SourceChanges::Files(watcher) = self {
            watcher.mark_seen();
        }
    }
}

/// Log events go to standard error, one compact line each.
fn init_logging(filter: Option<&str>) -> anyhow::Result<()> {
    let filter = filter.map(str::to_string).or_else(|| std::env::var("RUST_LOG").ok());
    let mut filter = filter.filter(|f| !f.is_empty()).unwrap_or_else(|| "info".to_string());
    // kube's HTTP layer logs every failed request as an error; the
    // watchers report the failures that matter once, with what they mean.
    if !filter.contains("kube_client") {
        filter.push_str(",kube_client::client::builder=off");
    }
    let targets: Targets = filter.parse().with_context(|| format!("bad log filter `{filter}`"))?;
    let layer = tracing_subscriber::fmt::layer().compact().with_target(false).with_writer(std::io::stderr);
    // Fails only when a subscriber is already set (a second run in one
    // process), which then keeps logging.
    tracing_subscriber::registry().with(layer).with(targets).try_init().ok();
    Ok(())
}
