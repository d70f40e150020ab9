//! A Redis filter in one file: it enforces which commands, on which keys,
//! clients may send to a Redis server (RESP2 and RESP3).
//!
//! Policy: `rules: {l7proto: redis, l7: [{command: GET, key: "public:*"}, {command: PING}]}`.
//!
//! Each rule is a map with two optional fields (any other field is refused):
//! * `command`: a command name, any case; absent: every command;
//! * `key`: a glob over the command's keys (`*` any run of bytes, `?` any one
//!   byte); absent: every key.
//!
//! A command is allowed when each of its keys is allowed by a rule whose
//! `command` matches, so `MGET a b` and `MSET a 1 b 2` need every key allowed.
//! A command without keys (PING, INFO) needs a matching rule without `key`;
//! so does a command whose keys this filter does not locate (see
//! [`key_spec`]): key rules fail closed. `{}` allows everything; a removed
//! rule set denies everything.
//!
//! A denied command never reaches the server: the client gets
//! `-NOPERM this command is not allowed by policy`, in order: when earlier
//! commands still await replies, the error waits behind them. Replies are
//! paired with commands one for one, which RESP2 pub/sub, MONITOR and
//! `CLIENT REPLY OFF` break; there an error may arrive early or late. Inside
//! MULTI, a denied command is left out of the transaction (EXEC runs the rest).
//!
//! Commands must be RESP arrays of bulk strings, as every client sends them;
//! inline commands (typed into telnet) close the connection, blank lines
//! (which `redis-cli --pipe` sends) pass. The arguments up to the last key
//! must fit in 512 KiB; values after it, and replies, stream through in
//! pieces. (`redis-cli --pipe` ends with an ECHO: allow `{command: ECHO}`.)
//!
//! Build: cargo build -p porin-sdk --example redis_filter --profile wasm --target wasm32-unknown-unknown
//! Test:  cargo test -p porin-sdk --example redis_filter

// Natively this file is a library for its tests: the exports exist only on wasm32.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::collections::VecDeque;

use porin_sdk::{
    ConnectionMeta, Record, RecordVerdict, Rules, Stream, StreamFilter, export_filter, from_json,
};
use serde::Deserialize;

/// The answer to a denied command; redis-cli prints `(error) NOPERM ...`.
const DENIED: &[u8] = b"-NOPERM this command is not allowed by policy\r\n";
/// Longest header line (`*3`, `$5`, `+OK`...) worth buffering.
const MAX_LINE: usize = 64 * 1024;
/// Most bytes buffered to decide a command: its arguments up to the last key.
const MAX_DECIDE: usize = 512 * 1024;
/// Commands or replies handled per call, to stay well within the ABI's
/// per-call op and record limits; the host calls again for the rest.
const BATCH: usize = 1000;

#[derive(Deserialize)]
struct RedisRules {
    l7: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)] // a typo must not silently widen the policy
struct Rule {
    command: Option<String>,
    key: Option<String>,
}

impl Rules for RedisRules {
    fn parse(json: &str) -> Result<Self, String> {
        from_json(json)
    }
}

impl RedisRules {
    fn allows(&self, command: &str, keys: &[&[u8]]) -> bool {
        let mut rules =
            self.l7.iter().filter(|r| r.command.as_ref().is_none_or(|c| c.eq_ignore_ascii_case(command)));
        if keys.is_empty() {
            return rules.any(|r| r.key.is_none());
        }
        let allowed =
            |key: &&[u8]| rules.clone().any(|r| r.key.as_ref().is_none_or(|g| glob(g.as_bytes(), key)));
        keys.iter().all(allowed)
    }
}

/// `*` matches any run of bytes, `?` any one byte, anything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the end of what it matches: on a mismatch, it
    // swallows one more byte and matching resumes after it.
    let mut star = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => {
                let Some((s, end)) = star else { return false };
                star = Some((s, end + 1));
                p = s + 1;
                t = end + 1;
            }
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Where a command's keys are, as Redis' classic key spec: (first key
/// argument, last (negative: counted from the end), step). Commands that
/// are absent have no keys, or keys a fixed spec cannot locate (EVAL,
/// SORT ... STORE, ZUNIONSTORE, XREAD, OBJECT).
fn key_spec(command: &str) -> Option<(usize, isize, usize)> {
    const SPECS: &[(&str, (usize, isize, usize))] = &[
        (
            "GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND STRLEN INCR DECR INCRBY DECRBY \
             INCRBYFLOAT GETRANGE SETRANGE GETBIT SETBIT BITCOUNT BITPOS EXPIRE PEXPIRE EXPIREAT \
             PEXPIREAT TTL PTTL PERSIST TYPE HGET HSET HSETNX HMSET HMGET HDEL HLEN HKEYS HVALS \
             HGETALL HEXISTS HINCRBY HSCAN LPUSH RPUSH LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM \
             SADD SREM SMEMBERS SISMEMBER SCARD SPOP SRANDMEMBER SSCAN ZADD ZREM ZSCORE ZINCRBY \
             ZCARD ZCOUNT ZRANGE ZRANGEBYSCORE ZREVRANGE ZRANK ZREVRANK ZSCAN PFADD XADD XLEN XRANGE",
            (1, 1, 1),
        ),
        (
            "MGET DEL UNLINK EXISTS TOUCH WATCH SINTER SUNION SDIFF SINTERSTORE SUNIONSTORE PFCOUNT",
            (1, -1, 1),
        ),
        ("MSET MSETNX", (1, -1, 2)),
        ("RENAME RENAMENX COPY SMOVE LMOVE RPOPLPUSH BLMOVE BRPOPLPUSH", (1, 2, 1)),
        ("BLPOP BRPOP BZPOPMIN BZPOPMAX", (1, -2, 1)),
        ("BITOP", (2, -1, 1)),
    ];
    SPECS.iter().find(|(names, _)| names.split_whitespace().any(|n| n == command)).map(|&(_, spec)| spec)
}

/// The indexes of a command's keys among its `argc` arguments.
fn key_indexes(command: &str, argc: usize) -> impl Iterator<Item = usize> {
    let (first, last, step) = key_spec(command).unwrap_or((1, 0, 1)); // no keys: an empty range
    let last = if last < 0 { argc as isize + last } else { last.min(argc as isize - 1) };
    (first as isize..=last).step_by(step).map(|i| i as usize)
}

/// One RESP header line at the front of `data`: `*2`, `$5`, `+OK`, `%1`...
struct Header {
    kind: u8,
    len: usize,
    /// The bulk body that follows (with its CRLF).
    body: u64,
    /// The frames nested in it.
    children: u64,
}

/// `Ok(None)`: the line is not complete yet.
fn header(data: &[u8]) -> Result<Option<Header>, String> {
    let line = &data[..data.len().min(MAX_LINE)];
    let Some(end) = line.windows(2).position(|w| w == b"\r\n") else {
        return if line.len() < MAX_LINE { Ok(None) } else { Err("header line too long".into()) };
    };
    if end == 0 {
        return Err("empty header line".into());
    }
    let text = String::from_utf8_lossy(&data[1..end]);
    let length = || match text.parse::<i64>() {
        Ok(-1) => Ok(None), // null
        Ok(n) if n >= 0 => Ok(Some(n as u64)),
        _ => Err(format!("bad length {text:?}")),
    };
    let (body, children) = match data[0] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => (0, 0),
        b'$' | b'!' | b'=' => (length()?.map_or(0, |n| n + 2), 0),
        b'*' | b'~' | b'>' => (0, length()?.unwrap_or(0)),
        b'%' => (0, 2 * length()?.unwrap_or(0)),
        b'|' => (0, 2 * length()?.unwrap_or(0) + 1), // an attribute, then the value it describes
        other => return Err(format!("unexpected type byte {:?}", other as char)),
    };
    Ok(Some(Header { kind: data[0], len: end + 2, body, children }))
}

/// Follows the frames of one message across calls, so that bulk bodies
/// stream through in pieces instead of being buffered whole. It sees every
/// piece (no PASS past the buffer): a queued denial may only be sent once
/// the reply before it has passed completely.
#[derive(Default)]
struct Walker {
    /// Frames of the message still to come.
    frames: u64,
    /// Bytes of the current bulk body still to come.
    body: u64,
}

impl Walker {
    /// Walks the front of `data`; returns the bytes walked and whether the
    /// message is complete (if not, all of `data` is needed first).
    fn walk(&mut self, data: &[u8]) -> Result<(usize, bool), String> {
        let mut at = 0;
        loop {
            let take = self.body.min((data.len() - at) as u64);
            (self.body, at) = (self.body - take, at + take as usize);
            if self.body > 0 || self.frames == 0 {
                return Ok((at, self.body == 0));
            }
            let Some(h) = header(&data[at..])? else { return Ok((at, false)) };
            let frames = (self.frames - 1).checked_add(h.children).ok_or("too many elements")?;
            (self.frames, self.body, at) = (frames, h.body, at + h.len);
        }
    }
}

/// A command parsed up to its last key.
struct Command<'a> {
    name: String,
    keys: Vec<&'a [u8]>,
    /// Bytes parsed.
    len: usize,
    /// Arguments after the last key.
    rest: u64,
}

/// `Ok(None)`: the command is not complete up to its last key yet.
fn parse_command(data: &[u8]) -> Result<Option<Command<'_>>, String> {
    let incomplete =
        || if data.len() < MAX_DECIDE { Ok(None) } else { Err("command keys beyond 512 KiB".into()) };
    if data[0] != b'*' {
        return Err("inline commands are not supported (send RESP arrays)".into());
    }
    let Some(array) = header(data)? else { return incomplete() };
    let argc = match array.children {
        0 => return Err("empty command".into()),
        n => usize::try_from(n).ok().filter(|&n| n <= i32::MAX as usize).ok_or("too many arguments")?,
    };
    let (mut args, mut name, mut needed, mut at) = (Vec::new(), String::new(), 1, array.len);
    while args.len() < needed {
        let Some(arg) = header(&data[at..])? else { return incomplete() };
        if arg.kind != b'$' || arg.body < 2 {
            return Err("command arguments must be bulk strings".into());
        }
        let end = (at + arg.len) as u64 + arg.body;
        if end > data.len() as u64 {
            return incomplete();
        }
        args.push(&data[at + arg.len..end as usize - 2]);
        at = end as usize;
        if args.len() == 1 {
            name = String::from_utf8_lossy(args[0]).to_ascii_uppercase();
            needed = key_indexes(&name, argc).last().map_or(1, |last| last + 1);
        }
    }
    let keys = key_indexes(&name, argc).map(|i| args[i]).collect();
    Ok(Some(Command { name, keys, len: at, rest: (argc - needed) as u64 }))
}

/// What the client is owed, in order.
enum Owed {
    /// A forwarded command: the server answers.
    Reply,
    /// A denied command: the filter answers, once the replies before it passed.
    Denial,
}

#[derive(Default)]
struct RedisFilter {
    /// Never starts with a `Denial`: denials are sent when nothing is ahead.
    owed: VecDeque<Owed>,
    /// The arguments after the last key of the current command, and
    /// whether they are forwarded (else discarded).
    tail: Walker,
    forward_tail: bool,
    /// The current reply, and whether it is a RESP3 push (not an answer).
    reply: Walker,
    push: bool,
}

impl StreamFilter for RedisFilter {
    type Rules = RedisRules;

    fn new(_meta: &ConnectionMeta) -> Self {
        RedisFilter::default()
    }

    fn on_data(&mut self, stream: &mut Stream<'_, RedisRules>, reply: bool, _end: bool, data: &[u8]) {
        let result = if reply { self.replies(stream, data) } else { self.commands(stream, data) };
        match result {
            Ok(true) => stream.more(1),
            Ok(false) => {}
            Err(reason) => {
                let record = if reply { Record::response } else { Record::request };
                stream.record(record(RecordVerdict::Error).str("error", &reason));
                stream.error(1, reason); // malformed: the two sides may disagree on framing, so close
            }
        }
    }
}

// Both directions return whether they need more bytes.
impl RedisFilter {
    fn commands(&mut self, stream: &mut Stream<'_, RedisRules>, data: &[u8]) -> Result<bool, String> {
        let mut at = 0;
        for _ in 0..BATCH {
            // Finish the previous command: its arguments after the last key.
            let (len, done) = self.tail.walk(&data[at..])?;
            match len {
                0 => {}
                _ if self.forward_tail => stream.pass(len as u64),
                _ => stream.discard(len as u64),
            }
            at += len;
            let rest = &data[at..];
            if !done || rest.is_empty() {
                return Ok(!done);
            }
            // Blank lines are no-ops for Redis (redis-cli --pipe sends one).
            let blank = match rest {
                [b'\r'] => return Ok(true), // perhaps the start of one
                [b'\r', b'\n', ..] => 2,
                [b'\n', ..] => 1,
                _ => 0,
            };
            if blank > 0 {
                stream.pass(blank as u64);
                at += blank;
                continue;
            }
            let Some(command) = parse_command(rest)? else { return Ok(true) };
            let allowed = stream.rules().is_some_and(|rules| rules.allows(&command.name, &command.keys));
            let keys: Vec<_> = command.keys.iter().map(|k| String::from_utf8_lossy(k)).collect();
            let verdict = if allowed { RecordVerdict::Forwarded } else { RecordVerdict::Dropped };
            stream.record(
                Record::request(verdict)
                    .str("redis.command", &command.name)
                    .strs("redis.keys", keys.iter().map(|k| k.as_ref())),
            );
            if allowed {
                stream.pass(command.len as u64);
                self.owed.push_back(Owed::Reply);
            } else {
                stream.discard(command.len as u64);
                if self.owed.is_empty() {
                    stream.reply(DENIED);
                } else {
                    self.owed.push_back(Owed::Denial);
                }
            }
            (self.tail.frames, self.forward_tail, at) = (command.rest, allowed, at + command.len);
        }
        Ok(false)
    }

    fn replies(&mut self, stream: &mut Stream<'_, RedisRules>, data: &[u8]) -> Result<bool, String> {
        let (mut at, mut passed, mut more) = (0, 0, false);
        for _ in 0..BATCH {
            if at == data.len() {
                break;
            }
            if self.reply.frames == 0 && self.reply.body == 0 {
                (self.reply.frames, self.push) = (1, data[at] == b'>');
            }
            let (len, done) = self.reply.walk(&data[at..])?;
            at += len;
            if !done {
                more = true;
                break;
            }
            if self.push {
                continue;
            }
            self.owed.pop_front();
            let mut denials = Vec::new();
            while let Some(Owed::Denial) = self.owed.front() {
                self.owed.pop_front();
                denials.extend_from_slice(DENIED);
            }
            if !denials.is_empty() {
                stream.pass((at - passed) as u64);
                stream.inject(denials);
                passed = at;
            }
        }
        if at > passed {
            stream.pass((at - passed) as u64);
        }
        Ok(more)
    }
}

export_filter!(rules = RedisRules, stream = RedisFilter);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}

#[cfg(test)]
mod tests {
    use porin_sdk::testing::StreamTester;

    use super::*;

    /// A real redis-cli session (see capture.py): what it sent, what the server answered.
    macro_rules! capture {
        ($name:literal) => {
            (
                &include_bytes!(concat!("../../tests/fixtures/redis/", $name, ".client.bin"))[..],
                &include_bytes!(concat!("../../tests/fixtures/redis/", $name, ".server.bin"))[..],
            )
        };
    }

    fn filter(l7: &str) -> StreamTester<RedisFilter> {
        StreamTester::new(&format!(r#"{{"l7proto":"redis","l7":{l7}}}"#)).unwrap()
    }

    fn field(t: &StreamTester<RedisFilter>, name: &str) -> Vec<String> {
        t.records().iter().map(|r| r[name].as_str().unwrap_or_default().to_string()).collect()
    }

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend([format!("${}\r\n", arg.len()).as_bytes(), arg, b"\r\n"].concat());
        }
        out
    }

    #[test]
    fn rule_language() {
        let json = r#"{"l7":[{"command":"get","key":"public:*"},{"command":"MGET","key":"a?"},
            {"command":"MGET","key":"b*"},{"command":"PING"}]}"#;
        let rules = RedisRules::parse(json).unwrap();
        let allows = |command, keys: &[&str]| {
            rules.allows(command, &keys.iter().map(|k| k.as_bytes()).collect::<Vec<_>>())
        };
        assert!(allows("GET", &["public:x"]));
        assert!(!allows("GET", &["secret"]) && !allows("SET", &["public:x"]));
        assert!(allows("MGET", &["a1", "bee"])); // each key by some rule
        assert!(!allows("MGET", &["a1", "c"]) && !allows("MGET", &["a12"]));
        assert!(allows("PING", &[]) && !allows("INFO", &[]));
        assert!(!allows("GET", &[])); // a key rule needs a key
        let err = RedisRules::parse(r#"{"l7":[{"command":"GET","keys":"x"}]}"#).err().unwrap();
        assert!(err.contains("unknown field `keys`"), "{err}");
        assert!(glob(b"a*b?c*", b"axxbbyc") && !glob(b"a*b", b"abc") && glob(b"*", b""));
        assert_eq!(key_indexes("MSET", 5).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(key_indexes("BLPOP", 4).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(key_indexes("EVAL", 4).count(), 0);
    }

    #[test]
    fn pipelined_denials_wait_for_earlier_replies() {
        let ((set, ok), (get, hello)) = (capture!("set_public"), capture!("get_public"));
        let (get_secret, mget, ping) =
            (capture!("get_secret").0, capture!("mget_mixed").0, capture!("ping").0);
        let mut t = filter(
            r#"[{"command":"SET","key":"public:*"},{"command":"GET","key":"public:*"},
            {"command":"MGET","key":"public:*"}]"#,
        );
        for byte in [set, get_secret, get, mget, ping].concat().chunks(1) {
            t.send(byte);
        }
        assert_eq!(t.upstream(), [set, get].concat());
        assert_eq!(t.downstream(), b"");
        t.receive(ok);
        assert_eq!(t.downstream(), [ok, DENIED].concat());
        t.receive(hello);
        assert_eq!(t.downstream(), [ok, DENIED, hello, DENIED, DENIED].concat());
        assert_eq!(field(&t, "redis.command"), ["SET", "GET", "GET", "MGET", "PING"]);
        assert_eq!(field(&t, "verdict"), ["FORWARDED", "DROPPED", "FORWARDED", "DROPPED", "DROPPED"]);
        assert_eq!(t.records()[3]["redis.keys"], serde_json::json!(["public:greeting", "secret:token"]));
    }

    #[test]
    fn captured_pipeline_passes_byte_exact_in_any_chunks() {
        let (client, server) = capture!("pipe");
        for size in [1, 7, usize::MAX] {
            let mut t = filter("[{}]");
            for chunk in client.chunks(size) {
                t.send(chunk);
            }
            for chunk in server.chunks(size) {
                t.receive(chunk);
            }
            assert_eq!((t.upstream(), t.downstream()), (client, server));
            assert_eq!(field(&t, "redis.command"), ["SET", "INCR", "GET", "MGET", "ECHO"]);
        }
    }

    #[test]
    fn resp3_replies_and_pushes_keep_denials_in_order() {
        let ((client, server), get_secret) = (capture!("hgetall_resp3"), capture!("get_secret").0);
        let mut t = filter(r#"[{"command":"HELLO"},{"command":"HGETALL","key":"public:*"}]"#);
        t.send(&[client, get_secret].concat());
        assert_eq!(t.upstream(), client);
        let push = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"; // not an answer to a command
        t.receive(push);
        for byte in server.chunks(1) {
            assert!(server.starts_with(&t.downstream()[push.len()..]), "no denial inside the reply");
            t.receive(byte);
        }
        assert_eq!(t.downstream(), [&push[..], server, DENIED].concat());
    }

    #[test]
    fn replaced_rules_apply_to_the_next_command() {
        let (get_secret, token) = capture!("get_secret");
        let mut t = filter(r#"[{"command":"GET","key":"public:*"}]"#);
        t.send(get_secret);
        t.set_rules(r#"{"l7proto":"redis","l7":[{"key":"secret:*"}]}"#).unwrap();
        t.send(get_secret).receive(token);
        t.remove_rules();
        t.send(get_secret);
        assert_eq!(t.upstream(), get_secret);
        assert_eq!(t.downstream(), [DENIED, token, DENIED].concat());
    }

    #[test]
    fn large_values_stream_through() {
        let value = vec![b'v'; 3 << 20]; // larger than the 1 MiB the host buffers
        let commands = [
            resp(&[b"SET", b"public:big", &value]),
            resp(&[b"GET", b"public:big"]),
            resp(&[b"SET", b"secret:big", &value]),
        ];
        let reply = [&b"+OK\r\n"[..], format!("${}\r\n", value.len()).as_bytes(), &value, b"\r\n"].concat();
        let mut t = filter(r#"[{"key":"public:*"}]"#);
        for chunk in commands.concat().chunks(64 << 10) {
            t.send(chunk);
        }
        assert_eq!(t.upstream(), commands[..2].concat());
        for chunk in reply.chunks(64 << 10) {
            t.receive(chunk);
        }
        assert_eq!(t.downstream(), [&reply[..], DENIED].concat());
        assert!(t.closed().is_none());
    }

    #[test]
    fn malformed_input_closes_the_connection() {
        let huge = resp(&[b"MSET", b"a", &[b'v'; 600 << 10], b"b", b"c"]); // keys after 512 KiB
        for bad in
            [&b"GET x\r\n"[..], b"*1\r\n:5\r\n", b"*x\r\n", b"*0\r\n", b"*1\r\n$-1\r\n", &huge[..600 << 10]]
        {
            let mut t = filter("[{}]");
            t.send(bad);
            assert!(t.closed().is_some() && t.upstream().is_empty(), "{:?}", &bad[..bad.len().min(20)]);
            assert_eq!(field(&t, "verdict"), ["ERROR"]);
        }
        let mut t = filter("[{}]");
        t.send(capture!("ping").0).receive(b"?\r\n");
        assert!(t.closed().is_some());
    }
}
