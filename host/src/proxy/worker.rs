//! One worker thread: a single-threaded runtime, its own filter instances,
//! its own listener sockets.

use std::borrow::Cow;
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
use crate::flow::{self, EndpointInfo, Flow, FlowEndpoint, Ip, L4, L7, ProxyInfo, Timestamp, Uuid, Verdict};
use crate::observe::Observer;

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
        let gauge = ctx.shared.observer.as_ref().map(|o| o.metrics().proxy_active_connections.clone());
        gauge.iter().for_each(|g| _ = g.inc());
        let (spec, ctx, active) = (spec.clone(), ctx.clone(), active.clone());
        tokio::task::spawn_local(async move {
            tcp::serve(stream, spec, ctx.clone()).await;
            gauge.iter().for_each(|g| _ = g.dec());
            ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
            active.set(active.get() - 1);
        });
    }
}

/// The flow endpoint of a peer: as the policy in force knows it when the
/// peer is a pod there, else as the route describes it (gateway mode).
fn endpoint(observer: &Observer, peer: &Peer) -> FlowEndpoint {
    let indexed = peer.address.map(|address| observer.endpoint(address.ip(), peer.identity));
    match indexed {
        Some(endpoint) if !endpoint.info.pod_name.is_empty() || peer.pod.is_empty() => endpoint,
        _ => FlowEndpoint {
            identity: peer.identity,
            info: Arc::new(EndpointInfo {
                namespace: peer.namespace.clone(),
                pod_name: peer.pod.clone(),
                labels: peer.labels.clone(),
                workloads: Vec::new(),
            }),
        },
    }
}

/// Turns what happens to one stage of a connection or flow into flows.
pub(super) struct FlowReporter {
    ctx: Rc<WorkerContext>,
    /// `None` when nobody observes flows.
    sides: Option<Sides>,
    direction: TrafficDirection,
    proxy: ProxyInfo,
}

/// Who and where the two sides of a flow are, looked up once per stage.
struct Sides {
    ip: Ip,
    l4: L4,
    source: FlowEndpoint,
    destination: FlowEndpoint,
}

impl FlowReporter {
    pub(super) fn new(ctx: Rc<WorkerContext>, route: &Route, stage: &Stage, tcp: bool) -> FlowReporter {
        let sides = ctx.shared.observer.as_ref().map(|observer| {
            let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
            let (ip, l4) = flow::addressing(
                tcp,
                route.source.address.unwrap_or(unknown),
                route.destination.address.unwrap_or(unknown),
            );
            Sides {
                ip,
                l4,
                source: endpoint(observer, &route.source),
                destination: endpoint(observer, &route.destination),
            }
        });
        FlowReporter {
            ctx,
            sides,
            direction: stage.direction,
            proxy: ProxyInfo { filter: stage.filter.as_str().into(), rule_set: stage.rule_set.0 },
        }
    }

    fn publish(&self, verdict: Verdict, reason: Option<Cow<'static, str>>, l7: Option<(L7, bool)>) {
        let (Some(observer), Some(sides)) = (&self.ctx.shared.observer, &self.sides) else { return };
        let (l7, is_reply) = l7.map_or((None, false), |(l7, is_reply)| (Some(l7), is_reply));
        // As in Hubble, a reply's source is the side that sent it.
        let (ip, l4, source, destination) = match is_reply {
            false => (sides.ip.clone(), sides.l4.clone(), &sides.source, &sides.destination),
            true => (
                flow::Ip::new(sides.ip.destination, sides.ip.source),
                sides.l4.reversed(),
                &sides.destination,
                &sides.source,
            ),
        };
        observer.publish(Flow {
            time: Timestamp::now(),
            uuid: Uuid::new(),
            verdict,
            drop_reason_desc: reason,
            ip,
            l4,
            source: source.clone(),
            destination: destination.clone(),
            node_name: self.ctx.shared.node_name.clone(),
            l7,
            traffic_direction: match self.direction {
                TrafficDirection::Egress => flow::TrafficDirection::Egress,
                TrafficDirection::Ingress => flow::TrafficDirection::Ingress,
            },
            is_reply,
            policy_revoked: false,
            proxy: Some(self.proxy.clone()),
        });
    }

    /// A connection-level event: established, refused by the filter, failed.
    pub(super) fn connection(&self, verdict: Verdict, reason: Option<String>) {
        self.publish(verdict, reason.map(Cow::Owned), None);
    }

    /// The filter's L7 records.
    pub(super) fn records(&self, records: Vec<Vec<u8>>) {
        if self.sides.is_none() {
            return;
        }
        for record in records {
            let Some(parsed) = flow::parse_record(&record) else { continue };
            let reason = match parsed.verdict {
                Verdict::Dropped => Some(Cow::Borrowed("POLICY_DENIED")),
                Verdict::Error => parsed.error.clone().map(Cow::Owned),
                Verdict::Forwarded | Verdict::Redirected => None,
            };
            self.publish(parsed.verdict, reason, Some((parsed.l7, parsed.is_reply)));
        }
    }

    /// A flow refused before it had a route, so without a filter or pods.
    fn event(ctx: &WorkerContext, source: SocketAddr, destination: SocketAddr, tcp: bool, reason: &str) {
        let Some(observer) = &ctx.shared.observer else { return };
        let (ip, l4) = flow::addressing(tcp, source, destination);
        observer.publish(Flow {
            time: Timestamp::now(),
            uuid: Uuid::new(),
            verdict: Verdict::Dropped,
            drop_reason_desc: Some(reason.to_string().into()),
            ip,
            l4,
            source: FlowEndpoint::default(),
            destination: FlowEndpoint::default(),
            node_name: ctx.shared.node_name.clone(),
            l7: None,
            traffic_direction: flow::TrafficDirection::Ingress,
            is_reply: false,
            policy_revoked: false,
            proxy: None,
        });
    }

    /// A flow the resolver has no route for.
    pub(super) fn unrouted(ctx: &WorkerContext, source: SocketAddr, destination: SocketAddr, tcp: bool) {
        Self::event(ctx, source, destination, tcp, "no L7 redirect for this flow");
    }

    /// A connection refused before routing (limits).
    pub(super) fn refused(ctx: &WorkerContext, source: SocketAddr, destination: SocketAddr, reason: &str) {
        Self::event(ctx, source, destination, true, reason);
    }
}
