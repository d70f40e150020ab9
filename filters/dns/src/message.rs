//! Parsing DNS messages strictly, and printing names and types the way
//! Hubble shows them.

use std::fmt::Write;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// DNS header length.
pub(crate) const HEADER_LEN: usize = 12;

/// Parses one whole DNS message. Anything hickory rejects is malformed, and
/// so are bytes after the last record (servers could read them two ways).
pub(crate) fn parse(data: &[u8]) -> Result<Message, String> {
    if data.len() < HEADER_LEN {
        return Err(format!("truncated header: {} bytes", data.len()));
    }
    // Every question takes at least 5 bytes and every record 11: reject
    // absurd counts before hickory sizes vectors by them.
    let count = |at: usize| usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
    let needed = count(4) * 5 + (count(6) + count(8) + count(10)) * 11;
    if needed > data.len() - HEADER_LEN {
        return Err(format!("section counts need at least {needed} bytes, {} left", data.len() - HEADER_LEN));
    }
    let mut decoder = BinDecoder::new(data);
    let message = Message::read(&mut decoder).map_err(|err| format!("malformed message: {err}"))?;
    if !decoder.is_empty() {
        return Err(format!("{} bytes after the last record", decoder.len()));
    }
    Ok(message)
}

/// The message id, if the header is there.
pub(crate) fn id(data: &[u8]) -> Option<u16> {
    (data.len() >= HEADER_LEN).then(|| u16::from_be_bytes([data[0], data[1]]))
}

/// A name in presentation form as Hubble shows queries: lowercase, with a
/// trailing dot, `\.` and `\\` escaped, other bytes outside printable
/// ASCII as `\DDD` (decimal, RFC 1035). The root is `.`.
pub(crate) fn name(name: &Name) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        for &byte in label {
            let byte = byte.to_ascii_lowercase();
            match byte {
                b'.' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(byte));
                }
                0x21..=0x7e => out.push(char::from(byte)),
                _ => {
                    let _ = write!(out, "\\{byte:03}");
                }
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// A record type's mnemonic; unknown types as `TYPE123` (RFC 3597).
pub(crate) fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        RecordType::ZERO => "TYPE0".to_string(),
        known => known.to_string(),
    }
}

/// Same name, ignoring ASCII case.
pub(crate) fn same_name(a: &Name, b: &Name) -> bool {
    a.iter().len() == b.iter().len() && a.iter().zip(b.iter()).all(|(x, y)| x.eq_ignore_ascii_case(y))
}
