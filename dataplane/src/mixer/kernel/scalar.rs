//! Scalar kernels: the reference every SIMD kernel must match bit for bit.

use crate::codec::{g711, l16, CodecKind};

/// Bytes one encoded sample takes in `codec`.
const fn bytes_per_sample(codec: CodecKind) -> usize {
    codec.encoded_len(1)
}

/// Decodes `payload` into `pcm`; returns the number of samples written.
pub fn decode(codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> usize {
    match codec {
        CodecKind::Pcmu => g711::ulaw_decode_slice(payload, pcm),
        CodecKind::Pcma => g711::alaw_decode_slice(payload, pcm),
        CodecKind::L16 => l16::decode_slice(payload, pcm),
    }
}

/// Decodes like [`decode`] and returns (samples written, [`energy`] of them).
pub fn decode_energy(codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> (usize, u64) {
    let n = decode(codec, payload, pcm);
    (n, energy(pcm.get(..n).unwrap_or(&[])))
}

/// The frame energy used for talker selection: the sum of the squares of the samples
/// reduced to 13 bits (`x >> 3`).
pub fn energy(pcm: &[i16]) -> u64 {
    pcm.iter()
        .map(|&x| {
            let v = i32::from(x >> 3);
            (v * v) as u64
        })
        .sum()
}

/// Adds `pcm` into `sum` sample by sample (wrapping, as the SIMD kernels do); returns the
/// number of samples added.
pub fn accumulate(sum: &mut [i32], pcm: &[i16]) -> usize {
    let n = sum.len().min(pcm.len());
    for (s, &x) in sum.iter_mut().zip(pcm) {
        *s = s.wrapping_add(i32::from(x));
    }
    n
}

/// Saturates a 32-bit mix sample to 16 bits.
#[inline]
pub fn saturate(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[inline]
fn encode_one(codec: CodecKind, s: i16, out: &mut [u8]) {
    match codec {
        CodecKind::Pcmu => {
            if let Some(o) = out.first_mut() {
                *o = g711::ulaw_encode(s);
            }
        }
        CodecKind::Pcma => {
            if let Some(o) = out.first_mut() {
                *o = g711::alaw_encode(s);
            }
        }
        CodecKind::L16 => {
            for (o, b) in out.iter_mut().zip(s.to_be_bytes()) {
                *o = b;
            }
        }
    }
}

/// Encodes `saturate(sum)` into `out`; returns the number of samples encoded
/// (`min(sum.len(), out.len() / bytes per sample)`).
pub fn encode_sum(codec: CodecKind, sum: &[i32], out: &mut [u8]) -> usize {
    let bps = bytes_per_sample(codec);
    let mut n = 0;
    for (o, &s) in out.chunks_exact_mut(bps).zip(sum) {
        encode_one(codec, saturate(s), o);
        n += 1;
    }
    n
}

/// Encodes `saturate(sum - own)` into `out`; returns the number of samples encoded
/// (`min(sum.len(), own.len(), out.len() / bytes per sample)`).
pub fn encode_minus(codec: CodecKind, sum: &[i32], own: &[i16], out: &mut [u8]) -> usize {
    let bps = bytes_per_sample(codec);
    let mut n = 0;
    for ((o, &s), &x) in out.chunks_exact_mut(bps).zip(sum).zip(own) {
        encode_one(codec, saturate(s.wrapping_sub(i32::from(x))), o);
        n += 1;
    }
    n
}
