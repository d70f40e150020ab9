//! Replays of real client/broker sessions (tests/fixtures/kafka, captured
//! by capture.py from confluent-kafka/librdkafka and kafka-python against a
//! tansu broker).

use kafka_protocol::messages::{ApiKey, ResponseKind};

use super::oracle::decode_response_as;
use super::*;
use crate::replies::{CLUSTER_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED};

fn api_key(frame: &[u8]) -> i16 {
    i16::from_be_bytes(frame[4..6].try_into().unwrap())
}

fn api_version(frame: &[u8]) -> i16 {
    i16::from_be_bytes(frame[6..8].try_into().unwrap())
}

#[test]
fn allowed_sessions_pass_byte_exact_with_records() {
    for (name, client, server) in sessions() {
        let mut t = tester(ALLOW_ALL);
        replay(&mut t, &client, &server);
        assert!(t.closed().is_none(), "{name}: {:?}", t.closed());
        assert_eq!(t.upstream(), client, "{name}");
        assert_eq!(t.downstream(), server, "{name}");
        let requests: Vec<_> = t.records().iter().filter(|r| r["type"] == "REQUEST").collect();
        let responses: Vec<_> = t.records().iter().filter(|r| r["type"] == "RESPONSE").collect();
        assert_eq!(requests.len(), frames(&client).len(), "{name}");
        assert_eq!(responses.len(), frames(&server).len(), "{name}");
        for (record, frame) in requests.iter().zip(frames(&client)) {
            assert_eq!(record["verdict"], "FORWARDED");
            assert_eq!(record["kafka.correlation_id"], correlation_id(frame));
            assert_eq!(record["kafka.api_version"], api_version(frame));
            assert_eq!(record["kafka.api_key"], crate::api::name(api_key(frame)));
            assert!(record["kafka.client_id"].as_str().unwrap().starts_with("porin-"), "{name}: {record}");
        }
        for (record, frame) in responses.iter().zip(frames(&server)) {
            assert_eq!(record["kafka.correlation_id"], response_correlation_id(frame));
            assert!(record["latency_ns"].as_i64().unwrap() >= 0);
        }
    }
}

#[test]
fn allowed_sessions_pass_byte_exact_one_byte_at_a_time() {
    for (name, client, server) in sessions() {
        let mut whole = tester(ALLOW_ALL);
        replay(&mut whole, &client, &server);
        let mut t = tester(ALLOW_ALL);
        let mut responses = frames(&server).into_iter().peekable();
        let mut sent = vec![];
        for request in frames(&client) {
            for b in request.chunks(1) {
                t.send(b);
            }
            sent.push(correlation_id(request));
            while let Some(response) = responses.next_if(|r| sent.contains(&response_correlation_id(r))) {
                for b in response.chunks(1) {
                    t.receive(b);
                }
            }
        }
        assert!(t.closed().is_none(), "{name}: {:?}", t.closed());
        assert_eq!(t.upstream(), client, "{name}");
        assert_eq!(t.downstream(), server, "{name}");
        let strip = |r: &serde_json::Value| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("latency_ns");
            r
        };
        let a: Vec<_> = t.records().iter().map(strip).collect();
        let b: Vec<_> = whole.records().iter().map(strip).collect();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn captures_name_the_topics_clients_used() {
    let topics = |session: &str| {
        let (_, client, server) = sessions().into_iter().find(|(n, ..)| n == session).unwrap();
        let mut t = tester(ALLOW_ALL);
        replay(&mut t, &client, &server);
        t.records()
            .iter()
            .filter(|r| r["type"] == "REQUEST")
            .map(|r| format!("{}:{}", r["kafka.api_key"].as_str().unwrap(), r["kafka.topics"]))
            .collect::<Vec<_>>()
    };
    let produce = topics("confluent-produce-1");
    assert!(produce.contains(&r#"produce:["orders"]"#.to_string()), "{produce:?}");
    assert!(produce.contains(&r#"produce:["payments"]"#.to_string()), "{produce:?}");
    let consume = topics("kpython-consume-1");
    assert!(consume.contains(&r#"fetch:["orders"]"#.to_string()), "{consume:?}");
    assert!(consume.contains(&r#"offsets:["orders"]"#.to_string()), "{consume:?}");
    let admin = topics("confluent-admin-1");
    assert!(admin.contains(&r#"createtopics:["orders","payments"]"#.to_string()), "{admin:?}");
    let group = topics("kpython-consume-2");
    assert!(group.contains(&r#"offsetcommit:["orders"]"#.to_string()), "{group:?}");
}

/// Replays a session in which some requests are denied: the broker's
/// responses to requests the filter dropped are not fed (the broker never
/// saw those requests). Returns the dropped request frames.
fn replay_with_denials<'a>(t: &mut Tester, client: &'a [u8], server: &[u8]) -> Vec<&'a [u8]> {
    let mut responses = frames(server).into_iter().peekable();
    let (mut sent, mut dropped) = (vec![], vec![]);
    for request in frames(client) {
        let before = t.upstream().len();
        t.send(request);
        if t.upstream().len() == before {
            dropped.push(request);
        } else {
            sent.push(correlation_id(request));
        }
        while let Some(response) = responses.peek() {
            let c = response_correlation_id(response);
            if dropped.iter().any(|d| correlation_id(d) == c) {
                responses.next();
            } else if sent.contains(&c) {
                t.receive(response);
                responses.next();
            } else {
                break;
            }
        }
    }
    dropped
}

#[test]
fn produce_to_a_denied_topic_is_discarded_and_answered_with_29() {
    let (_, client, server) = sessions().into_iter().find(|(n, ..)| n == "confluent-produce-1").unwrap();
    let rules = r#"{"kafka":[{"role":"produce","topic":"orders"},{"apiKey":"gettelemetrysubscriptions"}]}"#;
    let mut t = tester(rules);
    let dropped = replay_with_denials(&mut t, &client, &server);
    assert!(t.closed().is_none(), "{:?}", t.closed());
    assert_eq!(dropped.len(), 1);
    let denied = dropped[0];
    assert_eq!(api_key(denied), 0);
    // Exactly the denied request is missing upstream.
    let expected: Vec<u8> = frames(&client).into_iter().filter(|f| *f != denied).flatten().copied().collect();
    assert_eq!(t.upstream(), expected);
    // The client got every broker response plus our error, in order.
    let error = response_for(t.downstream(), correlation_id(denied));
    let v = api_version(denied);
    let ResponseKind::Produce(r) = decode_response_as(ApiKey::Produce, v, correlation_id(denied), error)
    else {
        unreachable!()
    };
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].name.0.as_str(), "payments");
    assert_eq!(r.responses[0].partition_responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let dropped_record = t.records().iter().find(|r| r["verdict"] == "DROPPED").unwrap();
    assert_eq!(dropped_record["kafka.topic"], "payments");
    assert_eq!(dropped_record["kafka.topics"], serde_json::json!(["payments"]));
}

/// The response frame with `correlation_id` in a response stream.
fn response_for(stream: &[u8], correlation_id: i32) -> &[u8] {
    frames(stream).into_iter().find(|f| response_correlation_id(f) == correlation_id).expect("response sent")
}

#[test]
fn fetch_by_name_of_a_denied_topic_is_answered_with_29() {
    let (_, client, server) = sessions().into_iter().find(|(n, ..)| n == "kpython-consume-1").unwrap();
    // kafka-python fetches "orders" with Fetch v12 (topic names).
    let mut t = tester(r#"{"kafka":[{"role":"consume","topic":"payments"}]}"#);
    let dropped = replay_with_denials(&mut t, &client, &server);
    assert!(t.closed().is_none(), "{:?}", t.closed());
    let keys: Vec<i16> = dropped.iter().map(|f| api_key(f)).collect();
    // Metadata for orders, ListOffsets and Fetch of orders are denied.
    assert!(keys.contains(&1) && keys.contains(&2) && keys.contains(&3), "{keys:?}");
    let fetch = dropped.iter().find(|f| api_key(f) == 1).unwrap();
    let frame = response_for(t.downstream(), correlation_id(fetch));
    let ResponseKind::Fetch(r) = decode_response_as(ApiKey::Fetch, 12, correlation_id(fetch), frame) else {
        unreachable!()
    };
    assert_eq!(r.responses[0].topic.0.as_str(), "orders");
    assert_eq!(r.responses[0].partitions[0].error_code, TOPIC_AUTHORIZATION_FAILED);
}

#[test]
fn consumer_session_allowed_by_roles_passes_except_the_api_versions_clamp() {
    let (_, client, server) = sessions().into_iter().find(|(n, ..)| n == "kpython-consume-1").unwrap();
    let mut t = tester(r#"{"kafka":[{"role":"consume","topic":"orders"}]}"#);
    replay(&mut t, &client, &server);
    assert!(t.closed().is_none(), "{:?}", t.closed());
    assert_eq!(t.upstream(), client);
    assert_only_api_versions_clamped("kpython-consume-1", &server, t.downstream(), &client);
    let first = frames(t.downstream())[0];
    let ResponseKind::ApiVersions(after) = decode_response_as(ApiKey::ApiVersions, 4, 1, first) else {
        panic!()
    };
    let fetch = after.api_keys.iter().find(|k| k.api_key == 1).unwrap();
    assert_eq!(fetch.max_version, 12);
    assert_ne!(frames(&server)[0], first, "tansu offers Fetch > 12");
}

#[test]
fn librdkafka_fetch_by_topic_id_fails_closed_under_topic_rules() {
    // librdkafka negotiated Fetch v16 (topic ids) with the unclamped broker.
    let (_, client, server) = sessions().into_iter().find(|(n, ..)| n == "confluent-consume-1").unwrap();
    let rules = r#"{"kafka":[{"role":"consume","topic":"orders"},{"apiKey":"gettelemetrysubscriptions"}]}"#;
    let mut t = tester(rules);
    let dropped = replay_with_denials(&mut t, &client, &server);
    assert!(t.closed().is_none(), "{:?}", t.closed());
    let fetches: Vec<_> = dropped.iter().filter(|f| api_key(f) == 1).collect();
    assert_eq!(fetches.len(), 2);
    assert!(fetches.iter().all(|f| api_version(f) == 16));
    // A rule without a topic allows them.
    let mut t = tester(r#"{"kafka":[{"role":"consume"},{"apiKey":"gettelemetrysubscriptions"}]}"#);
    replay(&mut t, &client, &server);
    assert_eq!(t.upstream(), client);
    assert_eq!(t.downstream(), server);
}

#[test]
fn producer_without_telemetry_rule_gets_a_cluster_authorization_error() {
    let (_, client, server) = sessions().into_iter().find(|(n, ..)| n == "confluent-produce-1").unwrap();
    let mut t = tester(r#"{"kafka":[{"role":"produce"}]}"#);
    let dropped = replay_with_denials(&mut t, &client, &server);
    assert_eq!(dropped.len(), 1);
    assert_eq!(api_key(dropped[0]), 71);
    let frame = response_for(t.downstream(), correlation_id(dropped[0]));
    let r = decode_response_as(ApiKey::GetTelemetrySubscriptions, 0, correlation_id(dropped[0]), frame);
    let ResponseKind::GetTelemetrySubscriptions(r) = r else { panic!() };
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);
}

/// Asserts `got` equals the broker's `server` stream except for ApiVersions
/// responses, whose max versions of topic APIs must be lowered.
fn assert_only_api_versions_clamped(name: &str, server: &[u8], got: &[u8], client: &[u8]) {
    let versions: Vec<(i32, i16, i16)> =
        frames(client).iter().map(|f| (correlation_id(f), api_key(f), api_version(f))).collect();
    let (theirs, ours) = (frames(server), frames(got));
    assert_eq!(theirs.len(), ours.len(), "{name}");
    for (b, a) in theirs.into_iter().zip(ours) {
        let (_, key, v) = *versions.iter().find(|(c, ..)| *c == response_correlation_id(b)).unwrap();
        if key != 18 {
            assert_eq!(a, b, "{name}");
            continue;
        }
        let c = response_correlation_id(b);
        let ResponseKind::ApiVersions(before) = decode_response_as(ApiKey::ApiVersions, v, c, b) else {
            panic!()
        };
        let ResponseKind::ApiVersions(after) = decode_response_as(ApiKey::ApiVersions, v, c, a) else {
            panic!()
        };
        assert_eq!(a.len(), b.len());
        for (b, a) in before.api_keys.iter().zip(&after.api_keys) {
            let limit = crate::response::topic_name_max(b.api_key);
            let expected =
                limit.filter(|l| b.max_version > *l && b.min_version <= *l).unwrap_or(b.max_version);
            assert_eq!(
                (a.api_key, a.min_version, a.max_version),
                (b.api_key, b.min_version, expected),
                "{name}"
            );
        }
    }
}

#[test]
fn librdkafka_behind_the_clamp_fetches_by_name_and_passes_topic_rules() {
    // capture.py's relay clamped ApiVersions as the filter does; the broker
    // bytes are unclamped, the client bytes show what librdkafka did next.
    let rules = r#"{"kafka":[{"role":"consume","topic":"orders"},{"apiKey":"gettelemetrysubscriptions"}]}"#;
    let mut fetches = 0;
    for (name, client, server) in sessions().into_iter().filter(|(n, ..)| n.starts_with("confluent-clamped"))
    {
        let mut t = tester(rules);
        replay(&mut t, &client, &server);
        assert!(t.closed().is_none(), "{name}: {:?}", t.closed());
        assert_eq!(t.upstream(), client, "{name}");
        assert_only_api_versions_clamped(&name, &server, t.downstream(), &client);
        assert!(t.records().iter().all(|r| r["verdict"] == "FORWARDED"), "{name}");
        fetches += frames(&client).iter().filter(|f| api_key(f) == 1 && api_version(f) == 12).count();
    }
    assert!(fetches >= 1);
}
