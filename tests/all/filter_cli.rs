//! `porin filter test` as a filter author uses it: build the SDK example to
//! Wasm with the documented command, then run it over captured bytes.

use std::path::PathBuf;
use std::process::Command;

use porin_tests::porin;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds `sdk/examples/line_filter.rs` as the example's header says (in a
/// separate target dir, so the outer cargo's lock is not contended).
fn build_example() -> PathBuf {
    let target = workspace().join("target/example-filters");
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["build", "-p", "porin-sdk", "--example", "line_filter", "--profile", "wasm"])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success());
    target.join("wasm32-unknown-unknown/wasm/examples/line_filter.wasm")
}

fn temp(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("porin-filter-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn the_sdk_example_builds_and_runs_in_the_real_runtime() {
    let module = build_example();
    let rules = temp("rules.yaml", b"l7proto: lines\nl7:\n  - command: get\n");
    let input = temp("input.txt", b"GET a\r\nset b 1\r\nget c\r\n");
    let args = |output: &str| {
        vec![
            "filter".to_string(),
            "test".into(),
            "--filter".into(),
            module.display().to_string(),
            "--rules".into(),
            rules.display().to_string(),
            "--input".into(),
            input.display().to_string(),
            "--chunk".into(),
            "3".into(),
            "-o".into(),
            output.into(),
        ]
    };
    let json = porin(args("json"));
    assert!(json.success, "{}", json.stderr);
    let lines: Vec<serde_json::Value> =
        json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let records: Vec<_> = lines.iter().filter(|l| l.get("verdict").is_some()).collect();
    let verdicts: Vec<_> = records
        .iter()
        .map(|r| (r["lines.command"].as_str().unwrap(), r["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(verdicts, [("GET", "FORWARDED"), ("set", "DROPPED"), ("get", "FORWARDED")]);
    let ops: Vec<_> = lines.iter().filter_map(|l| l.get("op").and_then(|o| o.as_str())).collect();
    assert!(ops.contains(&"MORE") && ops.contains(&"DROP") && ops.contains(&"INJECT"), "{ops:?}");
    let summary = &lines.last().unwrap()["summary"]["result"];
    assert_eq!(summary["to_destination_bytes"], 14);
    assert_eq!(summary["to_source_bytes"], 14);

    let text = porin(args("text"));
    assert!(text.stdout.contains("INJECT to source: \"ERROR denied\\r\\n\""), "{}", text.stdout);
    assert!(
        text.stdout.ends_with("14 bytes to the destination, 14 bytes to the source; connection open\n"),
        "{}",
        text.stdout
    );
    for path in [rules, input] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn bad_rules_and_unknown_filters_are_clear_errors() {
    let rules = temp("bad-rules.yaml", b"http:\n  - path: \"/a(\"\n");
    let run = porin(["filter", "test", "--filter", "http", "--rules", rules.to_str().unwrap()]);
    assert!(!run.success);
    assert!(run.stderr.contains("filter `http` rejected rule set 1"), "{}", run.stderr);
    let missing = porin(["filter", "test", "--filter", "gopher", "--rules", rules.to_str().unwrap()]);
    assert!(missing.stderr.contains("no built-in filter `gopher`"), "{}", missing.stderr);
    std::fs::remove_file(rules).unwrap();
}
