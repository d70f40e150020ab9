//! Error responses for denied requests: the response of the request's API
//! key and version, with its correlation id, that a client reads as an
//! authorization failure. Topic APIs report TOPIC_AUTHORIZATION_FAILED per
//! topic and partition (as a broker whose ACLs deny the topic would); group
//! APIs GROUP_AUTHORIZATION_FAILED; transactional ones
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED; the rest CLUSTER_AUTHORIZATION_FAILED.
//! Every field the error does not decide gets Kafka's "unknown" value
//! (-1, empty, null).

use crate::api::{self, *};
use crate::request::{Body, Header, RESOURCE_TOPIC, Topic};
use crate::wire::Writer;

pub(crate) const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub(crate) const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub(crate) const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub(crate) const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// No authorized operations known (Kafka's INT32_MIN sentinel).
const NO_OPERATIONS: i32 = i32::MIN;

/// Whether we can encode an error response for `key` at `version`.
pub(crate) fn supported(key: i16, version: i16) -> bool {
    let range = match key {
        PRODUCE => 3..=13,
        FETCH => 4..=18,
        LIST_OFFSETS => 1..=10,
        METADATA => 0..=13,
        OFFSET_COMMIT => 2..=9,
        OFFSET_FETCH => 1..=9,
        FIND_COORDINATOR => 0..=6,
        JOIN_GROUP => 0..=9,
        HEARTBEAT => 0..=4,
        LEAVE_GROUP => 0..=5,
        SYNC_GROUP => 0..=5,
        DESCRIBE_GROUPS => 0..=6,
        LIST_GROUPS => 0..=5,
        SASL_HANDSHAKE => 0..=1,
        // Unknown ApiVersions versions are answered in v0, like brokers do.
        API_VERSIONS => 0..=i16::MAX,
        CREATE_TOPICS => 2..=7,
        DELETE_TOPICS => 1..=6,
        DELETE_RECORDS => 0..=2,
        INIT_PRODUCER_ID => 0..=6,
        OFFSET_FOR_LEADER_EPOCH => 2..=4,
        ADD_PARTITIONS_TO_TXN => 0..=5,
        ADD_OFFSETS_TO_TXN => 0..=4,
        END_TXN => 0..=5,
        TXN_OFFSET_COMMIT => 0..=5,
        DESCRIBE_CONFIGS => 1..=4,
        ALTER_CONFIGS => 0..=2,
        DESCRIBE_CLUSTER => 0..=2,
        GET_TELEMETRY_SUBSCRIPTIONS | PUSH_TELEMETRY => 0..=0,
        _ => return false,
    };
    range.contains(&version)
}

/// The error response frame for a denied request, or `None` when we have
/// no encoder for its key and version (the filter then closes the
/// connection instead).
pub(crate) fn error_response(h: &Header, b: &Body) -> Option<Vec<u8>> {
    if !supported(h.key, h.version) {
        return None;
    }
    let v = if h.key == API_VERSIONS && h.version > 4 { 0 } else { h.version };
    let mut w = Writer::new(api::is_flexible(h.key, v));
    w.i32(h.correlation_id);
    if api::response_header_flexible(h.key, v) {
        w.tags();
    }
    let throttle = |w: &mut Writer, from: i16| {
        if v >= from {
            w.i32(0);
        }
    };
    let topic = TOPIC_AUTHORIZATION_FAILED;
    match h.key {
        PRODUCE => {
            topics(&mut w, &b.topics, v >= 13, |w, p| {
                w.i32(p).i16(topic).i64(-1).i64(-1);
                if v >= 5 {
                    w.i64(-1); // log start offset
                }
                if v >= 8 {
                    w.array(0).null_str(); // record errors, error message
                }
            });
            w.i32(0);
        }
        FETCH => {
            w.i32(0);
            if v >= 7 {
                // A top-level error only when no partition can carry it;
                // session id 0 makes clients drop their fetch session and
                // send a full fetch next, which is checked topic by topic.
                w.i16(if b.topics.is_empty() { topic } else { 0 }).i32(0);
            }
            topics(&mut w, &b.topics, v >= 13, |w, p| {
                w.i32(p).i16(topic).i64(-1).i64(-1);
                if v >= 5 {
                    w.i64(-1);
                }
                w.null_array(); // aborted transactions
                if v >= 11 {
                    w.i32(-1); // preferred read replica
                }
                w.null_bytes(); // records
            });
        }
        LIST_OFFSETS => {
            throttle(&mut w, 2);
            topics(&mut w, &b.topics, false, |w, p| {
                w.i32(p).i16(topic).i64(-1).i64(-1);
                if v >= 4 {
                    w.i32(-1);
                }
            });
        }
        METADATA => {
            throttle(&mut w, 3);
            w.array(0); // brokers
            if v >= 2 {
                w.null_str(); // cluster id
            }
            if v >= 1 {
                w.i32(-1); // controller id
            }
            w.array(b.topics.len());
            for t in &b.topics {
                w.i16(topic);
                w.opt_str(t.name.as_deref().map(str::as_bytes));
                if v >= 10 {
                    w.uuid(t.id.unwrap_or_default());
                }
                if v >= 1 {
                    w.bool(false); // internal
                }
                w.array(0); // partitions
                if v >= 8 {
                    w.i32(NO_OPERATIONS);
                }
                w.tags();
            }
            if (8..=10).contains(&v) {
                w.i32(NO_OPERATIONS);
            }
            if v >= 13 {
                w.i16(0);
            }
        }
        OFFSET_COMMIT | TXN_OFFSET_COMMIT => {
            throttle(&mut w, if h.key == OFFSET_COMMIT { 3 } else { 0 });
            topics(&mut w, &b.topics, false, |w, p| {
                w.i32(p).i16(topic);
            });
        }
        OFFSET_FETCH => {
            throttle(&mut w, 3);
            let partition = |w: &mut Writer, p: i32| {
                w.i32(p).i64(-1);
                if v >= 5 {
                    w.i32(-1); // leader epoch
                }
                w.str(b"").i16(topic);
            };
            if v <= 7 {
                topics(&mut w, &b.topics, false, partition);
                if v >= 2 {
                    w.i16(if b.all_topics { topic } else { 0 });
                }
            } else {
                w.array(b.groups.len());
                for (group, group_topics) in &b.groups {
                    w.str(group);
                    topics(&mut w, group_topics.as_deref().unwrap_or_default(), false, partition);
                    w.i16(if group_topics.is_none() { topic } else { 0 }).tags();
                }
            }
        }
        FIND_COORDINATOR => {
            throttle(&mut w, 1);
            let error = if b.key_type == 1 {
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            } else {
                GROUP_AUTHORIZATION_FAILED
            };
            if v <= 3 {
                w.i16(error);
                if v >= 1 {
                    w.null_str();
                }
                w.i32(-1).str(b"").i32(-1);
            } else {
                w.array(b.keys.len());
                for key in &b.keys {
                    w.str(key).i32(-1).str(b"").i32(-1).i16(error).null_str().tags();
                }
            }
        }
        JOIN_GROUP => {
            throttle(&mut w, 2);
            w.i16(GROUP_AUTHORIZATION_FAILED).i32(-1);
            if v >= 7 {
                w.null_str().null_str(); // protocol type, protocol name
            } else {
                w.str(b"");
            }
            w.str(b""); // leader
            if v >= 9 {
                w.bool(false); // skip assignment
            }
            w.str(b"").array(0); // member id, members
        }
        HEARTBEAT => {
            throttle(&mut w, 1);
            w.i16(GROUP_AUTHORIZATION_FAILED);
        }
        LEAVE_GROUP => {
            throttle(&mut w, 1);
            w.i16(GROUP_AUTHORIZATION_FAILED);
            if v >= 3 {
                w.array(0);
            }
        }
        SYNC_GROUP => {
            throttle(&mut w, 1);
            w.i16(GROUP_AUTHORIZATION_FAILED);
            if v >= 5 {
                w.null_str().null_str();
            }
            w.empty_bytes(); // assignment
        }
        DESCRIBE_GROUPS => {
            throttle(&mut w, 1);
            w.array(b.keys.len());
            for group in &b.keys {
                w.i16(GROUP_AUTHORIZATION_FAILED);
                if v >= 6 {
                    w.null_str();
                }
                w.str(group).str(b"").str(b"").str(b"").array(0);
                if v >= 3 {
                    w.i32(NO_OPERATIONS);
                }
                w.tags();
            }
        }
        LIST_GROUPS => {
            throttle(&mut w, 1);
            w.i16(CLUSTER_AUTHORIZATION_FAILED).array(0);
        }
        SASL_HANDSHAKE => {
            w.i16(CLUSTER_AUTHORIZATION_FAILED).array(0);
        }
        API_VERSIONS => {
            w.i16(CLUSTER_AUTHORIZATION_FAILED).array(0);
            throttle(&mut w, 1);
        }
        CREATE_TOPICS => {
            w.i32(0);
            w.array(b.topics.len());
            for t in &b.topics {
                w.str(t.name.as_deref().unwrap_or_default().as_bytes());
                if v >= 7 {
                    w.uuid([0; 16]);
                }
                w.i16(topic).null_str();
                if v >= 5 {
                    w.i32(-1).i16(-1).null_array(); // partitions, replication, configs
                }
                w.tags();
            }
        }
        DELETE_TOPICS => {
            w.i32(0);
            w.array(b.topics.len());
            for t in &b.topics {
                w.opt_str(t.name.as_deref().map(str::as_bytes));
                if v >= 6 {
                    w.uuid(t.id.unwrap_or_default());
                }
                w.i16(topic);
                if v >= 5 {
                    w.null_str();
                }
                w.tags();
            }
        }
        DELETE_RECORDS => {
            w.i32(0);
            topics(&mut w, &b.topics, false, |w, p| {
                w.i32(p).i64(-1).i16(topic);
            });
        }
        INIT_PRODUCER_ID => {
            let error = if b.transactional_id.is_some() {
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            } else {
                CLUSTER_AUTHORIZATION_FAILED
            };
            w.i32(0).i16(error).i64(-1).i16(-1);
            if v >= 6 {
                w.i64(-1).i16(-1);
            }
        }
        OFFSET_FOR_LEADER_EPOCH => {
            w.i32(0);
            w.array(b.topics.len());
            for t in &b.topics {
                w.str(t.name.as_deref().unwrap_or_default().as_bytes());
                w.array(t.partitions.len());
                for &p in &t.partitions {
                    w.i16(topic).i32(p).i32(-1).i64(-1).tags();
                }
                w.tags();
            }
        }
        ADD_PARTITIONS_TO_TXN => {
            w.i32(0);
            let results = |w: &mut Writer, list: &[Topic]| {
                w.array(list.len());
                for t in list {
                    w.str(t.name.as_deref().unwrap_or_default().as_bytes());
                    w.array(t.partitions.len());
                    for &p in &t.partitions {
                        w.i32(p).i16(topic).tags();
                    }
                    w.tags();
                }
            };
            if v >= 4 {
                w.i16(0).array(b.transactions.len());
                for (id, list) in &b.transactions {
                    w.str(id);
                    results(&mut w, list);
                    w.tags();
                }
            } else {
                results(&mut w, &b.topics);
            }
        }
        ADD_OFFSETS_TO_TXN => {
            w.i32(0).i16(TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        }
        END_TXN => {
            w.i32(0).i16(TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            if v >= 5 {
                w.i64(-1).i16(-1);
            }
        }
        DESCRIBE_CONFIGS | ALTER_CONFIGS => {
            w.i32(0);
            w.array(b.resources.len());
            for (kind, name) in &b.resources {
                let error = if *kind == RESOURCE_TOPIC { topic } else { CLUSTER_AUTHORIZATION_FAILED };
                w.i16(error).null_str().i8(*kind).str(name.as_bytes());
                if h.key == DESCRIBE_CONFIGS {
                    w.array(0);
                }
                w.tags();
            }
        }
        DESCRIBE_CLUSTER => {
            w.i32(0).i16(CLUSTER_AUTHORIZATION_FAILED).null_str();
            if v >= 1 {
                w.i8(1); // endpoint type: brokers
            }
            w.str(b"").i32(-1).array(0).i32(NO_OPERATIONS);
        }
        GET_TELEMETRY_SUBSCRIPTIONS => {
            w.i32(0).i16(CLUSTER_AUTHORIZATION_FAILED).uuid([0; 16]).i32(0);
            w.array(0).i32(0).i32(0).bool(false).array(0);
        }
        PUSH_TELEMETRY => {
            w.i32(0).i16(CLUSTER_AUTHORIZATION_FAILED);
        }
        _ => return None,
    }
    w.tags();
    Some(w.finish())
}

/// Writes `[topic, [partition]]` with `partition` writing each partition's
/// fields; tagged fields close every struct in flexible versions.
fn topics(w: &mut Writer, list: &[Topic], by_id: bool, mut partition: impl FnMut(&mut Writer, i32)) {
    w.array(list.len());
    for t in list {
        if by_id {
            w.uuid(t.id.unwrap_or_default());
        } else {
            w.str(t.name.as_deref().unwrap_or_default().as_bytes());
        }
        w.array(t.partitions.len());
        for &p in &t.partitions {
            partition(w, p);
            w.tags();
        }
        w.tags();
    }
}
