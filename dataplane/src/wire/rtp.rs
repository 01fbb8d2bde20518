//! RTP (RFC 3550 §5.1) zero-copy views: [`RtpPacket`] reads a packet in a `&[u8]`,
//! [`RtpPacketMut`] rewrites header fields in place, [`RtpHeader::write`] builds a header
//! into a caller's buffer. CSRC lists, padding and the header extension are handled; the
//! extension's elements are parsed by [`super::rtp_ext`].

use thiserror::Error;

use super::rtp_ext::{ExtensionElements, HeaderExtension};

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
/// The only RTP version in use.
pub const RTP_VERSION: u8 = 2;

/// Why a buffer is not a valid RTP packet (or a header doesn't fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the header it announces.
    #[error("truncated RTP packet")]
    Truncated,
    /// Version field is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// Padding count is zero or larger than the space after the header.
    #[error("invalid RTP padding")]
    Padding,
    /// More than 15 CSRCs or a payload type above 127 requested when building.
    #[error("invalid RTP header field")]
    Field,
    /// The output buffer is too small.
    #[error("buffer too small for RTP header")]
    BufferTooSmall,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A validated RTP packet borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
}

/// Validates the layout and returns (header length, payload end).
fn layout(buf: &[u8]) -> Result<(usize, usize), RtpError> {
    let b0 = *buf.first().ok_or(RtpError::Truncated)?;
    if buf.len() < FIXED_HEADER_LEN {
        return Err(RtpError::Truncated);
    }
    let version = b0 >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::Version(version));
    }
    let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(b0 & 0x0F);
    if b0 & 0x10 != 0 {
        let words = be16(buf, header_len + 2).ok_or(RtpError::Truncated)?;
        header_len += 4 + 4 * usize::from(words);
    }
    if header_len > buf.len() {
        return Err(RtpError::Truncated);
    }
    let mut payload_end = buf.len();
    if b0 & 0x20 != 0 {
        let pad = usize::from(*buf.last().ok_or(RtpError::Truncated)?);
        if pad == 0 || pad > buf.len() - header_len {
            return Err(RtpError::Padding);
        }
        payload_end -= pad;
    }
    Ok((header_len, payload_end))
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates `buf` (version 2, CSRCs, extension and padding within bounds).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let (header_len, payload_end) = layout(buf)?;
        Ok(RtpPacket {
            buf,
            header_len,
            payload_end,
        })
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    fn byte(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    /// Version (always 2 after parsing).
    pub fn version(&self) -> u8 {
        self.byte(0) >> 6
    }

    /// Padding bit.
    pub fn has_padding(&self) -> bool {
        self.byte(0) & 0x20 != 0
    }

    /// Extension bit.
    pub fn has_extension(&self) -> bool {
        self.byte(0) & 0x10 != 0
    }

    /// Number of CSRCs.
    pub fn csrc_count(&self) -> u8 {
        self.byte(0) & 0x0F
    }

    /// Marker bit.
    pub fn marker(&self) -> bool {
        self.byte(1) & 0x80 != 0
    }

    /// Payload type.
    pub fn payload_type(&self) -> u8 {
        self.byte(1) & 0x7F
    }

    /// Sequence number.
    pub fn sequence_number(&self) -> u16 {
        be16(self.buf, 2).unwrap_or(0)
    }

    /// RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        be32(self.buf, 4).unwrap_or(0)
    }

    /// Synchronisation source.
    pub fn ssrc(&self) -> u32 {
        be32(self.buf, 8).unwrap_or(0)
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let n = usize::from(self.csrc_count());
        let list = self
            .buf
            .get(FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * n)
            .unwrap_or(&[]);
        list.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension (profile word and data), if present.
    pub fn extension(&self) -> Option<HeaderExtension<'a>> {
        if !self.has_extension() {
            return None;
        }
        let at = FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count());
        let profile = be16(self.buf, at)?;
        let data = self.buf.get(at + 4..self.header_len)?;
        Some(HeaderExtension { profile, data })
    }

    /// The RFC 8285 elements of the header extension (empty without one).
    pub fn extension_elements(&self) -> ExtensionElements<'a> {
        match self.extension() {
            Some(ext) => ext.elements(),
            None => ExtensionElements::empty(),
        }
    }

    /// Length of the header including CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        self.buf
            .get(self.header_len..self.payload_end)
            .unwrap_or(&[])
    }

    /// Number of padding bytes (including the count byte).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.payload_end
    }
}

/// A validated RTP packet in a mutable buffer, for in-place header rewrites.
#[derive(Debug)]
pub struct RtpPacketMut<'a> {
    buf: &'a mut [u8],
    header_len: usize,
    payload_end: usize,
}

impl<'a> RtpPacketMut<'a> {
    /// Parses and validates `buf` like [`RtpPacket::parse`].
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let (header_len, payload_end) = layout(buf)?;
        Ok(RtpPacketMut {
            buf,
            header_len,
            payload_end,
        })
    }

    /// A read-only view of the same packet.
    pub fn as_packet(&self) -> RtpPacket<'_> {
        RtpPacket {
            buf: self.buf,
            header_len: self.header_len,
            payload_end: self.payload_end,
        }
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Sets the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        if let Some(b) = self.buf.get_mut(1) {
            *b = (*b & 0x7F) | (u8::from(marker) << 7);
        }
    }

    /// Sets the payload type (the low 7 bits of `pt`).
    pub fn set_payload_type(&mut self, pt: u8) {
        if let Some(b) = self.buf.get_mut(1) {
            *b = (*b & 0x80) | (pt & 0x7F);
        }
    }

    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, seq: u16) {
        self.put(2, &seq.to_be_bytes());
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.put(4, &ts.to_be_bytes());
    }

    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.put(8, &ssrc.to_be_bytes());
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf
            .get_mut(self.header_len..self.payload_end)
            .unwrap_or(&mut [])
    }
}

/// The fields of a header to build (no CSRCs, no extension: what the mixer sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header at the start of `out`; returns 12.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        self.write_with_csrcs(&[], out)
    }

    /// Writes the header with a CSRC list (at most 15); returns the header length.
    pub fn write_with_csrcs(&self, csrcs: &[u32], out: &mut [u8]) -> Result<usize, RtpError> {
        if csrcs.len() > 15 || self.payload_type > 127 {
            return Err(RtpError::Field);
        }
        let len = FIXED_HEADER_LEN + 4 * csrcs.len();
        let out = out.get_mut(..len).ok_or(RtpError::BufferTooSmall)?;
        let (fixed, list) = out.split_at_mut(FIXED_HEADER_LEN);
        fixed[0] = (RTP_VERSION << 6) | csrcs.len() as u8;
        fixed[1] = (u8::from(self.marker) << 7) | self.payload_type;
        fixed[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        fixed[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        fixed[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        for (dst, c) in list.chunks_exact_mut(4).zip(csrcs) {
            dst.copy_from_slice(&c.to_be_bytes());
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_full_featured_packet() {
        // V=2 P=1 X=1 CC=2, M=1 PT=0, seq 0x1234, ts 0xDEADBEEF, ssrc 0x01020304.
        let mut p = vec![0xB2, 0x80, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4];
        p.extend([0, 0, 0, 0xAA, 0, 0, 0, 0xBB]); // CSRCs
        p.extend([0xBE, 0xDE, 0, 1, 0x10, 0x7F, 0, 0]); // one-byte ext: id 1 len 1
        p.extend([9, 9, 9]); // payload
        p.extend([0, 0, 3]); // padding
        let r = RtpPacket::parse(&p).unwrap();
        assert!(r.marker() && r.has_padding() && r.has_extension());
        assert_eq!(r.version(), 2);
        assert_eq!(r.payload_type(), 0);
        assert_eq!(r.sequence_number(), 0x1234);
        assert_eq!(r.timestamp(), 0xDEAD_BEEF);
        assert_eq!(r.ssrc(), 0x0102_0304);
        assert_eq!(r.csrcs().collect::<Vec<_>>(), vec![0xAA, 0xBB]);
        assert_eq!(r.header_len(), 28);
        assert_eq!(r.payload(), &[9, 9, 9]);
        assert_eq!(r.padding_len(), 3);
        let ext = r.extension().unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        let e: Vec<_> = r.extension_elements().collect();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].unwrap().data, &[0x7F]);
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        // CC=1 but no CSRC.
        assert_eq!(RtpPacket::parse(&[0x81; 12]), Err(RtpError::Truncated));
        // X=1 but no extension header.
        assert_eq!(RtpPacket::parse(&[0x90; 12]), Err(RtpError::Truncated));
        // Padding of 0 and padding longer than the payload.
        let mut p = [0u8; 14];
        p[0] = 0xA0;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::Padding));
        p[13] = 3;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::Padding));
        p[13] = 2;
        assert_eq!(RtpPacket::parse(&p).unwrap().payload(), &[] as &[u8]);
    }

    #[test]
    fn build_and_rewrite() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence_number: 65535,
            timestamp: 160,
            ssrc: 0xCAFE_BABE,
        };
        let mut buf = [0u8; 20];
        assert_eq!(h.write(&mut buf), Ok(12));
        let r = RtpPacket::parse(&buf).unwrap();
        assert_eq!(
            (
                r.marker(),
                r.payload_type(),
                r.sequence_number(),
                r.timestamp(),
                r.ssrc()
            ),
            (true, 8, 65535, 160, 0xCAFE_BABE)
        );
        assert_eq!(r.payload().len(), 8);
        let mut m = RtpPacketMut::parse(&mut buf).unwrap();
        m.set_marker(false);
        m.set_payload_type(0);
        m.set_sequence_number(7);
        m.set_timestamp(9);
        m.set_ssrc(11);
        m.payload_mut()[0] = 0x55;
        let r = m.as_packet();
        assert_eq!(
            (
                r.marker(),
                r.payload_type(),
                r.sequence_number(),
                r.timestamp(),
                r.ssrc()
            ),
            (false, 0, 7, 9, 11)
        );
        assert_eq!(r.payload()[0], 0x55);
        assert_eq!(h.write(&mut [0u8; 11]), Err(RtpError::BufferTooSmall));
        assert_eq!(
            h.write_with_csrcs(&[0; 16], &mut [0u8; 100]),
            Err(RtpError::Field)
        );
        let mut big = [0u8; 20];
        assert_eq!(h.write_with_csrcs(&[1, 2], &mut big), Ok(20));
        assert_eq!(
            RtpPacket::parse(&big).unwrap().csrcs().collect::<Vec<_>>(),
            vec![1, 2]
        );
    }
}
