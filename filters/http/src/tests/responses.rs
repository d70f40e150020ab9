//! Responses: real nginx and Python bytes, bodies by every framing, interim
//! responses, upgrades and malformed responses.

use super::*;

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:18081\r\n\r\n").into_bytes()
}

/// Sends `request`, then `response` cut by `split`; asserts it all passed.
fn exchange(t: &mut Tester, request: &[u8], response: &[u8], split: Split) {
    let (up, down) = (t.upstream().len(), t.downstream().len());
    t.send(request);
    assert_eq!(&t.upstream()[up..], request, "request");
    receive(t, response, split);
    assert_eq!(
        String::from_utf8_lossy(&t.downstream()[down..]),
        String::from_utf8_lossy(response),
        "response ({split:?})"
    );
    assert_eq!(t.closed(), None);
}

fn codes(t: &Tester) -> Vec<i64> {
    records(t, "RESPONSE", "FORWARDED").iter().map(|r| r["http.code"].as_i64().unwrap()).collect()
}

#[test]
fn nginx_responses_pass_byte_exact() {
    let head = b"HEAD /index.html HTTP/1.1\r\nHost: 127.0.0.1:18081\r\n\r\n";
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        exchange(&mut t, &get("/index.html"), &fixture("nginx-get.bin"), split);
        exchange(&mut t, head, &fixture("nginx-head.bin"), split);
        exchange(&mut t, &get("/index.html"), &fixture("nginx-304.bin"), split);
        exchange(&mut t, &get("/missing"), &fixture("nginx-404.bin"), split);
        exchange(&mut t, &get("/files/"), &fixture("nginx-chunked.bin"), split);
        // After all of them, the next exchange still parses.
        exchange(&mut t, &get("/"), &ok("end"), split);
        assert_eq!(codes(&t), [200, 200, 304, 404, 200, 200], "{split:?}");
    }
}

#[test]
fn nginx_keepalive_responses_in_one_stream() {
    let requests = [get("/files/a.txt"), get("/teapot"), get("/files/")].concat();
    let responses = fixture("nginx-keepalive.bin");
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        t.send(&requests);
        receive(&mut t, &responses, split);
        assert_eq!(t.downstream(), &responses[..], "{split:?}");
        assert_eq!(codes(&t), [200, 418, 200], "{split:?}");
        let urls: Vec<_> =
            records(&t, "RESPONSE", "FORWARDED").iter().map(|r| r["http.url"].clone()).collect();
        assert_eq!(urls[1], "http://127.0.0.1:18081/teapot");
    }
}

#[test]
fn python_http_server_response() {
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        exchange(&mut t, &get("/hello.txt"), &fixture("python-http-server-get.bin"), split);
        assert_eq!(codes(&t), [200]);
    }
}

#[test]
fn no_body_for_204_304_and_head_whatever_the_headers_say() {
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        exchange(&mut t, &get("/a"), b"HTTP/1.1 204 No Content\r\n\r\n", split);
        exchange(&mut t, &get("/b"), b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", split);
        let head = b"HEAD /c HTTP/1.1\r\nHost: a\r\n\r\n";
        exchange(&mut t, head, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", split);
        exchange(&mut t, head, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", split);
        exchange(&mut t, &get("/d"), &ok("done"), split);
        assert_eq!(codes(&t), [204, 304, 200, 200, 200]);
    }
}

#[test]
fn interim_responses_precede_the_final_one() {
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
        let response = [&interim[..], &ok("final")].concat();
        exchange(&mut t, &get("/a"), &response, split);
        exchange(&mut t, &get("/b"), &ok("next"), split);
        assert_eq!(codes(&t), [200, 200], "interim responses get no records");
    }
}

#[test]
fn chunked_response_with_extensions_and_trailers() {
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n";
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        exchange(&mut t, &get("/a"), response, split);
        exchange(&mut t, &get("/b"), &ok("next"), split);
    }
}

#[test]
fn close_delimited_response_runs_until_the_server_closes() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nall body";
    for split in SPLITS {
        let mut t = tester(VISIBILITY);
        exchange(&mut t, &get("/a"), response, split);
        t.receive_end();
        assert_eq!(t.downstream(), response);
        assert_eq!(codes(&t), [200], "body bytes are not taken for a response");
        assert_eq!(t.closed(), None);
    }
}

#[test]
fn large_bodies_pass_without_entering_the_filter() {
    let mut t = tester(VISIBILITY);
    t.send(&get("/big"));
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n";
    t.receive(head);
    for _ in 0..3000 {
        t.receive(&[b'x'; 1000]);
    }
    assert_eq!(t.downstream().len(), 3_000_000 + head.len());
    exchange(&mut t, &get("/next"), &ok("next"), Split::Whole);
}

#[test]
fn upgrade_to_websocket_becomes_a_tunnel() {
    let upgrade = b"GET /public/chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    for split in SPLITS {
        let mut t = tester(PUBLIC);
        send(&mut t, upgrade, split);
        assert_eq!(t.upstream(), upgrade);
        receive(&mut t, &[&switching[..], b"\x81\x05hello"].concat(), split);
        send(&mut t, b"\x81\x85GET /admin HTTP/1.1\r\n\r\n", split);
        assert_eq!(t.upstream(), [&upgrade[..], b"\x81\x85GET /admin HTTP/1.1\r\n\r\n"].concat());
        assert_eq!(t.downstream(), [&switching[..], b"\x81\x05hello"].concat());
        let response = &records(&t, "RESPONSE", "FORWARDED")[0];
        assert_eq!(response["http.code"], 101);
        assert_eq!(response["http.upgrade"], "websocket");
        assert!(response["summary"].as_str().unwrap().contains("tunnel"));
        assert_eq!(t.records().len(), 2, "nothing in the tunnel is parsed");
    }
}

#[test]
fn client_bytes_after_an_upgrade_request_wait_for_its_response() {
    let upgrade =
        b"GET /public/chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    // Refused upgrade: the held bytes are parsed as HTTP again.
    let mut t = tester(PUBLIC);
    t.send(upgrade).send(b"GET /admin HTTP/1.1\r\n");
    assert_eq!(t.upstream(), upgrade);
    t.receive(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n");
    t.send(b"Host: a\r\n\r\n");
    assert_eq!(t.upstream(), upgrade);
    assert_eq!(
        t.downstream(),
        [&b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n"[..], FORBIDDEN].concat()
    );
}

#[test]
fn switching_to_a_protocol_not_offered_closes() {
    let mut t = tester(VISIBILITY);
    t.send(&get("/a"));
    t.receive(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(close_code(&t), Some(502));
    assert_eq!(t.downstream(), b"");
    assert_eq!(records(&t, "RESPONSE", "ERROR").len(), 1);
}

#[test]
fn malformed_responses_close_with_an_error_record() {
    let cases: &[(&[u8], &str)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "chunked"),
        (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"),
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "LF"),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obs-fold"),
        (b"HTTP/2 200\r\n\r\n", "version"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "status"),
        (b"ICY 200 OK\r\n\r\n", "version"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "hex"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX", "CRLF"),
    ];
    for (response, reason) in cases {
        let mut t = tester(VISIBILITY);
        t.send(&get("/a"));
        t.receive(response);
        assert_eq!(close_code(&t), Some(502), "{}", String::from_utf8_lossy(response));
        let error = &records(&t, "RESPONSE", "ERROR")[0];
        assert!(error["error"].as_str().unwrap().contains(reason), "{error}");
        assert_eq!(error["http.url"], "http://127.0.0.1:18081/a");
    }
}

#[test]
fn unsolicited_and_truncated_responses_close() {
    let mut t = tester(VISIBILITY);
    t.receive(&ok("surprise"));
    assert_eq!(close_code(&t), Some(502));
    assert_eq!(t.downstream(), b"");

    let mut t = tester(VISIBILITY);
    t.send(&get("/a")).receive(&ok("one")).receive(&ok("two"));
    assert_eq!(t.downstream(), &ok("one")[..]);
    assert_eq!(close_code(&t), Some(502));

    let mut t = tester(VISIBILITY);
    t.send(&get("/a")).receive(b"HTTP/1.1 200 OK\r\nContent-").receive_end();
    assert_eq!(close_code(&t), Some(502));

    let mut t = tester(VISIBILITY);
    t.send(&get("/a"))
        .receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1")
        .receive_end();
    assert_eq!(close_code(&t), Some(502));
}

#[test]
fn oversized_response_head_closes() {
    let mut t = tester(VISIBILITY);
    t.send(&get("/a"));
    t.receive(format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n", "b".repeat(MAX_HEAD)).as_bytes());
    assert_eq!(close_code(&t), Some(502));
}

#[test]
fn an_unreachable_upstream_answers_forwarded_requests_with_503() {
    let mut tester = StreamTester::<HttpFilter>::new(r#"{"http":[{"method":"GET"}]}"#).unwrap();
    tester
        .send(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n");
    tester.upstream_failed();
    let downstream = String::from_utf8_lossy(tester.downstream());
    let first = downstream.find("503 Service Unavailable").expect("503 for the forwarded GET");
    let second = downstream.find("403 Forbidden").expect("then the denied POST's answer");
    assert!(first < second, "{downstream}");
    let last = tester.records().last().unwrap();
    assert_eq!((last["http.code"].as_i64(), last["verdict"].as_str()), (Some(503), Some("ERROR")));
}
