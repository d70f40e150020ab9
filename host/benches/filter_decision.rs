//! HTTP decision benchmark: nanoseconds per request decision through the
//! Wasm http filter in porin's runtime (call + parse + match + record) side
//! by side with the same filter compiled natively and driven by the same
//! op semantics; instantiate time; memory per instance.
//! Goal: Wasm under 1 µs per typical GET with 10 rules, within 2x native.
//!
//! Run with `make bench-filters`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use porin::filter::{FilterRegistry, RuntimeConfig, WorkerFilters};
use porin_filter_http::{HttpFilter, HttpRules};
use porin_sdk::driver::{Driver, Op, Sink};
use porin_sdk::testing::test_meta;
use porin_sdk::{RuleSetId, RuleSets, StreamFilter};

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
fn per_request(mut exchange: impl FnMut(bool, &[u8])) -> Duration {
    for _ in 0..1000 {
        exchange(false, REQUEST);
        exchange(true, RESPONSE);
    }
    let mut total = Duration::ZERO;
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        exchange(false, REQUEST);
        total += start.elapsed();
        exchange(true, RESPONSE);
    }
    total / ITERATIONS
}

fn main() {
    let overhead = timer_overhead();
    let meta = test_meta();

    // Native: the filter crate linked into this process.
    let mut rules = RuleSets::<HttpRules>::default();
    rules.set(meta.rule_set, RULES).expect("rules parse");
    let mut filter = HttpFilter::new(&meta);
    let mut driver = Driver::new(1 << 20);
    let mut sink = Counter::default();
    let native = per_request(|reply, data| {
        let current = rules.get(meta.rule_set);
        let mut call = |reply: bool, end: bool, buffered: &[u8], ops: &mut Vec<Op>| {
            let out = porin_sdk::stream_data(&mut filter, &meta, current.as_deref(), reply, end, buffered);
            ops.extend(out.ops);
            black_box(out.records);
            Ok(())
        };
        driver.data(reply, data, false, &mut call, &mut sink).expect("native filter");
    });

    // Wasm: the built-in module in porin's runtime.
    let registry = Arc::new(FilterRegistry::with_builtins(RuntimeConfig::default()).expect("built-ins load"));
    registry.set_rule_set(RuleSetId(meta.rule_set), "http", RULES).expect("rules accepted");
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_stream("http", &meta).expect("session");
    let mut sink = Counter::default();
    let wasm = per_request(|reply, data| {
        session.data(reply, data, false, &mut sink).expect("wasm filter");
        black_box(session.take_records());
    });

    let module = registry.module("http").expect("http loaded");
    let start = Instant::now();
    let rounds = 200;
    for _ in 0..rounds {
        black_box(module.instantiate().expect("instantiate"));
    }
    let instantiate = start.elapsed() / rounds;
    let mut instance = module.instantiate().expect("instantiate");
    instance.set_rules(1, RULES).expect("rules");
    let id = instance.open(false, &meta).expect("open");
    for _ in 0..100 {
        instance.data(false, id, false, false, REQUEST).expect("request");
        instance.data(false, id, true, false, RESPONSE).expect("response");
    }
    let memory = instance.memory_bytes();

    let ns = |d: Duration| d.saturating_sub(overhead).as_nanos() as f64;
    println!(
        "http filter decision benchmark ({ITERATIONS} keep-alive GETs, 10 rules, timer overhead {} ns subtracted)",
        overhead.as_nanos()
    );
    println!("  {:<34} {:>10} {:>8}", "", "ns/request", "ratio");
    println!("  {:<34} {:>10.0} {:>8.2}", "native (same filter, same driver)", ns(native), 1.0);
    println!("  {:<34} {:>10.0} {:>8.2}", "wasm (porin runtime)", ns(wasm), ns(wasm) / ns(native));
    println!("  goal: wasm < 1000 ns and < 2.00x native");
    println!(
        "  instantiate: {:.1} µs per instance (InstancePre, cached module)",
        instantiate.as_nanos() as f64 / 1e3
    );
    println!("  memory per instance: {} KiB linear memory after 100 exchanges", memory / 1024);
    println!(
        "  module size: {} KiB",
        porin::filter::BUILTIN_FILTERS.iter().find(|(n, _)| *n == "http").map_or(0, |(_, b)| b.len() / 1024)
    );
}
