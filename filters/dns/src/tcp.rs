//! DNS over TCP: messages behind a 2-byte length (RFC 1035 §4.2.2),
//! several per connection and pipelined (RFC 7766).

use porin_sdk::{ConnectionMeta, Stream, StreamFilter};

use crate::rules::DnsRules;
use crate::session::{Answer, Decision, Session};

/// ERROR code for a malformed message from the client (DNS FORMERR).
pub const ERROR_QUERY: i32 = 1;
/// ERROR code for a malformed message from the server (DNS SERVFAIL).
pub const ERROR_RESPONSE: i32 = 2;

/// Work per call, well within the host's per-call limits (4,096 records,
/// 4 MiB injected, 50 ms): at most this many messages, and no new one once
/// this many bytes were read or injected. The host calls again at once
/// for the rest.
const MAX_BATCH: usize = 64;
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// The stream filter: one value per connection.
#[derive(Debug)]
pub struct DnsTcp {
    session: Session,
}

impl StreamFilter for DnsTcp {
    type Rules = DnsRules;

    fn new(_meta: &ConnectionMeta) -> Self {
        DnsTcp { session: Session::default() }
    }

    fn on_data(&mut self, stream: &mut Stream<'_, DnsRules>, reply: bool, end_stream: bool, data: &[u8]) {
        let mut rest = data;
        let mut injected = 0;
        for _ in 0..MAX_BATCH {
            if rest.is_empty() || data.len() - rest.len() >= MAX_BATCH_BYTES || injected >= MAX_BATCH_BYTES {
                return;
            }
            // Whole messages only: we parse each before it moves, so a
            // REFUSED we inject never lands inside a passing response.
            let need = match rest {
                [hi, lo, ..] => 2 + usize::from(u16::from_be_bytes([*hi, *lo])),
                _ => 2,
            };
            if need == 2 && rest.len() >= 2 {
                return fail(stream, reply, None, "zero-length DNS message".to_string());
            }
            if rest.len() < need {
                if end_stream {
                    let what = if rest.len() < 2 { "length prefix" } else { "message" };
                    let reason = format!("stream ended inside a {what} ({} of {need} bytes)", rest.len());
                    return fail(stream, reply, crate::message::id(&rest[rest.len().min(2)..]), reason);
                }
                return stream.more(need - rest.len());
            }
            let message = &rest[2..need];
            if reply {
                let (answer, record) = self.session.response(message);
                if let Some(record) = record {
                    stream.record(record);
                }
                match answer {
                    Answer::Forward => stream.pass(need as u64),
                    Answer::Unmatched => stream.discard(need as u64),
                    Answer::Malformed(reason) => return stream.error(ERROR_RESPONSE, reason),
                }
            } else {
                let (decision, record) = self.session.query(stream.rules(), message);
                stream.record(record);
                match decision {
                    Decision::Forward => stream.pass(need as u64),
                    Decision::Deny(answer) => {
                        stream.discard(need as u64);
                        injected += answer.len() + 2;
                        stream.reply(framed(&answer));
                    }
                    Decision::Malformed(reason) => return stream.error(ERROR_QUERY, reason),
                }
            }
            rest = &rest[need..];
        }
    }
}

/// Records and reports a framing error, then closes the connection.
fn fail(stream: &mut Stream<'_, DnsRules>, reply: bool, id: Option<u16>, reason: String) {
    stream.record(crate::record::error(reply, id, &reason));
    stream.error(if reply { ERROR_RESPONSE } else { ERROR_QUERY }, reason);
}

/// A DNS message behind its TCP length prefix.
fn framed(message: &[u8]) -> Vec<u8> {
    // `reply::reject` keeps answers within a frame.
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    out
}
