//! Response heads: the status and where the body ends (RFC 9112 §6.3).

use crate::framing::{Body, framing};
use crate::head::{MAX_HEADERS, list};
use crate::request::Version;

/// A checked response head.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    pub(crate) code: u16,
    pub(crate) body: Body,
    /// The first protocol of `Upgrade`, lower case (for 101).
    pub(crate) upgrade: Option<String>,
}

/// Parses a complete response head (blank line included) that the
/// [`HeadScanner`](crate::head::HeadScanner) accepted. `to_head`: the
/// request was `HEAD`.
///
/// Framing is as strict as for requests (one `Content-Length` or exactly
/// `Transfer-Encoding: chunked`, never both, no TE in HTTP/1.0): a lenient
/// reading here would let a server splice extra responses into the
/// client's stream. 1xx, 204, 304 and responses to HEAD have no body
/// whatever their fields say; a response with neither field runs until the
/// server closes.
pub(crate) fn parse(head: &[u8], to_head: bool) -> Result<ResponseHead, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err("malformed response head"),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response header fields"),
        Err(httparse::Error::Version) => return Err("unsupported response HTTP version"),
        Err(httparse::Error::Status) => return Err("invalid response status"),
        Err(_) => return Err("malformed response head"),
    }
    let Some(code) = response.code.filter(|code| *code >= 100) else { return Err("invalid response status") };
    let version = if response.version == Some(1) { Version::Http11 } else { Version::Http10 };
    let framing = framing(head)?;
    if framing.chunked && version == Version::Http10 {
        return Err("Transfer-Encoding in an HTTP/1.0 response");
    }
    let body = if to_head || matches!(code, 100..=199 | 204 | 304) {
        Body::None
    } else if framing.chunked {
        Body::Chunked
    } else {
        match framing.content_length {
            Some(0) => Body::None,
            Some(length) => Body::Length(length),
            None => Body::UntilClose,
        }
    };
    let upgrade = response
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("upgrade"))
        .and_then(|f| list(&String::from_utf8_lossy(f.value)).next().map(str::to_ascii_lowercase));
    Ok(ResponseHead { code, body, upgrade })
}
