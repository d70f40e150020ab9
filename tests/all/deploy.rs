//! deploy/ (the Helm chart, the rendered manifests, the CRDs, the cleanup
//! DaemonSet and the image recipe), checked offline by
//! `tests/deploy/validate.py` with the real helm and kubectl binaries and
//! Kubernetes' OpenAPI schemas; and the example policies, checked by porin.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use porin_tests::{must_run, output_within, porin, python};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// helm and kubectl (from the PyPI package tools.py names), kubernetes-validate
/// and jsonschema; `make test` installs them. Skips loudly outside CI and as
/// non-root, fails in CI.
fn have_deploy_tools() -> bool {
    let tools = Command::new(python()).arg(repo().join("tests/deploy/tools.py")).arg("check").output();
    let modules =
        Command::new(python()).args(["-c", "import kubernetes_validate, jsonschema, yaml"]).output();
    let missing = match (tools, modules) {
        (Ok(tools), Ok(modules)) if tools.status.success() && modules.status.success() => return true,
        (Ok(tools), Ok(modules)) => format!(
            "{}{}",
            String::from_utf8_lossy(&tools.stderr).trim(),
            if modules.status.success() {
                ""
            } else {
                " kubernetes-validate, jsonschema or PyYAML is missing"
            }
        ),
        (Err(err), _) | (_, Err(err)) => format!("{} does not run: {err}", python()),
    };
    assert!(!must_run(), "{missing}; `make test` installs the deploy checks' tools");
    eprintln!("SKIPPED: {missing} (run `make test` to install them)");
    false
}

#[test]
fn deploy_manifests_pass_the_offline_checks() {
    if !have_deploy_tools() {
        return;
    }
    let output = output_within(
        Command::new(python()).arg(repo().join("tests/deploy/validate.py")),
        b"",
        Duration::from_secs(600),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|line| !line.starts_with("ok: ")).collect();
    assert!(
        output.status.success(),
        "tests/deploy/validate.py failed:\n{}\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn example_policies_are_valid_for_porin() {
    let examples = repo().join("deploy/examples");
    let run = porin(["policy", "validate", "-f", examples.to_str().unwrap()]);
    assert!(run.success, "{}", run.stderr);
    assert!(!run.stderr.contains("error:"), "{}", run.stderr);
}

/// The `porin` command lines of the manifests' containers (`$(VAR)`s
/// filled in as the kubelet would).
fn porin_command_lines(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    let mut lines = Vec::new();
    for document in text.split("\n---\n") {
        let object: serde_yaml::Value = serde_yaml::from_str(document).unwrap();
        let spec = &object["spec"]["template"]["spec"];
        for list in ["containers", "initContainers"] {
            for container in spec[list].as_sequence().into_iter().flatten() {
                let strings = |key: &str| -> Vec<String> {
                    let items = container[key].as_sequence().into_iter().flatten();
                    items.map(|item| item.as_str().unwrap().replace("$(NODE_NAME)", "node-a")).collect()
                };
                let command = strings("command");
                if command.first().is_some_and(|program| program.ends_with("/porin")) {
                    lines.push(strings("args"));
                }
            }
        }
    }
    lines
}

#[test]
fn the_manifests_run_porin_with_flags_it_accepts() {
    let agent = porin_command_lines("deploy/manifests/porin.yaml");
    let cleanup = porin_command_lines("deploy/cleanup/porin-cleanup.yaml");
    assert_eq!((agent.len(), cleanup.len()), (1, 1), "one porin container each: {agent:?} {cleanup:?}");
    assert!(agent[0].iter().any(|arg| arg == "--kubernetes"), "{agent:?}");
    for args in agent.iter().chain(&cleanup) {
        let line = std::iter::once("porin".to_string()).chain(args.iter().cloned());
        if let Err(err) = <porin::cli::Cli as clap::Parser>::try_parse_from(line) {
            panic!("porin refuses {args:?}: {err}");
        }
    }
}
