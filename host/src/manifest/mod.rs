//! Loading Kubernetes manifests: multi-document YAML files and directories
//! holding policies (CNP, CCNP, NetworkPolicy) and workloads (Namespace,
//! Pod, Deployment and other pod controllers, Service, EndpointSlice).
//!
//! Every problem becomes a [`Diagnostic`] naming the file, the document
//! (index, starting line, kind and name) and the field path; a bad document
//! never stops the others from loading.

pub mod cilium;
pub mod meta;
pub mod netpol;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::diagnostic::{Diagnostic, Location};

/// One object found in the input, with where it was found.
#[derive(Debug, Clone)]
pub struct Object {
    pub location: Location,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Body {
    CiliumNetworkPolicy(cilium::CiliumPolicy),
    CiliumClusterwideNetworkPolicy(cilium::CiliumPolicy),
    NetworkPolicy(netpol::NetworkPolicy),
    Namespace(workload::Namespace),
    Pod(workload::Pod),
    /// Deployment, StatefulSet, DaemonSet or ReplicaSet.
    Controller(workload::Controller),
    Service(workload::Service),
    EndpointSlice(workload::EndpointSlice),
}

/// Everything loaded from a set of paths.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub objects: Vec<Object>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Manifests {
    /// Loads files and directories (recursively: `*.yaml`, `*.yml`, `*.json`,
    /// in name order).
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Manifests {
        let mut manifests = Manifests::default();
        for path in paths {
            manifests.load_path(path.as_ref());
        }
        manifests
    }

    fn load_path(&mut self, path: &Path) {
        let file_location = Location { file: Some(Arc::new(path.to_path_buf())), ..Location::default() };
        if path.is_dir() {
            match manifest_files(path) {
                Ok(files) => files.iter().for_each(|file| self.load_path(file)),
                Err(err) => self
                    .diagnostics
                    .push(Diagnostic::error(file_location, format!("cannot read directory: {err}"))),
            }
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => self.parse(&text, file_location),
            Err(err) => {
                self.diagnostics.push(Diagnostic::error(file_location, format!("cannot read file: {err}")))
            }
        }
    }

    /// Parses a multi-document YAML (or JSON) text; `origin` says where it came from.
    pub fn parse(&mut self, text: &str, origin: Location) {
        for (index, (line, document)) in split_documents(text).into_iter().enumerate() {
            let location = Location { document: Some(index + 1), line: Some(line), ..origin.clone() };
            match serde_yaml::from_str::<Value>(document) {
                Ok(Value::Null) => {}
                Ok(value) => self.add_object(value, location),
                Err(err) => {
                    let message = format!("invalid YAML: {}", rebase_lines(&err.to_string(), line - 1));
                    self.diagnostics.push(Diagnostic::error(location, message));
                }
            }
        }
    }

    /// Adds one object (or a `List` of them) given as a parsed document.
    pub fn add_object(&mut self, value: Value, mut location: Location) {
        let Value::Mapping(mut map) = value else {
            self.diagnostics.push(Diagnostic::error(location, "expected a Kubernetes object (a mapping)"));
            return;
        };
        let api_version = take_string(&mut map, "apiVersion");
        let kind = take_string(&mut map, "kind");
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            self.diagnostics.push(Diagnostic::error(location, "missing `apiVersion` or `kind`"));
            return;
        };
        location.object = Some(object_name(&kind, &map));
        if kind == "List" || kind.ends_with("List") {
            let items = map.remove("items");
            let items = match items {
                Some(Value::Sequence(items)) => items,
                _ => Vec::new(),
            };
            for (i, item) in items.into_iter().enumerate() {
                let item_location = location.at_field(format!("items[{i}]"));
                self.add_object(item, Location { object: None, ..item_location });
            }
            return;
        }
        if kind.ends_with("NetworkPolicy") {
            // Controllers write a policy's `status`; it never changes what the policy means.
            map.remove("status");
        }
        let body = match (api_version.as_str(), kind.as_str()) {
            ("cilium.io/v2", "CiliumNetworkPolicy") => typed(map).map(Body::CiliumNetworkPolicy),
            ("cilium.io/v2", "CiliumClusterwideNetworkPolicy") => {
                typed(map).map(Body::CiliumClusterwideNetworkPolicy)
            }
            ("networking.k8s.io/v1", "NetworkPolicy") => typed(map).map(Body::NetworkPolicy),
            ("v1", "Namespace") => typed(map).map(Body::Namespace),
            ("v1", "Pod") => typed(map).map(Body::Pod),
            ("v1", "Service") => typed(map).map(Body::Service),
            ("discovery.k8s.io/v1", "EndpointSlice") => typed(map).map(Body::EndpointSlice),
            ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
                typed(map).map(|controller| {
                    Body::Controller(workload::Controller { kind: kind.clone(), ..controller })
                })
            }
            (_, "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" | "NetworkPolicy") => {
                Err((None, format!("unsupported apiVersion `{api_version}` for {kind}")))
            }
            _ => {
                let message = format!("skipped: porin does not use {api_version} {kind}");
                self.diagnostics.push(Diagnostic::note(location, message));
                return;
            }
        };
        match body {
            Ok(body) => self.objects.push(Object { location, body }),
            Err((field, message)) => {
                let location = Location { field, ..location };
                self.diagnostics.push(Diagnostic::error(location, message));
            }
        }
    }
}

/// Deserializes an object, reporting the failing field's path.
fn typed<T: DeserializeOwned>(map: Mapping) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(Value::Mapping(map)).map_err(|err| {
        let path = err.path().to_string();
        let field = (path != ".").then_some(path);
        (field, err.into_inner().to_string())
    })
}

/// Rewrites "line N" in a parser message from document lines to file lines.
fn rebase_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn take_string(map: &mut Mapping, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn object_name(kind: &str, map: &Mapping) -> String {
    let meta = map.get("metadata");
    let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_str);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => kind.to_string(),
    }
}

/// Splits a YAML stream at `---` lines, returning each document with the
/// 1-based line it starts on.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut documents = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            documents.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = index + 2;
        }
        offset += line.len();
    }
    documents.push((start_line, &text[start_byte..]));
    documents
        .retain(|(_, doc)| doc.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    documents
}

fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_manifest = path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json");
        if path.is_dir() || is_manifest {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
