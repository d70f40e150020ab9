//! Request heads: parsed with httparse, then checked field by field against
//! the forms that let two HTTP implementations read one request differently.

use std::borrow::Cow;

use crate::framing::{Body, framing};
use crate::head::{MAX_HEADERS, is_token, list, raw_fields, strict_value};

/// The HTTP versions the filter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    fn from_minor(minor: Option<u8>) -> Version {
        if minor == Some(1) { Version::Http11 } else { Version::Http10 }
    }
}

/// Why a request head is refused, and how to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 400 Bad Request.
    BadRequest(&'static str),
    /// 431 Request Header Fields Too Large.
    TooLarge(&'static str),
    /// 505 HTTP Version Not Supported.
    Version(&'static str),
}

/// A request head that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    /// The path and query the rules match: the request target in origin
    /// form (absolute-form targets reduced to it), `*` for `OPTIONS *`, the
    /// authority for `CONNECT`.
    pub(crate) path: String,
    /// The `Host` header (equal to an absolute-form target's authority).
    pub(crate) host: Option<String>,
    /// `http` unless an absolute-form target said `https`.
    pub(crate) scheme: &'static str,
    pub(crate) version: Version,
    /// Header fields as sent; values decoded lossily to text.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
    /// Protocols offered in `Upgrade` (HTTP/1.1 only; lower case).
    pub(crate) upgrade: Vec<String>,
    /// `HTTP2-Settings` (base64url), sent with an `h2c` offer.
    pub(crate) http2_settings: Option<String>,
    /// `Expect: 100-continue`: the client waits before sending the body.
    pub(crate) expect_continue: bool,
}

impl RequestHead {
    pub(crate) fn is_connect(&self) -> bool {
        self.method == "CONNECT"
    }
}

/// Parses and checks a complete request head (blank line included) that
/// [`HeadScanner`](crate::head::HeadScanner) accepted.
pub(crate) fn parse(head: &[u8]) -> Result<RequestHead, Rejection> {
    use Rejection::BadRequest;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err(BadRequest("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(Rejection::TooLarge("too many header fields")),
        Err(httparse::Error::Version) => return Err(version_error(head)),
        Err(httparse::Error::Token) => return Err(BadRequest("invalid method or request target")),
        Err(httparse::Error::HeaderName) => return Err(BadRequest("invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(BadRequest("invalid header value")),
        Err(_) => return Err(BadRequest("malformed request line")),
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(BadRequest("malformed request line"));
    };
    let version = Version::from_minor(request.version);

    let mut host = None;
    let mut upgrade = Vec::new();
    let mut http2_settings = None;
    let mut expect_continue = false;
    for (name, raw) in raw_fields(head) {
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Err(BadRequest("more than one Host header"));
            }
            let value = strict_value(raw).map_err(BadRequest)?;
            if !valid_authority(value) {
                return Err(BadRequest("invalid Host header"));
            }
            host = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    for field in request.headers.iter() {
        let value = String::from_utf8_lossy(field.value);
        if field.name.eq_ignore_ascii_case("connection") {
            // A proxy that drops the fields named in Connection would drop
            // the framing or routing the filter decided on.
            if list(&value).any(|t| {
                ["content-length", "transfer-encoding", "host"].iter().any(|f| t.eq_ignore_ascii_case(f))
            }) {
                return Err(BadRequest("Connection header names a framing or Host header"));
            }
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            for protocol in list(&value) {
                if !protocol.split_once('/').map_or(is_token(protocol.as_bytes()), |(n, v)| {
                    is_token(n.as_bytes()) && is_token(v.as_bytes())
                }) {
                    return Err(BadRequest("invalid Upgrade header"));
                }
                upgrade.push(protocol.to_ascii_lowercase());
            }
        } else if field.name.eq_ignore_ascii_case("http2-settings") {
            http2_settings = Some(value.trim().to_string());
        } else if field.name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.trim().eq_ignore_ascii_case("100-continue");
        }
    }

    let framing = framing(head).map_err(BadRequest)?;
    if framing.chunked && version == Version::Http10 {
        return Err(BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
    }
    let body = match (framing.chunked, framing.content_length) {
        (true, _) => Body::Chunked,
        (false, Some(0) | None) => Body::None,
        (false, Some(length)) => Body::Length(length),
    };

    if host.is_none() && version == Version::Http11 {
        return Err(BadRequest("missing Host header"));
    }
    let target = Target::parse(method, target).map_err(BadRequest)?;
    if let Some(authority) = target.authority {
        // RFC 9112 §3.2.2: the origin server uses the target's authority
        // and ignores Host, so both must name the same host for the rules
        // to see what the server will. Compared as sent, ignoring case only
        // (no default-port normalisation).
        match &host {
            Some(host) if !host.eq_ignore_ascii_case(authority) => {
                return Err(BadRequest("absolute-form target disagrees with Host"));
            }
            Some(_) => {}
            None => host = Some(authority.to_string()),
        }
    }

    // RFC 9110 §7.8: a server ignores Upgrade in an HTTP/1.0 request.
    if version == Version::Http10 {
        upgrade.clear();
    }
    let headers = request.headers.iter().map(|f| (f.name.to_string(), lossy(f.value))).collect();
    Ok(RequestHead {
        method: method.to_string(),
        path: target.path.into_owned(),
        host,
        scheme: target.scheme,
        version,
        headers,
        body,
        upgrade,
        http2_settings,
        expect_continue,
    })
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// 505 for a well-formed `HTTP/x.y` other than 1.0 and 1.1, 400 otherwise
/// (the HTTP/2 preface included: it is HTTP/2 only as a connection's first
/// bytes).
fn version_error(head: &[u8]) -> Rejection {
    if head.starts_with(b"PRI * HTTP/2.0\r\n") {
        return Rejection::BadRequest("HTTP/2 preface after HTTP/1 requests");
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (Some(_), Some(_), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Rejection::BadRequest("malformed request line");
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Rejection::Version("unsupported HTTP version")
        }
        _ => Rejection::BadRequest("invalid HTTP version"),
    }
}

/// A checked request target.
struct Target<'a> {
    path: Cow<'a, str>,
    authority: Option<&'a str>,
    scheme: &'static str,
}

impl<'a> Target<'a> {
    /// Accepted forms: origin-form (`/path?query`); absolute-form with an
    /// `http` or `https` scheme, a non-empty authority without userinfo,
    /// and the path checked like origin-form; asterisk-form for `OPTIONS`
    /// only; anything for `CONNECT`, which is always denied.
    fn parse(method: &str, target: &'a str) -> Result<Target<'a>, &'static str> {
        let plain = |path| Target { path: Cow::Borrowed(path), authority: None, scheme: "http" };
        if !target.is_ascii() {
            return Err("non-ASCII request target");
        }
        if method == "CONNECT" {
            return Ok(plain(target));
        }
        if target == "*" {
            return if method == "OPTIONS" {
                Ok(plain(target))
            } else {
                Err("asterisk-form target outside OPTIONS")
            };
        }
        if target.starts_with('/') {
            check_path(target)?;
            return Ok(plain(target));
        }
        let (scheme, rest) = match target.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => ("http", rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => ("https", rest),
            _ => return Err("invalid request target"),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if !valid_authority(authority.as_bytes()) {
            return Err("invalid authority in request target");
        }
        let path = match path.as_bytes().first() {
            None => Cow::Borrowed("/"),
            Some(b'?') => Cow::Owned(format!("/{path}")),
            Some(_) => Cow::Borrowed(path),
        };
        check_path(&path)?;
        Ok(Target { path, authority: Some(authority), scheme })
    }
}

/// Rejects targets whose meaning depends on how the server decodes and
/// normalises them, since the rules match the target as sent: fragments,
/// backslashes, malformed percent-encodings, dot segments (also encoded,
/// `/%2e%2e/`), and encoded `/`, `\` or NUL in the path (`%2f`, `%5c`,
/// `%00`). Real clients normalise and encode these before sending.
pub(crate) fn check_path(target: &str) -> Result<(), &'static str> {
    if target.contains(['#', '\\']) {
        return Err("fragment or backslash in request target");
    }
    let bytes = target.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        if *byte == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err("invalid percent-encoding in request target");
        }
    }
    let path = target.split('?').next().unwrap_or_default();
    for segment in path.split('/') {
        let lower = segment.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
            return Err("encoded slash, backslash or NUL in path");
        }
        if matches!(lower.replace("%2e", ".").as_str(), "." | "..") {
            return Err("dot segment in path");
        }
    }
    Ok(())
}

/// An authority (`Host` or an absolute-form target's): host and optional
/// port, made of the characters RFC 3986 allows there; no userinfo.
pub(crate) fn valid_authority(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b))
}
