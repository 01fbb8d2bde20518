//! ICMP echo (RFC 792): answer a request in place.

use super::checksum;

/// ICMP echo request type.
pub const ECHO_REQUEST: u8 = 8;
/// ICMP echo reply type.
pub const ECHO_REPLY: u8 = 0;

/// The type of the ICMP message at the start of `msg`, if its checksum verifies.
pub fn message_type(msg: &[u8]) -> Option<u8> {
    let t = *msg.first()?;
    (msg.len() >= 8 && checksum::verifies(msg)).then_some(t)
}

/// Turn the echo request `msg` (ICMP header + data) into its reply in place: type 0,
/// same identifier, sequence and data, checksum updated incrementally.
pub fn echo_reply_in_place(msg: &mut [u8]) -> bool {
    let Some(h) = msg.get_mut(..4) else {
        return false;
    };
    if h[0] != ECHO_REQUEST {
        return false;
    }
    let old = u16::from_be_bytes([h[0], h[1]]);
    h[0] = ECHO_REPLY;
    let new = u16::from_be_bytes([h[0], h[1]]);
    let c = checksum::update16(u16::from_be_bytes([h[2], h[3]]), old, new);
    h[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_becomes_valid_reply() {
        let mut m = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(message_type(&m), Some(ECHO_REQUEST));
        assert!(echo_reply_in_place(&mut m));
        assert_eq!(message_type(&m), Some(ECHO_REPLY));
        assert!(!echo_reply_in_place(&mut m), "a reply is not answered");
        m[9] ^= 1;
        assert_eq!(message_type(&m), None);
        assert_eq!(message_type(&[8, 0, 0]), None);
    }
}
