//! The live proxy (`porin gateway --log-flows`) between real clients and real
//! servers of the protocols its Wasm filters speak: redis-cli and
//! redis-server through the SDK's Redis example filter, loaded from
//! `filters_dir`; confluent-kafka (librdkafka) and kafka-python against a
//! tansu broker through the built-in Kafka filter. Everything runs on
//! 127.0.0.1.

use porin_tests::{
    Gateway, RedisServer, Tansu, build_sdk_example, free_port, have_kafka_clients, kafka_client, redis_cli,
};
use serde_json::Value;

const NOPERM: &str = "NOPERM this command is not allowed by policy";

/// The L7 request flows: (verdict, flow).
fn requests(flows: &[Value]) -> Vec<(&str, &Value)> {
    flows
        .iter()
        .filter(|f| f["Type"] == "L7" && f["l7"]["type"] == "REQUEST")
        .map(|f| (f["verdict"].as_str().unwrap(), f))
        .collect()
}

#[test]
fn redis_cli_gets_noperm_for_denied_keys_and_redis_never_sees_them() {
    let Some(redis) = RedisServer::start() else { return };
    let module = build_sdk_example("redis_filter");
    let port = free_port();
    let gateway = Gateway::start_with(
        &format!(
            "listeners:\n  - name: redis\n    listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{}\n    filter: redis\n    \
             rules: {{l7proto: redis, l7: [{{command: GET, key: \"public:*\"}}, {{command: SET, key: \"public:*\"}}, {{command: PING}}]}}\n\
             filters_dir: {{dir}}/filters\n",
            redis.port
        ),
        |dir| {
            std::fs::create_dir_all(dir.join("filters")).unwrap();
            std::fs::copy(&module, dir.join("filters/redis.wasm")).unwrap();
        },
    );
    let cli = |args: &[&str]| redis_cli(port, args, "");

    assert_eq!(cli(&["PING"]), "PONG\n");
    assert_eq!(cli(&["SET", "public:a", "1"]), "OK\n");
    assert_eq!(cli(&["GET", "public:a"]), "1\n");
    assert_eq!(cli(&["GET", "secret:x"]).trim(), NOPERM);
    assert_eq!(cli(&["SET", "secret:x", "1"]).trim(), NOPERM);
    // A command no rule names, on an allowed key.
    assert_eq!(cli(&["DEL", "public:a"]).trim(), NOPERM);
    assert_eq!(cli(&["SET", "public:b", "2"]), "OK\n");
    // Several commands over one connection: the error keeps its place.
    assert_eq!(
        redis_cli(port, &[], "GET public:b\nSET secret:y 2\nGET public:a\n"),
        format!("2\n{NOPERM}\n\n1\n")
    );

    // Straight to redis-server: allowed writes landed, denied ones did not.
    let direct = |args: &[&str]| redis_cli(redis.port, args, "");
    assert_eq!(direct(&["GET", "public:a"]), "1\n");
    assert_eq!(direct(&["GET", "public:b"]), "2\n");
    assert_eq!(direct(&["EXISTS", "secret:x", "secret:y"]), "0\n");

    let flows = gateway.flows();
    let requests = requests(&flows);
    let mut seen: Vec<(&str, &str, Vec<&str>)> = requests
        .iter()
        .map(|(verdict, f)| {
            let redis = &f["l7"]["redis"];
            let keys = redis["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
            (*verdict, redis["command"].as_str().unwrap(), keys)
        })
        .collect();
    let expected = [
        ("FORWARDED", "PING", vec![]),
        ("FORWARDED", "SET", vec!["public:a"]),
        ("FORWARDED", "GET", vec!["public:a"]),
        ("DROPPED", "GET", vec!["secret:x"]),
        ("DROPPED", "SET", vec!["secret:x"]),
        ("DROPPED", "DEL", vec!["public:a"]),
        ("FORWARDED", "SET", vec!["public:b"]),
        ("FORWARDED", "GET", vec!["public:b"]),
        ("DROPPED", "SET", vec!["secret:y"]),
        ("FORWARDED", "GET", vec!["public:a"]),
    ];
    // redis-cli reading commands from stdin first asks for COMMAND DOCS (for
    // its hints); no rule allows that, and redis-cli does without.
    assert!(seen.iter().any(|s| s.1 == "COMMAND"), "{seen:?}");
    assert!(seen.iter().filter(|s| s.1 == "COMMAND").all(|s| s.0 == "DROPPED"), "{seen:?}");
    seen.retain(|s| s.1 != "COMMAND");
    for request in &expected {
        assert!(seen.contains(request), "no {request:?} flow in {seen:?}");
    }
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for (verdict, flow) in &requests {
        assert_eq!(flow["proxy"]["filter"], "redis", "{flow}");
        if *verdict == "DROPPED" {
            assert_eq!(flow["drop_reason_desc"], "POLICY_DENIED", "{flow}");
        }
    }
}

/// Cilium's Kafka rules for a service that may produce to and consume from
/// `orders`, plus the topic-free APIs current clients send (kafka-python
/// InitProducerId for idempotence, librdkafka telemetry).
const KAFKA_RULES: &str = "\n        - {role: produce, topic: orders}\n        - {role: consume, topic: orders}\
     \n        - {apiKey: initproducerid}\n        - {apiKey: gettelemetrysubscriptions}\n        - {apiKey: pushtelemetry}";

/// A tansu broker advertising the gateway's address, topics `orders` and
/// `payments` (created on the broker directly), and the gateway in front of
/// it with `rules` (the items of a `kafka:` list).
fn kafka_gateway(rules: &str) -> Option<(Tansu, Gateway, String)> {
    if !have_kafka_clients() {
        return None;
    }
    let port = free_port();
    let tansu = Tansu::start(port);
    tansu.create_topic("orders");
    tansu.create_topic("payments");
    let gateway = Gateway::start(&format!(
        "listeners:\n  - name: kafka\n    listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{}\n    filter: kafka\n    \
         rules:\n      kafka:{rules}\n",
        tansu.port
    ));
    Some((tansu, gateway, format!("127.0.0.1:{port}")))
}

/// `kafka_client.py COMMAND --lib LIB --bootstrap BOOTSTRAP --count COUNT EXTRA... TOPICS...`.
fn kafka(command: &str, lib: &str, bootstrap: &str, count: u32, extra: &[&str], topics: &[&str]) -> Value {
    let count = count.to_string();
    let mut args = vec![command, "--lib", lib, "--bootstrap", bootstrap, "--count", &count];
    args.extend(extra);
    args.extend(topics);
    kafka_client(&args)
}

/// One topic's entry in a kafka_client.py report.
fn topic<'a>(report: &'a Value, name: &str) -> &'a Value {
    &report["topics"][name]
}

fn delivered_all(report: &Value, name: &str, count: u32) -> bool {
    topic(report, name)["ok"] == count && topic(report, name)["errors"] == serde_json::json!([])
}

fn authorization_failed(report: &Value, name: &str) -> bool {
    topic(report, name)["ok"] == 0
        && topic(report, name)["errors"] == serde_json::json!(["TOPIC_AUTHORIZATION_FAILED"])
}

/// The Kafka request flows: (verdict, api key, topics, client id).
fn kafka_requests(flows: &[Value]) -> Vec<(&str, &str, Vec<&str>, &str)> {
    requests(flows)
        .into_iter()
        .map(|(verdict, f)| {
            let kafka = &f["l7"]["kafka"];
            let topics = kafka["topics"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
            (verdict, kafka["api_key"].as_str().unwrap(), topics, kafka["client_id"].as_str().unwrap())
        })
        .collect()
}

const CLIENTS: [&str; 2] = ["confluent", "kafka-python"];

#[test]
fn kafka_clients_produce_and_consume_orders_and_get_authorization_errors_for_payments() {
    // Metadata for any topic, so that clients go on to send Produce and
    // ListOffsets for `payments`, which the filter must refuse itself.
    let rules = format!("{KAFKA_RULES}\n        - {{apiKey: metadata}}");
    let Some((_tansu, gateway, bootstrap)) = kafka_gateway(&rules) else { return };

    for lib in CLIENTS {
        let report = kafka("produce", lib, &bootstrap, 3, &[], &["orders", "payments"]);
        assert!(delivered_all(&report, "orders", 3), "{report}");
        assert!(authorization_failed(&report, "payments"), "{report}");
    }
    for lib in CLIENTS {
        let report = kafka("consume", lib, &bootstrap, 6, &[], &["orders", "payments"]);
        assert!(delivered_all(&report, "orders", 6), "{report}");
        let values = &topic(&report, "orders")["values"];
        let produced = ["orders 0", "orders 1", "orders 2", "orders 0", "orders 1", "orders 2"];
        assert_eq!(values, &serde_json::json!(produced), "{report}");
        assert!(authorization_failed(&report, "payments"), "{report}");
    }

    let flows = gateway.flows();
    let requests = kafka_requests(&flows);
    for client in ["porin-e2e-confluent", "porin-e2e-kafka-python"] {
        for (verdict, api_key, topic) in [
            ("FORWARDED", "produce", "orders"),
            ("DROPPED", "produce", "payments"),
            ("FORWARDED", "offsets", "orders"),
            ("FORWARDED", "fetch", "orders"),
            ("DROPPED", "offsets", "payments"),
        ] {
            let wanted = (verdict, api_key, &[topic][..], client);
            assert!(
                requests.iter().any(|r| (r.0, r.1, &r.2[..], r.3) == wanted),
                "no {verdict} {api_key} {topic} flow from {client}: {requests:?}"
            );
        }
    }
    // Only requests naming `payments` were refused, and only Metadata
    // naming it passed.
    for (verdict, api_key, topics, _) in &requests {
        match *verdict {
            "DROPPED" => assert_eq!(topics, &["payments"], "{requests:?}"),
            _ => assert!(!topics.contains(&"payments") || *api_key == "metadata", "{requests:?}"),
        }
    }
    for flow in flows.iter().filter(|f| f["Type"] == "L7") {
        assert_eq!(flow["proxy"]["filter"], "kafka", "{flow}");
        if flow["verdict"] == "DROPPED" {
            assert_eq!(flow["drop_reason_desc"], "POLICY_DENIED", "{flow}");
        }
    }
    // With topic rules the filter lowers the ApiVersions the broker
    // advertises, so librdkafka fetches by topic name (v12), not by id (v13+).
    let clamped = flows.iter().filter(|f| f["l7"]["kafka"]["api_versions_clamped"] == 1).count();
    assert!(clamped > 0, "no ApiVersions response was clamped");
    for flow in
        flows.iter().filter(|f| f["l7"]["type"] == "REQUEST" && f["l7"]["kafka"]["api_key"] == "fetch")
    {
        assert!(flow["l7"]["kafka"]["api_version"].as_u64().unwrap() <= 12, "{flow}");
    }

    // Open everything up: `payments` is empty, so no denied record ever
    // reached the broker; `orders` holds the six produced, and no more.
    let config = std::fs::read_to_string(&gateway.config).unwrap();
    let open = format!("{}\n      kafka: [{{}}]\n", &config[..config.find("\n      kafka:").unwrap()]);
    std::fs::write(&gateway.config, open).unwrap();
    gateway.signal("HUP");
    gateway.wait_for_stderr("rules reloaded", 1);
    let linger = ["--linger", "2"];
    let report = kafka("consume", "confluent", &bootstrap, 6, &linger, &["orders"]);
    assert!(delivered_all(&report, "orders", 6), "{report}");
    let report = kafka("consume", "confluent", &bootstrap, 0, &linger, &["payments"]);
    assert!(delivered_all(&report, "payments", 0), "{report}");
}

#[test]
fn kafka_cilium_produce_role_alone_refuses_other_topics_at_metadata_or_produce() {
    // No metadata rule: `role: produce` allows Metadata for `orders` only.
    let Some((_tansu, gateway, bootstrap)) = kafka_gateway(KAFKA_RULES) else { return };
    for lib in CLIENTS {
        let report = kafka("produce", lib, &bootstrap, 2, &[], &["orders", "payments"]);
        assert!(delivered_all(&report, "orders", 2), "{report}");
        assert!(authorization_failed(&report, "payments"), "{report}");
    }
    let flows = gateway.flows();
    let requests = kafka_requests(&flows);
    // librdkafka asks for `payments` metadata, which is refused, so it never
    // produces there.
    let confluent: Vec<_> = requests.iter().filter(|r| r.3 == "porin-e2e-confluent").collect();
    let metadata_denied = ("DROPPED", "metadata", &["payments"][..]);
    assert!(confluent.iter().any(|r| (r.0, r.1, &r.2[..]) == metadata_denied), "{confluent:?}");
    assert!(!confluent.iter().any(|r| r.1 == "produce" && r.2.contains(&"payments")), "{confluent:?}");
    // kafka-python asks for no topics (brokers only: allowed by any rule;
    // tansu answers it with every topic), so its Produce is what is refused.
    let kpython: Vec<_> = requests.iter().filter(|r| r.3 == "porin-e2e-kafka-python").collect();
    let produce_denied = ("DROPPED", "produce", &["payments"][..]);
    assert!(kpython.iter().any(|r| (r.0, r.1, &r.2[..]) == produce_denied), "{kpython:?}");
    for (verdict, _, topics, _) in &requests {
        assert_eq!(*verdict == "DROPPED", topics.contains(&"payments"), "{requests:?}");
    }
}
