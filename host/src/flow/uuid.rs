//! Flow UUIDs: version 4 layout, from a per-thread generator (flows are
//! made on the hot path, so no system call per UUID).

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uuid(pub u128);

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A different seed per thread and per run.
fn seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let local = 0u8;
    now.as_nanos() as u64 ^ (&raw const local as u64).rotate_left(32) ^ u64::from(std::process::id())
}

/// SplitMix64: every state gives a distinct, well-mixed output.
fn next(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Uuid {
    pub fn new() -> Uuid {
        let (high, low) = STATE.with(|state| (next(state), next(state)));
        let bits = (u128::from(high) << 64) | u128::from(low);
        // Version 4, variant 10.
        let bits = (bits & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
        Uuid(bits)
    }
}

impl Default for Uuid {
    fn default() -> Uuid {
        Uuid::new()
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            b >> 96,
            (b >> 80) & 0xffff,
            (b >> 64) & 0xffff,
            (b >> 48) & 0xffff,
            b & 0xffff_ffff_ffff
        )
    }
}

impl FromStr for Uuid {
    type Err = String;

    fn from_str(s: &str) -> Result<Uuid, String> {
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return Err(format!("`{s}` is not a UUID"));
        }
        u128::from_str_radix(&hex, 16).map(Uuid).map_err(|_| format!("`{s}` is not a UUID"))
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
        std::borrow::Cow::<str>::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_v4_differ_and_parse_back() {
        let (a, b) = (Uuid::new(), Uuid::new());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
        assert_eq!(text.parse::<Uuid>(), Ok(a));
        assert!("not-a-uuid".parse::<Uuid>().is_err());
    }
}
