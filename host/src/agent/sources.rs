//! The agent's policy sources, read unit by unit so that a unit which
//! fails to parse or validate keeps its last accepted version in force
//! while every other unit's changes apply. A unit is a file given with
//! `-f` (or found under a directory given with it), or one object of the
//! cluster ([`crate::k8s`]).
//!
//! A unit is all or nothing: one bad document holds back the whole file,
//! so a half-finished edit (a new deny without the allow that goes with it)
//! never applies half of a change. A file removed from a directory is
//! deleted with its objects, as with `kubectl delete -f`; a path named with
//! `-f` that cannot be read is an error instead, and what it held stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::endpoint::Workloads;
use crate::manifest::Manifests;
use crate::policy;

/// What a unit is: a file, or a cluster object (`Kind namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnitKey {
    File(PathBuf),
    Object(String),
}

/// What one unit contributes.
#[derive(Debug, Clone)]
pub struct Unit {
    pub key: UnitKey,
    /// Hash of the content last read; `None` when it could not be read.
    digest: Option<[u8; 32]>,
    /// The version last accepted (empty when none ever was): its objects
    /// and the notes parsing them gave.
    accepted: Arc<Manifests>,
    /// Why the content last read is not the accepted one.
    pub rejected: Vec<Diagnostic>,
}

impl Unit {
    /// The unit as `parsed` from content with `digest`: accepted when it
    /// validates, else `previous`'s accepted version stays with the errors.
    pub fn parsed(key: UnitKey, digest: [u8; 32], parsed: Manifests, previous: Option<&Unit>) -> Unit {
        let errors = validation_errors(&parsed);
        if errors.is_empty() {
            return Unit { key, digest: Some(digest), accepted: Arc::new(parsed), rejected: Vec::new() };
        }
        let accepted = previous.map(|unit| unit.accepted.clone()).unwrap_or_default();
        Unit { key, digest: Some(digest), accepted, rejected: errors }
    }

    /// Whether this unit's content is the one `digest` names.
    pub fn has_digest(&self, digest: &[u8; 32]) -> bool {
        self.digest.as_ref() == Some(digest)
    }

    /// Whether `other` is the same content as this unit.
    pub fn same_content(&self, other: &Unit) -> bool {
        self.content() == other.content()
    }

    /// What tells one version of the sources from another.
    fn content(&self) -> (&UnitKey, Option<[u8; 32]>) {
        (&self.key, self.digest)
    }
}

/// One reading of the sources: what is in force once it is applied.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    units: Vec<Unit>,
    /// `-f` paths that could not be read (everything under them stays).
    unreadable: Vec<Diagnostic>,
}

impl Reading {
    pub fn new(units: Vec<Unit>) -> Reading {
        Reading { units, unreadable: Vec::new() }
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The unit in this reading with `key`.
    pub fn unit(&self, key: &UnitKey) -> Option<&Unit> {
        self.units.iter().find(|unit| &unit.key == key)
    }

    /// The objects of every unit's accepted version, in reading order.
    pub fn manifests(&self) -> Manifests {
        let mut manifests = Manifests::default();
        for unit in &self.units {
            manifests.objects.extend(unit.accepted.objects.iter().cloned());
            manifests.diagnostics.extend(unit.accepted.diagnostics.iter().cloned());
        }
        manifests
    }

    /// Why some sources are not in force as they are now: each error of a
    /// rejected unit, and each `-f` path that could not be read.
    pub fn rejections(&self) -> impl Iterator<Item = &Diagnostic> {
        self.unreadable.iter().chain(self.units.iter().flat_map(|unit| &unit.rejected))
    }

    /// Whether this reading differs from `other` in content or in problems.
    pub fn differs_from(&self, other: &Reading) -> bool {
        let same_content = self.units.iter().map(Unit::content).eq(other.units.iter().map(Unit::content));
        !same_content || !self.rejections().eq(other.rejections())
    }
}

/// The files and directories given with `-f`.
#[derive(Debug)]
pub struct Sources {
    paths: Vec<PathBuf>,
}

impl Sources {
    pub fn new(paths: Vec<PathBuf>) -> Sources {
        Sources { paths }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads every source; files unchanged since `in_force` are not parsed
    /// again.
    pub fn read(&self, in_force: &Reading) -> Reading {
        let previous: HashMap<&Path, &Unit> = in_force
            .units
            .iter()
            .filter_map(|unit| match &unit.key {
                UnitKey::File(path) => Some((path.as_path(), unit)),
                UnitKey::Object(_) => None,
            })
            .collect();
        let mut reading = Reading::default();
        for root in &self.paths {
            match list_files(root) {
                Ok(files) => {
                    for path in files {
                        let previous = previous.get(path.as_path()).copied();
                        reading.units.push(read_file(path, previous));
                    }
                }
                Err(err) => {
                    let location = Location { file: Some(Arc::new(root.clone())), ..Location::default() };
                    reading.unreadable.push(Diagnostic::error(location, format!("cannot read: {err}")));
                    let kept = in_force
                        .units
                        .iter()
                        .filter(|unit| matches!(&unit.key, UnitKey::File(path) if path.starts_with(root)));
                    reading.units.extend(kept.cloned());
                }
            }
        }
        reading
    }
}

/// Reads one file, keeping `previous`'s accepted version when the new
/// content does not parse or validate.
fn read_file(path: PathBuf, previous: Option<&Unit>) -> Unit {
    let location = Location { file: Some(Arc::new(path.clone())), ..Location::default() };
    let key = UnitKey::File(path.clone());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            let accepted = previous.map(|unit| unit.accepted.clone()).unwrap_or_default();
            let rejected = vec![Diagnostic::error(location, format!("cannot read file: {err}"))];
            return Unit { key, digest: None, accepted, rejected };
        }
    };
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    if let Some(previous) = previous.filter(|unit| unit.has_digest(&digest)) {
        return previous.clone();
    }
    let mut manifests = Manifests::default();
    manifests.parse(&text, location);
    Unit::parsed(key, digest, manifests, previous)
}

/// The errors of a unit's objects on their own: parsing, workloads and
/// policy translation. Each of these looks at one object at a time, so a
/// unit that passes here never fails in the node's whole compile.
fn validation_errors(manifests: &Manifests) -> Vec<Diagnostic> {
    let (_, workload_diagnostics) = Workloads::from_manifests(manifests);
    let compiled = policy::compile(manifests, &Workloads::default());
    compiled
        .diagnostics
        .into_iter()
        .chain(workload_diagnostics)
        .filter(|diagnostic| diagnostic.severity == Severity::Error)
        .collect()
}

/// The manifest files of a source path: the file itself, or a directory's
/// `*.yaml`, `*.yml` and `*.json` files, recursively, in name order.
/// Hidden entries are skipped: editors' lock files, and the `..data`
/// directories of a mounted ConfigMap, which would repeat every file.
fn list_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if std::fs::metadata(root)?.is_dir() {
        list_dir(root, &mut files)?;
    } else {
        files.push(root.to_path_buf());
    }
    Ok(files)
}

fn list_dir(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            list_dir(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}

/// A cheap fingerprint of the sources that changes whenever their content
/// may have: each file with its size, modification time and inode (`None`
/// when it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, Option<FileStamp>)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: SystemTime,
    inode: u64,
}

impl Stamp {
    pub fn of(paths: &[PathBuf]) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let mut stamp = Vec::new();
        for root in paths {
            match list_files(root) {
                Ok(files) => stamp.extend(files.into_iter().map(|path| {
                    let metadata = std::fs::metadata(&path).ok();
                    let file = metadata.and_then(|m| {
                        Some(FileStamp { len: m.len(), modified: m.modified().ok()?, inode: m.ino() })
                    });
                    (path, file)
                })),
                Err(_) => stamp.push((root.clone(), None)),
            }
        }
        Stamp(stamp)
    }
}

#[cfg(test)]
mod tests;
