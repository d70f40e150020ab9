//! ABI conformance of the runtime, with hand-written hostile modules: each
//! must fail closed (connection closed, ERROR record) without harming the
//! runtime or other connections; per-module limits and fail mode; rule
//! sets whose module is missing, failed or refuses them.

use std::sync::Arc;
use std::time::Duration;

use porin_sdk::driver::DriverError;
use porin_sdk::testing::{Wire, test_meta};

use super::*;

const PASS_ALL: &str =
    "(call $op (i32.const 2) (i64.extend_i32_u (local.get $len)) (i32.const 0) (i32.const 0)) (i32.const 0)";

/// A stream filter module whose `porin_stream_data` body is `body`.
fn module(body: &str) -> String {
    module_with(body, "(i32.const 1)", "")
}

fn module_with(body: &str, abi_version: &str, extra: &str) -> String {
    format!(
        r#"(module
  (import "porin" "op" (func $op (param i32 i64 i32 i32)))
  (import "porin" "record" (func $record (param i32 i32)))
  (import "porin" "error" (func $error (param i32 i32)))
  {extra}
  (memory (export "memory") 2)
  (data (i32.const 16) "no such rules")
  (data (i32.const 64) "{{\"type\":\"REQUEST\",\"verdict\":\"FORWARDED\"}}")
  (func (export "porin_abi_version") (result i32) {abi_version})
  (func (export "porin_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "porin_rules_set") (param i32 i32) (result i32)
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 33))
      (then (call $error (i32.const 16) (i32.const 13)) (return (i32.const 1))))
    (i32.const 0))
  (func (export "porin_rules_remove") (param i32))
  (func (export "porin_stream_open") (param i32 i32) (result i32) (i32.const 0))
  (func (export "porin_stream_data") (param $id i32) (param $flags i32) (param $len i32) (result i32)
    {body})
  (func (export "porin_stream_close") (param i32))
)"#
    )
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        memory_limit: 4 << 20,
        call_deadline: Duration::from_millis(500),
        rebuild_backoff: Duration::from_secs(60),
        ..RuntimeConfig::default()
    }
}

fn registry_with(wat: &str) -> Arc<FilterRegistry> {
    registry_with_settings(wat, &ModuleSettings::default())
}

fn registry_with_settings(wat: &str, settings: &ModuleSettings) -> Arc<FilterRegistry> {
    let registry = Arc::new(FilterRegistry::new(config()));
    registry.load_with("test", &wat::parse_str(wat).expect("valid WAT"), settings).expect("module loads");
    registry
}

const FAIL_OPEN: ModuleSettings =
    ModuleSettings { memory_limit: None, call_deadline: None, fail_mode: FailMode::Open };

fn load_error(wat: &str) -> FilterError {
    FilterRegistry::new(config()).load("test", &wat::parse_str(wat).expect("valid WAT")).unwrap_err()
}

/// Sends `data` through a fresh connection and returns the outcome.
fn run(
    registry: &Arc<FilterRegistry>,
    data: &[u8],
) -> (Result<(), DriverError>, Vec<serde_json::Value>, Wire) {
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_stream("test", &test_meta()).expect("opens");
    let mut wire = Wire::default();
    let result = session.data(false, data, false, &mut wire);
    let records = session.take_records().iter().map(|r| serde_json::from_slice(r).unwrap()).collect();
    (result, records, wire)
}

fn assert_fails_closed(body: &str, expected: impl Fn(&str) -> bool) {
    let registry = registry_with(&module(body));
    let (result, records, wire) = run(&registry, b"hello");
    let Err(DriverError::Call(message)) = result else { panic!("expected a failed call, got {result:?}") };
    assert!(expected(&message), "{message}");
    assert!(wire.upstream.is_empty(), "nothing may pass");
    let last = records.last().expect("an ERROR record");
    assert_eq!(last["verdict"], "ERROR");
    assert_eq!(last["filter"], "test");
    assert_eq!(last["error"], format!("filter call failed: {message}"));
}

#[test]
fn a_conforming_module_passes_data_and_records() {
    let registry =
        registry_with(&module(&format!("(call $record (i32.const 64) (i32.const 40)) {PASS_ALL}")));
    let (result, records, wire) = run(&registry, b"hello");
    result.unwrap();
    assert_eq!(wire.upstream, b"hello");
    assert_eq!(records, [serde_json::json!({"type": "REQUEST", "verdict": "FORWARDED"})]);
}

#[test]
fn infinite_loop_hits_the_cpu_deadline() {
    assert_fails_closed("(loop $l (br $l)) (i32.const 0)", |m| m.contains("CPU deadline"));
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let bomb = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
    assert_fails_closed(bomb, |m| m.contains("memory limit"));
}

#[test]
fn traps_close_the_connection() {
    assert_fails_closed("unreachable", |m| m.contains("trapped") && m.contains("unreachable"));
    assert_fails_closed("(i32.div_u (i32.const 1) (i32.const 0))", |m| m.contains("divide by zero"));
}

#[test]
fn bogus_ops_are_abi_violations() {
    let bodies = [
        (
            "(call $op (i32.const 99) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 0)",
            "unknown op code 99",
        ),
        (
            "(call $op (i32.const 2) (i64.const -5) (i32.const 0) (i32.const 0)) (i32.const 0)",
            "negative count",
        ),
        (
            "(call $op (i32.const 4) (i64.const 1) (i32.const 131000) (i32.const 5000)) (i32.const 0)",
            "outside linear memory",
        ),
        (
            "(call $op (i32.const 4) (i64.const 7) (i32.const 16) (i32.const 4)) (i32.const 0)",
            "INJECT target 7",
        ),
        (
            "(call $op (i32.const 4) (i64.const 1) (i32.const -1) (i32.const 4)) (i32.const 0)",
            "negative pointer",
        ),
        (
            "(loop $l (call $op (i32.const 1) (i64.const 1) (i32.const 0) (i32.const 0)) (br $l)) (i32.const 0)",
            "more than 65536 ops",
        ),
        (
            "(loop $l (call $record (i32.const 64) (i32.const 40)) (br $l)) (i32.const 0)",
            "more than 4096 records",
        ),
    ];
    for (body, expected) in bodies {
        assert_fails_closed(body, |m| m.contains("broke the ABI") && m.contains(expected));
    }
}

#[test]
fn ops_that_go_nowhere_close_the_connection() {
    let registry = registry_with(&module("(i32.const 0)"));
    assert_eq!(run(&registry, b"x").0, Err(DriverError::NoProgress));
    let greedy = registry_with(&module(
        "(call $op (i32.const 1) (i64.const 4294967296) (i32.const 0) (i32.const 0)) (i32.const 0)",
    ));
    assert!(matches!(run(&greedy, b"x").0, Err(DriverError::BufferLimit(_))));
    let refusing = registry_with(&module("(call $error (i32.const 16) (i32.const 13)) (i32.const 1)"));
    let (result, ..) = run(&refusing, b"x");
    assert_eq!(result, Err(DriverError::Call("refused: no such rules".into())));
}

#[test]
fn a_trap_spares_other_connections_and_new_ones_get_a_fresh_instance() {
    // Traps when the data starts with 'X'.
    let body =
        format!("(if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 88)) (then unreachable)) {PASS_ALL}");
    let registry = registry_with(&module(&body));
    let mut worker = WorkerFilters::new(registry.clone());
    let mut good = worker.open_stream("test", &test_meta()).unwrap();
    let mut bad = worker.open_stream("test", &test_meta()).unwrap();
    let mut wire = Wire::default();
    assert!(bad.data(false, b"X", false, &mut wire).is_err());
    good.data(false, b"still fine", false, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"still fine");
    // The next connection runs on a new instance; a second failure starts
    // the backoff, during which new connections are refused (fail closed).
    let mut fresh = worker.open_stream("test", &test_meta()).unwrap();
    assert!(fresh.data(false, b"X again", false, &mut wire).is_err());
    match worker.open_stream("test", &test_meta()) {
        Err(FilterError::Unavailable { name, .. }) => assert_eq!(name, "test"),
        other => panic!("expected backoff, got {other:?}"),
    }
}

#[test]
fn modules_that_do_not_speak_the_abi_are_refused() {
    let version = load_error(&module_with(PASS_ALL, "(i32.const 2)", ""));
    assert!(matches!(version, FilterError::AbiVersion { found: 2, expected: 1, .. }), "{version}");
    assert_eq!(version.to_string(), "filter `test` speaks ABI version 2; this porin speaks version 1");
    let stuck = load_error(&module_with(PASS_ALL, "(loop $l (br $l)) (i32.const 1)", ""));
    assert!(stuck.to_string().contains("CPU deadline"), "{stuck}");
    let import =
        load_error(&module_with(PASS_ALL, "(i32.const 1)", r#"(import "env" "system" (func (param i32)))"#));
    assert!(import.to_string().contains("imports `env.system`"), "{import}");
    let missing = load_error(&module(PASS_ALL).replace("porin_buffer", "buffer"));
    assert!(missing.to_string().contains("does not export `porin_buffer`"), "{missing}");
    let partial = load_error(&module(PASS_ALL).replace("porin_stream_close", "close"));
    assert!(partial.to_string().contains("exports only some of"), "{partial}");
    let garbage = FilterRegistry::new(config()).load("test", b"\0asm nonsense").unwrap_err();
    assert!(garbage.to_string().contains("not a valid module"), "{garbage}");
}

#[test]
fn rule_sets_are_checked_by_the_module_and_bad_ones_change_nothing() {
    let registry = registry_with(&module(PASS_ALL));
    registry.set_rule_set(porin_sdk::RuleSetId(1), "test", "{}").unwrap();
    let err = registry.set_rule_set(porin_sdk::RuleSetId(1), "test", "!bad").unwrap_err();
    assert_eq!(err.to_string(), "filter `test` rejected rule set 1: no such rules");
    let missing = registry.set_rule_set(porin_sdk::RuleSetId(2), "nope", "{}").unwrap_err();
    assert_eq!(missing.to_string(), "filter module `nope` is not loaded");
}

#[test]
fn replacing_a_module_keeps_open_connections_on_the_old_one() {
    let registry = registry_with(&module(PASS_ALL));
    let mut worker = WorkerFilters::new(registry.clone());
    let mut old = worker.open_stream("test", &test_meta()).unwrap();
    // The new version drops everything.
    let drop_all = "(call $op (i32.const 3) (i64.extend_i32_u (local.get $len)) (i32.const 0) (i32.const 0)) (i32.const 0)";
    registry.load("test", &wat::parse_str(module(drop_all)).unwrap()).unwrap();
    let mut new = worker.open_stream("test", &test_meta()).unwrap();
    let (mut old_wire, mut new_wire) = (Wire::default(), Wire::default());
    old.data(false, b"old", false, &mut old_wire).unwrap();
    new.data(false, b"new", false, &mut new_wire).unwrap();
    assert_eq!((old_wire.upstream.as_slice(), new_wire.upstream.as_slice()), (&b"old"[..], &b""[..]));
}

/// Grows memory by 1 MiB on every call, trapping when it cannot.
const GROW_1MIB: &str = "(if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))";

#[test]
fn each_module_has_its_own_memory_limit() {
    let body = format!("{GROW_1MIB} {PASS_ALL}");
    let (result, _, wire) = run(&registry_with(&module(&body)), b"hello");
    result.unwrap();
    assert_eq!(wire.upstream, b"hello", "within the runtime's 4 MiB default");
    let capped = ModuleSettings { memory_limit: Some(512 << 10), ..ModuleSettings::default() };
    let registry = registry_with_settings(&module(&body), &capped);
    assert_eq!(registry.module("test").unwrap().limits.memory_limit, 512 << 10);
    let (result, records, wire) = run(&registry, b"hello");
    assert_eq!(result, Err(DriverError::Call("hit its 524288-byte memory limit".into())));
    assert!(wire.upstream.is_empty());
    assert_eq!(records.last().unwrap()["verdict"], "ERROR");
}

#[test]
fn each_module_has_its_own_call_deadline() {
    let quick =
        ModuleSettings { call_deadline: Some(Duration::from_millis(20)), ..ModuleSettings::default() };
    let registry = registry_with_settings(&module("(loop $l (br $l)) (i32.const 0)"), &quick);
    let started = std::time::Instant::now();
    let (result, ..) = run(&registry, b"spin");
    assert_eq!(result, Err(DriverError::Call("ran past its 20ms CPU deadline".into())));
    // The runtime's default here is 500 ms.
    assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
}

#[test]
fn settings_a_module_cannot_run_with_are_refused_at_load() {
    let load = |settings: ModuleSettings| {
        FilterRegistry::new(config())
            .load_with("test", &wat::parse_str(module(PASS_ALL)).unwrap(), &settings)
            .unwrap_err()
            .to_string()
    };
    // The module declares 2 pages (128 KiB) of memory.
    assert_eq!(
        load(ModuleSettings { memory_limit: Some(64 << 10), ..ModuleSettings::default() }),
        "filter `test`: declares 131072 bytes of initial memory, more than its memory limit of 65536 bytes; \
         raise the limit or shrink the module's initial memory"
    );
    assert_eq!(
        load(ModuleSettings { call_deadline: Some(Duration::ZERO), ..ModuleSettings::default() }),
        "filter `test`: the call deadline must be above zero"
    );
    assert_eq!(
        load(ModuleSettings { call_deadline: Some(Duration::from_secs(60)), ..ModuleSettings::default() }),
        "filter `test`: the call deadline 60s is above the maximum of 10s"
    );
}

/// Requests: DROP 100 bytes when they start with 'D', else PASS. Replies:
/// trap when they start with 'X', else PASS.
fn drop_or_trap() -> String {
    let request = "(if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 68)) \
        (then (call $op (i32.const 3) (i64.const 100) (i32.const 0) (i32.const 0)) (return (i32.const 0))))";
    let reply = "(if (i32.and (local.get $flags) (i32.const 1)) \
        (then (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 88)) (then unreachable))))";
    module(&format!("{request} {reply} {PASS_ALL}"))
}

#[test]
fn failing_open_passes_the_rest_of_the_connection_but_not_what_was_denied() {
    let registry = registry_with_settings(&drop_or_trap(), &FAIL_OPEN);
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_stream("test", &test_meta()).unwrap();
    let mut wire = Wire::default();
    // Denied: the filter drops this request and the 95 bytes still to come.
    session.data(false, b"Ddddd", false, &mut wire).unwrap();
    session.data(true, b"X marks a trap", false, &mut wire).unwrap();
    let records: Vec<serde_json::Value> =
        session.take_records().iter().map(|r| serde_json::from_slice(r).unwrap()).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["verdict"], "FORWARDED");
    let note = records[0]["error"].as_str().unwrap();
    assert!(
        note.starts_with("filter `test` failed open: trapped: ") && note.contains("unreachable"),
        "{note}"
    );
    assert_eq!(wire.downstream, b"X marks a trap", "the reply the filter failed on passes");
    session.data(false, &[b'd'; 95], false, &mut wire).unwrap();
    assert!(wire.upstream.is_empty(), "the denied request stays dropped");
    session.data(false, b"Denied? no filter", false, &mut wire).unwrap();
    session.data(true, b"X again", true, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"Denied? no filter", "unfiltered from now on");
    assert_eq!(wire.downstream, b"X marks a trapX again");
    assert!(session.take_records().is_empty());

    // Failing closed (the default), the same trap ends the connection.
    let registry = registry_with(&drop_or_trap());
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_stream("test", &test_meta()).unwrap();
    let mut wire = Wire::default();
    assert!(session.data(true, b"X", false, &mut wire).is_err());
    assert!(session.data(false, b"hello", false, &mut wire).is_err());
    assert!(wire.upstream.is_empty() && wire.downstream.is_empty());
}

#[test]
fn decisions_of_the_filter_never_fail_open() {
    // An ERROR op and a refusing status are the filter's answers, not failures.
    for body in [
        "(call $op (i32.const 5) (i64.const 1) (i32.const 16) (i32.const 13)) (i32.const 0)",
        "(call $error (i32.const 16) (i32.const 13)) (i32.const 1)",
    ] {
        let registry = registry_with_settings(&module(body), &FAIL_OPEN);
        let (result, records, wire) = run(&registry, b"hello");
        assert!(result.is_err(), "{body}");
        assert!(wire.upstream.is_empty());
        assert_eq!(records.last().unwrap()["verdict"], "ERROR");
    }
}

/// A datagram filter: passes datagrams, traps on one starting with 'X'.
const DATAGRAMS: &str = r#"(module
  (memory (export "memory") 2)
  (func (export "porin_abi_version") (result i32) (i32.const 1))
  (func (export "porin_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "porin_rules_set") (param i32 i32) (result i32) (i32.const 0))
  (func (export "porin_rules_remove") (param i32))
  (func (export "porin_datagram_open") (param i32 i32) (result i32) (i32.const 0))
  (func (export "porin_datagram") (param i32 i32 i32) (result i32)
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 88)) (then unreachable))
    (i32.const 0))
  (func (export "porin_datagram_close") (param i32)))"#;

#[test]
fn a_datagram_flow_that_fails_open_passes_from_then_on() {
    for (settings, after_trap) in
        [(FAIL_OPEN, DatagramVerdict::Pass), (ModuleSettings::default(), DatagramVerdict::Drop)]
    {
        let registry = registry_with_settings(DATAGRAMS, &settings);
        let mut worker = WorkerFilters::new(registry.clone());
        let mut flow = worker.open_datagram("test", &test_meta()).unwrap();
        assert_eq!(flow.datagram(false, b"fine"), DatagramVerdict::Pass);
        assert_eq!(flow.datagram(false, b"X"), after_trap);
        let records = flow.take_records();
        let record: serde_json::Value = serde_json::from_slice(&records[0]).unwrap();
        let expected = if after_trap == DatagramVerdict::Pass { "FORWARDED" } else { "ERROR" };
        assert_eq!(record["verdict"], expected, "{record}");
        if after_trap == DatagramVerdict::Pass {
            assert_eq!(flow.datagram(true, b"X reply"), DatagramVerdict::Pass);
            assert!(flow.take_records().is_empty(), "said once");
        }
    }
}

const RULES: porin_sdk::RuleSetId = porin_sdk::RuleSetId(porin_sdk::testing::TEST_RULE_SET);

fn meta_for(rule_set: u32) -> porin_sdk::ConnectionMeta {
    porin_sdk::ConnectionMeta { rule_set, ..test_meta() }
}

#[test]
fn a_rule_set_waits_unavailable_for_its_module_and_activates_when_it_loads() {
    let registry = Arc::new(FilterRegistry::new(config()));
    let mut worker = WorkerFilters::new(registry.clone());
    let pending = registry.install_rule_set(RULES, "test", "{}").expect("no module yet");
    assert_eq!(
        (pending.reason.as_str(), pending.fail_mode),
        ("filter module `test` is not loaded", FailMode::Closed)
    );
    assert_eq!(
        pending.to_string(),
        format!(
            "rule set {} of filter `test` is unavailable, its connections are refused: filter module `test` is not loaded",
            RULES.0
        )
    );
    let refused = registry.install_rule_set(porin_sdk::RuleSetId(2), "test", "!bad").unwrap();
    assert_eq!(refused.reason, "filter module `test` is not loaded");
    let err = worker.open_stream("test", &test_meta()).unwrap_err();
    assert_eq!(err.to_string(), "filter module `test` is not loaded");

    // Why it is not loaded shows in the reason and the status.
    registry.set_module_error("test", &ModuleSettings::default(), "sha256 mismatch");
    let err = worker.open_stream("test", &test_meta()).unwrap_err();
    assert_eq!(err.to_string(), "filter module `test` is not loaded: sha256 mismatch");
    assert_eq!(
        registry.module_status("test"),
        ModuleStatus { loaded: false, sha256: None, error: Some("sha256 mismatch".into()) }
    );
    let garbage = registry.load("test", b"\0asm nonsense").unwrap_err().to_string();
    assert_eq!(registry.module_status("test").error.as_deref(), Some(garbage.as_str()));

    // Loaded: the pending rule set it accepts filters; the one it refuses
    // stays unavailable with its message.
    let module = registry.load("test", &wat::parse_str(module(PASS_ALL)).unwrap()).unwrap();
    let status = registry.module_status("test");
    assert_eq!(status, ModuleStatus { loaded: true, sha256: Some(module.sha256.clone()), error: None });
    assert_eq!(registry.install_rule_set(RULES, "test", "{}"), None);
    let mut session = worker.open_stream("test", &test_meta()).unwrap();
    let mut wire = Wire::default();
    session.data(false, b"hello", false, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"hello");
    let err = worker.open_stream("test", &meta_for(2)).unwrap_err();
    assert_eq!(err.to_string(), "filter `test` rejected rule set 2: no such rules");
    let still = registry.install_rule_set(porin_sdk::RuleSetId(2), "test", "!bad").unwrap();
    assert_eq!(still.reason, "filter `test` rejected rule set 2: no such rules");
}

#[test]
fn a_module_that_fails_open_lets_its_rule_sets_pass_while_it_is_not_loaded() {
    let registry = Arc::new(FilterRegistry::new(config()));
    registry.set_module_error("test", &FAIL_OPEN, "fetch failed: 404");
    let unavailable = registry.install_rule_set(RULES, "test", "{}").unwrap();
    assert_eq!(unavailable.fail_mode, FailMode::Open);
    let mut worker = WorkerFilters::new(registry.clone());
    let mut session = worker.open_stream("test", &test_meta()).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&session.take_records()[0]).unwrap();
    assert_eq!(record["verdict"], "FORWARDED");
    assert_eq!(
        record["error"],
        "filter `test` failed open: filter module `test` is not loaded: fetch failed: 404"
    );
    let mut wire = Wire::default();
    session.data(false, b"unfiltered", true, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"unfiltered");
    // Refused rules are a policy problem: denied whatever the fail mode.
    registry.load_with("test", &wat::parse_str(module(PASS_ALL)).unwrap(), &FAIL_OPEN).unwrap();
    registry.install_rule_set(porin_sdk::RuleSetId(2), "test", "!bad").unwrap();
    assert!(worker.open_stream("test", &meta_for(2)).is_err());
}

#[test]
fn unloading_a_module_makes_its_rule_sets_unavailable() {
    let registry = registry_with(&module(PASS_ALL));
    assert_eq!(registry.install_rule_set(RULES, "test", "{}"), None);
    let mut worker = WorkerFilters::new(registry.clone());
    let mut open = worker.open_stream("test", &test_meta()).unwrap();
    assert!(registry.unload("test"));
    assert_eq!(registry.module_status("test"), ModuleStatus::default());
    let err = worker.open_stream("test", &test_meta()).unwrap_err();
    assert_eq!(err.to_string(), "filter module `test` is not loaded");
    let unavailable = registry.install_rule_set(RULES, "test", "{}").unwrap();
    assert_eq!(unavailable.reason, "filter module `test` is not loaded");
    // An open connection keeps its instance (which now holds no rule set,
    // so a real filter denies its next request).
    let mut wire = Wire::default();
    open.data(false, b"x", false, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"x");
}

#[test]
fn a_new_version_that_refuses_rules_in_force_is_not_loaded() {
    let registry = registry_with(&module(PASS_ALL));
    registry.install_rule_set(RULES, "test", "!x").unwrap_or_else(|| panic!("refused by the module"));
    assert_eq!(registry.install_rule_set(porin_sdk::RuleSetId(3), "test", "{}"), None);
    let old = registry.module("test").unwrap();
    // The new version refuses everything.
    let strict = module(PASS_ALL)
        .replace("(if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 33))", "(if (i32.const 1)");
    let err = registry.load("test", &wat::parse_str(&strict).unwrap()).unwrap_err().to_string();
    assert_eq!(
        err,
        "filter `test`: the new version refuses rule set 3, which the loaded version enforces (no such rules); the loaded version stays"
    );
    assert!(Arc::ptr_eq(&registry.module("test").unwrap(), &old));
    let status = registry.module_status("test");
    assert!(status.loaded && status.error.as_deref() == Some(err.as_str()), "{status:?}");
}
