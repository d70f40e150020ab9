//! One worker thread's filter instances: created on demand, replaced after
//! a failure, with exponential backoff when failures repeat.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use porin_sdk::ConnectionMeta;

use super::instance::FilterInstance;
use super::registry::Admission;
use super::session::{DatagramSession, StreamSession};
use super::{FailMode, FilterError, FilterModule, FilterRegistry};

/// Failures further apart than this start the backoff over.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Slot {
    instance: Option<(Arc<FilterModule>, Rc<RefCell<FilterInstance>>)>,
    failures: u32,
    last_failure: Option<Instant>,
}

/// How a session of one kind opens on an instance.
type OpenSession<S> =
    fn(Arc<FilterRegistry>, Rc<RefCell<FilterInstance>>, &ConnectionMeta) -> Result<S, FilterError>;

/// The filter instances of one worker thread.
pub struct WorkerFilters {
    registry: Arc<FilterRegistry>,
    slots: HashMap<String, Slot>,
}

impl std::fmt::Debug for WorkerFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerFilters").field("filters", &self.slots.keys().collect::<Vec<_>>()).finish()
    }
}

impl WorkerFilters {
    pub fn new(registry: Arc<FilterRegistry>) -> WorkerFilters {
        WorkerFilters { registry, slots: HashMap::new() }
    }

    pub fn registry(&self) -> &Arc<FilterRegistry> {
        &self.registry
    }

    /// The instance a new connection of `rule_set` through `filter` uses:
    /// the current one, or a fresh one when the module changed or the
    /// current one failed; with the fail mode that applies if there is none.
    fn instance(
        &mut self,
        filter: &str,
        rule_set: u32,
    ) -> (FailMode, Result<Rc<RefCell<FilterInstance>>, FilterError>) {
        let admission = self.registry.read().admission(filter, rule_set);
        let module = match admission {
            Admission::Filter(module) => module,
            Admission::Unavailable { error, fail_mode } => {
                if matches!(error, FilterError::NotLoaded { .. }) {
                    // Unloaded: its last instance serves only the connections holding it.
                    self.slots.remove(filter);
                }
                return (fail_mode, Err(error));
            }
        };
        let fail_mode = module.limits.fail_mode;
        (fail_mode, self.instance_of(filter, module))
    }

    fn instance_of(
        &mut self,
        filter: &str,
        module: Arc<FilterModule>,
    ) -> Result<Rc<RefCell<FilterInstance>>, FilterError> {
        let config = self.registry.config().clone();
        let slot = self.slots.entry(filter.to_string()).or_default();
        if let Some((current, instance)) = &slot.instance {
            if Arc::ptr_eq(current, &module) && !instance.borrow().tainted {
                return Ok(instance.clone());
            }
            if instance.borrow().tainted {
                let now = Instant::now();
                if slot.last_failure.is_none_or(|t| now - t > FAILURE_MEMORY) {
                    slot.failures = 0;
                }
                slot.failures += 1;
                slot.last_failure = Some(now);
            }
        }
        slot.instance = None;
        if slot.failures > 1 {
            let backoff = config
                .rebuild_backoff
                .saturating_mul(1 << (slot.failures - 2).min(16))
                .min(config.max_rebuild_backoff);
            let since = slot.last_failure.map(|t| t.elapsed()).unwrap_or(backoff);
            if since < backoff {
                return Err(FilterError::Unavailable { name: filter.to_string(), retry_in: backoff - since });
            }
        }
        let instance = Rc::new(RefCell::new(module.instantiate()?));
        slot.instance = Some((module, instance.clone()));
        Ok(instance)
    }

    /// Opens a session with `open`; when the module fails (or is not
    /// loaded) and fails open, returns one that passes everything instead.
    fn open<S>(
        &mut self,
        filter: &str,
        meta: &ConnectionMeta,
        open: OpenSession<S>,
        failed_open: fn(Arc<FilterRegistry>, &str, &FilterError) -> S,
    ) -> Result<S, FilterError> {
        let (fail_mode, instance) = self.instance(filter, meta.rule_set);
        match instance.and_then(|instance| open(self.registry.clone(), instance, meta)) {
            Err(err) if fail_mode == FailMode::Open && err.is_module_failure() => {
                Ok(failed_open(self.registry.clone(), filter, &err))
            }
            opened => opened,
        }
    }

    /// Opens a connection through stream filter `filter`.
    pub fn open_stream(&mut self, filter: &str, meta: &ConnectionMeta) -> Result<StreamSession, FilterError> {
        self.open(filter, meta, StreamSession::open, StreamSession::failed_open)
    }

    /// Opens a datagram flow through filter `filter`.
    pub fn open_datagram(
        &mut self,
        filter: &str,
        meta: &ConnectionMeta,
    ) -> Result<DatagramSession, FilterError> {
        self.open(filter, meta, DatagramSession::open, DatagramSession::failed_open)
    }
}
