//! The shared side of the runtime: the engine with its epoch ticker,
//! compiled modules by name, and the L7 rule sets in force.
//!
//! A rule set is *active* when its module is loaded and accepted it, and
//! *unavailable* otherwise (the module is missing, failed to load, or
//! refused the rules). Connections of an unavailable rule set are refused,
//! or pass unfiltered when a module that is not loaded was declared
//! [`FailMode::Open`]; the rest of the policy is unaffected. Loading the
//! module later checks its pending rule sets, which become active.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use porin_sdk::RuleSetId;
use wasmtime::{Config, Engine, Linker, Module};

use super::instance::{HostState, define_imports};
use super::{FailMode, FilterError, FilterModule, ModuleSettings, RuntimeConfig};

/// How often the engine's epoch advances: the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Epoch ticks that cover `deadline`: one more than it spans, since the
/// call may start just before a tick.
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1
}

/// The Wasm engine, its linker and the compiled-module cache.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: RuntimeConfig,
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
        Runtime {
            engine,
            linker,
            config,
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

/// One module name: the version loaded, if any, and what went wrong.
#[derive(Debug, Default)]
struct ModuleEntry {
    loaded: Option<Arc<FilterModule>>,
    /// Why the last attempt to load (or fetch) it failed, until one succeeds.
    error: Option<String>,
    /// What its rule sets' connections do while no version is loaded.
    fail_mode: FailMode,
}

#[derive(Debug, Clone)]
struct RuleSetEntry {
    filter: String,
    json: Arc<str>,
    /// Why the loaded module refused it; it is unavailable meanwhile.
    refused: Option<String>,
}

/// What the registry holds, behind its lock.
#[derive(Debug, Default)]
pub(crate) struct RegistryState {
    modules: BTreeMap<String, ModuleEntry>,
    rule_sets: BTreeMap<u32, RuleSetEntry>,
}

/// Whether a new connection of a rule set can be filtered.
pub(crate) enum Admission {
    Filter(Arc<FilterModule>),
    /// It cannot: refuse it, or let it pass when `fail_mode` is open.
    Unavailable {
        error: FilterError,
        fail_mode: FailMode,
    },
}

impl RegistryState {
    /// The active rule sets of one filter, by id.
    pub(crate) fn rule_sets_for(&self, filter: &str) -> HashMap<u32, Arc<str>> {
        if self.modules.get(filter).is_none_or(|m| m.loaded.is_none()) {
            return HashMap::new();
        }
        self.rule_sets
            .iter()
            .filter(|(_, e)| e.filter == filter && e.refused.is_none())
            .map(|(id, e)| (*id, e.json.clone()))
            .collect()
    }

    /// How a new connection of `rule_set` through `filter` fares. A rule
    /// set the registry does not hold is left to the filter, which denies it.
    pub(crate) fn admission(&self, filter: &str, rule_set: u32) -> Admission {
        let entry = self.modules.get(filter);
        let Some(module) = entry.and_then(|m| m.loaded.clone()) else {
            let error = FilterError::NotLoaded {
                name: filter.to_string(),
                error: entry.and_then(|m| m.error.clone()),
            };
            return Admission::Unavailable {
                error,
                fail_mode: entry.map_or(FailMode::Closed, |m| m.fail_mode),
            };
        };
        match self.rule_sets.get(&rule_set).and_then(|r| r.refused.clone()) {
            // Rules the filter cannot enforce are a policy problem, not a
            // failure of the module: never failed open.
            Some(message) => Admission::Unavailable {
                error: FilterError::Rules { name: filter.to_string(), rule_set, message },
                fail_mode: FailMode::Closed,
            },
            None => Admission::Filter(module),
        }
    }
}

/// A rule set installed while its filter cannot enforce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSetUnavailable {
    pub rule_set: RuleSetId,
    pub filter: String,
    /// Why: the module is not loaded (and why not), or it refused the rules.
    pub reason: String,
    /// `Open`: its connections pass unfiltered; `Closed`: they are refused.
    pub fail_mode: FailMode,
}

impl std::fmt::Display for RuleSetUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fate = match self.fail_mode {
            FailMode::Closed => "its connections are refused",
            FailMode::Open => "its connections pass unfiltered (the module fails open)",
        };
        write!(
            f,
            "rule set {} of filter `{}` is unavailable, {fate}: {}",
            self.rule_set.0, self.filter, self.reason
        )
    }
}

/// A module name's state, for status reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleStatus {
    /// A version is loaded and serves new connections.
    pub loaded: bool,
    /// Hex SHA-256 of the loaded version's bytes.
    pub sha256: Option<String>,
    /// Why the last attempt to load (or fetch) it failed, until one succeeds.
    pub error: Option<String>,
}

/// Filter modules and rule sets, shared by all workers.
pub struct FilterRegistry {
    runtime: Arc<Runtime>,
    state: RwLock<RegistryState>,
    /// Held by every change, so a load checks the rule sets that are there
    /// when it commits, without holding `state` (which workers read) while
    /// the module runs.
    control: Mutex<()>,
    /// Bumped on every change; workers compare it on each call.
    generation: AtomicU64,
}

impl std::fmt::Debug for FilterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterRegistry").field("generation", &self.generation).finish()
    }
}

/// Per rule set id, the module's refusal (`None`: accepted).
type Refusals = Vec<(u32, Option<String>)>;

/// The message of a rule set check that failed.
fn refusal(err: FilterError) -> String {
    match err {
        FilterError::Rules { message, .. } => message,
        FilterError::Call { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl FilterRegistry {
    pub fn new(config: RuntimeConfig) -> FilterRegistry {
        FilterRegistry {
            runtime: Arc::new(Runtime::new(config)),
            state: RwLock::new(RegistryState::default()),
            control: Mutex::new(()),
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

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RegistryState> {
        self.state.write().expect("registry lock")
    }

    fn control(&self) -> MutexGuard<'_, ()> {
        self.control.lock().expect("control lock")
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Loads (or replaces) the module `name` with the default settings.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Arc<FilterModule>, FilterError> {
        self.load_with(name, bytes, &ModuleSettings::default())
    }

    /// Loads (or replaces) the module `name` with its own limits and fail
    /// mode. New connections use the new module; open connections keep the
    /// instance they started on. Its rule sets are checked against it:
    /// pending ones it accepts become active, ones it refuses stay
    /// unavailable with its message. A new version that refuses a rule set
    /// the loaded version enforces is not loaded (the old one stays). A
    /// failure is kept as the module's error until a load succeeds.
    pub fn load_with(
        &self,
        name: &str,
        bytes: &[u8],
        settings: &ModuleSettings,
    ) -> Result<Arc<FilterModule>, FilterError> {
        let _control = self.control();
        let checked = self.check_load(name, bytes, settings);
        let mut state = self.write();
        let entry = state.modules.entry(name.to_string()).or_default();
        entry.fail_mode = settings.fail_mode;
        let (module, refusals) = match checked {
            Ok(checked) => checked,
            Err(err) => {
                entry.error = Some(err.to_string());
                return Err(err);
            }
        };
        entry.loaded = Some(module.clone());
        entry.error = None;
        for (id, refused) in refusals {
            if let Some(rule_set) = state.rule_sets.get_mut(&id) {
                rule_set.refused = refused;
            }
        }
        drop(state);
        self.changed();
        Ok(module)
    }

    /// Compiles a module and asks it about the rule sets of its name.
    fn check_load(
        &self,
        name: &str,
        bytes: &[u8],
        settings: &ModuleSettings,
    ) -> Result<(Arc<FilterModule>, Refusals), FilterError> {
        let module = Arc::new(FilterModule::load(&self.runtime, name, bytes, settings)?);
        let (replacing, rule_sets): (bool, Vec<(u32, Arc<str>, bool)>) = {
            let state = self.read();
            let replacing = state.modules.get(name).is_some_and(|m| m.loaded.is_some());
            let sets = state.rule_sets.iter().filter(|(_, e)| e.filter == name);
            (replacing, sets.map(|(id, e)| (*id, e.json.clone(), e.refused.is_none())).collect())
        };
        let mut refusals = Vec::new();
        for (id, json, active) in rule_sets {
            match module.check_rules(id, &json) {
                Ok(()) => refusals.push((id, None)),
                Err(err) if replacing && active => {
                    let message = format!(
                        "the new version refuses rule set {id}, which the loaded version enforces ({}); the loaded version stays",
                        refusal(err)
                    );
                    return Err(FilterError::Invalid { name: name.to_string(), message });
                }
                Err(err) => refusals.push((id, Some(refusal(err)))),
            }
        }
        Ok((module, refusals))
    }

    /// Records why the module `name` could not be loaded (say, its bytes
    /// could not be fetched), for flows and [`FilterRegistry::module_status`];
    /// `settings` are those it was declared with. A loaded version stays in
    /// force; a successful load clears the error.
    pub fn set_module_error(&self, name: &str, settings: &ModuleSettings, message: impl Into<String>) {
        let _control = self.control();
        let mut state = self.write();
        let entry = state.modules.entry(name.to_string()).or_default();
        entry.error = Some(message.into());
        entry.fail_mode = settings.fail_mode;
    }

    /// Forgets the module `name` (its FilterModule is gone): its rule sets
    /// become unavailable and refuse new connections; open connections deny
    /// from their next request. Returns whether a version was loaded.
    pub fn unload(&self, name: &str) -> bool {
        let _control = self.control();
        let removed = self.write().modules.remove(name);
        self.changed();
        removed.is_some_and(|m| m.loaded.is_some())
    }

    /// The state of the module `name`.
    pub fn module_status(&self, name: &str) -> ModuleStatus {
        let state = self.read();
        let Some(entry) = state.modules.get(name) else { return ModuleStatus::default() };
        ModuleStatus {
            loaded: entry.loaded.is_some(),
            sha256: entry.loaded.as_ref().map(|m| m.sha256.clone()),
            error: entry.error.clone(),
        }
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
        self.read().modules.get(name).and_then(|m| m.loaded.clone())
    }

    pub fn modules(&self) -> Vec<Arc<FilterModule>> {
        self.read().modules.values().filter_map(|m| m.loaded.clone()).collect()
    }

    /// Adds or replaces a rule set after the filter accepts it; the
    /// replacement applies to the next request on open connections. On
    /// error (the filter is not loaded or refuses it) nothing changes.
    pub fn set_rule_set(&self, id: RuleSetId, filter: &str, json: &str) -> Result<(), FilterError> {
        let _control = self.control();
        let Some(module) = self.module(filter) else {
            let error = self.read().modules.get(filter).and_then(|m| m.error.clone());
            return Err(FilterError::NotLoaded { name: filter.to_string(), error });
        };
        module.check_rules(id.0, json)?;
        let entry = RuleSetEntry { filter: filter.to_string(), json: Arc::from(json), refused: None };
        self.write().rule_sets.insert(id.0, entry);
        self.changed();
        Ok(())
    }

    /// Adds or replaces a rule set whatever its filter says, so the rest of
    /// a policy applies when one of its filters is missing or refuses its
    /// rules. Returns why it is unavailable, if it is: its connections are
    /// then refused (or pass, see [`RuleSetUnavailable::fail_mode`]) until
    /// a module that accepts it is loaded.
    pub fn install_rule_set(&self, id: RuleSetId, filter: &str, json: &str) -> Option<RuleSetUnavailable> {
        let _control = self.control();
        let unchanged =
            self.read().rule_sets.get(&id.0).is_some_and(|e| e.filter == filter && *e.json == *json);
        if !unchanged {
            // A load re-checks rule sets, so a held one is current for the loaded module.
            let refused = self.module(filter).and_then(|m| m.check_rules(id.0, json).err().map(refusal));
            let entry = RuleSetEntry { filter: filter.to_string(), json: Arc::from(json), refused };
            self.write().rule_sets.insert(id.0, entry);
            self.changed();
        }
        match self.read().admission(filter, id.0) {
            Admission::Filter(_) => None,
            Admission::Unavailable { error, fail_mode } => Some(RuleSetUnavailable {
                rule_set: id,
                filter: filter.to_string(),
                reason: error.to_string(),
                fail_mode,
            }),
        }
    }

    /// Removes a rule set; connections that use it deny from their next request.
    pub fn remove_rule_set(&self, id: RuleSetId) {
        let _control = self.control();
        self.write().rule_sets.remove(&id.0);
        self.changed();
    }
}
