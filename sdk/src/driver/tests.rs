use super::*;
use crate::testing::Wire;

/// A line protocol: each line is passed, lines starting with "x" are
/// dropped and answered with "no\n", "body N\n" passes N more bytes unseen.
fn lines(
    calls: &mut Vec<Vec<u8>>,
) -> impl FnMut(bool, bool, &[u8], &mut Vec<Op>) -> Result<(), DriverError> + '_ {
    move |_reply, _end, data: &[u8], ops: &mut Vec<Op>| {
        calls.push(data.to_vec());
        let Some(end) = data.iter().position(|b| *b == b'\n') else {
            ops.push(Op::More(1));
            return Ok(());
        };
        let line = &data[..=end];
        if line.starts_with(b"x") {
            ops.push(Op::Drop(line.len() as u64));
            ops.push(Op::Inject { reply: true, data: b"no\n".to_vec() });
        } else if let Some(n) = line.strip_prefix(b"body ") {
            let n: u64 = std::str::from_utf8(&n[..n.len() - 1]).unwrap().parse().unwrap();
            ops.push(Op::Pass(line.len() as u64 + n));
        } else {
            ops.push(Op::Pass(line.len() as u64));
        }
        Ok(())
    }
}

#[test]
fn more_buffers_until_enough_and_ops_apply_in_order() {
    let (mut wire, mut calls, mut driver) = (Wire::default(), Vec::new(), Driver::new(1024));
    let mut filter = lines(&mut calls);
    driver.data(false, b"hel", false, &mut filter, &mut wire).unwrap();
    driver.data(false, b"lo\nx-bad\nok\n", false, &mut filter, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"hello\nok\n");
    assert_eq!(wire.downstream, b"no\n");
    drop(filter);
    assert_eq!(
        calls,
        [b"hel".to_vec(), b"hello\nx-bad\nok\n".to_vec(), b"x-bad\nok\n".to_vec(), b"ok\n".to_vec()]
    );
}

#[test]
fn pass_beyond_the_buffer_streams_without_calling_the_filter() {
    let (mut wire, mut calls, mut driver) = (Wire::default(), Vec::new(), Driver::new(1024));
    let mut filter = lines(&mut calls);
    driver.data(false, b"body 10\n0123", false, &mut filter, &mut wire).unwrap();
    driver.data(false, b"45678", false, &mut filter, &mut wire).unwrap();
    driver.data(false, b"9next\n", false, &mut filter, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"body 10\n0123456789next\n");
    drop(filter);
    assert_eq!(calls, [b"body 10\n0123".to_vec(), b"next\n".to_vec()]);
    assert!(driver.is_drained(false));
}

#[test]
fn injects_after_a_long_pass_wait_for_it() {
    let mut driver = Driver::new(1024);
    let mut wire = Wire::default();
    let mut filter = |_: bool, _: bool, data: &[u8], ops: &mut Vec<Op>| {
        if data.starts_with(b"H") {
            ops.extend([Op::Pass(6), Op::Inject { reply: false, data: b"!".to_vec() }, Op::Drop(2)]);
        } else {
            ops.push(Op::Pass(data.len() as u64));
        }
        Ok(())
    };
    driver.data(false, b"Hel", false, &mut filter, &mut wire).unwrap();
    assert!(!driver.is_drained(false));
    driver.data(false, b"lo worldtail", false, &mut filter, &mut wire).unwrap();
    assert_eq!(wire.upstream, b"Hello !rldtail");
}

#[test]
fn no_progress_buffer_limit_and_filter_errors_close() {
    let mut wire = Wire::default();
    let mut stuck = |_: bool, _: bool, _: &[u8], _: &mut Vec<Op>| Ok(());
    assert_eq!(Driver::new(64).data(false, b"a", false, &mut stuck, &mut wire), Err(DriverError::NoProgress));
    let mut greedy = |_: bool, _: bool, _: &[u8], ops: &mut Vec<Op>| {
        ops.push(Op::More(100));
        Ok(())
    };
    assert_eq!(
        Driver::new(64).data(false, b"a", false, &mut greedy, &mut wire),
        Err(DriverError::BufferLimit(64))
    );
    let mut failing = |_: bool, _: bool, _: &[u8], ops: &mut Vec<Op>| {
        ops.push(Op::Error { code: 400, reason: "bad".into() });
        Ok(())
    };
    let err = Driver::new(64).data(false, b"a", false, &mut failing, &mut wire).unwrap_err();
    assert_eq!(err, DriverError::Filter { code: 400, reason: "bad".into() });
}

#[test]
fn end_of_stream_is_delivered_once_even_without_data() {
    let mut ends = Vec::new();
    let mut driver = Driver::new(64);
    let mut wire = Wire::default();
    let mut filter = |_: bool, end: bool, data: &[u8], ops: &mut Vec<Op>| {
        ends.push((end, data.len()));
        ops.push(Op::Pass(data.len() as u64));
        Ok(())
    };
    driver.data(true, b"abc", false, &mut filter, &mut wire).unwrap();
    driver.data(true, b"", true, &mut filter, &mut wire).unwrap();
    driver.data(true, b"", true, &mut filter, &mut wire).unwrap();
    assert_eq!(ends, [(false, 3), (true, 0)]);
    assert_eq!(wire.downstream, b"abc");
}
