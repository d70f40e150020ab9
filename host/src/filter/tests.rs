//! ABI conformance of the runtime, with hand-written hostile modules: each
//! must fail closed (connection closed, ERROR record) without harming the
//! runtime or other connections.

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
    let registry = Arc::new(FilterRegistry::new(config()));
    registry.load("test", &wat::parse_str(wat).expect("valid WAT")).expect("module loads");
    registry
}

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
    assert_eq!(missing.to_string(), "no filter named `nope` is loaded");
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
