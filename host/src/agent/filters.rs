//! Extra filter modules from a directory (`--filters-dir`): `NAME.wasm` is
//! the filter `NAME`. New and changed files are loaded before each apply,
//! so a policy can name a filter dropped there just before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::filter::FilterRegistry;

#[derive(Debug)]
pub(super) struct FilterDir {
    dir: PathBuf,
    /// What each loaded file looked like: (modified, length).
    loaded: HashMap<PathBuf, (SystemTime, u64)>,
}

/// What one refresh did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Refreshed {
    pub(super) loaded: Vec<String>,
    /// Files that are not valid filter modules, with the reason.
    pub(super) errors: Vec<String>,
}

impl FilterDir {
    pub(super) fn new(dir: PathBuf) -> FilterDir {
        FilterDir { dir, loaded: HashMap::new() }
    }

    /// Loads the modules that are new or changed since the last refresh. A
    /// module that fails keeps its previous version (if any) in force.
    pub(super) fn refresh(&mut self, registry: &FilterRegistry) -> Refreshed {
        let mut refreshed = Refreshed::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) => {
                refreshed.errors.push(format!("filters directory {}: {err}", self.dir.display()));
                return refreshed;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.retain(|p| p.extension().is_some_and(|e| e == "wasm"));
        paths.sort();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let look = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
            if self.loaded.get(&path) == Some(&look) {
                continue;
            }
            self.loaded.insert(path.clone(), look);
            match registry.load_file(&path, None) {
                Ok(module) => refreshed.loaded.push(module.name.clone()),
                Err(err) => refreshed.errors.push(format!("{}: {err}", path.display())),
            }
        }
        refreshed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{BUILTIN_FILTERS, RuntimeConfig};

    #[test]
    fn new_and_changed_modules_load_once_and_bad_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("porin-filter-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let registry = FilterRegistry::new(RuntimeConfig::default());
        let mut filters = FilterDir::new(dir.clone());
        let (_, http) = BUILTIN_FILTERS.iter().find(|(name, _)| *name == "http").unwrap();
        std::fs::write(dir.join("web.wasm"), http).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a module").unwrap();

        assert_eq!(filters.refresh(&registry).loaded, ["web"]);
        assert!(registry.module("web").is_some());
        assert_eq!(filters.refresh(&registry), Refreshed::default(), "unchanged files are not reloaded");

        std::fs::write(dir.join("broken.wasm"), b"\0asm garbage").unwrap();
        let refreshed = filters.refresh(&registry);
        assert!(refreshed.loaded.is_empty());
        assert!(refreshed.errors.len() == 1 && refreshed.errors[0].contains("broken.wasm"), "{refreshed:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
