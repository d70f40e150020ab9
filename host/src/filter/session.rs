//! One connection (or datagram flow) through a filter instance.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use porin_sdk::ConnectionMeta;
use porin_sdk::driver::{Driver, DriverError, Op, Sink};

use super::instance::{CallError, CallOutput, FilterInstance};
use super::{FilterError, FilterRegistry};

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

/// One TCP connection through a stream filter.
pub struct StreamSession {
    registry: Arc<FilterRegistry>,
    instance: Rc<RefCell<FilterInstance>>,
    id: u32,
    driver: Driver,
    records: Vec<Vec<u8>>,
    trace: Option<Vec<TraceEvent>>,
    failed: Option<DriverError>,
}

impl std::fmt::Debug for StreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSession").field("id", &self.id).field("failed", &self.failed).finish()
    }
}

impl StreamSession {
    pub(super) fn open(
        registry: Arc<FilterRegistry>,
        instance: Rc<RefCell<FilterInstance>>,
        meta: &ConnectionMeta,
    ) -> Result<StreamSession, FilterError> {
        let id = open(&registry, &instance, false, meta)?;
        let driver = Driver::new(registry.config().max_buffer);
        Ok(StreamSession { registry, instance, id, driver, records: Vec::new(), trace: None, failed: None })
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
    /// added.
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
        let (registry, instance, id) = (&self.registry, &self.instance, self.id);
        let (records, trace) = (&mut self.records, &mut self.trace);
        let mut filter = |reply: bool, end: bool, buffered: &[u8], ops: &mut Vec<Op>| {
            let out = call(registry, instance, |i| i.data(false, id, reply, end, buffered))
                .map_err(|err| DriverError::Call(err.to_string()))?;
            if let Some(trace) = trace.as_mut() {
                trace.push(TraceEvent::Call { reply, end, len: buffered.len() });
                trace.extend(out.ops.iter().map(|op| TraceEvent::Op { reply, op: op.clone() }));
            }
            ops.extend(out.ops);
            records.extend(out.records);
            Ok(())
        };
        let result = self.driver.data(reply, data, end, &mut filter, sink);
        if let Err(err) = &result {
            let name = self.instance.borrow().name().to_string();
            self.records.push(error_record(&name, &err.to_string()));
            self.failed = Some(err.clone());
        }
        result
    }

    /// The destination could not be reached: the filter may answer the
    /// source (what it injects goes to `sink`); the connection must close.
    pub fn upstream_failed<S: Sink>(&mut self, sink: &mut S) {
        if self.failed.is_some() {
            return;
        }
        let id = self.id;
        match call(&self.registry, &self.instance, |i| i.upstream_failed(id)) {
            Ok(out) => {
                self.records.extend(out.records);
                for op in out.ops {
                    if let Op::Inject { reply: false, data } = op {
                        sink.send(true, &data);
                    }
                }
            }
            Err(err) => {
                let name = self.instance.borrow().name().to_string();
                self.records.push(error_record(&name, &err.to_string()));
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
        let mut instance = self.instance.borrow_mut();
        if !instance.tainted {
            instance.close(false, self.id).ok();
        }
    }
}

/// One UDP flow through a datagram filter.
pub struct DatagramSession {
    registry: Arc<FilterRegistry>,
    instance: Rc<RefCell<FilterInstance>>,
    id: u32,
    records: Vec<Vec<u8>>,
}

impl std::fmt::Debug for DatagramSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramSession").field("id", &self.id).finish()
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
        Ok(DatagramSession { registry, instance, id, records: Vec::new() })
    }

    /// Decides one datagram. A failing filter drops it (fail closed) and
    /// adds an ERROR record.
    pub fn datagram(&mut self, reply: bool, data: &[u8]) -> DatagramVerdict {
        let out = call(&self.registry, &self.instance, |i| i.data(true, self.id, reply, false, data));
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
                    (code, _) => Err(format!("returned datagram verdict {code} (without reply bytes?)")),
                }
            }
            Err(err) => Err(err.to_string()),
        };
        verdict.unwrap_or_else(|message| {
            let name = self.instance.borrow().name().to_string();
            self.records.push(error_record(&name, &message));
            DatagramVerdict::Drop
        })
    }

    pub fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.records)
    }
}

impl Drop for DatagramSession {
    fn drop(&mut self) {
        let mut instance = self.instance.borrow_mut();
        if !instance.tainted {
            instance.close(true, self.id).ok();
        }
    }
}
