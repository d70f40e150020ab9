//! The static Huffman code of HPACK string literals (RFC 7541 §5.2,
//! Appendix B).
//!
//! [`CODES`] is the appendix typed in, one `(code, bit length)` pair per
//! symbol, code right-aligned. The decoder's tables are derived from it at
//! compile time, and the derivation asserts that the typed codes are the
//! canonical code of the typed lengths and that the code is complete, so a
//! mistyped row fails the build instead of mis-decoding.
//!
//! Decoding walks the canonical code a bit at a time: at most 30 steps per
//! octet, with no state beyond the code read so far.

/// Why a Huffman string is invalid (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// Padding longer than 7 bits, or not the most significant bits of EOS
    /// (all ones).
    Padding,
}

/// The EOS symbol: only ever padding, never in a string.
const EOS: usize = 256;
/// The longest code (EOS and a few control octets).
const MAX_LEN: usize = 30;

/// Appendix B: `CODES[symbol] = (code, length in bits)`, symbols 0..=255 are
/// octets and 256 is EOS.
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    // 0
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    // 16
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    // 32: ' ' ! " # $ % & ' ( ) * + , - . /
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    // 48: 0-9 : ; < = > ?
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    // 64: @ A-O
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    // 80: P-Z [ \ ] ^ _
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    // 96: ` a-o
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    // 112: p-z { | } ~ DEL
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    // 128
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    // 144
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    // 160
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    // 176
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    // 192
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    // 208
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    // 224
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    // 240
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    // 256: EOS
    (0x3fffffff, 30),
];

/// The canonical decoding tables: for each length, how many codes have it,
/// the first (smallest) code of that length, and where its symbols start in
/// `symbols` (ordered by code).
struct Canonical {
    count: [u32; MAX_LEN + 1],
    first: [u32; MAX_LEN + 1],
    offset: [usize; MAX_LEN + 1],
    symbols: [u16; 257],
}

/// Derives the decoder from [`CODES`]; a const panic (a build error) if the
/// rows are not a complete canonical prefix code.
const fn canonical() -> Canonical {
    let mut count = [0u32; MAX_LEN + 1];
    let mut sym = 0;
    while sym < CODES.len() {
        let len = CODES[sym].1 as usize;
        assert!(len >= 1 && len <= MAX_LEN, "code length out of range");
        count[len] += 1;
        sym += 1;
    }
    let mut first = [0u32; MAX_LEN + 1];
    let mut offset = [0usize; MAX_LEN + 1];
    let (mut code, mut index, mut len) = (0u32, 0usize, 1);
    while len <= MAX_LEN {
        first[len] = code;
        offset[len] = index;
        code = (code + count[len]) << 1;
        index += count[len] as usize;
        len += 1;
    }
    // Complete: the longest codes end exactly at 2^30 (Kraft equality).
    assert!(first[MAX_LEN] + count[MAX_LEN] == 1 << MAX_LEN, "the code is not complete");
    let mut symbols = [u16::MAX; 257];
    sym = 0;
    while sym < CODES.len() {
        let (code, len) = (CODES[sym].0, CODES[sym].1 as usize);
        assert!(code >= first[len] && code - first[len] < count[len], "code is not canonical");
        let slot = offset[len] + (code - first[len]) as usize;
        assert!(symbols[slot] == u16::MAX, "two symbols share a code");
        symbols[slot] = sym as u16;
        sym += 1;
    }
    Canonical { count, first, offset, symbols }
}

static DECODE: Canonical = canonical();

/// Decodes `src`, handing each octet to `emit`.
fn decode_with(src: &[u8], mut emit: impl FnMut(u8)) -> Result<(), HuffmanError> {
    let table = &DECODE;
    // The code read so far, its length, and whether it is all ones.
    let (mut code, mut len, mut ones) = (0u32, 0usize, true);
    for &byte in src {
        for shift in (0..8).rev() {
            let bit = u32::from(byte >> shift) & 1;
            code = (code << 1) | bit;
            len += 1;
            ones &= bit == 1;
            let (first, count) = (table.first[len], table.count[len]);
            if code >= first && code - first < count {
                let symbol = usize::from(table.symbols[table.offset[len] + (code - first) as usize]);
                if symbol == EOS {
                    return Err(HuffmanError::Eos);
                }
                emit(symbol as u8);
                (code, len, ones) = (0, 0, true);
            } else if len == MAX_LEN {
                // Unreachable for a complete code (checked at build time);
                // refused rather than read past the tables.
                return Err(HuffmanError::Eos);
            }
        }
    }
    if len > 7 || !ones {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// Appends the decoding of `src` to `out`: at most `src.len() * 8 / 5`
/// octets (the shortest code is 5 bits).
pub(crate) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    decode_with(src, |byte| out.push(byte))
}

/// Checks that `src` decodes, without keeping the result.
pub(crate) fn check(src: &[u8]) -> Result<(), HuffmanError> {
    decode_with(src, |_| ())
}

/// The length of `src` Huffman-coded, padding included.
pub(crate) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src.iter().map(|&byte| usize::from(CODES[usize::from(byte)].1)).sum();
    bits.div_ceil(8)
}

/// Appends `src` Huffman-coded, padded with ones to an octet boundary.
pub(crate) fn encode(src: &[u8], out: &mut Vec<u8>) {
    // Pending bits, right-aligned: fewer than 8 between symbols, so a
    // 30-bit code always fits.
    let (mut acc, mut bits) = (0u64, 0u32);
    for &byte in src {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    /// Codes sorted by (length, symbol) are consecutive integers, shifted
    /// left at each length step: the canonical property the decoder relies
    /// on (also asserted at build time).
    #[test]
    fn table_is_canonical_and_complete() {
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&sym| (CODES[sym].1, sym));
        // The first (shortest) code is all zeros.
        let (mut expected, mut prev_len) = (0u64, CODES[order[0]].1);
        for &sym in &order {
            let (code, len) = CODES[sym];
            expected <<= len - prev_len;
            prev_len = len;
            assert_eq!(u64::from(code), expected, "symbol {sym}");
            expected += 1;
        }
        assert_eq!(expected, 1 << MAX_LEN, "complete code");
        assert_eq!(CODES[EOS], (0x3fff_ffff, 30));
        // Spot checks against the appendix's examples.
        assert_eq!(CODES[usize::from(b'/')], (0x18, 6));
        assert_eq!(CODES[usize::from(b'0')], (0x0, 5));
        assert_eq!(CODES[255], (0x3ffffee, 26));
    }

    #[test]
    fn rfc_7541_c4_and_c6_strings() {
        let cases: [(&str, &str); 8] = [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            ("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
            (
                "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ];
        for (coded, text) in cases {
            let coded = hex(coded);
            assert_eq!(decoded(&coded).unwrap(), text.as_bytes(), "{text}");
            let mut out = Vec::new();
            encode(text.as_bytes(), &mut out);
            assert_eq!(out, coded, "{text}");
            assert_eq!(encoded_len(text.as_bytes()), coded.len());
        }
    }

    #[test]
    fn every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for sym in 0..=255u8 {
            let mut out = Vec::new();
            encode(&[sym, b'a', sym], &mut out);
            assert_eq!(decoded(&out).unwrap(), [sym, b'a', sym]);
        }
        let mut out = Vec::new();
        encode(&all, &mut out);
        assert_eq!(out.len(), encoded_len(&all));
        assert_eq!(decoded(&out).unwrap(), all);
        assert_eq!(decoded(&[]).unwrap(), b"");
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011: padded with 111 it is 0x1f; with zeros it is not.
        assert_eq!(decoded(&[0x1f]).unwrap(), b"a");
        assert_eq!(decoded(&[0x18]), Err(HuffmanError::Padding));
        assert_eq!(decoded(&[0x1e]), Err(HuffmanError::Padding));
        // A whole octet of ones is padding of 8 bits.
        assert_eq!(decoded(&[0x1f, 0xff]), Err(HuffmanError::Padding));
        assert_eq!(decoded(&[0xff]), Err(HuffmanError::Padding));
        // '0' (00000) then 3 bits of padding: fine; then an incomplete 13-bit
        // code that is not all ones: refused.
        assert_eq!(decoded(&[0x07]).unwrap(), b"0");
        assert_eq!(decoded(&[0xff, 0xc0]), Err(HuffmanError::Padding));
        // EOS (30 ones) then 2 bits of padding.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
        // 'a' then EOS.
        assert_eq!(decoded(&[0x1f, 0xff, 0xff, 0xff, 0xfe]), Err(HuffmanError::Eos));
        assert_eq!(check(&[0x1f]), Ok(()));
        assert_eq!(check(&[0x18]), Err(HuffmanError::Padding));
    }

    #[test]
    fn output_is_bounded_by_the_shortest_code() {
        // All zeros: 0x00 octets decode as '0' (5 bits) runs; 5 octets hold
        // eight codes exactly.
        let out = decoded(&[0; 5]).unwrap();
        assert_eq!(out, b"00000000");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let src: Vec<u8> = (0..len).map(|i| (state >> (i % 8 * 8)) as u8 ^ i as u8).collect();
            if let Ok(out) = decoded(&src) {
                assert!(out.len() <= src.len() * 8 / 5);
            }
        }
    }
}
