//! The kafka-protocol crate (generated from Apache Kafka's message schemas)
//! as an oracle: it encodes requests of every version we parse, which our
//! parser must read back exactly, and decodes every error response we
//! encode, which must be complete, well-formed and carry the request's
//! correlation id and the authorization error.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::*;
use kafka_protocol::messages::alter_configs_request::*;
use kafka_protocol::messages::create_topics_request::*;
use kafka_protocol::messages::delete_records_request::*;
use kafka_protocol::messages::delete_topics_request::*;
use kafka_protocol::messages::describe_configs_request::*;
use kafka_protocol::messages::fetch_request::*;
use kafka_protocol::messages::list_offsets_request::*;
use kafka_protocol::messages::metadata_request::*;
use kafka_protocol::messages::offset_commit_request::*;
use kafka_protocol::messages::offset_fetch_request::*;
use kafka_protocol::messages::offset_for_leader_epoch_request::*;
use kafka_protocol::messages::produce_request::*;
use kafka_protocol::messages::txn_offset_commit_request::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

use super::{ALLOW_ALL, tester};
use crate::replies::{self, CLUSTER_AUTHORIZATION_FAILED as CLUSTER, GROUP_AUTHORIZATION_FAILED as GROUP};
use crate::replies::{TOPIC_AUTHORIZATION_FAILED as TOPIC, TRANSACTIONAL_ID_AUTHORIZATION_FAILED as TXN};
use crate::request::{self, Body};

const ORDERS: Uuid = Uuid::from_u128(0x0a0a);
const PAYMENTS: Uuid = Uuid::from_u128(0x0b0b);

pub(crate) fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

fn tn(v: &'static str) -> TopicName {
    TopicName(s(v))
}

/// (topic name, topic id, partitions).
pub(crate) type TopicSpec = (&'static str, Uuid, &'static [i32]);

/// The two topics the version sweeps name.
pub(crate) const TOPICS: [TopicSpec; 2] = [("orders", ORDERS, &[0, 1]), ("payments", PAYMENTS, &[2])];

pub(crate) const ORDERS_ONLY: [TopicSpec; 1] = [("orders", ORDERS, &[0])];
pub(crate) const PAYMENTS_ONLY: [TopicSpec; 1] = [("payments", PAYMENTS, &[0])];

fn build(key: ApiKey, v: i16) -> RequestKind {
    build_with(key, v, &TOPICS)
}

/// A request of `key` at version `v` naming `topics` (by id where the
/// version requires), or a plain one for topic-free keys.
pub(crate) fn build_with(key: ApiKey, v: i16, topics: &[TopicSpec]) -> RequestKind {
    let by_id = |id_from: i16| v >= id_from;
    match key {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(
                topics
                    .iter()
                    .map(|(name, id, parts)| {
                        let t = TopicProduceData::default().with_partition_data(
                            parts
                                .iter()
                                .map(|p| {
                                    PartitionProduceData::default()
                                        .with_index(*p)
                                        .with_records(Some(Bytes::from_static(b"record batch")))
                                })
                                .collect(),
                        );
                        if by_id(13) { t.with_topic_id(*id) } else { t.with_name(tn(name)) }
                    })
                    .collect(),
            ),
        ),
        ApiKey::Fetch => {
            let fetch_topics = topics
                .iter()
                .map(|(name, id, parts)| {
                    let t = FetchTopic::default().with_partitions(
                        parts
                            .iter()
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_fetch_offset(5)
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    );
                    if by_id(13) { t.with_topic_id(*id) } else { t.with_topic(tn(name)) }
                })
                .collect();
            let mut r =
                FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_topics(fetch_topics);
            if v >= 7 {
                let gone = ForgottenTopic::default().with_partitions(vec![9]);
                let gone = if by_id(13) {
                    gone.with_topic_id(Uuid::from_u128(9))
                } else {
                    gone.with_topic(tn("old"))
                };
                r = r.with_forgotten_topics_data(vec![gone]);
            }
            if v >= 11 {
                r = r.with_rack_id(s("rack-a"));
            }
            RequestKind::Fetch(r)
        }
        ApiKey::ListOffsets => RequestKind::ListOffsets(
            ListOffsetsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(name, _, parts)| {
                        ListOffsetsTopic::default().with_name(tn(name)).with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(-2)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        ),
        ApiKey::Metadata => RequestKind::Metadata(
            MetadataRequest::default().with_topics(Some(
                topics
                    .iter()
                    .map(|(name, _, _)| MetadataRequestTopic::default().with_name(Some(tn(name))))
                    .collect(),
            )),
        ),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("g1")))
                .with_member_id(s("m1"))
                .with_topics(
                    topics
                        .iter()
                        .map(|(name, _, parts)| {
                            OffsetCommitRequestTopic::default().with_name(tn(name)).with_partitions(
                                parts
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(3)
                                            .with_committed_metadata(Some(s("meta")))
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                ),
        ),
        ApiKey::OffsetFetch if v <= 7 => RequestKind::OffsetFetch(
            OffsetFetchRequest::default().with_group_id(GroupId(s("g1"))).with_topics(Some(
                topics
                    .iter()
                    .map(|(name, _, parts)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(tn(name))
                            .with_partition_indexes(parts.to_vec())
                    })
                    .collect(),
            )),
        ),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(GroupId(s("g1"))).with_topics(Some(
                    topics
                        .iter()
                        .map(|(name, _, parts)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(tn(name))
                                .with_partition_indexes(parts.to_vec())
                        })
                        .collect(),
                )),
            ])),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(name, _, parts)| {
                        OffsetForLeaderTopic::default().with_topic(tn(name)).with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    OffsetForLeaderPartition::default()
                                        .with_partition(*p)
                                        .with_leader_epoch(1)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        ),
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default().with_timeout_ms(1000).with_topics(
                topics
                    .iter()
                    .map(|(name, _, _)| {
                        CreatableTopic::default()
                            .with_name(tn(name))
                            .with_num_partitions(3)
                            .with_replication_factor(1)
                            .with_assignments(vec![
                                CreatableReplicaAssignment::default()
                                    .with_partition_index(0)
                                    .with_broker_ids(vec![BrokerId(1)]),
                            ])
                            .with_configs(vec![
                                CreatableTopicConfig::default()
                                    .with_name(s("cleanup.policy"))
                                    .with_value(Some(s("compact"))),
                            ])
                    })
                    .collect(),
            ),
        ),
        ApiKey::DeleteTopics if v >= 6 => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(name, _, _)| DeleteTopicState::default().with_name(Some(tn(name))))
                    .collect(),
            ),
        ),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topic_names(topics.iter().map(|(name, _, _)| tn(name)).collect()),
        ),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(name, _, parts)| {
                        DeleteRecordsTopic::default().with_name(tn(name)).with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    DeleteRecordsPartition::default().with_partition_index(*p).with_offset(1)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        ),
        ApiKey::AddPartitionsToTxn => {
            let txn_topics: Vec<_> = topics
                .iter()
                .map(|(name, _, parts)| {
                    AddPartitionsToTxnTopic::default().with_name(tn(name)).with_partitions(parts.to_vec())
                })
                .collect();
            let txn = TransactionalId(s("t1"));
            RequestKind::AddPartitionsToTxn(if v >= 4 {
                AddPartitionsToTxnRequest::default().with_transactions(vec![
                    AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(txn)
                        .with_topics(txn_topics),
                ])
            } else {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(txn)
                    .with_v3_and_below_topics(txn_topics)
            })
        }
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("t1")))
                .with_group_id(GroupId(s("g1")))
                .with_topics(
                    topics
                        .iter()
                        .map(|(name, _, parts)| {
                            TxnOffsetCommitRequestTopic::default().with_name(tn(name)).with_partitions(
                                parts
                                    .iter()
                                    .map(|p| {
                                        TxnOffsetCommitRequestPartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(1)
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                ),
        ),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(
            DescribeConfigsRequest::default().with_resources(
                topics
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _, _))| {
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s(name))
                            .with_configuration_keys((i == 1).then(|| vec![s("retention.ms")]))
                    })
                    .collect(),
            ),
        ),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(
            AlterConfigsRequest::default().with_resources(
                topics
                    .iter()
                    .map(|(name, _, _)| {
                        AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s(name))
                            .with_configs(vec![
                                AlterableConfig::default()
                                    .with_name(s("retention.ms"))
                                    .with_value(Some(s("1"))),
                            ])
                    })
                    .collect(),
            ),
        ),
        ApiKey::FindCoordinator if v >= 4 => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")]),
        ),
        ApiKey::FindCoordinator => {
            RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(s("g1")))
        }
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g1"))]))
        }
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s("t1")))),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::GetTelemetrySubscriptions => {
            RequestKind::GetTelemetrySubscriptions(GetTelemetrySubscriptionsRequest::default())
        }
        ApiKey::PushTelemetry => RequestKind::PushTelemetry(PushTelemetryRequest::default()),
        other => panic!("no builder for {other:?}"),
    }
}

/// A framed request (size, header v1/v2 with client id "c1", body).
pub(crate) fn encode(key: ApiKey, v: i16, correlation_id: i32, request: &RequestKind) -> Vec<u8> {
    encode_as(key, v, correlation_id, Some("c1"), request)
}

/// A framed request from `client_id`.
pub(crate) fn encode_as(
    key: ApiKey,
    v: i16,
    correlation_id: i32,
    client_id: Option<&'static str>,
    request: &RequestKind,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(s))
        .encode(&mut buf, key.request_header_version(v))
        .unwrap();
    request.encode(&mut buf, v).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
    let mut frame = (buf.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

pub(crate) fn request_frame(key: ApiKey, v: i16, correlation_id: i32) -> Vec<u8> {
    if key == ApiKey::InitProducerId && v == 6 {
        // kafka-protocol 0.18 lists v6 but cannot encode it; v6 only adds
        // fields after the transactional id, all we read.
        let mut frame = encode(key, 5, correlation_id, &build(key, 5));
        frame[6..8].copy_from_slice(&6i16.to_be_bytes());
        return frame;
    }
    encode(key, v, correlation_id, &build(key, v))
}

/// Everything a parsed body names, as (name, partitions).
fn touched(b: &Body) -> Vec<(Option<String>, Vec<i32>)> {
    let mut out: Vec<_> = b.topics.iter().map(|t| (t.name.clone(), t.partitions.clone())).collect();
    for (_, topics) in &b.groups {
        out.extend(topics.iter().flatten().map(|t| (t.name.clone(), t.partitions.clone())));
    }
    for (_, topics) in &b.transactions {
        out.extend(topics.iter().map(|t| (t.name.clone(), t.partitions.clone())));
    }
    out.extend(b.resources.iter().map(|(_, n)| (Some(n.clone()), vec![])));
    out
}

const TOPIC_KEYS: [ApiKey; 14] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::AddPartitionsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
];

const OTHER_KEYS: [ApiKey; 15] = [
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::SaslHandshake,
    ApiKey::ApiVersions,
    ApiKey::InitProducerId,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::DescribeCluster,
    ApiKey::GetTelemetrySubscriptions,
    ApiKey::PushTelemetry,
];

/// Versions both kafka-protocol and we handle for `key`.
fn versions(key: ApiKey, ours: impl Fn(i16, i16) -> bool) -> Vec<i16> {
    let range = key.valid_versions();
    (range.min..=range.max).filter(|v| ours(key as i16, *v)).collect()
}

#[test]
fn parser_reads_every_version_of_every_topic_api() {
    let mut checked = 0;
    for key in TOPIC_KEYS {
        let vs = versions(key, request::parses);
        assert!(!vs.is_empty(), "{key:?}");
        for v in vs {
            let frame = request_frame(key, v, 7);
            let h = request::header(&frame, frame.len()).unwrap();
            assert_eq!(
                (h.key, h.version, h.correlation_id, h.client_id.as_deref()),
                (key as i16, v, 7, Some("c1"))
            );
            let body =
                request::body(&frame, frame.len(), &h).unwrap_or_else(|e| panic!("{key:?} v{v}: {e:?}"));
            let by_id = matches!(key, ApiKey::Produce | ApiKey::Fetch) && v >= 13;
            let expected: Vec<_> = TOPICS
                .iter()
                .map(|(name, _, parts)| {
                    let parts = match key {
                        ApiKey::Metadata
                        | ApiKey::CreateTopics
                        | ApiKey::DeleteTopics
                        | ApiKey::DescribeConfigs
                        | ApiKey::AlterConfigs => vec![],
                        _ => parts.to_vec(),
                    };
                    ((!by_id).then(|| name.to_string()), parts)
                })
                .collect();
            assert_eq!(touched(&body), expected, "{key:?} v{v}");
            if by_id {
                let ids: Vec<_> = body.topics.iter().map(|t| t.id.map(Uuid::from_bytes)).collect();
                assert_eq!(ids, vec![Some(ORDERS), Some(PAYMENTS)], "{key:?} v{v}");
            }
            if key == ApiKey::Fetch && v >= 7 {
                assert_eq!(body.fetch.as_ref().unwrap().forgotten.len(), 1);
            }
            // Allowed: forwarded byte for byte, whole or one byte at a time.
            for chunk in [frame.len(), 1] {
                let mut t = tester(ALLOW_ALL);
                for part in frame.chunks(chunk) {
                    t.send(part);
                }
                assert_eq!(t.upstream(), frame, "{key:?} v{v}");
                assert!(t.closed().is_none(), "{key:?} v{v}: {:?}", t.closed());
            }
            checked += 1;
        }
    }
    assert!(checked > 80, "{checked} versions");
}

/// Every error code of a decoded response, in order, topic/partition level
/// where the response has one, top level otherwise.
fn error_codes(r: &ResponseKind) -> Vec<i16> {
    match r {
        ResponseKind::Produce(r) => {
            r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::Fetch(r) => {
            r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::ListOffsets(r) => {
            r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::OffsetCommit(r) => {
            r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::OffsetFetch(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .chain(
                r.groups
                    .iter()
                    .flat_map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))),
            )
            .collect(),
        ResponseKind::OffsetForLeaderEpoch(r) => {
            r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteRecords(r) => {
            r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::AddPartitionsToTxn(r) => r
            .results_by_topic_v3_and_below
            .iter()
            .chain(r.results_by_transaction.iter().flat_map(|t| t.topic_results.iter()))
            .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))
            .collect(),
        ResponseKind::TxnOffsetCommit(r) => {
            r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
        }
        ResponseKind::DescribeConfigs(r) => r.results.iter().map(|t| t.error_code).collect(),
        ResponseKind::AlterConfigs(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::FindCoordinator(r) if r.coordinators.is_empty() => vec![r.error_code],
        ResponseKind::FindCoordinator(r) => r.coordinators.iter().map(|c| c.error_code).collect(),
        ResponseKind::DescribeGroups(r) => r.groups.iter().map(|g| g.error_code).collect(),
        ResponseKind::JoinGroup(r) => vec![r.error_code],
        ResponseKind::Heartbeat(r) => vec![r.error_code],
        ResponseKind::LeaveGroup(r) => vec![r.error_code],
        ResponseKind::SyncGroup(r) => vec![r.error_code],
        ResponseKind::ListGroups(r) => vec![r.error_code],
        ResponseKind::SaslHandshake(r) => vec![r.error_code],
        ResponseKind::ApiVersions(r) => vec![r.error_code],
        ResponseKind::InitProducerId(r) => vec![r.error_code],
        ResponseKind::AddOffsetsToTxn(r) => vec![r.error_code],
        ResponseKind::EndTxn(r) => vec![r.error_code],
        ResponseKind::DescribeCluster(r) => vec![r.error_code],
        ResponseKind::GetTelemetrySubscriptions(r) => vec![r.error_code],
        ResponseKind::PushTelemetry(r) => vec![r.error_code],
        other => panic!("unexpected {other:?}"),
    }
}

/// Decodes an injected error response; checks it is whole and answers
/// correlation id 7; returns the body.
pub(crate) fn decode_response(key: ApiKey, v: i16, frame: &[u8]) -> ResponseKind {
    decode_response_as(key, v, 7, frame)
}

/// Decodes a response frame; checks it is whole and answers `correlation_id`.
pub(crate) fn decode_response_as(key: ApiKey, v: i16, correlation_id: i32, frame: &[u8]) -> ResponseKind {
    assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
    let mut bytes = Bytes::copy_from_slice(&frame[4..]);
    let header = ResponseHeader::decode(&mut bytes, key.response_header_version(v)).unwrap();
    assert_eq!(header.correlation_id, correlation_id, "{key:?} v{v}");
    let body = ResponseKind::decode(key, &mut bytes, v).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
    assert_eq!(bytes.remaining(), 0, "{key:?} v{v}: trailing bytes");
    body
}

#[test]
fn error_responses_decode_for_every_version() {
    let mut checked = 0;
    for key in TOPIC_KEYS.into_iter().chain(OTHER_KEYS) {
        let vs = versions(key, replies::supported);
        assert!(!vs.is_empty(), "{key:?}");
        for v in vs {
            let frame = request_frame(key, v, 7);
            let h = request::header(&frame, frame.len()).unwrap();
            let body = if request::parses(h.key, v) {
                request::body(&frame, frame.len(), &h).unwrap()
            } else {
                Body::default()
            };
            let response = replies::error_response(&h, &body).unwrap();
            let errors = error_codes(&decode_response(key, v, &response));
            let expected: Vec<i16> = match key {
                ApiKey::Metadata | ApiKey::CreateTopics | ApiKey::DeleteTopics => vec![TOPIC; 2],
                ApiKey::DescribeConfigs | ApiKey::AlterConfigs => vec![TOPIC; 2],
                ApiKey::FindCoordinator if v >= 4 => vec![GROUP; 2],
                ApiKey::FindCoordinator | ApiKey::JoinGroup | ApiKey::Heartbeat => vec![GROUP],
                ApiKey::LeaveGroup | ApiKey::SyncGroup | ApiKey::DescribeGroups => vec![GROUP],
                ApiKey::InitProducerId | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => vec![TXN],
                ApiKey::ListGroups | ApiKey::SaslHandshake | ApiKey::ApiVersions => vec![CLUSTER],
                ApiKey::DescribeCluster | ApiKey::GetTelemetrySubscriptions | ApiKey::PushTelemetry => {
                    vec![CLUSTER]
                }
                _ => vec![TOPIC; 3],
            };
            assert_eq!(errors, expected, "{key:?} v{v}");
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked} versions");
}

#[test]
fn denied_requests_of_every_version_get_their_error_response() {
    for key in TOPIC_KEYS {
        for v in versions(key, replies::supported) {
            let frame = request_frame(key, v, 7);
            let mut t = tester(r#"{"kafka":[{"topic":"orders"}]}"#);
            t.send(&frame);
            assert!(t.upstream().is_empty(), "{key:?} v{v}");
            assert!(t.closed().is_none(), "{key:?} v{v}");
            let errors = error_codes(&decode_response(key, v, t.downstream()));
            assert!(!errors.is_empty() && errors.iter().all(|e| *e == TOPIC), "{key:?} v{v}: {errors:?}");
            assert_eq!(t.records()[0]["verdict"], "DROPPED");
        }
    }
}

#[test]
fn unknown_api_versions_versions_are_answered_in_v0() {
    let mut frame = request_frame(ApiKey::ApiVersions, 3, 7);
    frame[6..8].copy_from_slice(&9i16.to_be_bytes());
    let h = request::header(&frame, frame.len()).unwrap();
    let response = replies::error_response(&h, &Body::default()).unwrap();
    assert_eq!(error_codes(&decode_response(ApiKey::ApiVersions, 0, &response)), vec![CLUSTER]);
}

/// The topic names kafka-protocol decodes from a request.
fn oracle_topics(r: &RequestKind) -> Option<Vec<String>> {
    let names = |it: &mut dyn Iterator<Item = &TopicName>| it.map(|t| t.0.to_string()).collect::<Vec<_>>();
    Some(match r {
        RequestKind::Produce(r) => names(&mut r.topic_data.iter().map(|t| &t.name)),
        RequestKind::Fetch(r) => names(&mut r.topics.iter().map(|t| &t.topic)),
        RequestKind::ListOffsets(r) => names(&mut r.topics.iter().map(|t| &t.name)),
        RequestKind::Metadata(r) => names(&mut r.topics.iter().flatten().filter_map(|t| t.name.as_ref())),
        RequestKind::OffsetCommit(r) => names(&mut r.topics.iter().map(|t| &t.name)),
        RequestKind::OffsetFetch(r) => names(
            &mut r
                .topics
                .iter()
                .flatten()
                .map(|t| &t.name)
                .chain(r.groups.iter().flat_map(|g| g.topics.iter().flatten().map(|t| &t.name))),
        ),
        RequestKind::CreateTopics(r) => names(&mut r.topics.iter().map(|t| &t.name)),
        _ => return None,
    })
}

#[test]
fn captured_requests_agree_with_kafka_protocol() {
    let mut compared = 0;
    for (name, client, _) in super::sessions() {
        for f in super::frames(&client) {
            let key = ApiKey::try_from(i16::from_be_bytes([f[4], f[5]])).unwrap();
            let v = i16::from_be_bytes([f[6], f[7]]);
            let mut bytes = Bytes::copy_from_slice(&f[4..]);
            let header = RequestHeader::decode(&mut bytes, key.request_header_version(v)).unwrap();
            let oracle = RequestKind::decode(key, &mut bytes, v)
                .unwrap_or_else(|e| panic!("{name} {key:?} v{v}: {e}"));
            let h = request::header(f, f.len()).unwrap();
            assert_eq!(h.correlation_id, header.correlation_id);
            assert_eq!(h.client_id.as_deref(), header.client_id.as_deref());
            if !request::parses(h.key, h.version) {
                continue;
            }
            let body = request::body(f, f.len(), &h).unwrap_or_else(|e| panic!("{name} {key:?} v{v}: {e:?}"));
            if let Some(expected) = oracle_topics(&oracle) {
                let ours: Vec<String> = touched(&body).into_iter().filter_map(|(n, _)| n).collect();
                // Topic-id versions have no names on either side.
                assert_eq!(
                    ours,
                    expected.into_iter().filter(|n| !n.is_empty()).collect::<Vec<_>>(),
                    "{name} {key:?} v{v}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 30, "{compared}");
}
