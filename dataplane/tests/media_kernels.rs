//! Every SIMD kernel this CPU supports is bit-identical to the scalar twin on random frames
//! of random lengths (including lengths that leave vector remainders).

use proptest::prelude::*;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::mixer::kernel::{scalar, Kernel};

fn codec() -> impl Strategy<Value = CodecKind> {
    prop::sample::select(CodecKind::ALL.to_vec())
}

fn simd_kernels() -> Vec<Kernel> {
    Kernel::available()
        .filter(|k| *k != Kernel::scalar())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_matches_scalar(codec in codec(), payload in prop::collection::vec(any::<u8>(), 0..1400), room in 0usize..700) {
        let mut want = vec![0x5A5Ai16; room];
        let n = scalar::decode(codec, &payload, &mut want);
        for k in simd_kernels() {
            let mut got = vec![0x5A5Ai16; room];
            prop_assert_eq!(k.decode(codec, &payload, &mut got), n, "{}", k.name());
            prop_assert_eq!(&got, &want, "{}", k.name());
            let mut got = vec![0x5A5Ai16; room];
            let e = scalar::energy(&want[..n]);
            prop_assert_eq!(k.decode_energy(codec, &payload, &mut got), (n, e), "{}", k.name());
            prop_assert_eq!(&got, &want, "{}", k.name());
        }
    }

    #[test]
    fn energy_matches_scalar(pcm in prop::collection::vec(any::<i16>(), 0..2500)) {
        let want = scalar::energy(&pcm);
        for k in simd_kernels() {
            prop_assert_eq!(k.energy(&pcm), want, "{}", k.name());
        }
    }

    #[test]
    fn accumulate_matches_scalar(sum in prop::collection::vec(any::<i32>(), 0..700), pcm in prop::collection::vec(any::<i16>(), 0..700)) {
        let mut want = sum.clone();
        let n = scalar::accumulate(&mut want, &pcm);
        for k in simd_kernels() {
            let mut got = sum.clone();
            prop_assert_eq!(k.accumulate(&mut got, &pcm), n, "{}", k.name());
            prop_assert_eq!(&got, &want, "{}", k.name());
        }
    }

    #[test]
    fn encode_matches_scalar(
        codec in codec(),
        // Realistic sums (a few talkers) and arbitrary ones (saturation everywhere).
        sum in prop_oneof![
            prop::collection::vec(-98_304i32..98_304, 0..700),
            prop::collection::vec(any::<i32>(), 0..700),
        ],
        own in prop::collection::vec(any::<i16>(), 0..700),
        room in 0usize..1400,
    ) {
        let mut want_sum = vec![0xA5u8; room];
        let mut want_minus = vec![0xA5u8; room];
        let n_sum = scalar::encode_sum(codec, &sum, &mut want_sum);
        let n_minus = scalar::encode_minus(codec, &sum, &own, &mut want_minus);
        for k in simd_kernels() {
            let mut got = vec![0xA5u8; room];
            prop_assert_eq!(k.encode_sum(codec, &sum, &mut got), n_sum, "{}", k.name());
            prop_assert_eq!(&got, &want_sum, "{} sum", k.name());
            let mut got = vec![0xA5u8; room];
            prop_assert_eq!(k.encode_minus(codec, &sum, &own, &mut got), n_minus, "{}", k.name());
            prop_assert_eq!(&got, &want_minus, "{} minus", k.name());
        }
    }
}

#[test]
fn this_machine_has_a_simd_kernel() {
    // The benchmark machines have AVX2 and AVX-512; if detection breaks, the property tests
    // above would silently compare nothing.
    if std::arch::is_x86_feature_detected!("avx2") {
        assert!(!simd_kernels().is_empty());
    }
}
