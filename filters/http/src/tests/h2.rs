//! HTTP/2 through the filter: gRPC and plain requests enforced per stream
//! on one connection, the server never seeing a denied stream, HPACK state
//! kept consistent on both sides, credit returned for dropped DATA, and a
//! corpus of malformed and abusive input closing with the right error.

use super::*;
use crate::h2::frame::{self, ErrorCode, FrameHeader};
use crate::h2::hpack::{self, Decoder};

/// gRPC: only Echo/Say; plain HTTP/2: GET under /public/.
const RULES: &str =
    r#"{"http":[{"method":"POST","path":"/porin.test.Echo/Say"},{"method":"GET","path":"/public/.*"}]}"#;

const SETTINGS: &[u8] = &[0, 0, 0, frame::SETTINGS, 0, 0, 0, 0, 0];

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let fields: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
    let mut out = Vec::new();
    hpack::encode(&[], &fields, &[], &mut out);
    out
}

fn grpc_headers(stream: u32, method: &str) -> Vec<u8> {
    let path = format!("/porin.test.Echo/{method}");
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "echo:50051"),
        (":path", path.as_str()),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    frame::headers(stream, false, &block(&fields), frame::DEFAULT_MAX_FRAME)
}

/// A gRPC message as a DATA frame that ends the stream.
fn grpc_data(stream: u32) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write(&mut out, frame::DATA, frame::END_STREAM, stream, b"\x00\x00\x00\x00\x04\x0a\x02hi");
    out
}

fn frames(mut bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= frame::HEADER_LEN {
        let header = FrameHeader::parse(bytes);
        out.push((header, bytes[frame::HEADER_LEN..header.total()].to_vec()));
        bytes = &bytes[header.total()..];
    }
    assert!(bytes.is_empty(), "a partial frame");
    out
}

/// The header lists of `stream`'s blocks in `bytes`, decoded with one
/// decoder over all blocks, as the receiving peer would.
fn header_lists(bytes: &[u8], stream: u32) -> Vec<Vec<(String, String)>> {
    let mut decoder = Decoder::new();
    let mut lists = Vec::new();
    for (header, payload) in frames(bytes) {
        if header.kind == frame::HEADERS {
            let fragment = frame::headers_fragment(&header, &payload).unwrap();
            let decoded = decoder.decode(fragment, 1 << 20).expect("blocks decode");
            if header.stream == stream {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                lists.push(decoded.headers.iter().map(|(n, v)| (text(n), text(v))).collect());
            }
        }
    }
    lists
}

fn streams_of(bytes: &[u8], kind: u8) -> Vec<u32> {
    frames(bytes).into_iter().filter(|(h, _)| h.kind == kind).map(|(h, _)| h.stream).collect()
}

/// A connection past both prefaces (the server's SETTINGS came first).
fn connection(rules: &str) -> Tester {
    let mut t = tester(rules);
    t.send(frame::PREFACE).send(SETTINGS).receive(SETTINGS);
    t
}

#[test]
fn grpc_calls_are_enforced_per_stream_on_one_connection() {
    for split in SPLITS {
        let mut t = connection(RULES);
        let mut input = Vec::new();
        for (stream, method) in [(1, "Say"), (3, "Admin"), (5, "Say")] {
            input.extend(grpc_headers(stream, method));
            input.extend(grpc_data(stream));
        }
        send(&mut t, &input, split);
        assert!(t.closed().is_none(), "{split:?}: {:?}", t.closed());
        // The server sees streams 1 and 5 only, headers re-encoded.
        let upstream = &t.upstream()[frame::PREFACE.len()..];
        assert_eq!(streams_of(upstream, frame::HEADERS), [1, 5], "{split:?}");
        assert_eq!(streams_of(upstream, frame::DATA), [1, 5], "{split:?}");
        let say = &header_lists(upstream, 5)[0];
        assert!(say.contains(&(":path".into(), "/porin.test.Echo/Say".into())), "{say:?}");
        // The client gets PERMISSION_DENIED, trailers-only, on stream 3,
        // and its connection window back for the dropped DATA.
        let downstream = t.downstream();
        let denial = &header_lists(downstream, 3)[0];
        for field in [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "7")] {
            assert!(denial.contains(&(field.0.into(), field.1.into())), "{denial:?}");
        }
        let (answer, _) = frames(downstream).into_iter().find(|(h, _)| h.kind == frame::HEADERS).unwrap();
        assert!(answer.has(frame::END_STREAM) && answer.has(frame::END_HEADERS));
        let credit: Vec<_> =
            frames(downstream).into_iter().filter(|(h, _)| h.kind == frame::WINDOW_UPDATE).collect();
        assert_eq!(credit.len(), 1);
        assert_eq!((credit[0].0.stream, credit[0].1.as_slice()), (0, &9u32.to_be_bytes()[..]));
        let requests = records(&t, "REQUEST", "FORWARDED");
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0]["http.protocol"], "HTTP/2");
        assert_eq!(requests[0]["http.url"], "http://echo:50051/porin.test.Echo/Say");
        let denied = records(&t, "REQUEST", "DROPPED");
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0]["http.method"], "POST");
        assert_eq!(denied[0]["http.url"], "http://echo:50051/porin.test.Echo/Admin");
    }
}

#[test]
fn responses_pass_unchanged_and_are_recorded_per_stream() {
    let mut t = connection(RULES);
    t.send(&grpc_headers(1, "Say")).send(&grpc_data(1));
    let mut response = Vec::new();
    let head = block(&[(":status", "200"), ("content-type", "application/grpc")]);
    response.extend(frame::headers(1, false, &head, 16_384));
    frame::write(&mut response, frame::DATA, 0, 1, b"\x00\x00\x00\x00\x04\x0a\x02hi");
    let trailers = block(&[("grpc-status", "0"), ("grpc-message", "")]);
    response.extend(frame::headers(1, true, &trailers, 16_384));
    t.receive(&response);
    assert_eq!(&t.downstream()[SETTINGS.len()..], response.as_slice(), "server frames pass as they are");
    let responses = records(&t, "RESPONSE", "FORWARDED");
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["http.code"], 200);
    assert_eq!(responses[0]["http.grpc_status"], 0);
    assert!(responses[0]["latency_ns"].as_u64().is_some());
}

#[test]
fn a_denied_plain_request_gets_403_and_the_connection_goes_on() {
    let mut t = connection(RULES);
    let get = |stream: u32, path: &str| {
        let fields = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", path)];
        frame::headers(stream, true, &block(&fields), 16_384)
    };
    t.send(&get(1, "/admin")).send(&get(3, "/public/x"));
    let answer = &header_lists(t.downstream(), 1)[0];
    assert!(answer.contains(&(":status".into(), "403".into())), "{answer:?}");
    assert_eq!(streams_of(&t.upstream()[frame::PREFACE.len()..], frame::HEADERS), [3]);
    assert!(t.closed().is_none());
}

/// The client's encoder indexes a header on a denied stream and refers to
/// the entry on an allowed one: the filter's decoder follows, and the
/// server, which never saw the denied block, still gets the full value.
#[test]
fn hpack_state_survives_a_dropped_block() {
    let mut t = connection(RULES);
    let mut denied = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "echo"),
        (":path", "/porin.test.Echo/Admin"),
        ("content-type", "application/grpc"),
    ]);
    // Literal with incremental indexing, new name: x-tenant: blue (entry 62).
    denied.extend([0x40, 8]);
    denied.extend(b"x-tenant");
    denied.push(4);
    denied.extend(b"blue");
    t.send(&frame::headers(1, true, &denied, 16_384));
    let mut allowed = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "echo"),
        (":path", "/porin.test.Echo/Say"),
        ("content-type", "application/grpc"),
    ]);
    allowed.push(0x80 | 62);
    t.send(&frame::headers(3, true, &allowed, 16_384));
    let upstream = &t.upstream()[frame::PREFACE.len()..];
    let say = &header_lists(upstream, 3)[0];
    assert!(say.contains(&("x-tenant".into(), "blue".into())), "{say:?}");
    assert_eq!(streams_of(upstream, frame::HEADERS), [3]);
    // Re-encoded without the dynamic table: a fresh decoder reads it.
    let (header, payload) = frames(upstream).into_iter().find(|(h, _)| h.kind == frame::HEADERS).unwrap();
    let fresh = Decoder::new().decode(frame::headers_fragment(&header, &payload).unwrap(), 1 << 20);
    assert!(fresh.is_ok());
}

#[test]
fn dropped_streams_frames_never_reach_the_server() {
    let mut t = connection(RULES);
    t.send(&grpc_headers(1, "Admin"));
    let mut later = Vec::new();
    frame::write(&mut later, frame::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes());
    frame::write(&mut later, frame::PRIORITY, 0, 1, &[0, 0, 0, 0, 16]);
    frame::write(&mut later, frame::DATA, 0, 1, b"\x00\x00\x00\x00\x00");
    frame::write(&mut later, frame::RST_STREAM, 0, 1, &8u32.to_be_bytes());
    t.send(&later);
    assert_eq!(&t.upstream()[frame::PREFACE.len()..], SETTINGS);
    // Answer, then RST_STREAM(NO_ERROR) since the request had not ended.
    let resets = streams_of(t.downstream(), frame::RST_STREAM);
    assert_eq!(resets, [1]);
    assert!(t.closed().is_none());
}

/// What a malformed or abusive input must end with.
fn assert_goaway(input: &[u8], code: ErrorCode) {
    for split in SPLITS {
        let mut t = tester(RULES);
        send(&mut t, input, split);
        assert!(t.closed().is_some(), "{split:?}: still open");
        let goaways: Vec<_> =
            frames(t.downstream()).into_iter().filter(|(h, _)| h.kind == frame::GOAWAY).collect();
        assert_eq!(goaways.len(), 1, "{split:?}");
        let error = u32::from_be_bytes(goaways[0].1[4..8].try_into().unwrap());
        assert_eq!(error, code as u32, "{split:?}: {}", String::from_utf8_lossy(&goaways[0].1[8..]));
        let errors = records(&t, "REQUEST", "ERROR");
        assert_eq!(errors.len(), 1, "{split:?}");
        assert!(errors[0]["error"].as_str().unwrap().contains(code.name()), "{:?}", errors[0]);
    }
}

fn open(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut input = [frame::PREFACE, SETTINGS].concat();
    frames.iter().for_each(|f| input.extend(f));
    input
}

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write(&mut out, kind, flags, stream, payload);
    out
}

#[test]
fn malformed_and_abusive_http2_closes_with_the_right_error() {
    use ErrorCode::*;
    let say = grpc_headers(1, "Say");
    let header_block = block(&[(":method", "GET"), (":scheme", "http"), (":path", "/public/a")]);
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("DATA on stream 0", open(&[raw(frame::DATA, 0, 0, b"x")]), Protocol),
        ("DATA on an idle stream", open(&[raw(frame::DATA, 0, 7, b"x")]), Protocol),
        (
            "HEADERS on a server stream",
            open(&[raw(frame::HEADERS, frame::END_HEADERS, 2, &header_block)]),
            Protocol,
        ),
        ("SETTINGS of 5 bytes", open(&[raw(frame::SETTINGS, 0, 0, &[0; 5])]), FrameSize),
        ("SETTINGS on a stream", open(&[raw(frame::SETTINGS, 0, 1, &[])]), Protocol),
        ("SETTINGS ACK with payload", open(&[raw(frame::SETTINGS, frame::ACK, 0, &[0; 6])]), FrameSize),
        ("ENABLE_PUSH 2", open(&[raw(frame::SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2])]), Protocol),
        ("window too large", open(&[raw(frame::SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0])]), FlowControl),
        ("PING of 7 bytes", open(&[raw(frame::PING, 0, 0, &[0; 7])]), FrameSize),
        ("WINDOW_UPDATE of 0", open(&[raw(frame::WINDOW_UPDATE, 0, 0, &[0; 4])]), Protocol),
        ("RST_STREAM on stream 0", open(&[raw(frame::RST_STREAM, 0, 0, &[0; 4])]), Protocol),
        ("frame over 16 KiB", open(&[raw(frame::PING, 0, 0, &vec![0; 16_385])]), FrameSize),
        (
            "CONTINUATION without HEADERS",
            open(&[raw(frame::CONTINUATION, frame::END_HEADERS, 1, &header_block)]),
            Protocol,
        ),
        (
            "a frame inside a header block",
            open(&[raw(frame::HEADERS, 0, 1, &header_block[..2]), raw(frame::PING, 0, 0, &[0; 8])]),
            Protocol,
        ),
        (
            "PUSH_PROMISE from the client",
            open(&[raw(frame::PUSH_PROMISE, frame::END_HEADERS, 1, &[0, 0, 0, 2])]),
            Protocol,
        ),
        (
            "undecodable block",
            open(&[raw(frame::HEADERS, frame::END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]),
            Compression,
        ),
        (
            "HEADERS padding too long",
            open(&[raw(frame::HEADERS, frame::END_HEADERS | frame::PADDED, 1, &[200, 0x82])]),
            Protocol,
        ),
        (
            "trailers without END_STREAM",
            open(&[say.clone(), raw(frame::HEADERS, frame::END_HEADERS, 1, &block(&[("grpc-x", "1")]))]),
            Protocol,
        ),
        (
            "CONTINUATION flood",
            open(&{
                let mut flood = vec![raw(frame::HEADERS, 0, 1, &header_block[..1])];
                flood.extend((0..100).map(|_| raw(frame::CONTINUATION, 0, 1, &[])));
                flood
            }),
            EnhanceYourCalm,
        ),
        (
            "header list too large",
            open(&[frame::headers(
                1,
                true,
                &block(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/public/a"),
                    ("x-big", &"a".repeat(70_000)),
                ]),
                16_384,
            )]),
            EnhanceYourCalm,
        ),
        (
            "rapid reset",
            open(
                &(0..300u32)
                    .flat_map(|i| {
                        let id = 2 * i + 1;
                        [
                            frame::headers(
                                id,
                                false,
                                &block(&[(":method", "GET"), (":scheme", "http"), (":path", "/public/a")]),
                                16_384,
                            ),
                            raw(frame::RST_STREAM, 0, id, &8u32.to_be_bytes()),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ),
            EnhanceYourCalm,
        ),
    ];
    for (name, input, code) in cases {
        eprintln!("case: {name}");
        assert_goaway(&input, code);
    }
}

#[test]
fn a_malformed_request_is_reset_and_recorded_while_the_connection_stays() {
    let mut t = connection(RULES);
    let upper = block(&[(":method", "GET"), (":scheme", "http"), (":path", "/public/a"), ("X-Upper", "1")]);
    t.send(&frame::headers(1, true, &upper, 16_384)).send(&grpc_headers(3, "Say"));
    assert_eq!(streams_of(t.downstream(), frame::RST_STREAM), [1]);
    assert_eq!(streams_of(&t.upstream()[frame::PREFACE.len()..], frame::HEADERS), [3]);
    let errors = records(&t, "REQUEST", "ERROR");
    assert!(errors[0]["error"].as_str().unwrap().contains("header name"), "{errors:?}");
    assert!(t.closed().is_none());
}

#[test]
fn an_http2_server_speaking_first_waits_for_the_client_preface() {
    let mut t = tester(RULES);
    t.receive(SETTINGS);
    assert!(t.downstream().is_empty() && t.closed().is_none());
    t.send(frame::PREFACE).send(SETTINGS).receive(&[]);
    t.receive(&raw(frame::SETTINGS, frame::ACK, 0, &[]));
    assert_eq!(t.downstream(), [SETTINGS, &raw(frame::SETTINGS, frame::ACK, 0, &[])].concat());
}

/// The server's SETTINGS is the first frame a client may get: answers to
/// streams denied before it arrived wait for it.
#[test]
fn answers_wait_for_the_servers_settings() {
    let mut t = tester(RULES);
    t.send(frame::PREFACE).send(SETTINGS).send(&grpc_headers(1, "Admin")).send(&grpc_data(1));
    assert!(t.downstream().is_empty(), "nothing before the server's SETTINGS");
    t.receive(SETTINGS);
    let kinds: Vec<u8> = frames(t.downstream()).iter().map(|(h, _)| h.kind).collect();
    assert_eq!(kinds, [frame::SETTINGS, frame::HEADERS, frame::RST_STREAM, frame::WINDOW_UPDATE]);
    let mut late = tester(RULES);
    late.send(frame::PREFACE).send(SETTINGS).receive(&raw(frame::PING, 0, 0, &[0; 8]));
    assert!(late.closed().is_some(), "a server must start with SETTINGS");
}

/// `Upgrade: h2c`: the request is forwarded as it is; after the server's
/// 101 the connection is HTTP/2, the request its stream 1, and later
/// streams are enforced like any.
#[test]
fn an_h2c_upgrade_turns_the_connection_into_http2() {
    let request = b"GET /public/a HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    let mut t = tester(RULES);
    t.send(request);
    assert_eq!(t.upstream(), request, "the offer goes to the server");
    let switched = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    let mut response = switched.to_vec();
    response.extend(SETTINGS);
    response.extend(frame::headers(1, true, &block(&[(":status", "200")]), 16_384));
    t.receive(&response);
    assert_eq!(t.downstream(), response.as_slice());
    let upgraded = records(&t, "RESPONSE", "FORWARDED");
    assert_eq!(upgraded.len(), 1);
    assert_eq!(
        (upgraded[0]["http.code"].as_u64(), upgraded[0]["http.protocol"].as_str()),
        (Some(200), Some("HTTP/2"))
    );
    t.send(frame::PREFACE).send(SETTINGS).send(&grpc_headers(3, "Admin")).send(&grpc_headers(5, "Say"));
    assert!(t.closed().is_none(), "{:?}", t.closed());
    let after = &t.upstream()[request.len() + frame::PREFACE.len()..];
    assert_eq!(streams_of(after, frame::HEADERS), [5]);
    let denial = &header_lists(&t.downstream()[response.len()..], 3)[0];
    assert!(denial.contains(&("grpc-status".into(), "7".into())), "{denial:?}");
    let mut no_preface = tester(RULES);
    no_preface.send(request).receive(&response).send(b"GET / HTTP/1.1\r\n\r\nxxxxxxxx");
    assert!(no_preface.closed().is_some(), "the client must send the preface after the 101");
}
