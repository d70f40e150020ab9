//! The agent's policy sources: the files and directories given with `-f`,
//! read file by file so that a file which fails to parse or validate keeps
//! its last accepted version in force while every other file's changes
//! apply.
//!
//! A file is all or nothing: one bad document holds back the whole file,
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

/// What one file contributes.
#[derive(Debug, Clone)]
struct FileState {
    path: PathBuf,
    /// Hash of the content last read; `None` when it could not be read.
    digest: Option<[u8; 32]>,
    /// The version last accepted (empty when none ever was): its objects
    /// and the notes parsing them gave.
    accepted: Arc<Manifests>,
    /// Why the content last read is not the accepted one.
    rejected: Vec<Diagnostic>,
}

impl FileState {
    /// What tells one version of the sources from another.
    fn content(&self) -> (&Path, Option<[u8; 32]>) {
        (&self.path, self.digest)
    }
}

/// One reading of the sources: what is in force once it is applied.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    files: Vec<FileState>,
    /// `-f` paths that could not be read (everything under them stays).
    unreadable: Vec<Diagnostic>,
}

impl Reading {
    /// The objects of every file's accepted version, in reading order.
    pub fn manifests(&self) -> Manifests {
        let mut manifests = Manifests::default();
        for file in &self.files {
            manifests.objects.extend(file.accepted.objects.iter().cloned());
            manifests.diagnostics.extend(file.accepted.diagnostics.iter().cloned());
        }
        manifests
    }

    /// Why some sources are not in force as they are now: each error of a
    /// rejected file, and each `-f` path that could not be read.
    pub fn rejections(&self) -> impl Iterator<Item = &Diagnostic> {
        self.unreadable.iter().chain(self.files.iter().flat_map(|file| &file.rejected))
    }

    /// Whether this reading differs from `other` in content or in problems.
    fn differs_from(&self, other: &Reading) -> bool {
        let same_content =
            self.files.iter().map(FileState::content).eq(other.files.iter().map(FileState::content));
        !same_content || !self.rejections().eq(other.rejections())
    }
}

/// The sources and the reading in force.
#[derive(Debug)]
pub struct Sources {
    paths: Vec<PathBuf>,
    in_force: Reading,
}

impl Sources {
    pub fn new(paths: Vec<PathBuf>) -> Sources {
        Sources { paths, in_force: Reading::default() }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads every source; files unchanged since the reading in force are
    /// not parsed again.
    pub fn read(&self) -> Reading {
        let in_force: HashMap<&Path, &FileState> =
            self.in_force.files.iter().map(|file| (file.path.as_path(), file)).collect();
        let mut reading = Reading::default();
        for root in &self.paths {
            match list_files(root) {
                Ok(files) => {
                    for path in files {
                        let previous = in_force.get(path.as_path()).copied();
                        reading.files.push(read_file(path, previous));
                    }
                }
                Err(err) => {
                    let location = Location { file: Some(Arc::new(root.clone())), ..Location::default() };
                    reading.unreadable.push(Diagnostic::error(location, format!("cannot read: {err}")));
                    let kept = self.in_force.files.iter().filter(|file| file.path.starts_with(root));
                    reading.files.extend(kept.cloned());
                }
            }
        }
        reading
    }

    /// Whether `reading` differs from the reading in force.
    pub fn changed(&self, reading: &Reading) -> bool {
        reading.differs_from(&self.in_force)
    }

    /// Records `reading` as in force (once it has been applied).
    pub fn commit(&mut self, reading: Reading) {
        self.in_force = reading;
    }
}

/// Reads one file, keeping `previous`'s accepted version when the new
/// content does not parse or validate.
fn read_file(path: PathBuf, previous: Option<&FileState>) -> FileState {
    let accepted = previous.map(|file| file.accepted.clone()).unwrap_or_default();
    let location = Location { file: Some(Arc::new(path.clone())), ..Location::default() };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            let rejected = vec![Diagnostic::error(location, format!("cannot read file: {err}"))];
            return FileState { path, digest: None, accepted, rejected };
        }
    };
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    if let Some(previous) = previous.filter(|file| file.digest == Some(digest)) {
        return previous.clone();
    }
    let mut manifests = Manifests::default();
    manifests.parse(&text, location);
    let errors = validation_errors(&manifests);
    if errors.is_empty() {
        FileState { path, digest: Some(digest), accepted: Arc::new(manifests), rejected: Vec::new() }
    } else {
        FileState { path, digest: Some(digest), accepted, rejected: errors }
    }
}

/// The errors of a file's objects on their own: parsing, workloads and
/// policy translation. Each of these looks at one object at a time, so a
/// file that passes here never fails in the node's whole compile.
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
