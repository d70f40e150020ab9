//! `porin gateway -c FILE`: the proxy in gateway mode, in front of services.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use porin_sdk::{Peer, RuleSetId, TrafficDirection};
use tokio::signal::unix::{SignalKind, signal};

use crate::filter::{FilterRegistry, RuntimeConfig};
use crate::flow::FlowStore;
use crate::observe::{FlowFollower, Observer};
use crate::proxy::{GatewayConfig, Listener, PeerConfig, Proxy, Route, Stage, StaticRoute};

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The gateway configuration (YAML): listeners, upstreams, filters, rules.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Print every flow as a JSON line on standard output.
    #[arg(long)]
    pub log_flows: bool,
}

fn read_config(path: &PathBuf) -> anyhow::Result<GatewayConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    GatewayConfig::parse(&text).with_context(|| format!("{}", path.display()))
}

/// Installs each listener's rules as rule set `index + 1`; the filter checks
/// them, and on error nothing changes.
fn install_rules(registry: &FilterRegistry, config: &GatewayConfig) -> anyhow::Result<()> {
    for (index, listener) in config.listeners.iter().enumerate() {
        registry
            .set_rule_set(RuleSetId(index as u32 + 1), &listener.filter, &listener.rules_json())
            .with_context(|| format!("listener {}", listener.display_name(index)))?;
    }
    Ok(())
}

fn peer(config: &PeerConfig) -> Peer {
    Peer {
        identity: config.identity,
        address: None,
        namespace: config.namespace.clone(),
        pod: config.pod.clone(),
        labels: config.labels.clone(),
    }
}

pub(super) fn run(args: GatewayArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let config = read_config(&args.config)?;
    let limits = config.limits()?;
    let registry = Arc::new(FilterRegistry::with_builtins(RuntimeConfig::default())?);
    if let Some(dir) = &config.filters_dir {
        for loaded in registry.load_dir(dir) {
            loaded?;
        }
    }
    install_rules(&registry, &config)?;
    let mut listeners = Vec::new();
    for (index, listener) in config.listeners.iter().enumerate() {
        if registry.module(&listener.filter).is_none() {
            bail!(
                "listener {}: no filter named `{}` is loaded",
                listener.display_name(index),
                listener.filter
            );
        }
        let route = Route {
            upstream: listener.upstream_addr(index)?,
            stages: vec![Stage {
                filter: listener.filter.clone(),
                rule_set: RuleSetId(index as u32 + 1),
                direction: TrafficDirection::Ingress,
            }],
            source: peer(&listener.source),
            destination: peer(&listener.destination),
            mark: None,
        };
        listeners.push(Listener {
            name: listener.display_name(index),
            listen: listener.listen_addr(index)?,
            transport: listener.protocol,
            transparent: false,
            resolver: Arc::new(StaticRoute { route }),
        });
    }
    // Flows are built only to be printed.
    let observer = args.log_flows.then(|| Observer::new(FlowStore::DEFAULT_CAPACITY));
    let mut flows = observer.as_ref().map(FlowFollower::new);
    let proxy = Proxy::start(listeners.clone(), registry.clone(), limits, observer)?;
    for (listener, bound) in listeners.iter().zip(&proxy.bound) {
        writeln!(err, "porin gateway: {} listening on {bound} ({:?})", listener.name, listener.transport)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    // Reload rules: open connections use them from their next request.
                    match read_config(&args.config).and_then(|c| install_rules(&registry, &c)) {
                        Ok(()) => writeln!(err, "porin gateway: rules reloaded")?,
                        Err(e) => writeln!(err, "porin gateway: reload failed, previous rules stay: {e:#}")?,
                    }
                }
                (lost, batch) = FlowFollower::next_of(&mut flows) => {
                    if lost > 0 {
                        writeln!(err, "porin gateway: {lost} flows lost (output too slow)")?;
                    }
                    for stored in batch {
                        writeln!(out, "{}", serde_json::to_string(&stored.flow)?)?;
                    }
                }
            }
            out.flush()?;
        }
        anyhow::Ok(())
    })?;
    writeln!(err, "porin gateway: draining")?;
    proxy.shutdown();
    Ok(ExitCode::SUCCESS)
}
