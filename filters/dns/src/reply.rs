//! The answer to a denied query.

use hickory_proto::op::{Message, MessageType, ResponseCode};

/// REFUSED.
pub(crate) const REFUSED: u8 = 5;

/// A response to `query` with `rcode`: same id, opcode and questions, QR=1,
/// RD and CD copied, RA=1 (we answer for a recursive resolver), no records.
pub(crate) fn reject(query: &Message, rcode: u8) -> Vec<u8> {
    let mut reply = Message::new(query.id, MessageType::Response, query.op_code);
    reply.metadata.recursion_desired = query.recursion_desired;
    reply.metadata.checking_disabled = query.checking_disabled;
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = ResponseCode::from_low(rcode);
    reply.queries = query.queries.clone();
    match reply.to_vec() {
        // Over 65,535 bytes it would not fit a TCP frame: possible only
        // when the query compressed its names in ways we do not repeat.
        Ok(bytes) if bytes.len() <= usize::from(u16::MAX) => bytes,
        _ => header_only(query, rcode),
    }
}

/// The same answer without the question, for when the question does not
/// encode again: the client must still get an answer.
fn header_only(query: &Message, rcode: u8) -> Vec<u8> {
    let [hi, lo] = query.id.to_be_bytes();
    let opcode = u8::from(query.op_code) & 0x0f;
    let flags1 = 0x80 | (opcode << 3) | u8::from(query.recursion_desired);
    let flags2 = 0x80 | (u8::from(query.checking_disabled) << 4) | (rcode & 0x0f);
    vec![hi, lo, flags1, flags2, 0, 0, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_fallback_is_a_valid_response() {
        let mut query = Message::new(0xbeef, MessageType::Query, hickory_proto::op::OpCode::Query);
        query.metadata.recursion_desired = true;
        let bytes = header_only(&query, REFUSED);
        let reply = Message::from_vec(&bytes).unwrap();
        assert_eq!(reply.id, 0xbeef);
        assert_eq!(reply.message_type, MessageType::Response);
        assert!(reply.recursion_desired && reply.recursion_available);
        assert_eq!(reply.response_code, ResponseCode::Refused);
    }
}
