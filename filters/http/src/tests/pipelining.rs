//! Answer order under pipelining, and errors while requests are outstanding.

use super::*;

const A: &[u8] = b"GET /public/a HTTP/1.1\r\nHost: a\r\n\r\n";
const B: &[u8] = b"GET /public/b HTTP/1.1\r\nHost: a\r\n\r\n";
const DENIED: &[u8] = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn denied_with_nothing_outstanding_is_answered_at_once() {
    let mut t = tester(PUBLIC);
    t.send(DENIED);
    assert_eq!(t.downstream(), FORBIDDEN);
    t.send(A).receive(&ok("a"));
    assert_eq!(t.downstream(), [FORBIDDEN, &ok("a")].concat());
}

#[test]
fn a_403_waits_for_a_streaming_response_body() {
    let mut t = tester(PUBLIC);
    t.send(&[A, DENIED, DENIED, B].concat());
    assert_eq!(t.upstream(), [A, B].concat());
    t.receive(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234");
    assert_eq!(t.downstream(), b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234");
    t.receive(b"56789");
    let first = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789";
    assert_eq!(t.downstream(), [&first[..], FORBIDDEN, FORBIDDEN].concat());
    t.receive(&ok("b"));
    assert_eq!(t.downstream(), [&first[..], FORBIDDEN, FORBIDDEN, &ok("b")].concat());
}

#[test]
fn a_403_waits_for_a_chunked_response() {
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    for split in SPLITS {
        let mut t = tester(PUBLIC);
        t.send(&[A, DENIED].concat());
        receive(&mut t, &chunked[..chunked.len() - 1], split);
        // The last CR waits with the filter for the end of the trailer section.
        assert_eq!(t.downstream(), &chunked[..chunked.len() - 2], "{split:?}");
        t.receive(b"\n");
        assert_eq!(t.downstream(), [&chunked[..], FORBIDDEN].concat(), "{split:?}");
    }
}

#[test]
fn interim_responses_do_not_release_a_queued_403() {
    let mut t = tester(PUBLIC);
    t.send(&[A, DENIED].concat());
    t.receive(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(t.downstream(), b"HTTP/1.1 100 Continue\r\n\r\n");
    t.receive(&ok("a"));
    assert_eq!(t.downstream(), [&b"HTTP/1.1 100 Continue\r\n\r\n"[..], &ok("a"), FORBIDDEN].concat());
}

#[test]
fn a_malformed_request_behind_outstanding_ones_is_answered_in_order() {
    let mut t = tester(PUBLIC);
    t.send(&[A, b"GET /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nxGET /public/b HTTP/1.1\r\n"].concat());
    assert_eq!(t.upstream(), A, "nothing after the error is forwarded");
    assert_eq!(t.downstream(), b"");
    assert_eq!(t.closed(), None);
    t.send(B);
    assert_eq!(t.upstream(), A);
    t.receive(&ok("a"));
    assert_eq!(t.downstream(), [&ok("a")[..], BAD_REQUEST].concat());
    assert_eq!(close_code(&t), Some(400));
}

#[test]
fn a_deferred_400_after_a_streaming_body_closes_when_the_client_leaves() {
    let mut t = tester(PUBLIC);
    t.send(&[A, b"garbage\r\n\r\n"].concat());
    t.receive(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab");
    t.receive(b"cd");
    // The body ended exactly with the data: the answer went out, the
    // connection closes at the next event.
    assert_eq!(
        t.downstream(),
        [&b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcd"[..], BAD_REQUEST].concat()
    );
    assert_eq!(t.closed(), None);
    t.send_end();
    assert_eq!(close_code(&t), Some(400));
}

#[test]
fn a_malformed_chunk_inside_a_forwarded_body_closes_without_a_misplaced_answer() {
    let mut t = tester(PUBLIC);
    t.send(A);
    t.send(b"POST /public/up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    // The answer would be taken for A's response: close instead.
    assert_eq!(t.downstream(), b"");
    assert_eq!(close_code(&t), Some(400));
    assert_eq!(records(&t, "REQUEST", "ERROR").len(), 1);
}

#[test]
fn denied_expect_continue_behind_outstanding_requests_closes_after_its_403() {
    let mut t = tester(PUBLIC);
    t.send(A);
    t.send(b"POST /admin HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(t.downstream(), b"");
    t.send(B);
    assert_eq!(t.upstream(), A, "nothing after it is read");
    t.receive(&ok("a"));
    assert_eq!(t.downstream(), [&ok("a")[..], FORBIDDEN].concat());
    assert_eq!(close_code(&t), Some(403));
}

#[test]
fn too_many_pipelined_requests_are_cut_off() {
    let mut t = tester(PUBLIC);
    let many: Vec<u8> = (0..MAX_PIPELINED + 5).flat_map(|_| A.iter().copied()).collect();
    t.send(&many);
    assert_eq!(t.upstream().len(), A.len() * MAX_PIPELINED);
    for _ in 0..MAX_PIPELINED {
        t.receive(&ok("x"));
    }
    assert!(t.downstream().ends_with(BAD_REQUEST));
    assert_eq!(close_code(&t), Some(400));
}

#[test]
fn a_client_leaving_inside_a_head_forwards_nothing() {
    let mut t = tester(PUBLIC);
    t.send(A).send(b"GET /public/b HTTP/1.1\r\nHo").send_end();
    assert_eq!(t.upstream(), A);
    assert_eq!(t.closed(), None);
    t.receive(&ok("a"));
    assert_eq!(t.downstream(), &ok("a")[..]);
}

#[test]
fn denied_bodies_are_dropped_past_the_buffer() {
    let mut t = tester(PUBLIC);
    t.send(b"POST /admin HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n");
    assert_eq!(t.downstream(), FORBIDDEN, "answered before the body arrives");
    for _ in 0..2000 {
        t.send(&[b'G'; 1000]);
    }
    t.send(A);
    assert_eq!(t.upstream(), A);
    assert_eq!(t.records().len(), 2);
}

#[test]
fn a_server_answering_early_during_an_upload_keeps_things_in_order() {
    let upload = b"POST /public/up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    let mut t = tester(PUBLIC);
    t.send(upload);
    t.receive(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n");
    t.send(b"0\r\n\r\n").send(A).receive(&ok("a"));
    assert_eq!(t.upstream(), [&upload[..], b"0\r\n\r\n", A].concat());
    assert_eq!(close_code(&t), None);

    // A malformed chunk after the early answer: nothing is outstanding, so
    // the 400 goes out.
    let mut t = tester(PUBLIC);
    t.send(upload);
    t.receive(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n");
    t.send(b"zz\r\n");
    assert!(t.downstream().ends_with(BAD_REQUEST));
    assert_eq!(close_code(&t), Some(400));
}
