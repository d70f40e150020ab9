//! The shared side of the runtime: the engine with its epoch ticker,
//! compiled modules by name, and the L7 rule sets in force.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use porin_sdk::RuleSetId;
use wasmtime::{Config, Engine, Linker, Module};

use super::instance::{HostState, define_imports};
use super::{FilterError, FilterModule, RuntimeConfig};

/// How often the engine's epoch advances: the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The Wasm engine, its linker and the compiled-module cache.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: RuntimeConfig,
    pub(crate) deadline_ticks: u64,
    pub(crate) started: Instant,
    compiled: Mutex<HashMap<[u8; 32], Module>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Runtime {
    fn new(config: RuntimeConfig) -> Runtime {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        let engine = Engine::new(&wasm).expect("the engine configuration is valid");
        let mut linker = Linker::new(&engine);
        define_imports(&mut linker).expect("the ABI imports are defined once");
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("porin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        let deadline_ticks = config.call_deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        Runtime {
            engine,
            linker,
            config,
            deadline_ticks,
            started: Instant::now(),
            compiled: Mutex::new(HashMap::new()),
            stop_ticker,
        }
    }

    /// Compiles a module, or returns the cached compilation of the same bytes.
    pub(crate) fn compile(&self, digest: [u8; 32], bytes: &[u8]) -> wasmtime::Result<Module> {
        if let Some(module) = self.compiled.lock().expect("cache lock").get(&digest) {
            return Ok(module.clone());
        }
        let module = Module::new(&self.engine, bytes)?;
        self.compiled.lock().expect("cache lock").insert(digest, module.clone());
        Ok(module)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
struct RuleSetEntry {
    filter: String,
    json: Arc<str>,
}

/// What the registry holds, behind its lock.
#[derive(Debug, Default)]
pub(crate) struct RegistryState {
    modules: BTreeMap<String, Arc<FilterModule>>,
    rule_sets: BTreeMap<u32, RuleSetEntry>,
}

impl RegistryState {
    /// The rule sets of one filter, by id.
    pub(crate) fn rule_sets_for(&self, filter: &str) -> HashMap<u32, Arc<str>> {
        self.rule_sets
            .iter()
            .filter(|(_, e)| e.filter == filter)
            .map(|(id, e)| (*id, e.json.clone()))
            .collect()
    }
}

/// Filter modules and rule sets, shared by all workers.
pub struct FilterRegistry {
    runtime: Arc<Runtime>,
    state: RwLock<RegistryState>,
    /// Bumped on every change; workers compare it on each call.
    generation: AtomicU64,
}

impl std::fmt::Debug for FilterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterRegistry").field("generation", &self.generation).finish()
    }
}

impl FilterRegistry {
    pub fn new(config: RuntimeConfig) -> FilterRegistry {
        FilterRegistry {
            runtime: Arc::new(Runtime::new(config)),
            state: RwLock::new(RegistryState::default()),
            generation: AtomicU64::new(1),
        }
    }

    /// A registry with the built-in filters loaded.
    pub fn with_builtins(config: RuntimeConfig) -> Result<FilterRegistry, FilterError> {
        let registry = FilterRegistry::new(config);
        for (name, bytes) in super::BUILTIN_FILTERS {
            registry.load(name, bytes)?;
        }
        Ok(registry)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.runtime.config
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, RegistryState> {
        self.state.read().expect("registry lock")
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Loads (or replaces) the module `name`. New connections use the new
    /// module; open connections keep the instance they started on. The
    /// module's rule sets are checked against it; on any error the old
    /// module stays.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Arc<FilterModule>, FilterError> {
        let module = Arc::new(FilterModule::load(&self.runtime, name, bytes)?);
        let rule_sets = self.read().rule_sets_for(name);
        for (id, json) in &rule_sets {
            module.check_rules(*id, json)?;
        }
        self.state.write().expect("registry lock").modules.insert(name.to_string(), module.clone());
        self.changed();
        Ok(module)
    }

    /// Loads every `*.wasm` file in `dir`, named after the file.
    pub fn load_dir(&self, dir: &Path) -> Vec<Result<Arc<FilterModule>, FilterError>> {
        let io = |source| FilterError::Io { path: dir.display().to_string(), source };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => return vec![Err(io(err))],
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.retain(|p| p.extension().is_some_and(|e| e == "wasm"));
        paths.sort();
        paths.iter().map(|path| self.load_file(path, None)).collect()
    }

    /// Loads one module file, named `name` or after the file.
    pub fn load_file(&self, path: &Path, name: Option<&str>) -> Result<Arc<FilterModule>, FilterError> {
        let bytes = std::fs::read(path)
            .map_err(|source| FilterError::Io { path: path.display().to_string(), source })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        self.load(name.unwrap_or(&stem), &bytes)
    }

    pub fn module(&self, name: &str) -> Option<Arc<FilterModule>> {
        self.read().modules.get(name).cloned()
    }

    pub fn modules(&self) -> Vec<Arc<FilterModule>> {
        self.read().modules.values().cloned().collect()
    }

    /// Adds or replaces a rule set after the filter accepts it; the
    /// replacement applies to the next request on open connections. On
    /// error the previous rule set stays in force.
    pub fn set_rule_set(&self, id: RuleSetId, filter: &str, json: &str) -> Result<(), FilterError> {
        let module = self.module(filter).ok_or_else(|| FilterError::Missing(filter.to_string()))?;
        module.check_rules(id.0, json)?;
        let entry = RuleSetEntry { filter: filter.to_string(), json: Arc::from(json) };
        self.state.write().expect("registry lock").rule_sets.insert(id.0, entry);
        self.changed();
        Ok(())
    }

    /// Removes a rule set; connections that use it deny from their next request.
    pub fn remove_rule_set(&self, id: RuleSetId) {
        self.state.write().expect("registry lock").rule_sets.remove(&id.0);
        self.changed();
    }
}
