//! The traits a filter implements and the context each call gets.

use std::collections::HashMap;
use std::rc::Rc;

use crate::abi::ConnectionMeta;
use crate::driver::Op;
use crate::record::Record;

/// The policy rules a filter enforces, parsed from a rule set's JSON
/// (Cilium's `rules` object, e.g. `{"http":[{"method":"GET"}]}`).
pub trait Rules: Sized + 'static {
    /// Parses and validates a rule set; the error explains what is wrong.
    fn parse(json: &str) -> Result<Self, String>;
}

/// Parses JSON into any serde type, with a readable error: a helper for
/// [`Rules::parse`].
pub fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|err| format!("invalid rules: {err}"))
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is suspicious.
    Warn,
    /// Normal operation.
    Info,
    /// Details for debugging.
    Debug,
}

/// What one call produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Stream operations, in order.
    pub ops: Vec<Op>,
    /// L7 records as JSON objects.
    pub records: Vec<String>,
}

/// The context of one call into a stream filter.
#[derive(Debug)]
pub struct Stream<'a, R> {
    meta: &'a ConnectionMeta,
    rules: Option<&'a R>,
    out: &'a mut Output,
}

impl<'a, R> Stream<'a, R> {
    /// What the host said about the connection when it opened.
    pub fn meta(&self) -> &ConnectionMeta {
        self.meta
    }

    /// The connection's rule set as of this call (a replaced rule set
    /// applies from the next call on). `None` means it was removed: deny.
    pub fn rules(&self) -> Option<&'a R> {
        self.rules
    }

    /// Asks for at least `n` more bytes before the next call.
    pub fn more(&mut self, n: usize) {
        self.out.ops.push(Op::More(n as u64));
    }

    /// Forwards `n` bytes; `n` may run past the data of this call.
    pub fn pass(&mut self, n: u64) {
        self.out.ops.push(Op::Pass(n));
    }

    /// Discards `n` bytes; `n` may run past the data of this call.
    pub fn discard(&mut self, n: u64) {
        self.out.ops.push(Op::Drop(n));
    }

    /// Sends bytes onwards in the current direction.
    pub fn inject(&mut self, data: impl Into<Vec<u8>>) {
        self.out.ops.push(Op::Inject { reply: false, data: data.into() });
    }

    /// Sends bytes back to the sender of the current data (e.g. a 403).
    pub fn reply(&mut self, data: impl Into<Vec<u8>>) {
        self.out.ops.push(Op::Inject { reply: true, data: data.into() });
    }

    /// Closes the connection after the ops before this one.
    pub fn error(&mut self, code: i32, reason: impl Into<String>) {
        self.out.ops.push(Op::Error { code, reason: reason.into() });
    }

    /// Emits an L7 record.
    pub fn record(&mut self, record: Record) {
        self.out.records.push(record.into_json());
    }
}

/// A filter for a byte stream (TCP). One value per connection.
pub trait StreamFilter: Sized + 'static {
    /// The rules this filter enforces.
    type Rules: Rules;

    /// Creates the state of a new connection.
    fn new(meta: &ConnectionMeta) -> Self;

    /// Handles everything buffered in one direction (`reply`: from the
    /// destination). Emit ops on `stream`. The default passes all data.
    fn on_data(&mut self, stream: &mut Stream<'_, Self::Rules>, reply: bool, end_stream: bool, data: &[u8]) {
        let _ = (reply, end_stream);
        stream.pass(data.len() as u64);
    }

    /// The connection closed. The default does nothing.
    fn on_close(&mut self, stream: &mut Stream<'_, Self::Rules>) {
        let _ = stream;
    }

    /// The destination could not be reached. The filter may answer the
    /// source with `stream.inject(..)` (e.g. HTTP 503); the host then closes
    /// the connection. The default does nothing.
    fn on_upstream_failure(&mut self, stream: &mut Stream<'_, Self::Rules>) {
        let _ = stream;
    }
}

/// A datagram filter's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the datagram.
    Pass,
    /// Drop it silently.
    Drop,
    /// Drop it and send these bytes back to its sender instead.
    Reply(Vec<u8>),
}

/// The context of one call into a datagram filter.
#[derive(Debug)]
pub struct Datagram<'a, R> {
    meta: &'a ConnectionMeta,
    rules: Option<&'a R>,
    out: &'a mut Output,
}

impl<'a, R> Datagram<'a, R> {
    /// What the host said about the flow when it opened.
    pub fn meta(&self) -> &ConnectionMeta {
        self.meta
    }

    /// The flow's rule set as of this datagram; `None`: removed, deny.
    pub fn rules(&self) -> Option<&'a R> {
        self.rules
    }

    /// Emits an L7 record.
    pub fn record(&mut self, record: Record) {
        self.out.records.push(record.into_json());
    }
}

/// A filter for datagrams (UDP): one decision per datagram. One value per
/// flow (source and destination address pair).
pub trait DatagramFilter: Sized + 'static {
    /// The rules this filter enforces.
    type Rules: Rules;

    /// Creates the state of a new flow.
    fn new(meta: &ConnectionMeta) -> Self;

    /// Decides one datagram. The default passes it.
    fn on_datagram(&mut self, flow: &mut Datagram<'_, Self::Rules>, reply: bool, data: &[u8]) -> Verdict {
        let _ = (flow, reply, data);
        Verdict::Pass
    }
}

/// Rule sets by id.
#[derive(Debug)]
pub struct RuleSets<R> {
    sets: HashMap<u32, Rc<R>>,
}

impl<R> Default for RuleSets<R> {
    fn default() -> Self {
        RuleSets { sets: HashMap::new() }
    }
}

impl<R: Rules> RuleSets<R> {
    /// Adds or replaces a rule set; on error the old one stays.
    pub fn set(&mut self, id: u32, json: &str) -> Result<(), String> {
        let rules = R::parse(json)?;
        self.sets.insert(id, Rc::new(rules));
        Ok(())
    }

    /// Removes a rule set; connections using it deny from then on.
    pub fn remove(&mut self, id: u32) {
        self.sets.remove(&id);
    }

    /// The current rules of `id`.
    pub fn get(&self, id: u32) -> Option<Rc<R>> {
        self.sets.get(&id).cloned()
    }
}

/// Per-connection (or per-flow) filter values by id.
#[derive(Debug)]
pub struct Connections<F> {
    open: HashMap<u32, (ConnectionMeta, F)>,
}

impl<F> Default for Connections<F> {
    fn default() -> Self {
        Connections { open: HashMap::new() }
    }
}

impl<F> Connections<F> {
    /// Registers a new connection.
    pub fn insert(&mut self, id: u32, meta: ConnectionMeta, filter: F) {
        self.open.insert(id, (meta, filter));
    }

    /// Takes a connection out for a call, so that a failing call cannot
    /// leave the others in an inconsistent state.
    pub fn take(&mut self, id: u32) -> Option<(ConnectionMeta, F)> {
        self.open.remove(&id)
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// Runs one `on_data` call and returns what it produced.
pub fn stream_data<S: StreamFilter>(
    filter: &mut S,
    meta: &ConnectionMeta,
    rules: Option<&S::Rules>,
    reply: bool,
    end_stream: bool,
    data: &[u8],
) -> Output {
    let mut out = Output::default();
    let mut stream = Stream { meta, rules, out: &mut out };
    filter.on_data(&mut stream, reply, end_stream, data);
    out
}

/// Runs one `on_upstream_failure` call.
pub fn stream_upstream_failure<S: StreamFilter>(
    filter: &mut S,
    meta: &ConnectionMeta,
    rules: Option<&S::Rules>,
) -> Output {
    let mut out = Output::default();
    let mut stream = Stream { meta, rules, out: &mut out };
    filter.on_upstream_failure(&mut stream);
    out
}

/// Runs one `on_close` call.
pub fn stream_close<S: StreamFilter>(
    filter: &mut S,
    meta: &ConnectionMeta,
    rules: Option<&S::Rules>,
) -> Output {
    let mut out = Output::default();
    let mut stream = Stream { meta, rules, out: &mut out };
    filter.on_close(&mut stream);
    out
}

/// Runs one `on_datagram` call.
pub fn datagram<D: DatagramFilter>(
    filter: &mut D,
    meta: &ConnectionMeta,
    rules: Option<&D::Rules>,
    reply: bool,
    data: &[u8],
) -> (Verdict, Output) {
    let mut out = Output::default();
    let mut flow = Datagram { meta, rules, out: &mut out };
    let verdict = filter.on_datagram(&mut flow, reply, data);
    (verdict, out)
}
