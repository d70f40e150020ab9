//! Flow pipeline benchmark: flows per second from datapath events and from
//! L7 filter records into the flow store, with a follower attached (an API
//! client: `namespace=backend` filter, JSON lines) and without, the cost of
//! each stage alone, and the memory a full default store holds.
//! Goal: at least 1M flows/s ingest on one core; under 100 MB for the
//! default store (65,535 flows).
//!
//! The policy is the seed app (frontend/web, backend/api, db/postgres, the
//! cluster DNS and their policies) with replicas up to 100 pods. Rates are
//! the median of several runs; nothing is asserted.
//!
//! Run with `cargo bench -p porin --bench flow_pipeline`.

// The counting global allocator is the only unsafe code here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use porin::datapath::abi::{self, FlowEvent};
use porin::datapath::flow_of;
use porin::diagnostic::has_errors;
use porin::endpoint::Workloads;
use porin::flow::{
    self, EndpointIndex, Flow, FlowEndpoint, FlowFilter, FlowQuery, FlowStore, Ip, L4, ProxyInfo, Timestamp,
    TrafficDirection, Uuid, Verdict, parse_record,
};
use porin::manifest::Manifests;
use porin::observe::Observer;
use porin::policy::{ResolvedPolicy, compile};

const FLOWS_PER_SECOND_GOAL: f64 = 1_000_000.0;
const STORE_BYTES_GOAL: f64 = 100e6;
/// Runs per measurement; the median is reported.
const RUNS: usize = 5;
/// Each run lasts about this long (its flow count comes from a warm-up).
const SECONDS_PER_RUN: f64 = 0.2;
const WARMUP_FLOWS: u64 = 20_000;
const MIN_FLOWS: u64 = 50_000;
const MAX_FLOWS: u64 = 1_000_000;
/// A follower can only lose flows once it is a whole store behind, so runs
/// with one are at least two stores long.
const MIN_FOLLOWED_FLOWS: u64 = 2 * FlowStore::DEFAULT_CAPACITY as u64;
/// Passes over a full store by a reader alone; the median is reported.
const READER_RUNS: usize = 3;
/// Flows of the single-threaded pass that counts allocations.
const ALLOC_FLOWS: u64 = 20_000;
/// What an API client reads at once (`observe::api`'s chunk).
const CHUNK_FLOWS: usize = 1024;
/// Datapath events arrive in ring-buffer batches; the agent loads the
/// endpoint index once per batch.
const BATCH: usize = 256;
const FOLLOWER_QUERY: &str = "namespace=backend";

// ---------------------------------------------------------------------------
// Allocation counting.

/// Counts bytes and calls while `COUNTING` is set (one relaxed load
/// otherwise, so timed runs are not slowed by shared counters).
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn count(allocated: usize, freed: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATED.fetch_add(allocated as u64, Ordering::Relaxed);
        FREED.fetch_add(freed as u64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(u64::from(allocated > 0), Ordering::Relaxed);
    }
}

// SAFETY: every call goes to `System` unchanged; counting touches only atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size(), 0);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size(), 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) };
        count(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size, layout.size());
        }
        new
    }
}

/// Runs `f` with counting on: (bytes still live from it, allocation calls).
fn counted<T>(f: impl FnOnce() -> T) -> (T, i64, u64) {
    let (allocated, freed, calls) =
        (ALLOCATED.load(Ordering::SeqCst), FREED.load(Ordering::SeqCst), ALLOCATIONS.load(Ordering::SeqCst));
    COUNTING.store(true, Ordering::SeqCst);
    let value = f();
    COUNTING.store(false, Ordering::SeqCst);
    let live =
        (ALLOCATED.load(Ordering::SeqCst) - allocated) as i64 - (FREED.load(Ordering::SeqCst) - freed) as i64;
    (value, live, ALLOCATIONS.load(Ordering::SeqCst) - calls)
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

// ---------------------------------------------------------------------------
// The cluster: the seed app, replicas up to 100 pods, and its policy.

const FIXTURES: [&str; 6] = [
    "seed/test-app.yaml",
    "lab/kube-dns.yaml",
    "seed/cnp-front-to-back-l7.yaml",
    "seed/cnp-back-to-db.yaml",
    "seed/ccnp-allow-dns.yaml",
    "seed/cnp-ns-dns.yaml",
];
/// Replicas beside each seed Deployment: (namespace, app, port, subnet).
const REPLICAS: [(&str, &str, u16, u8); 3] =
    [("frontend", "web", 80, 1), ("backend", "api", 80, 2), ("db", "postgres", 5432, 3)];
const REPLICAS_PER_APP: usize = 32;

fn replica_pods() -> String {
    let mut yaml = String::new();
    for (namespace, app, port, subnet) in REPLICAS {
        for i in 1..=REPLICAS_PER_APP {
            let _ = write!(
                yaml,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {app}-5d8f7c-{i:03}\n  namespace: {namespace}\n  labels: {{app: {app}, pod-template-hash: 5d8f7c}}\nspec:\n  containers: [{{name: {app}, image: {app}, ports: [{{containerPort: {port}}}]}}]\nstatus: {{podIP: 10.244.{subnet}.{i}}}\n"
            );
        }
    }
    yaml
}

fn cluster_policy() -> ResolvedPolicy {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut manifests = Manifests::load(&FIXTURES.map(|f| fixtures.join(f)));
    manifests.parse(&replica_pods(), Default::default());
    assert!(!has_errors(&manifests.diagnostics), "{:?}", manifests.diagnostics);
    let (mut workloads, _) = Workloads::from_manifests(&manifests);
    // A Deployment stands for one pod without a status: give it an address.
    for (i, endpoint) in workloads.endpoints.iter_mut().enumerate() {
        endpoint.ip.get_or_insert(IpAddr::from([10, 244, 0, i as u8 + 1]));
    }
    let policy = compile(&manifests, &workloads);
    assert!(!has_errors(&policy.diagnostics), "{:?}", policy.diagnostics);
    policy
}

#[derive(Clone, Copy)]
struct Pod {
    ip: [u8; 4],
    identity: u32,
}

/// The pods of each app.
struct Pods {
    web: Vec<Pod>,
    api: Vec<Pod>,
    postgres: Vec<Pod>,
    dns: Vec<Pod>,
}

impl Pods {
    fn of(policy: &ResolvedPolicy) -> Pods {
        let app = |namespace: &str| -> Vec<Pod> {
            policy
                .endpoints
                .iter()
                .filter(|e| e.namespace == namespace)
                .filter_map(|e| match e.ip? {
                    IpAddr::V4(ip) => Some(Pod { ip: ip.octets(), identity: e.identity.0 }),
                    IpAddr::V6(_) => None,
                })
                .collect()
        };
        Pods { web: app("frontend"), api: app("backend"), postgres: app("db"), dns: app("kube-system") }
    }

    fn len(&self) -> usize {
        self.web.len() + self.api.len() + self.postgres.len() + self.dns.len()
    }
}

/// xorshift64*: the same traffic every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn ephemeral_port(&mut self) -> u16 {
        32768 + self.below(28_000) as u16
    }
}

const WORLD: u32 = 2;

/// Datapath events as the ring buffer delivers them: 45% forwarded, 30%
/// redirected to the proxy, 25% dropped; 15% with the world.
fn datapath_events(pods: &Pods, n: usize) -> Vec<FlowEvent> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            let roll = rng.below(20);
            let sport = rng.ephemeral_port();
            let world = Pod { ip: [93, 184, 216, 1 + rng.below(200) as u8], identity: WORLD };
            let (src, dst, protocol, dport, verdict, direction) = match roll {
                0..=5 => (
                    rng.pick(&pods.web),
                    rng.pick(&pods.api),
                    6,
                    80,
                    abi::VERDICT_REDIRECTED,
                    abi::DIR_EGRESS,
                ),
                6..=8 => (
                    rng.pick(&pods.api),
                    rng.pick(&pods.postgres),
                    6,
                    5432,
                    abi::VERDICT_FORWARDED,
                    abi::DIR_EGRESS,
                ),
                9..=10 => (
                    rng.pick(&pods.postgres),
                    rng.pick(&pods.api),
                    6,
                    sport,
                    abi::VERDICT_FORWARDED,
                    abi::DIR_INGRESS,
                ),
                11..=12 => (
                    rng.pick(&pods.web),
                    rng.pick(&pods.dns),
                    17,
                    53,
                    abi::VERDICT_FORWARDED,
                    abi::DIR_EGRESS,
                ),
                13..=15 => (
                    rng.pick(&pods.web),
                    rng.pick(&pods.postgres),
                    6,
                    5432,
                    abi::VERDICT_DROPPED,
                    abi::DIR_INGRESS,
                ),
                16..=17 => (rng.pick(&pods.api), world, 6, 443, abi::VERDICT_FORWARDED, abi::DIR_EGRESS),
                18 => (world, rng.pick(&pods.web), 6, 22, abi::VERDICT_DROPPED, abi::DIR_INGRESS),
                _ => (rng.pick(&pods.web), rng.pick(&pods.api), 1, 0, abi::VERDICT_DROPPED, abi::DIR_INGRESS),
            };
            let is_reply = u8::from(roll == 9 || roll == 10);
            let sport = match (protocol, is_reply) {
                (1, _) => [8, 0], // ICMP echo request: type and code.
                (_, 1) => 5432u16.to_be_bytes(),
                _ => sport.to_be_bytes(),
            };
            let dropped = verdict == abi::VERDICT_DROPPED;
            FlowEvent {
                timestamp_ns: 0,
                saddr: src.ip,
                daddr: dst.ip,
                sport,
                dport: dport.to_be_bytes(),
                src_identity: src.identity,
                dst_identity: dst.identity,
                ifindex: 7,
                protocol,
                kind: if dropped { abi::EVENT_DROP } else { abi::EVENT_FLOW },
                verdict,
                drop_reason: if dropped { abi::DROP_POLICY_DENIED } else { 0 },
                direction,
                is_reply,
                proxy_port: if verdict == abi::VERDICT_REDIRECTED { 15001 } else { 0 },
                len: 60 + rng.below(1400) as u32,
                pad: 0,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// L7: what `proxy::worker::FlowReporter` does with an http filter's records.

/// One proxied connection's two sides, looked up once (`FlowReporter::new`).
struct Sides {
    ip: Ip,
    l4: L4,
    source: FlowEndpoint,
    destination: FlowEndpoint,
}

fn connections(observer: &Observer, pods: &Pods, n: usize) -> Vec<Sides> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    (0..n)
        .map(|_| {
            let (web, api) = (rng.pick(&pods.web), rng.pick(&pods.api));
            let source = SocketAddr::from((web.ip, rng.ephemeral_port()));
            let destination = SocketAddr::from((api.ip, 80));
            let (ip, l4) = flow::addressing(true, source, destination);
            Sides {
                ip,
                l4,
                source: observer.endpoint(source.ip(), web.identity),
                destination: observer.endpoint(destination.ip(), api.identity),
            }
        })
        .collect()
}

const HEADERS: &str =
    r#""http.headers":["host: api.backend.svc.cluster.local","user-agent: curl/8.5.0","accept: */*"]"#;

/// The http filter's records for `n` exchanges (request, then response;
/// 10% of requests denied with no response), each with its connection.
fn http_records(connections: usize, n: usize) -> Vec<(usize, Vec<u8>)> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let url = "http://api.backend.svc.cluster.local";
    let mut records = Vec::new();
    for _ in 0..n {
        let connection = rng.below(connections);
        if rng.below(10) == 0 {
            let request = format!(
                r#"{{"type":"REQUEST","verdict":"DROPPED","http.method":"POST","http.url":"{url}/v1/orders","http.protocol":"HTTP/1.1",{HEADERS}}}"#
            );
            records.push((connection, request.into_bytes()));
            continue;
        }
        let path = format!("/v1/items/{}", rng.below(10_000));
        let request = format!(
            r#"{{"type":"REQUEST","verdict":"FORWARDED","http.method":"GET","http.url":"{url}{path}","http.protocol":"HTTP/1.1",{HEADERS}}}"#
        );
        let code = if rng.below(20) == 0 { 404 } else { 200 };
        let latency = 200_000 + rng.below(5_000_000);
        let response = format!(
            r#"{{"type":"RESPONSE","verdict":"FORWARDED","http.method":"GET","http.url":"{url}{path}","http.protocol":"HTTP/1.1","latency_ns":{latency},"http.code":{code}}}"#
        );
        records.push((connection, request.into_bytes()));
        records.push((connection, response.into_bytes()));
    }
    records
}

/// `FlowReporter::records` + `publish`, for one record.
fn http_flow(sides: &Sides, record: &[u8], node_name: &Arc<str>, proxy: &ProxyInfo) -> Option<Flow> {
    let parsed = parse_record(record)?;
    let reason = match parsed.verdict {
        Verdict::Dropped => Some("POLICY_DENIED".to_string()),
        Verdict::Error => parsed.error.clone(),
        Verdict::Forwarded | Verdict::Redirected => None,
    };
    Some(Flow {
        time: Timestamp::now(),
        uuid: Uuid::new(),
        verdict: parsed.verdict,
        drop_reason_desc: reason.map(Into::into),
        ip: sides.ip.clone(),
        l4: sides.l4.clone(),
        source: sides.source.clone(),
        destination: sides.destination.clone(),
        node_name: node_name.clone(),
        l7: Some(parsed.l7),
        traffic_direction: TrafficDirection::Ingress,
        is_reply: parsed.is_reply,
        policy_revoked: false,
        proxy: Some(proxy.clone()),
    })
}

// ---------------------------------------------------------------------------
// The two kinds of traffic, as sources of flows.

/// Flows from one source: pre-generated inputs, and how to turn the i-th
/// into a flow.
struct Traffic {
    name: &'static str,
    events: Vec<FlowEvent>,
    records: Vec<(usize, Vec<u8>)>,
    sides: Vec<Sides>,
    proxy: ProxyInfo,
    node_name: Arc<str>,
}

impl Traffic {
    fn is_l7(&self) -> bool {
        !self.records.is_empty()
    }

    /// Publishes `n` flows the way the agent does: convert, then
    /// `Observer::publish`.
    fn ingest(&self, observer: &Observer, n: u64) {
        let n = n as usize;
        if self.is_l7() {
            for i in 0..n {
                let (connection, record) = &self.records[i % self.records.len()];
                if let Some(flow) = http_flow(&self.sides[*connection], record, &self.node_name, &self.proxy)
                {
                    observer.publish(flow);
                }
            }
            return;
        }
        let mut done = 0;
        while done < n {
            let endpoints = observer.endpoints();
            for i in done..(done + BATCH).min(n) {
                observer.publish(flow_of(&self.events[i % self.events.len()], &endpoints, &self.node_name));
            }
            done += BATCH;
        }
    }

    /// The i-th flow, without publishing it.
    fn flow(&self, observer: &Observer, i: usize) -> Flow {
        if self.is_l7() {
            let (connection, record) = &self.records[i % self.records.len()];
            http_flow(&self.sides[*connection], record, &self.node_name, &self.proxy).expect("records parse")
        } else {
            flow_of(&self.events[i % self.events.len()], &observer.endpoints(), &self.node_name)
        }
    }

    /// Converts `n` inputs and drops the flows.
    fn convert(&self, endpoints: &EndpointIndex, n: u64) {
        for i in 0..n as usize {
            if self.is_l7() {
                let (connection, record) = &self.records[i % self.records.len()];
                black_box(http_flow(&self.sides[*connection], record, &self.node_name, &self.proxy));
            } else {
                black_box(flow_of(&self.events[i % self.events.len()], endpoints, &self.node_name));
            }
        }
    }

    /// Only parses `n` records (L7).
    fn parse(&self, n: u64) {
        for i in 0..n as usize {
            black_box(parse_record(&self.records[i % self.records.len()].1));
        }
    }
}

// ---------------------------------------------------------------------------
// Measuring.

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A rate: flows per second (median of runs), flows in all, and allocation
/// calls per flow (single-threaded pass) if counted.
struct Rate {
    per_second: f64,
    flows: u64,
    allocations: Option<f64>,
}

/// How many flows a run takes so that it lasts about `SECONDS_PER_RUN`
/// (at least `min`, at most `max`).
fn flows_per_run(warmup: Duration, min: u64, max: u64) -> u64 {
    let rate = WARMUP_FLOWS as f64 / warmup.as_secs_f64().max(1e-9);
    ((rate * SECONDS_PER_RUN) as u64).min(max).max(min)
}

/// Measures `run(n)`, which times its own work on `n` flows, on at most
/// `max` flows a run.
fn rate(max: u64, mut run: impl FnMut(u64) -> Duration) -> Rate {
    let n = flows_per_run(run(WARMUP_FLOWS), MIN_FLOWS, max);
    let (_, _, calls) = counted(|| run(ALLOC_FLOWS));
    let rates = (0..RUNS).map(|_| n as f64 / run(n).as_secs_f64()).collect();
    Rate {
        per_second: median(rates),
        flows: n * RUNS as u64,
        allocations: Some(calls as f64 / ALLOC_FLOWS as f64),
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// What a follower did during one run.
#[derive(Default)]
struct Followed {
    read: u64,
    matched: u64,
    lost: u64,
    bytes: u64,
    /// From the start to the last flow it handled.
    busy: Duration,
}

/// Follows the store like `GET /v1/flows?follow=true`: wait, read a chunk,
/// filter, write JSON lines, until `done` and caught up.
fn follow(observer: &Observer, filter: &FlowFilter, ready: &Barrier, done: &AtomicBool) -> Followed {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut reader = observer.reader(Some(0));
    let mut followed = Followed::default();
    let mut chunk = Vec::new();
    ready.wait();
    let start = Instant::now();
    runtime.block_on(async {
        loop {
            // The timeout only lets it notice the end.
            let _ = tokio::time::timeout(Duration::from_millis(2), reader.wait()).await;
            let flows = reader.read(CHUNK_FLOWS);
            followed.lost += observer.reader_lost(&mut reader);
            if flows.is_empty() {
                if done.load(Ordering::SeqCst) && reader.caught_up() {
                    break;
                }
                continue;
            }
            chunk.clear();
            for stored in flows.iter().filter(|f| filter.matches(&f.flow)) {
                write_line(&stored.flow, Lines::Owned, &mut chunk);
                followed.matched += 1;
            }
            followed.read += flows.len() as u64;
            followed.bytes += black_box(&chunk).len() as u64;
            followed.busy = start.elapsed();
        }
    });
    followed
}

/// Ingest with a follower attached: the publisher's rate, the follower's
/// rate, and what it lost, over all runs.
struct WithFollower {
    publisher: Rate,
    follower_per_second: f64,
    read: u64,
    matched: u64,
    lost: u64,
    bytes: u64,
}

fn ingest_with_follower(observer: &Arc<Observer>, traffic: &Traffic, filter: &FlowFilter) -> WithFollower {
    let run = |n: u64| -> (Duration, Followed) {
        let (ready, done) = (Arc::new(Barrier::new(2)), Arc::new(AtomicBool::new(false)));
        let follower = std::thread::spawn({
            let (observer, filter, ready, done) =
                (observer.clone(), filter.clone(), ready.clone(), done.clone());
            move || follow(&observer, &filter, &ready, &done)
        });
        ready.wait();
        let elapsed = timed(|| traffic.ingest(observer, n));
        done.store(true, Ordering::SeqCst);
        (elapsed, follower.join().expect("follower"))
    };
    let n = flows_per_run(run(WARMUP_FLOWS).0, MIN_FOLLOWED_FLOWS, MAX_FLOWS);
    let (mut publisher, mut follower) = (Vec::new(), Vec::new());
    let mut total = Followed::default();
    for _ in 0..RUNS {
        let (elapsed, followed) = run(n);
        publisher.push(n as f64 / elapsed.as_secs_f64());
        follower.push(followed.read as f64 / followed.busy.as_secs_f64().max(1e-9));
        total.read += followed.read;
        total.matched += followed.matched;
        total.lost += followed.lost;
        total.bytes += followed.bytes;
    }
    WithFollower {
        publisher: Rate { per_second: median(publisher), flows: n * RUNS as u64, allocations: None },
        follower_per_second: median(follower),
        read: total.read,
        matched: total.matched,
        lost: total.lost,
        bytes: total.bytes,
    }
}

/// How a reader writes a flow's JSON line into its chunk.
#[derive(Clone, Copy)]
enum Lines {
    /// `Flow::to_json_line`, then copied into the chunk (what the API does).
    Owned,
    /// `serde_json::to_writer` straight into the chunk, for comparison.
    InPlace,
}

fn write_line(flow: &Flow, lines: Lines, chunk: &mut Vec<u8>) {
    match lines {
        Lines::Owned => chunk.extend_from_slice(flow.to_json_line().as_bytes()),
        Lines::InPlace => {
            chunk.extend_from_slice(b"{\"flow\":");
            serde_json::to_writer(&mut *chunk, flow).expect("flows serialize");
            chunk.push(b'}');
        }
    }
    chunk.push(b'\n');
}

/// Reads a full store once with a reader alone (filter + JSON lines).
fn read_store(observer: &Observer, filter: &FlowFilter, lines: Lines) -> u64 {
    let mut reader = observer.reader(None);
    let mut chunk = Vec::new();
    let mut read = 0;
    loop {
        let batch = reader.read(CHUNK_FLOWS);
        if batch.is_empty() {
            return read;
        }
        chunk.clear();
        for stored in batch.iter().filter(|f| filter.matches(&f.flow)) {
            write_line(&stored.flow, lines, &mut chunk);
        }
        black_box(&chunk);
        read += batch.len() as u64;
    }
}

/// A reader alone over a full store: flows/s (median of runs) and
/// allocation calls per flow read.
fn reader_alone(observer: &Observer, filter: &FlowFilter, lines: Lines) -> Rate {
    let (read, _, calls) = counted(|| read_store(observer, filter, lines));
    let mut flows = 0;
    let rates = (0..READER_RUNS)
        .map(|_| {
            let start = Instant::now();
            let read = read_store(observer, filter, lines);
            flows += read;
            read as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    Rate { per_second: median(rates), flows, allocations: Some(calls as f64 / read as f64) }
}

/// Every row of one kind of traffic.
struct Rows {
    with_follower: WithFollower,
    ingest: Rate,
    parse: Option<Rate>,
    convert: Rate,
    metrics: Rate,
    push: Rate,
    reader_alone: Rate,
    reader_in_place: Rate,
}

/// Flows built ahead, in chunks, so that timing covers only what is measured.
fn prebuilt(observer: &Observer, traffic: &Traffic, n: u64, mut measured: impl FnMut(Vec<Flow>)) -> Duration {
    const CHUNK: u64 = 65_536;
    let mut elapsed = Duration::ZERO;
    let mut start = 0;
    while start < n {
        // Building is neither timed nor counted.
        let counting = COUNTING.swap(false, Ordering::SeqCst);
        let flows: Vec<Flow> =
            (start..(start + CHUNK).min(n)).map(|i| traffic.flow(observer, i as usize)).collect();
        COUNTING.store(counting, Ordering::SeqCst);
        elapsed += timed(|| measured(flows));
        start += CHUNK;
    }
    elapsed
}

fn measure(
    traffic: &Traffic,
    endpoints: &EndpointIndex,
    policy: &ResolvedPolicy,
    filter: &FlowFilter,
) -> Rows {
    let observer = Observer::new(FlowStore::DEFAULT_CAPACITY);
    observer.set_endpoints(EndpointIndex::new(policy));
    // Steady state: the store is full and every push overwrites.
    traffic.ingest(&observer, FlowStore::DEFAULT_CAPACITY as u64);
    let with_follower = ingest_with_follower(&observer, traffic, filter);
    let ingest = rate(MAX_FLOWS, |n| timed(|| traffic.ingest(&observer, n)));
    let parse = traffic.is_l7().then(|| rate(MAX_FLOWS, |n| timed(|| traffic.parse(n))));
    let convert = rate(MAX_FLOWS, |n| timed(|| traffic.convert(endpoints, n)));
    // Flows built ahead cost a conversion each: keep their runs as long as
    // a conversion run.
    let built = ((convert.per_second * SECONDS_PER_RUN) as u64).clamp(MIN_FLOWS, MAX_FLOWS);
    let metrics = rate(built, |n| {
        prebuilt(&observer, traffic, n, |flows| flows.iter().for_each(|f| observer.metrics().observe(f)))
    });
    let push = rate(built, |n| {
        prebuilt(&observer, traffic, n, |flows| flows.into_iter().for_each(|f| observer.store().push(f)))
    });
    let (owned, in_place) =
        (reader_alone(&observer, filter, Lines::Owned), reader_alone(&observer, filter, Lines::InPlace));
    Rows {
        with_follower,
        ingest,
        parse,
        convert,
        metrics,
        push,
        reader_alone: owned,
        reader_in_place: in_place,
    }
}

/// Bytes held by a full default store of `traffic`'s flows: (empty store,
/// flows, resident set growth for both). The observer is returned so its
/// memory stays in use while the next is measured.
fn store_memory(traffic: &Traffic, policy: &ResolvedPolicy) -> (i64, i64, i64, Arc<Observer>) {
    let endpoints = EndpointIndex::new(policy);
    let resident = resident_bytes();
    let (observer, empty, _) = counted(|| {
        let observer = Observer::new(FlowStore::DEFAULT_CAPACITY);
        observer.set_endpoints(endpoints);
        observer
    });
    let ((), flows, _) = counted(|| traffic.ingest(&observer, FlowStore::DEFAULT_CAPACITY as u64));
    assert_eq!(observer.store().len(), FlowStore::DEFAULT_CAPACITY);
    let grown = resident_bytes() as i64 - resident as i64;
    (empty, flows, grown, observer)
}

// ---------------------------------------------------------------------------
// Printing.

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

const WIDTH: usize = 46;

fn header() {
    println!(
        "{:WIDTH$} {:>11} {:>8} {:>8} {:>10} {:>7}   flows measured",
        "", "flows/s", "ns/flow", "allocs", "goal", "ratio"
    );
}

fn rate_row(name: &str, rate: &Rate, goal: Option<f64>) {
    let allocations = rate.allocations.map_or("-".to_string(), |a| format!("{a:.1}"));
    let (goal, ratio) = match goal {
        Some(goal) => (thousands(goal as u64), format!("{:.2}x", rate.per_second / goal)),
        None => ("-".to_string(), "-".to_string()),
    };
    println!(
        "{name:WIDTH$} {:>11} {:>8.0} {:>8} {:>10} {:>7}   {}",
        thousands(rate.per_second as u64),
        1e9 / rate.per_second,
        allocations,
        goal,
        ratio,
        thousands(rate.flows)
    );
}

fn print_rows(title: &str, rows: &Rows) {
    let f = &rows.with_follower;
    rate_row(&format!("{title} ingest, follower attached"), &f.publisher, Some(FLOWS_PER_SECOND_GOAL));
    let follower = Rate { per_second: f.follower_per_second, flows: f.read, allocations: None };
    rate_row("  follower (filter + JSON) while ingesting", &follower, None);
    let offered = f.read + f.lost;
    println!(
        "{:WIDTH$} {:>11} of {} offered ({:.1}%); {} matched, {:.0} B/line",
        "  follower lost",
        thousands(f.lost),
        thousands(offered),
        100.0 * f.lost as f64 / offered.max(1) as f64,
        thousands(f.matched),
        f.bytes as f64 / f.matched.max(1) as f64
    );
    rate_row(&format!("{title} ingest, no follower"), &rows.ingest, Some(FLOWS_PER_SECOND_GOAL));
    if let Some(parse) = &rows.parse {
        rate_row("  parse_record alone", parse, None);
    }
    let convert = if rows.parse.is_some() {
        "  record -> flow (parse + build) alone"
    } else {
        "  flow_of (event -> enriched flow) alone"
    };
    rate_row(convert, &rows.convert, None);
    rate_row("  Metrics::observe alone", &rows.metrics, None);
    rate_row("  FlowStore::push alone (full store)", &rows.push, None);
    rate_row("  reader alone, full store (filter + JSON)", &rows.reader_alone, None);
    rate_row("    same, to_writer into the chunk (compare)", &rows.reader_in_place, None);
}

fn memory_row(name: &str, bytes: f64, flows: Option<u64>, goal: Option<f64>) {
    let per_flow = flows.map_or(String::new(), |n| format!("  {:.0} B/flow", bytes / n as f64));
    let (goal, ratio) = match goal {
        Some(goal) => (megabytes(goal), format!("{:.2}x", bytes / goal)),
        None => ("-".to_string(), "-".to_string()),
    };
    println!(
        "{name:WIDTH$} {:>11} {:>8} {:>8} {:>10} {:>7} {per_flow}",
        megabytes(bytes),
        "",
        "",
        goal,
        ratio
    );
}

fn main() {
    let policy = cluster_policy();
    let pods = Pods::of(&policy);
    let filter = FlowQuery::parse(FOLLOWER_QUERY, Timestamp::now()).expect("query parses").filter;
    let (endpoints, index_bytes, _) = counted(|| EndpointIndex::new(&policy));

    // Inputs are built once, before anything is measured.
    let node_name: Arc<str> = "node-1".into();
    let lookup = Observer::new(1);
    lookup.set_endpoints(EndpointIndex::new(&policy));
    let rule_set = policy.rule_sets_in_use().into_iter().next().map_or(0, |r| r.0);
    let proxy = ProxyInfo { filter: "http".into(), rule_set };
    let l3l4 = Traffic {
        name: "L3/L4",
        events: datapath_events(&pods, 8192),
        records: Vec::new(),
        sides: Vec::new(),
        proxy: proxy.clone(),
        node_name: node_name.clone(),
    };
    let l7 = Traffic {
        name: "L7 HTTP",
        events: Vec::new(),
        records: http_records(64, 4096),
        sides: connections(&lookup, &pods, 64),
        proxy,
        node_name,
    };

    // Memory first, on a heap that has not yet been churned.
    let (empty, l3l4_bytes, l3l4_resident, kept) = store_memory(&l3l4, &policy);
    let (_, l7_bytes, l7_resident, also_kept) = store_memory(&l7, &policy);
    drop((kept, also_kept));

    let rows: Vec<(&str, Rows)> =
        [&l3l4, &l7].into_iter().map(|t| (t.name, measure(t, &endpoints, &policy, &filter))).collect();

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "flow pipeline (one publisher thread; follower: `{FOLLOWER_QUERY}` filter + JSON lines, its own thread)"
    );
    println!(
        "  {} pods, {} identities; store {} flows; median of {RUNS} runs; {cpus} CPUs; allocs = allocation calls per flow",
        pods.len(),
        policy.identities.len(),
        thousands(FlowStore::DEFAULT_CAPACITY as u64)
    );
    println!();
    header();
    for (title, rows) in &rows {
        print_rows(title, rows);
    }
    println!();
    let capacity = FlowStore::DEFAULT_CAPACITY as u64;
    memory_row("memory, empty default store", empty as f64, None, None);
    for (name, bytes, resident) in [("L3/L4", l3l4_bytes, l3l4_resident), ("L7 HTTP", l7_bytes, l7_resident)]
    {
        let total = (empty + bytes) as f64;
        memory_row(
            &format!("memory, 65,535 {name} flows (store total)"),
            total,
            Some(capacity),
            Some(STORE_BYTES_GOAL),
        );
        memory_row("  the flows alone", bytes as f64, Some(capacity), None);
        memory_row("  resident set growth (store + flows)", resident as f64, Some(capacity), None);
    }
    memory_row("endpoint index (shared, once per policy)", index_bytes as f64, None, None);
    println!(
        "  size_of: Flow {} B, StoredFlow {} B (+16 B Arc header); bytes are as requested from the allocator",
        std::mem::size_of::<Flow>(),
        std::mem::size_of::<flow::StoredFlow>()
    );
    black_box(endpoints);
}
