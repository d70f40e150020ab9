//! Observability: the flow pipeline and what reads it.
//!
//! Every flow, from the datapath's events or the proxy's filters, is
//! [`Observer::publish`]ed: counted in the [`Metrics`] and pushed into the
//! node's [`FlowStore`]. Readers follow the store at their own pace: the
//! agent's API (`/v1/flows`, `/metrics`, the web UI), `--log-flows`, and the
//! JSON-lines [`export`]. None of them can slow a publisher down.

pub mod api;
pub mod export;
pub mod format;
pub mod forward;
mod metrics;

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use self::metrics::{LostAt, Metrics};
use crate::flow::{EndpointIndex, Flow, FlowEndpoint, FlowReader, FlowStore};

#[derive(Debug)]
pub struct Observer {
    store: Arc<FlowStore>,
    metrics: Metrics,
    /// Who is who under the policy in force, for enriching flows.
    endpoints: ArcSwap<EndpointIndex>,
}

impl Observer {
    pub fn new(capacity: usize) -> Arc<Observer> {
        Arc::new(Observer {
            store: Arc::new(FlowStore::new(capacity)),
            metrics: Metrics::new(),
            endpoints: ArcSwap::default(),
        })
    }

    /// Enrich flows from now on with `endpoints` (after each policy apply).
    pub fn set_endpoints(&self, endpoints: EndpointIndex) {
        self.endpoints.store(Arc::new(endpoints));
    }

    /// The current endpoint index.
    pub fn endpoints(&self) -> arc_swap::Guard<Arc<EndpointIndex>> {
        self.endpoints.load()
    }

    /// The flow endpoint for an address whose identity is `identity`.
    pub fn endpoint(&self, ip: IpAddr, identity: u32) -> FlowEndpoint {
        self.endpoints.load().endpoint(ip, identity)
    }

    pub fn publish(&self, flow: Flow) {
        self.metrics.observe(&flow);
        self.store.push(flow);
    }

    pub fn store(&self) -> &Arc<FlowStore> {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A reader of the store from its `last` most recent flows (all if `None`).
    pub fn reader(&self, last: Option<usize>) -> FlowReader {
        self.store.reader(last)
    }

    /// Flows a reader skipped, counted where an operator sees them.
    pub fn reader_lost(&self, reader: &mut FlowReader) -> u64 {
        let lost = reader.take_lost();
        if lost > 0 {
            self.metrics.lost(LostAt::FlowReader, lost);
        }
        lost
    }

    /// The Prometheus text exposition, with the store's gauge current.
    pub fn render_metrics(&self) -> String {
        self.metrics.flow_store_flows.set(self.store.len() as i64);
        let (overwritten, counted) = (self.store.overwritten(), self.metrics.flow_store_overwritten.get());
        self.metrics.flow_store_overwritten.inc_by(overwritten.saturating_sub(counted));
        self.metrics.render()
    }
}

/// Follows the store: for `--log-flows`, the export, and followed API streams.
#[derive(Debug)]
pub struct FlowFollower {
    observer: Arc<Observer>,
    reader: FlowReader,
}

impl FlowFollower {
    /// From now on.
    pub fn new(observer: &Arc<Observer>) -> FlowFollower {
        FlowFollower::continuing(observer, observer.reader(Some(0)))
    }

    /// From where `reader` is.
    pub fn continuing(observer: &Arc<Observer>, reader: FlowReader) -> FlowFollower {
        FlowFollower { observer: observer.clone(), reader }
    }

    /// Waits for new flows: (flows lost before them, the flows). Cancel
    /// safe, for `select!`.
    pub async fn next(&mut self) -> (u64, Vec<Arc<crate::flow::StoredFlow>>) {
        loop {
            self.reader.wait().await;
            let flows = self.reader.read(1024);
            let lost = self.observer.reader_lost(&mut self.reader);
            if lost > 0 || !flows.is_empty() {
                return (lost, flows);
            }
        }
    }

    /// [`FlowFollower::next`] of an optional follower; never resolves without one.
    pub async fn next_of(follower: &mut Option<FlowFollower>) -> (u64, Vec<Arc<crate::flow::StoredFlow>>) {
        match follower {
            Some(follower) => follower.next().await,
            None => std::future::pending().await,
        }
    }
}
