//! The Wasm exports of a filter, generic over its types. `export_filter!`
//! instantiates them; filter authors never call these.

use std::cell::RefCell;

use crate::abi::{self, ConnectionMeta};
use crate::driver::Op;
use crate::filter::{self, Connections, DatagramFilter, RuleSets, Rules, StreamFilter, Verdict};
use crate::sys::wasm;

fn fail(message: &str) -> i32 {
    wasm::set_error(message);
    1
}

pub fn buffer(len: i32) -> i32 {
    wasm::buffer(len.max(0) as usize) as i32
}

fn input(len: i32) -> &'static [u8] {
    wasm::input(len.max(0) as usize)
}

pub fn rules_set<R: Rules>(rules: &RefCell<RuleSets<R>>, id: i32, len: i32) -> i32 {
    let Ok(json) = std::str::from_utf8(input(len)) else { return fail("rules are not UTF-8") };
    match rules.borrow_mut().set(id as u32, json) {
        Ok(()) => 0,
        Err(message) => fail(&message),
    }
}

pub fn rules_remove<R: Rules>(rules: &RefCell<RuleSets<R>>, id: i32) {
    rules.borrow_mut().remove(id as u32);
}

fn open<F>(connections: &RefCell<Connections<F>>, id: i32, len: i32, new: fn(&ConnectionMeta) -> F) -> i32 {
    match ConnectionMeta::decode(input(len)) {
        Ok(meta) => {
            let filter = new(&meta);
            connections.borrow_mut().insert(id as u32, meta, filter);
            0
        }
        Err(err) => fail(err.0),
    }
}

pub fn stream_open<S: StreamFilter>(connections: &RefCell<Connections<S>>, id: i32, len: i32) -> i32 {
    open(connections, id, len, S::new)
}

pub fn stream_data<S: StreamFilter>(
    rules: &RefCell<RuleSets<S::Rules>>,
    connections: &RefCell<Connections<S>>,
    id: i32,
    flags: i32,
    len: i32,
) -> i32 {
    // The connection is out of the table during the call: if the filter
    // traps, only this connection's state is lost.
    let Some((meta, mut state)) = connections.borrow_mut().take(id as u32) else {
        return fail("unknown connection");
    };
    let rules_now = rules.borrow().get(meta.rule_set);
    let reply = flags & abi::flags::REPLY != 0;
    let end = flags & abi::flags::END_STREAM != 0;
    let out = if flags & abi::flags::UPSTREAM_FAILED != 0 {
        filter::stream_upstream_failure(&mut state, &meta, rules_now.as_deref())
    } else {
        filter::stream_data(&mut state, &meta, rules_now.as_deref(), reply, end, input(len))
    };
    wasm::emit(&out);
    connections.borrow_mut().insert(id as u32, meta, state);
    0
}

pub fn stream_close<S: StreamFilter>(
    rules: &RefCell<RuleSets<S::Rules>>,
    connections: &RefCell<Connections<S>>,
    id: i32,
) {
    if let Some((meta, mut state)) = connections.borrow_mut().take(id as u32) {
        let rules_now = rules.borrow().get(meta.rule_set);
        wasm::emit(&filter::stream_close(&mut state, &meta, rules_now.as_deref()));
    }
}

pub fn datagram_open<D: DatagramFilter>(connections: &RefCell<Connections<D>>, id: i32, len: i32) -> i32 {
    open(connections, id, len, D::new)
}

pub fn datagram<D: DatagramFilter>(
    rules: &RefCell<RuleSets<D::Rules>>,
    connections: &RefCell<Connections<D>>,
    id: i32,
    flags: i32,
    len: i32,
) -> i32 {
    let Some((meta, mut state)) = connections.borrow_mut().take(id as u32) else { return -1 };
    let rules_now = rules.borrow().get(meta.rule_set);
    let reply = flags & abi::flags::REPLY != 0;
    let (verdict, mut out) = filter::datagram(&mut state, &meta, rules_now.as_deref(), reply, input(len));
    let code = match verdict {
        Verdict::Pass => abi::datagram::PASS,
        Verdict::Drop => abi::datagram::DROP,
        Verdict::Reply(data) => {
            out.ops.push(Op::Inject { reply: true, data });
            abi::datagram::REPLY
        }
    };
    wasm::emit(&out);
    connections.borrow_mut().insert(id as u32, meta, state);
    code
}

pub fn datagram_close<D: DatagramFilter>(connections: &RefCell<Connections<D>>, id: i32) {
    connections.borrow_mut().take(id as u32);
}
