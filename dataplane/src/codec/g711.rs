//! ITU-T G.711 mu-law (PCMU) and A-law (PCMA), exact for every input.
//!
//! Decoding is a 256-entry table lookup and encoding a 65,536-entry table lookup (one byte
//! per 16-bit sample, 64 KiB per law); all four tables are computed at compile time by the
//! `const fn` reference formulas below, which are also what the SIMD kernels in
//! [`crate::mixer::kernel`] implement lane-wise. Linear samples are 16-bit: encoding uses the
//! 14 (mu-law) or 13 (A-law) most significant bits, as G.711 specifies.

/// Mu-law bias added to the magnitude before the segment search (0x84 >> 2 at 14 bits).
const ULAW_BIAS_14: i32 = 0x21;
/// Mu-law bias at 16-bit scale, used by the decoder.
const ULAW_BIAS_16: i32 = 0x84;

/// Decodes one mu-law code by formula (compile-time reference for [`ULAW_DECODE`]).
const fn ulaw_decode_formula(code: u8) -> i16 {
    let c = !code;
    let exponent = ((c >> 4) & 0x07) as u32;
    let mantissa = (c & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS_16) << exponent) - ULAW_BIAS_16;
    if c & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Decodes one A-law code by formula (compile-time reference for [`ALAW_DECODE`]).
const fn alaw_decode_formula(code: u8) -> i16 {
    let c = code ^ 0x55;
    let segment = ((c >> 4) & 0x07) as u32;
    let mantissa = (c & 0x0F) as i32;
    let magnitude = if segment == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (segment - 1)
    };
    // In A-law a set sign bit means positive.
    if c & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Number of significant bits of `v` (0 for 0), for `v < 2^16`.
const fn bit_length(v: i32) -> i32 {
    (32 - (v as u32).leading_zeros()) as i32
}

/// Encodes one sample to mu-law by formula (compile-time reference for [`ULAW_ENCODE`]).
///
/// The sample is reduced to 14 bits; the biased magnitude is clamped to 8191, which yields the
/// same code (0x7F before inversion) that G.711 specifies for out-of-range magnitudes.
const fn ulaw_encode_formula(sample: i16) -> u8 {
    let v = (sample >> 2) as i32;
    let (magnitude, mask) = if v < 0 { (-v, 0x7F) } else { (v, 0xFF) };
    let mut m = magnitude + ULAW_BIAS_14;
    if m > 0x1FFF {
        m = 0x1FFF;
    }
    // Segment 0 holds magnitudes up to 63; each further segment doubles the range.
    let segment = if m < 64 { 0 } else { bit_length(m) - 6 };
    let mantissa = (m >> (segment + 1)) & 0x0F;
    (((segment << 4) | mantissa) ^ mask) as u8
}

/// Encodes one sample to A-law by formula (compile-time reference for [`ALAW_ENCODE`]).
const fn alaw_encode_formula(sample: i16) -> u8 {
    let v = (sample >> 3) as i32;
    // Negative values use the one's complement (-v - 1) as magnitude, range 0..=4095.
    let (magnitude, mask) = if v >= 0 { (v, 0xD5) } else { (!v, 0x55) };
    let segment = if magnitude < 32 {
        0
    } else {
        bit_length(magnitude) - 5
    };
    let shift = if segment < 2 { 1 } else { segment };
    let mantissa = (magnitude >> shift) & 0x0F;
    (((segment << 4) | mantissa) ^ mask) as u8
}

const fn build_decode(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_formula(i as u8)
        } else {
            ulaw_decode_formula(i as u8)
        };
        i += 1;
    }
    t
}

const fn build_encode(alaw: bool) -> [u8; 65536] {
    let mut t = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        let s = i as u16 as i16;
        t[i] = if alaw {
            alaw_encode_formula(s)
        } else {
            ulaw_encode_formula(s)
        };
        i += 1;
    }
    t
}

/// Mu-law decode table as a constant (for building derived tables at compile time).
pub const ULAW_DECODE_TABLE: [i16; 256] = build_decode(false);
/// A-law decode table as a constant (for building derived tables at compile time).
pub const ALAW_DECODE_TABLE: [i16; 256] = build_decode(true);
/// Mu-law decode table: `ULAW_DECODE[code]` is the 16-bit linear value of `code`.
pub static ULAW_DECODE: [i16; 256] = ULAW_DECODE_TABLE;
/// A-law decode table: `ALAW_DECODE[code]` is the 16-bit linear value of `code`.
pub static ALAW_DECODE: [i16; 256] = ALAW_DECODE_TABLE;
/// Mu-law encode table indexed by the sample's bit pattern (`sample as u16`).
pub static ULAW_ENCODE: [u8; 65536] = build_encode(false);
/// A-law encode table indexed by the sample's bit pattern (`sample as u16`).
pub static ALAW_ENCODE: [u8; 65536] = build_encode(true);

/// Mu-law code of digital silence (linear 0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code of digital silence (linear 0 encodes to 0xD5).
pub const ALAW_SILENCE: u8 = 0xD5;

/// Decodes one mu-law code to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decodes one A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Encodes one 16-bit linear sample to mu-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[usize::from(sample as u16)]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[usize::from(sample as u16)]
}

/// Decodes `min(codes.len(), pcm.len())` mu-law codes into `pcm`; returns the count.
pub fn ulaw_decode_slice(codes: &[u8], pcm: &mut [i16]) -> usize {
    let n = codes.len().min(pcm.len());
    for (o, &c) in pcm.iter_mut().zip(codes) {
        *o = ulaw_decode(c);
    }
    n
}

/// Decodes `min(codes.len(), pcm.len())` A-law codes into `pcm`; returns the count.
pub fn alaw_decode_slice(codes: &[u8], pcm: &mut [i16]) -> usize {
    let n = codes.len().min(pcm.len());
    for (o, &c) in pcm.iter_mut().zip(codes) {
        *o = alaw_decode(c);
    }
    n
}

/// Encodes `min(pcm.len(), codes.len())` samples to mu-law into `codes`; returns the count.
pub fn ulaw_encode_slice(pcm: &[i16], codes: &mut [u8]) -> usize {
    let n = codes.len().min(pcm.len());
    for (o, &s) in codes.iter_mut().zip(pcm) {
        *o = ulaw_encode(s);
    }
    n
}

/// Encodes `min(pcm.len(), codes.len())` samples to A-law into `codes`; returns the count.
pub fn alaw_encode_slice(pcm: &[i16], codes: &mut [u8]) -> usize {
    let n = codes.len().min(pcm.len());
    for (o, &s) in codes.iter_mut().zip(pcm) {
        *o = alaw_encode(s);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes_decode_to_zero() {
        assert_eq!(ulaw_decode(ULAW_SILENCE), 0);
        assert_eq!(ulaw_encode(0), ULAW_SILENCE);
        assert_eq!(alaw_encode(0), ALAW_SILENCE);
        assert_eq!(alaw_decode(ALAW_SILENCE), 8);
    }

    #[test]
    fn extremes() {
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_then_encode_is_identity_except_negative_zero() {
        for c in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(c));
            // 0x7F is mu-law "negative zero"; it decodes to 0, which encodes as 0xFF.
            if c == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, c, "mu-law code {c:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law code {c:#04x}");
        }
    }

    #[test]
    fn encode_is_monotonic() {
        let mut prev_u = ulaw_decode(ulaw_encode(i16::MIN));
        let mut prev_a = alaw_decode(alaw_encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= prev_u && a >= prev_a, "sample {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn slices_stop_at_shorter() {
        let mut pcm = [0i16; 3];
        assert_eq!(ulaw_decode_slice(&[0xFF; 5], &mut pcm), 3);
        let mut codes = [0u8; 2];
        assert_eq!(alaw_encode_slice(&[0; 4], &mut codes), 2);
        assert_eq!(codes, [ALAW_SILENCE; 2]);
    }
}
