//! One proxied TCP connection.
//!
//! Four tasks: a reader per side feeds bytes through the filter chain; a
//! writer per side sends what the filter lets through. Bounded channels
//! between them give backpressure: a slow receiver stops the reader that
//! feeds it. Half-closes are forwarded once a direction is done.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::chain::{Outputs, StreamChain};
use super::worker::{FlowReporter, WorkerContext};
use super::{Listener, Transport, socket};
use crate::flow::Verdict;

const READ_SIZE: usize = 64 << 10;
/// Chunks queued towards one socket before its readers wait.
const QUEUE: usize = 8;

enum Write {
    Data(Vec<u8>),
    Shutdown,
}

async fn writer(mut half: OwnedWriteHalf, mut queue: mpsc::Receiver<Write>) {
    while let Some(item) = queue.recv().await {
        let result = match item {
            Write::Data(data) => half.write_all(&data).await,
            Write::Shutdown => half.shutdown().await,
        };
        if result.is_err() {
            return;
        }
    }
}

/// Serves one accepted connection.
pub(super) async fn serve(client: TcpStream, listener: Rc<Listener>, ctx: Rc<WorkerContext>) {
    let (Ok(peer), Ok(local)) = (client.peer_addr(), client.local_addr()) else { return };
    // A route without a filter stage is refused: nothing would enforce the policy.
    let route = listener.resolver.resolve(peer, local, Transport::Tcp).filter(|r| !r.stages.is_empty());
    let Some(route) = route else {
        FlowReporter::unrouted(&ctx, peer, local, true);
        return;
    };
    let Some(chain) = StreamChain::open(&ctx, &route) else { return };
    let limits = &ctx.shared.limits;
    match timeout(limits.connect_timeout, socket::connect(route.upstream, route.mark)).await {
        Ok(Ok(upstream)) => {
            chain.connection(Verdict::Forwarded, None);
            relay(client, upstream, chain, limits.idle_timeout, limits.header_timeout).await;
        }
        Ok(Err(err)) => {
            let reason = format!("upstream {} unreachable: {err}", route.upstream);
            upstream_failed(client, chain, reason, limits.header_timeout).await;
        }
        Err(_) => {
            let reason =
                format!("upstream {} did not answer within {:?}", route.upstream, limits.connect_timeout);
            upstream_failed(client, chain, reason, limits.header_timeout).await;
        }
    }
}

/// The upstream is unreachable: let the filters see what the client sends
/// first and answer it (HTTP: 503), then close.
async fn upstream_failed(
    client: TcpStream,
    mut chain: StreamChain,
    reason: String,
    header_timeout: Duration,
) {
    chain.connection(Verdict::Error, Some(reason));
    let (mut read, mut write) = client.into_split();
    let mut out = Outputs::default();
    let mut buf = vec![0; READ_SIZE];
    let deadline = tokio::time::Instant::now() + header_timeout.min(Duration::from_secs(2));
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
        let failed = chain.data(false, &buf[..n], n == 0, &mut out).is_err();
        if n == 0 || failed || !out.to_upstream.is_empty() {
            break;
        }
    }
    chain.upstream_failed(&mut out);
    write.write_all(&out.to_client).await.ok();
    write.shutdown().await.ok();
}

async fn relay(client: TcpStream, upstream: TcpStream, chain: StreamChain, idle: Duration, header: Duration) {
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let (to_client, client_queue) = mpsc::channel(QUEUE);
    let (to_upstream, upstream_queue) = mpsc::channel(QUEUE);
    let client_writer = tokio::task::spawn_local(writer(client_write, client_queue));
    let upstream_writer = tokio::task::spawn_local(writer(upstream_write, upstream_queue));
    let pump = Pump {
        chain: Rc::new(RefCell::new(chain)),
        to_client,
        to_upstream,
        activity: Rc::new(Cell::new(Instant::now())),
        idle,
        header,
    };
    let result = tokio::try_join!(pump.run(client_read, false), pump.run(upstream_read, true));
    if let Err(reason) = result {
        pump.chain.borrow().connection(Verdict::Error, Some(reason));
    }
    drop(pump);
    // Writers finish what is queued (a final 400, say), then the sockets close.
    for writer in [client_writer, upstream_writer] {
        timeout(idle, writer).await.ok();
    }
}

struct Pump {
    chain: Rc<RefCell<StreamChain>>,
    to_client: mpsc::Sender<Write>,
    to_upstream: mpsc::Sender<Write>,
    /// When bytes last moved, in either direction.
    activity: Rc<Cell<Instant>>,
    idle: Duration,
    header: Duration,
}

impl Pump {
    /// Reads one side until it closes; `reply`: the upstream side.
    async fn run(&self, mut read: OwnedReadHalf, reply: bool) -> Result<(), String> {
        let mut buf = vec![0; READ_SIZE];
        // Since when the filter has been waiting for more of a request.
        let mut waiting_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let idle_at = self.activity.get() + self.idle;
            let header_at = waiting_since.map(|since| since + self.header);
            let wake = header_at.map_or(idle_at, |h| h.min(idle_at));
            let n = match tokio::time::timeout(wake.saturating_duration_since(now), read.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                Ok(Err(err)) => {
                    return Err(format!("{} read failed: {err}", if reply { "upstream" } else { "client" }));
                }
                Err(_) if header_at.is_some_and(|h| Instant::now() >= h) => {
                    return Err(format!("request incomplete after {:?} (header timeout)", self.header));
                }
                Err(_) if Instant::now() >= self.activity.get() + self.idle => {
                    return Err(format!("idle for {:?}", self.idle));
                }
                Err(_) => continue,
            };
            self.activity.set(Instant::now());
            let mut out = Outputs::default();
            let (result, buffered) = {
                let mut chain = self.chain.borrow_mut();
                (chain.data(reply, &buf[..n], n == 0, &mut out), chain.buffered(reply))
            };
            if !out.to_client.is_empty() {
                self.to_client
                    .send(Write::Data(out.to_client))
                    .await
                    .map_err(|_| "client gone".to_string())?;
            }
            if !out.to_upstream.is_empty() {
                self.to_upstream
                    .send(Write::Data(out.to_upstream))
                    .await
                    .map_err(|_| "upstream gone".to_string())?;
            }
            result.map_err(|err| err.to_string())?;
            if !reply {
                waiting_since = if buffered > 0 { waiting_since.or(Some(Instant::now())) } else { None };
            }
            if n == 0 {
                // Forward the half-close once this direction is done.
                let onward = if reply { &self.to_client } else { &self.to_upstream };
                onward.send(Write::Shutdown).await.ok();
                return Ok(());
            }
        }
    }
}
