//! The chunked transfer coding (RFC 9112 §7.1), parsed strictly so that the
//! filter and the peer always agree where a chunked body ends. Chunk data
//! itself is never looked at: it is forwarded (or dropped) past the buffer.
//!
//! Accepted: a chunk size of 1 to 16 hex digits, not above 2^63-1, directly
//! followed by CRLF or by chunk extensions; extensions are `;name` or
//! `;name=value` with a token name and a token or quoted-string value and
//! no whitespace anywhere outside quoted strings (BWS is legal but peers
//! disagree on it). Every chunk's data must be followed by CRLF. Trailer
//! fields must be well-formed like header fields, and may not be fields
//! that frame, route or authorize the message (see [`FORBIDDEN_TRAILERS`]).

use crate::framing::MAX_LENGTH;
use crate::head::{HeadScanner, MAX_HEADERS, Scan, is_tchar};

/// Longest chunk-size line, extensions included.
pub(crate) const MAX_SIZE_LINE: usize = 4096;

/// Fields a trailer section may not carry: a recipient that merges trailers
/// into the header section would see framing, routing, connection or
/// credential fields the filter never evaluated.
pub(crate) const FORBIDDEN_TRAILERS: [&str; 14] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-type",
];

/// Where a chunked body is.
#[derive(Debug, Clone)]
enum State {
    /// At a chunk-size line.
    Size,
    /// After a chunk's data: CRLF must follow.
    DataEnd,
    /// After the last chunk: the trailer section up to its blank line.
    Trailers(HeadScanner),
}

/// A chunked body being read.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
}

/// What to do with the bytes at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Need more bytes.
    More,
    /// Forward (or drop) `line` buffered bytes, then `data` more that may run past the buffer.
    Forward { line: usize, data: u64 },
    /// The body ends after this many more buffered bytes.
    Done(usize),
    /// The body is malformed.
    Invalid(&'static str),
}

impl Chunked {
    pub(crate) fn new() -> Chunked {
        Chunked { state: State::Size }
    }

    /// Parses the next piece of the body at the front of `data`.
    pub(crate) fn step(&mut self, data: &[u8]) -> Step {
        match &mut self.state {
            State::Size => match size_line(data) {
                Err(reason) => Step::Invalid(reason),
                Ok(None) if data.len() >= MAX_SIZE_LINE => Step::Invalid("chunk-size line too long"),
                Ok(None) => Step::More,
                Ok(Some((line, 0))) => {
                    self.state = State::Trailers(HeadScanner::new());
                    Step::Forward { line, data: 0 }
                }
                Ok(Some((line, size))) => {
                    self.state = State::DataEnd;
                    Step::Forward { line, data: size }
                }
            },
            State::DataEnd => match data {
                [b'\r', b'\n', ..] => {
                    self.state = State::Size;
                    Step::Forward { line: 2, data: 0 }
                }
                [] | [b'\r'] => Step::More,
                _ => Step::Invalid("chunk data not followed by CRLF"),
            },
            State::Trailers(scanner) => match scanner.scan(data) {
                Scan::Incomplete => Step::More,
                Scan::TooLarge => Step::Invalid("trailer section too large"),
                Scan::Invalid(reason) => Step::Invalid(reason),
                Scan::Complete(len) => match check_trailers(&data[..len]) {
                    Ok(()) => Step::Done(len),
                    Err(reason) => Step::Invalid(reason),
                },
            },
        }
    }
}

/// Parses `chunk-size [chunk-ext] CRLF`: `Ok(None)` while it is incomplete
/// but valid so far, `Ok(Some((line length, size)))` once complete.
fn size_line(data: &[u8]) -> Result<Option<(usize, u64)>, &'static str> {
    let digits = data.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > 16 {
        return Err("chunk size too large");
    }
    if digits == data.len() {
        return Ok(None);
    }
    if digits == 0 {
        return Err("chunk size is not hexadecimal");
    }
    let size = data[..digits].iter().fold(0u64, |size, b| (size << 4) | u64::from(hex(*b)));
    if size > MAX_LENGTH {
        return Err("chunk size too large");
    }
    let mut i = digits;
    loop {
        match data.get(i) {
            None => return Ok(None),
            Some(b'\r') => {
                return match data.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((i + 2, size))),
                    Some(_) => Err("chunk-size line not ended by CRLF"),
                };
            }
            Some(b';') => match extension(&data[i + 1..])? {
                None => return Ok(None),
                Some(len) => i += 1 + len,
            },
            Some(_) => return Err("invalid character after chunk size"),
        }
    }
}

/// Parses one chunk extension after its `;`: `name [= (token / quoted-string)]`.
/// Returns its length, or `None` when the data ends inside it.
fn extension(data: &[u8]) -> Result<Option<usize>, &'static str> {
    const INVALID: &str = "invalid chunk extension";
    let name = data.iter().take_while(|b| is_tchar(**b)).count();
    if name == data.len() {
        return Ok(None);
    }
    if name == 0 {
        return Err(INVALID);
    }
    if data[name] != b'=' {
        return Ok(Some(name));
    }
    let value = &data[name + 1..];
    match value.first() {
        None => Ok(None),
        Some(b'"') => Ok(quoted_string(value)?.map(|len| name + 1 + len)),
        Some(_) => {
            let len = value.iter().take_while(|b| is_tchar(**b)).count();
            if len == value.len() {
                Ok(None)
            } else if len == 0 {
                Err(INVALID)
            } else {
                Ok(Some(name + 1 + len))
            }
        }
    }
}

/// Parses a quoted-string starting at its opening quote; returns its
/// length, or `None` when the data ends inside it. No obs-text.
fn quoted_string(data: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut i = 1;
    while let Some(byte) = data.get(i) {
        match byte {
            b'"' => return Ok(Some(i + 1)),
            b'\\' => match data.get(i + 1) {
                None => return Ok(None),
                Some(b'\t' | b' '..=b'~') => i += 2,
                Some(_) => return Err("invalid quoted-pair in chunk extension"),
            },
            b'\t' | b' '..=b'~' => i += 1,
            _ => return Err("invalid character in chunk extension"),
        }
    }
    Ok(None)
}

fn hex(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        b'A'..=b'F' => byte - b'A' + 10,
        _ => 0,
    }
}

/// Checks a complete trailer section (its blank line included).
fn check_trailers(section: &[u8]) -> Result<(), &'static str> {
    if section == b"\r\n" {
        return Ok(());
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((len, fields))) if len == section.len() => {
            if fields.iter().any(|f| FORBIDDEN_TRAILERS.iter().any(|n| f.name.eq_ignore_ascii_case(n))) {
                return Err("forbidden trailer field");
            }
            Ok(())
        }
        Err(httparse::Error::TooManyHeaders) => Err("too many trailer fields"),
        _ => Err("invalid trailer field"),
    }
}
