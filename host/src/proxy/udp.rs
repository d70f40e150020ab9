//! UDP: flows keyed by (client, original destination), each with a
//! datagram filter chain and its own upstream socket. Replies are sent
//! from the original destination, so the client accepts them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::chain::DatagramChain;
use super::worker::{FlowReporter, WorkerContext};
use super::{Listener, Transport, socket};
use crate::filter::DatagramVerdict;
use crate::flow::Verdict;

const DATAGRAM_SIZE: usize = 65_536;

struct UdpFlow {
    chain: RefCell<DatagramChain>,
    upstream: UdpSocket,
    /// Sends to the client from the original destination.
    reply: Rc<UdpSocket>,
    last: Cell<Instant>,
}

type Flows = Rc<RefCell<HashMap<(SocketAddr, SocketAddr), Rc<UdpFlow>>>>;

/// Serves one UDP listener socket until the task is dropped.
pub(super) async fn serve(socket: UdpSocket, listener: Rc<Listener>, ctx: Rc<WorkerContext>) {
    let socket = Rc::new(socket);
    let flows: Flows = Rc::default();
    let mut buf = vec![0; DATAGRAM_SIZE];
    loop {
        let received = if listener.transparent {
            socket.async_io(Interest::READABLE, || socket::recv_with_destination(&socket, &mut buf)).await
        } else {
            socket.recv_from(&mut buf).await.map(|(n, source)| (n, source, None))
        };
        let Ok((n, source, original)) = received else { continue };
        let destination = original.unwrap_or(listener.listen);
        let existing = flows.borrow().get(&(source, destination)).cloned();
        let flow = match existing {
            Some(flow) => flow,
            None => match open(&socket, &listener, &ctx, &flows, source, destination).await {
                Some(flow) => flow,
                None => continue,
            },
        };
        flow.last.set(Instant::now());
        let verdict = flow.chain.borrow_mut().request(&buf[..n]);
        match verdict {
            DatagramVerdict::Pass => {
                flow.upstream.send(&buf[..n]).await.ok();
            }
            DatagramVerdict::Reply(answer) => {
                flow.reply.send_to(&answer, source).await.ok();
            }
            DatagramVerdict::Drop => {}
        }
    }
}

/// Opens a flow: route, filter chain, upstream socket, reply path, and a
/// task that relays the upstream's replies until the flow goes idle.
async fn open(
    listener_socket: &Rc<UdpSocket>,
    listener: &Rc<Listener>,
    ctx: &Rc<WorkerContext>,
    flows: &Flows,
    source: SocketAddr,
    destination: SocketAddr,
) -> Option<Rc<UdpFlow>> {
    // A route without a filter stage is refused: nothing would enforce the policy.
    let route =
        listener.resolver.resolve(source, destination, Transport::Udp).filter(|r| !r.stages.is_empty());
    let Some(route) = route else {
        FlowReporter::unrouted(ctx, source, destination, false);
        return None;
    };
    let chain = DatagramChain::open(ctx, &route)?;
    let upstream = match socket::udp_upstream(route.upstream, route.mark).await {
        Ok(upstream) => upstream,
        Err(err) => {
            chain.connection(Verdict::Error, Some(format!("upstream {}: {err}", route.upstream)));
            return None;
        }
    };
    let reply = if listener.transparent {
        match socket::udp_bound(destination, true) {
            Ok(reply) => Rc::new(reply),
            Err(err) => {
                chain.connection(Verdict::Error, Some(format!("cannot answer from {destination}: {err}")));
                return None;
            }
        }
    } else {
        listener_socket.clone()
    };
    let flow =
        Rc::new(UdpFlow { chain: RefCell::new(chain), upstream, reply, last: Cell::new(Instant::now()) });
    flows.borrow_mut().insert((source, destination), flow.clone());
    let (task_flow, task_flows, idle) = (flow.clone(), flows.clone(), ctx.shared.limits.udp_flow_timeout);
    tokio::task::spawn_local(async move {
        let mut buf = vec![0; DATAGRAM_SIZE];
        loop {
            let wait = (task_flow.last.get() + idle).saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, task_flow.upstream.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    task_flow.last.set(Instant::now());
                    let passed = task_flow.chain.borrow_mut().reply(&buf[..n]);
                    if passed {
                        task_flow.reply.send_to(&buf[..n], source).await.ok();
                    }
                }
                Ok(Err(_)) => break,
                Err(_) if task_flow.last.get().elapsed() >= idle => break,
                Err(_) => {}
            }
        }
        task_flows.borrow_mut().remove(&(source, destination));
    });
    Some(flow)
}
