//! The stream filter: frames requests and responses, decides requests,
//! keeps responses (real and injected) in request order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use porin_sdk::{ConnectionMeta, Record, RecordVerdict, Stream, StreamFilter, now_ns};

use crate::api::{self, API_VERSIONS, FETCH, PRODUCE};
use crate::replies;
use crate::request::{self, Body, Header, RESOURCE_TOPIC};
use crate::response;
use crate::rules::{Item, KafkaRules};
use crate::wire::Short;

/// Kafka's default `socket.request.max.bytes`: larger requests are refused.
pub const MAX_REQUEST: usize = 100 << 20;

/// The most of one request the filter buffers to decide it: the host's
/// default buffer limit. Only a Produce request whose earlier record
/// batches exceed it comes near (the last batch is never buffered).
pub const MAX_INSPECT: usize = 1 << 20;

/// Most requests awaiting a response per connection (brokers cap what they
/// queue far lower): bounds the filter's memory against a client that
/// pipelines denied requests behind one the broker never answers.
pub const MAX_PENDING: usize = 1 << 16;

/// Fetch sessions remembered per connection; forgetting one only makes its
/// next incremental fetch fail closed, and the client then starts over.
const MAX_SESSIONS: usize = 64;

/// ERROR codes (with a reason) when the filter closes a connection.
pub const MALFORMED_REQUEST: i32 = 1;
/// The broker sent something that is not a response to the next request.
pub const MALFORMED_RESPONSE: i32 = 2;
/// A denied request whose error response we cannot encode, or a request
/// too large to check against topic rules.
pub const CANNOT_ENFORCE: i32 = 3;

/// A request whose response is still to come, in order.
#[derive(Debug)]
enum Pending {
    Forwarded {
        correlation_id: i32,
        key: i16,
        version: i16,
        sent_ns: u64,
        /// Fetch requests that open a session: its topics, stored under the
        /// session id the response carries.
        new_session: Option<Topics>,
    },
    /// Our ApiVersions v0 request standing in for a denied one: its answer
    /// is discarded and tells us the responses before it are complete.
    Probe { correlation_id: i32 },
    /// An error response to send once everything before it was answered.
    Denied { frame: Vec<u8> },
}

/// Topic name → partitions.
type Topics = BTreeMap<String, BTreeSet<i32>>;

/// One Kafka connection.
#[derive(Debug, Default)]
pub struct KafkaFilter {
    pending: VecDeque<Pending>,
    /// The last response was passed beyond the buffer and may still be
    /// streaming: an error response sent now could land inside it.
    reply_streaming: bool,
    /// Fetch sessions (KIP-227) opened on this connection and their topics,
    /// so incremental fetches, which name only changes, are checked
    /// against every topic they will return.
    sessions: HashMap<i32, Topics>,
}

/// What handling one frame came to.
enum Step {
    /// Emitted PASS/DROP for the frame; `n` bytes of the buffer consumed.
    Consumed(usize),
    /// Need this many more bytes.
    More(usize),
    /// Emitted ERROR; stop.
    Stop,
}

impl StreamFilter for KafkaFilter {
    type Rules = KafkaRules;

    fn new(_meta: &ConnectionMeta) -> Self {
        KafkaFilter::default()
    }

    fn on_data(&mut self, s: &mut Stream<'_, KafkaRules>, reply: bool, end_stream: bool, data: &[u8]) {
        if reply {
            // The host calls only after earlier PASS/DROPs completed.
            self.reply_streaming = false;
            self.flush_denied(s);
        }
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            let step = if reply { self.response(s, rest, end_stream) } else { self.request(s, rest) };
            match step {
                Step::Consumed(n) => at += n,
                Step::More(_) if end_stream => {
                    // The peer closed mid-frame: nothing more will come.
                    if reply {
                        s.pass(rest.len() as u64);
                    } else {
                        s.discard(rest.len() as u64);
                    }
                    return;
                }
                Step::More(n) => return s.more(n),
                Step::Stop => return,
            }
        }
    }
}

fn size_field(data: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

/// How many more bytes to ask for when `need` bytes of the frame are needed.
fn more(data: &[u8], need: usize) -> Step {
    Step::More(need.saturating_sub(data.len()).max(1))
}

fn error_record(kind: fn(RecordVerdict) -> Record, reason: &str) -> Record {
    kind(RecordVerdict::Error).str("kafka.error", reason)
}

impl KafkaFilter {
    fn request(&mut self, s: &mut Stream<'_, KafkaRules>, data: &[u8]) -> Step {
        let Some(size) = size_field(data) else { return more(data, 4) };
        let malformed = |s: &mut Stream<'_, KafkaRules>, reason: &str| {
            s.record(error_record(Record::request, reason));
            s.error(MALFORMED_REQUEST, format!("malformed kafka request: {reason}"));
            Step::Stop
        };
        if size < 8 {
            return malformed(s, "request size smaller than a request header");
        }
        let frame = 4 + size as usize;
        if frame > MAX_REQUEST {
            return malformed(s, "request size over the 100 MiB limit");
        }
        let h = match request::header(data, frame) {
            Ok(h) => h,
            Err(Short::Need(n)) if n <= MAX_INSPECT => return more(data, n),
            Err(Short::Need(_)) => return malformed(s, "request header larger than the inspection limit"),
            Err(Short::Bad(reason)) => return malformed(s, reason),
        };
        let (body, complete) = if request::parses(h.key, h.version) {
            match request::body(data, frame, &h) {
                Ok(body) => (body, true),
                Err(Short::Need(n)) if n <= MAX_INSPECT => return more(data, n),
                Err(Short::Need(_)) => {
                    // Its topics lie beyond what we may buffer.
                    let acks = if h.key == PRODUCE { request::produce_acks(data, frame, &h) } else { None };
                    (Body { acks: acks.unwrap_or(-1), ..Body::default() }, false)
                }
                Err(Short::Bad(reason)) => return malformed(s, reason),
            }
        } else {
            (Body::default(), true)
        };
        if self.pending.len() >= MAX_PENDING {
            s.record(error_record(Record::request, "too many requests awaiting responses"));
            s.error(CANNOT_ENFORCE, "too many kafka requests awaiting responses");
            return Step::Stop;
        }
        let items = self.items(&h, &body, complete);
        let allowed = s.rules().is_some_and(|r| r.allows(h.key, h.version, h.client_id.as_deref(), &items));
        let verdict = if allowed { RecordVerdict::Forwarded } else { RecordVerdict::Dropped };
        s.record(request_record(verdict, &h, &body));
        let expects_response = !(h.key == PRODUCE && body.acks == 0);
        if allowed {
            s.pass(frame as u64);
            self.update_sessions(&h, &body);
            if expects_response {
                let new_session = fetch_new_session(&h, &body);
                self.pending.push_back(Pending::Forwarded {
                    correlation_id: h.correlation_id,
                    key: h.key,
                    version: h.version,
                    sent_ns: now_ns(),
                    new_session,
                });
            }
            return Step::Consumed(frame.min(data.len()));
        }
        s.discard(frame as u64);
        if !expects_response {
            return Step::Consumed(frame.min(data.len()));
        }
        let reply = if complete { replies::error_response(&h, &body) } else { None };
        let Some(reply) = reply else {
            let reason = if complete {
                format!("denied {} v{} has no error response; closing", api::name(h.key), h.version)
            } else {
                format!(
                    "denied {} v{}: topics beyond the inspection limit; closing",
                    api::name(h.key),
                    h.version
                )
            };
            s.error(CANNOT_ENFORCE, reason);
            return Step::Stop;
        };
        self.deliver(s, &h, reply);
        Step::Consumed(frame.min(data.len()))
    }

    /// Sends an error response now, or queues it behind the responses
    /// still to come so the client sees responses in request order.
    fn deliver(&mut self, s: &mut Stream<'_, KafkaRules>, h: &Header, frame: Vec<u8>) {
        if self.pending.is_empty() && !self.reply_streaming {
            return s.reply(frame);
        }
        if self.pending.is_empty() {
            // The last response may still be streaming past us and no call
            // will come when it ends: ask the broker a harmless question and
            // answer in its place when its answer arrives.
            s.inject(probe(h.correlation_id));
            self.pending.push_back(Pending::Probe { correlation_id: h.correlation_id });
        }
        self.pending.push_back(Pending::Denied { frame });
    }

    fn flush_denied(&mut self, s: &mut Stream<'_, KafkaRules>) {
        while let Some(Pending::Denied { .. }) = self.pending.front() {
            if let Some(Pending::Denied { frame }) = self.pending.pop_front() {
                s.inject(frame);
            }
        }
    }

    /// What the request touches, for the topic part of the rules.
    fn items<'a>(&'a self, h: &Header, b: &'a Body, complete: bool) -> Vec<Item<'a>> {
        let mut items = vec![];
        if !complete || (!b.parsed && !api::is_topic_free(h.key)) {
            items.push(Item::Unnamed);
        }
        let topic = |t: &'a request::Topic| t.name.as_deref().map_or(Item::Unnamed, Item::Topic);
        items.extend(b.topics.iter().map(topic));
        if b.all_topics {
            items.push(Item::Unnamed);
        }
        for (_, topics) in &b.groups {
            match topics {
                Some(topics) => items.extend(topics.iter().map(topic)),
                None => items.push(Item::Unnamed),
            }
        }
        for (_, topics) in &b.transactions {
            items.extend(topics.iter().map(topic));
        }
        for (kind, name) in &b.resources {
            items.push(if *kind == RESOURCE_TOPIC { Item::Topic(name) } else { Item::Unnamed });
        }
        if let Some(f) = b.fetch.as_ref().filter(|f| f.epoch > 0) {
            match self.sessions.get(&f.id) {
                Some(topics) => items.extend(topics.keys().map(|t| Item::Topic(t))),
                None => items.push(Item::Unnamed),
            }
        }
        items
    }

    /// Applies a forwarded incremental Fetch to the session it belongs to.
    fn update_sessions(&mut self, h: &Header, b: &Body) {
        let Some(f) = b.fetch.as_ref().filter(|_| h.key == FETCH) else { return };
        if f.epoch == -1 || f.epoch == 0 {
            // Closes the session (-1) or replaces it (0).
            self.sessions.remove(&f.id);
        }
        let Some(topics) = self.sessions.get_mut(&f.id).filter(|_| f.epoch > 0) else { return };
        add_topics(topics, &b.topics);
        for t in &f.forgotten {
            if let Some(name) = &t.name
                && let Some(parts) = topics.get_mut(name)
            {
                parts.retain(|p| !t.partitions.contains(p));
                if parts.is_empty() {
                    topics.remove(name);
                }
            }
        }
    }

    fn response(&mut self, s: &mut Stream<'_, KafkaRules>, data: &[u8], end_stream: bool) -> Step {
        let Some(size) = size_field(data) else { return more(data, 4) };
        let malformed = |s: &mut Stream<'_, KafkaRules>, reason: &str| {
            s.record(error_record(Record::response, reason));
            s.error(MALFORMED_RESPONSE, format!("malformed kafka response: {reason}"));
            Step::Stop
        };
        if size < 4 {
            return malformed(s, "response size smaller than a response header");
        }
        let frame = 4 + size as usize;
        if data.len() < 8 {
            return more(data, 8);
        }
        let correlation_id = i32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let step = match self.pending.front_mut() {
            None => return malformed(s, "response without a request"),
            Some(Pending::Probe { correlation_id: c } | Pending::Forwarded { correlation_id: c, .. })
                if *c != correlation_id =>
            {
                return malformed(s, "response correlation id does not match the oldest request");
            }
            Some(Pending::Probe { .. }) => {
                s.discard(frame as u64);
                Step::Consumed(frame.min(data.len()))
            }
            Some(Pending::Forwarded { key, version, sent_ns, new_session, .. }) => {
                let (key, version) = (*key, *version);
                let clamp = key == API_VERSIONS
                    && frame <= response::MAX_API_VERSIONS
                    && s.rules().is_some_and(KafkaRules::constrains_topics);
                let want = if clamp { frame } else { frame.min(8 + response::PEEK) };
                if data.len() < want && !end_stream {
                    return more(data, want);
                }
                let (body, error) = response::peek(key, version, data, frame);
                let mut out = Record::response(RecordVerdict::Forwarded)
                    .str("kafka.api_key", &api::name(key))
                    .int("kafka.api_version", i64::from(version))
                    .int("kafka.correlation_id", i64::from(correlation_id));
                if let Some(error) = error {
                    out = out.int("kafka.error_code", i64::from(error));
                }
                out = out.int("latency_ns", now_ns().saturating_sub(*sent_ns) as i64);
                if let Some(topics) = new_session.take()
                    && let Some(id) = body.and_then(|b| response::fetch_session_id(version, data, frame, b))
                    && id != 0
                {
                    if self.sessions.len() >= MAX_SESSIONS
                        && let Some(&old) = self.sessions.keys().next()
                    {
                        self.sessions.remove(&old);
                    }
                    self.sessions.insert(id, topics);
                }
                let mut patched = data[..frame.min(data.len())].to_vec();
                if clamp && patched.len() == frame && response::clamp_api_versions(version, &mut patched) {
                    s.discard(frame as u64);
                    s.inject(patched);
                    out = out.int("kafka.api_versions_clamped", 1);
                } else {
                    s.pass(frame as u64);
                    self.reply_streaming = frame > data.len();
                }
                s.record(out);
                Step::Consumed(frame.min(data.len()))
            }
            Some(Pending::Denied { .. }) => {
                unreachable!("denied responses are flushed as soon as they reach the front")
            }
        };
        self.pending.pop_front();
        self.flush_denied(s);
        step
    }
}

fn add_topics(into: &mut Topics, topics: &[request::Topic]) {
    for t in topics {
        if let Some(name) = &t.name {
            into.entry(name.clone()).or_default().extend(&t.partitions);
        }
    }
}

/// A Fetch that opens a session (epoch 0): the topics to remember.
fn fetch_new_session(h: &Header, b: &Body) -> Option<Topics> {
    b.fetch.as_ref().filter(|f| h.key == FETCH && f.epoch == 0)?;
    let mut topics = Topics::new();
    add_topics(&mut topics, &b.topics);
    Some(topics)
}

/// ApiVersions v0 with client id "porin": every broker answers it, in any
/// state of the connection.
fn probe(correlation_id: i32) -> Vec<u8> {
    let mut frame = vec![0, 0, 0, 15, 0, 18, 0, 0];
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&[0, 5]);
    frame.extend_from_slice(b"porin");
    frame
}

fn request_record(verdict: RecordVerdict, h: &Header, b: &Body) -> Record {
    let mut names: Vec<&str> = b.topics.iter().filter_map(|t| t.name.as_deref()).collect();
    for (_, topics) in &b.groups {
        names.extend(topics.iter().flatten().filter_map(|t| t.name.as_deref()));
    }
    for (_, topics) in &b.transactions {
        names.extend(topics.iter().filter_map(|t| t.name.as_deref()));
    }
    names.extend(b.resources.iter().filter(|(kind, _)| *kind == RESOURCE_TOPIC).map(|(_, n)| n.as_str()));
    let mut record = Record::request(verdict)
        .str("kafka.api_key", &api::name(h.key))
        .int("kafka.api_version", i64::from(h.version))
        .int("kafka.correlation_id", i64::from(h.correlation_id));
    if let Some(client) = &h.client_id {
        record = record.str("kafka.client_id", client);
    }
    if let Some(first) = names.first() {
        record = record.str("kafka.topic", first);
    }
    record.strs("kafka.topics", names)
}
