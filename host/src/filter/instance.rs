//! One sandboxed instance of a filter module, and the host side of the ABI.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use porin_sdk::abi::{self, ConnectionMeta, exports, imports};
use porin_sdk::driver::Op;
use wasmtime::{Caller, Linker, Memory, ResourceLimiter, Store, Trap, TypedFunc};

use super::FailMode;
use super::module::FilterModule;
use super::registry::RegistryState;

/// Most ops one call may emit.
const MAX_OPS_PER_CALL: usize = 65_536;
/// Most bytes one call may inject, in total.
const MAX_INJECT_PER_CALL: usize = 4 << 20;
/// Largest record, log line or error message.
const MAX_MESSAGE: usize = 64 << 10;
/// Most records and log lines one call may emit.
const MAX_RECORDS_PER_CALL: usize = 4096;

/// Why a call into a filter failed. Every variant closes the connection,
/// unless the module fails open and [`CallError::is_failure`] says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("trapped: {0}")]
    Trap(String),
    #[error("ran past its {0:?} CPU deadline")]
    Deadline(std::time::Duration),
    #[error("hit its {0}-byte memory limit")]
    MemoryLimit(usize),
    #[error("broke the ABI: {0}")]
    Violation(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("does not implement {0} filtering")]
    Unsupported(&'static str),
}

impl CallError {
    /// True when the module broke down (trap, deadline, memory, ABI), as
    /// opposed to refusing (a non-zero status is the guest's own answer) or
    /// not implementing the kind of filtering asked for.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            CallError::Trap(_) | CallError::Deadline(_) | CallError::MemoryLimit(_) | CallError::Violation(_)
        )
    }
}

/// Per-instance host state, reachable from the imports.
pub(crate) struct HostState {
    memory: Option<Memory>,
    memory_limit: usize,
    memory_exceeded: bool,
    started: Instant,
    ops: Vec<Op>,
    injected: usize,
    records: Vec<Vec<u8>>,
    logs: Vec<(i32, String)>,
    error: Option<String>,
    violation: Option<String>,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

fn violation(caller: &mut Caller<'_, HostState>, message: String) -> wasmtime::Error {
    caller.data_mut().violation.get_or_insert(message.clone());
    wasmtime::Error::msg(message)
}

/// Copies `len` bytes at `ptr` out of the guest's memory, checking bounds.
fn read(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32, max: usize) -> wasmtime::Result<Vec<u8>> {
    let (Ok(start), Ok(len)) = (usize::try_from(ptr), usize::try_from(len)) else {
        return Err(violation(caller, format!("negative pointer or length ({ptr}, {len})")));
    };
    if len > max {
        return Err(violation(caller, format!("{len}-byte argument exceeds the {max}-byte limit")));
    }
    let memory = caller.data().memory.expect("memory is set at instantiation");
    let data = memory.data(&*caller);
    match start.checked_add(len).and_then(|end| data.get(start..end)) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(violation(caller, format!("argument {start}+{len} is outside linear memory"))),
    }
}

/// Defines the imports of ABI v1.
pub(crate) fn define_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        imports::OP,
        |mut caller: Caller<'_, HostState>, op: i32, arg: i64, ptr: i32, len: i32| {
            if caller.data().ops.len() >= MAX_OPS_PER_CALL {
                return Err(violation(&mut caller, format!("more than {MAX_OPS_PER_CALL} ops in one call")));
            }
            let count = |caller: &mut Caller<'_, HostState>| match u64::try_from(arg) {
                Ok(n) => Ok(n),
                Err(_) => Err(violation(caller, format!("negative count {arg} for op {op}"))),
            };
            let op = match op {
                abi::op::MORE => Op::More(count(&mut caller)?),
                abi::op::PASS => Op::Pass(count(&mut caller)?),
                abi::op::DROP => Op::Drop(count(&mut caller)?),
                abi::op::INJECT => {
                    let reply = match arg {
                        abi::inject::FORWARD => false,
                        abi::inject::REPLY => true,
                        _ => {
                            return Err(violation(
                                &mut caller,
                                format!("INJECT target {arg} is neither 0 nor 1"),
                            ));
                        }
                    };
                    let data = read(&mut caller, ptr, len, MAX_INJECT_PER_CALL)?;
                    caller.data_mut().injected += data.len();
                    if caller.data().injected > MAX_INJECT_PER_CALL {
                        return Err(violation(
                            &mut caller,
                            format!("injected more than {MAX_INJECT_PER_CALL} bytes in one call"),
                        ));
                    }
                    Op::Inject { reply, data }
                }
                abi::op::ERROR => {
                    let reason = read(&mut caller, ptr, len, MAX_MESSAGE)?;
                    Op::Error { code: arg as i32, reason: String::from_utf8_lossy(&reason).into_owned() }
                }
                other => return Err(violation(&mut caller, format!("unknown op code {other}"))),
            };
            caller.data_mut().ops.push(op);
            Ok(())
        },
    )?;
    linker.func_wrap(module, imports::RECORD, |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
        let record = read(&mut caller, ptr, len, MAX_MESSAGE)?;
        if caller.data().records.len() >= MAX_RECORDS_PER_CALL {
            return Err(violation(
                &mut caller,
                format!("more than {MAX_RECORDS_PER_CALL} records in one call"),
            ));
        }
        caller.data_mut().records.push(record);
        Ok(())
    })?;
    linker.func_wrap(
        module,
        imports::LOG,
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let line = read(&mut caller, ptr, len, MAX_MESSAGE)?;
            if caller.data().logs.len() >= MAX_RECORDS_PER_CALL {
                return Err(violation(
                    &mut caller,
                    format!("more than {MAX_RECORDS_PER_CALL} log lines in one call"),
                ));
            }
            caller.data_mut().logs.push((level, String::from_utf8_lossy(&line).into_owned()));
            Ok(())
        },
    )?;
    linker.func_wrap(module, imports::NOW_NS, |caller: Caller<'_, HostState>| {
        caller.data().started.elapsed().as_nanos() as i64
    })?;
    linker.func_wrap(module, imports::ERROR, |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
        let message = read(&mut caller, ptr, len, MAX_MESSAGE)?;
        caller.data_mut().error = Some(String::from_utf8_lossy(&message).into_owned());
        Ok(())
    })?;
    Ok(())
}

struct KindFuncs {
    open: TypedFunc<(i32, i32), i32>,
    data: TypedFunc<(i32, i32, i32), i32>,
    close: TypedFunc<i32, ()>,
}

/// What one data call produced.
#[derive(Debug, Default)]
pub struct CallOutput {
    pub ops: Vec<Op>,
    pub records: Vec<Vec<u8>>,
    pub logs: Vec<(i32, String)>,
    /// `porin_datagram`'s verdict code.
    pub verdict: i32,
}

/// One live instance of a module.
pub struct FilterInstance {
    name: String,
    store: Store<HostState>,
    abi_version: TypedFunc<(), i32>,
    buffer: TypedFunc<i32, i32>,
    rules_set: TypedFunc<(i32, i32), i32>,
    rules_remove: TypedFunc<i32, ()>,
    stream: Option<KindFuncs>,
    datagram: Option<KindFuncs>,
    /// The guest's input buffer, as (address, capacity).
    input: Option<(usize, usize)>,
    next_id: u32,
    deadline_ticks: u64,
    call_deadline: std::time::Duration,
    memory_limit: usize,
    /// What its connections do when a call fails.
    pub(super) fail_mode: FailMode,
    /// Rule sets this instance holds, and the registry generation they match.
    rule_sets: HashMap<u32, Arc<str>>,
    synced_generation: u64,
    /// A call failed: the instance serves its open connections but no new ones.
    pub tainted: bool,
}

impl std::fmt::Debug for FilterInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterInstance").field("name", &self.name).field("tainted", &self.tainted).finish()
    }
}

impl FilterInstance {
    pub(super) fn new(module: &FilterModule) -> Result<FilterInstance, CallError> {
        let (runtime, limits) = (&module.runtime, module.limits);
        let state = HostState {
            memory: None,
            memory_limit: limits.memory_limit,
            memory_exceeded: false,
            started: runtime.started,
            ops: Vec::new(),
            injected: 0,
            records: Vec::new(),
            logs: Vec::new(),
            error: None,
            violation: None,
        };
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|state| state as &mut dyn ResourceLimiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(module.deadline_ticks);
        let classify = |store: &Store<HostState>, err: wasmtime::Error| {
            classify(store, err, limits.call_deadline, limits.memory_limit)
        };
        let instance = module.pre.instantiate(&mut store).map_err(|err| classify(&store, err))?;
        let memory = instance
            .get_memory(&mut store, exports::MEMORY)
            .ok_or_else(|| CallError::Violation("no memory export".into()))?;
        store.data_mut().memory = Some(memory);
        let func = |store: &mut Store<HostState>, name: &str| {
            instance
                .get_func(&mut *store, name)
                .ok_or_else(|| CallError::Violation(format!("missing export {name}")))
        };
        macro_rules! typed {
            ($name:expr) => {
                func(&mut store, $name)?.typed(&store).map_err(|err| CallError::Violation(err.to_string()))?
            };
        }
        let kind = |store: &mut Store<HostState>,
                    present: bool,
                    names: [&str; 3]|
         -> Result<Option<KindFuncs>, CallError> {
            if !present {
                return Ok(None);
            }
            let typed = |e: wasmtime::Error| CallError::Violation(e.to_string());
            Ok(Some(KindFuncs {
                open: func(store, names[0])?.typed(&*store).map_err(typed)?,
                data: func(store, names[1])?.typed(&*store).map_err(typed)?,
                close: func(store, names[2])?.typed(&*store).map_err(typed)?,
            }))
        };
        let stream = kind(
            &mut store,
            module.kinds.stream,
            [exports::STREAM_OPEN, exports::STREAM_DATA, exports::STREAM_CLOSE],
        )?;
        let datagram = kind(
            &mut store,
            module.kinds.datagram,
            [exports::DATAGRAM_OPEN, exports::DATAGRAM, exports::DATAGRAM_CLOSE],
        )?;
        Ok(FilterInstance {
            name: module.name.clone(),
            abi_version: typed!(exports::ABI_VERSION),
            buffer: typed!(exports::BUFFER),
            rules_set: typed!(exports::RULES_SET),
            rules_remove: typed!(exports::RULES_REMOVE),
            store,
            stream,
            datagram,
            input: None,
            next_id: 1,
            deadline_ticks: module.deadline_ticks,
            call_deadline: limits.call_deadline,
            memory_limit: limits.memory_limit,
            fail_mode: limits.fail_mode,
            rule_sets: HashMap::new(),
            synced_generation: 0,
            tainted: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size of the guest's linear memory, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().memory.map_or(0, |memory| memory.data_size(&self.store))
    }

    /// Runs one call into the guest with a fresh deadline; a failure taints
    /// the instance.
    fn call<T>(&mut self, f: impl FnOnce(&mut Self) -> wasmtime::Result<T>) -> Result<T, CallError> {
        let state = self.store.data_mut();
        state.ops.clear();
        state.records.clear();
        state.logs.clear();
        state.injected = 0;
        state.error = None;
        state.violation = None;
        self.store.set_epoch_deadline(self.deadline_ticks);
        match f(self) {
            Ok(value) => Ok(value),
            Err(err) => {
                self.tainted = true;
                Err(classify(&self.store, err, self.call_deadline, self.memory_limit))
            }
        }
    }

    /// Copies `data` into the guest's input buffer; returns its length.
    fn write_input(&mut self, data: &[u8]) -> wasmtime::Result<i32> {
        let len = i32::try_from(data.len()).map_err(|_| wasmtime::Error::msg("input larger than 2 GiB"))?;
        let address = match self.input {
            Some((address, capacity)) if capacity >= data.len() => address,
            _ => {
                let address = self.buffer.call(&mut self.store, len)?;
                let address =
                    usize::try_from(address).map_err(|_| wasmtime::Error::msg("negative buffer address"))?;
                self.input = Some((address, data.len()));
                address
            }
        };
        let memory = self.store.data().memory.expect("memory");
        memory
            .write(&mut self.store, address, data)
            .map_err(|_| wasmtime::Error::msg("the input buffer lies outside linear memory"))?;
        Ok(len)
    }

    /// The guest's status code: 0 is success, anything else a refusal with
    /// the message the guest set.
    fn status(&self, status: i32) -> Result<(), CallError> {
        if status == 0 {
            return Ok(());
        }
        let message = self.store.data().error.clone().unwrap_or_else(|| format!("status {status}"));
        Err(CallError::Refused(message))
    }

    pub(crate) fn abi_version(&mut self) -> Result<i64, CallError> {
        self.call(|this| this.abi_version.call(&mut this.store, ())).map(i64::from)
    }

    pub fn set_rules(&mut self, id: u32, json: &str) -> Result<(), CallError> {
        let status = self.call(|this| {
            let len = this.write_input(json.as_bytes())?;
            this.rules_set.call(&mut this.store, (id as i32, len))
        })?;
        self.status(status)
    }

    pub fn remove_rules(&mut self, id: u32) -> Result<(), CallError> {
        self.call(|this| this.rules_remove.call(&mut this.store, id as i32))
    }

    /// Brings this instance's rule sets in line with the registry's, for
    /// its module. A rule set the instance rejects is left out (its
    /// connections deny) and reported.
    pub(super) fn sync_rules(&mut self, generation: u64, registry: &RegistryState) -> Result<(), CallError> {
        let wanted = registry.rule_sets_for(&self.name);
        let stale: Vec<u32> = self.rule_sets.keys().filter(|id| !wanted.contains_key(*id)).copied().collect();
        for id in stale {
            self.remove_rules(id)?;
            self.rule_sets.remove(&id);
        }
        for (id, json) in wanted {
            if self.rule_sets.get(&id).is_some_and(|have| Arc::ptr_eq(have, &json)) {
                continue;
            }
            self.set_rules(id, &json)?;
            self.rule_sets.insert(id, json);
        }
        self.synced_generation = generation;
        Ok(())
    }

    /// True when the registry changed since the last sync.
    pub(super) fn needs_sync(&self, generation: u64) -> bool {
        self.synced_generation != generation
    }

    fn kind(&self, datagram: bool) -> Result<&KindFuncs, CallError> {
        let funcs = if datagram { &self.datagram } else { &self.stream };
        funcs.as_ref().ok_or(CallError::Unsupported(if datagram { "datagram" } else { "stream" }))
    }

    /// Opens a connection (or a datagram flow); returns its id.
    pub fn open(&mut self, datagram: bool, meta: &ConnectionMeta) -> Result<u32, CallError> {
        let open = self.kind(datagram)?.open.clone();
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let encoded = meta.encode();
        let status = self.call(|this| {
            let len = this.write_input(&encoded)?;
            open.call(&mut this.store, (id as i32, len))
        })?;
        self.status(status)?;
        Ok(id)
    }

    /// Hands data to the filter; returns its ops and records.
    pub fn data(
        &mut self,
        datagram: bool,
        id: u32,
        reply: bool,
        end: bool,
        data: &[u8],
    ) -> Result<CallOutput, CallError> {
        let flags = if reply { abi::flags::REPLY } else { 0 } | if end { abi::flags::END_STREAM } else { 0 };
        self.data_with_flags(datagram, id, flags, data)
    }

    /// Tells a stream filter its destination is unreachable.
    pub fn upstream_failed(&mut self, id: u32) -> Result<CallOutput, CallError> {
        let flags = abi::flags::REPLY | abi::flags::END_STREAM | abi::flags::UPSTREAM_FAILED;
        self.data_with_flags(false, id, flags, &[])
    }

    fn data_with_flags(
        &mut self,
        datagram: bool,
        id: u32,
        flags: i32,
        data: &[u8],
    ) -> Result<CallOutput, CallError> {
        let call = self.kind(datagram)?.data.clone();
        let code = self.call(|this| {
            let len = this.write_input(data)?;
            call.call(&mut this.store, (id as i32, flags, len))
        })?;
        if !datagram {
            self.status(code)?;
        }
        let state = self.store.data_mut();
        Ok(CallOutput {
            ops: std::mem::take(&mut state.ops),
            records: std::mem::take(&mut state.records),
            logs: std::mem::take(&mut state.logs),
            verdict: code,
        })
    }

    /// Closes a connection; returns the records the filter emitted.
    pub fn close(&mut self, datagram: bool, id: u32) -> Result<Vec<Vec<u8>>, CallError> {
        let close = self.kind(datagram)?.close.clone();
        self.call(|this| close.call(&mut this.store, id as i32))?;
        Ok(std::mem::take(&mut self.store.data_mut().records))
    }
}

fn classify(
    store: &Store<HostState>,
    err: wasmtime::Error,
    deadline: std::time::Duration,
    limit: usize,
) -> CallError {
    let state = store.data();
    if let Some(message) = &state.violation {
        return CallError::Violation(message.clone());
    }
    if state.memory_exceeded {
        return CallError::MemoryLimit(limit);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline(deadline),
        Some(trap) => CallError::Trap(trap.to_string()),
        None => CallError::Trap(format!("{err:#}")),
    }
}
