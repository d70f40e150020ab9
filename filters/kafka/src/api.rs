//! Kafka API keys: names (Cilium's lowercase names for the keys Cilium
//! knows), the first flexible version of each (it selects the request and
//! response header versions), and which keys never name a topic.

/// One API key we know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api {
    pub(crate) key: i16,
    /// The name in rules (`apiKey: produce`, any case) and records:
    /// Cilium's name, or for keys Cilium does not know, Kafka's in lowercase.
    pub(crate) name: &'static str,
    /// First version with flexible encoding (request header v2, response
    /// header v1); `i16::MAX` when none is.
    pub(crate) flexible_from: i16,
    /// The request never names a topic or other resource a topic rule could
    /// be about (group, transaction, handshake and connection APIs), so a
    /// rule's topic constraint does not apply to it (Cilium's semantics).
    pub(crate) topic_free: bool,
}

const fn api(key: i16, name: &'static str, flexible_from: i16, topic_free: bool) -> Api {
    Api { key, name, flexible_from, topic_free }
}

const NEVER: i16 = i16::MAX;

pub(crate) const PRODUCE: i16 = 0;
pub(crate) const FETCH: i16 = 1;
pub(crate) const LIST_OFFSETS: i16 = 2;
pub(crate) const METADATA: i16 = 3;
pub(crate) const OFFSET_COMMIT: i16 = 8;
pub(crate) const OFFSET_FETCH: i16 = 9;
pub(crate) const FIND_COORDINATOR: i16 = 10;
pub(crate) const JOIN_GROUP: i16 = 11;
pub(crate) const HEARTBEAT: i16 = 12;
pub(crate) const LEAVE_GROUP: i16 = 13;
pub(crate) const SYNC_GROUP: i16 = 14;
pub(crate) const DESCRIBE_GROUPS: i16 = 15;
pub(crate) const LIST_GROUPS: i16 = 16;
pub(crate) const SASL_HANDSHAKE: i16 = 17;
pub(crate) const API_VERSIONS: i16 = 18;
pub(crate) const CREATE_TOPICS: i16 = 19;
pub(crate) const DELETE_TOPICS: i16 = 20;
pub(crate) const DELETE_RECORDS: i16 = 21;
pub(crate) const INIT_PRODUCER_ID: i16 = 22;
pub(crate) const OFFSET_FOR_LEADER_EPOCH: i16 = 23;
pub(crate) const ADD_PARTITIONS_TO_TXN: i16 = 24;
pub(crate) const ADD_OFFSETS_TO_TXN: i16 = 25;
pub(crate) const END_TXN: i16 = 26;
pub(crate) const TXN_OFFSET_COMMIT: i16 = 28;
pub(crate) const DESCRIBE_CONFIGS: i16 = 32;
pub(crate) const ALTER_CONFIGS: i16 = 33;
pub(crate) const DESCRIBE_CLUSTER: i16 = 60;
pub(crate) const GET_TELEMETRY_SUBSCRIPTIONS: i16 = 71;
pub(crate) const PUSH_TELEMETRY: i16 = 72;

/// Every key we know: keys 0-33 with Cilium's names, then the keys
/// current clients send that Cilium does not name. Flexible thresholds are Apache Kafka's (4.x message
/// schemas; the inter-broker keys 4-7 from 3.x).
const APIS: &[Api] = &[
    api(0, "produce", 9, false),
    api(1, "fetch", 12, false),
    api(2, "offsets", 6, false),
    api(3, "metadata", 9, false),
    api(4, "leaderandisr", 4, false),
    api(5, "stopreplica", 2, false),
    api(6, "updatemetadata", 6, false),
    api(7, "controlledshutdown", 3, true),
    api(8, "offsetcommit", 8, false),
    api(9, "offsetfetch", 6, false),
    api(10, "findcoordinator", 3, true),
    api(11, "joingroup", 6, true),
    api(12, "heartbeat", 4, true),
    api(13, "leavegroup", 4, true),
    api(14, "syncgroup", 4, true),
    api(15, "describegroups", 5, true),
    api(16, "listgroups", 3, true),
    api(17, "saslhandshake", NEVER, true),
    api(18, "apiversions", 3, true),
    api(19, "createtopics", 5, false),
    api(20, "deletetopics", 4, false),
    api(21, "deleterecords", 2, false),
    api(22, "initproducerid", 2, true),
    api(23, "offsetforleaderepoch", 4, false),
    api(24, "addpartitionstotxn", 3, false),
    api(25, "addoffsetstotxn", 3, true),
    api(26, "endtxn", 3, true),
    api(27, "writetxnmarkers", 1, false),
    api(28, "txnoffsetcommit", 3, false),
    api(29, "describeacls", 2, false),
    api(30, "createacls", 2, false),
    api(31, "deleteacls", 2, false),
    api(32, "describeconfigs", 4, false),
    api(33, "alterconfigs", 2, false),
    api(36, "saslauthenticate", 2, true),
    api(42, "deletegroups", 2, true),
    api(60, "describecluster", 0, true),
    api(68, "consumergroupheartbeat", 0, true),
    api(69, "consumergroupdescribe", 0, true),
    api(71, "gettelemetrysubscriptions", 0, true),
    api(72, "pushtelemetry", 0, true),
];

pub(crate) fn lookup(key: i16) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key == key)
}

/// The key a rule names (`apiKey: Produce`, any case).
pub(crate) fn by_rule_name(name: &str) -> Option<i16> {
    APIS.iter().find(|a| a.name.eq_ignore_ascii_case(name)).map(|a| a.key)
}

/// The name records use: Cilium's, Kafka's in lowercase, or `apikey-N`.
pub(crate) fn name(key: i16) -> String {
    lookup(key).map_or_else(|| format!("apikey-{key}"), |a| a.name.to_string())
}

/// Whether `version` of `key` is flexible. Unknown keys: we never parse
/// their bodies, so the answer only affects nothing that matters.
pub(crate) fn is_flexible(key: i16, version: i16) -> bool {
    lookup(key).is_some_and(|a| version >= a.flexible_from)
}

/// Whether the response header has tagged fields (v1). ApiVersions
/// responses always use header v0 so that any client can read them.
pub(crate) fn response_header_flexible(key: i16, version: i16) -> bool {
    key != API_VERSIONS && is_flexible(key, version)
}

/// Whether requests of `key` never name topics.
pub(crate) fn is_topic_free(key: i16) -> bool {
    lookup(key).is_some_and(|a| a.topic_free)
}

/// Cilium's roles: the keys `role: produce` and `role: consume` allow.
pub(crate) const PRODUCE_ROLE: &[i16] = &[PRODUCE, METADATA, API_VERSIONS];
pub(crate) const CONSUME_ROLE: &[i16] = &[
    FETCH,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    FIND_COORDINATOR,
    JOIN_GROUP,
    HEARTBEAT,
    LEAVE_GROUP,
    SYNC_GROUP,
    API_VERSIONS,
];
