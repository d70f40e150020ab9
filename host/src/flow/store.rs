//! The flow store: a bounded ring of the most recent flows on this node.
//!
//! Writers (the datapath's event reader, every proxy worker) never wait:
//! a push takes a sequence number with one atomic add and swaps the slot's
//! pointer ([`ArcSwapOption`]); readers clone pointers and never block a
//! writer. When the ring is full the oldest flow is overwritten and counted.
//! A reader that falls more than a ring behind skips ahead and is told how
//! many flows it lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;

use super::Flow;

/// A flow with its place in the store.
#[derive(Debug)]
pub struct StoredFlow {
    pub sequence: u64,
    pub flow: Flow,
}

#[derive(Debug)]
pub struct FlowStore {
    slots: Box<[ArcSwapOption<StoredFlow>]>,
    /// The sequence number of the next flow pushed.
    head: AtomicU64,
    /// Set by a reader about to sleep; the next push wakes it.
    reader_waiting: AtomicBool,
    pushed: Notify,
}

impl FlowStore {
    pub const DEFAULT_CAPACITY: usize = 65_535;

    pub fn new(capacity: usize) -> FlowStore {
        let capacity = capacity.max(1);
        FlowStore {
            slots: (0..capacity).map(|_| ArcSwapOption::empty()).collect(),
            head: AtomicU64::new(0),
            reader_waiting: AtomicBool::new(false),
            pushed: Notify::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Flows pushed since the store began.
    pub fn pushed(&self) -> u64 {
        self.head.load(Ordering::SeqCst)
    }

    /// Flows overwritten by newer ones.
    pub fn overwritten(&self) -> u64 {
        self.pushed().saturating_sub(self.capacity() as u64)
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.pushed().min(self.capacity() as u64) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.pushed() == 0
    }

    /// Adds a flow, overwriting the oldest when full.
    pub fn push(&self, flow: Flow) {
        let sequence = self.head.fetch_add(1, Ordering::SeqCst);
        let slot = &self.slots[(sequence % self.slots.len() as u64) as usize];
        slot.store(Some(Arc::new(StoredFlow { sequence, flow })));
        if self.reader_waiting.load(Ordering::SeqCst) && self.reader_waiting.swap(false, Ordering::SeqCst) {
            self.pushed.notify_waiters();
        }
    }

    /// The sequence number of the oldest flow held.
    fn oldest(&self) -> u64 {
        self.pushed().saturating_sub(self.capacity() as u64)
    }

    /// A reader starting at the `last` most recent flows (all held flows if
    /// `None`).
    pub fn reader(self: &Arc<FlowStore>, last: Option<usize>) -> FlowReader {
        let head = self.pushed();
        let start = match last {
            Some(last) => head.saturating_sub(last as u64).max(self.oldest()),
            None => self.oldest(),
        };
        FlowReader { store: self.clone(), next: start, lost: 0 }
    }
}

/// Reads a [`FlowStore`] in order from some point on.
#[derive(Debug)]
pub struct FlowReader {
    store: Arc<FlowStore>,
    next: u64,
    lost: u64,
}

impl FlowReader {
    /// Up to `max` flows available now, in order. Flows overwritten before
    /// the reader got to them are skipped and added to [`FlowReader::take_lost`].
    pub fn read(&mut self, max: usize) -> Vec<Arc<StoredFlow>> {
        let mut flows = Vec::new();
        while flows.len() < max {
            let oldest = self.store.oldest();
            if self.next < oldest {
                self.lost += oldest - self.next;
                self.next = oldest;
            }
            let slots = &self.store.slots;
            let slot = slots[(self.next % slots.len() as u64) as usize].load_full();
            match slot {
                Some(stored) if stored.sequence == self.next => {
                    self.next += 1;
                    flows.push(stored);
                }
                // Overwritten since `oldest` was read: go round again.
                Some(stored) if stored.sequence > self.next => continue,
                // Not written yet (or its writer is mid-push).
                _ => break,
            }
        }
        flows
    }

    /// Whether the reader has read everything pushed so far.
    pub fn caught_up(&self) -> bool {
        self.next >= self.store.pushed()
    }

    /// Flows lost since the last call.
    pub fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    /// Waits until a flow past the reader's position may be available.
    pub async fn wait(&self) {
        let notified = self.store.pushed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.store.reader_waiting.store(true, Ordering::SeqCst);
        if !self.has_next() {
            notified.await;
        }
    }

    fn has_next(&self) -> bool {
        let slots = &self.store.slots;
        let slot = slots[(self.next % slots.len() as u64) as usize].load();
        self.next < self.store.oldest() || slot.as_ref().is_some_and(|s| s.sequence >= self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::tests::sample_flow;

    fn sequences(flows: &[Arc<StoredFlow>]) -> Vec<u64> {
        flows.iter().map(|f| f.sequence).collect()
    }

    #[test]
    fn keeps_the_newest_and_counts_what_it_overwrote() {
        let store = Arc::new(FlowStore::new(4));
        let mut early = store.reader(None);
        for _ in 0..6 {
            store.push(sample_flow());
        }
        assert_eq!((store.len(), store.overwritten()), (4, 2));
        assert_eq!(sequences(&store.reader(None).read(100)), [2, 3, 4, 5]);
        assert_eq!(sequences(&store.reader(Some(2)).read(100)), [4, 5]);
        // A reader that fell behind skips ahead and is told so.
        assert_eq!(sequences(&early.read(100)), [2, 3, 4, 5]);
        assert_eq!(early.take_lost(), 2);
        assert_eq!(early.take_lost(), 0);
        assert!(early.caught_up());
        assert!(early.read(100).is_empty());
        store.push(sample_flow());
        assert_eq!(sequences(&early.read(1)), [6]);
    }

    #[test]
    fn a_waiting_reader_wakes_on_a_push_from_another_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = Arc::new(FlowStore::new(8));
        let mut reader = store.reader(None);
        runtime.block_on(async {
            let writer = {
                let store = store.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    store.push(sample_flow());
                })
            };
            tokio::time::timeout(std::time::Duration::from_secs(10), reader.wait()).await.expect("woken");
            writer.join().unwrap();
        });
        assert_eq!(sequences(&reader.read(10)), [0]);
    }

    #[test]
    fn concurrent_writers_lose_nothing_a_reader_keeps_up_with() {
        let store = Arc::new(FlowStore::new(1 << 16));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || (0..5_000).for_each(|_| store.push(sample_flow())))
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        let mut reader = store.reader(None);
        let read = reader.read(usize::MAX);
        assert_eq!(sequences(&read), (0..20_000).collect::<Vec<_>>());
        assert_eq!(reader.take_lost(), 0);
    }
}
