//! Per-flow state shared by UDP and TCP: the decision on each query, and
//! matching responses to the queries still waiting for one.

use std::collections::VecDeque;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use porin_sdk::{Level, Record, RecordVerdict};

use crate::message::{self, same_name};
use crate::record;
use crate::reply::{self, REFUSED};
use crate::rules::DnsRules;

/// Forwarded queries remembered per flow; the oldest is forgotten first
/// (its response, should it still come, is then dropped as unmatched).
const MAX_PENDING: usize = 256;
/// Queries with more questions are refused without looking at the rules:
/// servers answer more than one with FORMERR anyway, and it bounds the
/// work per query.
const MAX_QUESTIONS: usize = 16;

/// What to do with a message from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Forward it.
    Forward,
    /// Drop it and answer the client with this DNS message.
    Deny(Vec<u8>),
    /// Not a DNS query: drop it (UDP) or close the connection (TCP).
    Malformed(String),
}

/// What to do with a message from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It answers an outstanding query: forward it.
    Forward,
    /// No outstanding query has its id and question: drop it.
    Unmatched,
    /// Not a DNS response: drop it (UDP) or close the connection (TCP).
    Malformed(String),
}

#[derive(Debug)]
struct Pending {
    id: u16,
    queries: Vec<Query>,
    start_ns: u64,
}

/// One UDP flow or TCP connection.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pending: VecDeque<Pending>,
}

impl Session {
    /// Decides a message from the client under `rules` (`None`: the rule
    /// set was removed, deny). Returns the decision and its record.
    pub(crate) fn query(&mut self, rules: Option<&DnsRules>, data: &[u8]) -> (Decision, Record) {
        let query = match message::parse(data) {
            Ok(query) => query,
            Err(reason) => return malformed(data, reason),
        };
        if query.message_type == MessageType::Response {
            return malformed(data, "QR set in a message from the client".to_string());
        }
        // Other opcodes (NOTIFY, UPDATE, ...) are not name lookups: refuse.
        let (allowed, rcode) = match rules {
            Some(rules) if query.op_code == OpCode::Query => (
                (1..=MAX_QUESTIONS).contains(&query.queries.len())
                    && query.queries.iter().all(|q| rules.allows(q.name())),
                rules.reject_code().rcode(),
            ),
            _ => (false, REFUSED),
        };
        if !allowed {
            let record = record::request(&query, RecordVerdict::Dropped, Some(rcode));
            return (Decision::Deny(reply::reject(&query, rcode)), record);
        }
        let record = record::request(&query, RecordVerdict::Forwarded, None);
        // A retransmission replaces the entry it repeats.
        self.pending.retain(|p| p.id != query.id);
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            id: query.id,
            queries: query.queries,
            start_ns: porin_sdk::now_ns(),
        });
        (Decision::Forward, record)
    }

    /// Checks a message from the server; a response to an outstanding
    /// query comes with its record.
    pub(crate) fn response(&mut self, data: &[u8]) -> (Answer, Option<Record>) {
        let response = match message::parse(data) {
            Ok(response) => response,
            Err(reason) => {
                let record = record::error(true, message::id(data), &reason);
                return (Answer::Malformed(reason), Some(record));
            }
        };
        if response.message_type == MessageType::Query {
            let reason = "QR clear in a message from the server".to_string();
            let record = record::error(true, Some(response.id), &reason);
            return (Answer::Malformed(reason), Some(record));
        }
        let Some(at) = self.pending.iter().position(|p| answers(p, &response)) else {
            porin_sdk::log(
                Level::Warn,
                &format!("dropped a DNS response (id {}) that answers no outstanding query", response.id),
            );
            return (Answer::Unmatched, None);
        };
        let Some(pending) = self.pending.remove(at) else { return (Answer::Unmatched, None) };
        let latency = porin_sdk::now_ns().saturating_sub(pending.start_ns);
        (Answer::Forward, Some(record::response(&pending.queries, &response, latency)))
    }
}

/// Same id, and the same questions (names ignoring case); an error
/// response may leave the question out.
fn answers(pending: &Pending, response: &Message) -> bool {
    pending.id == response.id
        && (response.queries.is_empty()
            || (pending.queries.len() == response.queries.len()
                && pending.queries.iter().zip(&response.queries).all(|(q, r)| {
                    q.query_type() == r.query_type()
                        && q.query_class() == r.query_class()
                        && same_name(q.name(), r.name())
                })))
}

fn malformed(data: &[u8], reason: String) -> (Decision, Record) {
    let record = record::error(false, message::id(data), &reason);
    (Decision::Malformed(reason), record)
}
