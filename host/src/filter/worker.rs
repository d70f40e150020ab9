//! One worker thread's filter instances: created on demand, replaced after
//! a failure, with exponential backoff when failures repeat.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use porin_sdk::ConnectionMeta;

use super::instance::FilterInstance;
use super::session::{DatagramSession, StreamSession};
use super::{FilterError, FilterModule, FilterRegistry};

/// Failures further apart than this start the backoff over.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Slot {
    instance: Option<(Arc<FilterModule>, Rc<RefCell<FilterInstance>>)>,
    failures: u32,
    last_failure: Option<Instant>,
}

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

    /// The instance new connections of `filter` use: the current one, or a
    /// fresh one when the module changed or the current one failed.
    fn instance(&mut self, filter: &str) -> Result<Rc<RefCell<FilterInstance>>, FilterError> {
        let module = self.registry.module(filter).ok_or_else(|| FilterError::Missing(filter.to_string()))?;
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

    /// Opens a connection through stream filter `filter`.
    pub fn open_stream(&mut self, filter: &str, meta: &ConnectionMeta) -> Result<StreamSession, FilterError> {
        let instance = self.instance(filter)?;
        StreamSession::open(self.registry.clone(), instance, meta)
    }

    /// Opens a datagram flow through filter `filter`.
    pub fn open_datagram(
        &mut self,
        filter: &str,
        meta: &ConnectionMeta,
    ) -> Result<DatagramSession, FilterError> {
        let instance = self.instance(filter)?;
        DatagramSession::open(self.registry.clone(), instance, meta)
    }
}
