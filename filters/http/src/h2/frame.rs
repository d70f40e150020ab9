//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, and the frames the
//! filter writes itself.

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until a peer raises it.
pub(crate) const DEFAULT_MAX_FRAME: usize = 16_384;

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PUSH_PROMISE: u8 = 0x5;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    NoError = 0x0,
    Protocol = 0x1,
    FlowControl = 0x3,
    FrameSize = 0x6,
    Compression = 0x9,
    EnhanceYourCalm = 0xb,
}

impl ErrorCode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::Protocol => "PROTOCOL_ERROR",
            ErrorCode::FlowControl => "FLOW_CONTROL_ERROR",
            ErrorCode::FrameSize => "FRAME_SIZE_ERROR",
            ErrorCode::Compression => "COMPRESSION_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
        }
    }
}

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) length: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl FrameHeader {
    /// Reads the first 9 bytes of `data` (which must hold them).
    pub(crate) fn parse(data: &[u8]) -> FrameHeader {
        FrameHeader {
            length: usize::from(data[0]) << 16 | usize::from(data[1]) << 8 | usize::from(data[2]),
            kind: data[3],
            flags: data[4],
            // The reserved bit is ignored on receipt.
            stream: u32::from_be_bytes([data[5], data[6], data[7], data[8]]) & 0x7fff_ffff,
        }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The frame's size on the wire.
    pub(crate) fn total(&self) -> usize {
        HEADER_LEN + self.length
    }
}

/// Appends a frame.
pub(crate) fn write(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let length = payload.len() as u32;
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A header block as HEADERS plus as many CONTINUATION frames as
/// `max_frame` requires.
pub(crate) fn headers(stream: u32, end_stream: bool, block: &[u8], max_frame: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + HEADER_LEN * (1 + block.len() / max_frame));
    let mut chunks = block.chunks(max_frame.max(1)).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        write(&mut out, kind, flags | if last { END_HEADERS } else { 0 }, stream, chunk);
        if last {
            return out;
        }
        (kind, flags) = (CONTINUATION, 0);
    }
}

pub(crate) fn rst_stream(stream: u32, code: ErrorCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    write(&mut out, RST_STREAM, 0, stream, &(code as u32).to_be_bytes());
    out
}

pub(crate) fn goaway(last_stream: u32, code: ErrorCode, debug: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + debug.len());
    payload.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    payload.extend_from_slice(&(code as u32).to_be_bytes());
    payload.extend_from_slice(debug.as_bytes());
    let mut out = Vec::new();
    write(&mut out, GOAWAY, 0, 0, &payload);
    out
}

pub(crate) fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    write(&mut out, WINDOW_UPDATE, 0, stream, &increment.to_be_bytes());
    out
}

/// The header block fragment of a HEADERS frame's payload: without padding
/// and priority fields. `None` when the padding does not fit.
pub(crate) fn headers_fragment<'a>(header: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    let mut payload = payload;
    let mut padding = 0;
    if header.has(PADDED) {
        padding = usize::from(*payload.first()?);
        payload = &payload[1..];
    }
    if header.has(PRIORITY_FLAG) {
        payload = payload.get(5..)?;
    }
    payload.len().checked_sub(padding).map(|end| &payload[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_split_into_continuations() {
        let frames = headers(3, true, &[7u8; 40], 16);
        let first = FrameHeader::parse(&frames);
        assert_eq!((first.length, first.kind, first.flags, first.stream), (16, HEADERS, END_STREAM, 3));
        let second = FrameHeader::parse(&frames[first.total()..]);
        assert_eq!((second.kind, second.flags), (CONTINUATION, 0));
        let third = FrameHeader::parse(&frames[first.total() + second.total()..]);
        assert_eq!((third.length, third.kind, third.flags), (8, CONTINUATION, END_HEADERS));
        assert_eq!(frames.len(), 3 * HEADER_LEN + 40);
        let empty = headers(1, false, &[], 16);
        assert_eq!(FrameHeader::parse(&empty).flags, END_HEADERS);
    }

    #[test]
    fn fragments_lose_padding_and_priority() {
        let header = FrameHeader { length: 0, kind: HEADERS, flags: PADDED | PRIORITY_FLAG, stream: 1 };
        let payload = [2, 0, 0, 0, 0, 16, b'a', b'b', 0, 0];
        assert_eq!(headers_fragment(&header, &payload), Some(&b"ab"[..]));
        assert_eq!(headers_fragment(&header, &[9, 0, 0, 0, 0, 16]), None, "padding longer than the payload");
        assert_eq!(FrameHeader::parse(&rst_stream(5, ErrorCode::Protocol)).stream, 5);
        assert_eq!(&goaway(7, ErrorCode::EnhanceYourCalm, "x")[9..], &[0, 0, 0, 7, 0, 0, 0, 0xb, b'x']);
    }
}
