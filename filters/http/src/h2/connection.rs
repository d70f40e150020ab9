//! One HTTP/2 connection through the filter: every frame is checked, every
//! request header block is decoded and enforced per stream.
//!
//! Invariants that keep a connection sound when streams are denied:
//! * The server never sees a denied stream: its HEADERS, CONTINUATION,
//!   DATA, PRIORITY, WINDOW_UPDATE and RST_STREAM frames are dropped.
//! * Request header blocks are re-encoded without the dynamic table (see
//!   [`hpack::encode`]), so the server's decoder table stays empty and
//!   dropping a block can never desynchronise it. The client's own table
//!   size updates are not forwarded; after the server changes its
//!   SETTINGS_HEADER_TABLE_SIZE, the next forwarded block starts with a size
//!   update to 0, which any limit allows.
//! * Both sides' SETTINGS_HEADER_TABLE_SIZE is clamped to
//!   [`MAX_TABLE_SIZE`] on the way through: the filter's decoders hold
//!   what the peers' encoders insert. A decoder takes a new limit when the
//!   other side acknowledges the SETTINGS (RFC 7541 §4.2).
//! * Response blocks pass as the server encoded them (the client's decoder
//!   follows the server's encoder); the filter decodes them to stay in
//!   step. Its own answers use no dynamic table either.
//! * Connection flow-control credit a dropped DATA frame used is given
//!   back to the client with a WINDOW_UPDATE.

use std::collections::{BTreeMap, VecDeque};

use porin_sdk::{Record, RecordVerdict, Stream, now_ns};

use super::frame::{self, ErrorCode, FrameHeader};
use super::hpack::{self, Decoder, HpackError};
use super::request::{self, H2Request};
use crate::HttpRules;
use crate::record::redacted;

/// Largest header list (RFC 9113 §6.5.2 accounting) and largest compressed
/// block a client may send: as much as an HTTP/1 head.
const MAX_HEADER_LIST: usize = crate::MAX_HEAD;
/// More CONTINUATION frames than this in one block is a flood.
const MAX_CONTINUATIONS: usize = 64;
/// The largest HPACK table a peer may make the filter keep.
const MAX_TABLE_SIZE: u32 = 65_536;
/// Streams the filter tracks at once; more is refused as abuse.
const MAX_STREAMS: usize = 1024;
/// Client RST_STREAMs: a burst of this many, then this many per second
/// (rapid reset, CVE-2023-44487).
const RESET_BURST: f64 = 200.0;
const RESETS_PER_SECOND: f64 = 100.0;

/// A header block being collected from HEADERS (or PUSH_PROMISE) and
/// CONTINUATION frames.
#[derive(Debug)]
struct Collecting {
    stream: u32,
    /// The block opens the stream (a request, not trailers).
    opens: bool,
    end_stream: bool,
    fragment: Vec<u8>,
    frames: usize,
}

impl Collecting {
    /// Adds one frame's fragment; false once the block is a flood (too
    /// many frames or too many bytes).
    fn add(&mut self, fragment: &[u8]) -> bool {
        self.fragment.extend_from_slice(fragment);
        self.frames += 1;
        self.frames <= MAX_CONTINUATIONS && self.fragment.len() <= MAX_HEADER_LIST
    }
}

/// What the filter keeps about a forwarded stream, for its records.
#[derive(Debug)]
struct Exchange {
    method: String,
    url: String,
    grpc: bool,
    start_ns: u64,
    status: Option<u16>,
    grpc_status: Option<String>,
    grpc_message: Option<String>,
    client_done: bool,
    server_done: bool,
    /// The RESPONSE record went out (the server ended the stream).
    recorded: bool,
}

/// A token bucket.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at_ns: u64,
}

impl Budget {
    fn take(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.at_ns) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * RESETS_PER_SECOND).min(RESET_BURST);
        self.at_ns = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// The HTTP/2 side of [`crate::HttpFilter`].
#[derive(Debug)]
pub(crate) struct H2Connection {
    preface_seen: bool,
    /// Forwarded streams still open. Denied streams are never here.
    streams: BTreeMap<u32, Exchange>,
    /// The highest stream id the client opened (forwarded or not).
    last_client_stream: u32,
    /// The highest stream id forwarded to the server.
    last_forwarded: u32,
    /// The server's SETTINGS went to the client: the filter may answer.
    server_preface_seen: bool,
    /// The filter's answers to the client, held until then.
    held: Vec<u8>,
    request_decoder: Decoder,
    response_decoder: Decoder,
    request_block: Option<Collecting>,
    response_block: Option<Collecting>,
    /// HEADER_TABLE_SIZE of each SETTINGS a side sent that the other has
    /// not acknowledged yet (`None`: the SETTINGS did not change it).
    unacked_from_client: VecDeque<Option<usize>>,
    unacked_from_server: VecDeque<Option<usize>>,
    /// The server's table size changed: the next forwarded block starts
    /// with a size update.
    owe_size_update: bool,
    /// SETTINGS_MAX_FRAME_SIZE each side announced: what it accepts.
    server_max_frame: usize,
    client_max_frame: usize,
    resets: Budget,
    closed: bool,
    /// The destination, for URLs without an authority.
    destination: Option<String>,
}

/// How a frame of a client's stream is handled.
enum StreamKind {
    /// Forwarded and open.
    Open,
    /// Opened by the client but not forwarded (denied, malformed) or
    /// already closed: its frames are dropped.
    Gone,
    /// Never opened.
    Idle,
}

impl H2Connection {
    pub(crate) fn new(destination: Option<String>) -> H2Connection {
        H2Connection {
            preface_seen: false,
            streams: BTreeMap::new(),
            last_client_stream: 0,
            last_forwarded: 0,
            server_preface_seen: false,
            held: Vec::new(),
            request_decoder: Decoder::new(),
            response_decoder: Decoder::new(),
            request_block: None,
            response_block: None,
            unacked_from_client: VecDeque::new(),
            unacked_from_server: VecDeque::new(),
            owe_size_update: false,
            server_max_frame: frame::DEFAULT_MAX_FRAME,
            client_max_frame: frame::DEFAULT_MAX_FRAME,
            resets: Budget { tokens: RESET_BURST, at_ns: now_ns() },
            closed: false,
            destination,
        }
    }

    /// The connection an `h2c` upgrade made: the upgraded request is stream
    /// 1, already sent; the client's `HTTP2-Settings` (base64url) are in
    /// force, as if acknowledged. The client's preface comes next.
    pub(crate) fn upgraded(
        destination: Option<String>,
        method: String,
        url: String,
        http2_settings: &str,
    ) -> H2Connection {
        let mut connection = H2Connection::new(destination);
        let settings = base64url(http2_settings).unwrap_or_default();
        for setting in settings.as_chunks::<6>().0 {
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match u16::from_be_bytes([setting[0], setting[1]]) {
                0x1 => connection.response_decoder.set_limit(value.min(MAX_TABLE_SIZE) as usize),
                0x5 if (16_384..=16_777_215).contains(&value) => connection.client_max_frame = value as usize,
                _ => {}
            }
        }
        let exchange = Exchange {
            method,
            url,
            grpc: false,
            start_ns: now_ns(),
            status: None,
            grpc_status: None,
            grpc_message: None,
            client_done: true,
            server_done: false,
            recorded: false,
        };
        connection.streams.insert(1, exchange);
        (connection.last_client_stream, connection.last_forwarded) = (1, 1);
        connection
    }

    /// Handles the bytes buffered in one direction: one frame per call.
    pub(crate) fn on_data(&mut self, stream: &mut Stream<'_, HttpRules>, reply: bool, data: &[u8]) {
        if self.closed {
            if !data.is_empty() {
                stream.discard(data.len() as u64);
            }
        } else if reply {
            self.on_server(stream, data);
        } else {
            self.on_client(stream, data);
        }
    }

    /// Every forwarded stream still awaiting its response, at upstream failure.
    pub(crate) fn on_upstream_failure(&mut self, stream: &mut Stream<'_, HttpRules>) {
        stream.inject(frame::goaway(0, ErrorCode::NoError, "upstream unavailable"));
        for exchange in std::mem::take(&mut self.streams).values().filter(|e| !e.recorded) {
            let record = response_record(RecordVerdict::Error, exchange).int("http.code", 503);
            stream.record(record.str("error", "upstream unavailable"));
        }
        stream.error(503, "upstream unavailable");
    }

    /// Closes the connection: GOAWAY to the client (a reply when the
    /// current data is the client's, else sent onwards), an ERROR record,
    /// and the close.
    fn fail(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        from_client: bool,
        code: ErrorCode,
        reason: &'static str,
    ) {
        let goaway = frame::goaway(self.last_forwarded, code, reason);
        if from_client {
            stream.reply(goaway)
        } else {
            stream.inject(goaway)
        }
        let error = format!("{} ({})", reason, code.name());
        stream.record(
            Record::request(RecordVerdict::Error).str("http.protocol", "HTTP/2").str("error", &error),
        );
        stream.error(400, error);
        self.closed = true;
    }

    /// Sends the filter's own frames to the client (from the client's
    /// direction). The server's SETTINGS must be the first frame a client
    /// gets (RFC 9113 §3.4), so until it has passed they wait.
    fn answer(&mut self, stream: &mut Stream<'_, HttpRules>, frames: Vec<u8>) {
        if self.server_preface_seen {
            return stream.reply(frames);
        }
        if self.held.len() + frames.len() > MAX_HEADER_LIST {
            return self.fail(
                stream,
                true,
                ErrorCode::EnhanceYourCalm,
                "too many answers before the server spoke",
            );
        }
        self.held.extend(frames);
    }

    fn kind(&self, id: u32) -> StreamKind {
        if self.streams.contains_key(&id) {
            StreamKind::Open
        } else if id <= self.last_client_stream {
            StreamKind::Gone
        } else {
            StreamKind::Idle
        }
    }

    fn on_client(&mut self, stream: &mut Stream<'_, HttpRules>, data: &[u8]) {
        if !self.preface_seen {
            let preface = frame::PREFACE;
            if data.len() < preface.len() && preface.starts_with(data) {
                return stream.more(preface.len() - data.len());
            }
            if !data.starts_with(preface) {
                return self.fail(stream, true, ErrorCode::Protocol, "invalid connection preface");
            }
            self.preface_seen = true;
            return stream.pass(preface.len() as u64);
        }
        let Some((header, payload)) = self.next_frame(stream, true, data) else { return };
        match header.kind {
            frame::DATA => self.client_data(stream, &header),
            frame::HEADERS => self.client_headers(stream, &header, payload),
            frame::CONTINUATION => self.client_continuation(stream, &header, payload),
            frame::PRIORITY | frame::WINDOW_UPDATE | frame::RST_STREAM => {
                self.client_stream_control(stream, &header, payload)
            }
            frame::SETTINGS => self.settings(stream, true, &header, payload),
            frame::PING | frame::GOAWAY => self.connection_control(stream, true, &header),
            frame::PUSH_PROMISE => self.fail(stream, true, ErrorCode::Protocol, "PUSH_PROMISE from a client"),
            // Unknown frame types are ignored by the peer (RFC 9113 §4.1).
            _ => stream.pass(header.total() as u64),
        }
    }

    fn client_data(&mut self, stream: &mut Stream<'_, HttpRules>, header: &FrameHeader) {
        if header.stream == 0 {
            return self.fail(stream, true, ErrorCode::Protocol, "DATA on stream 0");
        }
        match self.kind(header.stream) {
            StreamKind::Open => {
                stream.pass(header.total() as u64);
                if header.has(frame::END_STREAM) {
                    self.update(stream, header.stream, |exchange| exchange.client_done = true);
                }
            }
            StreamKind::Gone => {
                stream.discard(header.total() as u64);
                // The server never sees these bytes, so it never gives the
                // client's connection window back: the filter does.
                if header.length > 0 {
                    self.answer(stream, frame::window_update(0, header.length as u32));
                }
            }
            StreamKind::Idle => self.fail(stream, true, ErrorCode::Protocol, "DATA on an idle stream"),
        }
    }

    fn client_headers(&mut self, stream: &mut Stream<'_, HttpRules>, header: &FrameHeader, payload: &[u8]) {
        if header.stream == 0 || header.stream.is_multiple_of(2) {
            return self.fail(stream, true, ErrorCode::Protocol, "HEADERS on stream 0 or a server stream");
        }
        let Some(fragment) = frame::headers_fragment(header, payload) else {
            return self.fail(stream, true, ErrorCode::Protocol, "HEADERS padding longer than the frame");
        };
        let opens = matches!(self.kind(header.stream), StreamKind::Idle);
        if opens {
            if self.streams.len() >= MAX_STREAMS {
                return self.fail(stream, true, ErrorCode::EnhanceYourCalm, "too many open streams");
            }
            self.last_client_stream = header.stream;
        }
        stream.discard(header.total() as u64);
        let block = Collecting {
            stream: header.stream,
            opens,
            end_stream: header.has(frame::END_STREAM),
            fragment: fragment.to_vec(),
            frames: 1,
        };
        if header.has(frame::END_HEADERS) {
            self.request_block_done(stream, block);
        } else {
            self.request_block = Some(block);
        }
    }

    fn client_continuation(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        header: &FrameHeader,
        payload: &[u8],
    ) {
        let Some(mut block) = self.request_block.take() else {
            return self.fail(stream, true, ErrorCode::Protocol, "CONTINUATION without HEADERS");
        };
        if !block.add(payload) {
            return self.fail(stream, true, ErrorCode::EnhanceYourCalm, "CONTINUATION flood");
        }
        stream.discard(header.total() as u64);
        if header.has(frame::END_HEADERS) {
            self.request_block_done(stream, block);
        } else {
            self.request_block = Some(block);
        }
    }

    /// A complete request header block: a new request, or trailers.
    fn request_block_done(&mut self, stream: &mut Stream<'_, HttpRules>, block: Collecting) {
        let decoded = match self.request_decoder.decode(&block.fragment, MAX_HEADER_LIST) {
            Ok(decoded) => decoded,
            Err(HpackError::TooLarge) => {
                return self.fail(stream, true, ErrorCode::EnhanceYourCalm, "request header list too large");
            }
            Err(_) => {
                return self.fail(
                    stream,
                    true,
                    ErrorCode::Compression,
                    "request header block does not decode",
                );
            }
        };
        let id = block.stream;
        if !block.opens && !self.streams.contains_key(&id) {
            // Trailers of a stream denied, answered or reset: decoded only
            // to keep the table in step.
            return;
        }
        if !block.opens {
            if !block.end_stream {
                return self.fail(stream, true, ErrorCode::Protocol, "trailers without END_STREAM");
            }
            if decoded.headers.iter().any(|(name, _)| name.starts_with(b":")) {
                return self.fail(stream, true, ErrorCode::Protocol, "pseudo-header in trailers");
            }
            self.forward_block(stream, id, true, &decoded);
            self.update(stream, id, |exchange| exchange.client_done = true);
            return;
        }
        match request::parse(&decoded.headers) {
            Ok(request) => self.request(stream, id, block.end_stream, &request, &decoded),
            Err(reason) => {
                stream.record(
                    Record::request(RecordVerdict::Error).str("http.protocol", "HTTP/2").str("error", reason),
                );
                self.answer(stream, frame::rst_stream(id, ErrorCode::Protocol));
            }
        }
    }

    /// Enforces the rules on a new request.
    fn request(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        id: u32,
        end_stream: bool,
        request: &H2Request,
        decoded: &hpack::Block,
    ) {
        let authority = request.authority.as_deref().or(self.destination.as_deref());
        let url = match authority {
            Some(authority) => format!("{}://{authority}{}", request.scheme, request.path),
            None => request.path.clone(),
        };
        let allowed = stream.rules().is_some_and(|rules| rules.allows_h2(request));
        let verdict = if allowed { RecordVerdict::Forwarded } else { RecordVerdict::Dropped };
        let headers = redacted(request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        stream.record(
            Record::request(verdict)
                .str("http.method", &request.method)
                .str("http.url", &url)
                .str("http.protocol", "HTTP/2")
                .strs("http.headers", headers.iter().map(String::as_str)),
        );
        if !allowed {
            let denial = denial(id, request.grpc, self.client_max_frame);
            self.answer(stream, denial);
            if !end_stream {
                // The answer is complete: the client need not send the body.
                self.answer(stream, frame::rst_stream(id, ErrorCode::NoError));
            }
            return;
        }
        self.forward_block(stream, id, end_stream, decoded);
        self.last_forwarded = id;
        let exchange = Exchange {
            method: request.method.clone(),
            url,
            grpc: request.grpc,
            start_ns: now_ns(),
            status: None,
            grpc_status: None,
            grpc_message: None,
            client_done: end_stream,
            server_done: false,
            recorded: false,
        };
        self.streams.insert(id, exchange);
    }

    /// Sends a header block on to the server, re-encoded without the
    /// dynamic table (after a size update, if one is owed).
    fn forward_block(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        id: u32,
        end_stream: bool,
        decoded: &hpack::Block,
    ) {
        let updates: &[usize] = if std::mem::take(&mut self.owe_size_update) { &[0] } else { &[] };
        let mut block = Vec::new();
        hpack::encode(updates, &decoded.headers, &decoded.never_indexed, &mut block);
        stream.inject(frame::headers(id, end_stream, &block, self.server_max_frame));
    }

    /// PRIORITY, WINDOW_UPDATE and RST_STREAM from the client.
    fn client_stream_control(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        header: &FrameHeader,
        payload: &[u8],
    ) {
        let expected = if header.kind == frame::PRIORITY { 5 } else { 4 };
        if header.length != expected {
            return self.fail(stream, true, ErrorCode::FrameSize, "control frame of the wrong size");
        }
        if header.kind == frame::WINDOW_UPDATE {
            let increment =
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
            if increment == 0 && header.stream == 0 {
                return self.fail(stream, true, ErrorCode::Protocol, "WINDOW_UPDATE of 0 on the connection");
            }
            if header.stream == 0 {
                return stream.pass(header.total() as u64);
            }
        } else if header.stream == 0 {
            return self.fail(stream, true, ErrorCode::Protocol, "stream frame on stream 0");
        }
        if header.kind == frame::RST_STREAM && !self.resets.take(now_ns()) {
            return self.fail(
                stream,
                true,
                ErrorCode::EnhanceYourCalm,
                "too many stream resets (rapid reset)",
            );
        }
        match self.kind(header.stream) {
            StreamKind::Open => {
                stream.pass(header.total() as u64);
                if header.kind == frame::RST_STREAM
                    && let Some(exchange) = self.streams.remove(&header.stream).filter(|e| !e.recorded)
                {
                    let record =
                        response_record(RecordVerdict::Error, &exchange).str("error", "reset by the client");
                    stream.record(record);
                }
            }
            // PRIORITY may name a stream not yet opened.
            StreamKind::Idle if header.kind == frame::PRIORITY => stream.pass(header.total() as u64),
            StreamKind::Idle => self.fail(stream, true, ErrorCode::Protocol, "frame on an idle stream"),
            StreamKind::Gone => stream.discard(header.total() as u64),
        }
    }

    /// SETTINGS from either side: checked, HEADER_TABLE_SIZE clamped and
    /// remembered until acknowledged, passed on.
    fn settings(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        from_client: bool,
        header: &FrameHeader,
        payload: &[u8],
    ) {
        if header.stream != 0 {
            return self.fail(stream, from_client, ErrorCode::Protocol, "SETTINGS on a stream");
        }
        if header.has(frame::ACK) {
            if header.length != 0 {
                return self.fail(stream, from_client, ErrorCode::FrameSize, "SETTINGS ACK with a payload");
            }
            // An ACK from one side settles the other side's oldest SETTINGS.
            let (unacked, decoder) = match from_client {
                true => (&mut self.unacked_from_server, &mut self.request_decoder),
                false => (&mut self.unacked_from_client, &mut self.response_decoder),
            };
            if let Some(Some(size)) = unacked.pop_front() {
                decoder.set_limit(size);
                self.owe_size_update |= from_client;
            }
            return stream.pass(header.total() as u64);
        }
        if !header.length.is_multiple_of(6) {
            return self.fail(
                stream,
                from_client,
                ErrorCode::FrameSize,
                "SETTINGS length not a multiple of 6",
            );
        }
        let mut table_size = None;
        let mut clamped = payload.to_vec();
        for setting in clamped.as_chunks_mut::<6>().0 {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                0x1 => {
                    let size = value.min(MAX_TABLE_SIZE);
                    setting[2..].copy_from_slice(&size.to_be_bytes());
                    table_size = Some(size as usize);
                }
                0x2 if value > 1 => {
                    return self.fail(
                        stream,
                        from_client,
                        ErrorCode::Protocol,
                        "SETTINGS_ENABLE_PUSH not 0 or 1",
                    );
                }
                0x4 if value > 0x7fff_ffff => {
                    return self.fail(
                        stream,
                        from_client,
                        ErrorCode::FlowControl,
                        "SETTINGS_INITIAL_WINDOW_SIZE too large",
                    );
                }
                0x5 if !(16_384..=16_777_215).contains(&value) => {
                    return self.fail(
                        stream,
                        from_client,
                        ErrorCode::Protocol,
                        "SETTINGS_MAX_FRAME_SIZE out of range",
                    );
                }
                0x5 if from_client => self.client_max_frame = value as usize,
                0x5 => self.server_max_frame = value as usize,
                _ => {}
            }
        }
        let unacked = if from_client { &mut self.unacked_from_client } else { &mut self.unacked_from_server };
        if unacked.len() >= MAX_STREAMS {
            return self.fail(
                stream,
                from_client,
                ErrorCode::EnhanceYourCalm,
                "too many unacknowledged SETTINGS",
            );
        }
        unacked.push_back(table_size);
        if clamped == payload {
            return stream.pass(header.total() as u64);
        }
        stream.discard(header.total() as u64);
        let mut rewritten = Vec::new();
        frame::write(&mut rewritten, frame::SETTINGS, 0, 0, &clamped);
        stream.inject(rewritten);
    }

    /// PING and GOAWAY: connection frames, passed once checked.
    fn connection_control(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        from_client: bool,
        header: &FrameHeader,
    ) {
        let size_ok = if header.kind == frame::PING { header.length == 8 } else { header.length >= 8 };
        if header.stream != 0 {
            return self.fail(stream, from_client, ErrorCode::Protocol, "connection frame on a stream");
        }
        if !size_ok {
            return self.fail(stream, from_client, ErrorCode::FrameSize, "PING or GOAWAY of the wrong size");
        }
        stream.pass(header.total() as u64);
    }

    /// The frame at the start of `data` from one side, checked against
    /// what the other side accepts and against an open header block; `None`
    /// when more bytes are needed or the connection was closed. DATA
    /// payloads stream past the buffer; every other frame is read whole.
    fn next_frame<'a>(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        from_client: bool,
        data: &'a [u8],
    ) -> Option<(FrameHeader, &'a [u8])> {
        if data.len() < frame::HEADER_LEN {
            if !data.is_empty() {
                stream.more(frame::HEADER_LEN - data.len());
            }
            return None;
        }
        let header = FrameHeader::parse(data);
        let (max_frame, block) = match from_client {
            true => (self.server_max_frame, &self.request_block),
            false => (self.client_max_frame, &self.response_block),
        };
        if header.length > max_frame {
            self.fail(stream, from_client, ErrorCode::FrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE");
            return None;
        }
        if block.as_ref().is_some_and(|b| header.kind != frame::CONTINUATION || header.stream != b.stream) {
            self.fail(stream, from_client, ErrorCode::Protocol, "frame inside a header block");
            return None;
        }
        if header.kind != frame::DATA && data.len() < header.total() {
            stream.more(header.total() - data.len());
            return None;
        }
        Some((header, data.get(frame::HEADER_LEN..header.total()).unwrap_or_default()))
    }

    fn on_server(&mut self, stream: &mut Stream<'_, HttpRules>, data: &[u8]) {
        let Some((header, payload)) = self.next_frame(stream, false, data) else { return };
        if !self.server_preface_seen {
            if header.kind != frame::SETTINGS || header.has(frame::ACK) {
                return self.fail(
                    stream,
                    false,
                    ErrorCode::Protocol,
                    "the server did not start with SETTINGS",
                );
            }
            self.server_preface_seen = true;
            self.settings(stream, false, &header, payload);
            if !self.held.is_empty() {
                stream.inject(std::mem::take(&mut self.held));
            }
            return;
        }
        match header.kind {
            frame::DATA => {
                stream.pass(header.total() as u64);
                if header.has(frame::END_STREAM) {
                    self.update(stream, header.stream, |exchange| exchange.server_done = true);
                }
            }
            frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION => {
                self.server_headers(stream, &header, payload)
            }
            frame::RST_STREAM => {
                stream.pass(header.total() as u64);
                if let Some(exchange) = self.streams.remove(&header.stream).filter(|e| !e.recorded) {
                    stream.record(
                        response_record(RecordVerdict::Error, &exchange).str("error", "reset by the server"),
                    );
                }
            }
            frame::SETTINGS => self.settings(stream, false, &header, payload),
            _ => stream.pass(header.total() as u64),
        }
    }

    /// Response header blocks pass as they are; the filter decodes them
    /// (to stay in step with the server's encoder) for the records.
    fn server_headers(&mut self, stream: &mut Stream<'_, HttpRules>, header: &FrameHeader, payload: &[u8]) {
        let mut block = match header.kind {
            frame::CONTINUATION => match self.response_block.take() {
                Some(block) => block,
                None => {
                    return self.fail(
                        stream,
                        false,
                        ErrorCode::Protocol,
                        "server CONTINUATION without HEADERS",
                    );
                }
            },
            _ => Collecting {
                stream: header.stream,
                opens: false,
                end_stream: header.has(frame::END_STREAM),
                fragment: Vec::new(),
                frames: 0,
            },
        };
        let fragment = match header.kind {
            frame::HEADERS => frame::headers_fragment(header, payload),
            // PUSH_PROMISE: padding, then the promised stream id.
            frame::PUSH_PROMISE => frame::headers_fragment(
                &FrameHeader { flags: header.flags & frame::PADDED, ..*header },
                payload,
            )
            .and_then(|f| f.get(4..)),
            _ => Some(payload),
        };
        let Some(fragment) = fragment else {
            return self.fail(
                stream,
                false,
                ErrorCode::Protocol,
                "server HEADERS padding longer than the frame",
            );
        };
        if !block.add(fragment) {
            return self.fail(stream, false, ErrorCode::EnhanceYourCalm, "server header block too large");
        }
        stream.pass(header.total() as u64);
        if !header.has(frame::END_HEADERS) {
            self.response_block = Some(block);
            return;
        }
        let decoded = match self.response_decoder.decode(&block.fragment, MAX_HEADER_LIST) {
            Ok(decoded) => decoded,
            Err(_) => {
                return self.fail(
                    stream,
                    false,
                    ErrorCode::Compression,
                    "response header block does not decode",
                );
            }
        };
        if header.kind == frame::PUSH_PROMISE {
            return;
        }
        let Some(exchange) = self.streams.get_mut(&block.stream) else { return };
        for (name, value) in &decoded.headers {
            let value = String::from_utf8_lossy(value);
            match name.as_slice() {
                b":status" => {
                    let status: Option<u16> = value.parse().ok();
                    // 1xx are interim: the final status follows.
                    if status.is_some_and(|s| s >= 200) {
                        exchange.status = status;
                    }
                }
                b"grpc-status" => exchange.grpc_status = Some(value.into_owned()),
                b"grpc-message" => exchange.grpc_message = Some(value.into_owned()),
                _ => {}
            }
        }
        if block.end_stream {
            self.update(stream, block.stream, |exchange| exchange.server_done = true);
        }
    }

    /// Changes a forwarded stream: its RESPONSE record goes out when the
    /// server ends it, and it is forgotten once both sides have.
    fn update(&mut self, stream: &mut Stream<'_, HttpRules>, id: u32, change: impl FnOnce(&mut Exchange)) {
        let Some(exchange) = self.streams.get_mut(&id) else { return };
        change(exchange);
        if exchange.server_done && !exchange.recorded {
            exchange.recorded = true;
            stream.record(response_record(RecordVerdict::Forwarded, exchange));
        }
        if exchange.server_done && exchange.client_done {
            self.streams.remove(&id);
        }
    }
}

/// The RESPONSE record of a stream.
fn response_record(verdict: RecordVerdict, exchange: &Exchange) -> Record {
    let mut record = Record::response(verdict)
        .str("http.method", &exchange.method)
        .str("http.url", &exchange.url)
        .str("http.protocol", "HTTP/2")
        .int("latency_ns", now_ns().saturating_sub(exchange.start_ns).min(i64::MAX as u64) as i64);
    if let Some(status) = exchange.status {
        record = record.int("http.code", status.into());
    }
    if exchange.grpc {
        if let Some(code) = exchange.grpc_status.as_deref().and_then(|s| s.parse::<i64>().ok()) {
            record = record.int("http.grpc_status", code);
        }
        if let Some(message) = &exchange.grpc_message {
            record = record.str("http.grpc_message", message);
        }
    }
    record
}

/// The answer to a denied request, encoded without the dynamic table: a
/// gRPC call gets a trailers-only response with PERMISSION_DENIED, any
/// other request a 403 (headers only, so the filter never spends flow
/// control window the server granted).
fn denial(id: u32, grpc: bool, max_frame: usize) -> Vec<u8> {
    let fields: &[(&[u8], &[u8])] = if grpc {
        &[
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", b"7"),
            (b"grpc-message", b"Access denied"),
        ]
    } else {
        &[(b":status", b"403"), (b"content-type", b"text/plain"), (b"content-length", b"0")]
    };
    let mut block = Vec::new();
    hpack::encode(&[], fields, &[], &mut block);
    frame::headers(id, true, &block, max_frame)
}

/// Decodes base64url without padding (`HTTP2-Settings`, RFC 9113 §3.2.1 of
/// RFC 7540); `None` for anything else.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        bits = bits << 6 | u32::from(value(c)?);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64url;

    #[test]
    fn http2_settings_decode() {
        // SETTINGS_MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 33554432, ENABLE_PUSH 0 (curl's).
        assert_eq!(
            base64url("AAMAAABkAAQCAAAAAAIAAAAA").unwrap(),
            [0, 3, 0, 0, 0, 100, 0, 4, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0]
        );
        assert_eq!(base64url("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(base64url("a b"), None);
    }
}
