//! The answers the filter sends on its own.

/// A denied request: Cilium's (Envoy's) answer, byte for byte. The
/// connection stays open for the next request.
pub(crate) const FORBIDDEN: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 15\r\ncontent-type: text/plain\r\n\r\nAccess denied\r\n";

/// A malformed request; the connection is closed after it.
pub(crate) const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nBad Request";

/// A request head over the limit; the connection is closed after it.
pub(crate) const HEADERS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 31\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nRequest Header Fields Too Large";

/// A well-formed HTTP version other than 1.0 and 1.1; closed after it.
pub(crate) const VERSION_NOT_SUPPORTED: &[u8] = b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 26\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nHTTP Version Not Supported";

/// The destination could not be reached (Envoy's answer); closed after it.
pub(crate) const SERVICE_UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 19\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nno healthy upstream";
