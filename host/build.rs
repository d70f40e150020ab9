//! Builds the built-in filters (crates under `filters/`) for
//! `wasm32-unknown-unknown` and embeds them in the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The filters built in, by directory under `filters/` (crate `porin-filter-NAME`).
const BUILTIN_FILTERS: &[&str] = &["dns", "http", "kafka"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("host/ sits in the workspace");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // A separate target dir: the outer build holds the lock on the main one.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("filters");

    let filters = BUILTIN_FILTERS;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--locked",
            "--profile",
            "wasm",
            "--target",
            "wasm32-unknown-unknown",
            "--target-dir",
        ])
        .arg(&target_dir);
    for filter in filters {
        command.args(["-p", &format!("porin-filter-{filter}")]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are not for the guest.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("running cargo for the built-in filters");
    assert!(status.success(), "building the built-in filters for wasm32-unknown-unknown failed");

    let mut table = String::from(
        "/// Built-in filters: (name, Wasm module).\npub const BUILTIN_FILTERS: &[(&str, &[u8])] = &[\n",
    );
    for filter in filters {
        let artifact = target_dir
            .join("wasm32-unknown-unknown/wasm")
            .join(format!("porin_filter_{}.wasm", filter.replace('-', "_")));
        let embedded = out_dir.join(format!("{filter}.wasm"));
        std::fs::copy(&artifact, &embedded)
            .unwrap_or_else(|err| panic!("copying {}: {err}", artifact.display()));
        table.push_str(&format!("    ({filter:?}, include_bytes!({:?})),\n", embedded.display().to_string()));
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin.rs"), table).expect("writing builtin.rs");

    for path in ["filters", "sdk/src", "sdk/Cargo.toml", "Cargo.lock"] {
        rerun_if_changed(&workspace.join(path));
    }
}

fn rerun_if_changed(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}
