//! Loading a module: compile (cached by content hash), check its exports,
//! imports and ABI version, and pre-link it for fast instantiation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use porin_sdk::abi::{self, exports, imports};
use sha2::{Digest, Sha256};
use wasmtime::{ExternType, InstancePre, ValType};

use super::instance::{FilterInstance, HostState};
use super::registry::{Runtime, deadline_ticks};
use super::{FailMode, FilterError, MAX_CALL_DEADLINE, ModuleSettings};

/// Which kinds of filter a module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    pub stream: bool,
    pub datagram: bool,
}

/// A module's [`ModuleSettings`] with the runtime's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleLimits {
    pub memory_limit: usize,
    pub call_deadline: Duration,
    pub fail_mode: FailMode,
}

/// A compiled, checked filter module.
pub struct FilterModule {
    pub name: String,
    /// Hex SHA-256 of the module bytes.
    pub sha256: String,
    pub kinds: Kinds,
    pub limits: ModuleLimits,
    /// `limits.call_deadline` in epoch ticks.
    pub(super) deadline_ticks: u64,
    pub(super) pre: InstancePre<HostState>,
    pub(super) runtime: Arc<Runtime>,
    /// An instance for checking rule sets (control plane only).
    validator: Mutex<Option<FilterInstance>>,
}

impl std::fmt::Debug for FilterModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterModule").field("name", &self.name).field("sha256", &self.sha256).finish()
    }
}

fn invalid(name: &str, message: impl Into<String>) -> FilterError {
    FilterError::Invalid { name: name.to_string(), message: message.into() }
}

/// Expected signatures, as (params, results).
fn signature(name: &str) -> Option<(&'static [ValType], &'static [ValType])> {
    use ValType::{I32, I64};
    Some(match name {
        exports::ABI_VERSION => (&[], &[I32]),
        exports::BUFFER => (&[I32], &[I32]),
        exports::RULES_SET | exports::STREAM_OPEN | exports::DATAGRAM_OPEN => (&[I32, I32], &[I32]),
        exports::RULES_REMOVE | exports::STREAM_CLOSE | exports::DATAGRAM_CLOSE => (&[I32], &[]),
        exports::STREAM_DATA | exports::DATAGRAM => (&[I32, I32, I32], &[I32]),
        imports::OP => (&[I32, I64, I32, I32], &[]),
        imports::RECORD | imports::ERROR => (&[I32, I32], &[]),
        imports::LOG => (&[I32, I32, I32], &[]),
        imports::NOW_NS => (&[], &[I64]),
        _ => return None,
    })
}

fn matches_signature(ty: &wasmtime::FuncType, name: &str) -> bool {
    let Some((params, results)) = signature(name) else { return false };
    let same = |a: &mut dyn Iterator<Item = ValType>, b: &[ValType]| {
        let a: Vec<ValType> = a.collect();
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

impl FilterModule {
    pub(super) fn load(
        runtime: &Arc<Runtime>,
        name: &str,
        bytes: &[u8],
        settings: &ModuleSettings,
    ) -> Result<FilterModule, FilterError> {
        let limits = ModuleLimits {
            memory_limit: settings.memory_limit.unwrap_or(runtime.config.memory_limit),
            call_deadline: settings.call_deadline.unwrap_or(runtime.config.call_deadline),
            fail_mode: settings.fail_mode,
        };
        if limits.call_deadline.is_zero() {
            return Err(invalid(name, "the call deadline must be above zero"));
        }
        if limits.call_deadline > MAX_CALL_DEADLINE {
            let message = format!(
                "the call deadline {:?} is above the maximum of {MAX_CALL_DEADLINE:?}",
                limits.call_deadline
            );
            return Err(invalid(name, message));
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let module = runtime
            .compile(digest, bytes)
            .map_err(|err| invalid(name, format!("not a valid module: {err}")))?;

        for import in module.imports() {
            let known = import.module() == abi::IMPORT_MODULE
                && matches!(import.ty(), ExternType::Func(ref f) if matches_signature(f, import.name()));
            if !known {
                let message = format!(
                    "imports `{}.{}`, which the ABI does not provide (or with the wrong signature)",
                    import.module(),
                    import.name()
                );
                return Err(invalid(name, message));
            }
        }
        let export_ok = |export: &str| match module.get_export(export) {
            Some(ExternType::Func(f)) => matches_signature(&f, export),
            _ => false,
        };
        let Some(ExternType::Memory(memory)) = module.get_export(exports::MEMORY) else {
            return Err(invalid(name, "does not export its memory as `memory`"));
        };
        // Caught here, not as a trap at the first connection.
        let initial = memory.minimum().saturating_mul(memory.page_size());
        if initial > limits.memory_limit as u64 {
            let message = format!(
                "declares {initial} bytes of initial memory, more than its memory limit of {} bytes; \
                 raise the limit or shrink the module's initial memory",
                limits.memory_limit
            );
            return Err(invalid(name, message));
        }
        for required in [exports::ABI_VERSION, exports::BUFFER, exports::RULES_SET, exports::RULES_REMOVE] {
            if !export_ok(required) {
                return Err(invalid(name, format!("does not export `{required}` with the ABI's signature")));
            }
        }
        let kind = |names: [&str; 3]| -> Result<bool, FilterError> {
            let present: Vec<bool> = names.iter().map(|n| export_ok(n)).collect();
            match present.iter().filter(|p| **p).count() {
                0 => Ok(false),
                3 => Ok(true),
                _ => Err(invalid(name, format!("exports only some of {}", names.join(", ")))),
            }
        };
        let kinds = Kinds {
            stream: kind([exports::STREAM_OPEN, exports::STREAM_DATA, exports::STREAM_CLOSE])?,
            datagram: kind([exports::DATAGRAM_OPEN, exports::DATAGRAM, exports::DATAGRAM_CLOSE])?,
        };
        if !kinds.stream && !kinds.datagram {
            return Err(invalid(name, "exports neither the stream nor the datagram functions"));
        }
        let pre = runtime
            .linker
            .instantiate_pre(&module)
            .map_err(|err| invalid(name, format!("cannot link: {err}")))?;
        let loaded = FilterModule {
            name: name.to_string(),
            sha256,
            kinds,
            limits,
            deadline_ticks: deadline_ticks(limits.call_deadline),
            pre,
            runtime: runtime.clone(),
            validator: Mutex::new(None),
        };
        let mut validator = loaded.instantiate()?;
        let version =
            validator.abi_version().map_err(|source| FilterError::Call { name: name.into(), source })?;
        if version != i64::from(abi::ABI_VERSION) {
            return Err(FilterError::AbiVersion {
                name: name.into(),
                found: version,
                expected: abi::ABI_VERSION,
            });
        }
        *loaded.validator.lock().expect("validator lock") = Some(validator);
        Ok(loaded)
    }

    /// A fresh instance.
    pub fn instantiate(&self) -> Result<FilterInstance, FilterError> {
        FilterInstance::new(self).map_err(|source| FilterError::Call { name: self.name.clone(), source })
    }

    /// Asks the module whether it accepts a rule set.
    pub fn check_rules(&self, rule_set: u32, json: &str) -> Result<(), FilterError> {
        let mut slot = self.validator.lock().expect("validator lock");
        if slot.as_ref().is_none_or(|v| v.tainted) {
            *slot = Some(self.instantiate()?);
        }
        let validator = slot.as_mut().expect("validator present");
        let result = validator.set_rules(rule_set, json);
        validator.remove_rules(rule_set).ok();
        result.map_err(|source| match source {
            super::CallError::Refused(message) => {
                FilterError::Rules { name: self.name.clone(), rule_set, message }
            }
            source => FilterError::Call { name: self.name.clone(), source },
        })
    }
}
