//! One worker thread: a single-threaded runtime, its own filter instances,
//! its own listener sockets.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use porin_sdk::{Peer, TrafficDirection};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::LocalSet;

use super::{Listener, Route, Shared, Stage, Transport, socket, tcp, udp};
use crate::filter::WorkerFilters;
use crate::flow::{self, Flow, FlowEndpoint, ProxyInfo, Verdict};

/// What a worker's tasks share.
pub(super) struct WorkerContext {
    pub(super) shared: Arc<Shared>,
    pub(super) filters: RefCell<WorkerFilters>,
}

pub(super) enum BoundSocket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl BoundSocket {
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            BoundSocket::Tcp(socket) => socket.local_addr(),
            BoundSocket::Udp(socket) => socket.local_addr(),
        }
    }
}

/// Opens every listener's socket for one worker (at `bound` when the first
/// worker already resolved the ports).
pub(super) fn bind_all(listeners: &[Listener], bound: Option<&[SocketAddr]>) -> io::Result<Vec<BoundSocket>> {
    listeners
        .iter()
        .enumerate()
        .map(|(i, listener)| {
            let addr = bound.map_or(listener.listen, |b| b[i]);
            let with_context = |err: io::Error| {
                io::Error::new(err.kind(), format!("listener `{}` on {addr}: {err}", listener.name))
            };
            match listener.transport {
                Transport::Tcp => socket::tcp_listener(addr, listener.transparent).map(BoundSocket::Tcp),
                Transport::Udp => socket::udp_listener(addr, listener.transparent).map(BoundSocket::Udp),
            }
            .map_err(with_context)
        })
        .collect()
}

/// Runs a worker until shutdown, then drains.
pub(super) fn run(
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
    sockets: Vec<BoundSocket>,
    shutdown: watch::Receiver<bool>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("worker runtime");
    let local = LocalSet::new();
    let ctx = Rc::new(WorkerContext {
        filters: RefCell::new(WorkerFilters::new(shared.registry.clone())),
        shared: shared.clone(),
    });
    let active = Rc::new(Cell::new(0usize));
    local.block_on(&runtime, async move {
        let mut servers = Vec::new();
        for (listener, socket) in listeners.into_iter().zip(sockets) {
            let (listener, ctx, active) = (Rc::new(listener), ctx.clone(), active.clone());
            servers.push(match socket {
                BoundSocket::Tcp(socket) => {
                    let socket = TcpListener::from_std(socket).expect("listener registers with the runtime");
                    tokio::task::spawn_local(accept(socket, listener, ctx, active))
                }
                BoundSocket::Udp(socket) => {
                    let socket = UdpSocket::from_std(socket).expect("socket registers with the runtime");
                    tokio::task::spawn_local(udp::serve(socket, listener, ctx))
                }
            });
        }
        let mut shutdown = shutdown;
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        for server in &servers {
            server.abort();
        }
        let deadline = tokio::time::Instant::now() + shared.limits.drain_timeout;
        while active.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

async fn accept(listener: TcpListener, spec: Rc<Listener>, ctx: Rc<WorkerContext>, active: Rc<Cell<usize>>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connections = &ctx.shared.connections;
        if connections.fetch_add(1, Ordering::AcqRel) >= ctx.shared.limits.max_connections {
            connections.fetch_sub(1, Ordering::AcqRel);
            let local = stream.local_addr().unwrap_or(spec.listen);
            FlowReporter::refused(&ctx, peer, local, "connection limit reached");
            continue;
        }
        active.set(active.get() + 1);
        let (spec, ctx, active) = (spec.clone(), ctx.clone(), active.clone());
        tokio::task::spawn_local(async move {
            tcp::serve(stream, spec, ctx.clone()).await;
            ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
            active.set(active.get() - 1);
        });
    }
}

fn endpoint(peer: &Peer) -> FlowEndpoint {
    FlowEndpoint {
        identity: peer.identity,
        namespace: peer.namespace.clone(),
        pod_name: peer.pod.clone(),
        labels: peer.labels.clone(),
    }
}

/// Turns what happens to one stage of a connection or flow into flows.
pub(super) struct FlowReporter {
    ctx: Rc<WorkerContext>,
    tcp: bool,
    source: Peer,
    destination: Peer,
    direction: TrafficDirection,
    proxy: ProxyInfo,
}

impl FlowReporter {
    pub(super) fn new(ctx: Rc<WorkerContext>, route: &Route, stage: &Stage, tcp: bool) -> FlowReporter {
        FlowReporter {
            ctx,
            tcp,
            source: route.source.clone(),
            destination: route.destination.clone(),
            direction: stage.direction,
            proxy: ProxyInfo { filter: stage.filter.clone(), rule_set: stage.rule_set.0 },
        }
    }

    fn publish(ctx: &WorkerContext, flow: Flow) {
        // Losing the race with the last subscriber leaving is fine.
        ctx.shared.flows.send(Arc::new(flow)).ok();
    }

    /// Whether anyone reads flows: building them costs as much as a
    /// filter call, so nobody watching means nothing is built.
    fn watched(ctx: &WorkerContext) -> bool {
        ctx.shared.flows.receiver_count() > 0
    }

    fn base(&self, verdict: Verdict, reason: Option<String>, is_reply: bool) -> Flow {
        let (source, destination) = (
            self.source.address.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            self.destination.address.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
        );
        let (ip, l4) = flow::addressing(self.tcp, source, destination);
        Flow {
            time: flow::rfc3339_now(),
            uuid: flow::new_uuid(),
            verdict,
            drop_reason_desc: reason,
            ip,
            l4,
            source: endpoint(&self.source),
            destination: endpoint(&self.destination),
            kind: "L7",
            node_name: self.ctx.shared.node_name.clone(),
            l7: None,
            traffic_direction: match self.direction {
                TrafficDirection::Egress => flow::TrafficDirection::Egress,
                TrafficDirection::Ingress => flow::TrafficDirection::Ingress,
            },
            is_reply,
            proxy: Some(self.proxy.clone()),
            summary: String::new(),
        }
    }

    /// A connection-level event: established, refused by the filter, failed.
    pub(super) fn connection(&self, verdict: Verdict, reason: Option<String>) {
        if !Self::watched(&self.ctx) {
            return;
        }
        let transport = if self.tcp { "TCP" } else { "UDP" };
        let summary = match &reason {
            Some(reason) => format!("{transport} via filter {}: {reason}", self.proxy.filter),
            None => format!("{transport} connection via filter {}", self.proxy.filter),
        };
        let mut flow = self.base(verdict, reason, false);
        flow.kind = "L3_L4";
        flow.summary = summary;
        Self::publish(&self.ctx, flow);
    }

    /// The filter's L7 records.
    pub(super) fn records(&self, records: Vec<Vec<u8>>) {
        if !Self::watched(&self.ctx) {
            return;
        }
        for record in records {
            let Some(parsed) = flow::parse_record(&record) else { continue };
            let reason = match parsed.verdict {
                Verdict::Dropped => Some("POLICY_DENIED".to_string()),
                Verdict::Error => parsed.error.clone(),
                Verdict::Forwarded | Verdict::Redirected => None,
            };
            let is_reply = parsed.l7.get("type").and_then(|t| t.as_str()) == Some("RESPONSE");
            let mut flow = self.base(parsed.verdict, reason, is_reply);
            flow.summary = flow::summarize(&parsed.l7);
            flow.l7 = Some(parsed.l7);
            Self::publish(&self.ctx, flow);
        }
    }

    fn event(
        ctx: &WorkerContext,
        source: SocketAddr,
        destination: SocketAddr,
        tcp: bool,
        verdict: Verdict,
        reason: &str,
    ) {
        if !Self::watched(ctx) {
            return;
        }
        let (ip, l4) = flow::addressing(tcp, source, destination);
        let flow = Flow {
            time: flow::rfc3339_now(),
            uuid: flow::new_uuid(),
            verdict,
            drop_reason_desc: Some(reason.to_string()),
            ip,
            l4,
            source: FlowEndpoint::default(),
            destination: FlowEndpoint::default(),
            kind: "L3_L4",
            node_name: ctx.shared.node_name.clone(),
            l7: None,
            traffic_direction: flow::TrafficDirection::Ingress,
            is_reply: false,
            proxy: None,
            summary: format!("{} {reason}", if tcp { "TCP" } else { "UDP" }),
        };
        Self::publish(ctx, flow);
    }

    /// A flow the resolver has no route for.
    pub(super) fn unrouted(ctx: &WorkerContext, source: SocketAddr, destination: SocketAddr, tcp: bool) {
        Self::event(ctx, source, destination, tcp, Verdict::Dropped, "no L7 redirect for this flow");
    }

    /// A connection refused before routing (limits).
    pub(super) fn refused(ctx: &WorkerContext, source: SocketAddr, destination: SocketAddr, reason: &str) {
        Self::event(ctx, source, destination, true, Verdict::Dropped, reason);
    }
}
