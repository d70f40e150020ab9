//! A deterministic mutation loop over the captured traffic: no panic, and
//! hickory round-trips every message the filter accepts (the invariants
//! live in [`crate::fuzz_one`], which the cargo-fuzz target calls too).

use super::{all_fixtures, frames};
use crate::fuzz_one;
use crate::message;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Bytes that tend to matter in DNS: label and pointer markers, counts,
/// type codes.
const INTERESTING: &[u8] = &[0x00, 0x01, 0x02, 0x05, 0x0c, 0x1c, 0x29, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len());
        match rng.below(10) {
            0 if !input.is_empty() => input[at] ^= 1 << rng.below(8),
            1 if !input.is_empty() => input[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 if !input.is_empty() => input[at] = rng.next() as u8,
            3 => input.insert(at.min(input.len()), rng.next() as u8),
            4 if !input.is_empty() => {
                input.remove(at);
            }
            5 => input.truncate(rng.below(input.len() + 1)),
            6 if input.len() >= 12 => {
                // A header count (questions, answers, authorities, additionals).
                let field = 4 + 2 * rng.below(4);
                let value = [0u16, 1, 2, 3, 0x7fff, 0xffff][rng.below(6)];
                input[field..field + 2].copy_from_slice(&value.to_be_bytes());
            }
            7 if input.len() >= 2 => {
                // A compression pointer somewhere.
                let at = rng.below(input.len() - 1);
                let target = rng.below(input.len() + 16) as u16 | 0xc000;
                input[at..at + 2].copy_from_slice(&target.to_be_bytes());
            }
            8 => {
                // Splice in a piece of another message.
                let other = &corpus[rng.below(corpus.len())];
                let start = rng.below(other.len());
                let end = start + rng.below(other.len() - start + 1);
                let at = at.min(input.len());
                input.splice(at..at, other[start..end].iter().copied());
            }
            _ if input.len() >= 4 => {
                // Duplicate a chunk in place.
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(16)).min(input.len());
                let chunk = input[start..end].to_vec();
                input.splice(end..end, chunk);
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

#[test]
fn mutated_traffic_never_panics_and_round_trips() {
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for (name, data) in all_fixtures() {
        if name.starts_with("tcp-") {
            corpus.extend(frames(&data).into_iter().map(<[u8]>::to_vec));
        }
        corpus.push(data);
    }
    for data in &corpus {
        fuzz_one(data);
    }
    let iterations = if cfg!(debug_assertions) { 20_000 } else { 200_000 };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..iterations {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &corpus, &mut input);
        if message::parse(&input).is_ok() {
            accepted += 1;
        }
        fuzz_one(&input);
    }
    // The loop must reach the accepting paths, not only the parse errors.
    eprintln!("mutation: {accepted} of {iterations} mutants parsed");
    assert!(accepted > iterations / 20, "only {accepted} of {iterations} mutants parsed");
}
