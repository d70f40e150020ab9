//! porin's DNS filter: Cilium's DNS rules (`toFQDNs`' L7 half), enforced by
//! a WebAssembly module on DNS over UDP ([`DnsUdp`], one message per
//! datagram) and DNS over TCP ([`DnsTcp`], RFC 1035 2-byte length
//! prefixes, several pipelined messages per connection, RFC 7766).
//!
//! # Rules
//! A rule set is Cilium's `rules` object:
//! `{"dns":[{"matchName":"example.com"},{"matchPattern":"*.svc.cluster.local"}]}`.
//! A query name is allowed when any rule matches it:
//!
//! * `matchName`: the whole name, ignoring ASCII case; the trailing dot is
//!   optional (`example.com` and `example.com.` are the same rule).
//! * `matchPattern`: the same, except that `*` matches zero or more DNS
//!   characters (`[-a-zA-Z0-9_]`) **within one label**, anywhere in a
//!   label (`api-*.example.com`, `*cilium.io`). So `*.example.com` matches
//!   `a.example.com` but neither `a.b.example.com` nor `example.com`, and
//!   `*cilium.io` matches `cilium.io` and `subcilium.io` but not
//!   `www.cilium.io`. This is what Cilium does (it compiles `*` to
//!   `[-a-zA-Z0-9_]*`), not what its older doc says about a leading `*`.
//! * A lone `*` matches every name, the root included, whatever bytes its
//!   labels hold: it is the allow-all rule (Cilium's regex for it would
//!   leave out names with other bytes; an allow-all should not). `*.` is
//!   one label of DNS characters.
//!
//! A rule needs `matchName` or `matchPattern` (both: either matches). Names
//! and patterns must be labels of `[-a-zA-Z0-9_]` (and `*` in patterns)
//! joined by single dots (Cilium's validation); anything else, unknown keys
//! included, refuses the whole rule set. `"dns": []` denies every query.
//!
//! Denied queries are answered REFUSED. `"rejectResponseCode":
//! "nameError"` next to `dns` answers NXDOMAIN instead (`"refused"` is the
//! default): the per-rule-set form of Cilium's agent flag
//! `--tofqdns-dns-reject-response-code=refused|nameError`.
//!
//! # Queries
//! Every message from the client is parsed whole (hickory-proto) before
//! it moves. A standard query (opcode QUERY) is forwarded byte for byte
//! when **every** question is allowed (real queries have one; servers
//! answer more with FORMERR); a query with no question or more than 16,
//! with any other opcode (NOTIFY, UPDATE, ...: they are not lookups) or on
//! a connection whose rule set was removed is denied. A denied query is
//! dropped and answered: same id, opcode and question section, QR=1, RD
//! and CD copied, RA=1, no records, RCODE REFUSED (or NXDOMAIN as
//! configured; other opcodes and removed rule sets always REFUSED). Over
//! UDP the answer replaces the datagram ([`porin_sdk::Verdict::Reply`]);
//! over TCP the message is discarded and the length-prefixed answer sent
//! back, and the connection stays open. Rule changes apply from the next
//! message on.
//!
//! # Responses
//! A message from the server is forwarded only if it answers a query
//! still outstanding on the flow or connection: same id and the same
//! questions (names ignoring case; an answer without a question section
//! matches on the id). Unsolicited or duplicate responses are dropped
//! (TCP: discarded, the connection stays) with a warning in the log, and
//! get no record: FQDN policy must learn addresses only from answers to
//! queries the policy allowed. A flow remembers its latest 256 queries.
//!
//! # Malformed messages
//! A message that hickory does not parse (short header, bad label
//! lengths or types, compression pointers that do not point backwards,
//! names over 255 bytes, record data that does not fit its type, OPT
//! outside the additional section or twice...), that has bytes after its
//! last record, claims more records than its bytes can hold, has QR=1
//! from the client or QR=0 from the server; over TCP also a zero-length message or a stream that
//! ends inside a length prefix or message. Over UDP it is dropped; over TCP
//! the connection is closed (ERROR code [`tcp::ERROR_QUERY`] = 1 from the
//! client, [`tcp::ERROR_RESPONSE`] = 2 from the server). Either way an
//! ERROR record with `error` (and `dns.id` when the header is complete).
//!
//! # Records
//! Flat records under Hubble's names. Names are shown in presentation
//! form: lowercase (as Cilium does), trailing dot, `\.`, `\\` and `\DDD`
//! escapes.
//!
//! * REQUEST, FORWARDED or DROPPED: `dns.query` (the first question's
//!   name), `dns.qtypes` (every question's type, `["A"]`), `dns.id`; DROPPED
//!   adds `dns.rcode`, the RCODE we answered.
//! * RESPONSE, FORWARDED: `dns.query`, `dns.qtypes`, `dns.id`, `dns.rcode`
//!   (number, EDNS extended bits included), `dns.ips`, `dns.cnames`,
//!   `dns.ttl`, `dns.answers` (every answer as `"name TYPE ttl data"`,
//!   data in zone-file form for A, AAAA, CNAME, NS, PTR, MX, SRV, SOA and
//!   TXT, RFC 3597 `\# len hex` otherwise) and `latency_ns` since the
//!   query. For each question (the first 8) the
//!   answers' CNAME chain is followed from the question name, in chain
//!   order whatever the record order, cut at loops and after 32 links:
//!   `dns.cnames` are its targets in order and `dns.ips` the A and AAAA
//!   addresses of its **final** name, class IN only. Records off the chain
//!   count for nothing but `dns.answers`. `dns.ttl` is the smallest TTL on
//!   the chain (absent when the chain has no record). Lists are cut to keep
//!   a record far below the host's 64 KiB limit, marked
//!   `"dns.truncated":"true"`.
//!
//! # WebAssembly
//! hickory-proto is used without default features: its `std` feature
//! brings `rand`'s thread RNG and so `getrandom`, which needs a JS or
//! custom backend on `wasm32-unknown-unknown`. Parsing and encoding need
//! no randomness (only building queries with random ids does). Without
//! `std`, hickory's lazy statics lock through `critical-section`, whose
//! `std` implementation is linked in (a no-op mutex on single-threaded
//! Wasm). The module imports nothing beyond the porin ABI.
//!
//! # Fuzzing
//! [`fuzz_one`] runs one input through every path with the invariants
//! (no panic, hickory round trip of every accepted message, no silent
//! drop of a well-formed query); `src/tests/mutation.rs` drives it over
//! mutated captures and `fuzz/` is its cargo-fuzz target.

mod message;
mod record;
mod reply;
mod rules;
mod session;
pub mod tcp;
mod udp;

#[cfg(not(target_arch = "wasm32"))]
mod fuzz;
#[cfg(test)]
mod tests;

#[cfg(not(target_arch = "wasm32"))]
pub use fuzz::fuzz_one;
pub use rules::{DnsRules, RejectCode};
pub use tcp::DnsTcp;
pub use udp::DnsUdp;

porin_sdk::export_filter!(rules = DnsRules, stream = DnsTcp, datagram = DnsUdp);
