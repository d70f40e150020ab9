//! HPACK (RFC 7541): a strict decoder for header blocks in both directions,
//! and an encoder that never touches the dynamic table.
//!
//! The filter re-encodes the request blocks it forwards with [`encode`],
//! which makes no insertions and no dynamic references: the server's
//! decoder state then never depends on a block, so dropping a denied
//! stream's block cannot desynchronise it.
//!
//! The [`Decoder`] refuses anything malformed and bounds memory: integers
//! stop at 2^32 - 1, string lengths are checked against the block, the
//! dynamic table is bounded by the protocol limit, and a header list past
//! the caller's limit is not kept (an indexed field is one octet but may
//! stand for kilobytes, so the list is measured as it is decoded).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

use super::huffman;

/// SETTINGS_HEADER_TABLE_SIZE until a peer announces one (RFC 9113 §6.5.2).
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;
/// Added to name and value lengths in table and header list sizes
/// (RFC 7541 §4.1, RFC 9113 §6.5.2).
const ENTRY_OVERHEAD: usize = 32;
/// The largest integer accepted: no length, index or size is larger.
const MAX_INT: u64 = u32::MAX as u64;
/// Octets after an integer's prefix: 5 × 7 bits covers [`MAX_INT`].
const MAX_INT_OCTETS: u32 = 5;
/// Size updates a block may start with: the smallest and the final size
/// (RFC 7541 §4.2).
const MAX_SIZE_UPDATES: usize = 2;
/// Header names whose fields [`encode`] always writes never-indexed.
const SENSITIVE: [&[u8]; 3] = [b"authorization", b"cookie", b"proxy-authorization"];

/// The static table (RFC 7541 Appendix A); index `i` is `STATIC_TABLE[i - 1]`.
#[rustfmt::skip]
static STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// Why a header block cannot be decoded.
///
/// [`HpackError::TooLarge`] leaves the decoder in sync (the block was read
/// to its end): the caller may refuse just the stream (431, RST_STREAM) or
/// close with ENHANCE_YOUR_CALM. Every other error is a connection error,
/// COMPRESSION_ERROR (RFC 9113 §4.3), and the decoder refuses further
/// blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HpackError {
    /// The block ends inside a representation, or a string is longer than
    /// the rest of the block.
    Truncated,
    /// An integer above 2^32 - 1, or longer than 5 octets after its prefix.
    IntegerOverflow,
    /// Index 0, or an index past the static and dynamic tables.
    InvalidIndex(u64),
    /// A Huffman string containing EOS, or with padding over 7 bits or not
    /// all ones.
    Huffman,
    /// A dynamic table size update after a field, above the limit, a third
    /// one in a block, or missing (or too large) after the limit was lowered
    /// below the table's size.
    SizeUpdate,
    /// The header list is over the caller's limit (name + value + 32 per
    /// field, RFC 9113 §6.5.2).
    TooLarge,
    /// An earlier block failed with a connection error: the dynamic table is
    /// unknown.
    Failed,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("HPACK: truncated header block"),
            HpackError::IntegerOverflow => f.write_str("HPACK: integer too large"),
            HpackError::InvalidIndex(index) => write!(f, "HPACK: invalid table index {index}"),
            HpackError::Huffman => f.write_str("HPACK: invalid Huffman string"),
            HpackError::SizeUpdate => f.write_str("HPACK: invalid dynamic table size update"),
            HpackError::TooLarge => f.write_str("HPACK: header list too large"),
            HpackError::Failed => f.write_str("HPACK: decoder failed on an earlier block"),
        }
    }
}

impl std::error::Error for HpackError {}

/// One decoded header block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Block {
    /// The fields in order, as sent: names are not lowercased or checked
    /// (HTTP/2 requires lowercase; the caller validates).
    pub(crate) headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Parallel to `headers`: the field was sent as a literal never indexed
    /// (sensitive; an intermediary must re-encode it the same way).
    pub(crate) never_indexed: Vec<bool>,
    /// The dynamic table size updates the block started with, in order (at
    /// most two); already applied to the decoder.
    pub(crate) size_updates: Vec<usize>,
}

/// The decoding side of one direction of a connection: its dynamic table.
pub(crate) struct Decoder {
    /// Newest first: dynamic index 62 is `table[0]`.
    table: VecDeque<Entry>,
    /// The table's size: entries' name + value + 32.
    size: usize,
    /// The maximum size the last size update set.
    max_size: usize,
    /// The protocol's limit on `max_size`.
    limit: usize,
    /// After the limit was lowered below `max_size`: the smallest such limit,
    /// which the next block's first size update must not exceed.
    required_update: Option<usize>,
    /// A connection error happened: the table is no longer known.
    failed: bool,
}

impl fmt::Debug for Decoder {
    // No field contents: the table holds header values (credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("entries", &self.table.len())
            .field("size", &self.size)
            .field("max_size", &self.max_size)
            .field("limit", &self.limit)
            .field("required_update", &self.required_update)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// An empty table with maximum and limit 4096, the initial
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub(crate) fn new() -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE,
            limit: DEFAULT_TABLE_SIZE,
            required_update: None,
            failed: false,
        }
    }

    /// Sets the limit on the table size: the SETTINGS_HEADER_TABLE_SIZE the
    /// receiving side announced, from when it is acknowledged. Size updates
    /// above it are errors; if it is below the current maximum, the next
    /// block must start with a size update no larger than it (RFC 7541
    /// §4.2). The table's memory is bounded by the limit, so the caller
    /// should cap what it lets a peer announce.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        if limit < self.max_size {
            self.required_update = Some(self.required_update.map_or(limit, |lowest| lowest.min(limit)));
        }
    }

    /// Decodes one complete header block: the HEADERS (or PUSH_PROMISE) and
    /// CONTINUATION fragments concatenated, padding and priority removed.
    ///
    /// `max_list_size` bounds the decoded list (name + value + 32 per field):
    /// past it, fields are no longer kept, the rest of the block is still
    /// read to keep the table in sync, and the result is
    /// [`HpackError::TooLarge`].
    pub(crate) fn decode(&mut self, block: &[u8], max_list_size: usize) -> Result<Block, HpackError> {
        if self.failed {
            return Err(HpackError::Failed);
        }
        let result = self.decode_block(block, max_list_size);
        if matches!(result, Err(err) if err != HpackError::TooLarge) {
            self.failed = true;
        }
        result
    }

    fn decode_block(&mut self, block: &[u8], max_list_size: usize) -> Result<Block, HpackError> {
        let mut input = Input { rest: block };
        let mut out = Block::default();
        let mut list = ListSize { size: 0, max: max_list_size };
        let mut field_seen = false;
        while let Some(&first) = input.rest.first() {
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                let size = input.integer(5)?;
                if field_seen || out.size_updates.len() == MAX_SIZE_UPDATES {
                    return Err(HpackError::SizeUpdate);
                }
                let size = usize::try_from(size).map_err(|_| HpackError::SizeUpdate)?;
                if size > self.limit || self.required_update.is_some_and(|required| size > required) {
                    return Err(HpackError::SizeUpdate);
                }
                self.required_update = None;
                self.max_size = size;
                self.evict_to(size);
                out.size_updates.push(size);
                continue;
            }
            if self.required_update.is_some() {
                return Err(HpackError::SizeUpdate);
            }
            field_seen = true;
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = input.integer(7)?;
                let (name, value) = self.get(index)?;
                if list.add(name.len(), value.len()) {
                    out.push(name, value, false);
                }
                continue;
            }
            // Literal field (§6.2): with incremental indexing, never indexed,
            // or without indexing.
            let (indexing, never_indexed, prefix) = if first & 0x40 != 0 {
                (true, false, 6)
            } else if first & 0x10 != 0 {
                (false, true, 4)
            } else {
                (false, false, 4)
            };
            let index = input.integer(prefix)?;
            // A string is only needed if it is kept or inserted; while the
            // list is over its limit, the others are only checked.
            let keep = indexing || !list.over();
            let literal_name = if index == 0 { Some(input.string(keep)?) } else { None };
            let value = input.string(keep)?;
            let name: &[u8] = match &literal_name {
                Some(name) => name.as_ref(),
                None => self.get(index)?.0,
            };
            if list.add(name.len(), value.len()) {
                out.push(name, &value, never_indexed);
            }
            if indexing {
                let entry = (Box::from(name), Box::from(value.as_ref()));
                self.insert(entry);
            }
        }
        if self.required_update.is_some() {
            return Err(HpackError::SizeUpdate);
        }
        if list.over() {
            return Err(HpackError::TooLarge);
        }
        Ok(out)
    }

    /// The field at `index` in the static table, then the dynamic table.
    fn get(&self, index: u64) -> Result<(&[u8], &[u8]), HpackError> {
        let invalid = HpackError::InvalidIndex(index);
        let position = usize::try_from(index).map_err(|_| invalid)?.checked_sub(1).ok_or(invalid)?;
        if let Some(&(name, value)) = STATIC_TABLE.get(position) {
            return Ok((name, value));
        }
        let (name, value) = self.table.get(position - STATIC_TABLE.len()).ok_or(invalid)?;
        Ok((name, value))
    }

    /// Adds an entry, evicting the oldest ones to make room; an entry larger
    /// than the table empties it (RFC 7541 §4.4).
    fn insert(&mut self, entry: Entry) {
        let size = entry_size(&entry);
        if size > self.max_size {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.table.push_front(entry);
    }

    /// Evicts the oldest entries until the table's size is at most `size`.
    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            match self.table.pop_back() {
                Some(entry) => self.size -= entry_size(&entry),
                None => self.size = 0,
            }
        }
    }
}

fn entry_size((name, value): &Entry) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

impl Block {
    fn push(&mut self, name: &[u8], value: &[u8], never_indexed: bool) {
        self.headers.push((name.to_vec(), value.to_vec()));
        self.never_indexed.push(never_indexed);
    }
}

/// The decoded header list's size against its limit.
struct ListSize {
    size: usize,
    max: usize,
}

impl ListSize {
    /// Counts a field; whether the list is still within its limit.
    fn add(&mut self, name: usize, value: usize) -> bool {
        self.size = self.size.saturating_add(name).saturating_add(value).saturating_add(ENTRY_OVERHEAD);
        !self.over()
    }

    fn over(&self) -> bool {
        self.size > self.max
    }
}

/// The unread rest of a block.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn octet(&mut self) -> Result<u8, HpackError> {
        let (&octet, rest) = self.rest.split_first().ok_or(HpackError::Truncated)?;
        self.rest = rest;
        Ok(octet)
    }

    /// An integer with an N-bit prefix (§5.1), the representation's flag
    /// bits above the prefix ignored.
    fn integer(&mut self, prefix_bits: u32) -> Result<u64, HpackError> {
        let prefix_max = (1u64 << prefix_bits) - 1;
        let mut value = u64::from(self.octet()?) & prefix_max;
        if value < prefix_max {
            return Ok(value);
        }
        for n in 0..MAX_INT_OCTETS {
            let octet = self.octet()?;
            value += u64::from(octet & 0x7f) << (7 * n);
            if value > MAX_INT {
                return Err(HpackError::IntegerOverflow);
            }
            if octet & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HpackError::IntegerOverflow)
    }

    /// A string literal (§5.2). When `keep` is false, a Huffman string is
    /// only checked and an empty string returned.
    fn string(&mut self, keep: bool) -> Result<Cow<'a, [u8]>, HpackError> {
        let huffman = self.rest.first().is_some_and(|octet| octet & 0x80 != 0);
        let len = self.integer(7)?;
        let len = usize::try_from(len).map_err(|_| HpackError::Truncated)?;
        if len > self.rest.len() {
            return Err(HpackError::Truncated);
        }
        let (text, rest) = self.rest.split_at(len);
        self.rest = rest;
        if !huffman {
            return Ok(Cow::Borrowed(text));
        }
        if !keep {
            huffman::check(text).map_err(|_| HpackError::Huffman)?;
            return Ok(Cow::Borrowed(&[]));
        }
        let mut out = Vec::new();
        huffman::decode(text, &mut out).map_err(|_| HpackError::Huffman)?;
        Ok(Cow::Owned(out))
    }
}

/// Encodes a header list without touching the dynamic table, appending it to
/// `out`.
///
/// `size_updates` come first. A field matching a static entry in name and
/// value is an indexed field; one matching a static name is a literal
/// without indexing with that name's index; anything else is a literal
/// without indexing with a literal name. Fields flagged in `never_indexed`
/// (parallel to `headers`; missing flags are false) and `authorization`,
/// `cookie` and `proxy-authorization` are literals never indexed. Strings are
/// Huffman-coded when that is shorter. Names are written as given.
pub(crate) fn encode<N: AsRef<[u8]>, V: AsRef<[u8]>>(
    size_updates: &[usize],
    headers: &[(N, V)],
    never_indexed: &[bool],
    out: &mut Vec<u8>,
) {
    for &size in size_updates {
        put_integer(out, 0x20, 5, size);
    }
    for (i, (name, value)) in headers.iter().enumerate() {
        let (name, value) = (name.as_ref(), value.as_ref());
        let sensitive = never_indexed.get(i).copied().unwrap_or(false)
            || SENSITIVE.iter().any(|sensitive| name.eq_ignore_ascii_case(sensitive));
        let mut name_index = None;
        let mut full_match = None;
        for (position, &(static_name, static_value)) in STATIC_TABLE.iter().enumerate() {
            if static_name == name {
                name_index = name_index.or(Some(position + 1));
                if static_value == value {
                    full_match = Some(position + 1);
                    break;
                }
            }
        }
        match full_match {
            Some(index) if !sensitive => put_integer(out, 0x80, 7, index),
            _ => {
                put_integer(out, if sensitive { 0x10 } else { 0x00 }, 4, name_index.unwrap_or(0));
                if name_index.is_none() {
                    put_string(out, name);
                }
                put_string(out, value);
            }
        }
    }
}

/// An integer with an N-bit prefix after the `flags` bits (§5.1).
fn put_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let prefix_max = (1usize << prefix_bits) - 1;
    if value < prefix_max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | prefix_max as u8);
    let mut rest = value - prefix_max;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A string literal, Huffman-coded if that is shorter (§5.2).
fn put_string(out: &mut Vec<u8>, text: &[u8]) {
    let coded = huffman::encoded_len(text);
    if coded < text.len() {
        put_integer(out, 0x80, 7, coded);
        huffman::encode(text, out);
    } else {
        put_integer(out, 0x00, 7, text.len());
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests;
