//! SIMD kernels for the mixer's decode → sum → subtract → saturate → encode pipeline, chosen
//! at run time (AVX-512, AVX2, scalar). Every kernel is bit-identical to the scalar twin;
//! the property tests below and in `tests/media_kernels.rs` prove it on random frames, and
//! the G.711 paths are checked exhaustively.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod scalar;

use crate::codec::CodecKind;

/// Which implementation a [`Kernel`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// AVX-512 F + BW + VL + VBMI.
    Avx512,
    /// AVX2.
    Avx2,
    /// Portable scalar code, the reference.
    Scalar,
}

impl KernelKind {
    /// All kernels, fastest first.
    pub const ALL: [KernelKind; 3] = [KernelKind::Avx512, KernelKind::Avx2, KernelKind::Scalar];

    /// Short name: `"avx512"`, `"avx2"` or `"scalar"`.
    pub const fn name(self) -> &'static str {
        match self {
            KernelKind::Avx512 => "avx512",
            KernelKind::Avx2 => "avx2",
            KernelKind::Scalar => "scalar",
        }
    }

    /// Parses a name as printed by [`KernelKind::name`].
    pub fn from_name(name: &str) -> Option<KernelKind> {
        KernelKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vbmi")
            }
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            KernelKind::Avx512 | KernelKind::Avx2 => false,
            KernelKind::Scalar => true,
        }
    }
}

/// A kernel this CPU supports (constructing one checks), with the pipeline's operations.
/// All methods process `min` of their slice lengths and never panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    kind: KernelKind,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn best() -> Kernel {
        let kind = KernelKind::ALL
            .into_iter()
            .find(|k| k.is_supported())
            .unwrap_or(KernelKind::Scalar);
        Kernel { kind }
    }

    /// Forces `kind` (for tests and benchmarks); `None` if this CPU can't run it.
    pub fn new(kind: KernelKind) -> Option<Kernel> {
        kind.is_supported().then_some(Kernel { kind })
    }

    /// The portable reference kernel.
    pub const fn scalar() -> Kernel {
        Kernel {
            kind: KernelKind::Scalar,
        }
    }

    /// Every kernel this CPU supports.
    pub fn available() -> impl Iterator<Item = Kernel> {
        KernelKind::ALL.into_iter().filter_map(Kernel::new)
    }

    /// Which implementation runs.
    pub const fn kind(self) -> KernelKind {
        self.kind
    }

    /// Short name of the implementation: `"avx512"`, `"avx2"` or `"scalar"`.
    pub const fn name(self) -> &'static str {
        self.kind.name()
    }

    /// Decodes `payload` into `pcm`; returns the number of samples written.
    #[inline]
    pub fn decode(self, codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> usize {
        match self.kind {
            // SAFETY: a Kernel of this kind exists only if the CPU supports its features.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { avx512::decode(codec, payload, pcm) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { avx2::decode(codec, payload, pcm) },
            _ => scalar::decode(codec, payload, pcm),
        }
    }

    /// Decodes `payload` into `pcm`; returns (samples written, their [`Kernel::energy`]),
    /// in one pass.
    #[inline]
    pub fn decode_energy(self, codec: CodecKind, payload: &[u8], pcm: &mut [i16]) -> (usize, u64) {
        match self.kind {
            // SAFETY: a Kernel of this kind exists only if the CPU supports its features.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { avx512::decode_energy(codec, payload, pcm) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { avx2::decode_energy(codec, payload, pcm) },
            _ => scalar::decode_energy(codec, payload, pcm),
        }
    }

    /// Frame energy used for talker selection (see [`scalar::energy`]).
    #[inline]
    pub fn energy(self, pcm: &[i16]) -> u64 {
        match self.kind {
            // SAFETY: a Kernel of this kind exists only if the CPU supports its features.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { avx512::energy(pcm) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { avx2::energy(pcm) },
            _ => scalar::energy(pcm),
        }
    }

    /// Adds `pcm` into `sum` (wrapping); returns the number of samples added.
    #[inline]
    pub fn accumulate(self, sum: &mut [i32], pcm: &[i16]) -> usize {
        match self.kind {
            // SAFETY: a Kernel of this kind exists only if the CPU supports its features.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { avx512::accumulate(sum, pcm) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { avx2::accumulate(sum, pcm) },
            _ => scalar::accumulate(sum, pcm),
        }
    }

    /// Encodes `saturate(sum)` into `out`; returns the number of samples encoded.
    #[inline]
    pub fn encode_sum(self, codec: CodecKind, sum: &[i32], out: &mut [u8]) -> usize {
        match self.kind {
            // SAFETY: a Kernel of this kind exists only if the CPU supports its features.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { avx512::encode_sum(codec, sum, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { avx2::encode_sum(codec, sum, out) },
            _ => scalar::encode_sum(codec, sum, out),
        }
    }

    /// Encodes `saturate(sum - own)` into `out`; returns the number of samples encoded.
    #[inline]
    pub fn encode_minus(self, codec: CodecKind, sum: &[i32], own: &[i16], out: &mut [u8]) -> usize {
        match self.kind {
            // SAFETY: a Kernel of this kind exists only if the CPU supports its features.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512 => unsafe { avx512::encode_minus(codec, sum, own, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => unsafe { avx2::encode_minus(codec, sum, own, out) },
            _ => scalar::encode_minus(codec, sum, own, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_samples() -> Vec<i16> {
        (0..=u16::MAX).map(|u| u as i16).collect()
    }

    #[test]
    fn names_round_trip_and_best_is_supported() {
        for k in KernelKind::ALL {
            assert_eq!(KernelKind::from_name(k.name()), Some(k));
        }
        assert!(Kernel::best().kind().is_supported());
        assert_eq!(Kernel::new(KernelKind::Scalar), Some(Kernel::scalar()));
        assert!(Kernel::available().any(|k| k == Kernel::scalar()));
    }

    #[test]
    fn every_kernel_decodes_every_code_like_scalar() {
        let codes: Vec<u8> = (0..=255).collect();
        for k in Kernel::available() {
            for codec in CodecKind::ALL {
                let mut want = vec![0i16; 256];
                let mut got = vec![0i16; 256];
                let n = scalar::decode(codec, &codes, &mut want);
                assert_eq!(
                    k.decode(codec, &codes, &mut got),
                    n,
                    "{} {codec:?}",
                    k.name()
                );
                assert_eq!(got, want, "{} {codec:?}", k.name());
                got.fill(0);
                let e = scalar::energy(&want[..n]);
                assert_eq!(
                    k.decode_energy(codec, &codes, &mut got),
                    (n, e),
                    "{} {codec:?}",
                    k.name()
                );
                assert_eq!(got, want, "{} {codec:?}", k.name());
            }
        }
    }

    #[test]
    fn every_kernel_encodes_every_sample_like_scalar() {
        let samples = all_samples();
        let sum: Vec<i32> = samples.iter().map(|&s| i32::from(s)).collect();
        let zeros = vec![0i16; sum.len()];
        for k in Kernel::available() {
            for codec in CodecKind::ALL {
                let len = codec.encoded_len(sum.len());
                let (mut want, mut got) = (vec![0u8; len], vec![0u8; len]);
                scalar::encode_sum(codec, &sum, &mut want);
                assert_eq!(k.encode_sum(codec, &sum, &mut got), sum.len());
                assert!(got == want, "{} {codec:?} encode_sum", k.name());
                got.fill(0);
                assert_eq!(k.encode_minus(codec, &sum, &zeros, &mut got), sum.len());
                assert!(got == want, "{} {codec:?} encode_minus", k.name());
            }
        }
    }

    #[test]
    fn saturation_at_the_extremes() {
        let sum = [i32::MAX, i32::MIN, 40_000, -40_000, 32_767, -32_768, 0, 1];
        let own = [0i16, 0, -1, 1, -1, 1, 0, 0];
        for k in Kernel::available() {
            let mut out = [0u8; 16];
            k.encode_minus(CodecKind::L16, &sum, &own, &mut out);
            let got: Vec<i16> = out
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .collect();
            assert_eq!(
                got,
                [32767, -32768, 32767, -32768, 32767, -32768, 0, 1],
                "{}",
                k.name()
            );
        }
    }
}
