//! `FilterModule` objects (`porin.dev/v1alpha1`): which filter modules the
//! node loads, from a ConfigMap's `binaryData` in the agent's namespace or
//! from a URL pinned by its sha256, with the module's limits and fail mode.
//!
//! A module that cannot be fetched or loaded is recorded in the registry
//! with the reason, so policies naming it deny with that reason in their
//! flows; a version already loaded stays in force.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Empty, Limited};
use kube::api::DynamicObject;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::filter::{BUILTIN_FILTERS, FailMode, FilterRegistry, MAX_CALL_DEADLINE, ModuleSettings};

/// The largest module a URL may serve.
const MAX_DOWNLOAD: usize = 64 << 20;
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest memory limit a module may ask for.
const MAX_MEMORY: u64 = 1 << 30;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    filter_name: Option<String>,
    source: Source,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    fail_mode: FailModeName,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Source {
    config_map: Option<ConfigMapKey>,
    url: Option<String>,
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigMapKey {
    name: String,
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    memory: Option<String>,
    cpu: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
enum FailModeName {
    #[default]
    Closed,
    Open,
}

/// What a node says about one FilterModule in its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeStatus {
    pub(crate) ready: bool,
    pub(crate) sha256: String,
    pub(crate) message: String,
}

/// A module's bytes fetched from a URL (or why not).
#[derive(Debug, Clone)]
enum Download {
    Pending,
    Done(Result<Arc<[u8]>, String>),
}

/// Keeps the registry's modules in step with the FilterModule objects.
#[derive(Debug)]
pub(crate) struct ModuleLoader {
    namespace: String,
    /// Per filter name: the sha256 and settings of the version loaded.
    loaded: HashMap<String, ([u8; 32], ModuleSettings)>,
    /// Per FilterModule name: the status last reported.
    reported: HashMap<String, NodeStatus>,
    downloads: Arc<Mutex<HashMap<(String, String), Download>>>,
    /// Notified when a download ends, so that the agent syncs again.
    changes: Arc<Notify>,
}

impl ModuleLoader {
    pub(crate) fn new(namespace: String, changes: Arc<Notify>) -> ModuleLoader {
        ModuleLoader {
            namespace,
            loaded: HashMap::new(),
            reported: HashMap::new(),
            downloads: Arc::default(),
            changes,
        }
    }

    /// Loads new and changed modules, unloads removed ones, and returns the
    /// statuses that changed (by FilterModule name).
    pub(crate) fn sync(
        &mut self,
        modules: &[Arc<DynamicObject>],
        config_maps: &[Arc<DynamicObject>],
        registry: &FilterRegistry,
    ) -> Vec<(String, NodeStatus)> {
        let mut modules: Vec<&DynamicObject> = modules.iter().map(AsRef::as_ref).collect();
        modules.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut declared: HashMap<String, String> = HashMap::new();
        let mut changed = Vec::new();
        let mut seen = HashSet::new();
        for object in modules {
            let object_name = object.metadata.name.clone().unwrap_or_default();
            let status = self.sync_one(object, &object_name, config_maps, registry, &mut declared);
            if self.reported.get(&object_name) != Some(&status) {
                self.reported.insert(object_name.clone(), status.clone());
                changed.push((object_name.clone(), status));
            }
            seen.insert(object_name);
        }
        self.reported.retain(|name, _| seen.contains(name));
        let gone: Vec<String> =
            self.loaded.keys().filter(|name| !declared.contains_key(*name)).cloned().collect();
        for name in gone {
            self.loaded.remove(&name);
            registry.unload(&name);
            info!("filter {name} unloaded: its FilterModule is gone");
        }
        changed
    }

    fn sync_one(
        &mut self,
        object: &DynamicObject,
        object_name: &str,
        config_maps: &[Arc<DynamicObject>],
        registry: &FilterRegistry,
        declared: &mut HashMap<String, String>,
    ) -> NodeStatus {
        let failed = |message: String| NodeStatus { ready: false, sha256: String::new(), message };
        let spec = match object.data.get("spec").map(|spec| serde_json::from_value::<Spec>(spec.clone())) {
            Some(Ok(spec)) => spec,
            Some(Err(err)) => return failed(format!("invalid spec: {err}")),
            None => return failed("invalid spec: missing".into()),
        };
        let name = spec.filter_name.clone().unwrap_or_else(|| object_name.to_string());
        if BUILTIN_FILTERS.iter().any(|(builtin, _)| *builtin == name) {
            return failed(format!("filterName `{name}` is a built-in filter"));
        }
        if let Some(other) = declared.get(&name) {
            return failed(format!("filter `{name}` is already declared by FilterModule {other}"));
        }
        declared.insert(name.clone(), object_name.to_string());
        let result = settings_of(&spec).and_then(|settings| {
            let bytes = self.bytes_of(&spec.source, config_maps)?;
            Ok((settings, bytes))
        });
        let (settings, bytes) = match result {
            Ok(found) => found,
            Err(message) => {
                let settings = settings_of(&spec).unwrap_or_default();
                registry.set_module_error(&name, &settings, message.clone());
                return failed(message);
            }
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let sha256 = hex(&digest);
        if let Some(expected) = &spec.source.sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            let message =
                format!("sha256 mismatch: the module's bytes hash to {sha256}, the spec says {expected}");
            registry.set_module_error(&name, &settings, message.clone());
            return failed(message);
        }
        if self.loaded.get(&name) == Some(&(digest, settings.clone())) {
            return NodeStatus { ready: true, sha256, message: "loaded".into() };
        }
        match registry.load_with(&name, &bytes, &settings) {
            Ok(_) => {
                info!("filter {name} loaded from FilterModule {object_name} (sha256 {sha256})");
                self.loaded.insert(name, (digest, settings));
                NodeStatus { ready: true, sha256, message: "loaded".into() }
            }
            Err(err) => {
                warn!("filter {name} from FilterModule {object_name} not loaded: {err}");
                failed(err.to_string())
            }
        }
    }

    /// The module's bytes: from the ConfigMap, or the URL's download (which
    /// starts here the first time it is asked for).
    fn bytes_of(&self, source: &Source, config_maps: &[Arc<DynamicObject>]) -> Result<Arc<[u8]>, String> {
        match (&source.config_map, &source.url) {
            (Some(key), None) => config_map_bytes(key, &self.namespace, config_maps),
            (None, Some(url)) => {
                let Some(sha256) = &source.sha256 else {
                    return Err("a module from a URL needs `source.sha256`".into());
                };
                let key = (url.clone(), sha256.to_ascii_lowercase());
                let mut downloads = self.downloads.lock().expect("downloads lock");
                match downloads.get(&key) {
                    Some(Download::Done(result)) => result.clone(),
                    Some(Download::Pending) => Err(format!("downloading {url}")),
                    None => {
                        downloads.insert(key.clone(), Download::Pending);
                        let (downloads, changes) = (self.downloads.clone(), self.changes.clone());
                        tokio::spawn(async move {
                            let result = download(&key.0).await.map(Arc::from);
                            downloads.lock().expect("downloads lock").insert(key, Download::Done(result));
                            changes.notify_one();
                        });
                        Err(format!("downloading {url}"))
                    }
                }
            }
            _ => Err("`source` needs exactly one of `configMap` and `url`".into()),
        }
    }
}

fn config_map_bytes(
    key: &ConfigMapKey,
    namespace: &str,
    config_maps: &[Arc<DynamicObject>],
) -> Result<Arc<[u8]>, String> {
    let where_ = format!("ConfigMap {namespace}/{}", key.name);
    let map = config_maps
        .iter()
        .find(|map| map.metadata.name.as_deref() == Some(key.name.as_str()))
        .ok_or_else(|| format!("{where_} not found"))?;
    let encoded = map
        .data
        .get("binaryData")
        .and_then(|data| data.get(&key.key))
        .and_then(|value| value.as_str())
        .ok_or_else(|| format!("{where_} has no binaryData key `{}`", key.key))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|err| format!("{where_} binaryData `{}`: {err}", key.key))?;
    Ok(bytes.into())
}

/// Fetches a module over HTTP or HTTPS (the system's trusted roots).
async fn download(url: &str) -> Result<Vec<u8>, String> {
    let fail = |err: &dyn std::fmt::Display| format!("cannot download {url}: {err}");
    let uri: hyper::Uri = url.parse().map_err(|err| fail(&err))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|err| fail(&err))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(connector);
    let fetch = async {
        let response = client.get(uri).await.map_err(|err| fail(&err))?;
        if !response.status().is_success() {
            return Err(fail(&format!("HTTP {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_DOWNLOAD);
        let bytes = body.collect().await.map_err(|err| fail(&err))?.to_bytes();
        Ok(bytes.to_vec())
    };
    tokio::time::timeout(DOWNLOAD_TIMEOUT, fetch).await.map_err(|_| fail(&"timed out"))?
}

fn settings_of(spec: &Spec) -> Result<ModuleSettings, String> {
    let memory_limit = spec.limits.memory.as_deref().map(parse_memory).transpose()?;
    let call_deadline = spec.limits.cpu.as_deref().map(parse_cpu).transpose()?;
    let fail_mode = match spec.fail_mode {
        FailModeName::Closed => FailMode::Closed,
        FailModeName::Open => FailMode::Open,
    };
    Ok(ModuleSettings { memory_limit, call_deadline, fail_mode })
}

/// A memory quantity as Kubernetes writes it (`64Mi`, `512Ki`, `1G`, `1000000`).
pub(crate) fn parse_memory(quantity: &str) -> Result<usize, String> {
    let bad = || format!("limits.memory `{quantity}`: expected a quantity like 64Mi, at most 1Gi");
    let digits = quantity.bytes().take_while(u8::is_ascii_digit).count();
    let (number, suffix) = quantity.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = number.checked_mul(unit).filter(|bytes| (1..=MAX_MEMORY).contains(bytes)).ok_or_else(bad)?;
    usize::try_from(bytes).map_err(|_| bad())
}

/// A CPU time per call (`50ms`, `1s`).
pub(crate) fn parse_cpu(duration: &str) -> Result<Duration, String> {
    let bad =
        || format!("limits.cpu `{duration}`: expected a duration like 50ms, at most {MAX_CALL_DEADLINE:?}");
    let (number, unit) = if let Some(ms) = duration.strip_suffix("ms") {
        (ms, Duration::from_millis(1))
    } else if let Some(s) = duration.strip_suffix('s') {
        (s, Duration::from_secs(1))
    } else {
        return Err(bad());
    };
    let number: u32 = number.parse().map_err(|_| bad())?;
    let deadline = unit * number;
    if deadline.is_zero() || deadline > MAX_CALL_DEADLINE {
        return Err(bad());
    }
    Ok(deadline)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_memory("64Mi"), Ok(64 << 20));
        assert_eq!(parse_memory("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory("1Gi"), Ok(1 << 30));
        for bad in ["", "2Gi", "0", "64MB", "-1Mi", "1.5Mi"] {
            assert!(parse_memory(bad).unwrap_err().contains("limits.memory"), "{bad}");
        }
        assert_eq!(parse_cpu("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_cpu("2s"), Ok(Duration::from_secs(2)));
        for bad in ["0ms", "50", "11s", "1m", "ms"] {
            assert!(parse_cpu(bad).unwrap_err().contains("limits.cpu"), "{bad}");
        }
    }
}
