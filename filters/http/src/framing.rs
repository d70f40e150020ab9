//! Where a message body ends (RFC 9112 §6), decided strictly: whenever two
//! HTTP implementations could disagree about it, the message is rejected,
//! because that disagreement is request smuggling.

use crate::head::{raw_fields, strict_value};

/// Largest `Content-Length` or chunk size: the ABI carries byte counts as
/// signed 64-bit numbers.
pub(crate) const MAX_LENGTH: u64 = i64::MAX as u64;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body.
    None,
    /// Exactly this many bytes (never 0: that is `None`).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes (responses only).
    UntilClose,
}

/// The framing fields of a head, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub(crate) content_length: Option<u64>,
    pub(crate) chunked: bool,
}

/// Reads `Content-Length` and `Transfer-Encoding` from a scanned head.
///
/// Accepted: at most one `Content-Length` whose value is decimal digits
/// only, not above [`MAX_LENGTH`]; at most one `Transfer-Encoding` whose
/// value is exactly `chunked` (any case); never both. Rejected: repeated
/// fields (even with equal values), lists (`5, 5`, `chunked, identity`,
/// `gzip, chunked`), signs, inner or trailing whitespace, tabs, and any
/// other coding: a coding the peer does not apply, or applies before
/// `chunked`, leaves the two sides with different ideas of the body length.
pub(crate) fn framing(head: &[u8]) -> Result<Framing, &'static str> {
    let mut framing = Framing { content_length: None, chunked: false };
    let mut transfer_encoding = false;
    for (name, raw) in raw_fields(head) {
        if name.eq_ignore_ascii_case(b"content-length") {
            if framing.content_length.is_some() {
                return Err("more than one Content-Length");
            }
            framing.content_length = Some(content_length(strict_value(raw)?)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if transfer_encoding {
                return Err("more than one Transfer-Encoding");
            }
            transfer_encoding = true;
            if !strict_value(raw)?.eq_ignore_ascii_case(b"chunked") {
                return Err("Transfer-Encoding other than chunked");
            }
            framing.chunked = true;
        }
    }
    if framing.chunked && framing.content_length.is_some() {
        return Err("both Content-Length and Transfer-Encoding");
    }
    Ok(framing)
}

/// Parses a `Content-Length` value: 1*DIGIT, nothing else.
pub(crate) fn content_length(value: &[u8]) -> Result<u64, &'static str> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err("invalid Content-Length");
    }
    let mut length: u64 = 0;
    for digit in value {
        length = length
            .checked_mul(10)
            .and_then(|l| l.checked_add(u64::from(digit - b'0')))
            .filter(|l| *l <= MAX_LENGTH)
            .ok_or("Content-Length too large")?;
    }
    Ok(length)
}
