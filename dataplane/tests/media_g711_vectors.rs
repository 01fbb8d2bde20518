//! G.711 against the reference vectors made by scripts/gen-g711-vectors.py (CPython's
//! audioop): all 256 decodes and all 65,536 encodes of both laws.

use tutti_dataplane::codec::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use tutti_dataplane::codec::g711::{
    alaw_decode_slice, alaw_encode_slice, ulaw_decode_slice, ulaw_encode_slice,
};

static ULAW_DECODE: &[u8] = include_bytes!("vectors/ulaw_decode.bin");
static ALAW_DECODE: &[u8] = include_bytes!("vectors/alaw_decode.bin");
static ULAW_ENCODE: &[u8] = include_bytes!("vectors/ulaw_encode.bin");
static ALAW_ENCODE: &[u8] = include_bytes!("vectors/alaw_encode.bin");

fn le_i16(v: &[u8]) -> Vec<i16> {
    v.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn all_samples() -> Vec<i16> {
    (0..=u16::MAX).map(|u| u as i16).collect()
}

#[test]
fn vectors_have_expected_sizes() {
    assert_eq!(ULAW_DECODE.len(), 512);
    assert_eq!(ALAW_DECODE.len(), 512);
    assert_eq!(ULAW_ENCODE.len(), 65536);
    assert_eq!(ALAW_ENCODE.len(), 65536);
}

#[test]
fn every_decode_matches_reference() {
    let (u, a) = (le_i16(ULAW_DECODE), le_i16(ALAW_DECODE));
    for code in 0..=255u8 {
        assert_eq!(
            ulaw_decode(code),
            u[usize::from(code)],
            "mu-law {code:#04x}"
        );
        assert_eq!(alaw_decode(code), a[usize::from(code)], "A-law {code:#04x}");
    }
    let codes: Vec<u8> = (0..=255).collect();
    let mut pcm = vec![0i16; 256];
    ulaw_decode_slice(&codes, &mut pcm);
    assert_eq!(pcm, u);
    alaw_decode_slice(&codes, &mut pcm);
    assert_eq!(pcm, a);
}

#[test]
fn every_encode_matches_reference() {
    for u in 0..=u16::MAX {
        let s = u as i16;
        assert_eq!(
            ulaw_encode(s),
            ULAW_ENCODE[usize::from(u)],
            "mu-law sample {s}"
        );
        assert_eq!(
            alaw_encode(s),
            ALAW_ENCODE[usize::from(u)],
            "A-law sample {s}"
        );
    }
    let samples = all_samples();
    let mut out = vec![0u8; samples.len()];
    ulaw_encode_slice(&samples, &mut out);
    assert_eq!(out, ULAW_ENCODE);
    alaw_encode_slice(&samples, &mut out);
    assert_eq!(out, ALAW_ENCODE);
}
