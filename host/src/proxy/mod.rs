//! The L7 proxy: accepts connections and datagrams, runs each through the
//! Wasm filters its route names, and forwards what the filters let through.
//!
//! * Gateway mode: each listener has a fixed upstream, filter and rules
//!   (`porin gateway -c FILE`).
//! * Transparent mode (for the datapath): listeners with `IP_TRANSPARENT`;
//!   the accepted socket's local address is the original destination, and a
//!   [`Resolver`] tells the filters, rule sets and identities of each flow:
//!   the source's egress filter then the destination's ingress filter, run
//!   as one chain when both apply.
//!
//! Worker threads each run a single-threaded async runtime with their own
//! filter instances (no lock on the data path); every listener socket is
//! opened once per worker with `SO_REUSEPORT`, so the kernel spreads
//! connections. Upstream sockets carry the source identity in `SO_MARK`.

mod chain;
mod config;
pub mod mark;
mod route;
mod socket;
mod tcp;
#[cfg(test)]
mod tests;
mod udp;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

pub use config::{ConfigError, GatewayConfig, ListenerConfig, PeerConfig};
pub use route::{PolicyResolver, Resolver, Route, Stage, StaticRoute};

use crate::filter::FilterRegistry;
use crate::observe::Observer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// Limits and timeouts of the proxy.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Worker threads.
    pub workers: usize,
    /// Open TCP connections, over all listeners; beyond it new ones are refused.
    pub max_connections: usize,
    pub connect_timeout: Duration,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes the filter is still waiting on (an incomplete request head)
    /// must complete within this time.
    pub header_timeout: Duration,
    /// On shutdown, open connections get this long to finish.
    pub drain_timeout: Duration,
    /// A UDP flow with no datagram for this long is forgotten.
    pub udp_flow_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            udp_flow_timeout: Duration::from_secs(30),
        }
    }
}

/// One listening address.
#[derive(Clone)]
pub struct Listener {
    pub name: String,
    pub listen: SocketAddr,
    pub transport: Transport,
    /// Listen with `IP_TRANSPARENT` (the datapath steers flows here).
    pub transparent: bool,
    pub resolver: Arc<dyn Resolver>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("name", &self.name).field("listen", &self.listen).finish()
    }
}

/// Shared by all workers.
pub(crate) struct Shared {
    pub(crate) registry: Arc<FilterRegistry>,
    pub(crate) limits: Limits,
    /// Where flows go; `None` builds none (a gateway nobody observes).
    pub(crate) observer: Option<Arc<Observer>>,
    pub(crate) node_name: Arc<str>,
    pub(crate) connections: AtomicUsize,
}

/// A running proxy.
pub struct Proxy {
    shutdown: watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The addresses actually bound (port 0 resolved), per listener.
    pub bound: Vec<SocketAddr>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("bound", &self.bound).finish()
    }
}

impl Proxy {
    /// Binds every listener on every worker and starts serving.
    pub fn start(
        listeners: Vec<Listener>,
        registry: Arc<FilterRegistry>,
        limits: Limits,
        observer: Option<Arc<Observer>>,
    ) -> std::io::Result<Proxy> {
        let node_name = crate::flow::node_name().into();
        let shared =
            Arc::new(Shared { registry, limits, observer, node_name, connections: AtomicUsize::new(0) });
        // Bind the first worker's sockets here, so errors surface now and port 0 resolves.
        let first = worker::bind_all(&listeners, None)?;
        let bound: Vec<SocketAddr> = first.iter().map(|s| s.local_addr()).collect::<std::io::Result<_>>()?;
        let resolved: Vec<Listener> =
            listeners.into_iter().zip(&bound).map(|(l, addr)| Listener { listen: *addr, ..l }).collect();
        let (shutdown, watcher) = watch::channel(false);
        let mut workers = Vec::new();
        let mut first = Some(first);
        for index in 0..shared.limits.workers.max(1) {
            let sockets = match first.take() {
                Some(sockets) => sockets,
                None => worker::bind_all(&resolved, Some(&bound))?,
            };
            let (shared, listeners, watcher) = (shared.clone(), resolved.clone(), watcher.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("porin-proxy-{index}"))
                    .spawn(move || worker::run(shared, listeners, sockets, watcher))?,
            );
        }
        Ok(Proxy { shutdown, workers, shared, bound })
    }

    /// Open TCP connections.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets open connections finish (up to the drain
    /// timeout), then stops the workers.
    pub fn shutdown(self) {
        self.shutdown.send_replace(true);
        for worker in self.workers {
            worker.join().ok();
        }
    }
}
