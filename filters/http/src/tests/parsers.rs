//! The parsers on their own, and robustness against arbitrary input.

use porin_sdk::driver::DriverError;

use super::*;
use crate::chunked::{Chunked, Step};
use crate::framing::{Body, content_length};
use crate::head::{HeadScanner, Scan};
use crate::request::{self, Rejection};

#[test]
fn head_scanner_resumes_where_it_stopped() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
    let mut scanner = HeadScanner::new();
    for end in 1..head.len() {
        match scanner.scan(&head[..end]) {
            Scan::Incomplete => assert!(end < 27),
            Scan::Complete(len) => {
                assert_eq!((len, end), (27, 27));
                return;
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("never complete");
}

#[test]
fn content_length_values() {
    assert_eq!(content_length(b"0"), Ok(0));
    assert_eq!(content_length(b"0042"), Ok(42));
    assert_eq!(content_length(b"9223372036854775807"), Ok(i64::MAX as u64));
    for bad in
        [&b""[..], b"+1", b"-1", b"1 2", b"0x10", b"1.0", b"9223372036854775808", b"99999999999999999999999"]
    {
        assert!(content_length(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

/// Runs a chunked body through the decoder; returns the bytes it would
/// forward and whether it ended.
fn decode(body: &[u8]) -> Result<(usize, bool), &'static str> {
    let mut chunked = Chunked::new();
    let mut at = 0usize;
    loop {
        match chunked.step(&body[at..]) {
            Step::More => return Ok((at, false)),
            Step::Forward { line, data } => at = (at + line + data as usize).min(body.len()),
            Step::Done(len) => return Ok((at + len, true)),
            Step::Invalid(reason) => return Err(reason),
        }
    }
}

#[test]
fn chunked_bodies() {
    assert_eq!(decode(b"0\r\n\r\n"), Ok((5, true)));
    assert_eq!(decode(b"5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT"), Ok((30, true)));
    assert_eq!(decode(b"ffffffffffffff\r\n"), Ok((16, false)));
    assert_eq!(decode(b"7fffffffffffffff\r\n"), Ok((18, false)));
    assert_eq!(decode(b"5;a=\"q\\\"x\";b\r\nhello\r\n0;z\r\nA: 1\r\nB: 2\r\n\r\n"), Ok((40, true)));
    assert_eq!(decode(b"5\r\nhel"), Ok((6, false)));
    assert_eq!(decode(b"5;a=\"unterminated"), Ok((0, false)));
    for bad in [
        &b"g\r\n"[..],
        b";a\r\n",
        b"5;\r\n",
        b"5;a=\r\n",
        b"5;a=\"x\"y\r\n",
        b"5;a b\r\n",
        b"5;a=\"\x01\"\r\n",
        b"5\r\nhello\r\r\n",
        b"0\r\nX: \x00\r\n\r\n",
        b"0\r\nBad Name: x\r\n\r\n",
        b"0\r\nCookie: a=b\r\n\r\n",
        b"0\r\nAuthorization: x\r\n\r\n",
    ] {
        assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    let long_extension = format!("1;a={}", "x".repeat(5000));
    assert_eq!(decode(long_extension.as_bytes()), Err("chunk-size line too long"));
}

fn parse(head: &str) -> Result<request::RequestHead, Rejection> {
    request::parse(head.as_bytes())
}

#[test]
fn request_targets_as_the_rules_see_them() {
    let cases = [
        ("GET /a/b?c=d HTTP/1.1\r\nHost: h\r\n\r\n", "/a/b?c=d", Some("h"), "http://h/a/b?c=d"),
        (
            "GET http://h:8080/a?x HTTP/1.1\r\nHost: h:8080\r\n\r\n",
            "/a?x",
            Some("h:8080"),
            "http://h:8080/a?x",
        ),
        ("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n", "/", Some("h"), "https://h/"),
        ("GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n", "/?q", Some("h"), "http://h/?q"),
        ("GET http://h/a HTTP/1.0\r\n\r\n", "/a", Some("h"), "http://h/a"),
        ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "*", Some("h"), "http://h"),
        ("GET /a HTTP/1.0\r\n\r\n", "/a", None, "/a"),
        ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "h:443", Some("h:443"), "h:443"),
        (
            "GET /%41%2e/a.b/..c HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            "/%41%2e/a.b/..c",
            Some("[::1]:80"),
            "http://[::1]:80/%41%2e/a.b/..c",
        ),
    ];
    for (head, path, host, url) in cases {
        let parsed = parse(head).unwrap_or_else(|err| panic!("{head}: {err:?}"));
        assert_eq!((parsed.path.as_str(), parsed.host.as_deref()), (path, host), "{head}");
        assert_eq!(crate::record::url(&parsed, None), url);
    }
    let no_host = parse("GET /a HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(crate::record::url(&no_host, Some("10.0.0.1:80")), "http://10.0.0.1:80/a");
}

#[test]
fn request_framing_and_flags() {
    let head = parse("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(head.body, Body::None);
    let head =
        parse("PUT /a HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\ncontent-length: 7\r\n\r\n").unwrap();
    assert_eq!((head.body, head.expect_continue), (Body::Length(7), true));
    let head = parse("GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket, foo/2\r\n\r\n").unwrap();
    assert_eq!(head.upgrade, ["websocket", "foo/2"]);
    let head = parse("GET /a HTTP/1.0\r\nUpgrade: websocket\r\n\r\n").unwrap();
    assert!(head.upgrade.is_empty(), "HTTP/1.0 upgrades are ignored");
    assert_eq!(
        parse("GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: web socket\r\n\r\n").unwrap_err(),
        Rejection::BadRequest("invalid Upgrade header")
    );
    let head = parse("GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade, HTTP2-Settings\r\nUpgrade: h2c, websocket\r\nHTTP2-Settings: AA\r\n\r\n").unwrap();
    assert_eq!(head.upgrade, ["h2c", "websocket"]);
    assert_eq!(head.http2_settings.as_deref(), Some("AA"));
}

#[test]
fn obs_text_in_header_values_is_kept_as_text() {
    let head = request::parse(b"GET /a HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n").unwrap();
    assert_eq!(head.headers[1], ("X-Name".to_string(), "caf\u{fffd}".to_string()));
}

/// Arbitrary input never panics and never stalls the driver: every call
/// consumes bytes, asks for more, or closes with a filter error.
#[test]
fn arbitrary_input_never_panics_or_stalls() {
    const TOKENS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"/public/a",
        b"/admin",
        b" HTTP/1.1",
        b" HTTP/1.0",
        b"\r\n",
        b"\r",
        b"\n",
        b"\r\n\r\n",
        b"Host: a",
        b"Content-Length: ",
        b"Transfer-Encoding: chunked",
        b"Upgrade: websocket",
        b"Expect: 100-continue",
        b"0",
        b"5",
        b"ff",
        b";x=y",
        b"hello",
        b" ",
        b"\t",
        b":",
        b"\0",
        b"\xff",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 101 x",
        b"HTTP/1.1 100 Continue",
        b"content-length: 3",
        b"abc",
    ];
    let mut rng = Rng::new(7);
    for round in 0..1500 {
        let rules = if round % 3 == 0 { VISIBILITY } else { PUBLIC };
        let mut t = tester(rules);
        for _ in 0..1 + rng.below(8) {
            let mut piece = Vec::new();
            for _ in 0..1 + rng.below(12) {
                piece.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            }
            if rng.below(3) == 0 {
                t.receive(&piece)
            } else {
                t.send(&piece)
            };
            if rng.below(20) == 0 {
                if rng.below(2) == 0 {
                    t.send_end()
                } else {
                    t.receive_end()
                };
            }
        }
        match t.closed() {
            None | Some(DriverError::Filter { .. }) => {}
            Some(other) => panic!("round {round}: {other}"),
        }
    }
}

/// Every fixture cut at every point and with any one byte flipped.
#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng::new(11);
    for name in
        ["curl-chunked-upload.bin", "raw-pipelined.bin", "python-requests-post.bin", "nginx-chunked.bin"]
    {
        let bytes = fixture(name);
        let reply = name.starts_with("nginx");
        for _ in 0..120 {
            let mut mutated = bytes.clone();
            let at = rng.below(mutated.len());
            mutated[at] = rng.below(256) as u8;
            let mut t = tester(PUBLIC);
            if reply {
                t.send(b"GET /files/ HTTP/1.1\r\nHost: a\r\n\r\n");
            }
            let (a, b) = mutated.split_at(rng.below(mutated.len()));
            for piece in [a, b] {
                if reply {
                    t.receive(piece)
                } else {
                    t.send(piece)
                };
            }
            assert!(
                matches!(t.closed(), None | Some(DriverError::Filter { .. })),
                "{name}: {:?}",
                t.closed()
            );
        }
    }
}
