//! L7 records under Hubble's DNS field names, and what a response answers.

use std::fmt::Write;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record as Rr};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use porin_sdk::{Record, RecordVerdict};

use crate::message::{name, same_name, type_name};

/// JSON budgets per list: with the names around them a record stays well
/// under the host's 64 KiB limit.
const QTYPES_BUDGET: usize = 4 * 1024;
const IPS_BUDGET: usize = 32 * 1024;
const ANSWERS_BUDGET: usize = 16 * 1024;
/// Longest `data` of one answer.
const DATA_MAX: usize = 1024;
/// Longer CNAME chains are cut (resolvers give up well before: BIND at 16).
const MAX_CHAIN: usize = 32;
/// Chains are followed for this many questions (queries have one).
const MAX_QUESTIONS: usize = 8;

/// The `dns.query`/`dns.qtypes` of a question section: the first name
/// (Hubble has one) and every type.
fn questions(record: Record, queries: &[Query], truncated: &mut bool) -> Record {
    let record = match queries.first() {
        Some(first) => record.str("dns.query", &name(first.name())),
        None => record,
    };
    let qtypes: Vec<String> = queries.iter().map(|q| type_name(q.query_type())).collect();
    record.strs("dns.qtypes", within(&qtypes, QTYPES_BUDGET, truncated).iter().map(String::as_str))
}

fn mark(record: Record, truncated: bool) -> Record {
    if truncated { record.str("dns.truncated", "true") } else { record }
}

/// REQUEST, FORWARDED or DROPPED; a DROPPED one says which RCODE we sent.
pub(crate) fn request(query: &Message, verdict: RecordVerdict, rcode: Option<u8>) -> Record {
    let mut truncated = false;
    let record = questions(Record::request(verdict), &query.queries, &mut truncated)
        .int("dns.id", i64::from(query.id));
    let record = match rcode {
        Some(rcode) => record.int("dns.rcode", i64::from(rcode)),
        None => record,
    };
    mark(record, truncated)
}

/// An ERROR record for a malformed message (REQUEST from the client,
/// RESPONSE from the server).
pub(crate) fn error(from_server: bool, id: Option<u16>, reason: &str) -> Record {
    let record = if from_server {
        Record::response(RecordVerdict::Error)
    } else {
        Record::request(RecordVerdict::Error)
    };
    let record = record.str("error", reason);
    match id {
        Some(id) => record.int("dns.id", i64::from(id)),
        None => record,
    }
}

/// RESPONSE, FORWARDED: the question asked, the RCODE and the answers.
pub(crate) fn response(queries: &[Query], response: &Message, latency_ns: u64) -> Record {
    let resolved = Resolution::of(queries, &response.answers);
    let mut truncated = false;
    let ips = within(&resolved.ips, IPS_BUDGET, &mut truncated);
    let left = IPS_BUDGET.saturating_sub(ips.iter().map(|ip| json_len(ip)).sum());
    let cnames = within(&resolved.cnames, left, &mut truncated);
    // Formatted only while they fit: a 64 KiB response holds 4,000 records.
    let mut answers = Vec::new();
    let mut used = 0;
    for rr in &response.answers {
        let text = answer(rr, &mut truncated);
        used += json_len(&text);
        if used > ANSWERS_BUDGET {
            truncated = true;
            break;
        }
        answers.push(text);
    }
    let mut record = questions(Record::response(RecordVerdict::Forwarded), queries, &mut truncated)
        .int("dns.id", i64::from(response.id))
        .int("dns.rcode", i64::from(u16::from(response.response_code)))
        .strs("dns.ips", ips.iter().map(String::as_str))
        .strs("dns.cnames", cnames.iter().map(String::as_str));
    if let Some(ttl) = resolved.ttl {
        record = record.int("dns.ttl", i64::from(ttl));
    }
    record = record.strs("dns.answers", answers.iter().map(String::as_str));
    mark(record, truncated).int("latency_ns", latency_ns.min(i64::MAX as u64) as i64)
}

/// The leading items whose JSON fits in `budget` bytes.
fn within<'a>(items: &'a [String], budget: usize, truncated: &mut bool) -> &'a [String] {
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        used += json_len(item);
        if used > budget {
            *truncated = true;
            return &items[..i];
        }
    }
    items
}

/// Bytes `text` takes as a JSON list item: quotes, comma, and `\` or `"`
/// escaped (our strings hold no control characters).
fn json_len(text: &str) -> usize {
    text.len() + text.bytes().filter(|b| matches!(b, b'\\' | b'"')).count() + 3
}

/// What the answer section says about the question names.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// A and AAAA addresses of the final name of each CNAME chain.
    pub(crate) ips: Vec<String>,
    /// CNAME targets along each chain, in chain order.
    pub(crate) cnames: Vec<String>,
    /// Smallest TTL of the records on the chains.
    pub(crate) ttl: Option<u32>,
}

impl Resolution {
    /// Follows each question's CNAME chain through the answers (in any
    /// order, loops cut), then takes the chain end's A and AAAA records.
    /// Records off the chains are ignored: a server may not attach
    /// addresses to names nobody asked about.
    pub(crate) fn of(queries: &[Query], answers: &[Rr]) -> Resolution {
        let mut out = Resolution::default();
        for query in queries.iter().take(MAX_QUESTIONS) {
            let mut current: &Name = query.name();
            let mut seen: Vec<&Name> = vec![current];
            while let Some((rr, target)) = answers.iter().find_map(|rr| match &rr.data {
                RData::CNAME(target) if in_class(rr) && same_name(&rr.name, current) => Some((rr, target)),
                _ => None,
            }) {
                if seen.len() > MAX_CHAIN || seen.iter().any(|n| same_name(n, &target.0)) {
                    break;
                }
                out.cnames.push(name(&target.0));
                out.min_ttl(rr.ttl);
                current = &target.0;
                seen.push(current);
            }
            for rr in answers.iter().filter(|rr| in_class(rr) && same_name(&rr.name, current)) {
                let ip = match &rr.data {
                    RData::A(a) => a.0.to_string(),
                    RData::AAAA(aaaa) => aaaa.0.to_string(),
                    _ => continue,
                };
                out.ips.push(ip);
                out.min_ttl(rr.ttl);
            }
        }
        out
    }

    fn min_ttl(&mut self, ttl: u32) {
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
    }
}

fn in_class(rr: &Rr) -> bool {
    rr.dns_class == DNSClass::IN
}

/// One answer as `name TYPE ttl data`, data in presentation form.
fn answer(rr: &Rr, truncated: &mut bool) -> String {
    let mut data = rdata(&rr.data);
    if data.len() > DATA_MAX {
        let mut end = DATA_MAX;
        while !data.is_char_boundary(end) {
            end -= 1;
        }
        data.truncate(end);
        data.push_str("...");
        *truncated = true;
    }
    format!("{} {} {} {data}", name(&rr.name), type_name(rr.record_type()), rr.ttl)
}

/// Presentation form of the common types; RFC 3597 `\# len hex` for the rest.
fn rdata(data: &RData) -> String {
    match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(n) => name(&n.0),
        RData::NS(n) => name(&n.0),
        RData::PTR(n) => name(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name(&mx.exchange)),
        RData::SRV(srv) => format!("{} {} {} {}", srv.priority, srv.weight, srv.port, name(&srv.target)),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name(&soa.mname),
            name(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::TXT(txt) => {
            let mut out = String::new();
            for (i, string) in txt.txt_data.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                quoted(&mut out, string);
            }
            out
        }
        other => generic(other),
    }
}

/// A character-string in double quotes, escaped as in zone files.
fn quoted(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:03}");
            }
        }
    }
    out.push('"');
}

fn generic(data: &RData) -> String {
    let mut bytes = Vec::new();
    if data.emit(&mut BinEncoder::new(&mut bytes)).is_err() {
        return "\\# ?".to_string();
    }
    let mut out = format!("\\# {}", bytes.len());
    if !bytes.is_empty() {
        out.push(' ');
        for byte in bytes {
            let _ = write!(out, "{byte:02x}");
        }
    }
    out
}
