//! UDP headers.

use super::checksum;
use core::net::Ipv4Addr;

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

/// A parsed UDP header whose length field is consistent with the IP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    /// Header plus payload, from the length field.
    pub len: usize,
    pub checksum: u16,
}

impl UdpHeader {
    /// Parse the header at the start of `seg` (the IP payload); `None` if truncated or
    /// the length field disagrees with the segment.
    pub fn parse(seg: &[u8]) -> Option<UdpHeader> {
        let b = seg.get(..HEADER_LEN)?;
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        if len < HEADER_LEN || len > seg.len() {
            return None;
        }
        Some(UdpHeader {
            src_port: u16::from_be_bytes([b[0], b[1]]),
            dst_port: u16::from_be_bytes([b[2], b[3]]),
            len,
            checksum: u16::from_be_bytes([b[6], b[7]]),
        })
    }

    /// True if the checksum is absent (zero) or verifies over `seg[..len]`.
    pub fn checksum_ok(&self, src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> bool {
        if self.checksum == 0 {
            return true;
        }
        let Some(s) = seg.get(..self.len) else {
            return false;
        };
        let mut acc = checksum::sum_words(&src.octets(), 0);
        acc = checksum::sum_words(&dst.octets(), acc);
        acc += u64::from(super::ipv4::PROTO_UDP) + self.len as u64;
        checksum::fold(checksum::sum_words(s, acc)) == 0xffff
    }
}

/// Write a UDP header for a payload already in place after it in `seg`, with the full
/// checksum. `seg` must hold exactly header + payload. False if too short or too long.
pub fn write_header(
    seg: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
) -> bool {
    let Ok(len) = u16::try_from(seg.len()) else {
        return false;
    };
    let Some(h) = seg.get_mut(..HEADER_LEN) else {
        return false;
    };
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&len.to_be_bytes());
    h[6..8].fill(0);
    let c = checksum::udp4(src, dst, seg);
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_parse_verify() {
        let (a, b) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));
        let mut seg = [0u8; 13];
        seg[8..].copy_from_slice(b"hello");
        assert!(write_header(&mut seg, a, b, 4000, 5000));
        let h = UdpHeader::parse(&seg).unwrap();
        assert_eq!((h.src_port, h.dst_port, h.len), (4000, 5000, 13));
        assert!(h.checksum_ok(a, b, &seg));
        seg[9] ^= 0x40;
        assert!(!h.checksum_ok(a, b, &seg));
        assert!(UdpHeader::parse(&seg[..7]).is_none());
        seg[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert!(UdpHeader::parse(&seg).is_none());
    }
}
