//! porin's Kafka filter: Cilium's Kafka rules, enforced on the Kafka
//! protocol clients speak today, as a sandboxed WebAssembly stream filter.
//!
//! # Rules
//!
//! `{"kafka":[{"role":"produce","topic":"orders"},{"apiKey":"metadata"},
//! {"apiKey":"fetch","apiVersion":"11","clientID":"c1","topic":"t"}]}` —
//! Cilium's `PortRuleKafka`:
//!
//! * `role`: `produce` allows Produce, Metadata, ApiVersions; `consume`
//!   allows Fetch, ListOffsets (`offsets`), Metadata, OffsetCommit,
//!   OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup,
//!   SyncGroup, ApiVersions. These are Cilium's exact lists; current clients
//!   send more (kafka-python 3 and Java producers InitProducerId for
//!   idempotence, librdkafka ≥ 2.5 GetTelemetrySubscriptions/PushTelemetry,
//!   KIP-848 consumers ConsumerGroupHeartbeat): add `apiKey` rules for those.
//! * `apiKey`: one key by Cilium's lowercase name (produce, fetch, offsets,
//!   metadata, leaderandisr, stopreplica, updatemetadata, controlledshutdown,
//!   offsetcommit, offsetfetch, findcoordinator, joingroup, heartbeat,
//!   leavegroup, syncgroup, describegroups, listgroups, saslhandshake,
//!   apiversions, createtopics, deletetopics, deleterecords, initproducerid,
//!   offsetforleaderepoch, addpartitionstotxn, addoffsetstotxn, endtxn,
//!   writetxnmarkers, txnoffsetcommit, describeacls, createacls, deleteacls,
//!   describeconfigs, alterconfigs), any case; porin also accepts
//!   saslauthenticate, deletegroups, describecluster, consumergroupheartbeat,
//!   consumergroupdescribe, gettelemetrysubscriptions, pushtelemetry.
//! * `apiVersion` (a string, as in Cilium), `clientID`, `topic`: exact.
//! * `role` with `apiKey` is refused, as are unknown roles, keys, fields,
//!   non-numeric versions and invalid topic names (Kafka's alphabet, ≤ 255).
//!   Empty strings mean "not set"; `{}` allows everything; `"kafka":[]`
//!   allows nothing; a removed rule set denies everything.
//!
//! A request is allowed when **every** topic it touches is allowed by some
//! rule whose key/role, version and client id match (different rules may
//! cover different topics, as in Cilium). A request that touches no topic
//! needs one matching rule, whatever that rule's topic: this covers the
//! topic-free APIs (ApiVersions, group, transaction, SASL, telemetry,
//! cluster) and explicitly empty lists (Metadata v1+ with `[]` asks for
//! brokers only). Some things a topic rule cannot vouch for, so only rules
//! without `topic` allow them (fail closed): Metadata or OffsetFetch for
//! **all** topics, topics named by id, incremental Fetch sessions opened on
//! another connection, non-topic DescribeConfigs/AlterConfigs resources,
//! bodies we do not parse (ACL APIs, WriteTxnMarkers, unknown keys or
//! versions), and topics beyond the inspection limit (below). Unlike
//! Cilium, which treats every API it does not parse as topic-free, porin
//! treats only the APIs listed in `api.rs` as topic-free.
//!
//! ApiVersions is decided like any request: every role allows it, and it is
//! denied only when the rules leave it out (`[{"apiKey":"produce"}]`), as in
//! Cilium; clients then fail to connect with an authorization error.
//!
//! # Parsing: hand-written, not the kafka-protocol crate
//!
//! The filter parses request headers (v1/v2: api key, version, correlation
//! id, client id, tagged fields) and, for Produce, Fetch, ListOffsets,
//! Metadata, OffsetCommit, OffsetFetch, OffsetForLeaderEpoch, CreateTopics,
//! DeleteTopics, DeleteRecords, AddPartitionsToTxn, TxnOffsetCommit,
//! DescribeConfigs and AlterConfigs, the topic and partition lists of every
//! version in Apache Kafka 4.x's schemas (Produce 3-13, Fetch 4-18,
//! ListOffsets 1-10, Metadata 0-13, OffsetCommit 2-9, OffsetFetch 1-9, …;
//! flexible versions with compact strings/arrays and tagged fields). The
//! captures show librdkafka 2.x sending Produce v10, Fetch v16, Metadata v12,
//! ListOffsets v7, OffsetCommit/OffsetFetch v9, and kafka-python 3.0
//! Produce v9, Fetch v12, ListOffsets v9, OffsetFetch/OffsetCommit v8.
//!
//! kafka-protocol 0.18 builds for wasm32 (features `client`/`broker`, no
//! compression): decoding 16 request types adds about 200 KB to a module
//! and its 90k generated lines take ~20 s to compile cold. We use it only as
//! a test oracle, because its decoders need the whole message in memory:
//! a Produce request would have to be buffered into Wasm entirely (and
//! could not exceed the host's 1 MiB buffer), where the hand-written parser
//! stops after the last topic. Ours reads only what policy needs, bounds
//! every length and count against the frame before looping or allocating,
//! and is checked against kafka-protocol for every version (see
//! `src/tests/oracle.rs`) and against real client bytes.
//!
//! # Framing and streaming
//!
//! Requests are framed by their 4-byte size (negative, < 8 or > 100 MiB:
//! malformed). The filter asks for MORE until the header and topic lists are
//! buffered, decides, then PASSes (or DROPs) the whole frame, beyond the
//! buffer. Produce's last record batch — nearly all of a large request — is
//! never buffered: only tagged fields follow it, so the decision is made
//! from its length. A request whose topics lie beyond 1 MiB (`MAX_INSPECT`,
//! the host's default buffer; only multi-partition Produce requests whose
//! earlier batches exceed it) is decided without them: allowed by a rule
//! without topic, otherwise the connection is closed (ERROR, code 3).
//! Bytes after a body's last field are ignored, as Kafka's broker ignores
//! them (librdkafka sends three after an all-topics Metadata v12).
//!
//! # Topic ids
//!
//! Produce and Fetch v13+ and OffsetCommit/OffsetFetch v10+ name topics by
//! id, which one connection's bytes cannot resolve. When the connection's
//! rules constrain topics, the filter lowers the max versions the broker's
//! ApiVersions response advertises for topic APIs (to 12/12/9/9, and others
//! to the newest version it parses), in place, so clients negotiate versions
//! with names: librdkafka then fetches with v12 instead of v16 (the
//! `confluent-clamped` capture). Requests that still name topics by id only
//! match rules without a topic. Without topic rules nothing is rewritten.
//!
//! # Denied requests and responses
//!
//! A denied request is DROPped and answered with a response of its own key
//! and version and correlation id (response header v0/v1 by flexibility;
//! ApiVersions always v0 and, for versions we do not know, the v0 body, as
//! brokers do): TOPIC_AUTHORIZATION_FAILED (29) per topic/partition for
//! topic APIs, GROUP_AUTHORIZATION_FAILED (30) for group APIs,
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53) for transactional ones,
//! CLUSTER_AUTHORIZATION_FAILED (31) otherwise (ApiVersions, SASL
//! handshake, ListGroups, DescribeCluster, telemetry, broker config
//! resources). A denied Fetch's response has session id 0, so clients drop
//! their fetch session. Produce with `acks=0` gets no response (none is
//! expected). Keys without an encoder (ACLs, inter-broker APIs, unknown
//! keys) close the connection after the DROP (ERROR, code 3).
//!
//! Brokers answer in request order, and clients rely on it. An error
//! response is sent at once only when no response is outstanding;
//! otherwise it is queued and INJECTed into the response stream right after
//! the responses before it. When the last response is still streaming past
//! the filter (PASSed beyond its buffer) no call would come when it ends,
//! so the filter sends the broker a tiny ApiVersions v0 "probe" in place of
//! the denied request, discards the probe's answer, and injects the error
//! response there.
//!
//! Responses: the filter reads the size, correlation id (which must match
//! the oldest outstanding request, else the connection is closed) and up to
//! 256 bytes for the error code (top-level, or the first partition's for
//! Produce, Fetch, ListOffsets, OffsetCommit, TxnOffsetCommit), then PASSes
//! the body beyond its buffer. Fetch sessions (KIP-227) opened on the
//! connection are tracked, so incremental fetches, which list only changes,
//! are checked against every topic of their session.
//!
//! SASL: SaslHandshake v1 + SaslAuthenticate work; the raw token framing
//! after SaslHandshake v0 (pre-1.0 clients) is not Kafka-framed and closes
//! the connection as malformed. TLS is opaque to any L7 filter.
//!
//! # Records
//!
//! REQUEST (FORWARDED/DROPPED): `kafka.api_key` (name above),
//! `kafka.api_version`, `kafka.correlation_id`, `kafka.client_id`,
//! `kafka.topics` and `kafka.topic` (the first, Hubble's single field).
//! RESPONSE: `kafka.api_key`, `kafka.api_version`, `kafka.correlation_id`,
//! `kafka.error_code` (when cheap), `latency_ns`. Malformed input: an ERROR
//! record with `kafka.error` and ERROR op (code 1 request, 2 response).

mod api;
mod filter;
mod replies;
mod request;
mod response;
mod rules;
mod wire;

pub use filter::{
    CANNOT_ENFORCE, KafkaFilter, MALFORMED_REQUEST, MALFORMED_RESPONSE, MAX_INSPECT, MAX_PENDING, MAX_REQUEST,
};
pub use rules::{Item, KafkaRules, Rule};

porin_sdk::export_filter!(rules = KafkaRules, stream = KafkaFilter);

/// Feeds arbitrary bytes through the filter, as a client stream and as a
/// broker stream, under a rule set the first byte picks; for fuzzing. Never
/// panics on any input (that is what fuzzing checks).
#[cfg(not(target_arch = "wasm32"))]
pub fn fuzz_one(data: &[u8]) {
    use porin_sdk::testing::StreamTester;
    const RULES: [&str; 4] = [
        r#"{"kafka":[{}]}"#,
        r#"{"kafka":[{"role":"produce","topic":"orders"},{"role":"consume","topic":"orders"}]}"#,
        r#"{"kafka":[{"apiKey":"apiversions"},{"apiKey":"metadata","topic":"orders"},{"apiKey":"fetch","clientID":"c1"}]}"#,
        r#"{"kafka":[{"apiKey":"produce","apiVersion":"9"}]}"#,
    ];
    // A real consumer session's requests, so a fuzzed broker stream has
    // requests to answer.
    const REQUESTS: &[u8] = include_bytes!("../../../tests/fixtures/kafka/kpython-consume-1.client.bin");
    let Some((&mode, payload)) = data.split_first() else { return };
    let chunk = usize::from(mode >> 3) + 1;
    let rules = RULES[usize::from(mode & 3)];
    let mut t = StreamTester::<KafkaFilter>::new(rules).expect("fixed rules parse");
    for part in payload.chunks(chunk) {
        t.send(part);
    }
    t.send_end();
    let mut t = StreamTester::<KafkaFilter>::new(rules).expect("fixed rules parse");
    if mode & 4 != 0 {
        t.remove_rules();
    }
    t.send(REQUESTS);
    for part in payload.chunks(chunk) {
        t.receive(part);
    }
    t.receive_end();
}

#[cfg(test)]
mod tests;
