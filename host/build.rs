//! Builds what the binary embeds: the built-in filters (crates under
//! `filters/`) for `wasm32-unknown-unknown`, and the C datapath (`bpf/`)
//! with clang for the BPF target.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The filters built in, by directory under `filters/` (crate `porin-filter-NAME`).
const BUILTIN_FILTERS: &[&str] = &["dns", "http", "kafka"];

/// The datapath programs, one entry file per attach point under `bpf/`.
const BPF_PROGRAMS: &[&str] = &["from_pod", "to_pod", "sock"];

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

    build_bpf(&workspace.join("bpf"), &out_dir);

    for path in ["filters", "sdk/src", "sdk/Cargo.toml", "Cargo.lock", "bpf"] {
        rerun_if_changed(&workspace.join(path));
    }
}

fn rerun_if_changed(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// Compiles each datapath program with clang (`CLANG`, default `clang-19`).
fn build_bpf(source: &Path, out_dir: &Path) {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang-19".into());
    println!("cargo::rerun-if-env-changed=CLANG");
    // The kernel headers of the target's multiarch directory (asm/types.h).
    let (multiarch, target_arch) = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => ("aarch64-linux-gnu", "arm64"),
        _ => ("x86_64-linux-gnu", "x86"),
    };
    for program in BPF_PROGRAMS {
        let object = out_dir.join(format!("{program}.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{target_arch}"))
            .arg(format!("-I/usr/include/{multiarch}"))
            .arg("-I")
            .arg(source)
            .arg("-c")
            .arg(source.join(format!("{program}.c")))
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap_or_else(|err| panic!("running {clang} (install clang-19 and libbpf-dev): {err}"));
        assert!(status.success(), "compiling bpf/{program}.c failed");
    }
}
