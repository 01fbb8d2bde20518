//! IPv4 headers.

use super::checksum;
use core::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Why an IPv4 header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4Error {
    #[error("IPv4 packet is truncated or its length fields are inconsistent")]
    Malformed,
    #[error("IPv4 header checksum does not verify")]
    BadChecksum,
}

/// A validated IPv4 header: version 4, lengths consistent with the buffer, checksum good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Header length in bytes (20..=60).
    pub header_len: usize,
    /// Total length from the header (header + payload), never more than the buffer.
    pub total_len: usize,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// True for any fragment: More Fragments set or a non-zero offset.
    pub is_fragment: bool,
}

impl Ipv4Header {
    /// Parse and validate the header at the start of `pkt` (bytes after Ethernet).
    pub fn parse(pkt: &[u8]) -> Result<Ipv4Header, Ipv4Error> {
        let b = pkt.get(..MIN_HEADER_LEN).ok_or(Ipv4Error::Malformed)?;
        if b[0] >> 4 != 4 {
            return Err(Ipv4Error::Malformed);
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if header_len < MIN_HEADER_LEN || total_len < header_len || total_len > pkt.len() {
            return Err(Ipv4Error::Malformed);
        }
        let header = pkt.get(..header_len).ok_or(Ipv4Error::Malformed)?;
        if !checksum::verifies(header) {
            return Err(Ipv4Error::BadChecksum);
        }
        let frag = u16::from_be_bytes([b[6], b[7]]);
        Ok(Ipv4Header {
            header_len,
            total_len,
            ttl: b[8],
            protocol: b[9],
            src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
            dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
            is_fragment: frag & 0x3fff != 0,
        })
    }
}

/// Write a 20-byte IPv4 header (no options, DF set) with a correct checksum at the start
/// of `buf`. Returns false if `buf` is shorter than the header or the total length
/// does not fit in 16 bits.
pub fn write_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    ident: u16,
) -> bool {
    let Ok(total) = u16::try_from(MIN_HEADER_LEN + payload_len) else {
        return false;
    };
    let Some(h) = buf.get_mut(..MIN_HEADER_LEN) else {
        return false;
    };
    h[0] = 0x45;
    h[1] = 0xb8; // DSCP EF (46): the class for voice.
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    h[8] = 64;
    h[9] = protocol;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    true
}

/// Swap source and destination of the IPv4 header at the start of `pkt` in place and
/// reset its TTL to 64, keeping the header checksum valid (incremental update).
pub fn reply_in_place(pkt: &mut [u8]) -> bool {
    let Some(h) = pkt.get_mut(..MIN_HEADER_LEN) else {
        return false;
    };
    let mut src = [0u8; 4];
    src.copy_from_slice(&h[12..16]);
    h.copy_within(16..20, 12);
    h[16..20].copy_from_slice(&src);
    // Swapping two words leaves the sum unchanged; only TTL changes.
    let old = u16::from_be_bytes([h[8], h[9]]);
    h[8] = 64;
    let new = u16::from_be_bytes([h[8], h[9]]);
    let c = checksum::update16(u16::from_be_bytes([h[10], h[11]]), old, new);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let mut p = [0u8; 28];
        assert!(write_header(
            &mut p,
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
            PROTO_UDP,
            8,
            7
        ));
        p
    }

    #[test]
    fn written_header_parses() {
        let p = sample();
        let h = Ipv4Header::parse(&p).unwrap();
        assert_eq!(h.total_len, 28);
        assert_eq!(h.header_len, 20);
        assert_eq!(h.protocol, PROTO_UDP);
        assert_eq!(h.src, Ipv4Addr::new(198, 18, 0, 2));
        assert!(!h.is_fragment);
    }

    #[test]
    fn rejects_bad_input() {
        let p = sample();
        assert_eq!(Ipv4Header::parse(&p[..27]), Err(Ipv4Error::Malformed));
        let mut q = p;
        q[15] ^= 1;
        assert_eq!(Ipv4Header::parse(&q), Err(Ipv4Error::BadChecksum));
        let mut q = p;
        q[0] = 0x44;
        assert_eq!(Ipv4Header::parse(&q), Err(Ipv4Error::Malformed));
        assert_eq!(Ipv4Header::parse(&[]), Err(Ipv4Error::Malformed));
    }

    #[test]
    fn reply_swaps_and_stays_valid() {
        let mut p = sample();
        p[8] = 3;
        p[10..12].fill(0);
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(reply_in_place(&mut p));
        let h = Ipv4Header::parse(&p).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(h.dst, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(h.ttl, 64);
    }
}
