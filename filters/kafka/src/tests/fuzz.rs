//! Deterministic mutation fuzzing over the captured corpus: the filter
//! must never panic, whatever the bytes, chunking or rules.

use super::*;
use crate::fuzz_one;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x0f, 0x40];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        if data.is_empty() {
            data.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(data.len());
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => data[at] = rng.next() as u8,
            3 => data.truncate(at),
            4 => {
                let n = rng.below(8) + 1;
                data.drain(at..(at + n).min(data.len()));
            }
            5 => {
                let bytes: Vec<u8> = (0..rng.below(8) + 1).map(|_| INTERESTING[rng.below(8)]).collect();
                data.splice(at..at, bytes);
            }
            _ => {
                // Duplicate a slice elsewhere (repeated frames, spliced sizes).
                let end = (at + rng.below(64) + 1).min(data.len());
                let chunk = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, chunk);
            }
        }
    }
}

const RULES: [&str; 5] = [
    ALLOW_ALL,
    r#"{"kafka":[{"role":"produce","topic":"orders"},{"role":"consume","topic":"orders"}]}"#,
    r#"{"kafka":[{"role":"consume"},{"apiKey":"apiversions","clientID":"porin-consumer"}]}"#,
    r#"{"kafka":[{"apiKey":"metadata","apiVersion":"12"}]}"#,
    r#"{"kafka":[]}"#,
];

#[test]
fn mutated_captures_never_panic() {
    let corpus = sessions();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let iterations = 20_000;
    let (mut closed, mut ok) = (0, 0);
    for i in 0..iterations {
        let (_, client, server) = &corpus[rng.below(corpus.len())];
        let (mut client, mut server) = (client.clone(), server.clone());
        match rng.below(3) {
            0 => mutate(&mut rng, &mut client),
            1 => mutate(&mut rng, &mut server),
            _ => {
                mutate(&mut rng, &mut client);
                mutate(&mut rng, &mut server);
            }
        }
        let mut t = tester(RULES[rng.below(RULES.len())]);
        // One-byte chunks are slow in debug builds: use them sparingly.
        let chunk = if rng.below(16) == 0 { 1 } else { [5, 64, 4096][rng.below(3)] };
        // Interleave the two directions in chunks.
        let (mut c, mut s) = (&client[..], &server[..]);
        while !c.is_empty() || !s.is_empty() {
            if !c.is_empty() && (s.is_empty() || rng.below(2) == 0) {
                let n = chunk.min(c.len());
                t.send(&c[..n]);
                c = &c[n..];
            } else {
                let n = chunk.min(s.len());
                t.receive(&s[..n]);
                s = &s[n..];
            }
            if i % 7 == 0 && rng.below(50) == 0 {
                t.remove_rules();
            }
        }
        t.send_end().receive_end();
        if t.closed().is_some() {
            closed += 1
        } else {
            ok += 1
        }
        if i % 8 == 0 {
            let mut raw = client;
            raw.insert(0, rng.next() as u8);
            fuzz_one(&raw);
        }
    }
    // Both outcomes occur: mutations are neither all harmless nor all fatal.
    assert!(closed > 1000 && ok > 300, "closed {closed}, ok {ok}");
}

#[test]
fn fuzz_one_handles_edge_inputs() {
    for input in [&b""[..], b"\0", b"\xff\xff\xff\xff\xff", b"\x07\0\0\0\x08\0\0\0\0\0\0\0\0"] {
        fuzz_one(input);
    }
}
