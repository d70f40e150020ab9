//! porin's HTTP filter (HTTP/1.1, HTTP/2 and gRPC): Cilium's HTTP rules,
//! enforced by a WebAssembly stream filter that is strict enough to be a
//! security boundary.
//!
//! The crate is also the rule matcher the host links natively
//! ([`RuleSet`], [`HttpRule`], [`Request`], [`Decision`]).
//!
//! # Requests
//! Each request head is parsed (httparse, after a scan of our own) and
//! evaluated against the rule set on its method, path (the target with its
//! query), `Host` and headers. Allowed: head and body are forwarded, the
//! body past the filter's buffer. Denied: head and body are dropped and the
//! client gets `403 Forbidden` / `Access denied` (Envoy's answer); the
//! connection stays usable. A removed rule set denies everything. Bodies are
//! framed exactly (Content-Length, or every chunk line and chunk CRLF), so
//! every pipelined request is parsed and enforced, and bytes inside a body
//! are never taken for a request.
//!
//! Answers keep request order: a 403 for a request pipelined behind
//! forwarded ones is sent right after their responses.
//!
//! # Rejected with 400 and closed
//! Framing anyone could read two ways: Content-Length with
//! Transfer-Encoding; repeated Content-Length (even equal); Content-Length
//! other than digits (signs, spaces, lists, overflow past 2^63-1);
//! Transfer-Encoding other than exactly one `chunked` (lists such as
//! `chunked, identity` or `gzip, chunked`, `xchunked`, repeated fields);
//! Transfer-Encoding in HTTP/1.0; tabs or trailing whitespace in
//! Content-Length, Transfer-Encoding or Host. Head syntax: bare LF or bare
//! CR anywhere in the head, control characters (NUL...) anywhere, obs-fold
//! continuation lines, whitespace before a colon or before the first field,
//! invalid method, target or version. Host: missing on HTTP/1.1, repeated,
//! or not an authority. Targets: non-ASCII, fragments, backslashes, bad
//! percent-encodings, dot segments (also `%2e`), `%2f`/`%5c`/`%00` in the
//! path, asterisk-form outside OPTIONS, absolute-form other than
//! `http`/`https` or whose authority differs from Host (compared ignoring
//! case, without port normalisation). `Connection` naming Content-Length,
//! Transfer-Encoding or Host. Chunked bodies: sizes of 1 to 16 hex digits
//! up to 2^63-1, CRLF after every chunk's data; `;name[=value]` extensions
//! are accepted, strictly (token name, token or quoted-string value, no
//! whitespace outside quotes); trailers must be well-formed fields and may
//! not frame, route or carry credentials (Content-Length, Host,
//! Authorization...).
//! `PRI * HTTP/2.0` after HTTP/1 requests is answered 400 (as a
//! connection's first bytes it starts HTTP/2, below). Well-formed versions other than 1.0/1.1 get 505; heads
//! over [`MAX_HEAD`] (64 KiB) or with more than 100 fields get 431.
//! When earlier requests still await responses, the answer waits for them
//! and nothing more is read from the client; an error inside a body in that
//! situation closes without an answer (it would be taken for an earlier
//! response). More than [`MAX_PIPELINED`] outstanding requests is an error.
//!
//! # CONNECT and Upgrade
//! CONNECT is always denied (403): the tunnel would bypass L7 policy. A
//! request with `Upgrade` is evaluated like any other; if it is allowed and
//! the server answers `101 Switching Protocols` for an offered protocol,
//! the connection becomes an opaque tunnel in both directions and the
//! RESPONSE record says so, except for `h2c`: then the connection goes on
//! as HTTP/2 (below), the upgraded request being its stream 1, and every
//! later stream is enforced. Client bytes after an Upgrade request are held
//! until its response arrives. A denied request with `Expect: 100-continue` and a body
//! gets its 403 and the connection is closed (the body never comes).
//!
//! # Responses
//! Status line and headers are parsed; the body ends per RFC 9112 §6.3
//! (no body for 1xx, 204, 304 and HEAD; Content-Length; chunked; else at
//! close), with the same strict framing as requests. Interim 1xx responses
//! are passed and the final one awaited. A malformed or unsolicited
//! response closes the connection with an ERROR record (code 502).
//!
//! # Records
//! REQUEST (FORWARDED or DROPPED) with `http.method`, `http.url`
//! (`http://HOST/path?query`), `http.protocol` and `http.headers`
//! (`authorization`, `cookie`, `proxy-authorization` values shown as
//! `[redacted]`); RESPONSE with `http.code`, the request's fields and
//! `latency_ns`; protocol errors as ERROR with `error`.
//!
//! # HTTP/2 and gRPC
//! A connection whose first bytes are the client preface (prior
//! knowledge, as gRPC clients connect in plaintext), or that an allowed
//! `Upgrade: h2c` request switched, is HTTP/2: every frame
//! is checked, every request header block decoded (HPACK) and checked like
//! an HTTP/1 head (lowercase names, no connection-specific fields, `te`
//! only `trailers`, required pseudo-headers, the same path checks), and the
//! same rules decide per stream: `:method`, `:path`, `:authority` for Host,
//! the headers. gRPC calls are rules like `method: POST, path:
//! /pkg.Service/Method`. A denied gRPC call (`content-type:
//! application/grpc*`) gets a trailers-only response with `grpc-status: 7`
//! (PERMISSION_DENIED) and `grpc-message: Access denied`; any other denied
//! request a headers-only `403`; both followed by `RST_STREAM(NO_ERROR)`
//! when the request had not ended. Other streams on the connection go on;
//! the server never sees a denied stream (see `h2::connection` for how HPACK
//! and flow control stay consistent). A malformed request gets
//! `RST_STREAM(PROTOCOL_ERROR)` and an ERROR record. Connection errors close
//! with GOAWAY and an ERROR record: PROTOCOL_ERROR (bad preface, frames on
//! the wrong stream, CONTINUATION out of place, trailers without
//! END_STREAM...), FRAME_SIZE_ERROR (frames over SETTINGS_MAX_FRAME_SIZE,
//! control frames of the wrong length), COMPRESSION_ERROR (a block that does
//! not decode), FLOW_CONTROL_ERROR, and ENHANCE_YOUR_CALM for abuse: header
//! lists over 64 KiB, more than 64 CONTINUATION frames in a block, more than
//! 1,024 open streams, client RST_STREAMs beyond a burst of 200 and 100 a
//! second (rapid reset). Records: REQUEST with `http.protocol` `HTTP/2`;
//! RESPONSE with `http.code`, and for gRPC `http.grpc_status` and
//! `http.grpc_message`, and `latency_ns`.
//!
//! Not yet: `headerMatches` mismatch actions (ADD, DELETE, REPLACE) allow
//! the request but do not rewrite its headers.

mod chunked;
mod filter;
mod framing;
mod h2;
mod head;
mod record;
mod replies;
mod request;
mod response;
mod rules;

use porin_sdk::{Rules, export_filter, from_json};
use serde::Deserialize;

pub use filter::{HttpFilter, MAX_PIPELINED};
pub use head::{MAX_HEAD, MAX_HEADERS};
pub use rules::{Decision, HeaderAction, HttpRule, MismatchAction, Request, RuleError, RuleSet};

/// The rule set the host hands the filter: Cilium's rules object,
/// `{"http": [PortRuleHTTP...]}`; `{"http": [{}]}` allows everything
/// (visibility only).
#[derive(Debug, Clone)]
pub struct HttpRules {
    rules: RuleSet,
}

impl HttpRules {
    /// The compiled rules.
    pub fn rule_set(&self) -> &RuleSet {
        &self.rules
    }

    /// Evaluates a parsed request.
    fn allows(&self, head: &request::RequestHead) -> bool {
        self.evaluate(&head.method, &head.path, head.host.as_deref(), &head.headers)
    }

    /// Evaluates an HTTP/2 request: `:authority` stands for Host.
    fn allows_h2(&self, request: &h2::H2Request) -> bool {
        self.evaluate(&request.method, &request.path, request.authority.as_deref(), &request.headers)
    }

    fn evaluate(&self, method: &str, path: &str, host: Option<&str>, headers: &[(String, String)]) -> bool {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        self.rules.evaluate(&Request { method, path, host, headers: &headers }).allowed
    }
}

impl Rules for HttpRules {
    fn parse(json: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RulesObject {
            http: Vec<HttpRule>,
        }
        let object: RulesObject = from_json(json)?;
        let rules = RuleSet::compile(&object.http).map_err(|err| format!("invalid rules: {err}"))?;
        Ok(HttpRules { rules })
    }
}

export_filter!(rules = HttpRules, stream = HttpFilter);

#[cfg(test)]
mod tests;
