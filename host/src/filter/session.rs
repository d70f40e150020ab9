//! One connection (or datagram flow) through a filter instance.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use porin_sdk::ConnectionMeta;
use porin_sdk::driver::{Driver, DriverError, Op, Sink};

use super::instance::{CallError, CallOutput, FilterInstance};
use super::{FailMode, FilterError, FilterRegistry};

/// What a traced session saw, for `porin filter test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// The filter was called with `len` buffered bytes.
    Call { reply: bool, end: bool, len: usize },
    /// It returned this op.
    Op { reply: bool, op: Op },
}

/// Brings the instance's rule sets up to date (only when they changed) and
/// makes one call.
fn call(
    registry: &FilterRegistry,
    instance: &RefCell<FilterInstance>,
    f: impl FnOnce(&mut FilterInstance) -> Result<CallOutput, CallError>,
) -> Result<CallOutput, CallError> {
    let mut instance = instance.borrow_mut();
    let generation = registry.generation();
    if instance.needs_sync(generation) {
        instance.sync_rules(generation, &registry.read())?;
    }
    f(&mut instance)
}

/// The host's record of a failed connection, in the filters' record format.
fn error_record(filter: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "type": "REQUEST", "verdict": "ERROR", "filter": filter, "error": message })
        .to_string()
        .into_bytes()
}

/// The host's record of a connection that carries on unfiltered.
fn failed_open_record(filter: &str, reason: &str) -> Vec<u8> {
    let error = format!("filter `{filter}` failed open: {reason}");
    serde_json::json!({ "type": "REQUEST", "verdict": "FORWARDED", "filter": filter, "error": error })
        .to_string()
        .into_bytes()
}

/// The filter of a session that failed open: everything passes.
fn pass_all(_reply: bool, _end: bool, buffered: &[u8], ops: &mut Vec<Op>) -> Result<(), DriverError> {
    ops.push(Op::Pass(buffered.len() as u64));
    Ok(())
}

fn open(
    registry: &FilterRegistry,
    instance: &Rc<RefCell<FilterInstance>>,
    datagram: bool,
    meta: &ConnectionMeta,
) -> Result<u32, FilterError> {
    let name = instance.borrow().name().to_string();
    let mut opened = None;
    call(registry, instance, |i| {
        opened = Some(i.open(datagram, meta)?);
        Ok(CallOutput::default())
    })
    .map_err(|source| FilterError::Call { name, source })?;
    Ok(opened.expect("set on success"))
}

/// A session's instance and its id there.
struct Attached {
    instance: Rc<RefCell<FilterInstance>>,
    id: u32,
}

impl Attached {
    /// Lets the filter free the connection, unless the instance failed.
    fn close(self, datagram: bool) {
        let mut instance = self.instance.borrow_mut();
        if !instance.tainted {
            instance.close(datagram, self.id).ok();
        }
    }
}

/// One TCP connection through a stream filter.
pub struct StreamSession {
    registry: Arc<FilterRegistry>,
    filter: String,
    /// `None` once the session failed open: bytes pass unfiltered.
    attached: Option<Attached>,
    fail_mode: FailMode,
    driver: Driver,
    records: Vec<Vec<u8>>,
    trace: Option<Vec<TraceEvent>>,
    failed: Option<DriverError>,
}

impl std::fmt::Debug for StreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSession")
            .field("id", &self.attached.as_ref().map(|a| a.id))
            .field("failed", &self.failed)
            .finish()
    }
}

impl StreamSession {
    pub(super) fn open(
        registry: Arc<FilterRegistry>,
        instance: Rc<RefCell<FilterInstance>>,
        meta: &ConnectionMeta,
    ) -> Result<StreamSession, FilterError> {
        let id = open(&registry, &instance, false, meta)?;
        let (filter, fail_mode) = {
            let instance = instance.borrow();
            (instance.name().to_string(), instance.fail_mode)
        };
        let driver = Driver::new(registry.config().max_buffer);
        Ok(StreamSession {
            registry,
            filter,
            attached: Some(Attached { instance, id }),
            fail_mode,
            driver,
            records: Vec::new(),
            trace: None,
            failed: None,
        })
    }

    /// A session that passes everything, because `filter` failed before
    /// the connection could open and its module fails open.
    pub(super) fn failed_open(
        registry: Arc<FilterRegistry>,
        filter: &str,
        error: &FilterError,
    ) -> StreamSession {
        let driver = Driver::new(registry.config().max_buffer);
        StreamSession {
            registry,
            filter: filter.to_string(),
            attached: None,
            fail_mode: FailMode::Open,
            driver,
            records: vec![failed_open_record(filter, &error.to_string())],
            trace: None,
            failed: None,
        }
    }

    /// Records every call and op from now on.
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    pub fn take_trace(&mut self) -> Vec<TraceEvent> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Feeds bytes from the source (`reply == false`) or the destination.
    /// An error means the connection must be closed; an ERROR record was
    /// added. When the module fails and fails open, the bytes it had not
    /// decided on pass, and so does everything after them.
    pub fn data<S: Sink>(
        &mut self,
        reply: bool,
        data: &[u8],
        end: bool,
        sink: &mut S,
    ) -> Result<(), DriverError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let Some(Attached { instance, id }) = &self.attached else {
            return self.driver.data(reply, data, end, &mut pass_all, sink);
        };
        let (registry, id) = (&self.registry, *id);
        let (records, trace) = (&mut self.records, &mut self.trace);
        let mut failure = None;
        let mut filter = |reply: bool, end: bool, buffered: &[u8], ops: &mut Vec<Op>| {
            let out =
                call(registry, instance, |i| i.data(false, id, reply, end, buffered)).map_err(|err| {
                    let driver_error = DriverError::Call(err.to_string());
                    failure = Some(err);
                    driver_error
                })?;
            if let Some(trace) = trace.as_mut() {
                trace.push(TraceEvent::Call { reply, end, len: buffered.len() });
                trace.extend(out.ops.iter().map(|op| TraceEvent::Op { reply, op: op.clone() }));
            }
            ops.extend(out.ops);
            records.extend(out.records);
            Ok(())
        };
        let Err(err) = self.driver.data(reply, data, end, &mut filter, sink) else { return Ok(()) };
        // An ERROR op is the filter's decision. A buffer overrun is the peer
        // sending more than the host holds: failing open there would let
        // any peer skip the filter. Making no progress breaks the ABI.
        let module_failure = match &err {
            DriverError::Call(_) => failure.as_ref().is_some_and(CallError::is_failure),
            DriverError::NoProgress => true,
            DriverError::Filter { .. } | DriverError::BufferLimit(_) => false,
        };
        if module_failure && self.fail_mode == FailMode::Open {
            let reason = failure.map_or_else(|| err.to_string(), |failure| failure.to_string());
            self.records.push(failed_open_record(&self.filter, &reason));
            self.attached.take().expect("attached").close(false);
            // What the filter had not decided on passes now (a side still
            // waiting for the MORE it asked for passes once that arrives).
            for side in [reply, !reply] {
                self.driver.data(side, &[], false, &mut pass_all, sink)?;
            }
            return Ok(());
        }
        self.records.push(error_record(&self.filter, &err.to_string()));
        self.failed = Some(err.clone());
        Err(err)
    }

    /// The destination could not be reached: the filter may answer the
    /// source (what it injects goes to `sink`); the connection must close.
    pub fn upstream_failed<S: Sink>(&mut self, sink: &mut S) {
        if self.failed.is_some() {
            return;
        }
        if let Some(Attached { instance, id }) = &self.attached {
            let id = *id;
            match call(&self.registry, instance, |i| i.upstream_failed(id)) {
                Ok(out) => {
                    self.records.extend(out.records);
                    for op in out.ops {
                        if let Op::Inject { reply: false, data } = op {
                            sink.send(true, &data);
                        }
                    }
                }
                Err(err) => self.records.push(error_record(&self.filter, &err.to_string())),
            }
        }
        self.failed = Some(DriverError::Call("upstream unavailable".into()));
    }

    /// Bytes waiting for the filter to decide in a direction.
    pub fn buffered(&self, reply: bool) -> usize {
        self.driver.buffered(reply)
    }

    /// True when nothing is buffered or owed in a direction.
    pub fn is_drained(&self, reply: bool) -> bool {
        self.driver.is_drained(reply)
    }

    /// Records emitted since the last call.
    pub fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.records)
    }
}

impl Drop for StreamSession {
    fn drop(&mut self) {
        if let Some(attached) = self.attached.take() {
            attached.close(false);
        }
    }
}

/// One UDP flow through a datagram filter.
pub struct DatagramSession {
    registry: Arc<FilterRegistry>,
    filter: String,
    /// `None` once the flow failed open: its datagrams pass.
    attached: Option<Attached>,
    fail_mode: FailMode,
    records: Vec<Vec<u8>>,
}

impl std::fmt::Debug for DatagramSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramSession").field("id", &self.attached.as_ref().map(|a| a.id)).finish()
    }
}

/// What to do with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramVerdict {
    Pass,
    Drop,
    /// Drop it and send these bytes back to its sender.
    Reply(Vec<u8>),
}

impl DatagramSession {
    pub(super) fn open(
        registry: Arc<FilterRegistry>,
        instance: Rc<RefCell<FilterInstance>>,
        meta: &ConnectionMeta,
    ) -> Result<DatagramSession, FilterError> {
        let id = open(&registry, &instance, true, meta)?;
        let (filter, fail_mode) = {
            let instance = instance.borrow();
            (instance.name().to_string(), instance.fail_mode)
        };
        let attached = Some(Attached { instance, id });
        Ok(DatagramSession { registry, filter, attached, fail_mode, records: Vec::new() })
    }

    /// A flow whose datagrams all pass, because `filter` failed before it
    /// could open and its module fails open.
    pub(super) fn failed_open(
        registry: Arc<FilterRegistry>,
        filter: &str,
        error: &FilterError,
    ) -> DatagramSession {
        DatagramSession {
            registry,
            filter: filter.to_string(),
            attached: None,
            fail_mode: FailMode::Open,
            records: vec![failed_open_record(filter, &error.to_string())],
        }
    }

    /// Decides one datagram. A failing filter drops it and adds an ERROR
    /// record; if its module fails open, this datagram and the rest of
    /// the flow pass instead.
    pub fn datagram(&mut self, reply: bool, data: &[u8]) -> DatagramVerdict {
        let Some(Attached { instance, id }) = &self.attached else { return DatagramVerdict::Pass };
        let out = call(&self.registry, instance, |i| i.data(true, *id, reply, false, data));
        // Err: (what went wrong, whether the module broke down).
        let verdict = match out {
            Ok(out) => {
                self.records.extend(out.records);
                let reply_bytes = out.ops.into_iter().find_map(|op| match op {
                    Op::Inject { reply: true, data } => Some(data),
                    _ => None,
                });
                match (out.verdict, reply_bytes) {
                    (porin_sdk::abi::datagram::PASS, _) => Ok(DatagramVerdict::Pass),
                    (porin_sdk::abi::datagram::DROP, _) => Ok(DatagramVerdict::Drop),
                    (porin_sdk::abi::datagram::REPLY, Some(bytes)) => Ok(DatagramVerdict::Reply(bytes)),
                    (code, _) => {
                        Err((format!("returned datagram verdict {code} (without reply bytes?)"), true))
                    }
                }
            }
            Err(err) => Err((err.to_string(), err.is_failure())),
        };
        match verdict {
            Ok(verdict) => verdict,
            Err((message, true)) if self.fail_mode == FailMode::Open => {
                self.records.push(failed_open_record(&self.filter, &message));
                self.attached.take().expect("attached").close(true);
                DatagramVerdict::Pass
            }
            Err((message, _)) => {
                self.records.push(error_record(&self.filter, &message));
                DatagramVerdict::Drop
            }
        }
    }

    pub fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.records)
    }
}

impl Drop for DatagramSession {
    fn drop(&mut self) {
        if let Some(attached) = self.attached.take() {
            attached.close(true);
        }
    }
}
