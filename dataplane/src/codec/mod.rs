//! Audio codecs: ITU-T G.711 mu-law/A-law and L16, behind a [`Codec`] trait that is ready
//! for stateful codecs such as G.722 and Opus (caller-provided buffers, no allocation).
//!
//! The conference sample format is signed 16-bit linear PCM at the conference's
//! [`SampleRate`]; each codec says its own.

pub mod g711;
pub mod l16;

use crate::rate::SampleRate;
use thiserror::Error;

/// Why an encode or decode call could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The caller's output buffer is shorter than the result.
    #[error("output buffer too small: need {needed}, have {available}")]
    OutputTooSmall {
        /// Elements (bytes or samples) the result needs.
        needed: usize,
        /// Elements the caller provided.
        available: usize,
    },
    /// The payload length is not valid for this codec (e.g. an odd L16 payload).
    #[error("invalid payload length {0}")]
    InvalidPayloadLength(usize),
}

/// The codecs the dataplane can decode and encode on its fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodecKind {
    /// G.711 mu-law, RTP payload type 0.
    Pcmu,
    /// G.711 A-law, RTP payload type 8.
    Pcma,
    /// Linear 16-bit big-endian PCM at 8 kHz, mono (a dynamic payload type).
    L16,
}

impl CodecKind {
    /// All fast-path codecs, in a fixed order (used to index per-codec buffers).
    pub const ALL: [CodecKind; 3] = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::L16];

    /// Encode `pcm` into `out` with this codec; returns the bytes written.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match self {
            CodecKind::Pcmu => Pcmu.encode(pcm, out),
            CodecKind::Pcma => Pcma.encode(pcm, out),
            CodecKind::L16 => L16.encode(pcm, out),
        }
    }

    /// Decode `payload` into `pcm` with this codec; returns the samples written.
    pub fn decode(self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            CodecKind::Pcmu => Pcmu.decode(payload, pcm),
            CodecKind::Pcma => Pcma.decode(payload, pcm),
            CodecKind::L16 => L16.decode(payload, pcm),
        }
    }

    /// Position of this codec in [`CodecKind::ALL`].
    pub const fn index(self) -> usize {
        match self {
            CodecKind::Pcmu => 0,
            CodecKind::Pcma => 1,
            CodecKind::L16 => 2,
        }
    }

    /// The static RTP payload type of RFC 3551, if the codec has one.
    pub const fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::L16 => None,
        }
    }

    /// The SDP encoding name (`a=rtpmap`).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::L16 => "L16",
        }
    }

    /// The rate of the audio it carries.
    pub const fn sample_rate(self) -> SampleRate {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::L16 => SampleRate::Hz8000,
        }
    }

    /// RTP clock rate in Hz (the sample rate for these; G.722's is half of it).
    pub const fn clock_rate(self) -> u32 {
        self.sample_rate().hz()
    }

    /// Bytes of payload that carry `samples` samples.
    pub const fn encoded_len(self, samples: usize) -> usize {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => samples,
            CodecKind::L16 => samples * 2,
        }
    }

    /// Samples carried by a payload of `len` bytes, or `None` if the length is invalid.
    pub const fn samples_in(self, len: usize) -> Option<usize> {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => Some(len),
            CodecKind::L16 => {
                if len.is_multiple_of(2) {
                    Some(len / 2)
                } else {
                    None
                }
            }
        }
    }
}

/// A frame codec. Stateful codecs (G.722, Opus) keep their state in `self`, which is why
/// both directions take `&mut self`. Implementations never allocate.
pub trait Codec {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;

    /// Encodes `pcm` into `out`; returns the number of payload bytes written.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// Decodes `payload` into `pcm`; returns the number of samples written.
    fn decode(&mut self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError>;
}

/// One stream's codec instance: the value a leg encodes and decodes with. A stateful
/// codec (G.722, Opus) keeps its encoder and decoder state in its variant, built and
/// preallocated with the leg on the control core; G.711 and L16 carry none. Adding a
/// codec is adding a variant here and its arms below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegCodec {
    /// G.711 mu-law.
    Pcmu(Pcmu),
    /// G.711 A-law.
    Pcma(Pcma),
    /// L16.
    L16(L16),
}

impl LegCodec {
    /// A fresh instance of `kind` (on the control core: a stateful codec allocates its
    /// state here).
    pub fn new(kind: CodecKind) -> LegCodec {
        match kind {
            CodecKind::Pcmu => LegCodec::Pcmu(Pcmu),
            CodecKind::Pcma => LegCodec::Pcma(Pcma),
            CodecKind::L16 => LegCodec::L16(L16),
        }
    }

    fn as_codec(&mut self) -> &mut dyn Codec {
        match self {
            LegCodec::Pcmu(c) => c,
            LegCodec::Pcma(c) => c,
            LegCodec::L16(c) => c,
        }
    }
}

impl Codec for LegCodec {
    fn kind(&self) -> CodecKind {
        match self {
            LegCodec::Pcmu(c) => c.kind(),
            LegCodec::Pcma(c) => c.kind(),
            LegCodec::L16(c) => c.kind(),
        }
    }
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.as_codec().encode(pcm, out)
    }
    fn decode(&mut self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        self.as_codec().decode(payload, pcm)
    }
}

/// Checks that `available` can hold `needed` elements.
fn ensure_room(needed: usize, available: usize) -> Result<(), CodecError> {
    if available < needed {
        Err(CodecError::OutputTooSmall { needed, available })
    } else {
        Ok(())
    }
}

/// G.711 mu-law codec (stateless).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pcmu;

/// G.711 A-law codec (stateless).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pcma;

/// L16 codec: big-endian signed 16-bit samples (stateless).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L16;

impl Codec for Pcmu {
    fn kind(&self) -> CodecKind {
        CodecKind::Pcmu
    }
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        ensure_room(pcm.len(), out.len())?;
        Ok(g711::ulaw_encode_slice(pcm, out))
    }
    fn decode(&mut self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        ensure_room(payload.len(), pcm.len())?;
        Ok(g711::ulaw_decode_slice(payload, pcm))
    }
}

impl Codec for Pcma {
    fn kind(&self) -> CodecKind {
        CodecKind::Pcma
    }
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        ensure_room(pcm.len(), out.len())?;
        Ok(g711::alaw_encode_slice(pcm, out))
    }
    fn decode(&mut self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        ensure_room(payload.len(), pcm.len())?;
        Ok(g711::alaw_decode_slice(payload, pcm))
    }
}

impl Codec for L16 {
    fn kind(&self) -> CodecKind {
        CodecKind::L16
    }
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        ensure_room(pcm.len() * 2, out.len())?;
        Ok(l16::encode_slice(pcm, out))
    }
    fn decode(&mut self, payload: &[u8], pcm: &mut [i16]) -> Result<usize, CodecError> {
        let samples = CodecKind::L16
            .samples_in(payload.len())
            .ok_or(CodecError::InvalidPayloadLength(payload.len()))?;
        ensure_room(samples, pcm.len())?;
        Ok(l16::decode_slice(payload, pcm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_and_check_buffers() {
        let pcm = [0i16, 1000, -1000, 32767, -32768];
        let mut out = [0u8; 10];
        let mut back = [0i16; 5];
        let mut instances = CodecKind::ALL.map(LegCodec::new);
        let codecs: [&mut dyn Codec; 6] = {
            let [a, b, c] = &mut instances;
            [&mut Pcmu, &mut Pcma, &mut L16, a, b, c]
        };
        for c in codecs {
            let k = c.kind();
            let n = c.encode(&pcm, &mut out).unwrap();
            assert_eq!(n, k.encoded_len(pcm.len()));
            assert_eq!(c.decode(&out[..n], &mut back).unwrap(), 5);
            for (a, b) in pcm.iter().zip(back) {
                // G.711 keeps at least 5 significant bits; L16 is exact.
                assert!((i32::from(*a) - i32::from(b)).abs() <= i32::from(*a).abs() / 16 + 8);
            }
            assert!(matches!(
                c.encode(&pcm, &mut out[..2]),
                Err(CodecError::OutputTooSmall { .. })
            ));
            assert!(matches!(
                c.decode(&out[..n], &mut back[..1]),
                Err(CodecError::OutputTooSmall { .. })
            ));
        }
        assert_eq!(
            L16.decode(&[1, 2, 3], &mut back),
            Err(CodecError::InvalidPayloadLength(3))
        );
    }

    #[test]
    fn codec_kind_facts() {
        assert_eq!(CodecKind::Pcmu.static_payload_type(), Some(0));
        assert_eq!(CodecKind::Pcma.static_payload_type(), Some(8));
        assert_eq!(CodecKind::L16.samples_in(320), Some(160));
        assert_eq!(CodecKind::L16.samples_in(3), None);
        for (i, k) in CodecKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(LegCodec::new(*k).kind(), *k);
        }
    }
}
