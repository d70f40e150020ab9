//! The Wasm filter runtime: loads filter modules, runs one sandboxed
//! instance per module per worker thread, and drives connections through
//! them with the ABI v1 semantics (`porin_sdk::driver`).
//!
//! * [`FilterRegistry`] (shared): compiled modules by name, each with its
//!   own [`ModuleSettings`], and the L7 rule sets the policy engine hands
//!   out. Rule sets are validated by the module itself before they are
//!   used; one whose module is missing, failed to load or refuses it is
//!   kept as unavailable, and its connections are refused.
//! * [`WorkerFilters`] (one per thread): instances, rebuilt after a failure
//!   with backoff. No lock is taken on the data path; instances notice rule
//!   set changes through an atomic generation counter.
//! * [`StreamSession`] / [`DatagramSession`]: one connection or flow.
//!
//! Sandbox: a memory cap per instance and a CPU deadline per call (epoch
//! interruption), per module. A trap, overrun or malformed op fails closed
//! by default: that connection is closed with an ERROR record; the instance
//! is replaced for new connections and nothing else is affected. A module
//! loaded with [`FailMode::Open`] lets that connection carry on unfiltered
//! instead, with a record saying so.

mod builtin;
mod instance;
mod module;
mod registry;
mod session;
mod worker;

use std::time::Duration;

pub use builtin::BUILTIN_FILTERS;
pub use instance::CallError;
pub use module::{FilterModule, Kinds, ModuleLimits};
pub use registry::{FilterRegistry, ModuleStatus, RuleSetUnavailable};
pub use session::{DatagramSession, DatagramVerdict, StreamSession, TraceEvent};
pub use worker::WorkerFilters;

/// Limits and timings of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Linear memory cap per instance, in bytes.
    pub memory_limit: usize,
    /// CPU time one call into a filter may take.
    pub call_deadline: Duration,
    /// Bytes a filter may ask the host to buffer per direction (MORE).
    pub max_buffer: usize,
    /// First wait before rebuilding an instance that failed more than once.
    pub rebuild_backoff: Duration,
    /// Longest wait between rebuilds.
    pub max_rebuild_backoff: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            memory_limit: 64 << 20,
            call_deadline: Duration::from_millis(50),
            max_buffer: 1 << 20,
            rebuild_backoff: Duration::from_millis(100),
            max_rebuild_backoff: Duration::from_secs(30),
        }
    }
}

/// What happens to a connection when its filter fails (a trap, the CPU
/// deadline, the memory limit, an ABI violation) or its module is not
/// loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailMode {
    /// The connection is closed (the datagram dropped) with an ERROR record.
    #[default]
    Closed,
    /// The connection carries on unfiltered for the rest of its life (a
    /// datagram flow: its datagrams pass), with a record saying so. What
    /// the filter denied before it failed stays denied.
    Open,
}

/// Settings of one module, given when it is loaded; `None` takes the
/// [`RuntimeConfig`] default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSettings {
    /// Linear memory cap per instance, in bytes.
    pub memory_limit: Option<usize>,
    /// CPU time one call may take; at most [`MAX_CALL_DEADLINE`].
    pub call_deadline: Option<Duration>,
    pub fail_mode: FailMode,
}

/// The longest call deadline a module may have: a call holds its worker
/// thread, and every connection the worker serves, for that long.
pub const MAX_CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Why a filter could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter `{name}`: {message}")]
    Invalid { name: String, message: String },
    #[error("filter `{name}` speaks ABI version {found}; this porin speaks version {expected}")]
    AbiVersion { name: String, found: i64, expected: u32 },
    #[error(
        "filter module `{name}` is not loaded{}",
        error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    NotLoaded {
        name: String,
        /// Why the last attempt to load it failed, if one did.
        error: Option<String>,
    },
    #[error("filter `{name}` is unavailable after repeated failures; retrying in {retry_in:?}")]
    Unavailable { name: String, retry_in: Duration },
    #[error("filter `{name}` rejected rule set {rule_set}: {message}")]
    Rules { name: String, rule_set: u32, message: String },
    #[error("filter `{name}`: {source}")]
    Call {
        name: String,
        #[source]
        source: CallError,
    },
    #[error("cannot read filter {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl FilterError {
    /// True when the module failed rather than decided: it is not loaded,
    /// is backing off after failures, or a call failed. Only these may
    /// fail open; a refusal or a rejected rule set never does.
    pub(crate) fn is_module_failure(&self) -> bool {
        match self {
            FilterError::NotLoaded { .. } | FilterError::Unavailable { .. } => true,
            FilterError::Call { source, .. } => source.is_failure(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
