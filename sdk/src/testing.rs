//! A native test harness: runs a filter through the same operation
//! semantics as the host (see [`crate::driver`]), without Wasm, so filter
//! logic is unit-tested with `cargo test`.
//!
//! ```
//! use porin_sdk::testing::StreamTester;
//! # use porin_sdk::{Rules, StreamFilter};
//! # struct Echo;
//! # struct NoRules;
//! # impl Rules for NoRules { fn parse(_: &str) -> Result<Self, String> { Ok(NoRules) } }
//! # impl StreamFilter for Echo { type Rules = NoRules; fn new(_: &porin_sdk::ConnectionMeta) -> Self { Echo } }
//! let mut tester = StreamTester::<Echo>::new("{}").unwrap();
//! tester.send(b"hello");
//! assert_eq!(tester.upstream(), b"hello");
//! ```

use crate::abi::{ConnectionMeta, Peer, TrafficDirection};
use crate::driver::{Driver, DriverError, Sink};
use crate::filter::{self, DatagramFilter, RuleSets, StreamFilter, Verdict};

/// Rule set id the testers use.
pub const TEST_RULE_SET: u32 = 1;

/// Metadata for a test connection: rule set 1, egress, no addresses.
pub fn test_meta() -> ConnectionMeta {
    ConnectionMeta {
        rule_set: TEST_RULE_SET,
        direction: TrafficDirection::Egress,
        source: Peer::default(),
        destination: Peer::default(),
    }
}

/// A [`Sink`] that keeps what a driver sends each way, for tests.
#[derive(Debug, Default)]
pub struct Wire {
    /// Bytes sent towards the destination.
    pub upstream: Vec<u8>,
    /// Bytes sent back towards the source.
    pub downstream: Vec<u8>,
}

impl Sink for Wire {
    fn send(&mut self, to_source: bool, data: &[u8]) {
        if to_source {
            self.downstream.extend_from_slice(data)
        } else {
            self.upstream.extend_from_slice(data)
        }
    }
}

fn parse_records(records: Vec<String>, into: &mut Vec<serde_json::Value>) {
    into.extend(records.iter().map(|r| serde_json::from_str(r).expect("records are JSON objects")));
}

/// Drives one connection through a stream filter.
#[derive(Debug)]
pub struct StreamTester<S: StreamFilter> {
    rules: RuleSets<S::Rules>,
    meta: ConnectionMeta,
    filter: S,
    driver: Driver,
    wire: Wire,
    records: Vec<serde_json::Value>,
    closed: Option<DriverError>,
}

impl<S: StreamFilter> StreamTester<S> {
    /// A connection with `rules` (a rule set's JSON) as rule set 1.
    pub fn new(rules: &str) -> Result<Self, String> {
        Self::with_meta(rules, test_meta())
    }

    /// A connection with the given metadata; `rules` is stored under `meta.rule_set`.
    pub fn with_meta(rules: &str, meta: ConnectionMeta) -> Result<Self, String> {
        let mut sets = RuleSets::default();
        sets.set(meta.rule_set, rules)?;
        let filter = S::new(&meta);
        Ok(StreamTester {
            rules: sets,
            meta,
            filter,
            driver: Driver::new(1 << 20),
            wire: Wire::default(),
            records: Vec::new(),
            closed: None,
        })
    }

    /// Replaces the connection's rule set (applies from the next call).
    pub fn set_rules(&mut self, rules: &str) -> Result<(), String> {
        self.rules.set(self.meta.rule_set, rules)
    }

    /// Removes the connection's rule set.
    pub fn remove_rules(&mut self) {
        self.rules.remove(self.meta.rule_set);
    }

    fn feed(&mut self, reply: bool, data: &[u8], end: bool) -> &mut Self {
        if self.closed.is_some() {
            return self;
        }
        let (filter, meta, rules, records) = (&mut self.filter, &self.meta, &self.rules, &mut self.records);
        let mut call = |reply: bool, end: bool, data: &[u8], ops: &mut Vec<crate::Op>| {
            let current = rules.get(meta.rule_set);
            let out = filter::stream_data(filter, meta, current.as_deref(), reply, end, data);
            ops.extend(out.ops);
            parse_records(out.records, records);
            Ok(())
        };
        if let Err(err) = self.driver.data(reply, data, end, &mut call, &mut self.wire) {
            self.closed = Some(err);
        }
        self
    }

    /// Bytes from the source (client).
    pub fn send(&mut self, data: &[u8]) -> &mut Self {
        self.feed(false, data, false)
    }

    /// The source closed its side.
    pub fn send_end(&mut self) -> &mut Self {
        self.feed(false, b"", true)
    }

    /// Bytes from the destination (server).
    pub fn receive(&mut self, data: &[u8]) -> &mut Self {
        self.feed(true, data, false)
    }

    /// The destination closed its side.
    pub fn receive_end(&mut self) -> &mut Self {
        self.feed(true, b"", true)
    }

    /// The destination could not be reached: runs the filter's failure hook
    /// and sends what it injects to the source; the connection is closed.
    pub fn upstream_failed(&mut self) -> &mut Self {
        if self.closed.is_some() {
            return self;
        }
        let current = self.rules.get(self.meta.rule_set);
        let out = filter::stream_upstream_failure(&mut self.filter, &self.meta, current.as_deref());
        parse_records(out.records, &mut self.records);
        for op in out.ops {
            if let crate::Op::Inject { reply: false, data } = op {
                self.wire.downstream.extend_from_slice(&data);
            }
        }
        self.closed = Some(DriverError::Call("upstream unavailable".into()));
        self
    }

    /// Everything forwarded to the destination so far.
    pub fn upstream(&self) -> &[u8] {
        &self.wire.upstream
    }

    /// Everything sent back to the source so far (responses and replies).
    pub fn downstream(&self) -> &[u8] {
        &self.wire.downstream
    }

    /// The records emitted so far.
    pub fn records(&self) -> &[serde_json::Value] {
        &self.records
    }

    /// Why the connection was closed, if it was.
    pub fn closed(&self) -> Option<&DriverError> {
        self.closed.as_ref()
    }
}

/// Drives one flow through a datagram filter.
#[derive(Debug)]
pub struct DatagramTester<D: DatagramFilter> {
    rules: RuleSets<D::Rules>,
    meta: ConnectionMeta,
    filter: D,
    records: Vec<serde_json::Value>,
}

impl<D: DatagramFilter> DatagramTester<D> {
    /// A flow with `rules` as rule set 1.
    pub fn new(rules: &str) -> Result<Self, String> {
        let meta = test_meta();
        let mut sets = RuleSets::default();
        sets.set(meta.rule_set, rules)?;
        let filter = D::new(&meta);
        Ok(DatagramTester { rules: sets, meta, filter, records: Vec::new() })
    }

    fn datagram(&mut self, reply: bool, data: &[u8]) -> Verdict {
        let current = self.rules.get(self.meta.rule_set);
        let (verdict, out) = filter::datagram(&mut self.filter, &self.meta, current.as_deref(), reply, data);
        parse_records(out.records, &mut self.records);
        verdict
    }

    /// A datagram from the source.
    pub fn send(&mut self, data: &[u8]) -> Verdict {
        self.datagram(false, data)
    }

    /// A datagram from the destination.
    pub fn receive(&mut self, data: &[u8]) -> Verdict {
        self.datagram(true, data)
    }

    /// The records emitted so far.
    pub fn records(&self) -> &[serde_json::Value] {
        &self.records
    }
}

/// Log lines written on this thread (native builds only), oldest first.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_logs() -> Vec<(i32, String)> {
    crate::sys::native::LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
}
