//! Malformed input closes the connection with an ERROR record and never
//! panics.

use kafka_protocol::messages::ApiKey;
use porin_sdk::driver::DriverError;

use super::oracle::request_frame;
use super::*;
use crate::{MALFORMED_REQUEST, MALFORMED_RESPONSE};

fn header(size: i32, key: i16, version: i16, rest: &[u8]) -> Vec<u8> {
    let mut f = size.to_be_bytes().to_vec();
    f.extend_from_slice(&key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&7i32.to_be_bytes());
    f.extend_from_slice(rest);
    f
}

/// `frame` with its size field set to its length.
fn sized(mut f: Vec<u8>) -> Vec<u8> {
    let n = (f.len() - 4) as u32;
    f[..4].copy_from_slice(&n.to_be_bytes());
    f
}

/// A valid request with the byte at the first occurrence of `marker`,
/// shifted by `offset`, replaced.
fn corrupt(mut f: Vec<u8>, marker: &[u8], offset: isize, bytes: &[u8]) -> Vec<u8> {
    let at = f.windows(marker.len()).position(|w| w == marker).unwrap() as isize + offset;
    let at = at as usize;
    f.splice(at..at + 1, bytes.iter().copied());
    sized(f)
}

fn malformed_requests() -> Vec<(&'static str, Vec<u8>)> {
    let produce9 = request_frame(ApiKey::Produce, 9, 7);
    let produce8 = request_frame(ApiKey::Produce, 8, 7);
    let metadata12 = request_frame(ApiKey::Metadata, 12, 7);
    vec![
        ("negative size", vec![0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0]),
        ("zero size", vec![0, 0, 0, 0]),
        ("size below a header", vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]),
        ("size over the limit", vec![0x06, 0x40, 0x00, 0x01, 0, 0, 0, 0]),
        ("size i32::MAX", vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        ("negative api key", sized(header(0, -1, 0, &[0, 0]))),
        ("negative version", sized(header(0, 3, -4, &[0, 0]))),
        ("client id runs past the frame", sized(header(0, 18, 0, &[0, 9, b'a']))),
        ("negative client id length", sized(header(0, 18, 0, &[0xff, 0xf0]))),
        (
            "header tag count overflows the frame",
            sized(header(0, 3, 12, &[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f])),
        ),
        (
            "header tag varint over 5 bytes",
            sized(header(0, 3, 12, &[0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])),
        ),
        ("header tag size past the frame", sized(header(0, 3, 12, &[0, 0, 1, 0, 100, 1]))),
        ("compact topic name past the frame", corrupt(produce9.clone(), b"orders", -1, &[0x7f])),
        ("compact topic count past the frame", corrupt(produce9.clone(), b"orders", -2, &[0xff, 0xff, 0x7f])),
        ("compact records past the frame", corrupt(produce9.clone(), b"record batch", -1, &[0xff, 0x7f])),
        ("classic topic count negative", corrupt(produce8.clone(), b"orders", -6, &[0xff, 0xff, 0xff, 0xfe])),
        ("classic topic count huge", corrupt(produce8, b"orders", -6, &[0x7f, 0xff, 0xff, 0xff])),
        ("metadata topic tag overflow", {
            let mut f = metadata12;
            let at = f.windows(6).position(|w| w == b"orders").unwrap() + 6;
            f.splice(at..at + 1, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            sized(f)
        }),
        ("metadata v0 null topics", sized(header(0, 3, 0, &[0, 0, 0xff, 0xff, 0xff, 0xff]))),
    ]
}

#[test]
fn malformed_requests_close_the_connection() {
    let rules = [ALLOW_ALL, r#"{"kafka":[{"role":"produce","topic":"orders"}]}"#];
    for (what, frame) in malformed_requests() {
        for rules in rules {
            for chunk in [frame.len(), 1] {
                let mut t = tester(rules);
                for part in frame.chunks(chunk) {
                    t.send(part);
                }
                t.send_end();
                assert!(
                    matches!(t.closed(), Some(DriverError::Filter { code: MALFORMED_REQUEST, .. })),
                    "{what}: {:?}",
                    t.closed()
                );
                assert!(t.upstream().is_empty(), "{what}");
                let last = t.records().last().unwrap();
                assert_eq!(
                    (last["type"].as_str(), last["verdict"].as_str()),
                    (Some("REQUEST"), Some("ERROR")),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn truncated_requests_at_end_of_stream_are_not_forwarded() {
    let frame = request_frame(ApiKey::Produce, 9, 7);
    for cut in [2, 6, 20, frame.len() - 1] {
        let mut t = tester(ALLOW_ALL);
        t.send(&frame[..cut]);
        t.send_end();
        assert!(t.upstream().is_empty(), "cut at {cut}");
        assert!(t.closed().is_none());
    }
}

#[test]
fn malformed_responses_close_the_connection() {
    let api_versions = request_frame(ApiKey::ApiVersions, 3, 7);
    let cases: Vec<(&str, bool, Vec<u8>)> = vec![
        ("response without a request", false, vec![0, 0, 0, 6, 0, 0, 0, 7, 0, 0]),
        ("wrong correlation id", true, vec![0, 0, 0, 6, 0, 0, 0, 8, 0, 0]),
        ("negative size", true, vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 7]),
        ("size below a header", true, vec![0, 0, 0, 3, 0, 0, 0]),
    ];
    for (what, send_request, response) in cases {
        let mut t = tester(ALLOW_ALL);
        if send_request {
            t.send(&api_versions);
        }
        t.receive(&response);
        assert!(matches!(t.closed(), Some(DriverError::Filter { code: MALFORMED_RESPONSE, .. })), "{what}");
        let last = t.records().last().unwrap();
        assert_eq!(
            (last["type"].as_str(), last["verdict"].as_str()),
            (Some("RESPONSE"), Some("ERROR")),
            "{what}"
        );
    }
}
