//! Every raw import of the host, each behind a safe wrapper. In native
//! builds (unit tests, the test harness) the same wrappers work without a
//! host: logs are kept in memory and time comes from the OS.
#![allow(unsafe_code, reason = "the one place where the SDK talks to the host through raw Wasm imports")]

use crate::filter::Level;

fn level_code(level: Level) -> i32 {
    match level {
        Level::Error => crate::abi::log::ERROR,
        Level::Warn => crate::abi::log::WARN,
        Level::Info => crate::abi::log::INFO,
        Level::Debug => crate::abi::log::DEBUG,
    }
}

#[cfg(target_arch = "wasm32")]
mod raw {
    #[link(wasm_import_module = "porin")]
    unsafe extern "C" {
        pub(super) fn op(op: i32, arg: i64, ptr: *const u8, len: usize);
        pub(super) fn record(ptr: *const u8, len: usize);
        pub(super) fn log(level: i32, ptr: *const u8, len: usize);
        pub(super) fn now_ns() -> i64;
        pub(super) fn error(ptr: *const u8, len: usize);
    }
}

/// Writes a log line through the host.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` during the call only.
    unsafe {
        raw::log(level_code(level), message.as_ptr(), message.len())
    };
    #[cfg(not(target_arch = "wasm32"))]
    native::LOGS.with(|logs| logs.borrow_mut().push((level_code(level), message.to_string())));
}

/// Monotonic time in nanoseconds, for latencies.
pub fn now_ns() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: no arguments; the host returns a number.
    return unsafe { raw::now_ns() } as u64;
    #[cfg(not(target_arch = "wasm32"))]
    return native::START.elapsed().as_nanos() as u64;
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::RefCell;
    use std::sync::LazyLock;
    use std::time::Instant;

    pub(crate) static START: LazyLock<Instant> = LazyLock::new(Instant::now);

    thread_local! {
        pub(crate) static LOGS: RefCell<Vec<(i32, String)>> = const { RefCell::new(Vec::new()) };
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod wasm {
    use std::cell::UnsafeCell;

    use super::raw;
    use crate::abi;
    use crate::driver::Op;
    use crate::filter::Output;

    /// Hands a call's ops and records to the host.
    pub(crate) fn emit(out: &Output) {
        for op in &out.ops {
            // SAFETY: the host copies the bytes during the call.
            unsafe {
                match op {
                    Op::More(n) => raw::op(abi::op::MORE, *n as i64, std::ptr::null(), 0),
                    Op::Pass(n) => raw::op(abi::op::PASS, *n as i64, std::ptr::null(), 0),
                    Op::Drop(n) => raw::op(abi::op::DROP, *n as i64, std::ptr::null(), 0),
                    Op::Inject { reply, data } => {
                        raw::op(abi::op::INJECT, *reply as i64, data.as_ptr(), data.len())
                    }
                    Op::Error { code, reason } => {
                        raw::op(abi::op::ERROR, i64::from(*code), reason.as_ptr(), reason.len())
                    }
                }
            }
        }
        for record in &out.records {
            // SAFETY: as above.
            unsafe { raw::record(record.as_ptr(), record.len()) };
        }
    }

    /// Tells the host why the current call fails.
    pub(crate) fn set_error(message: &str) {
        // SAFETY: as above.
        unsafe { raw::error(message.as_ptr(), message.len()) };
    }

    /// The input buffer the host writes into. Wasm modules of this ABI are
    /// single-threaded, and the host never asks for the buffer while a call
    /// is running, so the buffer is never aliased mutably.
    struct Input(UnsafeCell<Vec<u8>>);
    // SAFETY: wasm32-unknown-unknown has one thread.
    unsafe impl Sync for Input {}
    static INPUT: Input = Input(UnsafeCell::new(Vec::new()));

    /// Grows the input buffer to at least `len` bytes and returns its
    /// address, which stays put until a larger size is asked for.
    pub(crate) fn buffer(len: usize) -> *mut u8 {
        // SAFETY: see `Input`.
        let buffer = unsafe { &mut *INPUT.0.get() };
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        buffer.as_mut_ptr()
    }

    /// The first `len` bytes the host wrote.
    pub(crate) fn input(len: usize) -> &'static [u8] {
        // SAFETY: see `Input`; the slice is used within the current call.
        let buffer = unsafe { &*INPUT.0.get() };
        &buffer[..len.min(buffer.len())]
    }
}
