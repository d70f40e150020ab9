//! `apply` and `delete`: objects in and out of the manifests directory the
//! agent reads, checked first as the agent checks them.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::netns::Node;
use super::objects::{Document, Workload};
use super::programs::{self, Program};
use super::state::State;
use super::{Lab, cluster_ip, remove_netns};
use crate::diagnostic::{Location, Severity, has_errors};
use crate::endpoint::Workloads;
use crate::manifest::Manifests;

impl Lab {
    /// `kubectl apply -f`: stores the objects (creating the pods of new
    /// workloads) and waits until the agent enforces them.
    pub fn apply(&self, files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
        let documents = validated(&read_sources(files)?, err)?;
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let node = Node::open(&state.node);
        self.store_documents(&node, &mut state, &documents, out)?;
        self.refresh_dns(&state)?;
        self.reload(&state)
    }

    /// `kubectl delete -f`: removes the objects (and the pods of workloads)
    /// once the agent enforces without them. False when some were not found.
    pub fn delete(
        &self,
        files: &[PathBuf],
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> anyhow::Result<bool> {
        let mut documents = Vec::new();
        for (name, text) in read_sources(files)? {
            documents.extend(Document::parse_all(&text).with_context(|| format!("reading {name}"))?);
        }
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let (store, mut pods, mut all_found) = (self.store(), Vec::new(), true);
        for document in &documents {
            let workload = document.workload()?;
            let file = workload.as_ref().map_or_else(|| document.file_name(), Workload::file_name);
            if store.remove(&file)? {
                writeln!(out, "{} deleted", document.reference())?;
                if let Some((key, _)) = document.service() {
                    state.cluster_ips.remove(&key);
                }
                pods.extend(workload.map(|w| (w.namespace, w.name)));
            } else {
                writeln!(err, "Error from server (NotFound): {} not found", document.reference())?;
                all_found = false;
            }
        }
        self.reload(&state)?;
        for (namespace, name) in pods {
            if let Some(pod) = state.take_pod(&namespace, &name) {
                remove_netns(&pod.attachment.netns);
            }
        }
        state.save(&self.state_path())?;
        self.refresh_dns(&state)?;
        Ok(all_found)
    }

    /// Stores each object in the manifests directory, creating the pods of
    /// new workloads.
    pub(super) fn store_documents(
        &self,
        node: &Node,
        state: &mut State,
        documents: &[Document],
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let store = self.store();
        for document in documents {
            let (file, yaml) = match (document.workload()?, document.service()) {
                (Some(workload), _) => {
                    let ip = self.ensure_pod(node, state, &workload, out)?;
                    (workload.file_name(), workload.manifest(ip)?)
                }
                (None, Some((key, requested))) => {
                    let mut service = document.clone();
                    if let Some(address) = cluster_ip::allocate(&mut state.cluster_ips, &key, requested)? {
                        service.set_cluster_ip(address);
                    }
                    state.save(&self.state_path())?;
                    (document.file_name(), service.yaml()?)
                }
                (None, None) => (document.file_name(), document.yaml()?),
            };
            let change = store.write(&file, &yaml)?;
            writeln!(out, "{} {change}", document.reference())?;
        }
        Ok(())
    }
}

pub(super) fn read_sources(files: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|file| {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            Ok((file.display().to_string(), text))
        })
        .collect()
}

/// The objects of `sources` (name, text), checked as the agent checks them;
/// problems go to `err`, and errors refuse the lot.
pub(super) fn validated(sources: &[(String, String)], err: &mut dyn Write) -> anyhow::Result<Vec<Document>> {
    let mut manifests = Manifests::default();
    for (name, text) in sources {
        let origin = Location { file: Some(Arc::new(PathBuf::from(name))), ..Location::default() };
        manifests.parse(text, origin);
    }
    let (workloads, found) = Workloads::from_manifests(&manifests);
    manifests.diagnostics.extend(found);
    let compiled = crate::policy::compile(&manifests, &workloads);
    for diagnostic in compiled.diagnostics.iter().filter(|d| d.severity > Severity::Note) {
        writeln!(err, "{diagnostic}")?;
    }
    if has_errors(&compiled.diagnostics) {
        bail!("the manifests have errors; nothing was changed");
    }
    let mut documents = Vec::new();
    for (name, text) in sources {
        documents.extend(Document::parse_all(text).with_context(|| format!("reading {name}"))?);
    }
    let programs: Vec<Program> = documents
        .iter()
        .filter_map(|document| document.workload().ok().flatten()?.program().map(|(program, _)| program))
        .collect();
    programs::check_installed(&programs)?;
    Ok(documents)
}
