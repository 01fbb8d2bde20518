//! L16: linear 16-bit PCM in network (big-endian) byte order (RFC 3551 §4.5.11).

/// Encodes `min(pcm.len(), out.len() / 2)` samples big-endian into `out`; returns the
/// number of bytes written.
pub fn encode_slice(pcm: &[i16], out: &mut [u8]) -> usize {
    let mut n = 0;
    for (o, s) in out.chunks_exact_mut(2).zip(pcm) {
        o.copy_from_slice(&s.to_be_bytes());
        n += 2;
    }
    n
}

/// Decodes `min(payload.len() / 2, pcm.len())` big-endian samples into `pcm`; returns the
/// number of samples written. A trailing odd byte is ignored.
pub fn decode_slice(payload: &[u8], pcm: &mut [i16]) -> usize {
    let mut n = 0;
    for (o, b) in pcm.iter_mut().zip(payload.chunks_exact(2)) {
        *o = i16::from_be_bytes([b[0], b[1]]);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_round_trip() {
        let mut out = [0u8; 6];
        assert_eq!(encode_slice(&[0x0102, -2, i16::MIN], &mut out), 6);
        assert_eq!(out, [1, 2, 0xFF, 0xFE, 0x80, 0]);
        let mut pcm = [0i16; 4];
        assert_eq!(decode_slice(&out[..5], &mut pcm), 2);
        assert_eq!(pcm[..2], [0x0102, -2]);
    }
}
