//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624), shared by
//! IPv4, ICMP, UDP and the in-place RTP rewrite.

use core::net::Ipv4Addr;

/// Add `data` as big-endian 16-bit words to the running one's-complement sum `acc`
/// (an odd trailing byte is padded with zero). Fold with [`fold`].
pub fn sum_words(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Fold a running sum to 16 bits with end-around carry (not yet complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The RFC 1071 checksum of `data`: write it into a zeroed checksum field, and a
/// verifier summing the whole header gets [`verifies`] == true.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(data, 0))
}

/// True when `data`, checksum field included, sums to all ones.
pub fn verifies(data: &[u8]) -> bool {
    fold(sum_words(data, 0)) == 0xffff
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed
/// from `old` to `new`: HC' = ~(~HC + ~m + m').
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!hc) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// [`update16`] for a 32-bit field (two adjacent words, e.g. an SSRC or an address).
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let hc = update16(hc, (old >> 16) as u16, (new >> 16) as u16);
    update16(hc, old as u16, new as u16)
}

/// The UDP checksum over the IPv4 pseudo-header and `segment` (UDP header with a zero
/// checksum field, plus payload). A computed zero is sent as 0xffff (RFC 768).
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut acc = sum_words(&src.octets(), 0);
    acc = sum_words(&dst.octets(), acc);
    acc += u64::from(super::ipv4::PROTO_UDP);
    acc += segment.len() as u64;
    acc = sum_words(segment, acc);
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// [`update16`] for a UDP checksum field, where zero means "no checksum" and stays so,
/// and a result of zero is sent as 0xffff.
pub fn update_udp16(hc: u16, old: u16, new: u16) -> u16 {
    if hc == 0 {
        return 0;
    }
    match update16(hc, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// [`update_udp16`] for a 32-bit field.
pub fn update_udp32(hc: u16, old: u32, new: u32) -> u16 {
    if hc == 0 {
        return 0;
    }
    match update32(hc, old, new) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3's example bytes sum to 0xddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), checksum(&[0x12, 0x00]));
    }

    proptest! {
        #[test]
        fn incremental_update_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 10..64),
            at in 0usize..3,
            new in any::<u32>(),
        ) {
            data[0] = 0; data[1] = 0;
            let c = checksum(&data);
            data[0..2].copy_from_slice(&c.to_be_bytes());
            prop_assert!(verifies(&data));
            let off = 2 + 2 * at;
            let old = u32::from_be_bytes([data[off], data[off+1], data[off+2], data[off+3]]);
            data[off..off+4].copy_from_slice(&new.to_be_bytes());
            let c2 = update32(c, old, new);
            data[0..2].copy_from_slice(&c2.to_be_bytes());
            prop_assert!(verifies(&data));
        }

        #[test]
        fn udp_incremental_matches_full(payload in proptest::collection::vec(any::<u8>(), 12..40), new in any::<u16>()) {
            let src = Ipv4Addr::new(198, 18, 0, 2);
            let dst = Ipv4Addr::new(198, 18, 0, 1);
            let mut seg = vec![0u8; 8];
            seg.extend_from_slice(&payload);
            let len = seg.len() as u16;
            seg[4..6].copy_from_slice(&len.to_be_bytes());
            let c = udp4(src, dst, &seg);
            let old = u16::from_be_bytes([seg[10], seg[11]]);
            seg[10..12].copy_from_slice(&new.to_be_bytes());
            let full = udp4(src, dst, &seg);
            let inc = update_udp16(c, old, new);
            // 0x0000 and 0xffff are the same one's-complement value.
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }
    }
}
