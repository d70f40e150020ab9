//! `porin policy` as a user runs it: exit codes, errors and output formats.

use porin_tests::{fixture, porin};

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("porin-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_lists_every_error_and_fails() {
    let bad = write_temp(
        "bad.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: one, namespace: a}\nspec:\n  endpointSelector: {}\n  ingress:\n    - fromEntities: [galaxy]\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: two, namespace: a}\nspec:\n  endpointSelector: {}\n  egress:\n    - toPorts: [{ports: [{port: \"80\", protocol: tcp}]}]\n",
    );
    let run = porin(["policy", "validate", "-f", bad.to_str().unwrap()]);
    std::fs::remove_file(&bad).unwrap();
    assert!(!run.success);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].contains("document 1 (line 1): CiliumNetworkPolicy a/one: spec.ingress[0].fromEntities[0]"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains(
            "document 2 (line 9): CiliumNetworkPolicy a/two: spec.egress[0].toPorts[0].ports[0].protocol"
        ),
        "{}",
        errors[1]
    );
    assert!(run.stderr.contains("2 error(s)"));
}

#[test]
fn compile_prints_identities_entries_and_rule_sets() {
    let app = fixture("seed/test-app.yaml");
    let l7 = fixture("seed/cnp-front-to-back-l7.yaml");
    let (app, l7) = (app.to_str().unwrap(), l7.to_str().unwrap());
    let run = porin(["policy", "compile", "-f", app, l7, "-o", "json"]);
    assert!(run.success, "{}", run.stderr);
    let json = run.json();
    let identities = json["identities"].as_array().unwrap();
    assert_eq!(identities[0]["id"], 1);
    assert!(identities.iter().any(|i| i["id"] == 256));
    let api = json["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "api").unwrap();
    assert_eq!(api["policy"]["ingress"]["enforced"], true);
    let entry = &api["policy"]["ingress"]["entries"][0];
    assert_eq!(entry["action"], "redirect");
    assert_eq!(entry["filter"], "http");
    assert_eq!(entry["ports"], "80");
    assert_eq!(entry["protocol"], "TCP");
    assert_eq!(json["rule_sets"][0]["rules"], serde_json::json!({"http": [{}]}));

    let text = porin(["policy", "compile", "-f", app, "-f", l7]);
    assert!(text.stdout.contains("endpoint backend/api identity 256"), "{}", text.stdout);
    assert!(text.stdout.contains("redirect http#1"), "{}", text.stdout);
}

#[test]
fn explain_reads_like_a_sentence() {
    let seed = fixture("seed");
    let run = porin([
        "policy",
        "explain",
        "-f",
        seed.to_str().unwrap(),
        "--from",
        "frontend/test",
        "--to",
        "db/postgres",
        "--port",
        "5432",
    ]);
    assert!(run.success, "{}", run.stderr);
    let first = run.stdout.lines().next().unwrap();
    assert!(first.starts_with("frontend/test (identity "), "{first}");
    assert!(first.ends_with("port 5432/TCP: DENIED"), "{first}");
    assert!(run.stdout.contains("default deny is on"), "{}", run.stdout);
}

#[test]
fn explain_rejects_bad_arguments_clearly() {
    let seed = fixture("seed");
    let seed = seed.to_str().unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["porin", "policy", "explain", "-f", seed];
        all.extend_from_slice(args);
        <porin::cli::Cli as clap::Parser>::try_parse_from(all).unwrap_err().to_string()
    };
    assert!(cli(&["--from", "nowhere", "--to", "world", "--port", "80"]).contains("NAMESPACE/NAME"));
    assert!(cli(&["--from", "a/b", "--to", "world", "--port", "80/ICMP"]).contains("unknown protocol"));
    assert!(cli(&["--from", "a/b", "--to", "world", "--port", "0"]).contains("port 0"));
    assert!(
        cli(&["--from", "a/b", "--to", "world", "--port", "80", "--from-labels", "novalue"])
            .contains("key=value")
    );
}
