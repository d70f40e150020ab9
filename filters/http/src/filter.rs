//! One HTTP/1.1 connection: the request parser, the response parser, and
//! the queue that keeps answers in request order.
//!
//! Each call handles one step (a head, a chunk line, a body) and leaves the
//! rest buffered; the driver calls again with what is left. Bodies are
//! passed (or dropped) past the buffer, so they never enter the filter.

use std::collections::VecDeque;

use porin_sdk::{ConnectionMeta, Record, RecordVerdict, Stream, StreamFilter, now_ns};

use crate::HttpRules;
use crate::chunked::{Chunked, Step};
use crate::framing::{Body, MAX_LENGTH};
use crate::h2::{H2Connection, PREFACE};
use crate::head::{HeadScanner, Scan};
use crate::record;
use crate::replies::{BAD_REQUEST, FORBIDDEN, HEADERS_TOO_LARGE, SERVICE_UNAVAILABLE, VERSION_NOT_SUPPORTED};
use crate::request::{self, Rejection, RequestHead};
use crate::response;

/// Most requests awaiting a response (plus queued answers) per
/// connection; a client pipelining more is cut off, so a client cannot
/// make the filter hold unbounded state.
pub const MAX_PIPELINED: usize = 32;

/// The HTTP/1.1 stream filter: one value per connection.
#[derive(Debug)]
pub struct HttpFilter {
    request: RequestState,
    response: ResponseState,
    /// Forwarded requests awaiting their responses, and the answers to
    /// later requests queued behind them, oldest first. Never starts with
    /// an answer: answers are sent as soon as nothing is ahead of them.
    queue: VecDeque<Pending>,
    /// A 101 switched protocols: both directions pass unparsed.
    tunnel: bool,
    /// The destination address, for URLs of requests without Host.
    destination: Option<String>,
    /// The client spoke HTTP/2 (its first bytes were the preface).
    h2: Option<Box<H2Connection>>,
    /// The client spoke HTTP/1 first: no HTTP/2 preface any more.
    http1: bool,
}

#[derive(Debug)]
enum RequestState {
    /// Between requests, or inside a head.
    Head(HeadScanner),
    /// Inside a chunked body; `forward`: the request was allowed.
    Chunked { body: Chunked, forward: bool },
    /// A protocol error was found while earlier requests still awaited
    /// responses; its answer is queued and everything else is dropped.
    Rejected,
}

#[derive(Debug)]
enum ResponseState {
    /// Between responses, or inside a head.
    Head(HeadScanner),
    /// Inside a chunked body of the response to `exchange`.
    Chunked { body: Chunked, exchange: Exchange },
    /// The body runs until the server closes.
    UntilClose,
    /// An answer that closes the connection was sent after a body that is
    /// still streaming; close at the next opportunity.
    Closing { code: i32, reason: String },
}

#[derive(Debug)]
enum Pending {
    /// A forwarded request.
    Awaiting(Exchange),
    /// The filter's own answer to a later request; `close`: close the
    /// connection after it.
    Answer { bytes: &'static [u8], close: Option<(i32, &'static str)> },
}

/// What a response record needs to know about its request.
#[derive(Debug)]
struct Exchange {
    method: String,
    url: String,
    protocol: &'static str,
    start_ns: u64,
    /// A HEAD request: the response has no body.
    head: bool,
    /// Protocols the request offered in `Upgrade`.
    upgrade: Vec<String>,
    /// The `HTTP2-Settings` of an `h2c` offer.
    http2_settings: Option<String>,
}

impl Rejection {
    fn answer(self) -> (&'static [u8], i32, &'static str) {
        match self {
            Rejection::BadRequest(reason) => (BAD_REQUEST, 400, reason),
            Rejection::TooLarge(reason) => (HEADERS_TOO_LARGE, 431, reason),
            Rejection::Version(reason) => (VERSION_NOT_SUPPORTED, 505, reason),
        }
    }
}

impl StreamFilter for HttpFilter {
    type Rules = HttpRules;

    fn new(meta: &ConnectionMeta) -> Self {
        HttpFilter {
            request: RequestState::Head(HeadScanner::new()),
            response: ResponseState::Head(HeadScanner::new()),
            queue: VecDeque::new(),
            tunnel: false,
            destination: meta.destination.address.map(|a| a.to_string()),
            h2: None,
            http1: false,
        }
    }

    fn on_data(&mut self, stream: &mut Stream<'_, HttpRules>, reply: bool, end_stream: bool, data: &[u8]) {
        if self.h2.is_none() && !self.http1 {
            match (reply, prefix_of_preface(data)) {
                // An HTTP/2 server may speak first (its SETTINGS): that
                // waits until the client has shown which protocol it speaks.
                (true, _) if data.len() < 9 && !data.is_empty() => return stream.more(9 - data.len()),
                (true, _) if data[3] == 0x4 && data[5..9] == [0; 4] => return stream.more(1),
                (false, Some(true)) => {
                    self.h2 = Some(Box::new(H2Connection::new(self.destination.clone())));
                }
                (false, Some(false)) if !end_stream => return stream.more(1),
                (false, _) => self.http1 = !data.is_empty(),
                (true, _) => {}
            }
        }
        if let Some(h2) = &mut self.h2 {
            return h2.on_data(stream, reply, data);
        }
        if self.tunnel {
            if !data.is_empty() {
                stream.pass(data.len() as u64);
            }
        } else if reply {
            self.on_response(stream, end_stream, data);
        } else {
            self.on_request(stream, end_stream, data);
        }
    }

    /// Every request that was forwarded gets `503`, in order, with the
    /// answers queued behind them; then the connection closes.
    fn on_upstream_failure(&mut self, stream: &mut Stream<'_, HttpRules>) {
        if let Some(h2) = &mut self.h2 {
            return h2.on_upstream_failure(stream);
        }
        for pending in self.queue.drain(..) {
            match pending {
                Pending::Awaiting(exchange) => {
                    stream.inject(SERVICE_UNAVAILABLE);
                    let record = response_record(RecordVerdict::Error, &exchange).int("http.code", 503);
                    stream.record(record.str("error", "upstream unavailable"));
                }
                Pending::Answer { bytes, .. } => stream.inject(bytes),
            }
        }
        stream.error(503, "upstream unavailable");
    }
}

/// Whether `data` starts with the HTTP/2 client preface (`Some(true)`), is
/// a beginning of it (`Some(false)`), or is something else (`None`).
fn prefix_of_preface(data: &[u8]) -> Option<bool> {
    let n = data.len().min(PREFACE.len());
    (n > 0 && data[..n] == PREFACE[..n]).then_some(n == PREFACE.len())
}

impl HttpFilter {
    /// True when an answer to a new request would have to wait.
    fn awaiting(&self) -> bool {
        !self.queue.is_empty()
    }

    fn on_request(&mut self, stream: &mut Stream<'_, HttpRules>, end: bool, data: &[u8]) {
        match &mut self.request {
            RequestState::Rejected => {
                if !data.is_empty() {
                    stream.discard(data.len() as u64);
                }
                // The client is done; if its answer is already on the way, close.
                if let (true, ResponseState::Closing { code, reason }) = (end, &self.response) {
                    stream.error(*code, reason.clone());
                }
            }
            RequestState::Chunked { body, forward } => {
                let forward = *forward;
                match body.step(data) {
                    Step::More => stream.more(1),
                    Step::Forward { line, data } => {
                        emit(stream, forward, line as u64);
                        emit(stream, forward, data);
                    }
                    Step::Done(len) => {
                        emit(stream, forward, len as u64);
                        self.request = RequestState::Head(HeadScanner::new());
                    }
                    Step::Invalid(reason) => {
                        // Inside a body, the server may be waiting for the
                        // rest of it, so the answer cannot wait its turn:
                        // answer only when nothing else is outstanding (the
                        // queue holds earlier requests and maybe this one),
                        // and close.
                        let others = self.queue.len().saturating_sub(usize::from(forward));
                        self.reject_now(stream, Rejection::BadRequest(reason), others == 0);
                    }
                }
            }
            RequestState::Head(_) => self.request_head(stream, end, data),
        }
    }

    fn request_head(&mut self, stream: &mut Stream<'_, HttpRules>, end: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // After an Upgrade request, the next bytes may belong to another
        // protocol: hold them until the response says which.
        if self.queue.iter().any(|p| matches!(p, Pending::Awaiting(e) if !e.upgrade.is_empty())) {
            return stream.more(1);
        }
        // RFC 9112 §2.2: empty lines before a request line are ignored (dropped).
        if data.starts_with(b"\r\n") {
            return stream.discard(2);
        }
        if data == b"\r" {
            return stream.more(1);
        }
        let RequestState::Head(scanner) = &mut self.request else { return };
        match scanner.scan(data) {
            Scan::Incomplete if end => {
                // The client gave up inside a head: nothing of it goes on.
                stream.discard(data.len() as u64);
                self.request = RequestState::Head(HeadScanner::new());
            }
            Scan::Incomplete => stream.more(1),
            Scan::TooLarge => self.reject(stream, Rejection::TooLarge("request head too large"), data.len()),
            Scan::Invalid(reason) => self.reject(stream, Rejection::BadRequest(reason), data.len()),
            Scan::Complete(len) => {
                self.request = RequestState::Head(HeadScanner::new());
                match request::parse(&data[..len]) {
                    Ok(head) => self.request(stream, &head, len, data.len()),
                    Err(rejection) => self.reject(stream, rejection, data.len()),
                }
            }
        }
    }

    /// Enforces the rules on a parsed request of `len` head bytes.
    fn request(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        head: &RequestHead,
        len: usize,
        buffered: usize,
    ) {
        if self.queue.len() >= MAX_PIPELINED {
            return self.reject(stream, Rejection::BadRequest("too many pipelined requests"), buffered);
        }
        let url = record::url(head, self.destination.as_deref());
        // CONNECT would open a tunnel the rules cannot see into; a removed
        // rule set denies (fail closed).
        let allowed = !head.is_connect() && stream.rules().is_some_and(|rules| rules.allows(head));
        let verdict = if allowed { RecordVerdict::Forwarded } else { RecordVerdict::Dropped };
        stream.record(record::request(verdict, head, &url));
        let body_ahead = !matches!(head.body, Body::None);
        if allowed {
            self.queue.push_back(Pending::Awaiting(Exchange {
                method: head.method.clone(),
                url,
                protocol: head.version.as_str(),
                start_ns: now_ns(),
                head: head.method == "HEAD",
                upgrade: head.upgrade.clone(),
                http2_settings: head.http2_settings.clone(),
            }));
            stream.pass(len as u64);
        } else {
            stream.discard(len as u64);
            // A client that waits for 100 Continue will not send the body
            // it announced, so the connection cannot be resynchronised.
            let close = (head.expect_continue && body_ahead)
                .then_some((403, "request denied before its body was sent"));
            if self.awaiting() {
                self.queue.push_back(Pending::Answer { bytes: FORBIDDEN, close });
            } else {
                stream.reply(FORBIDDEN);
                if let Some((code, reason)) = close {
                    return stream.error(code, reason);
                }
            }
            if close.is_some() {
                if buffered > len {
                    stream.discard((buffered - len) as u64);
                }
                self.request = RequestState::Rejected;
                return;
            }
        }
        match head.body {
            Body::Length(length) => emit(stream, allowed, length),
            Body::Chunked => self.request = RequestState::Chunked { body: Chunked::new(), forward: allowed },
            Body::None | Body::UntilClose => {}
        }
    }

    /// Refuses a malformed request found between messages.
    fn reject(&mut self, stream: &mut Stream<'_, HttpRules>, rejection: Rejection, buffered: usize) {
        if !self.awaiting() {
            return self.reject_now(stream, rejection, true);
        }
        // Earlier requests still await responses: the answer waits behind
        // them, and nothing more from this client is parsed.
        let (bytes, code, reason) = rejection.answer();
        stream
            .record(Record::request(RecordVerdict::Error).str("error", reason).int("http.code", code.into()));
        self.queue.push_back(Pending::Answer { bytes, close: Some((code, reason)) });
        stream.discard(buffered as u64);
        self.request = RequestState::Rejected;
    }

    /// Refuses a malformed request and closes the connection; the answer
    /// is sent only when `answer` (nothing else is outstanding).
    fn reject_now(&mut self, stream: &mut Stream<'_, HttpRules>, rejection: Rejection, answer: bool) {
        let (bytes, code, reason) = rejection.answer();
        stream
            .record(Record::request(RecordVerdict::Error).str("error", reason).int("http.code", code.into()));
        if answer {
            stream.reply(bytes);
        }
        stream.error(code, reason);
    }

    fn on_response(&mut self, stream: &mut Stream<'_, HttpRules>, end: bool, data: &[u8]) {
        match &mut self.response {
            ResponseState::Closing { code, reason } => {
                if !data.is_empty() {
                    stream.discard(data.len() as u64);
                }
                stream.error(*code, reason.clone());
            }
            ResponseState::UntilClose => {
                if !data.is_empty() {
                    stream.pass(data.len() as u64);
                }
            }
            ResponseState::Chunked { body, .. } => match body.step(data) {
                Step::More if end => self.response_error(stream, "response ended inside a chunked body"),
                Step::More => stream.more(1),
                Step::Forward { line, data } => {
                    emit(stream, true, line as u64);
                    emit(stream, true, data);
                }
                Step::Done(len) => {
                    stream.pass(len as u64);
                    self.response = ResponseState::Head(HeadScanner::new());
                    self.answer_queued(stream, true);
                }
                Step::Invalid(reason) => self.response_error(stream, reason),
            },
            ResponseState::Head(_) => self.response_head(stream, end, data),
        }
    }

    fn response_head(&mut self, stream: &mut Stream<'_, HttpRules>, end: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let Some(Pending::Awaiting(exchange)) = self.queue.front() else {
            return self.response_error(stream, "response without a request");
        };
        let to_head = exchange.head;
        let ResponseState::Head(scanner) = &mut self.response else { return };
        let len = match scanner.scan(data) {
            Scan::Incomplete if end => return self.response_error(stream, "response head truncated"),
            Scan::Incomplete => return stream.more(1),
            Scan::TooLarge => return self.response_error(stream, "response head too large"),
            Scan::Invalid(reason) => return self.response_error(stream, reason),
            Scan::Complete(len) => len,
        };
        self.response = ResponseState::Head(HeadScanner::new());
        let head = match response::parse(&data[..len], to_head) {
            Ok(head) => head,
            Err(reason) => return self.response_error(stream, reason),
        };
        if head.code == 101 {
            return self.switch_protocols(stream, head.upgrade, len, data.len());
        }
        if head.code < 200 {
            // Interim (100 Continue, 103 Early Hints): the final response follows.
            return stream.pass(len as u64);
        }
        let Some(Pending::Awaiting(exchange)) = self.queue.pop_front() else { return };
        stream
            .record(response_record(RecordVerdict::Forwarded, &exchange).int("http.code", head.code.into()));
        stream.pass(len as u64);
        match head.body {
            Body::None => self.answer_queued(stream, true),
            Body::Length(length) => {
                stream.pass(length);
                self.answer_queued(stream, length <= (data.len() - len) as u64);
            }
            Body::Chunked => self.response = ResponseState::Chunked { body: Chunked::new(), exchange },
            Body::UntilClose => {
                // The server closes after this body; later requests will
                // never be answered, and nothing may follow the body.
                if data.len() > len {
                    stream.pass((data.len() - len) as u64);
                }
                self.response = ResponseState::UntilClose;
                self.queue.clear();
            }
        }
    }

    /// A 101: valid only for a protocol the request offered. To `h2c`, the
    /// connection goes on as HTTP/2, the request being its stream 1; to
    /// anything else, both directions are an opaque tunnel from then on.
    fn switch_protocols(
        &mut self,
        stream: &mut Stream<'_, HttpRules>,
        protocol: Option<String>,
        len: usize,
        buffered: usize,
    ) {
        let Some(Pending::Awaiting(exchange)) = self.queue.front() else { return };
        let Some(protocol) = protocol.filter(|p| exchange.upgrade.contains(p)) else {
            return self.response_error(stream, "101 Switching Protocols without an offered Upgrade");
        };
        if protocol == "h2c" {
            let Some(Pending::Awaiting(exchange)) = self.queue.pop_front() else { return };
            let settings = exchange.http2_settings.as_deref().unwrap_or_default();
            let upgraded =
                H2Connection::upgraded(self.destination.clone(), exchange.method, exchange.url, settings);
            self.h2 = Some(Box::new(upgraded));
            self.queue.clear();
            // The server's HTTP/2 frames follow the 101: the h2 side reads them.
            return stream.pass(len as u64);
        }
        stream.record(
            response_record(RecordVerdict::Forwarded, exchange)
                .int("http.code", 101)
                .str("http.upgrade", &protocol)
                .str("summary", "switched protocols: the connection is an uninspected tunnel from here on"),
        );
        self.queue.clear();
        self.tunnel = true;
        stream.pass(buffered as u64);
    }

    /// A response ended: send the answers queued behind it. `sent`: the
    /// response is entirely in this call's data, so nothing is still
    /// streaming and the connection may be closed right away.
    fn answer_queued(&mut self, stream: &mut Stream<'_, HttpRules>, sent: bool) {
        while let Some(Pending::Answer { .. }) = self.queue.front() {
            let Some(Pending::Answer { bytes, close }) = self.queue.pop_front() else { return };
            stream.inject(bytes);
            if let Some((code, reason)) = close {
                if sent {
                    stream.error(code, reason);
                } else {
                    self.response = ResponseState::Closing { code, reason: reason.to_string() };
                }
                return;
            }
        }
    }

    /// A malformed response: close the connection.
    fn response_error(&mut self, stream: &mut Stream<'_, HttpRules>, reason: &str) {
        let record = match (&self.response, self.queue.front()) {
            (ResponseState::Chunked { exchange, .. }, _) | (_, Some(Pending::Awaiting(exchange))) => {
                response_record(RecordVerdict::Error, exchange)
            }
            _ => Record::response(RecordVerdict::Error),
        };
        stream.record(record.str("error", reason));
        stream.error(502, reason);
    }
}

/// Passes (`forward`) or drops `n` bytes; nothing for 0.
fn emit(stream: &mut Stream<'_, HttpRules>, forward: bool, n: u64) {
    let n = n.min(MAX_LENGTH);
    match (n, forward) {
        (0, _) => {}
        (n, true) => stream.pass(n),
        (n, false) => stream.discard(n),
    }
}

fn response_record(verdict: RecordVerdict, exchange: &Exchange) -> Record {
    Record::response(verdict)
        .str("http.method", &exchange.method)
        .str("http.url", &exchange.url)
        .str("http.protocol", exchange.protocol)
        .int("latency_ns", now_ns().saturating_sub(exchange.start_ns).min(MAX_LENGTH) as i64)
}
