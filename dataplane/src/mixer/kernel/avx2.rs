//! AVX2 kernels: 16 samples per 256-bit vector; remainders go to the scalar twin.
//!
//! G.711 is computed lane-wise from the segment formulas (decode: shift by a power of two
//! looked up with `vpshufb`; encode: segment = bit length found with two `vpshufb` nibble
//! tables, mantissa = high half of a multiply by a looked-up power of two).

use core::arch::x86_64::*;

use super::scalar;
use crate::codec::CodecKind;

/// Samples per vector.
const LANES: usize = 16;

/// `1 << e` for u-law exponents 0..=7.
const ULAW_POW2: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0];
/// A-law segment multiplier: 1 for segments 0 and 1, `1 << (seg - 1)` above.
const ALAW_POW2: [u8; 16] = [1, 1, 2, 4, 8, 16, 32, 64, 0, 0, 0, 0, 0, 0, 0, 0];
/// Bit length of a nibble.
const BITLEN_LO: [u8; 16] = [0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4];
/// Bit length of `h << 4` for a 3-bit `h` (the high nibble of a 7-bit value).
const BITLEN_HI: [u8; 16] = [0, 5, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8];
/// High byte of the mu-law mantissa multiplier `2^(15 - seg)` (`mulhi` = `>> (seg + 1)`).
const ULAW_MULT: [u8; 16] = [
    0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// High byte of the A-law mantissa multiplier `2^(16 - max(seg, 1))`.
const ALAW_MULT: [u8; 16] = [
    0x80, 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// Swaps the two bytes of every 16-bit lane.
const BSWAP16: [u8; 16] = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14];

/// Broadcasts a 16-byte table to both 128-bit lanes (`vpshufb` looks up per lane).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn table(t: &[u8; 16]) -> __m256i {
    // SAFETY: `t` is 16 readable bytes; the load is unaligned.
    let x = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
    _mm256_broadcastsi128_si256(x)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn splat(v: i16) -> __m256i {
    _mm256_set1_epi16(v)
}

/// Lookup index that puts `tbl[x]` in the low byte of each 16-bit lane (high byte zero).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn low_byte_index(x: __m256i) -> __m256i {
    _mm256_or_si256(x, splat(i16::MIN))
}

/// Lookup index that puts `tbl[x]` in the high byte of each 16-bit lane (low byte zero).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn high_byte_index(x: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_slli_epi16(x, 8), splat(0x80))
}

/// Decodes 16 mu-law codes (zero-extended into 16-bit lanes).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ulaw_decode16(codes: __m256i) -> __m256i {
    let c = _mm256_xor_si256(codes, splat(0xFF));
    let exponent = _mm256_and_si256(_mm256_srli_epi16(c, 4), splat(7));
    let mantissa = _mm256_and_si256(c, splat(0x0F));
    let biased = _mm256_add_epi16(_mm256_slli_epi16(mantissa, 3), splat(0x84));
    let pow = _mm256_shuffle_epi8(table(&ULAW_POW2), low_byte_index(exponent));
    let magnitude = _mm256_sub_epi16(_mm256_mullo_epi16(biased, pow), splat(0x84));
    let negative = _mm256_cmpeq_epi16(_mm256_and_si256(c, splat(0x80)), splat(0x80));
    _mm256_sub_epi16(_mm256_xor_si256(magnitude, negative), negative)
}

/// Decodes 16 A-law codes (zero-extended into 16-bit lanes).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn alaw_decode16(codes: __m256i) -> __m256i {
    let c = _mm256_xor_si256(codes, splat(0x55));
    let segment = _mm256_and_si256(_mm256_srli_epi16(c, 4), splat(7));
    let mantissa = _mm256_and_si256(c, splat(0x0F));
    let seg0 = _mm256_cmpeq_epi16(segment, _mm256_setzero_si256());
    let base = _mm256_add_epi16(_mm256_slli_epi16(mantissa, 4), splat(8));
    let base = _mm256_add_epi16(base, _mm256_andnot_si256(seg0, splat(0x100)));
    let pow = _mm256_shuffle_epi8(table(&ALAW_POW2), low_byte_index(segment));
    let magnitude = _mm256_mullo_epi16(base, pow);
    // A-law: a clear sign bit means negative.
    let negative = _mm256_cmpeq_epi16(_mm256_and_si256(c, splat(0x80)), _mm256_setzero_si256());
    _mm256_sub_epi16(_mm256_xor_si256(magnitude, negative), negative)
}

/// Bit length of 7-bit values in 16-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bit_length7(t: __m256i) -> __m256i {
    let lo = _mm256_shuffle_epi8(table(&BITLEN_LO), _mm256_and_si256(t, splat(0x0F)));
    let hi = _mm256_shuffle_epi8(table(&BITLEN_HI), _mm256_srli_epi16(t, 4));
    _mm256_max_epu8(lo, hi)
}

/// Encodes 16 samples to mu-law codes (in the low byte of each 16-bit lane).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ulaw_encode16(s: __m256i) -> __m256i {
    let v = _mm256_srai_epi16(s, 2);
    let negative = _mm256_srai_epi16(v, 15);
    let m = _mm256_min_epi16(
        _mm256_add_epi16(_mm256_abs_epi16(v), splat(0x21)),
        splat(0x1FFF),
    );
    let segment = bit_length7(_mm256_srli_epi16(m, 6));
    let mult = _mm256_shuffle_epi8(table(&ULAW_MULT), high_byte_index(segment));
    let mantissa = _mm256_and_si256(_mm256_mulhi_epu16(m, mult), splat(0x0F));
    let code = _mm256_or_si256(_mm256_slli_epi16(segment, 4), mantissa);
    let mask = _mm256_xor_si256(splat(0xFF), _mm256_and_si256(negative, splat(0x80)));
    _mm256_xor_si256(code, mask)
}

/// Encodes 16 samples to A-law codes (in the low byte of each 16-bit lane).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn alaw_encode16(s: __m256i) -> __m256i {
    let v = _mm256_srai_epi16(s, 3);
    let negative = _mm256_srai_epi16(v, 15);
    let magnitude = _mm256_xor_si256(v, negative);
    let segment = bit_length7(_mm256_srli_epi16(magnitude, 5));
    let mult = _mm256_shuffle_epi8(table(&ALAW_MULT), high_byte_index(segment));
    let mantissa = _mm256_and_si256(_mm256_mulhi_epu16(magnitude, mult), splat(0x0F));
    let code = _mm256_or_si256(_mm256_slli_epi16(segment, 4), mantissa);
    let mask = _mm256_xor_si256(splat(0xD5), _mm256_and_si256(negative, splat(0x80)));
    _mm256_xor_si256(code, mask)
}

/// Adds the energy terms of 16 samples to four 64-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn add_energy(acc: __m256i, x: __m256i) -> __m256i {
    let x = _mm256_srai_epi16(x, 3);
    // Each 32-bit lane holds two squares of 13-bit values: at most 2^25, no overflow.
    let sq = _mm256_madd_epi16(x, x);
    let lo = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(sq));
    let hi = _mm256_cvtepu32_epi64(_mm256_extracti128_si256(sq, 1));
    _mm256_add_epi64(acc, _mm256_add_epi64(lo, hi))
}

/// Sum of the four 64-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum64(acc: __m256i) -> u64 {
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 writable bytes; unaligned store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    lanes.iter().sum()
}

/// Decodes `min(payload, pcm)` samples.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn decode(codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> usize {
    decode_energy(codec, payload, pcm).0
}

/// Decodes `min(payload, pcm)` samples and returns (samples, their energy); equal to
/// [`scalar::decode_energy`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn decode_energy(codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> (usize, u64) {
    let n = match codec {
        CodecKind::L16 => (payload.len() / 2).min(pcm.len()),
        CodecKind::Pcmu | CodecKind::Pcma => payload.len().min(pcm.len()),
    };
    let blocks = n / LANES;
    let bswap = table(&BSWAP16);
    let mut acc = _mm256_setzero_si256();
    for b in 0..blocks {
        let i = b * LANES;
        let v = match codec {
            CodecKind::Pcmu | CodecKind::Pcma => {
                // SAFETY: i + 16 <= n <= payload.len(); unaligned 16-byte load.
                let codes = unsafe { _mm_loadu_si128(payload.as_ptr().add(i).cast()) };
                let codes = _mm256_cvtepu8_epi16(codes);
                if codec == CodecKind::Pcmu {
                    ulaw_decode16(codes)
                } else {
                    alaw_decode16(codes)
                }
            }
            CodecKind::L16 => {
                // SAFETY: 2 * (i + 16) <= 2 * n <= payload.len(); unaligned 32-byte load.
                let raw = unsafe { _mm256_loadu_si256(payload.as_ptr().add(2 * i).cast()) };
                _mm256_shuffle_epi8(raw, bswap)
            }
        };
        acc = add_energy(acc, v);
        // SAFETY: i + 16 <= n <= pcm.len(); unaligned 32-byte store.
        unsafe { _mm256_storeu_si256(pcm.as_mut_ptr().add(i).cast(), v) };
    }
    let done = blocks * LANES;
    let bps = codec.encoded_len(1);
    let tail_in = payload.get(done * bps..).unwrap_or(&[]);
    let tail_out = pcm.get_mut(done..n).unwrap_or(&mut []);
    let (tail, tail_energy) = scalar::decode_energy(codec, tail_in, tail_out);
    (done + tail, sum64(acc) + tail_energy)
}

/// Frame energy, equal to [`scalar::energy`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn energy(pcm: &[i16]) -> u64 {
    let blocks = pcm.len() / LANES;
    let mut acc = _mm256_setzero_si256();
    for b in 0..blocks {
        // SAFETY: (b + 1) * 16 <= pcm.len(); unaligned 32-byte load.
        let x = unsafe { _mm256_loadu_si256(pcm.as_ptr().add(b * LANES).cast()) };
        acc = add_energy(acc, x);
    }
    sum64(acc) + scalar::energy(pcm.get(blocks * LANES..).unwrap_or(&[]))
}

/// Adds `pcm` into `sum` (wrapping); returns the number of samples added.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn accumulate(sum: &mut [i32], pcm: &[i16]) -> usize {
    let n = sum.len().min(pcm.len());
    let blocks = n / 8;
    for b in 0..blocks {
        let i = b * 8;
        // SAFETY: i + 8 <= n <= pcm.len() and <= sum.len(); unaligned loads and store of
        // 16 and 32 bytes.
        unsafe {
            let x = _mm256_cvtepi16_epi32(_mm_loadu_si128(pcm.as_ptr().add(i).cast()));
            let p = sum.as_mut_ptr().add(i);
            let s = _mm256_loadu_si256(p.cast());
            _mm256_storeu_si256(p.cast(), _mm256_add_epi32(s, x));
        }
    }
    let done = blocks * 8;
    done + scalar::accumulate(
        sum.get_mut(done..).unwrap_or(&mut []),
        pcm.get(done..).unwrap_or(&[]),
    )
}

/// Loads 16 mix samples at `i`, subtracts `own` if given and saturates to 16 bits.
///
/// # Safety
/// The CPU must support AVX2; `i + 16` must be within `sum` and (if given) `own`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn saturated16(sum: &[i32], own: Option<&[i16]>, i: usize) -> __m256i {
    // SAFETY: the caller guarantees i + 16 <= sum.len(); unaligned 32-byte loads.
    let (mut a, mut b) = unsafe {
        (
            _mm256_loadu_si256(sum.as_ptr().add(i).cast()),
            _mm256_loadu_si256(sum.as_ptr().add(i + 8).cast()),
        )
    };
    if let Some(own) = own {
        // SAFETY: the caller guarantees i + 16 <= own.len(); unaligned 32-byte load.
        let o = unsafe { _mm256_loadu_si256(own.as_ptr().add(i).cast()) };
        a = _mm256_sub_epi32(a, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(o)));
        b = _mm256_sub_epi32(b, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(o, 1)));
    }
    // packs interleaves the 128-bit lanes; the permute restores sample order.
    _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8)
}

/// Shared body of [`encode_sum`] and [`encode_minus`].
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn encode(codec: CodecKind, sum: &[i32], own: Option<&[i16]>, out: &mut [u8]) -> usize {
    let bps = codec.encoded_len(1);
    let n = sum
        .len()
        .min(out.len() / bps)
        .min(own.map_or(usize::MAX, <[i16]>::len));
    let blocks = n / LANES;
    let bswap = table(&BSWAP16);
    for b in 0..blocks {
        let i = b * LANES;
        // SAFETY: i + 16 <= n, which bounds sum and own.
        let s = unsafe { saturated16(sum, own, i) };
        let dst = out.as_mut_ptr();
        match codec {
            CodecKind::Pcmu | CodecKind::Pcma => {
                let codes = if codec == CodecKind::Pcmu {
                    ulaw_encode16(s)
                } else {
                    alaw_encode16(s)
                };
                let packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(codes, codes), 0x08);
                // SAFETY: i + 16 <= n <= out.len(); unaligned 16-byte store.
                unsafe { _mm_storeu_si128(dst.add(i).cast(), _mm256_castsi256_si128(packed)) };
            }
            CodecKind::L16 => {
                // SAFETY: 2 * (i + 16) <= 2 * n <= out.len(); unaligned 32-byte store.
                unsafe {
                    _mm256_storeu_si256(dst.add(2 * i).cast(), _mm256_shuffle_epi8(s, bswap))
                };
            }
        }
    }
    let done = blocks * LANES;
    let tail_sum = sum.get(done..n).unwrap_or(&[]);
    let tail_out = out.get_mut(done * bps..).unwrap_or(&mut []);
    done + match own {
        Some(own) => {
            scalar::encode_minus(codec, tail_sum, own.get(done..).unwrap_or(&[]), tail_out)
        }
        None => scalar::encode_sum(codec, tail_sum, tail_out),
    }
}

/// Encodes `saturate(sum)`; equal to [`scalar::encode_sum`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn encode_sum(codec: CodecKind, sum: &[i32], out: &mut [u8]) -> usize {
    encode(codec, sum, None, out)
}

/// Encodes `saturate(sum - own)`; equal to [`scalar::encode_minus`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn encode_minus(codec: CodecKind, sum: &[i32], own: &[i16], out: &mut [u8]) -> usize {
    encode(codec, sum, Some(own), out)
}
