//! The request smuggling corpus: one test per case, each with its outcome
//! and exactly the bytes that reach upstream. Every case also runs cut
//! into single bytes and random pieces: the outcome may not depend on how
//! the bytes arrive. Rules: GET and POST under /public/ allowed.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Forwarded, no answer from the filter.
    Pass,
    /// Answered 403, connection kept.
    Deny,
    /// Answered with this status and closed.
    Reject(i32),
}
use Outcome::*;

fn check(input: impl AsRef<[u8]>, outcome: Outcome, upstream: impl AsRef<[u8]>) {
    const EMPTY_OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let (input, upstream) = (input.as_ref(), upstream.as_ref());
    for split in SPLITS {
        let mut t = tester(PUBLIC);
        send(&mut t, input, split);
        assert_eq!(
            String::from_utf8_lossy(t.upstream()),
            String::from_utf8_lossy(upstream),
            "upstream bytes ({split:?})"
        );
        // The server answers every forwarded request, so that answers
        // queued behind them come out.
        let forwarded = records(&t, "REQUEST", "FORWARDED").len();
        for _ in 0..forwarded {
            t.receive(EMPTY_OK);
        }
        let (answer, code): (&[u8], _) = match outcome {
            Pass => (b"", None),
            Deny => (FORBIDDEN, None),
            Reject(400) => (BAD_REQUEST, Some(400)),
            Reject(431) => (HEADERS_TOO_LARGE, Some(431)),
            Reject(505) => (VERSION_NOT_SUPPORTED, Some(505)),
            Reject(other) => panic!("no canned answer for {other}"),
        };
        let downstream =
            String::from_utf8_lossy(t.downstream()).replace(std::str::from_utf8(EMPTY_OK).unwrap(), "");
        assert_eq!(downstream, String::from_utf8_lossy(answer), "answer ({split:?})");
        assert_eq!(close_code(&t), code, "close ({split:?}): {:?}", t.closed());
        assert_eq!(records(&t, "REQUEST", "DROPPED").len(), usize::from(outcome == Deny), "{split:?}");
        if let Some(code) = code {
            let errors = records(&t, "REQUEST", "ERROR");
            assert_eq!(errors.len(), 1, "{split:?}");
            assert_eq!(errors[0]["http.code"], code);
            assert!(errors[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
}

/// One test per case: `name: input => outcome, upstream;`.
macro_rules! corpus {
    ($($name:ident: $input:expr => $outcome:expr, $upstream:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check($input, $outcome, $upstream);
            }
        )*

        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

const GET_OK: &str = "GET /public/ok HTTP/1.1\r\nHost: a\r\n\r\n";
const POST: &str = "POST /public/upload HTTP/1.1\r\nHost: a\r\n";
const CHUNKED: &str = "POST /public/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

fn cat(parts: &[&str]) -> String {
    parts.concat()
}

/// `head` + `Content-Length` of `body` + `body`.
fn with_length(head: &str, body: &str) -> String {
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())
}

/// `head` (chunked) + `body` as one chunk + the last chunk.
fn with_chunk(head: &str, body: &str) -> String {
    format!("{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
}

const POST_ADMIN: &str = "POST /admin/x HTTP/1.1\r\nHost: a\r\n";

fn big_head() -> String {
    format!("GET /public/a HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD))
}

fn many_fields() -> String {
    let fields: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: {i}\r\n")).collect();
    format!("GET /public/a HTTP/1.1\r\nHost: a\r\n{fields}\r\n")
}

corpus! {
    // --- Content-Length and Transfer-Encoding together or repeated ---
    cl_then_te: cat(&[POST, "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", GET_OK]) => Reject(400), "";
    te_then_cl: cat(&[POST, "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG"]) => Reject(400), "";
    duplicate_cl_equal: cat(&[POST, "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"]) => Reject(400), "";
    duplicate_cl_different: cat(&[POST, "Content-Length: 5\r\nContent-Length: 50\r\n\r\nhello"]) => Reject(400), "";
    cl_list: cat(&[POST, "Content-Length: 5, 5\r\n\r\nhello"]) => Reject(400), "";
    cl_plus_sign: cat(&[POST, "Content-Length: +5\r\n\r\nhello"]) => Reject(400), "";
    cl_negative: cat(&[POST, "Content-Length: -1\r\n\r\n"]) => Reject(400), "";
    cl_space_inside: cat(&[POST, "Content-Length: 1 0\r\n\r\nhellohello"]) => Reject(400), "";
    cl_hex: cat(&[POST, "Content-Length: 0x5\r\n\r\nhello"]) => Reject(400), "";
    cl_trailing_space: cat(&[POST, "Content-Length: 5 \r\n\r\nhello"]) => Reject(400), "";
    cl_tab_before_value: cat(&[POST, "Content-Length:\t5\r\n\r\nhello"]) => Reject(400), "";
    cl_empty: cat(&[POST, "Content-Length: \r\n\r\n"]) => Reject(400), "";
    cl_overflow: cat(&[POST, "Content-Length: 99999999999999999999\r\n\r\n"]) => Reject(400), "";
    cl_above_i64: cat(&[POST, "Content-Length: 9223372036854775808\r\n\r\n"]) => Reject(400), "";
    cl_leading_zeros_accepted: cat(&[POST, "Content-Length: 005\r\n\r\nhello", GET_OK])
        => Pass, cat(&[POST, "Content-Length: 005\r\n\r\nhello", GET_OK]);

    // --- Transfer-Encoding variants ---
    te_chunked_identity: cat(&[POST, "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_gzip_chunked: cat(&[POST, "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_identity: cat(&[POST, "Transfer-Encoding: identity\r\n\r\n"]) => Reject(400), "";
    te_xchunked: cat(&[POST, "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_chunked_tab: cat(&[POST, "Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_tab_before: cat(&[POST, "Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_space_before_colon: cat(&[POST, "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_obs_fold: cat(&[POST, "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_twice: cat(&[POST, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]) => Reject(400), "";
    te_in_http10: "POST /public/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => Reject(400), "";
    te_upper_case_accepted: cat(&[POST, "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", GET_OK])
        => Pass, cat(&[POST, "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", GET_OK]);

    // --- line endings and bytes in the head ---
    bare_lf_everywhere: "GET /public/a HTTP/1.1\nHost: a\n\n" => Reject(400), "";
    bare_lf_in_one_header: "GET /public/a HTTP/1.1\r\nHost: a\nX: b\r\n\r\n" => Reject(400), "";
    bare_lf_blank_line: "GET /public/a HTTP/1.1\r\nHost: a\r\n\n" => Reject(400), "";
    bare_cr_in_header: "GET /public/a HTTP/1.1\r\nHost: a\rX-Injected: 1\r\n\r\n" => Reject(400), "";
    nul_in_header_value: "GET /public/a HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n" => Reject(400), "";
    nul_in_target: "GET /public/a\0 HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    del_in_header_value: "GET /public/a HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n" => Reject(400), "";
    space_before_colon: "GET /public/a HTTP/1.1\r\nHost : a\r\n\r\n" => Reject(400), "";
    obs_fold_header: "GET /public/a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n" => Reject(400), "";
    space_before_first_header: "GET /public/a HTTP/1.1\r\n Host: a\r\n\r\n" => Reject(400), "";
    header_without_colon: "GET /public/a HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n" => Reject(400), "";
    leading_empty_lines_dropped: cat(&["\r\n\r\n", GET_OK]) => Pass, GET_OK;

    // --- chunked bodies ---
    chunk_size_not_hex: cat(&[CHUNKED, "zz\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_size_empty: cat(&[CHUNKED, "\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_size_leading_space: cat(&[CHUNKED, " 5\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_size_trailing_space: cat(&[CHUNKED, "5 \r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_size_sign: cat(&[CHUNKED, "+5\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_size_17_digits: cat(&[CHUNKED, "00000000000000005\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_size_2_pow_63: cat(&[CHUNKED, "8000000000000000\r\n"]) => Reject(400), CHUNKED;
    chunk_size_overflow_u64: cat(&[CHUNKED, "1ffffffffffffffff\r\n"]) => Reject(400), CHUNKED;
    chunk_size_bare_lf: cat(&[CHUNKED, "5\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_extension_accepted: cat(&[CHUNKED, "5;name=value;flag;q=\"a b\"\r\nhello\r\n0\r\n\r\n", GET_OK])
        => Pass, cat(&[CHUNKED, "5;name=value;flag;q=\"a b\"\r\nhello\r\n0\r\n\r\n", GET_OK]);
    chunk_extension_bare_lf: cat(&[CHUNKED, "5;a\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_extension_bare_cr: cat(&[CHUNKED, "5;a\rb\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_extension_whitespace: cat(&[CHUNKED, "5 ;a=b\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_extension_empty_name: cat(&[CHUNKED, "5;=b\r\nhello\r\n0\r\n\r\n"]) => Reject(400), CHUNKED;
    chunk_missing_crlf_after_data: cat(&[CHUNKED, "5\r\nhelloX\r\n0\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "5\r\nhello"]);
    chunk_lf_only_after_data: cat(&[CHUNKED, "5\r\nhello\n0\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "5\r\nhello"]);
    chunk_data_longer_than_size: cat(&[CHUNKED, "3\r\nhello\r\n0\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "3\r\nhel"]);
    trailer_accepted: cat(&[CHUNKED, "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", GET_OK])
        => Pass, cat(&[CHUNKED, "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", GET_OK]);
    trailer_content_length: cat(&[CHUNKED, "0\r\nContent-Length: 40\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "0\r\n"]);
    trailer_transfer_encoding: cat(&[CHUNKED, "0\r\nTransfer-Encoding: chunked\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "0\r\n"]);
    trailer_host: cat(&[CHUNKED, "0\r\nHost: admin\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "0\r\n"]);
    trailer_obs_fold: cat(&[CHUNKED, "0\r\nX-A: 1\r\n 2\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "0\r\n"]);
    trailer_bare_lf: cat(&[CHUNKED, "0\r\nX-A: 1\n\r\n"]) => Reject(400), cat(&[CHUNKED, "0\r\n"]);
    trailer_request_line: cat(&[CHUNKED, "0\r\nGET /admin HTTP/1.1\r\n\r\n"]) => Reject(400), cat(&[CHUNKED, "0\r\n"]);

    // --- Host and request targets ---
    http11_missing_host: "GET /public/a HTTP/1.1\r\nX-A: b\r\n\r\n" => Reject(400), "";
    multiple_host: "GET /public/a HTTP/1.1\r\nHost: a\r\nHost: admin\r\n\r\n" => Reject(400), "";
    host_with_slash: "GET /public/a HTTP/1.1\r\nHost: a/admin\r\n\r\n" => Reject(400), "";
    host_with_userinfo: "GET /public/a HTTP/1.1\r\nHost: user@a\r\n\r\n" => Reject(400), "";
    http10_without_host_accepted: "GET /public/a HTTP/1.0\r\n\r\n" => Pass, "GET /public/a HTTP/1.0\r\n\r\n";
    absolute_form_host_mismatch: "GET http://admin/public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    absolute_form_port_mismatch: "GET http://a:80/public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    absolute_form_matching_host: "GET http://A/public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Pass, "GET http://A/public/a HTTP/1.1\r\nHost: a\r\n\r\n";
    absolute_form_path_is_enforced: "GET http://a/admin HTTP/1.1\r\nHost: a\r\n\r\n" => Deny, "";
    absolute_form_other_scheme: "GET ftp://a/public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    dot_segments: "GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    encoded_dot_segments: "GET /public/%2e%2E/admin HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    encoded_slash: "GET /public/..%2fadmin HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    backslash: "GET /public/..\\admin HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    fragment: "GET /public/a#/../../admin HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    bad_percent_encoding: "GET /public/%zz HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    non_ascii_target: "GET /public/caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    asterisk_outside_options: "GET * HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    relative_target: "GET public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    dots_in_query_are_fine: "GET /public/a?p=../x HTTP/1.1\r\nHost: a\r\n\r\n" => Pass, "GET /public/a?p=../x HTTP/1.1\r\nHost: a\r\n\r\n";
    connection_drops_content_length: cat(&[POST, "Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"]) => Reject(400), "";

    // --- request lines, versions, sizes ---
    request_line_garbage: "GARBAGE\r\n\r\n" => Reject(400), "";
    request_line_double_space: "GET  /public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    request_line_trailing_space: "GET /public/a HTTP/1.1 \r\nHost: a\r\n\r\n" => Reject(400), "";
    invalid_method: "G(T /public/a HTTP/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    http09: "GET /public/a\r\n\r\n" => Reject(400), "";
    version_lower_case: "GET /public/a http/1.1\r\nHost: a\r\n\r\n" => Reject(400), "";
    version_http12: "GET /public/a HTTP/1.2\r\nHost: a\r\n\r\n" => Reject(505), "";
    version_http20: "GET /public/a HTTP/2.0\r\nHost: a\r\n\r\n" => Reject(505), "";
    http2_preface_after_http1: cat(&[GET_OK, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]) => Reject(400), GET_OK;
    tls_client_hello: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" => Reject(400), "";
    oversized_head: big_head() => Reject(431), "";
    too_many_fields: many_fields() => Reject(431), "";

    // --- bodies hiding requests ---
    request_in_denied_body: cat(&[&with_length(POST_ADMIN, GET_OK), GET_OK]) => Deny, GET_OK;
    request_in_denied_chunked_body: cat(&[&with_chunk(POST_ADMIN, GET_OK), GET_OK]) => Deny, GET_OK;
    request_in_allowed_body: with_length(POST, GET_OK) => Pass, with_length(POST, GET_OK);
    request_in_allowed_chunked_body: with_chunk(POST, GET_OK) => Pass, with_chunk(POST, GET_OK);
    cl_shorter_than_body: cat(&[POST, "Content-Length: 3\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"])
        => Deny, cat(&[POST, "Content-Length: 3\r\n\r\nabc"]);
    cl_longer_than_body: cat(&[POST, "Content-Length: 50\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"])
        => Pass, cat(&[POST, "Content-Length: 50\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"]);
    body_on_get_is_framed: cat(&[&with_length("GET /public/a HTTP/1.1\r\nHost: a\r\n", GET_OK), GET_OK])
        => Pass, cat(&[&with_length("GET /public/a HTTP/1.1\r\nHost: a\r\n", GET_OK), GET_OK]);
    connect_is_denied: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" => Deny, "";
}

#[test]
fn corpus_is_large_enough() {
    assert!(CASES.len() >= 25, "{}", CASES.len());
}

/// The bytes of a denied request's body are never parsed, so a request
/// hidden inside it produces no record at all.
#[test]
fn hidden_requests_produce_no_records() {
    let mut t = tester(PUBLIC);
    t.send(with_length(POST_ADMIN, GET_OK).as_bytes());
    let methods: Vec<_> = t.records().iter().map(|r| (r["verdict"].clone(), r["http.url"].clone())).collect();
    assert_eq!(methods, [(serde_json::json!("DROPPED"), serde_json::json!("http://a/admin/x"))]);
}
