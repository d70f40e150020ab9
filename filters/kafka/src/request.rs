//! Request parsing: the header of every request, and for the APIs that name
//! topics, the topic (and partition) lists, for the versions of Apache
//! Kafka 4.x's message schemas (which cover what librdkafka and kafka-python
//! send today). Everything else in a body is skipped but still bounds-checked.
//! Bytes after the last field are ignored, as Apache Kafka's broker ignores
//! them (librdkafka sends three such bytes after an all-topics Metadata v12):
//! they cannot name a topic the broker would act on.

use crate::api::{self, *};
use crate::wire::{Read, Reader, Short};

/// The request header (v0 is not sent by any supported client; v1 and v2
/// differ only in v2's tagged fields).
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) key: i16,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    pub(crate) client_id: Option<String>,
    /// Where the body starts in the frame.
    pub(crate) body: usize,
}

impl Header {
    pub(crate) fn flexible(&self) -> bool {
        api::is_flexible(self.key, self.version)
    }
}

/// Reads the header of a frame of `end` bytes.
pub(crate) fn header(buf: &[u8], end: usize) -> Read<Header> {
    let mut r = Reader::new(buf, 4, end);
    let key = r.i16()?;
    let version = r.i16()?;
    let correlation_id = r.i32()?;
    if key < 0 || version < 0 {
        return Err(Short::Bad("negative api key or version"));
    }
    // The client id stays a classic (non-compact) nullable string in header v2.
    let client_id = r.string(false)?.map(|s| String::from_utf8_lossy(s).into_owned());
    r.tags(api::is_flexible(key, version))?;
    Ok(Header { key, version, correlation_id, client_id, body: r.pos() })
}

/// A topic a request names, by name or (newer versions) by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Topic {
    pub(crate) name: Option<String>,
    pub(crate) id: Option<[u8; 16]>,
    pub(crate) partitions: Vec<i32>,
}

/// A Fetch request's session fields (KIP-227).
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchSession {
    pub(crate) id: i32,
    pub(crate) epoch: i32,
    pub(crate) forgotten: Vec<Topic>,
}

/// What a request body says that policy and error responses need.
#[derive(Debug, Clone, Default)]
pub(crate) struct Body {
    /// The body was parsed (known key and version).
    pub(crate) parsed: bool,
    pub(crate) topics: Vec<Topic>,
    /// "All topics": Metadata with a null list (v0: empty), OffsetFetch with
    /// a null topic list.
    pub(crate) all_topics: bool,
    /// OffsetFetch v8+: groups and their topics (`None`: all topics).
    pub(crate) groups: Vec<(Vec<u8>, Option<Vec<Topic>>)>,
    /// AddPartitionsToTxn v4+: transactions and their topics.
    pub(crate) transactions: Vec<(Vec<u8>, Vec<Topic>)>,
    /// DescribeConfigs/AlterConfigs: (resource type, name).
    pub(crate) resources: Vec<(i8, String)>,
    /// FindCoordinator: key type and keys; DescribeGroups: group ids.
    pub(crate) key_type: i8,
    pub(crate) keys: Vec<Vec<u8>>,
    /// Produce: 0 means the broker sends no response.
    pub(crate) acks: i16,
    /// InitProducerId: the transactional id, if any.
    pub(crate) transactional_id: Option<Vec<u8>>,
    pub(crate) fetch: Option<FetchSession>,
}

/// Resource type of a topic in DescribeConfigs/AlterConfigs.
pub(crate) const RESOURCE_TOPIC: i8 = 2;

/// Whether we parse bodies of `key` at `version`.
pub(crate) fn parses(key: i16, version: i16) -> bool {
    let range = match key {
        PRODUCE => 3..=13,
        FETCH => 4..=18,
        LIST_OFFSETS => 1..=10,
        METADATA => 0..=13,
        OFFSET_COMMIT => 2..=9,
        OFFSET_FETCH => 1..=9,
        OFFSET_FOR_LEADER_EPOCH => 2..=4,
        CREATE_TOPICS => 2..=7,
        DELETE_TOPICS => 1..=6,
        DELETE_RECORDS => 0..=2,
        ADD_PARTITIONS_TO_TXN => 0..=5,
        TXN_OFFSET_COMMIT => 0..=5,
        DESCRIBE_CONFIGS => 1..=4,
        ALTER_CONFIGS => 0..=2,
        FIND_COORDINATOR => 0..=6,
        DESCRIBE_GROUPS => 0..=6,
        INIT_PRODUCER_ID => 0..=6,
        _ => return false,
    };
    range.contains(&version)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn named(name: &[u8], partitions: Vec<i32>) -> Topic {
    Topic { name: Some(text(name)), id: None, partitions }
}

/// Parses the body of a request whose header is `h` (when [`parses`]).
pub(crate) fn body(buf: &[u8], end: usize, h: &Header) -> Read<Body> {
    let mut r = Reader::new(buf, h.body, end);
    let (v, flex) = (h.version, h.flexible());
    let mut b = Body { parsed: true, ..Body::default() };
    match h.key {
        PRODUCE => return produce(&mut r, v, flex, b),
        FETCH => fetch(&mut r, v, flex, &mut b)?,
        LIST_OFFSETS => {
            r.i32()?; // replica id
            if v >= 2 {
                r.i8()?; // isolation level
            }
            b.topics = topics(&mut r, flex, |r| {
                let p = r.i32()?;
                r.take(if v >= 4 { 12 } else { 8 })?; // [leader epoch,] timestamp
                r.tags(flex)?;
                Ok(p)
            })?;
            if v >= 10 {
                r.i32()?; // timeout
            }
        }
        METADATA => {
            match r.array_len(flex, 1)? {
                None if v >= 1 => b.all_topics = true,
                None => return Err(Short::Bad("null topic list")),
                Some(0) if v == 0 => b.all_topics = true,
                Some(n) => {
                    for _ in 0..n {
                        let id = if v >= 10 { Some(r.uuid()?) } else { None };
                        let name = if v >= 10 { r.string(flex)? } else { Some(r.name(flex)?) };
                        r.tags(flex)?;
                        b.topics.push(Topic {
                            name: name.map(text),
                            id: id.filter(|_| name.is_none()),
                            partitions: vec![],
                        });
                    }
                }
            }
            let flags = usize::from(v >= 4) + usize::from((8..=10).contains(&v)) + usize::from(v >= 8);
            r.take(flags)?;
        }
        OFFSET_COMMIT => {
            r.name(flex)?; // group id
            r.i32()?; // generation id
            r.name(flex)?; // member id
            if v >= 7 {
                r.string(flex)?; // group instance id
            }
            if v <= 4 {
                r.take(8)?; // retention time
            }
            b.topics = topics(&mut r, flex, |r| {
                let p = r.i32()?;
                r.take(if v >= 6 { 12 } else { 8 })?; // offset[, leader epoch]
                r.string(flex)?; // metadata
                r.tags(flex)?;
                Ok(p)
            })?;
        }
        OFFSET_FETCH => {
            let index_lists = |r: &mut Reader<'_>| -> Read<Option<Vec<Topic>>> {
                let Some(n) = r.array_len(flex, 2)? else { return Ok(None) };
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.name(flex)?;
                    let partitions = r.i32s(flex)?.ok_or(Short::Bad("null partition list"))?;
                    r.tags(flex)?;
                    out.push(named(name, partitions));
                }
                Ok(Some(out))
            };
            if v <= 7 {
                r.name(flex)?; // group id
                match index_lists(&mut r)? {
                    Some(topics) => b.topics = topics,
                    None if v >= 2 => b.all_topics = true,
                    None => return Err(Short::Bad("null topic list")),
                }
            } else {
                for _ in 0..r.count(flex, 2)? {
                    let group = r.name(flex)?.to_vec();
                    if v >= 9 {
                        r.string(flex)?; // member id
                        r.i32()?; // member epoch
                    }
                    let topics = index_lists(&mut r)?;
                    r.tags(flex)?;
                    b.groups.push((group, topics));
                }
            }
            if v >= 7 {
                r.i8()?; // require stable
            }
        }
        OFFSET_FOR_LEADER_EPOCH => {
            if v >= 3 {
                r.i32()?; // replica id
            }
            b.topics = topics(&mut r, flex, |r| {
                let p = r.i32()?;
                r.take(8)?; // current leader epoch, leader epoch
                r.tags(flex)?;
                Ok(p)
            })?;
        }
        CREATE_TOPICS => {
            for _ in 0..r.count(flex, 2)? {
                let name = r.name(flex)?;
                r.take(6)?; // partitions, replication factor
                for _ in 0..r.count(flex, 4)? {
                    r.i32()?;
                    r.skip_array(flex, 4)?;
                    r.tags(flex)?;
                }
                for _ in 0..r.count(flex, 2)? {
                    r.name(flex)?;
                    r.string(flex)?;
                    r.tags(flex)?;
                }
                r.tags(flex)?;
                b.topics.push(named(name, vec![]));
            }
            r.take(5)?; // timeout, validate only
        }
        DELETE_TOPICS => {
            if v >= 6 {
                for _ in 0..r.count(flex, 17)? {
                    let name = r.string(flex)?;
                    let id = r.uuid()?;
                    r.tags(flex)?;
                    b.topics.push(Topic {
                        name: name.map(text),
                        id: name.is_none().then_some(id),
                        partitions: vec![],
                    });
                }
            } else {
                for _ in 0..r.count(flex, 1)? {
                    let name = r.name(flex)?;
                    b.topics.push(named(name, vec![]));
                }
            }
            r.i32()?; // timeout
        }
        DELETE_RECORDS => {
            b.topics = topics(&mut r, flex, |r| {
                let p = r.i32()?;
                r.take(8)?; // offset
                r.tags(flex)?;
                Ok(p)
            })?;
            r.i32()?; // timeout
        }
        ADD_PARTITIONS_TO_TXN => {
            let index_lists = |r: &mut Reader<'_>| -> Read<Vec<Topic>> {
                let mut out = vec![];
                for _ in 0..r.count(flex, 2)? {
                    let name = r.name(flex)?;
                    let partitions = r.i32s(flex)?.ok_or(Short::Bad("null partition list"))?;
                    r.tags(flex)?;
                    out.push(named(name, partitions));
                }
                Ok(out)
            };
            if v >= 4 {
                for _ in 0..r.count(flex, 12)? {
                    let id = r.name(flex)?.to_vec();
                    r.take(11)?; // producer id, epoch, verify only
                    let topics = index_lists(&mut r)?;
                    r.tags(flex)?;
                    b.transactions.push((id, topics));
                }
            } else {
                r.name(flex)?; // transactional id
                r.take(10)?; // producer id, epoch
                b.topics = index_lists(&mut r)?;
            }
        }
        TXN_OFFSET_COMMIT => {
            r.name(flex)?; // transactional id
            r.name(flex)?; // group id
            r.take(10)?; // producer id, epoch
            if v >= 3 {
                r.i32()?; // generation id
                r.name(flex)?; // member id
                r.string(flex)?; // group instance id
            }
            b.topics = topics(&mut r, flex, |r| {
                let p = r.i32()?;
                r.take(if v >= 2 { 12 } else { 8 })?; // offset[, leader epoch]
                r.string(flex)?; // metadata
                r.tags(flex)?;
                Ok(p)
            })?;
        }
        DESCRIBE_CONFIGS | ALTER_CONFIGS => {
            for _ in 0..r.count(flex, 3)? {
                let kind = r.i8()?;
                let name = text(r.name(flex)?);
                if h.key == DESCRIBE_CONFIGS {
                    if let Some(n) = r.array_len(flex, 1)? {
                        for _ in 0..n {
                            r.name(flex)?;
                        }
                    }
                } else {
                    for _ in 0..r.count(flex, 2)? {
                        r.name(flex)?;
                        r.string(flex)?;
                        r.tags(flex)?;
                    }
                }
                r.tags(flex)?;
                b.resources.push((kind, name));
            }
            r.take(if h.key == DESCRIBE_CONFIGS && v >= 3 { 2 } else { 1 })?;
        }
        // Topic-free APIs: only what the error response needs; the rest of
        // the body is the broker's business.
        FIND_COORDINATOR => {
            if v <= 3 {
                b.keys.push(r.name(flex)?.to_vec());
                b.key_type = if v >= 1 { r.i8()? } else { 0 };
            } else {
                b.key_type = r.i8()?;
                for _ in 0..r.count(flex, 1)? {
                    b.keys.push(r.name(flex)?.to_vec());
                }
            }
            return Ok(b);
        }
        DESCRIBE_GROUPS => {
            for _ in 0..r.count(flex, 1)? {
                b.keys.push(r.name(flex)?.to_vec());
            }
            return Ok(b);
        }
        INIT_PRODUCER_ID => {
            b.transactional_id = r.string(flex)?.map(<[u8]>::to_vec);
            return Ok(b);
        }
        _ => return Err(Short::Bad("no parser for this api key")),
    }
    r.tags(flex)?;
    Ok(b)
}

/// Reads `[name, [partition]]`, the shape most topic lists share;
/// `partition` reads one partition entry and returns its index.
fn topics(
    r: &mut Reader<'_>,
    flex: bool,
    mut partition: impl FnMut(&mut Reader<'_>) -> Read<i32>,
) -> Read<Vec<Topic>> {
    let n = r.count(flex, 2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.name(flex)?;
        let m = r.count(flex, 4)?;
        let mut partitions = Vec::with_capacity(m);
        for _ in 0..m {
            partitions.push(partition(r)?);
        }
        r.tags(flex)?;
        out.push(named(name, partitions));
    }
    Ok(out)
}

/// Produce: the record batches of every partition but the last are skipped
/// in the buffer; the last partition's batch (in practice most of a large
/// request) need not be buffered at all, since nothing after it names a
/// topic: the filter decides and PASSes the rest beyond the buffer.
fn produce(r: &mut Reader<'_>, v: i16, flex: bool, mut b: Body) -> Read<Body> {
    r.string(flex)?; // transactional id
    b.acks = r.i16()?;
    r.i32()?; // timeout
    let n = r.count(flex, 2)?;
    for t in 0..n {
        let (name, id) = if v >= 13 { (None, Some(r.uuid()?)) } else { (Some(text(r.name(flex)?)), None) };
        let m = r.count(flex, 5)?;
        let mut partitions = Vec::with_capacity(m);
        for p in 0..m {
            partitions.push(r.i32()?);
            let len = r.bytes_len(flex)?.unwrap_or(0);
            let last = t + 1 == n && p + 1 == m;
            if last && !r.has(len) {
                // Only tagged fields (partition, topic, request) follow;
                // they carry no topics.
                r.skip_unbuffered(len)?;
                if flex && r.remaining() < 3 {
                    return Err(Short::Bad("produce request ends inside its tagged fields"));
                }
                b.topics.push(Topic { name, id, partitions });
                return Ok(b);
            }
            r.take(len)?;
            r.tags(flex)?;
        }
        r.tags(flex)?;
        b.topics.push(Topic { name, id, partitions });
    }
    r.tags(flex)?;
    Ok(b)
}

fn fetch(r: &mut Reader<'_>, v: i16, flex: bool, b: &mut Body) -> Read<()> {
    if v <= 14 {
        r.i32()?; // replica id
    }
    r.take(13)?; // max wait, min bytes, max bytes, isolation level
    let mut session = FetchSession { id: 0, epoch: -1, forgotten: vec![] };
    if v >= 7 {
        session.id = r.i32()?;
        session.epoch = r.i32()?;
    }
    let topic_ref = |r: &mut Reader<'_>| -> Read<(Option<String>, Option<[u8; 16]>)> {
        if v >= 13 { Ok((None, Some(r.uuid()?))) } else { Ok((Some(text(r.name(flex)?)), None)) }
    };
    for _ in 0..r.count(flex, 2)? {
        let (name, id) = topic_ref(r)?;
        let m = r.count(flex, 16)?;
        let mut partitions = Vec::with_capacity(m);
        for _ in 0..m {
            partitions.push(r.i32()?);
            let skip = 8 + 4 + usize::from(v >= 9) * 4 + usize::from(v >= 12) * 4 + usize::from(v >= 5) * 8;
            r.take(skip)?; // [leader epoch,] offset, [last epoch,] [log start,] max bytes
            r.tags(flex)?;
        }
        r.tags(flex)?;
        b.topics.push(Topic { name, id, partitions });
    }
    if v >= 7 {
        for _ in 0..r.count(flex, 2)? {
            let (name, id) = topic_ref(r)?;
            let partitions = r.i32s(flex)?.ok_or(Short::Bad("null partition list"))?;
            r.tags(flex)?;
            session.forgotten.push(Topic { name, id, partitions });
        }
    }
    if v >= 11 {
        r.string(flex)?; // rack id
    }
    b.fetch = Some(session);
    Ok(())
}

/// A Produce request's `acks` (0: the broker will not answer), read on its
/// own for requests too large to parse whole.
pub(crate) fn produce_acks(buf: &[u8], end: usize, h: &Header) -> Option<i16> {
    let mut r = Reader::new(buf, h.body, end);
    r.string(h.flexible()).ok()?;
    r.i16().ok()
}
