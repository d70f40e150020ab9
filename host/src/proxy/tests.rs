//! The proxy in process, on loopback, with flows through two filter stages
//! (a source's egress and a destination's ingress) in front of small test
//! servers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use porin_sdk::{Peer, RuleSetId, TrafficDirection};

use super::{Limits, Listener, Proxy, Route, Stage, StaticRoute, Transport};
use crate::filter::{BUILTIN_FILTERS, FailMode, FilterRegistry, ModuleSettings, RuntimeConfig};
use crate::flow::FlowReader;
use crate::observe::Observer;

const EGRESS: RuleSetId = RuleSetId(1);
const INGRESS: RuleSetId = RuleSetId(2);
const TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy whose one listener sends every flow through `filter` with the
/// egress rules, then the ingress rules, to `upstream`.
fn chained_proxy(
    transport: Transport,
    filter: &str,
    egress_rules: &str,
    ingress_rules: &str,
    upstream: SocketAddr,
) -> (Proxy, FlowReader) {
    let (_, wasm) = BUILTIN_FILTERS.iter().find(|(name, _)| *name == filter).expect("a built-in filter");
    chained_proxy_with(transport, filter, wasm, egress_rules, ingress_rules, upstream)
}

/// Like [`chained_proxy`], with the filter module given.
fn chained_proxy_with(
    transport: Transport,
    filter: &str,
    wasm: &[u8],
    egress_rules: &str,
    ingress_rules: &str,
    upstream: SocketAddr,
) -> (Proxy, FlowReader) {
    let registry = FilterRegistry::new(RuntimeConfig::default());
    registry.load(filter, wasm).unwrap();
    registry.set_rule_set(EGRESS, filter, egress_rules).unwrap();
    registry.set_rule_set(INGRESS, filter, ingress_rules).unwrap();
    let stage = |rule_set, direction| Stage { filter: filter.into(), rule_set, direction };
    let stages = vec![stage(EGRESS, TrafficDirection::Egress), stage(INGRESS, TrafficDirection::Ingress)];
    proxy_with(registry, transport, stages, upstream)
}

/// A proxy whose one listener sends every flow through `stages` to `upstream`.
fn proxy_with(
    registry: FilterRegistry,
    transport: Transport,
    stages: Vec<Stage>,
    upstream: SocketAddr,
) -> (Proxy, FlowReader) {
    let route = Route { upstream, stages, source: Peer::default(), destination: Peer::default(), mark: None };
    let listener = Listener {
        name: "chain".into(),
        listen: ([127, 0, 0, 1], 0).into(),
        transport,
        transparent: false,
        resolver: Arc::new(StaticRoute { route }),
    };
    let observer = Observer::new(1024);
    let flows = observer.reader(None);
    let limits = Limits { workers: 1, ..Limits::default() };
    (Proxy::start(vec![listener], Arc::new(registry), limits, Some(observer)).unwrap(), flows)
}

/// The L7 flows published so far, as `DIRECTION rule_set VERDICT TYPE detail`:
/// a request's method or name, a response's status or RCODE.
fn l7_flows(flows: &mut FlowReader) -> Vec<String> {
    let mut seen = Vec::new();
    for stored in flows.read(usize::MAX) {
        let flow = &stored.flow;
        let (Some(l7), Some(proxy)) = (flow.l7.as_ref().map(|l7| l7.value()), &flow.proxy) else { continue };
        let kind = l7["type"].as_str().unwrap_or_default();
        let details = match kind {
            "RESPONSE" => [&l7["http"]["code"], &l7["dns"]["rcode"]],
            _ => [&l7["http"]["method"], &l7["dns"]["query"]],
        };
        let detail = details.into_iter().find(|v| !v.is_null()).map_or(String::new(), |v| match v.as_str() {
            Some(text) => text.to_string(),
            None => v.to_string(),
        });
        let direction = flow.traffic_direction;
        seen.push(format!("{direction:?} {} {:?} {kind} {detail}", proxy.rule_set, flow.verdict));
    }
    seen
}

/// An HTTP server that answers every request with `answer` and closes; it
/// sends the request lines it saw on the channel.
fn http_server(answer: &'static [u8]) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (seen, requests) = mpsc::channel();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let Some(head) = read_head(&mut stream) else { continue };
            seen.send(head.lines().next().unwrap_or_default().to_string()).ok();
            stream.write_all(answer).ok();
        }
    });
    (address, requests)
}

/// Reads up to the end of a message head.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// Sends one request through the proxy on a new connection.
fn request(proxy: &Proxy, method: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.bound[0]).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: api\r\ncontent-length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// The status of the response to one request.
fn status(proxy: &Proxy, method: &str, path: &str) -> u16 {
    let head = read_head(&mut request(proxy, method, path)).expect("a response");
    head[9..12].parse().unwrap()
}

#[test]
fn each_http_stage_enforces_its_own_rules_and_reports_its_own_flows() {
    let (server, requests) = http_server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (proxy, mut flows) = chained_proxy(
        Transport::Tcp,
        "http",
        r#"{"http":[{"method":"GET"}]}"#,
        r#"{"http":[{"path":"/public/.*"}]}"#,
        server,
    );

    assert_eq!(status(&proxy, "GET", "/public/a"), 200);
    assert_eq!(
        l7_flows(&mut flows),
        [
            "Egress 1 Forwarded REQUEST GET",
            "Ingress 2 Forwarded REQUEST GET",
            "Ingress 2 Forwarded RESPONSE 200",
            "Egress 1 Forwarded RESPONSE 200",
        ]
    );

    // Denied by the ingress stage: the egress stage sees its 403 as the response.
    assert_eq!(status(&proxy, "GET", "/private"), 403);
    assert_eq!(
        l7_flows(&mut flows),
        [
            "Egress 1 Forwarded REQUEST GET",
            "Ingress 2 Dropped REQUEST GET",
            "Egress 1 Forwarded RESPONSE 403",
        ]
    );

    // Denied by the egress stage: the ingress stage never sees it.
    assert_eq!(status(&proxy, "POST", "/public/a"), 403);
    assert_eq!(l7_flows(&mut flows), ["Egress 1 Dropped REQUEST POST"]);

    assert_eq!(requests.try_iter().collect::<Vec<_>>(), ["GET /public/a HTTP/1.1"]);
    proxy.shutdown();
}

#[test]
fn an_unreachable_upstream_is_answered_by_the_last_stage_through_the_first() {
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (proxy, mut flows) =
        chained_proxy(Transport::Tcp, "http", r#"{"http":[{}]}"#, r#"{"http":[{}]}"#, dead);
    assert_eq!(status(&proxy, "GET", "/"), 503);
    assert_eq!(
        l7_flows(&mut flows),
        [
            "Egress 1 Forwarded REQUEST GET",
            "Ingress 2 Forwarded REQUEST GET",
            "Ingress 2 Error RESPONSE 503",
            "Egress 1 Forwarded RESPONSE 503",
        ]
    );
    proxy.shutdown();
}

#[test]
fn the_upstream_closing_reaches_every_stage() {
    // Cut off inside a chunk-size line: a stage notices only at the end of the stream.
    let (server, _) = http_server(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5");
    let (proxy, mut flows) =
        chained_proxy(Transport::Tcp, "http", r#"{"http":[{}]}"#, r#"{"http":[{}]}"#, server);
    let mut stream = request(&proxy, "GET", "/");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&response));
    let errors: Vec<String> = l7_flows(&mut flows).into_iter().filter(|f| f.contains(" Error ")).collect();
    assert_eq!(
        errors,
        [
            "Ingress 2 Error RESPONSE ",
            "Ingress 2 Error REQUEST ",
            "Egress 1 Error RESPONSE ",
            "Egress 1 Error REQUEST "
        ]
    );
    proxy.shutdown();
}

/// A DNS query for `name` (type A, id 7).
fn dns_query(name: &str) -> Vec<u8> {
    let mut query = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

#[test]
fn a_datagram_passes_both_stages_and_a_refusal_goes_back_through_the_earlier_one() {
    // The server answers every query with no records (QR and RA set).
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = server.local_addr().unwrap();
    let (seen, queries) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            seen.send(buf[..n].to_vec()).ok();
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80;
            answer[3] |= 0x80;
            server.send_to(&answer, from).ok();
        }
    });
    let (proxy, mut flows) = chained_proxy(
        Transport::Udp,
        "dns",
        r#"{"dns":[{"matchPattern":"*.example.test"}]}"#,
        r#"{"dns":[{"matchName":"a.example.test"}]}"#,
        upstream,
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    // The RCODE of the answer to a query for `name`.
    let ask = |name: &str| {
        client.send_to(&dns_query(name), proxy.bound[0]).unwrap();
        let mut buf = [0u8; 512];
        let n = client.recv(&mut buf).unwrap();
        assert!(n >= 12 && buf[2] & 0x80 != 0, "an answer");
        buf[3] & 0x0f
    };
    const REFUSED: u8 = 5;

    assert_eq!(ask("a.example.test"), 0);
    assert_eq!(
        l7_flows(&mut flows),
        [
            "Egress 1 Forwarded REQUEST a.example.test.",
            "Ingress 2 Forwarded REQUEST a.example.test.",
            "Ingress 2 Forwarded RESPONSE 0",
            "Egress 1 Forwarded RESPONSE 0",
        ]
    );

    // Refused by the ingress stage: the refusal is the egress stage's response.
    assert_eq!(ask("b.example.test"), REFUSED);
    assert_eq!(
        l7_flows(&mut flows),
        [
            "Egress 1 Forwarded REQUEST b.example.test.",
            "Ingress 2 Dropped REQUEST b.example.test.",
            "Egress 1 Forwarded RESPONSE 5",
        ]
    );

    // Refused by the egress stage: the ingress stage never sees it.
    assert_eq!(ask("c.other.test"), REFUSED);
    assert_eq!(l7_flows(&mut flows), ["Egress 1 Dropped REQUEST c.other.test."]);

    assert_eq!(queries.try_iter().collect::<Vec<_>>(), [dns_query("a.example.test")]);
    proxy.shutdown();
}

/// A stream filter that passes requests and echoes every chunk back to its
/// sender: two such stages bounce each other's output forever.
const PING_PONG: &str = r#"(module
  (import "porin" "op" (func $op (param i32 i64 i32 i32)))
  (memory (export "memory") 2)
  (func (export "porin_abi_version") (result i32) (i32.const 1))
  (func (export "porin_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "porin_rules_set") (param i32 i32) (result i32) (i32.const 0))
  (func (export "porin_rules_remove") (param i32))
  (func (export "porin_stream_open") (param i32 i32) (result i32) (i32.const 0))
  (func (export "porin_stream_data") (param $id i32) (param $flags i32) (param $len i32) (result i32)
    (call $op (i32.const 4) (i64.const 1) (i32.const 1024) (local.get $len))
    (if (i32.and (local.get $flags) (i32.const 1))
      (then (call $op (i32.const 3) (i64.extend_i32_u (local.get $len)) (i32.const 0) (i32.const 0)))
      (else (call $op (i32.const 2) (i64.extend_i32_u (local.get $len)) (i32.const 0) (i32.const 0))))
    (i32.const 0))
  (func (export "porin_stream_close") (param i32))
)"#;

#[test]
fn filters_that_keep_answering_each_other_are_stopped() {
    let (server, _) = http_server(b"");
    let wasm = wat::parse_str(PING_PONG).unwrap();
    let (proxy, mut flows) = chained_proxy_with(Transport::Tcp, "ping-pong", &wasm, "{}", "{}", server);
    let mut stream = TcpStream::connect(proxy.bound[0]).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(b"ping").unwrap();
    // The connection is closed instead of the worker spinning.
    let mut sink = Vec::new();
    stream.read_to_end(&mut sink).expect("the proxy closes the connection");
    let mut reasons = Vec::new();
    for stored in flows.read(usize::MAX) {
        reasons.extend(stored.flow.drop_reason_desc.clone());
    }
    assert!(reasons.iter().any(|r| r.contains("keep injecting")), "{reasons:?}");
    // The worker still serves new connections.
    let mut again = TcpStream::connect(proxy.bound[0]).unwrap();
    again.write_all(b"ping").unwrap();
    again.set_read_timeout(Some(TIMEOUT)).unwrap();
    again.read_to_end(&mut sink).expect("served again");
    proxy.shutdown();
}

/// Every flow published so far, as `VERDICT reason-or-l7-error`.
fn verdicts(flows: &mut FlowReader) -> Vec<String> {
    let mut seen = Vec::new();
    for stored in flows.read(usize::MAX) {
        let flow = &stored.flow;
        let l7_error =
            flow.l7.as_ref().map(|l7| l7.value()["error"].as_str().unwrap_or_default().to_string());
        let said = flow.drop_reason_desc.as_deref().map(str::to_string).or(l7_error).unwrap_or_default();
        seen.push(format!("{:?} {said}", flow.verdict));
    }
    seen
}

#[test]
fn a_stage_whose_module_is_not_loaded_is_refused_without_reaching_the_upstream() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = server.local_addr().unwrap();
    server.set_nonblocking(true).unwrap();
    let registry = FilterRegistry::new(RuntimeConfig::default());
    registry.set_module_error("redis", &ModuleSettings::default(), "no ConfigMap redis-filter");
    let unavailable = registry.install_rule_set(INGRESS, "redis", r#"{"l7proto":"redis","l7":[{}]}"#);
    assert_eq!(unavailable.unwrap().fail_mode, FailMode::Closed);
    let stage = Stage { filter: "redis".into(), rule_set: INGRESS, direction: TrafficDirection::Ingress };
    let (proxy, mut flows) = proxy_with(registry, Transport::Tcp, vec![stage], upstream);

    let mut stream = TcpStream::connect(proxy.bound[0]).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").ok();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok();
    assert!(answer.is_empty(), "refused: {answer:?}");
    assert!(server.accept().is_err(), "the upstream was never connected");
    assert_eq!(
        verdicts(&mut flows),
        ["Dropped filter module `redis` is not loaded: no ConfigMap redis-filter"]
    );
    proxy.shutdown();
}

/// Traps when the data starts with 'X', else passes everything.
const HOSTILE: &str = include_str!("../../../tests/fixtures/filters/hostile.wat");

#[test]
fn a_module_that_fails_open_keeps_the_connection_going_unfiltered() {
    let (server, requests) = http_server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let registry = FilterRegistry::new(RuntimeConfig::default());
    let settings = ModuleSettings { fail_mode: FailMode::Open, ..ModuleSettings::default() };
    registry.load_with("hostile", &wat::parse_str(HOSTILE).unwrap(), &settings).unwrap();
    assert_eq!(registry.install_rule_set(INGRESS, "hostile", "{}"), None);
    let stage = Stage { filter: "hostile".into(), rule_set: INGRESS, direction: TrafficDirection::Ingress };
    let (proxy, mut flows) = proxy_with(registry, Transport::Tcp, vec![stage], server);

    // The filter traps on the request; the request goes on regardless.
    let mut stream = TcpStream::connect(proxy.bound[0]).unwrap();
    stream.write_all(b"XGET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&response));
    assert_eq!(requests.recv_timeout(TIMEOUT).unwrap(), "XGET / HTTP/1.1");
    let seen = verdicts(&mut flows);
    assert_eq!(seen[0], "Forwarded ", "the connection: {seen:?}");
    assert!(
        seen[1].starts_with("Forwarded filter `hostile` failed open: trapped: ")
            && seen[1].contains("unreachable"),
        "{seen:?}"
    );
    proxy.shutdown();
}

#[test]
fn datagrams_of_an_unavailable_rule_set_are_dropped() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let registry = FilterRegistry::new(RuntimeConfig::default());
    registry.install_rule_set(INGRESS, "memcache", r#"{"l7proto":"memcache","l7":[{}]}"#).unwrap();
    let stage = Stage { filter: "memcache".into(), rule_set: INGRESS, direction: TrafficDirection::Ingress };
    let (proxy, mut flows) = proxy_with(registry, Transport::Udp, vec![stage], server.local_addr().unwrap());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2 {
        client.send_to(b"get key\r\n", proxy.bound[0]).unwrap();
    }
    let mut buf = [0u8; 64];
    assert!(server.recv(&mut buf).is_err(), "nothing reaches the upstream");
    assert_eq!(verdicts(&mut flows), ["Dropped filter module `memcache` is not loaded"; 2]);
    proxy.shutdown();
}
