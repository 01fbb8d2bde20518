//! RTP header extensions: RFC 8285 one-byte (`0xBEDE`) and two-byte (`0x100x`) element
//! forms, parse and build, and the RFC 6464 client-to-mixer audio level element.

use thiserror::Error;

/// Profile word of the one-byte form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Profile word of the two-byte form (the low 4 bits are "appbits").
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why an extension block is malformed or can't be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ExtError {
    /// An element's length runs past the end of the block.
    #[error("truncated header extension element")]
    Truncated,
    /// An element id or length not representable in the chosen form.
    #[error("invalid header extension element id {id} or length {len}")]
    Element {
        /// The element id.
        id: u8,
        /// The element data length.
        len: usize,
    },
    /// The output buffer is too small.
    #[error("buffer too small for header extension")]
    BufferTooSmall,
}

/// The two RFC 8285 element forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionForm {
    /// Ids 1..=14, 1..=16 data bytes.
    OneByte,
    /// Ids 1..=255, 0..=255 data bytes.
    TwoByte,
}

impl ExtensionForm {
    /// The form announced by a profile word, if it is an RFC 8285 one.
    pub fn from_profile(profile: u16) -> Option<ExtensionForm> {
        if profile == ONE_BYTE_PROFILE {
            Some(ExtensionForm::OneByte)
        } else if profile & 0xFFF0 == TWO_BYTE_PROFILE {
            Some(ExtensionForm::TwoByte)
        } else {
            None
        }
    }

    /// Whether an element with this id and data length fits the form.
    pub fn fits(self, id: u8, len: usize) -> bool {
        match self {
            ExtensionForm::OneByte => (1..=14).contains(&id) && (1..=16).contains(&len),
            ExtensionForm::TwoByte => id >= 1 && len <= 255,
        }
    }
}

/// An RTP header extension block: the profile-defined word and the data after the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    /// The 16-bit "defined by profile" word.
    pub profile: u16,
    /// The extension data (a multiple of 4 bytes).
    pub data: &'a [u8],
}

impl<'a> HeaderExtension<'a> {
    /// The RFC 8285 elements (none if the profile word is not an RFC 8285 one).
    pub fn elements(&self) -> ExtensionElements<'a> {
        ExtensionElements {
            form: ExtensionForm::from_profile(self.profile),
            data: self.data,
        }
    }
}

/// One extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Local identifier (negotiated with `a=extmap`).
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

/// Iterator over the elements of an extension block. Yields `Err` once and stops on a
/// malformed element.
#[derive(Debug, Clone)]
pub struct ExtensionElements<'a> {
    form: Option<ExtensionForm>,
    data: &'a [u8],
}

impl<'a> ExtensionElements<'a> {
    /// An iterator with no elements.
    pub fn empty() -> Self {
        ExtensionElements {
            form: None,
            data: &[],
        }
    }

    /// Parses `data` as elements of `form`.
    pub fn new(form: ExtensionForm, data: &'a [u8]) -> Self {
        ExtensionElements {
            form: Some(form),
            data,
        }
    }

    /// The first element with id `id`, ignoring malformed trailing data.
    pub fn find(self, id: u8) -> Option<ExtensionElement<'a>> {
        self.map_while(Result::ok).find(|e| e.id == id)
    }

    fn fail(&mut self) -> Option<Result<ExtensionElement<'a>, ExtError>> {
        self.data = &[];
        Some(Err(ExtError::Truncated))
    }
}

impl<'a> Iterator for ExtensionElements<'a> {
    type Item = Result<ExtensionElement<'a>, ExtError>;

    fn next(&mut self) -> Option<Self::Item> {
        let form = self.form?;
        loop {
            let (&first, rest) = self.data.split_first()?;
            // A zero byte is padding in both forms; id 0 is reserved for padding in the
            // one-byte form, so any byte with id 0 is skipped.
            if first == 0 || (form == ExtensionForm::OneByte && first >> 4 == 0) {
                self.data = rest;
                continue;
            }
            let (id, len, rest) = match form {
                ExtensionForm::OneByte => {
                    let id = first >> 4;
                    if id == 15 {
                        // Reserved id: stop processing the block (RFC 8285 §4.2).
                        self.data = &[];
                        return None;
                    }
                    (id, usize::from(first & 0x0F) + 1, rest)
                }
                ExtensionForm::TwoByte => match rest.split_first() {
                    Some((&len, rest)) => (first, usize::from(len), rest),
                    None => return self.fail(),
                },
            };
            let Some(data) = rest.get(..len) else {
                return self.fail();
            };
            self.data = rest.get(len..).unwrap_or(&[]);
            return Some(Ok(ExtensionElement { id, data }));
        }
    }
}

/// Writes an extension block (`profile`, length, elements, zero padding to 32 bits) into
/// `out`; returns the number of bytes written.
pub fn write_extension(
    form: ExtensionForm,
    elements: &[ExtensionElement<'_>],
    out: &mut [u8],
) -> Result<usize, ExtError> {
    let header = match form {
        ExtensionForm::OneByte => 1,
        ExtensionForm::TwoByte => 2,
    };
    let mut body = 0usize;
    for e in elements {
        if !form.fits(e.id, e.data.len()) {
            return Err(ExtError::Element {
                id: e.id,
                len: e.data.len(),
            });
        }
        body += header + e.data.len();
    }
    let padded = body.div_ceil(4) * 4;
    let words = u16::try_from(padded / 4).map_err(|_| ExtError::BufferTooSmall)?;
    let out = out.get_mut(..4 + padded).ok_or(ExtError::BufferTooSmall)?;
    let (head, rest) = out.split_at_mut(4);
    let profile = match form {
        ExtensionForm::OneByte => ONE_BYTE_PROFILE,
        ExtensionForm::TwoByte => TWO_BYTE_PROFILE,
    };
    head[..2].copy_from_slice(&profile.to_be_bytes());
    head[2..].copy_from_slice(&words.to_be_bytes());
    rest.fill(0);
    let mut at = 0;
    for e in elements {
        let hdr: &[u8] = match form {
            ExtensionForm::OneByte => &[(e.id << 4) | (e.data.len() as u8 - 1)],
            ExtensionForm::TwoByte => &[e.id, e.data.len() as u8],
        };
        for part in [hdr, e.data] {
            if let Some(dst) = rest.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part);
            }
            at += part.len();
        }
    }
    Ok(4 + padded)
}

/// RFC 6464 audio level: the level of the audio in the packet in -dBov (0 = loudest,
/// 127 = silence) and the voice-activity flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioLevel {
    /// The sender's voice activity detector says the packet holds speech.
    pub voice: bool,
    /// Level in -dBov, 0..=127.
    pub level: u8,
}

impl AudioLevel {
    /// Parses the element data (its first byte; RFC 6464 allows trailing padding bytes).
    pub fn parse(data: &[u8]) -> Option<AudioLevel> {
        let b = *data.first()?;
        Some(AudioLevel {
            voice: b & 0x80 != 0,
            level: b & 0x7F,
        })
    }

    /// The element's one data byte.
    pub fn to_byte(self) -> u8 {
        (u8::from(self.voice) << 7) | self.level.min(127)
    }

    /// Finds and parses the audio level element with the negotiated `id`.
    pub fn find(elements: ExtensionElements<'_>, id: u8) -> Option<AudioLevel> {
        elements.find(id).and_then(|e| AudioLevel::parse(e.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_form_with_padding_and_reserved_id() {
        // id 1 len 1, two padding bytes, id 2 len 2, then id 15 stops parsing.
        let data = [0x10, 0xD5, 0, 0, 0x21, 7, 8, 0xF0, 0x30, 1];
        let e: Vec<_> = ExtensionElements::new(ExtensionForm::OneByte, &data).collect();
        assert_eq!(
            e,
            vec![
                Ok(ExtensionElement {
                    id: 1,
                    data: &[0xD5]
                }),
                Ok(ExtensionElement {
                    id: 2,
                    data: &[7, 8]
                })
            ]
        );
        let level =
            AudioLevel::find(ExtensionElements::new(ExtensionForm::OneByte, &data), 1).unwrap();
        assert_eq!(
            level,
            AudioLevel {
                voice: true,
                level: 0x55
            }
        );
        assert_eq!(level.to_byte(), 0xD5);
    }

    #[test]
    fn two_byte_form_allows_empty_elements() {
        let data = [5, 0, 0, 200, 2, 1, 2, 0];
        let e: Vec<_> = ExtensionElements::new(ExtensionForm::TwoByte, &data).collect();
        assert_eq!(
            e,
            vec![
                Ok(ExtensionElement { id: 5, data: &[] }),
                Ok(ExtensionElement {
                    id: 200,
                    data: &[1, 2]
                })
            ]
        );
    }

    #[test]
    fn truncated_elements_error_once() {
        let mut it = ExtensionElements::new(ExtensionForm::OneByte, &[0x13, 1]);
        assert_eq!(it.next(), Some(Err(ExtError::Truncated)));
        assert_eq!(it.next(), None);
        let mut it = ExtensionElements::new(ExtensionForm::TwoByte, &[7]);
        assert_eq!(it.next(), Some(Err(ExtError::Truncated)));
        assert_eq!(it.next(), None);
        assert_eq!(
            HeaderExtension {
                profile: 0x1234,
                data: &[1, 2, 3, 4]
            }
            .elements()
            .count(),
            0
        );
    }

    #[test]
    fn write_then_parse_both_forms() {
        let elements = [
            ExtensionElement {
                id: 1,
                data: &[0x85],
            },
            ExtensionElement {
                id: 3,
                data: &[1, 2, 3],
            },
        ];
        for form in [ExtensionForm::OneByte, ExtensionForm::TwoByte] {
            let mut buf = [0xEEu8; 32];
            let n = write_extension(form, &elements, &mut buf).unwrap();
            assert_eq!(n % 4, 0);
            let profile = u16::from_be_bytes([buf[0], buf[1]]);
            assert_eq!(ExtensionForm::from_profile(profile), Some(form));
            assert_eq!(usize::from(u16::from_be_bytes([buf[2], buf[3]])) * 4 + 4, n);
            let ext = HeaderExtension {
                profile,
                data: &buf[4..n],
            };
            let got: Vec<_> = ext.elements().map(Result::unwrap).collect();
            assert_eq!(got, elements);
        }
        let bad = [ExtensionElement { id: 15, data: &[1] }];
        assert_eq!(
            write_extension(ExtensionForm::OneByte, &bad, &mut [0; 16]),
            Err(ExtError::Element { id: 15, len: 1 })
        );
        let empty = [ExtensionElement { id: 4, data: &[] }];
        assert!(write_extension(ExtensionForm::OneByte, &empty, &mut [0; 16]).is_err());
        assert_eq!(
            write_extension(ExtensionForm::TwoByte, &empty, &mut [0; 16]),
            Ok(8)
        );
        assert_eq!(
            write_extension(ExtensionForm::TwoByte, &elements, &mut [0; 8]),
            Err(ExtError::BufferTooSmall)
        );
    }
}
