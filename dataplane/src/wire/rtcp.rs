//! RTCP (RFC 3550 §6): compound packet validation and zero-copy views of SR, RR, SDES, BYE
//! and APP; a writer that builds compound packets into a caller's buffer; and the rtcp-mux
//! demultiplexing rule of RFC 5761 §4 (with the first-byte ranges of RFC 7983).
//!
//! [`RtcpCompound::parse`] validates every packet (version, lengths, padding only in the
//! last packet, report-block and SDES structure), so iterating over it cannot fail.

use thiserror::Error;

/// Sender report.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;
/// Application-defined.
pub const PT_APP: u8 = 204;

/// SDES item type CNAME.
pub const SDES_CNAME: u8 = 1;

/// Length of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;

/// Why a buffer is not valid RTCP, or a packet doesn't fit when building.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// No packet at all.
    #[error("empty RTCP packet")]
    Empty,
    /// A header or a length field runs past the buffer.
    #[error("truncated RTCP packet")]
    Truncated,
    /// Version is not 2.
    #[error("RTCP version {0}, expected 2")]
    Version(u8),
    /// Padding bit on a packet that isn't last, or a bad padding count.
    #[error("invalid RTCP padding")]
    Padding,
    /// A packet's body doesn't match its type (report blocks, SDES chunks, BYE reason).
    #[error("malformed RTCP packet of type {0}")]
    Malformed(u8),
    /// Too many report blocks / sources for the 5-bit count, or an SDES item over 255 bytes.
    #[error("RTCP field out of range")]
    Field,
    /// The output buffer is too small.
    #[error("buffer too small for RTCP packet")]
    BufferTooSmall,
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// What a datagram on an rtcp-mux port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketClass {
    /// RTP.
    Rtp,
    /// RTCP.
    Rtcp,
    /// Neither (STUN, DTLS, ZRTP, ...).
    Other,
}

/// Classifies a datagram: first byte 128..=191 is RTP/RTCP (RFC 7983); then a second byte
/// whose low 7 bits are 64..=95 (packet types 192..=223) is RTCP (RFC 5761 §4).
pub fn classify(buf: &[u8]) -> PacketClass {
    match buf {
        [b0, b1, ..] if (128..=191).contains(b0) => {
            if (64..=95).contains(&(b1 & 0x7F)) {
                PacketClass::Rtcp
            } else {
                PacketClass::Rtp
            }
        }
        _ => PacketClass::Other,
    }
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub last_sr: u32,
    /// Delay since the last SR in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> ReportBlock {
        let lost = be32(b, 4);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost,
            extended_highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        }
    }

    fn write(&self, out: &mut [u8]) {
        let lost = (u32::from(self.fraction_lost) << 24)
            | (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF);
        let words = [
            self.ssrc,
            lost,
            self.extended_highest_seq,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        ];
        for (dst, w) in out.chunks_exact_mut(4).zip(words) {
            dst.copy_from_slice(&w.to_be_bytes());
        }
    }
}

/// Iterator over report blocks.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    data: core::slice::ChunksExact<'a, u8>,
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        self.data.next().map(ReportBlock::parse)
    }
}

fn report_blocks(data: &[u8], count: u8) -> ReportBlocks<'_> {
    let data = data
        .get(..usize::from(count) * REPORT_BLOCK_LEN)
        .unwrap_or(&[]);
    ReportBlocks {
        data: data.chunks_exact(REPORT_BLOCK_LEN),
    }
}

/// The sender-info section of a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SenderInfo {
    /// Sender's SSRC.
    pub ssrc: u32,
    /// 64-bit NTP timestamp.
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the NTP timestamp.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// A sender report view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// The sender info.
    pub fn sender_info(&self) -> SenderInfo {
        SenderInfo {
            ssrc: be32(self.body, 0),
            ntp_timestamp: (u64::from(be32(self.body, 4)) << 32) | u64::from(be32(self.body, 8)),
            rtp_timestamp: be32(self.body, 12),
            packet_count: be32(self.body, 16),
            octet_count: be32(self.body, 20),
        }
    }

    /// The report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        report_blocks(self.body.get(24..).unwrap_or(&[]), self.count)
    }
}

/// A receiver report view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    /// The reporter's SSRC.
    pub fn ssrc(&self) -> u32 {
        be32(self.body, 0)
    }

    /// The report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        report_blocks(self.body.get(4..).unwrap_or(&[]), self.count)
    }
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// Item type (1 = CNAME, 2 = NAME, ...).
    pub kind: u8,
    /// Item text.
    pub text: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The source.
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// The items of this chunk.
    pub fn items(&self) -> impl Iterator<Item = SdesItem<'a>> + 'a {
        let mut rest = self.items;
        core::iter::from_fn(move || match rest {
            [kind, len, tail @ ..] if *kind != 0 => {
                let text = tail.get(..usize::from(*len))?;
                rest = tail.get(usize::from(*len)..).unwrap_or(&[]);
                Some(SdesItem { kind: *kind, text })
            }
            _ => None,
        })
    }

    /// The CNAME item, if any.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|i| i.kind == SDES_CNAME).map(|i| i.text)
    }
}

/// Splits one SDES chunk off `data`: (ssrc, item bytes, rest). `None` if malformed.
fn split_chunk(data: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    let ssrc = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    let mut at = 4;
    loop {
        match *data.get(at)? {
            0 => {
                // End of items: skip the null and pad to the next 32-bit boundary.
                let end = (at + 1).div_ceil(4) * 4;
                let padding = data.get(at..end)?;
                if padding.iter().any(|&b| b != 0) {
                    return None;
                }
                return Some((ssrc, data.get(4..at)?, data.get(end..)?));
            }
            _ => {
                let len = usize::from(*data.get(at + 1)?);
                at += 2 + len;
            }
        }
    }
}

/// A source description view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdes<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> Sdes<'a> {
    /// The chunks.
    pub fn chunks(&self) -> impl Iterator<Item = SdesChunk<'a>> + 'a {
        let mut rest = self.body;
        (0..self.count).map_while(move |_| {
            let (ssrc, items, tail) = split_chunk(rest)?;
            rest = tail;
            Some(SdesChunk { ssrc, items })
        })
    }
}

/// A goodbye view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bye<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> Bye<'a> {
    /// The sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let list = self.body.get(..4 * usize::from(self.count)).unwrap_or(&[]);
        list.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The reason for leaving, if given.
    pub fn reason(&self) -> Option<&'a [u8]> {
        let rest = self.body.get(4 * usize::from(self.count)..)?;
        let (&len, text) = rest.split_first()?;
        text.get(..usize::from(len))
    }
}

/// An application-defined packet view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App<'a> {
    /// Subtype (the 5-bit count field).
    pub subtype: u8,
    /// Source.
    pub ssrc: u32,
    /// Four-character name.
    pub name: [u8; 4],
    /// Application data.
    pub data: &'a [u8],
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// SR.
    SenderReport(SenderReport<'a>),
    /// RR.
    ReceiverReport(ReceiverReport<'a>),
    /// SDES.
    Sdes(Sdes<'a>),
    /// BYE.
    Bye(Bye<'a>),
    /// APP.
    App(App<'a>),
    /// Any other type (RTPFB, PSFB, XR, ...), unparsed.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/format field.
        count: u8,
        /// Body after the 4-byte header, without padding.
        body: &'a [u8],
    },
}

/// Checks a typed packet's body; builds its view.
fn typed(packet_type: u8, count: u8, body: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let malformed = RtcpError::Malformed(packet_type);
    let blocks = usize::from(count) * REPORT_BLOCK_LEN;
    Ok(match packet_type {
        PT_SR if body.len() >= 24 + blocks => {
            RtcpPacket::SenderReport(SenderReport { count, body })
        }
        PT_RR if body.len() >= 4 + blocks => {
            RtcpPacket::ReceiverReport(ReceiverReport { count, body })
        }
        PT_SDES => {
            let mut rest = body;
            for _ in 0..count {
                rest = split_chunk(rest).ok_or(malformed)?.2;
            }
            RtcpPacket::Sdes(Sdes { count, body })
        }
        PT_BYE => {
            let ssrcs = 4 * usize::from(count);
            let rest = body.get(ssrcs..).ok_or(malformed)?;
            if let Some((&len, text)) = rest.split_first() {
                if text.len() < usize::from(len) {
                    return Err(malformed);
                }
            }
            RtcpPacket::Bye(Bye { count, body })
        }
        PT_APP => {
            let head = body.get(..8).ok_or(malformed)?;
            RtcpPacket::App(App {
                subtype: count,
                ssrc: be32(head, 0),
                name: [head[4], head[5], head[6], head[7]],
                data: body.get(8..).unwrap_or(&[]),
            })
        }
        PT_SR | PT_RR => return Err(malformed),
        _ => RtcpPacket::Other {
            packet_type,
            count,
            body,
        },
    })
}

/// Splits the next packet off `buf`: (packet, rest).
fn next_packet(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtcpError> {
    let head = buf.get(..4).ok_or(RtcpError::Truncated)?;
    let version = head[0] >> 6;
    if version != 2 {
        return Err(RtcpError::Version(version));
    }
    let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
    let packet = buf.get(..len).ok_or(RtcpError::Truncated)?;
    let rest = buf.get(len..).unwrap_or(&[]);
    let mut body = packet.get(4..).unwrap_or(&[]);
    if head[0] & 0x20 != 0 {
        // Padding is only allowed on the last packet of a compound (RFC 3550 §6.4.1).
        let pad = usize::from(*packet.last().ok_or(RtcpError::Padding)?);
        if !rest.is_empty() || pad == 0 || pad > body.len() {
            return Err(RtcpError::Padding);
        }
        body = body.get(..body.len() - pad).unwrap_or(&[]);
    }
    Ok((typed(head[1], head[0] & 0x1F, body)?, rest))
}

/// A validated (compound or single) RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpCompound<'a> {
    buf: &'a [u8],
}

impl<'a> RtcpCompound<'a> {
    /// Validates every packet in `buf`.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        if buf.is_empty() {
            return Err(RtcpError::Empty);
        }
        let mut rest = buf;
        while !rest.is_empty() {
            rest = next_packet(rest)?.1;
        }
        Ok(RtcpCompound { buf })
    }

    /// The packets in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> + 'a {
        let mut rest = self.buf;
        core::iter::from_fn(move || {
            let (p, tail) = next_packet(rest).ok()?;
            rest = tail;
            Some(p)
        })
    }

    /// Whether the compound starts with an SR or RR, as RFC 3550 §6.1 requires (RFC 5506
    /// reduced-size RTCP does not).
    pub fn starts_with_report(&self) -> bool {
        matches!(
            self.packets().next(),
            Some(RtcpPacket::SenderReport(_) | RtcpPacket::ReceiverReport(_))
        )
    }
}

/// Builds a compound RTCP packet into a caller's buffer, one packet per call.
#[derive(Debug)]
pub struct RtcpWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> RtcpWriter<'a> {
    /// Starts writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        RtcpWriter { buf, len: 0 }
    }

    /// Reserves a packet of `body_len` bytes (a multiple of 4) after a header; returns the
    /// body to fill.
    fn packet(
        &mut self,
        packet_type: u8,
        count: u8,
        body_len: usize,
    ) -> Result<&mut [u8], RtcpError> {
        if count > 31 {
            return Err(RtcpError::Field);
        }
        let total = 4 + body_len;
        let words = u16::try_from(total / 4 - 1).map_err(|_| RtcpError::Field)?;
        let start = self.len;
        let out = self
            .buf
            .get_mut(start..start + total)
            .ok_or(RtcpError::BufferTooSmall)?;
        out.fill(0);
        let (head, body) = out.split_at_mut(4);
        head[0] = 0x80 | count;
        head[1] = packet_type;
        head[2..4].copy_from_slice(&words.to_be_bytes());
        self.len += total;
        Ok(body)
    }

    /// Appends a sender report.
    pub fn sender_report(
        &mut self,
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<(), RtcpError> {
        let count = u8::try_from(blocks.len()).map_err(|_| RtcpError::Field)?;
        let body = self.packet(PT_SR, count, 24 + blocks.len() * REPORT_BLOCK_LEN)?;
        let (head, rest) = body.split_at_mut(24);
        let words = [
            info.ssrc,
            (info.ntp_timestamp >> 32) as u32,
            info.ntp_timestamp as u32,
            info.rtp_timestamp,
            info.packet_count,
            info.octet_count,
        ];
        for (dst, w) in head.chunks_exact_mut(4).zip(words) {
            dst.copy_from_slice(&w.to_be_bytes());
        }
        for (dst, b) in rest.chunks_exact_mut(REPORT_BLOCK_LEN).zip(blocks) {
            b.write(dst);
        }
        Ok(())
    }

    /// Appends a receiver report.
    pub fn receiver_report(&mut self, ssrc: u32, blocks: &[ReportBlock]) -> Result<(), RtcpError> {
        let count = u8::try_from(blocks.len()).map_err(|_| RtcpError::Field)?;
        let body = self.packet(PT_RR, count, 4 + blocks.len() * REPORT_BLOCK_LEN)?;
        let (head, rest) = body.split_at_mut(4);
        head.copy_from_slice(&ssrc.to_be_bytes());
        for (dst, b) in rest.chunks_exact_mut(REPORT_BLOCK_LEN).zip(blocks) {
            b.write(dst);
        }
        Ok(())
    }

    /// Appends an SDES packet with one chunk per `(ssrc, items)`.
    pub fn sdes(&mut self, chunks: &[(u32, &[SdesItem<'_>])]) -> Result<(), RtcpError> {
        let count = u8::try_from(chunks.len()).map_err(|_| RtcpError::Field)?;
        let mut body_len = 0;
        for (_, items) in chunks {
            let mut n = 4;
            for i in items.iter() {
                if i.kind == 0 || i.text.len() > 255 {
                    return Err(RtcpError::Field);
                }
                n += 2 + i.text.len();
            }
            body_len += (n + 1).div_ceil(4) * 4;
        }
        let body = self.packet(PT_SDES, count, body_len)?;
        let mut at = 0;
        for (ssrc, items) in chunks {
            let start = at;
            let mut put = |bytes: &[u8], at: &mut usize| {
                if let Some(dst) = body.get_mut(*at..*at + bytes.len()) {
                    dst.copy_from_slice(bytes);
                }
                *at += bytes.len();
            };
            put(&ssrc.to_be_bytes(), &mut at);
            for i in items.iter() {
                put(&[i.kind, i.text.len() as u8], &mut at);
                put(i.text, &mut at);
            }
            // Null terminator and zero padding (already zeroed).
            at = start + (at - start + 1).div_ceil(4) * 4;
        }
        Ok(())
    }

    /// Appends an SDES packet carrying one CNAME.
    pub fn sdes_cname(&mut self, ssrc: u32, cname: &[u8]) -> Result<(), RtcpError> {
        self.sdes(&[(
            ssrc,
            &[SdesItem {
                kind: SDES_CNAME,
                text: cname,
            }],
        )])
    }

    /// Appends a BYE for `ssrcs` with an optional reason (at most 255 bytes).
    pub fn bye(&mut self, ssrcs: &[u32], reason: Option<&[u8]>) -> Result<(), RtcpError> {
        let count = u8::try_from(ssrcs.len()).map_err(|_| RtcpError::Field)?;
        let reason_len = match reason {
            Some(r) if r.len() > 255 => return Err(RtcpError::Field),
            Some(r) => (1 + r.len()).div_ceil(4) * 4,
            None => 0,
        };
        let body = self.packet(PT_BYE, count, 4 * ssrcs.len() + reason_len)?;
        let (list, rest) = body.split_at_mut(4 * ssrcs.len());
        for (dst, s) in list.chunks_exact_mut(4).zip(ssrcs) {
            dst.copy_from_slice(&s.to_be_bytes());
        }
        if let (Some(r), Some((len, text))) = (reason, rest.split_first_mut()) {
            *len = r.len() as u8;
            if let Some(dst) = text.get_mut(..r.len()) {
                dst.copy_from_slice(r);
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The finished compound packet.
    pub fn finish(self) -> &'a [u8] {
        let len = self.len;
        let buf: &'a [u8] = self.buf;
        buf.get(..len).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u32) -> ReportBlock {
        ReportBlock {
            ssrc: n,
            fraction_lost: 12,
            cumulative_lost: -5,
            extended_highest_seq: 0x1_0005,
            jitter: 33,
            last_sr: 0xABCD_0000,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn compound_round_trip() {
        let info = SenderInfo {
            ssrc: 0x1111,
            ntp_timestamp: 0x0102_0304_0506_0708,
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        let mut buf = [0u8; 256];
        let mut w = RtcpWriter::new(&mut buf);
        assert!(w.is_empty());
        w.sender_report(&info, &[block(7), block(8)]).unwrap();
        w.receiver_report(0x2222, &[block(9)]).unwrap();
        w.sdes_cname(0x1111, b"tutti@example").unwrap();
        w.bye(&[0x1111, 0x3333], Some(b"done")).unwrap();
        let bytes = w.finish();
        let c = RtcpCompound::parse(bytes).unwrap();
        assert!(c.starts_with_report());
        let p: Vec<_> = c.packets().collect();
        assert_eq!(p.len(), 4);
        let RtcpPacket::SenderReport(sr) = p[0] else {
            panic!("{:?}", p[0])
        };
        assert_eq!(sr.sender_info(), info);
        assert_eq!(
            sr.report_blocks().collect::<Vec<_>>(),
            vec![block(7), block(8)]
        );
        let RtcpPacket::ReceiverReport(rr) = p[1] else {
            panic!()
        };
        assert_eq!(rr.ssrc(), 0x2222);
        assert_eq!(rr.report_blocks().collect::<Vec<_>>(), vec![block(9)]);
        let RtcpPacket::Sdes(sdes) = p[2] else {
            panic!()
        };
        let chunks: Vec<_> = sdes.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].ssrc, 0x1111);
        assert_eq!(chunks[0].cname(), Some(&b"tutti@example"[..]));
        let RtcpPacket::Bye(bye) = p[3] else { panic!() };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![0x1111, 0x3333]);
        assert_eq!(bye.reason(), Some(&b"done"[..]));
        assert_eq!(classify(bytes), PacketClass::Rtcp);
    }

    #[test]
    fn sdes_chunks_of_every_padding_length() {
        for len in 0..8 {
            let text = vec![b'x'; len];
            let items = [
                SdesItem {
                    kind: SDES_CNAME,
                    text: &text,
                },
                SdesItem {
                    kind: 6,
                    text: b"t",
                },
            ];
            let mut buf = [0u8; 64];
            let mut w = RtcpWriter::new(&mut buf);
            w.sdes(&[(1, &items), (2, &[])]).unwrap();
            let bytes = w.finish();
            assert_eq!(bytes.len() % 4, 0);
            let c = RtcpCompound::parse(bytes).unwrap();
            assert!(!c.starts_with_report());
            let Some(RtcpPacket::Sdes(s)) = c.packets().next() else {
                panic!()
            };
            let chunks: Vec<_> = s.chunks().collect();
            assert_eq!(chunks.len(), 2);
            assert_eq!(chunks[0].items().collect::<Vec<_>>(), items);
            assert_eq!(chunks[1].items().count(), 0);
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(RtcpCompound::parse(&[]), Err(RtcpError::Empty));
        assert_eq!(
            RtcpCompound::parse(&[0x80, 200, 0]),
            Err(RtcpError::Truncated)
        );
        assert_eq!(
            RtcpCompound::parse(&[0x40, 200, 0, 0]),
            Err(RtcpError::Version(1))
        );
        // Length says 2 words, only 1 present.
        assert_eq!(
            RtcpCompound::parse(&[0x80, 201, 0, 1]),
            Err(RtcpError::Truncated)
        );
        // RR with RC=1 but no block.
        assert_eq!(
            RtcpCompound::parse(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Malformed(201))
        );
        // Padding on a packet that isn't last.
        let p = [0xA0, 201, 0, 1, 0, 0, 0, 4, 0x80, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(RtcpCompound::parse(&p), Err(RtcpError::Padding));
        // Padding on the last packet is fine.
        let p = [
            0x80, 201, 0, 1, 0, 0, 0, 1, 0xA0, 204, 0, 3, 0, 0, 0, 1, b'n', b'a', b'm', b'e', 0, 0,
            0, 4,
        ];
        let c = RtcpCompound::parse(&p).unwrap();
        let Some(RtcpPacket::App(app)) = c.packets().nth(1) else {
            panic!()
        };
        assert_eq!((app.ssrc, &app.name, app.data), (1, b"name", &[][..]));
        // SDES chunk with an item running past the end.
        let p = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, 0, 0];
        assert_eq!(RtcpCompound::parse(&p), Err(RtcpError::Malformed(202)));
        // Unknown types pass through.
        let p = [0x81, 205, 0, 0];
        let c = RtcpCompound::parse(&p).unwrap();
        assert_eq!(
            c.packets().next(),
            Some(RtcpPacket::Other {
                packet_type: 205,
                count: 1,
                body: &[]
            })
        );
    }

    #[test]
    fn mux_demux() {
        assert_eq!(classify(&[0x80, 0]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 8]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 72]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80, 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0x00, 0x01]), PacketClass::Other);
        assert_eq!(classify(&[22, 200]), PacketClass::Other);
        assert_eq!(classify(&[0x80]), PacketClass::Other);
    }

    #[test]
    fn writer_limits() {
        let mut small = [0u8; 8];
        let mut w = RtcpWriter::new(&mut small);
        assert_eq!(
            w.receiver_report(1, &[block(1)]),
            Err(RtcpError::BufferTooSmall)
        );
        assert_eq!(w.bye(&[1], Some(&[0; 256])), Err(RtcpError::Field));
        let mut big = [0u8; 2048];
        let mut w = RtcpWriter::new(&mut big);
        assert_eq!(w.receiver_report(1, &[block(1); 32]), Err(RtcpError::Field));
        w.bye(&[], None).unwrap();
        assert_eq!(w.len(), 4);
    }
}
