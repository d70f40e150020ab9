//! Rule semantics (Cilium's), rule changes on open connections, response
//! ordering, Produce streaming and Fetch sessions.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use porin_sdk::Rules;

use super::oracle::{
    ORDERS_ONLY, PAYMENTS_ONLY, TOPICS, TopicSpec, build_with, decode_response_as, encode_as, s,
};
use super::*;
use crate::replies::TOPIC_AUTHORIZATION_FAILED;
use crate::{CANNOT_ENFORCE, KafkaRules};

/// A request frame from client "c1" (or `client`).
fn req(key: ApiKey, v: i16, cid: i32, topics: &[TopicSpec]) -> Vec<u8> {
    encode_as(key, v, cid, Some("c1"), &build_with(key, v, topics))
}

/// Runs one request through a fresh connection: forwarded or not.
fn forwarded(rules: &str, frame: &[u8]) -> bool {
    let mut t = tester(rules);
    t.send(frame);
    assert!(t.closed().is_none(), "{:?}", t.closed());
    let passed = t.upstream() == frame;
    assert!(passed || t.upstream().is_empty());
    assert_eq!(passed, t.downstream().is_empty(), "a denied request is answered");
    passed
}

fn metadata(v: i16, cid: i32, topics: Option<&[&'static str]>) -> Vec<u8> {
    let topics = topics.map(|ts| {
        ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))).collect()
    });
    encode_as(
        ApiKey::Metadata,
        v,
        cid,
        Some("c1"),
        &RequestKind::Metadata(MetadataRequest::default().with_topics(topics)),
    )
}

/// A request with only a header (and an empty body) of any key.
fn bare(key: i16, v: i16, cid: i32, client: Option<&str>) -> Vec<u8> {
    let mut f = vec![0; 4];
    f.extend_from_slice(&key.to_be_bytes());
    f.extend_from_slice(&v.to_be_bytes());
    f.extend_from_slice(&cid.to_be_bytes());
    match client {
        Some(c) => {
            f.extend_from_slice(&(c.len() as i16).to_be_bytes());
            f.extend_from_slice(c.as_bytes());
        }
        None => f.extend_from_slice(&(-1i16).to_be_bytes()),
    }
    f.push(0); // header tags (flexible) / harmless body byte
    let n = (f.len() - 4) as u32;
    f[..4].copy_from_slice(&n.to_be_bytes());
    f
}

#[test]
fn semantics_table() {
    let produce = |topics: &[TopicSpec]| req(ApiKey::Produce, 9, 1, topics);
    let fetch = |v: i16, topics: &[TopicSpec]| req(ApiKey::Fetch, v, 1, topics);
    let api_versions = req(ApiKey::ApiVersions, 3, 1, &[]);
    let join = req(ApiKey::JoinGroup, 7, 1, &[]);
    let heartbeat = req(ApiKey::Heartbeat, 4, 1, &[]);
    let find = req(ApiKey::FindCoordinator, 4, 1, &[]);
    let init_pid = req(ApiKey::InitProducerId, 4, 1, &[]);
    let create = req(ApiKey::CreateTopics, 7, 1, &ORDERS_ONLY);
    let commit = req(ApiKey::OffsetCommit, 9, 1, &ORDERS_ONLY);
    let offsets = req(ApiKey::ListOffsets, 9, 1, &ORDERS_ONLY);
    let offset_fetch = req(ApiKey::OffsetFetch, 9, 1, &ORDERS_ONLY);
    let all_metadata = metadata(12, 1, None);
    let brokers_only = metadata(12, 1, Some(&[]));
    let create_acls = bare(30, 3, 1, Some("c1"));
    let unknown_key = bare(1000, 0, 1, Some("c1"));
    let describe_broker = encode_as(
        ApiKey::DescribeConfigs,
        4,
        1,
        Some("c1"),
        &RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1")),
            ])),
    );
    let produce_orders = r#"{"kafka":[{"role":"produce","topic":"orders"}]}"#;
    let consume_orders = r#"{"kafka":[{"role":"consume","topic":"orders"}]}"#;
    let both = r#"{"kafka":[{"role":"produce","topic":"orders"},{"role":"produce","topic":"payments"}]}"#;
    let topic_only = r#"{"kafka":[{"topic":"orders"}]}"#;
    let cases: Vec<(&str, &str, Vec<u8>, bool)> = vec![
        ("produce role", produce_orders, produce(&ORDERS_ONLY), true),
        ("produce role", produce_orders, produce(&PAYMENTS_ONLY), false),
        ("produce role: every topic must be allowed", produce_orders, produce(&TOPICS), false),
        ("produce role", produce_orders, metadata(12, 1, Some(&["orders"])), true),
        ("produce role", produce_orders, metadata(12, 1, Some(&["orders", "payments"])), false),
        ("all topics needs a rule without topic", produce_orders, all_metadata.clone(), false),
        ("explicitly no topics", produce_orders, brokers_only.clone(), true),
        ("produce role", produce_orders, api_versions.clone(), true),
        ("produce role", produce_orders, fetch(12, &ORDERS_ONLY), false),
        ("produce role (Cilium's list)", produce_orders, find.clone(), false),
        ("produce role (Cilium's list)", produce_orders, init_pid.clone(), false),
        ("two rules cover two topics", both, produce(&TOPICS), true),
        ("consume role", consume_orders, fetch(12, &ORDERS_ONLY), true),
        ("consume role", consume_orders, fetch(12, &PAYMENTS_ONLY), false),
        ("topic ids cannot be checked", consume_orders, fetch(13, &ORDERS_ONLY), false),
        ("consume role", consume_orders, offsets.clone(), true),
        ("consume role", consume_orders, commit.clone(), true),
        ("consume role", consume_orders, offset_fetch.clone(), true),
        ("consume role: topic-free group APIs", consume_orders, join.clone(), true),
        ("consume role: topic-free group APIs", consume_orders, heartbeat.clone(), true),
        ("consume role", consume_orders, find.clone(), true),
        ("consume role", consume_orders, produce(&ORDERS_ONLY), false),
        ("consume role", consume_orders, create.clone(), false),
        ("apiKey any case", r#"{"kafka":[{"apiKey":"Metadata"}]}"#, all_metadata.clone(), true),
        ("apiKey", r#"{"kafka":[{"apiKey":"metadata"}]}"#, api_versions.clone(), false),
        ("apiVersion exact", r#"{"kafka":[{"apiKey":"fetch","apiVersion":"12"}]}"#, fetch(12, &TOPICS), true),
        (
            "apiVersion exact",
            r#"{"kafka":[{"apiKey":"fetch","apiVersion":"11"}]}"#,
            fetch(12, &TOPICS),
            false,
        ),
        (
            "rule without topic allows topic ids",
            r#"{"kafka":[{"apiKey":"fetch"}]}"#,
            fetch(13, &TOPICS),
            true,
        ),
        ("clientID exact", r#"{"kafka":[{"clientID":"c1"}]}"#, produce(&TOPICS), true),
        ("clientID exact", r#"{"kafka":[{"clientID":"c2"}]}"#, produce(&TOPICS), false),
        ("clientID vs null client id", r#"{"kafka":[{"clientID":"c1"}]}"#, bare(18, 0, 1, None), false),
        ("topic only: topic APIs", topic_only, produce(&ORDERS_ONLY), true),
        ("topic only: topic-free APIs", topic_only, api_versions.clone(), true),
        ("topic only: ACLs name resources", topic_only, create_acls.clone(), false),
        ("topic only: unknown keys", topic_only, unknown_key.clone(), false),
        ("topic only: broker configs", topic_only, describe_broker.clone(), false),
        ("empty rule", ALLOW_ALL, unknown_key.clone(), true),
        ("empty rule", ALLOW_ALL, fetch(13, &TOPICS), true),
        ("no rules", r#"{"kafka":[]}"#, api_versions.clone(), false),
    ];
    for (what, rules, frame, expected) in cases {
        let mut t = tester(rules);
        t.send(&frame);
        let passed = t.upstream() == frame;
        assert_eq!(passed, expected, "{what}: {rules}");
        if !passed {
            assert!(t.upstream().is_empty(), "{what}");
            // Denied with an error response, or closed when none exists.
            assert!(!t.downstream().is_empty() || t.closed().is_some(), "{what}");
        }
    }
}

#[test]
fn rule_sets_are_validated() {
    let ok = [
        r#"{"kafka":[{}]}"#,
        r#"{"kafka":[{"role":"Produce","topic":"a.b_c-1"}]}"#,
        r#"{"kafka":[{"apiKey":"OffsetForLeaderEpoch","apiVersion":"3","clientID":"x"}]}"#,
        r#"{"kafka":[{"apiKey":"gettelemetrysubscriptions"},{"apiKey":"apiversions","role":""}]}"#,
        r#"{"kafka":[]}"#,
    ];
    for json in ok {
        KafkaRules::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    }
    let bad = [
        (r#"{"kafka":[{"role":"produce","apiKey":"fetch"}]}"#, "cannot be set together"),
        (r#"{"kafka":[{"role":"admin"}]}"#, "unknown role"),
        (r#"{"kafka":[{"apiKey":"fetchall"}]}"#, "unknown apiKey"),
        (r#"{"kafka":[{"apiVersion":"x"}]}"#, "apiVersion"),
        (r#"{"kafka":[{"apiVersion":"-1"}]}"#, "apiVersion"),
        (r#"{"kafka":[{"apiVersion":"40000"}]}"#, "apiVersion"),
        (r#"{"kafka":[{"topic":"a b"}]}"#, "invalid topic"),
        (r#"{"kafka":[{"topik":"a"}]}"#, "unknown field"),
        (r#"{"http":[{}]}"#, "unknown field"),
        (r#"{"kafka":{}}"#, "invalid"),
    ];
    for (json, why) in bad {
        let err = KafkaRules::parse(json).expect_err(json);
        assert!(err.contains(why), "{json}: {err}");
    }
    let long = format!(r#"{{"kafka":[{{"topic":"{}"}}]}}"#, "a".repeat(256));
    assert!(KafkaRules::parse(&long).is_err());
    let rules = KafkaRules::parse(r#"{"kafka":[{"role":"consume"}]}"#).unwrap();
    assert_eq!(rules.rules[0].keys.as_ref().unwrap(), &[1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18]);
    let rules = KafkaRules::parse(r#"{"kafka":[{"role":"PRODUCE"}]}"#).unwrap();
    assert_eq!(rules.rules[0].keys.as_ref().unwrap(), &[0, 3, 18]);
}

#[test]
fn rule_changes_apply_to_the_next_request_and_removal_denies() {
    let mut t = tester(ALLOW_ALL);
    let first = req(ApiKey::Produce, 9, 1, &ORDERS_ONLY);
    t.send(&first);
    assert_eq!(t.upstream(), first);
    t.set_rules(r#"{"kafka":[{"role":"produce","topic":"payments"}]}"#).unwrap();
    t.send(&req(ApiKey::Produce, 9, 2, &ORDERS_ONLY));
    assert_eq!(t.upstream(), first, "replaced rules deny orders");
    let allowed = req(ApiKey::Produce, 9, 3, &PAYMENTS_ONLY);
    t.send(&allowed);
    assert_eq!(t.upstream().len(), first.len() + allowed.len());
    t.remove_rules();
    t.send(&req(ApiKey::ApiVersions, 3, 4, &[]));
    assert_eq!(t.upstream().len(), first.len() + allowed.len(), "removed rules deny everything");
    let verdicts: Vec<_> = t.records().iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["FORWARDED", "DROPPED", "FORWARDED", "DROPPED"]);
    assert!(t.closed().is_none());
}

fn produce_response(v: i16, cid: i32, error: i16) -> Vec<u8> {
    let body = ProduceResponse::default().with_responses(vec![
        produce_response::TopicProduceResponse::default()
            .with_name(TopicName(s("orders")))
            .with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_index(0).with_error_code(error),
            ]),
    ]);
    response_frame(ApiKey::Produce, v, cid, &ResponseKind::Produce(body))
}

fn response_frame(key: ApiKey, v: i16, cid: i32, body: &ResponseKind) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(cid)
        .encode(&mut buf, key.response_header_version(v))
        .unwrap();
    body.encode(&mut buf, v).unwrap();
    let mut frame = (buf.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

fn error_of(frame: &[u8], key: ApiKey, v: i16, cid: i32) -> i16 {
    match decode_response_as(key, v, cid, frame) {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        ResponseKind::Fetch(r) => r.responses[0].partitions[0].error_code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn denied_responses_wait_for_earlier_responses() {
    let mut t = tester(produce_orders());
    t.send(&req(ApiKey::Produce, 9, 1, &ORDERS_ONLY));
    t.send(&req(ApiKey::Produce, 9, 2, &PAYMENTS_ONLY));
    assert!(t.downstream().is_empty(), "the error waits for response 1");
    let first = produce_response(9, 1, 0);
    t.receive(&first[..10]);
    assert!(t.downstream().is_empty(), "the filter reads the start of a response before passing it");
    t.receive(&first[10..]);
    let (head, error) = t.downstream().split_at(first.len());
    assert_eq!(head, first);
    assert_eq!(error_of(error, ApiKey::Produce, 9, 2), TOPIC_AUTHORIZATION_FAILED);
    let error = error.len();
    // Nothing in flight: the next denial is answered at once.
    t.send(&req(ApiKey::Produce, 9, 3, &PAYMENTS_ONLY));
    let third = &t.downstream()[first.len() + error..];
    assert_eq!(error_of(third, ApiKey::Produce, 9, 3), TOPIC_AUTHORIZATION_FAILED);
    let response = t.records().iter().find(|r| r["type"] == "RESPONSE").unwrap();
    assert_eq!(response["kafka.error_code"], 0);
    assert_eq!(response["kafka.api_key"], "produce");
    assert!(t.closed().is_none());
}

fn produce_orders() -> &'static str {
    r#"{"kafka":[{"role":"produce","topic":"orders"},{"role":"consume","topic":"orders"}]}"#
}

fn fetch_response(v: i16, cid: i32, session: i32, records: usize) -> Vec<u8> {
    let body = FetchResponse::default().with_session_id(session).with_responses(vec![
        FetchableTopicResponse::default().with_topic(TopicName(s("orders"))).with_partitions(vec![
            PartitionData::default()
                .with_partition_index(0)
                .with_records(Some(Bytes::from(vec![7u8; records]))),
        ]),
    ]);
    response_frame(ApiKey::Fetch, v, cid, &ResponseKind::Fetch(body))
}

#[test]
fn a_denial_while_a_response_streams_is_sequenced_by_a_probe() {
    let mut t = tester(produce_orders());
    t.send(&req(ApiKey::Fetch, 12, 1, &ORDERS_ONLY));
    let big = fetch_response(12, 1, 0, 100_000);
    t.receive(&big[..1000]); // the filter PASSes the rest beyond its buffer
    let sent = t.upstream().len();
    t.send(&req(ApiKey::Produce, 9, 2, &PAYMENTS_ONLY));
    // Not answered yet (it could land inside the fetch response); a probe
    // went to the broker instead.
    assert_eq!(t.downstream(), &big[..1000]);
    let probe = &t.upstream()[sent..];
    assert_eq!(probe, b"\0\0\0\x0f\0\x12\0\0\0\0\0\x02\0\x05porin");
    t.receive(&big[1000..]);
    assert_eq!(t.downstream(), big);
    let probe_answer =
        response_frame(ApiKey::ApiVersions, 0, 2, &ResponseKind::ApiVersions(ApiVersionsResponse::default()));
    t.receive(&probe_answer);
    let error = &t.downstream()[big.len()..];
    assert_eq!(error_of(error, ApiKey::Produce, 9, 2), TOPIC_AUTHORIZATION_FAILED);
    assert!(t.closed().is_none());
}

fn produce_with(v: i16, cid: i32, acks: i16, topics: Vec<(&'static str, Vec<usize>)>) -> Vec<u8> {
    let body = ProduceRequest::default().with_acks(acks).with_timeout_ms(1000).with_topic_data(
        topics
            .into_iter()
            .map(|(name, sizes)| {
                TopicProduceData::default().with_name(TopicName(s(name))).with_partition_data(
                    sizes
                        .into_iter()
                        .enumerate()
                        .map(|(i, n)| {
                            PartitionProduceData::default()
                                .with_index(i as i32)
                                .with_records(Some(Bytes::from(vec![1u8; n])))
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    encode_as(ApiKey::Produce, v, cid, Some("c1"), &RequestKind::Produce(body))
}

#[test]
fn acks_zero_produce_expects_no_response() {
    let mut t = tester(produce_orders());
    t.send(&produce_with(9, 1, 0, vec![("payments", vec![10])]));
    assert!(t.upstream().is_empty() && t.downstream().is_empty(), "denied silently: no response is expected");
    let allowed = produce_with(9, 2, 0, vec![("orders", vec![10])]);
    t.send(&allowed);
    t.send(&req(ApiKey::Produce, 9, 3, &ORDERS_ONLY));
    // Only request 3 awaits a response.
    t.receive(&produce_response(9, 3, 0));
    assert!(t.closed().is_none(), "{:?}", t.closed());
}

#[test]
fn large_produce_is_decided_before_its_record_batch_arrives() {
    for v in [3, 8, 9, 12] {
        let frame = produce_with(v, 1, -1, vec![("orders", vec![3 << 20])]);
        let mut t = tester(produce_orders());
        t.send(&frame[..200]);
        assert_eq!(t.upstream(), &frame[..200], "v{v}: forwarded before the batch is in");
        for chunk in frame[200..].chunks(64 << 10) {
            t.send(chunk);
        }
        assert_eq!(t.upstream().len(), frame.len());
        assert!(t.closed().is_none());
        let frame = produce_with(v, 2, -1, vec![("payments", vec![3 << 20])]);
        let mut t = tester(produce_orders());
        t.send(&frame[..200]);
        assert_eq!(t.records()[0]["verdict"], "DROPPED", "v{v}: decided at once");
        for chunk in frame[200..].chunks(64 << 10) {
            t.send(chunk);
        }
        // The error response follows the discarded request (the host sends
        // an INJECT once the DROP before it completes).
        assert!(t.upstream().is_empty() && t.closed().is_none());
        assert_eq!(error_of(t.downstream(), ApiKey::Produce, v, 2), TOPIC_AUTHORIZATION_FAILED);
        // The connection goes on after the discarded batch.
        let next = req(ApiKey::Produce, v, 3, &ORDERS_ONLY);
        t.send(&next);
        assert_eq!(t.upstream(), next);
    }
}

#[test]
fn produce_with_topics_beyond_the_inspection_limit() {
    // Two partitions: the first batch (2 MiB) hides the second topic.
    let frame = produce_with(9, 1, -1, vec![("orders", vec![2 << 20]), ("payments", vec![10])]);
    let mut t = tester(ALLOW_ALL);
    for chunk in frame.chunks(64 << 10) {
        t.send(chunk);
    }
    assert_eq!(t.upstream(), frame, "a rule without topics does not need them");
    let mut t = tester(produce_orders());
    for chunk in frame.chunks(64 << 10) {
        t.send(chunk);
    }
    assert!(t.upstream().is_empty());
    assert!(
        matches!(t.closed(), Some(porin_sdk::driver::DriverError::Filter { code: CANNOT_ENFORCE, .. })),
        "{:?}",
        t.closed()
    );
}

fn fetch_session(v: i16, cid: i32, session: i32, epoch: i32, topics: &[TopicSpec]) -> Vec<u8> {
    let RequestKind::Fetch(r) = build_with(ApiKey::Fetch, v, topics) else { unreachable!() };
    let r = r.with_session_id(session).with_session_epoch(epoch).with_forgotten_topics_data(vec![]);
    encode_as(ApiKey::Fetch, v, cid, Some("c1"), &RequestKind::Fetch(r))
}

#[test]
fn incremental_fetches_are_checked_against_their_session() {
    let mut t = tester(produce_orders());
    let open = fetch_session(12, 1, 0, 0, &ORDERS_ONLY);
    t.send(&open);
    t.receive(&fetch_response(12, 1, 77, 10));
    let incremental = fetch_session(12, 2, 77, 1, &[]);
    t.send(&incremental);
    assert_eq!(t.upstream().len(), open.len() + incremental.len(), "session topics allowed");
    t.receive(&fetch_response(12, 2, 77, 10));
    t.set_rules(r#"{"kafka":[{"role":"consume","topic":"payments"}]}"#).unwrap();
    t.send(&fetch_session(12, 3, 77, 2, &[]));
    assert_eq!(t.upstream().len(), open.len() + incremental.len(), "the session's orders is now denied");
    let error = &t.downstream()[t.downstream().len() - 30..];
    assert!(!error.is_empty());
    // A session opened on another connection cannot be checked.
    let mut t = tester(produce_orders());
    t.send(&fetch_session(12, 1, 99, 5, &ORDERS_ONLY));
    assert!(t.upstream().is_empty());
    let mut t = tester(r#"{"kafka":[{"role":"consume"}]}"#);
    let unknown = fetch_session(12, 1, 99, 5, &[]);
    t.send(&unknown);
    assert_eq!(t.upstream(), unknown);
}

#[test]
fn request_records_carry_hubble_fields() {
    let mut t = tester(produce_orders());
    t.send(&req(ApiKey::Produce, 9, 5, &TOPICS));
    let r = &t.records()[0];
    assert_eq!(r["type"], "REQUEST");
    assert_eq!(r["verdict"], "DROPPED");
    assert_eq!(r["kafka.api_key"], "produce");
    assert_eq!(r["kafka.api_version"], 9);
    assert_eq!(r["kafka.correlation_id"], 5);
    assert_eq!(r["kafka.client_id"], "c1");
    assert_eq!(r["kafka.topic"], "orders");
    assert_eq!(r["kafka.topics"], serde_json::json!(["orders", "payments"]));
    let mut t = tester(produce_orders());
    t.send(&req(ApiKey::Produce, 9, 6, &ORDERS_ONLY));
    t.receive(&produce_response(9, 6, 6));
    let r = &t.records()[1];
    assert_eq!(r["type"], "RESPONSE");
    assert_eq!(r["verdict"], "FORWARDED");
    assert_eq!(r["kafka.correlation_id"], 6);
    assert_eq!(r["kafka.error_code"], 6);
    assert!(r["latency_ns"].as_i64().is_some());
    assert!(forwarded(ALLOW_ALL, &bare(50, 0, 1, Some("c1"))));
}
