use super::*;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex: {text}");
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fields(block: &Block) -> Vec<(String, String)> {
    block.headers.iter().map(|(n, v)| (text(n), text(v))).collect()
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// The dynamic table, newest first.
fn table(decoder: &Decoder) -> Vec<(String, String)> {
    decoder.table.iter().map(|(n, v)| (text(n), text(v))).collect()
}

/// A decoder whose table maximum (and limit) is `size` from the start,
/// as in the RFC's response examples.
fn with_table_size(size: usize) -> Decoder {
    let mut decoder = Decoder::new();
    decoder.max_size = size;
    decoder.limit = size;
    decoder
}

fn assert_table(decoder: &Decoder, expected: &[(&str, &str)], size: usize) {
    assert_eq!(table(decoder), owned(expected));
    assert_eq!(decoder.size, size);
    let sum: usize = decoder.table.iter().map(entry_size).sum();
    assert_eq!(sum, size, "size accounting");
}

fn decode(decoder: &mut Decoder, block: &str) -> Block {
    decoder.decode(&hex(block), usize::MAX).unwrap()
}

fn decode_err(block: &[u8]) -> HpackError {
    Decoder::new().decode(block, 1 << 16).unwrap_err()
}

// RFC 7541 Appendix C.2: one representation each, fresh tables.

#[test]
fn c2_1_literal_with_indexing() {
    let mut decoder = Decoder::new();
    let block = decode(&mut decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(fields(&block), owned(&[("custom-key", "custom-header")]));
    assert_eq!(block.never_indexed, [false]);
    assert_table(&decoder, &[("custom-key", "custom-header")], 55);
}

#[test]
fn c2_2_literal_without_indexing() {
    let mut decoder = Decoder::new();
    let block = decode(&mut decoder, "040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(fields(&block), owned(&[(":path", "/sample/path")]));
    assert_eq!(block.never_indexed, [false]);
    assert_table(&decoder, &[], 0);
}

#[test]
fn c2_3_literal_never_indexed() {
    let mut decoder = Decoder::new();
    let block = decode(&mut decoder, "1008 7061 7373 776f 7264 0673 6563 7265 74");
    assert_eq!(fields(&block), owned(&[("password", "secret")]));
    assert_eq!(block.never_indexed, [true]);
    assert_table(&decoder, &[], 0);
}

#[test]
fn c2_4_indexed() {
    let mut decoder = Decoder::new();
    let block = decode(&mut decoder, "82");
    assert_eq!(fields(&block), owned(&[(":method", "GET")]));
    assert!(block.size_updates.is_empty());
    assert_table(&decoder, &[], 0);
}

// C.3 and C.4: three requests on one connection, without and with
// Huffman coding; the tables evolve identically.

const REQUEST_1: [(&str, &str); 4] =
    [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
const REQUEST_2: [(&str, &str); 5] = [
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQUEST_3: [(&str, &str); 5] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];

fn requests(blocks: [&str; 3]) {
    let mut decoder = Decoder::new();
    let block = decode(&mut decoder, blocks[0]);
    assert_eq!(fields(&block), owned(&REQUEST_1));
    assert_table(&decoder, &[(":authority", "www.example.com")], 57);

    let block = decode(&mut decoder, blocks[1]);
    assert_eq!(fields(&block), owned(&REQUEST_2));
    assert_table(&decoder, &[("cache-control", "no-cache"), (":authority", "www.example.com")], 110);

    let block = decode(&mut decoder, blocks[2]);
    assert_eq!(fields(&block), owned(&REQUEST_3));
    assert_eq!(block.never_indexed, [false; 5]);
    assert_table(
        &decoder,
        &[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")],
        164,
    );
}

#[test]
fn c3_requests_without_huffman() {
    requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c4_requests_with_huffman() {
    requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

// C.5 and C.6: three responses with a 256-octet table, with evictions.

const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

fn responses(blocks: [&str; 3]) {
    let mut decoder = with_table_size(256);
    let block = decode(&mut decoder, blocks[0]);
    let first = [(":status", "302"), ("cache-control", "private"), ("date", DATE_1), ("location", LOCATION)];
    assert_eq!(fields(&block), owned(&first));
    assert_table(
        &decoder,
        &[("location", LOCATION), ("date", DATE_1), ("cache-control", "private"), (":status", "302")],
        222,
    );

    let block = decode(&mut decoder, blocks[1]);
    let second = [(":status", "307"), ("cache-control", "private"), ("date", DATE_1), ("location", LOCATION)];
    assert_eq!(fields(&block), owned(&second));
    assert_table(
        &decoder,
        &[(":status", "307"), ("location", LOCATION), ("date", DATE_1), ("cache-control", "private")],
        222,
    );

    let block = decode(&mut decoder, blocks[2]);
    let third = [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", DATE_2),
        ("location", LOCATION),
        ("content-encoding", "gzip"),
        ("set-cookie", COOKIE),
    ];
    assert_eq!(fields(&block), owned(&third));
    assert_table(&decoder, &[("set-cookie", COOKIE), ("content-encoding", "gzip"), ("date", DATE_2)], 215);
}

#[test]
fn c5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn c6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn static_table_matches_the_rfc_examples() {
    assert_eq!(STATIC_TABLE.len(), 61);
    let at = |index: usize| (text(STATIC_TABLE[index - 1].0), text(STATIC_TABLE[index - 1].1));
    assert_eq!(at(1), (":authority".into(), "".into()));
    assert_eq!(at(16), ("accept-encoding".into(), "gzip, deflate".into()));
    assert_eq!(at(23).0, "authorization");
    assert_eq!(at(32).0, "cookie");
    assert_eq!(at(49).0, "proxy-authorization");
    assert_eq!(at(61).0, "www-authenticate");
    // Names are lowercase, and only indexes 2-14 and 16 carry values.
    for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
        assert!(!name.iter().any(u8::is_ascii_uppercase));
        assert_eq!(value.is_empty(), !matches!(i + 1, 2..=14 | 16), "index {}", i + 1);
    }
}

// Dynamic table rules.

#[test]
fn an_entry_may_name_the_entry_it_evicts() {
    let mut decoder = with_table_size(80);
    let mut block = vec![0x40, 0x04];
    block.extend_from_slice(b"name");
    block.extend_from_slice(&[0x01, b'v']);
    decoder.decode(&block, usize::MAX).unwrap();
    assert_table(&decoder, &[("name", "v")], 37);
    // Literal with indexing, name index 62 (that entry), 40-octet value:
    // 76 octets, so the named entry is evicted first.
    let value = "x".repeat(40);
    let mut block = vec![0x7e, 40];
    block.extend_from_slice(value.as_bytes());
    let decoded = decoder.decode(&block, usize::MAX).unwrap();
    assert_eq!(fields(&decoded), owned(&[("name", &value)]));
    assert_table(&decoder, &[("name", &value)], 76);
}

#[test]
fn an_entry_larger_than_the_table_empties_it() {
    let mut decoder = with_table_size(100);
    decode(&mut decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(decoder.size, 55);
    // `:authority` (10) with a 60-octet value: 102 > 100.
    let mut block = vec![0x41, 60];
    block.extend_from_slice(&[b'a'; 60]);
    let decoded = decoder.decode(&block, usize::MAX).unwrap();
    assert_eq!(decoded.headers.len(), 1, "still decoded");
    assert_table(&decoder, &[], 0);
}

#[test]
fn size_updates_shrink_the_table_and_are_reported() {
    let mut decoder = Decoder::new();
    requests_into(&mut decoder);
    assert_eq!(decoder.size, 164);
    // Two updates: to 60 (keeps the newest 54-octet entry), then 4096.
    let mut block = vec![0x3f, 0x1d, 0x3f, 0xe1, 0x1f];
    block.push(0xbe); // index 62: custom-key: custom-value
    let decoded = decoder.decode(&block, usize::MAX).unwrap();
    assert_eq!(decoded.size_updates, [60, 4096]);
    assert_eq!(fields(&decoded), owned(&[("custom-key", "custom-value")]));
    assert_table(&decoder, &[("custom-key", "custom-value")], 54);
    assert_eq!(decoder.max_size, 4096);
    // To 0 empties it; a block of only an update is valid.
    assert_eq!(decoder.decode(&[0x20], usize::MAX).unwrap().size_updates, [0]);
    assert_table(&decoder, &[], 0);
}

fn requests_into(decoder: &mut Decoder) {
    decode(decoder, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    decode(decoder, "8286 84be 5808 6e6f 2d63 6163 6865");
    decode(decoder, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65");
}

#[test]
fn a_lowered_limit_requires_an_update() {
    let mut decoder = Decoder::new();
    decoder.set_limit(0);
    assert_eq!(decoder.decode(&[0x82], usize::MAX), Err(HpackError::SizeUpdate));

    let mut decoder = Decoder::new();
    decoder.set_limit(0);
    assert_eq!(decoder.decode(&[], usize::MAX), Err(HpackError::SizeUpdate), "an empty block");

    let mut decoder = Decoder::new();
    decoder.set_limit(0);
    let decoded = decoder.decode(&[0x20, 0x82], usize::MAX).unwrap();
    assert_eq!(decoded.size_updates, [0]);
    // Satisfied: later blocks need none.
    decoder.decode(&[0x82], usize::MAX).unwrap();

    // Lowered to 100 then raised to 4096: the first update must be at
    // most 100, the second may go back up.
    let mut decoder = Decoder::new();
    decoder.set_limit(100);
    decoder.set_limit(4096);
    let mut failed = decoder_clone_limits(&decoder);
    assert_eq!(failed.decode(&[0x3f, 0xe1, 0x1f, 0x82], usize::MAX), Err(HpackError::SizeUpdate));
    let decoded = decoder.decode(&[0x3f, 0x13, 0x3f, 0xe1, 0x1f, 0x82], usize::MAX).unwrap();
    assert_eq!(decoded.size_updates, [50, 4096]);

    // A raised limit needs no update, and allows a larger one.
    let mut decoder = Decoder::new();
    decoder.set_limit(8192);
    decoder.decode(&[0x82], usize::MAX).unwrap();
    let decoded = decoder.decode(&[0x3f, 0xe1, 0x3f], usize::MAX).unwrap();
    assert_eq!(decoded.size_updates, [8192]);
}

fn decoder_clone_limits(decoder: &Decoder) -> Decoder {
    let mut copy = Decoder::new();
    copy.limit = decoder.limit;
    copy.max_size = decoder.max_size;
    copy.required_update = decoder.required_update;
    copy
}

// Malformed blocks.

#[test]
fn truncated_representations() {
    assert_eq!(decode_err(&[0xff]), HpackError::Truncated, "prefix full, no continuation");
    assert_eq!(decode_err(&[0xff, 0x80]), HpackError::Truncated, "continuation flag, then nothing");
    assert_eq!(decode_err(&[0x40]), HpackError::Truncated, "no name length");
    assert_eq!(decode_err(&[0x40, 0x05, b'a']), HpackError::Truncated, "name longer than the block");
    assert_eq!(decode_err(&[0x04, 0x03, b'/', b'a']), HpackError::Truncated, "value longer");
    assert_eq!(decode_err(&[0x00, 0x01, b'a']), HpackError::Truncated, "no value");
    assert_eq!(decode_err(&[0x04, 0x7f, 0xff, 0xff, 0xff, 0x0f]), HpackError::Truncated, "~2^25 octets");
    assert_eq!(decode_err(&[0x3f]), HpackError::Truncated, "size update");
}

#[test]
fn oversized_integers() {
    // 127 + 127 + 127·2^7 + 127·2^14 + 127·2^21 + 15·2^28 > 2^32 - 1.
    assert_eq!(decode_err(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]), HpackError::IntegerOverflow);
    // Six octets after the prefix, even of zeros.
    assert_eq!(decode_err(&[0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), HpackError::IntegerOverflow);
    assert_eq!(decode_err(&[0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), HpackError::IntegerOverflow);
    // The largest accepted: 2^32 - 1 as an index is merely invalid.
    let max = [0xff, 0x80, 0xff, 0xff, 0xff, 0x0f];
    assert_eq!(decode_err(&max), HpackError::InvalidIndex(u64::from(u32::MAX)));
    assert_eq!(decode_err(&[0x3f, 0x80, 0xff, 0xff, 0xff, 0x0f]), HpackError::SizeUpdate);
}

#[test]
fn invalid_indexes() {
    assert_eq!(decode_err(&[0x80]), HpackError::InvalidIndex(0));
    assert_eq!(decode_err(&[0xbe]), HpackError::InvalidIndex(62), "empty dynamic table");
    assert_eq!(decode_err(&[0x7f, 0x07, 0x00]), HpackError::InvalidIndex(70), "literal name index");
    assert_eq!(decode_err(&[0x0f, 0x30, 0x00]), HpackError::InvalidIndex(63));
    assert_eq!(decode_err(&[0x1f, 0x30, 0x00]), HpackError::InvalidIndex(63));
    let mut decoder = Decoder::new();
    requests_into(&mut decoder);
    decoder.decode(&[0xc0], usize::MAX).unwrap(); // 64: the third entry
    assert_eq!(decoder.decode(&[0xc1], usize::MAX), Err(HpackError::InvalidIndex(65)));
}

#[test]
fn invalid_huffman_strings() {
    // :path with a 1-octet Huffman value: 'a' padded with zeros.
    assert_eq!(decode_err(&[0x04, 0x81, 0x18]), HpackError::Huffman);
    // Padding of 8 bits.
    assert_eq!(decode_err(&[0x04, 0x82, 0x1f, 0xff]), HpackError::Huffman);
    // EOS.
    assert_eq!(decode_err(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]), HpackError::Huffman);
    // In a name too.
    assert_eq!(decode_err(&[0x00, 0x81, 0x18, 0x00]), HpackError::Huffman);
    // And checked even when the list is over its limit.
    let mut block = vec![0x04, 0x01, b'/'];
    block.extend_from_slice(&[0x04, 0x81, 0x18]);
    assert_eq!(Decoder::new().decode(&block, 10), Err(HpackError::Huffman));
    // Valid: 'a' padded with ones.
    let decoded = Decoder::new().decode(&[0x04, 0x81, 0x1f], 100).unwrap();
    assert_eq!(fields(&decoded), owned(&[(":path", "a")]));
}

#[test]
fn misplaced_or_excessive_size_updates() {
    assert_eq!(decode_err(&[0x82, 0x20]), HpackError::SizeUpdate, "after a field");
    assert_eq!(decode_err(&[0x82, 0x20, 0x82]), HpackError::SizeUpdate);
    assert_eq!(decode_err(&[0x3f, 0xe2, 0x1f]), HpackError::SizeUpdate, "4097 > 4096");
    assert_eq!(decode_err(&[0x20, 0x20, 0x20]), HpackError::SizeUpdate, "three");
    let mut decoder = Decoder::new();
    decoder.set_limit(100);
    // 200 > 100 even though the table is still at 4096.
    assert_eq!(decoder.decode(&[0x3f, 0xa9, 0x01], usize::MAX), Err(HpackError::SizeUpdate));
}

#[test]
fn errors_are_final() {
    let mut decoder = Decoder::new();
    assert_eq!(decoder.decode(&[0x80], usize::MAX), Err(HpackError::InvalidIndex(0)));
    assert_eq!(decoder.decode(&[0x82], usize::MAX), Err(HpackError::Failed));
}

#[test]
fn header_list_over_the_limit() {
    let block = hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    // :method GET 42, :scheme http 43, :path / 38, :authority 57: 180.
    assert_eq!(Decoder::new().decode(&block, 180).unwrap().headers.len(), 4);
    let mut decoder = Decoder::new();
    assert_eq!(decoder.decode(&block, 179), Err(HpackError::TooLarge));
    // The block was read to its end: the table is in sync, and the
    // decoder goes on.
    assert_table(&decoder, &[(":authority", "www.example.com")], 57);
    let next = decoder.decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865"), 4096).unwrap();
    assert_eq!(fields(&next), owned(&REQUEST_2));
    assert_eq!(Decoder::new().decode(&block, 0), Err(HpackError::TooLarge));
}

#[test]
fn indexed_bomb_is_cut_off() {
    // One 4000-octet entry, then 100,000 one-octet references to it:
    // 400 MB decoded, were it kept.
    let mut decoder = Decoder::new();
    let mut block = vec![0x40, 0x01, b'x', 0x7f];
    let mut len = Vec::new();
    put_integer(&mut len, 0x00, 7, 3900);
    block.extend_from_slice(&len[1..]);
    block.extend_from_slice(&[b'v'; 3900]);
    block.extend(std::iter::repeat_n(0xbe, 100_000));
    assert_eq!(decoder.decode(&block, 1 << 16), Err(HpackError::TooLarge));
    assert_eq!(decoder.size, 1 + 3900 + 32);
}

// The encoder.

fn encoded(size_updates: &[usize], headers: &[(&str, &str)], never: &[bool]) -> Vec<u8> {
    let headers: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
    let mut out = Vec::new();
    encode(size_updates, &headers, never, &mut out);
    out
}

#[test]
fn encoder_representations() {
    assert_eq!(encoded(&[], &[(":method", "GET")], &[]), [0x82]);
    assert_eq!(encoded(&[], &[("accept-encoding", "gzip, deflate")], &[]), [0x90]);
    // Static name, literal value (raw: Huffman is not shorter for "/x").
    assert_eq!(encoded(&[], &[(":path", "/x")], &[]), [0x04, 0x02, b'/', b'x']);
    // Name index 16 needs a continuation octet with a 4-bit prefix.
    assert_eq!(encoded(&[], &[("accept-encoding", "br")], &[]), [0x0f, 0x01, 0x02, b'b', b'r']);
    // Literal name, Huffman-coded when shorter (C.4.3's strings).
    assert_eq!(
        encoded(&[], &[("custom-key", "custom-value")], &[]),
        hex("0088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")
    );
    // Sensitive names are never indexed, even on a full static match.
    assert_eq!(encoded(&[], &[("authorization", "")], &[]), [0x1f, 0x08, 0x00]);
    assert_eq!(encoded(&[], &[("cookie", "a")], &[]), [0x1f, 0x11, 0x01, b'a']);
    // A flagged field too.
    assert_eq!(encoded(&[], &[(":method", "GET")], &[true]), [0x12, 0x03, b'G', b'E', b'T']);
    // Size updates first.
    assert_eq!(encoded(&[0, 4096], &[(":method", "GET")], &[]), [0x20, 0x3f, 0xe1, 0x1f, 0x82]);
}

fn assert_round_trip(headers: &[(&[u8], &[u8])], never: &[bool]) {
    let mut out = Vec::new();
    encode(&[], headers, never, &mut out);
    // A decoder whose table is full of entries: a dynamic reference
    // would decode to one of them (or fail); an insertion would grow it.
    let mut decoder = Decoder::new();
    requests_into(&mut decoder);
    let before = table(&decoder);
    for _ in 0..2 {
        for decoder in [&mut Decoder::new(), &mut decoder] {
            let block = decoder.decode(&out, usize::MAX).unwrap();
            let expected: Vec<(Vec<u8>, Vec<u8>)> =
                headers.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            assert_eq!(block.headers, expected);
            let flags: Vec<bool> = headers
                .iter()
                .enumerate()
                .map(|(i, (n, _))| never.get(i).copied().unwrap_or(false) || SENSITIVE.contains(n))
                .collect();
            assert_eq!(block.never_indexed, flags);
            assert!(block.size_updates.is_empty());
        }
    }
    assert_eq!(table(&decoder), before, "no insertion");
    assert_no_dynamic_table_use(&out);
}

/// Walks an encoded block: no incremental indexing, no size update, and
/// every index within the static table.
fn assert_no_dynamic_table_use(block: &[u8]) {
    let mut input = Input { rest: block };
    while let Some(&first) = input.rest.first() {
        let indexed = first & 0x80 != 0;
        assert!(indexed || first & 0x60 == 0, "indexing or size update: {first:#x}");
        let index = input.integer(if indexed { 7 } else { 4 }).unwrap();
        assert!(index <= 61, "dynamic index {index}");
        if !indexed {
            if index == 0 {
                input.string(true).unwrap();
            }
            input.string(true).unwrap();
        }
    }
}

#[test]
fn encode_decode_round_trips() {
    let long: Vec<u8> = (0..=255).cycle().take(1000).collect();
    let lists: Vec<Vec<(&[u8], &[u8])>> = vec![
        vec![],
        vec![
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":path", b"/index.html"),
            (b":authority", b"www.example.com"),
            (b"user-agent", b"curl/8.5.0"),
            (b"accept", b"*/*"),
            (b"accept-encoding", b"gzip, deflate"),
            (b"cookie", b"session=0123456789abcdef"),
            (b"authorization", b"Bearer eyJhbGciOiJIUzI1NiJ9"),
            (b"proxy-authorization", b"Basic Zm9vOmJhcg=="),
            (b"te", b"trailers"),
        ],
        vec![
            (b":method", b"POST"),
            (b":path", b"/porin.test.Echo/Say"),
            (b"content-type", b"application/grpc"),
            (b"grpc-timeout", b"1S"),
            (b"x-custom", b""),
            (b"", b"empty name"),
            (b"Upper-Case", b"Kept As Sent"),
        ],
        vec![(b"x-long", &long), (&long, b"v"), (b"x-bin", b"\x00\x01\xff\r\n")],
    ];
    for list in &lists {
        assert_round_trip(list, &[]);
        let flags: Vec<bool> = (0..list.len()).map(|i| i % 2 == 0).collect();
        assert_round_trip(list, &flags);
    }
}

// Deterministic fuzzing: random and mutated blocks never panic, and what
// decodes is bounded and re-encodes faithfully.

#[test]
fn fuzz_random_and_mutated_blocks() {
    let mut seeds: Vec<Vec<u8>> = [
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        "1008 7061 7373 776f 7264 0673 6563 7265 74",
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        "4883 640e ffc1 c0bf",
        "3fe1 1f20 4082 2f61 0000",
    ]
    .iter()
    .map(|block| hex(block))
    .collect();
    let mut encoded = Vec::new();
    encode(&[0], &[(":path", "/a/b?c=d"), ("x-key", "value value"), ("cookie", "k=v")], &[], &mut encoded);
    seeds.push(encoded);

    let mut rng = crate::tests::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut persistent = Decoder::new();
    let (mut ok, mut too_large) = (0, 0);
    for round in 0..20_000 {
        let block: Vec<u8> = if rng.below(4) == 0 {
            (0..rng.below(48)).map(|_| rng.below(256) as u8).collect()
        } else {
            let mut block = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(3) {
                match rng.below(5) {
                    0 if !block.is_empty() => {
                        let at = rng.below(block.len());
                        block[at] ^= 1 << rng.below(8);
                    }
                    1 if !block.is_empty() => {
                        let at = rng.below(block.len());
                        block[at] = rng.below(256) as u8;
                    }
                    2 => block.truncate(rng.below(block.len() + 1)),
                    3 => {
                        let at = rng.below(block.len() + 1);
                        block.insert(at, rng.below(256) as u8);
                    }
                    _ => {
                        let other = &seeds[rng.below(seeds.len())];
                        block.extend_from_slice(other);
                    }
                }
            }
            block
        };
        let max_list_size = [0, 64, 256, 4096, usize::MAX][rng.below(5)];
        if round % 1000 == 0 {
            persistent = Decoder::new();
        }
        let mut fresh = Decoder::new();
        for decoder in [&mut fresh, &mut persistent] {
            if rng.below(8) == 0 {
                decoder.set_limit(rng.below(5000));
            }
            let result = decoder.decode(&block, max_list_size);
            assert!(decoder.size <= decoder.max_size && decoder.max_size <= 5000);
            assert_eq!(decoder.table.iter().map(entry_size).sum::<usize>(), decoder.size);
            match result {
                Ok(decoded) => {
                    ok += 1;
                    let size: usize = decoded.headers.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
                    assert!(size <= max_list_size);
                    assert_eq!(decoded.never_indexed.len(), decoded.headers.len());
                    assert!(decoded.size_updates.len() <= 2);
                    let mut out = Vec::new();
                    encode(&[], &decoded.headers, &decoded.never_indexed, &mut out);
                    let again = Decoder::new().decode(&out, usize::MAX).unwrap();
                    assert_eq!(again.headers, decoded.headers);
                    assert_no_dynamic_table_use(&out);
                }
                Err(HpackError::TooLarge) => too_large += 1,
                Err(_) => {}
            }
        }
    }
    // The corpus exercises both outcomes, not just errors.
    assert!(ok > 1000 && too_large > 100, "ok {ok}, too large {too_large}");
}
