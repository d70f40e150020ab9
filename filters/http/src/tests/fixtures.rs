//! Real client bytes (captured by `tests/fixtures/http/capture.py`),
//! replayed whole, byte by byte and in random pieces.

use super::*;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";

#[test]
fn curl_get_allowed_passes_byte_exact() {
    let get = fixture("curl-get.bin");
    for split in SPLITS {
        let mut t = tester(PUBLIC);
        send(&mut t, &get, split);
        assert_eq!(t.upstream(), &get[..], "{split:?}");
        receive(&mut t, OK, split);
        assert_eq!(t.downstream(), OK, "{split:?}");
        assert_eq!(t.closed(), None);
        let request = &records(&t, "REQUEST", "FORWARDED")[0];
        assert_eq!(request["http.method"], "GET");
        assert_eq!(request["http.url"], "http://127.0.0.1:18080/public/index.html?lang=en");
        assert_eq!(request["http.protocol"], "HTTP/1.1");
        assert_eq!(
            request["http.headers"],
            serde_json::json!(["Host: 127.0.0.1:18080", "User-Agent: curl/7.88.1", "Accept: */*"])
        );
        let response = &records(&t, "RESPONSE", "FORWARDED")[0];
        assert_eq!(response["http.code"], 200);
        assert_eq!(response["http.url"], request["http.url"]);
        assert_eq!(response["http.method"], "GET");
        assert!(response["latency_ns"].as_i64().is_some_and(|l| l >= 0));
    }
}

#[test]
fn curl_head_passes() {
    let head = fixture("curl-head.bin");
    let mut t = tester(PUBLIC.replace("GET", "GET|HEAD").as_str());
    t.send(&head);
    assert_eq!(t.upstream(), &head[..]);
    // A HEAD response announces a length but has no body.
    t.receive(b"HTTP/1.1 200 OK\r\ncontent-length: 61\r\n\r\n");
    t.send(&fixture("curl-get.bin"));
    t.receive(OK);
    assert_eq!(records(&t, "RESPONSE", "FORWARDED").len(), 2);
    assert_eq!(t.closed(), None);
}

#[test]
fn curl_post_denied_gets_the_403_and_nothing_reaches_upstream() {
    let post = fixture("curl-post-json.bin");
    for split in SPLITS {
        let mut t = tester(PUBLIC);
        send(&mut t, &post, split);
        assert_eq!(t.upstream(), b"", "{split:?}");
        assert_eq!(t.downstream(), FORBIDDEN, "{split:?}");
        assert_eq!(t.closed(), None);
        let dropped = records(&t, "REQUEST", "DROPPED");
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0]["http.method"], "POST");
        assert_eq!(dropped[0]["http.url"], "http://127.0.0.1:18080/api/items");
        // The connection is still usable.
        send(&mut t, &fixture("curl-get.bin"), split);
        assert_eq!(t.upstream(), &fixture("curl-get.bin")[..], "{split:?}");
    }
}

#[test]
fn curl_post_allowed_passes_with_its_body() {
    let post = fixture("curl-post-json.bin");
    for split in SPLITS {
        let mut t = tester(r#"{"http":[{"method":"POST","path":"/api/items"}]}"#);
        send(&mut t, &post, split);
        assert_eq!(t.upstream(), &post[..], "{split:?}");
        assert_eq!(t.downstream(), b"");
    }
}

#[test]
fn curl_chunked_upload_passes_byte_exact_or_is_dropped_whole() {
    let upload = fixture("curl-chunked-upload.bin");
    let get = fixture("curl-get.bin");
    for split in SPLITS {
        let mut t = tester(PUBLIC.replace("/public/.*", "/public/.*|/upload").as_str());
        send(&mut t, &upload, split);
        send(&mut t, &get, split);
        assert_eq!(t.upstream(), [&upload[..], &get[..]].concat(), "{split:?}");

        let mut t = tester(PUBLIC);
        send(&mut t, &upload, split);
        assert_eq!(t.downstream(), FORBIDDEN, "{split:?}");
        send(&mut t, &get, split);
        assert_eq!(t.upstream(), &get[..], "{split:?}");
        assert_eq!(t.closed(), None);
    }
}

#[test]
fn curl_expect_continue() {
    let post = fixture("curl-post-expect.bin");
    let head_len = post.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, body) = post.split_at(head_len);

    // Allowed: the head goes on, the server's 100 Continue comes back, then the body.
    let mut t = tester(PUBLIC);
    t.send(head);
    assert_eq!(t.upstream(), head);
    t.receive(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(t.downstream(), b"HTTP/1.1 100 Continue\r\n\r\n");
    t.send(body);
    t.receive(OK);
    assert_eq!(t.upstream(), &post[..]);
    assert_eq!(records(&t, "RESPONSE", "FORWARDED")[0]["http.code"], 200);

    // Denied: the client will not send the body it announced, so the
    // connection is closed after the 403.
    let mut t = tester(r#"{"http":[{"method":"GET"}]}"#);
    t.send(head);
    assert_eq!(t.upstream(), b"");
    assert_eq!(t.downstream(), FORBIDDEN);
    assert_eq!(close_code(&t), Some(403));
}

#[test]
fn curl_keepalive_each_request_enforced() {
    let session = fixture("curl-keepalive.bin");
    let requests = heads(&session);
    assert_eq!(requests.len(), 3);
    let mut t = tester(PUBLIC);
    let mut expected_down = Vec::new();
    for (request, allowed) in requests.iter().zip([true, false, true]) {
        t.send(request);
        if allowed {
            t.receive(OK);
            expected_down.extend_from_slice(OK);
        } else {
            expected_down.extend_from_slice(FORBIDDEN);
        }
    }
    assert_eq!(t.upstream(), [requests[0], requests[2]].concat());
    assert_eq!(t.downstream(), expected_down);
    let verdicts: Vec<_> =
        records(&t, "REQUEST", "FORWARDED").iter().map(|r| r["http.url"].clone()).collect();
    assert_eq!(verdicts, ["http://127.0.0.1:18080/public/a", "http://127.0.0.1:18080/public/c"]);
}

#[test]
fn python_requests_credentials_are_redacted() {
    let get = fixture("python-requests-get.bin");
    let mut t = tester(PUBLIC);
    t.send(&get);
    assert_eq!(t.upstream(), &get[..]);
    let request = &records(&t, "REQUEST", "FORWARDED")[0];
    assert_eq!(request["http.url"], "http://127.0.0.1:18080/public/search?q=porin+policy&page=2");
    let headers = request["http.headers"].as_array().unwrap();
    assert!(headers.contains(&serde_json::json!("Authorization: [redacted]")), "{headers:?}");
    assert!(!request.to_string().contains("YWxpY2U6c2VjcmV0"));

    let post = fixture("python-requests-post.bin");
    let mut t = tester(PUBLIC);
    t.send(&post);
    assert_eq!(t.downstream(), FORBIDDEN);
    let request = &records(&t, "REQUEST", "DROPPED")[0];
    assert!(request["http.headers"].as_array().unwrap().contains(&serde_json::json!("Cookie: [redacted]")));
    assert!(!request.to_string().contains("abc123"));
}

#[test]
fn python_requests_post_allowed_by_header_rule() {
    let post = fixture("python-requests-post.bin");
    for split in SPLITS {
        let rules =
            r#"{"http":[{"method":"POST","path":"/api/.*","headers":["Content-Type: application/json"]}]}"#;
        let mut t = tester(rules);
        send(&mut t, &post, split);
        assert_eq!(t.upstream(), &post[..], "{split:?}");
        let mut t = tester(r#"{"http":[{"method":"POST","headers":["X-Missing"]}]}"#);
        send(&mut t, &post, split);
        assert_eq!(t.upstream(), b"", "{split:?}");
    }
}

#[test]
fn python_requests_session_each_request_enforced() {
    let session = fixture("python-requests-session.bin");
    let requests = heads(&session);
    assert_eq!(requests.len(), 3);
    let mut t = tester(PUBLIC);
    t.send(requests[0]).receive(OK).send(requests[1]).send(requests[2]).receive(OK);
    assert_eq!(t.upstream(), [requests[0], requests[2]].concat());
    assert_eq!(t.downstream(), [OK, FORBIDDEN, OK].concat());
    assert_eq!(records(&t, "REQUEST", "DROPPED")[0]["http.method"], "DELETE");
}

#[test]
fn pipelined_requests_each_enforced_and_answered_in_order() {
    let session = fixture("raw-pipelined.bin");
    for split in SPLITS {
        let mut t = tester(PUBLIC);
        send(&mut t, &session, split);
        let verdicts: Vec<_> =
            t.records().iter().map(|r| format!("{} {}", r["verdict"], r["http.url"])).collect();
        assert_eq!(
            verdicts,
            [
                r#""FORWARDED" "http://127.0.0.1:18080/public/a""#,
                r#""DROPPED" "http://127.0.0.1:18080/admin/users""#,
                r#""FORWARDED" "http://127.0.0.1:18080/public/b""#,
            ]
        );
        let upstream = String::from_utf8(t.upstream().to_vec()).unwrap();
        assert!(upstream.starts_with("GET /public/a ") && upstream.contains("GET /public/b "), "{split:?}");
        assert!(!upstream.contains("admin") && !upstream.contains("eve"), "{split:?}");
        // The 403 for the second request waits for the first response.
        assert_eq!(t.downstream(), b"");
        let first = ok("first");
        receive(&mut t, &first, split);
        receive(&mut t, &ok("third"), split);
        assert_eq!(t.downstream(), [&first[..], FORBIDDEN, &ok("third")[..]].concat(), "{split:?}");
    }
}

#[test]
fn rule_replacement_applies_to_the_next_request() {
    let get = fixture("curl-get.bin");
    let mut t = tester(PUBLIC);
    t.send(&get).receive(OK);
    t.set_rules(r#"{"http":[{"method":"GET","path":"/other"}]}"#).unwrap();
    t.send(&get);
    assert_eq!(t.downstream(), [OK, FORBIDDEN].concat());
    t.set_rules(VISIBILITY).unwrap();
    t.send(&fixture("curl-post-json.bin"));
    assert_eq!(t.upstream(), [&get[..], &fixture("curl-post-json.bin")[..]].concat());
}

#[test]
fn removed_rules_deny() {
    let get = fixture("curl-get.bin");
    let mut t = tester(VISIBILITY);
    t.send(&get).receive(OK);
    t.remove_rules();
    t.send(&get);
    assert_eq!(t.upstream(), &get[..]);
    assert_eq!(t.downstream(), [OK, FORBIDDEN].concat());
    assert_eq!(records(&t, "REQUEST", "DROPPED").len(), 1);
}

#[test]
fn visibility_rules_pass_every_fixture() {
    for name in [
        "curl-get.bin",
        "curl-head.bin",
        "curl-post-json.bin",
        "curl-chunked-upload.bin",
        "curl-post-expect.bin",
        "curl-keepalive.bin",
        "python-requests-get.bin",
        "python-requests-post.bin",
        "python-requests-session.bin",
        "raw-pipelined.bin",
    ] {
        let bytes = fixture(name);
        for split in SPLITS {
            let mut t = tester(VISIBILITY);
            send(&mut t, &bytes, split);
            assert_eq!(t.upstream(), &bytes[..], "{name} {split:?}");
            assert_eq!(t.closed(), None, "{name}");
            assert!(records(&t, "REQUEST", "ERROR").is_empty(), "{name}");
        }
    }
}
