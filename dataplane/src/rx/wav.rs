//! RIFF/WAVE reader for prompts: 8 kHz mono, 16-bit PCM (format tag 1, or
//! WAVE_FORMAT_EXTENSIBLE with a PCM sub-format) or G.711 A-law (6) / mu-law (7).
//! Unknown chunks are skipped; every length is checked, so malformed input is an error
//! value, never a panic.

use super::prompt::PROMPT_RATE;
use crate::codec::g711;

/// Why a WAV file was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The file does not start with a RIFF/WAVE header.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// A chunk header or body runs past the end of the file.
    #[error("chunk `{0}` is truncated")]
    Truncated(String),
    /// No `fmt ` chunk before the `data` chunk.
    #[error("no fmt chunk before the data chunk")]
    MissingFormat,
    /// No `data` chunk.
    #[error("no data chunk")]
    MissingData,
    /// The `fmt ` chunk is shorter than 16 bytes.
    #[error("fmt chunk of {0} bytes is too short")]
    ShortFormat(u32),
    /// The sample encoding is not 16-bit PCM, A-law or mu-law.
    #[error("unsupported format tag {tag} with {bits} bits per sample")]
    UnsupportedFormat {
        /// The WAVE format tag.
        tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Not [`PROMPT_RATE`].
    #[error("sample rate {0} Hz, need {need}", need = PROMPT_RATE.hz())]
    SampleRate(u32),
    /// Not mono.
    #[error("{0} channels, need 1 (mono)")]
    Channels(u16),
    /// The data length is not a whole number of samples.
    #[error("data length {0} is not a whole number of samples")]
    OddData(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Pcm16,
    Alaw,
    Ulaw,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn chunk_name(id: &[u8]) -> String {
    id.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '?'
            }
        })
        .collect()
}

fn parse_format(body: &[u8]) -> Result<Encoding, WavError> {
    let short = || WavError::ShortFormat(body.len() as u32);
    let mut tag = u16_at(body, 0).ok_or_else(short)?;
    let channels = u16_at(body, 2).ok_or_else(short)?;
    let rate = u32_at(body, 4).ok_or_else(short)?;
    let bits = u16_at(body, 14).ok_or_else(short)?;
    if tag == 0xfffe {
        // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
        tag = u16_at(body, 24).ok_or(WavError::UnsupportedFormat { tag, bits })?;
    }
    let enc = match (tag, bits) {
        (1, 16) => Encoding::Pcm16,
        (6, 8) => Encoding::Alaw,
        (7, 8) => Encoding::Ulaw,
        _ => return Err(WavError::UnsupportedFormat { tag, bits }),
    };
    if channels != 1 {
        return Err(WavError::Channels(channels));
    }
    if rate != PROMPT_RATE.hz() {
        return Err(WavError::SampleRate(rate));
    }
    Ok(enc)
}

/// Decode a WAV file's samples to 16-bit linear PCM.
pub fn parse(file: &[u8]) -> Result<Vec<i16>, WavError> {
    if file.get(0..4) != Some(b"RIFF") || file.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    // Trust the file length over the RIFF size field, which writers often get wrong.
    let mut at = 12usize;
    let mut encoding = None;
    while at < file.len() {
        let id = file
            .get(at..at + 4)
            .ok_or_else(|| WavError::Truncated(chunk_name(file.get(at..).unwrap_or(&[]))))?;
        let size = u32_at(file, at + 4).ok_or_else(|| WavError::Truncated(chunk_name(id)))?;
        let body_start = at + 8;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let body_end = body_start.checked_add(size).filter(|&e| e <= file.len());
        match id {
            b"fmt " => {
                let body = file
                    .get(body_start..body_end.ok_or_else(|| WavError::Truncated(chunk_name(id)))?);
                let body = body.ok_or_else(|| WavError::Truncated(chunk_name(id)))?;
                if body.len() < 16 {
                    return Err(WavError::ShortFormat(body.len() as u32));
                }
                encoding = Some(parse_format(body)?);
            }
            b"data" => {
                let enc = encoding.ok_or(WavError::MissingFormat)?;
                // A streaming writer may leave the data size at 0 or 0xffffffff: take the
                // rest of the file then.
                let end = match body_end {
                    Some(e) if size != 0 => e,
                    _ if size == 0 || size == u32::MAX as usize => file.len(),
                    _ => return Err(WavError::Truncated(chunk_name(id))),
                };
                let data = file.get(body_start..end).unwrap_or(&[]);
                return Ok(match enc {
                    Encoding::Pcm16 => {
                        if data.len() % 2 != 0 {
                            return Err(WavError::OddData(data.len()));
                        }
                        data.chunks_exact(2)
                            .map(|c| i16::from_le_bytes([c[0], c[1]]))
                            .collect()
                    }
                    Encoding::Alaw => data.iter().map(|&b| g711::alaw_decode(b)).collect(),
                    Encoding::Ulaw => data.iter().map(|&b| g711::ulaw_decode(b)).collect(),
                });
            }
            _ => {}
        }
        // Chunks are padded to even length.
        let next = body_end.ok_or_else(|| WavError::Truncated(chunk_name(id)))?;
        at = next + (size & 1);
    }
    Err(WavError::MissingData)
}

/// Build a 16-bit PCM, 8 kHz mono WAV file (used by tests and tools).
pub fn write_pcm16(samples: &[i16]) -> Vec<u8> {
    let data_len = samples.len() * 2;
    let mut out = Vec::with_capacity(44 + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&PROMPT_RATE.hz().to_le_bytes());
    out.extend_from_slice(&(PROMPT_RATE.hz() * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g711_wav(tag: u16, data: &[u8], extra_chunk: bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF\0\0\0\0WAVE");
        if extra_chunk {
            out.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // odd size, padded
        }
        out.extend_from_slice(b"fmt \x12\0\0\0");
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn pcm16_round_trip() {
        let s: Vec<i16> = (0..1000).map(|i| (i * 37 - 9000) as i16).collect();
        assert_eq!(parse(&write_pcm16(&s)).unwrap(), s);
    }

    #[test]
    fn g711_formats_and_extra_chunks() {
        let data = [0x00u8, 0x7f, 0x80, 0xff, 0xd5];
        let u = parse(&g711_wav(7, &data, true)).unwrap();
        assert_eq!(
            u,
            data.iter()
                .map(|&b| g711::ulaw_decode(b))
                .collect::<Vec<_>>()
        );
        let a = parse(&g711_wav(6, &data, false)).unwrap();
        assert_eq!(
            a,
            data.iter()
                .map(|&b| g711::alaw_decode(b))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_malformed_files() {
        assert_eq!(parse(b"RIFX"), Err(WavError::NotWave));
        assert_eq!(parse(b"RIFF\0\0\0\0WAVE"), Err(WavError::MissingData));
        let mut w = write_pcm16(&[1, 2, 3]);
        w.truncate(40);
        assert!(
            matches!(parse(&w), Err(WavError::Truncated(_))),
            "{:?}",
            parse(&w)
        );
        let mut w = write_pcm16(&[1, 2, 3]);
        w[24..28].copy_from_slice(&16000u32.to_le_bytes());
        assert_eq!(parse(&w), Err(WavError::SampleRate(16000)));
        let mut w = write_pcm16(&[1, 2, 3]);
        w[22] = 2;
        assert_eq!(parse(&w), Err(WavError::Channels(2)));
        let mut w = write_pcm16(&[1, 2, 3]);
        w[34] = 8;
        assert_eq!(
            parse(&w),
            Err(WavError::UnsupportedFormat { tag: 1, bits: 8 })
        );
        let mut w = write_pcm16(&[1, 2, 3]);
        w.truncate(w.len() - 1);
        assert!(matches!(parse(&w), Err(WavError::Truncated(_))));
        // data before fmt
        let w = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\x01\x02";
        assert_eq!(parse(w), Err(WavError::MissingFormat));
    }
}
