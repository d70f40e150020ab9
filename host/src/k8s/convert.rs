//! Cluster objects as the agent's reading: each object one unit, parsed by
//! the same manifest loader as files, so both sources mean the same thing.

use std::collections::HashMap;

use kube::api::DynamicObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::kinds::Kind;
use crate::diagnostic::Location;
use crate::manifest::Manifests;
use crate::reading::{Unit, UnitKey};

/// `Kind namespace/name`, as diagnostics and events name an object.
pub(crate) fn object_name(kind: &Kind, object: &DynamicObject) -> String {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    match &object.metadata.namespace {
        Some(namespace) => format!("{} {namespace}/{name}", kind.kind),
        None => format!("{} {name}", kind.kind),
    }
}

/// The unit of `object`; `previous` (the unit in force with the same key)
/// is reused when the object has not changed, and keeps its accepted
/// version when the new one is rejected.
pub(crate) fn unit_of(kind: &Kind, object: &DynamicObject, previous: &HashMap<&UnitKey, &Unit>) -> Unit {
    let key = UnitKey::Object(object_name(kind, object));
    let previous = previous.get(&key).copied();
    // The API server changes an object's resourceVersion on every write.
    let version = format!(
        "{}/{}",
        object.metadata.uid.as_deref().unwrap_or_default(),
        object.metadata.resource_version.as_deref().unwrap_or_default()
    );
    let digest: [u8; 32] = Sha256::digest(version.as_bytes()).into();
    if let Some(previous) = previous.filter(|unit| unit.has_digest(&digest)) {
        return previous.clone();
    }
    let mut manifests = Manifests::default();
    match manifest_value(kind, object) {
        Ok(value) => manifests.add_object(value, Location::default()),
        Err(err) => manifests.diagnostics.push(crate::diagnostic::Diagnostic::error(
            Location { object: Some(object_name(kind, object)), ..Location::default() },
            format!("cannot read the object: {err}"),
        )),
    }
    Unit::parsed(key, digest, manifests, previous)
}

/// The object as a manifest document. Lists from the API server leave out
/// each item's `apiVersion` and `kind`, so they are set from the kind.
fn manifest_value(kind: &Kind, object: &DynamicObject) -> Result<serde_yaml::Value, String> {
    let mut json = serde_json::to_value(object).map_err(|err| err.to_string())?;
    let Value::Object(map) = &mut json else { return Err("not an object".into()) };
    map.insert("apiVersion".into(), Value::String(kind.api_version()));
    map.insert("kind".into(), Value::String(kind.kind.into()));
    if kind.kind == "Pod"
        && !holds_its_own_address(map)
        && let Some(Value::Object(status)) = map.get_mut("status")
    {
        status.remove("podIP");
        status.remove("podIPs");
    }
    serde_yaml::to_value(&json).map_err(|err| err.to_string())
}

/// Whether a pod's `status.podIP` is the pod's own. A host-network pod
/// reports the node's address, which is the `host` entity's, and a pod
/// that has finished has released its address to the next pod.
fn holds_its_own_address(pod: &serde_json::Map<String, Value>) -> bool {
    let host_network = pod.get("spec").and_then(|spec| spec.get("hostNetwork")).and_then(Value::as_bool);
    let phase = pod.get("status").and_then(|status| status.get("phase")).and_then(Value::as_str);
    host_network != Some(true) && !matches!(phase, Some("Succeeded" | "Failed"))
}
