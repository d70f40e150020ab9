//! Packet marks shared with the datapath.
//!
//! The proxy's upstream sockets carry the source identity in `SO_MARK`, so
//! the destination's ingress policy sees the true source:
//! `identity << 16 | IDENTITY_MAGIC`. The redirect mark the datapath sets
//! on packets it steers to the proxy uses a different magic, so the two
//! never collide.

/// Low 16 bits of a mark that carries an identity.
pub const IDENTITY_MAGIC: u32 = 0x0A00;
/// Low 16 bits of the datapath's redirect mark.
pub const REDIRECT_MAGIC: u32 = 0x0B00;
/// Mask of the magic bits.
pub const MAGIC_MASK: u32 = 0xFFFF;

/// The mark for traffic the proxy sends on behalf of `identity`. Identities
/// wider than 16 bits (local-scope CIDR identities) are sent as `world`.
pub fn identity_mark(identity: u32) -> u32 {
    let identity = if identity > 0xFFFF { crate::identity::reserved::WORLD.0 } else { identity };
    identity << 16 | IDENTITY_MAGIC
}

/// The identity a mark carries, if it carries one.
pub fn identity_of_mark(mark: u32) -> Option<u32> {
    (mark & MAGIC_MASK == IDENTITY_MAGIC).then_some(mark >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_never_look_like_redirects() {
        assert_eq!(identity_of_mark(identity_mark(258)), Some(258));
        assert_eq!(identity_of_mark(identity_mark(1 << 24)), Some(2));
        assert_eq!(identity_of_mark(REDIRECT_MAGIC), None);
        assert_ne!(identity_mark(0) & MAGIC_MASK, REDIRECT_MAGIC);
    }
}
