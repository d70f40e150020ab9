//! Native tests of the filter through `porin_sdk::testing::StreamTester`,
//! which applies ops exactly as the host does.

mod fixtures;
mod h2;
mod parsers;
mod pipelining;
mod responses;
mod rules_json;
mod smuggling;

use porin_sdk::driver::DriverError;
use porin_sdk::testing::StreamTester;

pub(crate) use crate::replies::{BAD_REQUEST, FORBIDDEN, HEADERS_TOO_LARGE, VERSION_NOT_SUPPORTED};
use crate::{HttpFilter, MAX_HEAD, MAX_HEADERS, MAX_PIPELINED};

/// GET and POST under /public/ are allowed, everything else is denied.
pub(crate) const PUBLIC: &str =
    r#"{"http":[{"method":"GET","path":"/public/.*"},{"method":"POST","path":"/public/.*"}]}"#;

/// Everything is allowed (visibility).
pub(crate) const VISIBILITY: &str = r#"{"http":[{}]}"#;

pub(crate) type Tester = StreamTester<HttpFilter>;

pub(crate) fn tester(rules: &str) -> Tester {
    StreamTester::new(rules).expect("rules parse")
}

/// A committed fixture from `tests/fixtures/http/` (see `capture.py` there).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/http/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// How test input is cut into the pieces the filter sees.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Split {
    Whole,
    Bytes,
    /// Random piece sizes (1..=17) from this seed.
    Random(u64),
}

pub(crate) const SPLITS: [Split; 4] = [Split::Whole, Split::Bytes, Split::Random(1), Split::Random(0x5eed)];

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// The pieces `data` is cut into.
pub(crate) fn pieces(data: &[u8], split: Split) -> Vec<&[u8]> {
    match split {
        Split::Whole => vec![data],
        Split::Bytes => data.chunks(1).collect(),
        Split::Random(seed) => {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let n = (1 + rng.below(17)).min(rest.len());
                out.push(&rest[..n]);
                rest = &rest[n..];
            }
            out
        }
    }
}

/// Sends client bytes in pieces.
pub(crate) fn send(t: &mut Tester, data: &[u8], split: Split) {
    for piece in pieces(data, split) {
        t.send(piece);
    }
}

/// Sends server bytes in pieces.
pub(crate) fn receive(t: &mut Tester, data: &[u8], split: Split) {
    for piece in pieces(data, split) {
        t.receive(piece);
    }
}

/// The filter's close code, if it closed the connection.
pub(crate) fn close_code(t: &Tester) -> Option<i32> {
    match t.closed() {
        Some(DriverError::Filter { code, .. }) => Some(*code),
        Some(other) => panic!("closed by the driver, not the filter: {other}"),
        None => None,
    }
}

/// The records of one type and verdict.
pub(crate) fn records<'a>(t: &'a Tester, kind: &str, verdict: &str) -> Vec<&'a serde_json::Value> {
    t.records().iter().filter(|r| r["type"] == kind && r["verdict"] == verdict).collect()
}

/// A minimal response with a body.
pub(crate) fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// Splits a byte string of back-to-back body-less request heads.
pub(crate) fn heads(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        out.push(&rest[..end + 4]);
        rest = &rest[end + 4..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last head");
    out
}

#[test]
fn canned_answers_have_exact_lengths() {
    for answer in [FORBIDDEN, BAD_REQUEST, HEADERS_TOO_LARGE, VERSION_NOT_SUPPORTED] {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
        assert_eq!(length, body.len(), "{head}");
    }
    assert_eq!(
        FORBIDDEN,
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 15\r\ncontent-type: text/plain\r\n\r\nAccess denied\r\n"
    );
}
