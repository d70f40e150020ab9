//! Filter decision benchmark: nanoseconds per request decision through the
//! built-in Wasm filters in porin's runtime (call + parse + match + record)
//! side by side with the same filters compiled natively and driven by the
//! same op semantics — HTTP GET, Kafka Produce, DNS query — plus instantiate
//! time and memory per instance.
//! Goal: HTTP under 1 µs per typical GET with 10 rules, within 2x native.
//!
//! Run with `make bench-filters`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use porin::filter::{FilterRegistry, RuntimeConfig, WorkerFilters};
use porin_filter_dns::DnsUdp;
use porin_filter_http::HttpFilter;
use porin_filter_kafka::KafkaFilter;
use porin_sdk::driver::{Driver, Op, Sink};
use porin_sdk::testing::test_meta;
use porin_sdk::{DatagramFilter, RuleSetId, RuleSets, StreamFilter};

const ITERATIONS: u32 = 200_000;

/// Ten rules; the benchmark request matches the seventh.
const RULES: &str = r#"{"http":[
  {"method":"GET","path":"/healthz"},
  {"method":"GET","path":"/readyz"},
  {"method":"POST","path":"/api/v1/orders"},
  {"method":"PUT","path":"/api/v1/orders/[0-9]+"},
  {"method":"DELETE","path":"/api/v1/orders/[0-9]+","headers":["X-Admin: true"]},
  {"method":"GET","path":"/public/.*"},
  {"method":"GET","path":"/api/v1/items/[0-9]+","host":"api\\.backend\\.svc\\.cluster\\.local"},
  {"method":"POST","path":"/api/v1/login"},
  {"method":"GET","path":"/metrics","headers":["Authorization"]},
  {"method":"OPTIONS"}
]}"#;

const KAFKA_RULES: &str = r#"{"kafka":[
  {"apiKey":"apiversions"},{"apiKey":"metadata"},{"apiKey":"initproducerid"},
  {"apiKey":"gettelemetrysubscriptions"},{"role":"consume","topic":"audit"},
  {"role":"produce","topic":"audit"},{"role":"produce","topic":"invoices"},
  {"role":"produce","topic":"payments","clientID":"billing"},
  {"role":"produce","topic":"orders"},{"role":"produce","topic":"payments"}
]}"#;

const DNS_RULES: &str = r#"{"dns":[
  {"matchName":"kubernetes.default.svc.cluster.local"},{"matchPattern":"*.svc.cluster.local"},
  {"matchName":"api.github.com"},{"matchPattern":"*.googleapis.com"},{"matchName":"registry.k8s.io"},
  {"matchPattern":"*.amazonaws.com"},{"matchName":"pypi.org"},{"matchPattern":"*.docker.io"},
  {"matchName":"example.test"},{"matchPattern":"*.example.test"}
]}"#;

const REQUEST: &[u8] =
    b"GET /api/v1/items/42 HTTP/1.1\r\nHost: api.backend.svc.cluster.local\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[derive(Default)]
struct Counter(usize);

impl Sink for Counter {
    fn send(&mut self, _to_source: bool, data: &[u8]) {
        self.0 += data.len();
    }
}

/// Cost of the two clock reads around each timed call.
fn timer_overhead() -> Duration {
    let start = Instant::now();
    let mut total = Duration::ZERO;
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        total += black_box(t.elapsed());
    }
    black_box(start);
    total / ITERATIONS
}

/// Times the request half of `ITERATIONS` request/response exchanges.
fn per_request(request: &[u8], response: &[u8], mut exchange: impl FnMut(bool, &[u8])) -> Duration {
    for _ in 0..1000 {
        exchange(false, request);
        exchange(true, response);
    }
    let mut total = Duration::ZERO;
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        exchange(false, request);
        total += start.elapsed();
        exchange(true, response);
    }
    total / ITERATIONS
}

/// Native and Wasm ns per request decision of a stream filter.
fn stream<F: StreamFilter>(
    registry: &Arc<FilterRegistry>,
    name: &str,
    rules_json: &str,
    request: &[u8],
    response: &[u8],
) -> (f64, f64) {
    let meta = test_meta();
    let mut rules = RuleSets::<F::Rules>::default();
    rules.set(meta.rule_set, rules_json).expect("rules parse");
    let mut filter = F::new(&meta);
    let mut driver = Driver::new(1 << 20);
    let mut sink = Counter::default();
    let native = per_request(request, response, |reply, data| {
        let current = rules.get(meta.rule_set);
        let mut call = |reply: bool, end: bool, buffered: &[u8], ops: &mut Vec<Op>| {
            let out = porin_sdk::stream_data(&mut filter, &meta, current.as_deref(), reply, end, buffered);
            ops.extend(out.ops);
            black_box(out.records);
            Ok(())
        };
        driver.data(reply, data, false, &mut call, &mut sink).expect("native filter");
    });
    registry.set_rule_set(RuleSetId(meta.rule_set), name, rules_json).expect("rules accepted");
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_stream(name, &meta).expect("session");
    let wasm = per_request(request, response, |reply, data| {
        session.data(reply, data, false, &mut sink).expect("wasm filter");
        black_box(session.take_records());
    });
    (native.as_nanos() as f64, wasm.as_nanos() as f64)
}

/// Native and Wasm ns per query decision of a datagram filter.
fn datagram<D: DatagramFilter>(
    registry: &Arc<FilterRegistry>,
    name: &str,
    rules_json: &str,
    query: &[u8],
    answer: &[u8],
) -> (f64, f64) {
    let meta = test_meta();
    let mut rules = RuleSets::<D::Rules>::default();
    rules.set(meta.rule_set, rules_json).expect("rules parse");
    let mut filter = D::new(&meta);
    let native = per_request(query, answer, |reply, data| {
        let current = rules.get(meta.rule_set);
        black_box(porin_sdk::datagram(&mut filter, &meta, current.as_deref(), reply, data));
    });
    registry.set_rule_set(RuleSetId(meta.rule_set), name, rules_json).expect("rules accepted");
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_datagram(name, &meta).expect("session");
    let wasm = per_request(query, answer, |reply, data| {
        black_box(session.datagram(reply, data));
        black_box(session.take_records());
    });
    (native.as_nanos() as f64, wasm.as_nanos() as f64)
}

/// Frames of a Kafka byte stream (4-byte length prefix included).
fn kafka_frames(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize + 4;
        frames.push(&bytes[..len.min(bytes.len())]);
        bytes = &bytes[len.min(bytes.len())..];
    }
    frames
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path))
        .expect("fixture")
}

fn main() {
    let overhead = timer_overhead().as_nanos() as f64;
    let registry = Arc::new(FilterRegistry::with_builtins(RuntimeConfig::default()).expect("built-ins load"));

    let http = stream::<HttpFilter>(&registry, "http", RULES, REQUEST, RESPONSE);

    // A real librdkafka Produce request and the broker's answer to it.
    let (client, server) =
        (fixture("kafka/confluent-produce-1.client.bin"), fixture("kafka/confluent-produce-1.server.bin"));
    let produce = kafka_frames(&client)
        .into_iter()
        .find(|f| f.len() > 8 && f[4..6] == [0, 0])
        .expect("a produce request");
    let answer = kafka_frames(&server)
        .into_iter()
        .find(|f| f.len() > 8 && f[4..8] == produce[8..12])
        .expect("its response");
    let kafka = stream::<KafkaFilter>(&registry, "kafka", KAFKA_RULES, produce, answer);

    // A real dig query and dnsmasq's answer.
    let (query, answer) = (fixture("dns/udp-a-example.query.bin"), fixture("dns/udp-a-example.response.bin"));
    let dns = datagram::<DnsUdp>(&registry, "dns", DNS_RULES, &query, &answer);

    let module = registry.module("http").expect("http loaded");
    let start = Instant::now();
    let rounds = 200;
    for _ in 0..rounds {
        black_box(module.instantiate().expect("instantiate"));
    }
    let instantiate = start.elapsed() / rounds;
    let meta = test_meta();
    let mut instance = module.instantiate().expect("instantiate");
    instance.set_rules(1, RULES).expect("rules");
    let id = instance.open(false, &meta).expect("open");
    for _ in 0..100 {
        instance.data(false, id, false, false, REQUEST).expect("request");
        instance.data(false, id, true, false, RESPONSE).expect("response");
    }
    let memory = instance.memory_bytes();

    println!(
        "filter decision benchmark: {ITERATIONS} decisions each, 10 rules, timer overhead {overhead:.0} ns subtracted"
    );
    println!("  {:<36} {:>10} {:>10} {:>7} {:>13}", "", "native ns", "wasm ns", "ratio", "wasm dec/s");
    for (label, (native, wasm)) in [
        ("HTTP/1.1 GET (keep-alive)", http),
        ("Kafka Produce (librdkafka)", kafka),
        ("DNS A query (dig, UDP)", dns),
    ] {
        let (native, wasm) = ((native - overhead).max(1.0), (wasm - overhead).max(1.0));
        println!("  {label:<36} {native:>10.0} {wasm:>10.0} {:>7.2} {:>13.0}", wasm / native, 1e9 / wasm);
    }
    println!("  goals: HTTP wasm < 1000 ns and < 2.00x native");
    println!(
        "  instantiate: {:.1} µs per instance (InstancePre, cached module)",
        instantiate.as_nanos() as f64 / 1e3
    );
    println!("  memory per instance: {} KiB linear memory (http, after 100 exchanges)", memory / 1024);
    for (name, bytes) in porin::filter::BUILTIN_FILTERS {
        println!("  module {name}: {} KiB", bytes.len() / 1024);
    }
}
