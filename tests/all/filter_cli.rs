//! `porin filter test` as a filter author uses it: build the SDK example to
//! Wasm with the documented command, then run it over captured bytes.

use std::path::PathBuf;

use porin_tests::{build_sdk_example, porin};

fn temp(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("porin-filter-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn the_sdk_example_builds_and_runs_in_the_real_runtime() {
    let module = build_sdk_example("line_filter");
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

/// `porin filter test -o json` over a captured session; returns the JSON lines.
fn replay(
    filter: &str,
    rules: &str,
    client: &std::path::Path,
    server: Option<&std::path::Path>,
) -> Vec<serde_json::Value> {
    replay_with(filter, rules, client, server, &[])
}

fn replay_with(
    filter: &str,
    rules: &str,
    client: &std::path::Path,
    server: Option<&std::path::Path>,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let rules_file =
        temp(&format!("{}-rules.yaml", client.file_stem().unwrap().to_string_lossy()), rules.as_bytes());
    let mut args =
        vec!["filter".to_string(), "test".into(), "--filter".into(), filter.into(), "--rules".into()];
    args.extend([
        rules_file.display().to_string(),
        "--input".into(),
        client.display().to_string(),
        "-o".into(),
        "json".into(),
    ]);
    if let Some(server) = server {
        args.extend(["--reply-input".into(), server.display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let run = porin(args);
    std::fs::remove_file(rules_file).unwrap();
    assert!(run.success, "{}", run.stderr);
    run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn records(lines: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    lines.iter().filter(|l| l.get("verdict").is_some() && l.get("type").is_some()).collect()
}

#[test]
fn kafka_captures_from_real_clients_replay_through_the_builtin_filter() {
    for session in ["confluent-produce-1", "kpython-consume-1", "confluent-admin-1"] {
        let client = porin_tests::fixture(&format!("kafka/{session}.client.bin"));
        let server = porin_tests::fixture(&format!("kafka/{session}.server.bin"));
        let lines = replay("kafka", "kafka: [{}]\n", &client, Some(&server));
        let summary = &lines.last().unwrap()["summary"]["result"];
        assert_eq!(summary["to_destination_bytes"], std::fs::metadata(&client).unwrap().len(), "{session}");
        assert_eq!(summary["to_source_bytes"], std::fs::metadata(&server).unwrap().len(), "{session}");
        let records = records(&lines);
        assert!(!records.is_empty() && records.iter().all(|r| r["verdict"] == "FORWARDED"), "{session}");
    }
    // Produce to a topic the rules do not name is denied.
    let client = porin_tests::fixture("kafka/confluent-produce-1.client.bin");
    let lines = replay(
        "kafka",
        "kafka: [{role: produce, topic: orders}, {apiKey: gettelemetrysubscriptions}]\n",
        &client,
        None,
    );
    let denied: Vec<_> = records(&lines).into_iter().filter(|r| r["verdict"] == "DROPPED").collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["kafka.topic"], "payments");
    assert_eq!(denied[0]["kafka.api_key"], "produce");
}

#[test]
fn the_redis_example_enforces_its_rules_on_real_redis_cli_bytes() {
    let module = build_sdk_example("redis_filter");
    let module = module.display().to_string();
    let session = |name: &str| {
        (
            porin_tests::fixture(&format!("redis/{name}.client.bin")),
            porin_tests::fixture(&format!("redis/{name}.server.bin")),
        )
    };
    let (client, server) = session("pipe");
    let lines = replay(&module, "l7proto: redis\nl7: [{}]\n", &client, Some(&server));
    let summary = &lines.last().unwrap()["summary"]["result"];
    assert_eq!(summary["to_destination_bytes"], std::fs::metadata(&client).unwrap().len());
    assert_eq!(summary["to_source_bytes"], std::fs::metadata(&server).unwrap().len());
    let (client, _) = session("get_secret");
    let lines = replay(&module, "l7proto: redis\nl7: [{command: GET, key: \"public:*\"}]\n", &client, None);
    let denied = records(&lines).into_iter().find(|r| r["verdict"] == "DROPPED").expect("GET secret denied");
    assert_eq!(denied["redis.command"], "GET");
    let injected: Vec<_> = lines.iter().filter(|l| l["op"] == "INJECT").collect();
    assert!(injected[0]["data"].as_str().unwrap().starts_with("-NOPERM"), "{injected:?}");
    assert_eq!(lines.last().unwrap()["summary"]["result"]["to_destination_bytes"], 0);
}

#[test]
fn dns_datagrams_from_dig_replay_through_the_builtin_filter() {
    // UDP input files hold datagrams, each prefixed by a 2-byte length.
    let framed = |names: &[&str], kind: &str| {
        let mut out = Vec::new();
        for name in names {
            let datagram =
                std::fs::read(porin_tests::fixture(&format!("dns/udp-{name}.{kind}.bin"))).unwrap();
            out.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
            out.extend_from_slice(&datagram);
        }
        out
    };
    let queries = temp("dns-queries.bin", &framed(&["a-example", "a-sub-example"], "query"));
    let answers = temp("dns-answers.bin", &framed(&["a-example"], "response"));
    let lines = replay_with(
        "dns",
        "dns: [{matchName: example.test}]\n",
        &queries,
        Some(&answers),
        &["--transport", "udp"],
    );
    let verdicts: Vec<_> = lines
        .iter()
        .filter_map(|l| l.get("datagram_bytes").map(|_| l["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(verdicts, ["PASS", "REPLY", "PASS"], "{lines:?}");
    let summary = &lines.last().unwrap()["summary"]["result"];
    assert_eq!((summary["passed"].as_u64(), summary["replied"].as_u64()), (Some(2), Some(1)));
    let records = records(&lines);
    assert!(
        records.iter().any(|r| r["verdict"] == "DROPPED" && r["dns.query"] == "api.example.test."),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| r["type"] == "RESPONSE" && r["dns.ips"] == serde_json::json!(["192.0.2.1"])),
        "{records:?}"
    );
    for path in [queries, answers] {
        std::fs::remove_file(path).unwrap();
    }
}
