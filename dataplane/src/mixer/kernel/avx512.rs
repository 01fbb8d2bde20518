//! AVX-512 kernels (F + BW + VL + VBMI): 32 samples per 512-bit vector, remainders handled
//! with masked loads and stores.
//!
//! G.711 decode is a 256-entry table lookup done with `vpermi2b` (VBMI): the low and high
//! bytes of the 16-bit table each span four registers, two 128-entry halves selected by the
//! top bit of the code. Encode computes the segment lane-wise (bit length through two
//! `vpshufb` nibble tables) and the mantissa with a variable shift (`vpsrlvw`).

use core::arch::x86_64::*;

use crate::codec::{g711, CodecKind};

/// Samples per vector of 16-bit lanes.
const LANES: usize = 32;

/// A 256-entry `i16` table split into its low and high bytes.
#[repr(C, align(64))]
struct SplitTable {
    lo: [u8; 256],
    hi: [u8; 256],
}

const fn split(t: &[i16; 256]) -> SplitTable {
    let mut s = SplitTable {
        lo: [0; 256],
        hi: [0; 256],
    };
    let mut i = 0;
    while i < 256 {
        let [lo, hi] = t[i].to_le_bytes();
        s.lo[i] = lo;
        s.hi[i] = hi;
        i += 1;
    }
    s
}

static ULAW_SPLIT: SplitTable = split(&g711::ULAW_DECODE_TABLE);
static ALAW_SPLIT: SplitTable = split(&g711::ALAW_DECODE_TABLE);

/// Bit length of a nibble (see the AVX2 kernel for the derivation).
const BITLEN_LO: [u8; 16] = [0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4];
/// Bit length of `h << 4` for a 3-bit `h`.
const BITLEN_HI: [u8; 16] = [0, 5, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8];
/// Swaps the two bytes of every 16-bit lane.
const BSWAP16: [u8; 16] = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14];

/// Mask of the low `k` bits (`k <= 64`).
#[inline]
fn mask64(k: usize) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
    }
}

/// Broadcasts a 16-byte table to all four 128-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn table(t: &[u8; 16]) -> __m512i {
    // SAFETY: `t` is 16 readable bytes; unaligned load.
    let x = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
    _mm512_broadcast_i32x4(x)
}

/// Loads four 64-byte quarters of a 256-byte table.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn quarters(t: &[u8; 256]) -> [__m512i; 4] {
    // SAFETY: `t` is 256 readable bytes, so each 64-byte load at 0, 64, 128, 192 is in bounds.
    unsafe {
        [
            _mm512_loadu_si512(t.as_ptr().cast()),
            _mm512_loadu_si512(t.as_ptr().add(64).cast()),
            _mm512_loadu_si512(t.as_ptr().add(128).cast()),
            _mm512_loadu_si512(t.as_ptr().add(192).cast()),
        ]
    }
}

/// Looks up 64 codes in a 256-entry byte table held in four registers.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn lookup256(t: &[__m512i; 4], idx: __m512i, top: __mmask64) -> __m512i {
    let low_half = _mm512_permutex2var_epi8(t[0], idx, t[1]);
    let high_half = _mm512_permutex2var_epi8(t[2], idx, t[3]);
    _mm512_mask_blend_epi8(top, low_half, high_half)
}

/// The energy terms of 32 samples (zero in lanes outside `m`), pairwise summed into 16
/// 32-bit lanes of at most 2 * 4096^2 = 2^25 each.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn squares(x: __m512i, m: u32) -> __m512i {
    let x = _mm512_srai_epi16(_mm512_maskz_mov_epi16(m, x), 3);
    _mm512_madd_epi16(x, x)
}

/// Adds sixteen non-negative 32-bit lanes to eight 64-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn widen_add(acc: __m512i, sq: __m512i) -> __m512i {
    let lo = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(sq));
    let hi = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(sq, 1));
    _mm512_add_epi64(acc, _mm512_add_epi64(lo, hi))
}

/// Vectors of [`squares`] a 32-bit accumulator can take before it must be widened
/// (32 * 2^25 = 2^30).
const FLUSH: usize = 32;

/// Decodes G.711 through `tbl`; returns (samples, energy).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn decode_g711(tbl: &SplitTable, payload: &[u8], pcm: &mut [i16]) -> (usize, u64) {
    let n = payload.len().min(pcm.len());
    let lo = quarters(&tbl.lo);
    let hi = quarters(&tbl.hi);
    // unpack{lo,hi} work per 128-bit lane; these restore sample order.
    let first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    let second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    let src = payload.as_ptr();
    let dst = pcm.as_mut_ptr();
    let (mut acc, mut acc32, mut pending) = (_mm512_setzero_si512(), _mm512_setzero_si512(), 0);
    let mut i = 0;
    while i < n {
        let m = mask64(n - i);
        // SAFETY: the mask enables only bytes i..n, all inside `payload`; masked-off bytes
        // are not accessed. wrapping_add keeps the pointer arithmetic defined.
        let idx = unsafe { _mm512_maskz_loadu_epi8(m, src.wrapping_add(i).cast()) };
        let top = _mm512_movepi8_mask(idx);
        let l = lookup256(&lo, idx, top);
        let h = lookup256(&hi, idx, top);
        let w0 = _mm512_unpacklo_epi8(l, h);
        let w1 = _mm512_unpackhi_epi8(l, h);
        let out0 = _mm512_permutex2var_epi64(w0, first, w1);
        let out1 = _mm512_permutex2var_epi64(w0, second, w1);
        acc32 = _mm512_add_epi32(acc32, squares(out0, m as u32));
        acc32 = _mm512_add_epi32(acc32, squares(out1, (m >> 32) as u32));
        pending += 2;
        if pending == FLUSH {
            acc = widen_add(acc, acc32);
            acc32 = _mm512_setzero_si512();
            pending = 0;
        }
        // SAFETY: the masks enable only samples i..n, inside `pcm`; masked-off lanes are not
        // accessed.
        unsafe {
            _mm512_mask_storeu_epi16(dst.wrapping_add(i).cast(), m as u32, out0);
            _mm512_mask_storeu_epi16(dst.wrapping_add(i + 32).cast(), (m >> 32) as u32, out1);
        }
        i += 64;
    }
    (n, _mm512_reduce_add_epi64(widen_add(acc, acc32)) as u64)
}

/// Decodes big-endian L16; returns (samples, energy).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn decode_l16(payload: &[u8], pcm: &mut [i16]) -> (usize, u64) {
    let n = (payload.len() / 2).min(pcm.len());
    let bswap = table(&BSWAP16);
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    while i < n {
        let m = mask64(n - i) as u32;
        // SAFETY: the mask enables samples i..n only: bytes 2i..2n of `payload` and lanes
        // i..n of `pcm`; masked-off elements are not accessed.
        unsafe {
            let raw = _mm512_maskz_loadu_epi16(m, payload.as_ptr().wrapping_add(2 * i).cast());
            let v = _mm512_shuffle_epi8(raw, bswap);
            acc = widen_add(acc, squares(v, m));
            _mm512_mask_storeu_epi16(pcm.as_mut_ptr().wrapping_add(i).cast(), m, v);
        }
        i += LANES;
    }
    (n, _mm512_reduce_add_epi64(acc) as u64)
}

/// Decodes `min(payload, pcm)` samples; equal to [`super::scalar::decode`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn decode(codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> usize {
    decode_energy(codec, payload, pcm).0
}

/// Decodes and returns (samples, their energy); equal to
/// [`super::scalar::decode_energy`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn decode_energy(codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> (usize, u64) {
    match codec {
        CodecKind::Pcmu => decode_g711(&ULAW_SPLIT, payload, pcm),
        CodecKind::Pcma => decode_g711(&ALAW_SPLIT, payload, pcm),
        CodecKind::L16 => decode_l16(payload, pcm),
    }
}

/// Frame energy, equal to [`super::scalar::energy`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn energy(pcm: &[i16]) -> u64 {
    let n = pcm.len();
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    while i < n {
        let m = mask64(n - i) as u32;
        // SAFETY: the mask enables samples i..n of `pcm` only.
        let x = unsafe { _mm512_maskz_loadu_epi16(m, pcm.as_ptr().wrapping_add(i).cast()) };
        acc = widen_add(acc, squares(x, m));
        i += LANES;
    }
    _mm512_reduce_add_epi64(acc) as u64
}

/// Adds `pcm` into `sum` (wrapping); returns the number of samples added.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn accumulate(sum: &mut [i32], pcm: &[i16]) -> usize {
    let n = sum.len().min(pcm.len());
    let mut i = 0;
    while i < n {
        let m = mask64(n - i) as u16;
        // SAFETY: the mask enables elements i..n only, inside both `sum` and `pcm`.
        unsafe {
            let x = _mm256_maskz_loadu_epi16(m, pcm.as_ptr().wrapping_add(i).cast());
            let p = sum.as_mut_ptr().wrapping_add(i);
            let s = _mm512_maskz_loadu_epi32(m, p.cast());
            _mm512_mask_storeu_epi32(p.cast(), m, _mm512_add_epi32(s, _mm512_cvtepi16_epi32(x)));
        }
        i += 16;
    }
    n
}

/// Loads mix samples `i..i+32` (lanes beyond `m` zero), subtracts `own` if given and
/// saturates to 16 bits.
///
/// # Safety
/// The CPU must support AVX-512; the bits of `m` must only enable samples inside `sum` and
/// (if given) `own`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn saturated32(sum: &[i32], own: Option<&[i16]>, i: usize, m: u32) -> __m512i {
    let p = sum.as_ptr().wrapping_add(i);
    // SAFETY: the caller's mask enables only elements inside `sum`.
    let (mut a, mut b) = unsafe {
        (
            _mm512_maskz_loadu_epi32(m as u16, p.cast()),
            _mm512_maskz_loadu_epi32((m >> 16) as u16, p.wrapping_add(16).cast()),
        )
    };
    if let Some(own) = own {
        // SAFETY: the caller's mask enables only elements inside `own`.
        let o = unsafe { _mm512_maskz_loadu_epi16(m, own.as_ptr().wrapping_add(i).cast()) };
        a = _mm512_sub_epi32(a, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(o)));
        b = _mm512_sub_epi32(b, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(o, 1)));
    }
    _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm512_cvtsepi32_epi16(a)),
        _mm512_cvtsepi32_epi16(b),
        1,
    )
}

/// Bit length of 7-bit values in 16-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn bit_length7(t: __m512i) -> __m512i {
    let lo = _mm512_shuffle_epi8(
        table(&BITLEN_LO),
        _mm512_and_si512(t, _mm512_set1_epi16(0x0F)),
    );
    let hi = _mm512_shuffle_epi8(table(&BITLEN_HI), _mm512_srli_epi16(t, 4));
    _mm512_max_epu8(lo, hi)
}

/// Encodes 32 samples to mu-law codes (low byte of each 16-bit lane).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn ulaw_encode32(s: __m512i) -> __m512i {
    let v = _mm512_srai_epi16(s, 2);
    let negative = _mm512_movepi16_mask(v);
    let m = _mm512_add_epi16(_mm512_abs_epi16(v), _mm512_set1_epi16(0x21));
    let m = _mm512_min_epi16(m, _mm512_set1_epi16(0x1FFF));
    let segment = bit_length7(_mm512_srli_epi16(m, 6));
    let shift = _mm512_add_epi16(segment, _mm512_set1_epi16(1));
    let mantissa = _mm512_and_si512(_mm512_srlv_epi16(m, shift), _mm512_set1_epi16(0x0F));
    let code = _mm512_or_si512(_mm512_slli_epi16(segment, 4), mantissa);
    let mask = _mm512_mask_blend_epi16(negative, _mm512_set1_epi16(0xFF), _mm512_set1_epi16(0x7F));
    _mm512_xor_si512(code, mask)
}

/// Encodes 32 samples to A-law codes (low byte of each 16-bit lane).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn alaw_encode32(s: __m512i) -> __m512i {
    let v = _mm512_srai_epi16(s, 3);
    let negative = _mm512_movepi16_mask(v);
    let magnitude = _mm512_xor_si512(v, _mm512_srai_epi16(v, 15));
    let segment = bit_length7(_mm512_srli_epi16(magnitude, 5));
    let shift = _mm512_max_epi16(segment, _mm512_set1_epi16(1));
    let mantissa = _mm512_and_si512(_mm512_srlv_epi16(magnitude, shift), _mm512_set1_epi16(0x0F));
    let code = _mm512_or_si512(_mm512_slli_epi16(segment, 4), mantissa);
    let mask = _mm512_mask_blend_epi16(negative, _mm512_set1_epi16(0xD5), _mm512_set1_epi16(0x55));
    _mm512_xor_si512(code, mask)
}

/// Shared body of [`encode_sum`] and [`encode_minus`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn encode(codec: CodecKind, sum: &[i32], own: Option<&[i16]>, out: &mut [u8]) -> usize {
    let bps = codec.encoded_len(1);
    let n = sum
        .len()
        .min(out.len() / bps)
        .min(own.map_or(usize::MAX, <[i16]>::len));
    let bswap = table(&BSWAP16);
    let dst = out.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let m = mask64(n - i) as u32;
        // SAFETY: `m` enables samples i..n only, inside `sum` and `own`.
        let s = unsafe { saturated32(sum, own, i, m) };
        match codec {
            CodecKind::Pcmu | CodecKind::Pcma => {
                let codes = if codec == CodecKind::Pcmu {
                    ulaw_encode32(s)
                } else {
                    alaw_encode32(s)
                };
                // SAFETY: `m` enables bytes i..n only, inside `out`.
                unsafe {
                    _mm256_mask_storeu_epi8(
                        dst.wrapping_add(i).cast(),
                        m,
                        _mm512_cvtepi16_epi8(codes),
                    )
                };
            }
            CodecKind::L16 => {
                // SAFETY: `m` enables 16-bit lanes i..n, i.e. bytes 2i..2n, inside `out`.
                unsafe {
                    _mm512_mask_storeu_epi16(
                        dst.wrapping_add(2 * i).cast(),
                        m,
                        _mm512_shuffle_epi8(s, bswap),
                    )
                };
            }
        }
        i += LANES;
    }
    n
}

/// Encodes `saturate(sum)`; equal to [`super::scalar::encode_sum`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn encode_sum(codec: CodecKind, sum: &[i32], out: &mut [u8]) -> usize {
    encode(codec, sum, None, out)
}

/// Encodes `saturate(sum - own)`; equal to [`super::scalar::encode_minus`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn encode_minus(codec: CodecKind, sum: &[i32], own: &[i16], out: &mut [u8]) -> usize {
    encode(codec, sum, Some(own), out)
}
