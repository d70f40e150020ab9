//! The agent's file sources: the files and directories given with `-f`,
//! each file one unit of a [`Reading`]. A file removed from a directory is
//! deleted with its objects, as with `kubectl delete -f`; a path named with
//! `-f` that cannot be read is an error instead, and what it held stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, Location};
use crate::manifest::Manifests;
use crate::reading::{Reading, Unit, UnitKey};

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
            .units()
            .iter()
            .filter_map(|unit| match &unit.key {
                UnitKey::File(path) => Some((path.as_path(), unit)),
                UnitKey::Object(_) => None,
            })
            .collect();
        let (mut units, mut unreadable) = (Vec::new(), Vec::new());
        for root in &self.paths {
            match list_files(root) {
                Ok(files) => {
                    for path in files {
                        let previous = previous.get(path.as_path()).copied();
                        units.push(read_file(path, previous));
                    }
                }
                Err(err) => {
                    let location = Location { file: Some(Arc::new(root.clone())), ..Location::default() };
                    unreadable.push(Diagnostic::error(location, format!("cannot read: {err}")));
                    let kept = in_force
                        .units()
                        .iter()
                        .filter(|unit| matches!(&unit.key, UnitKey::File(path) if path.starts_with(root)));
                    units.extend(kept.cloned());
                }
            }
        }
        Reading::with_unreadable(units, unreadable)
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
            let error = Diagnostic::error(location, format!("cannot read file: {err}"));
            return Unit::unreadable(key, error, previous);
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
