//! Outbound RTP: one [`RtpSender`] per participant stream. It owns the stream's SSRC,
//! sequence numbers and timestamps, writes headers straight into the caller's output
//! buffer (no allocation), keeps timestamps continuous across silence and talk (a tick
//! with nothing sent still advances the timestamp, not the sequence number), and sets the
//! marker bit on the first packet of a talkspurt (RFC 3551 §4.1).
//!
//! A stream of a conference with input timing numbers its packets from the frames they
//! carry instead ([`RtpSender::write_frame`]): the RTP timestamp is the frame's timeline
//! timestamp plus an offset, and [`RtpSender::rebase`] takes the SSRC, sequence number and
//! timestamp another mixer uses for the same frames, so the stream can continue that one.

use crate::wire::rtcp::SenderInfo;
use crate::wire::rtp::{RtpError, RtpHeader, FIXED_HEADER_LEN};

/// Initial state of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RtpSenderConfig {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number of the first packet (should be random, RFC 3550 §5.1).
    pub initial_sequence: u16,
    /// Timestamp of the first frame (should be random).
    pub initial_timestamp: u32,
}

/// Where an input-timed stream goes on from: its SSRC, and the sequence number and RTP
/// timestamp of the packet for the frame at timeline timestamp `frame_timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RtpBasis {
    /// The stream's SSRC from now on.
    pub ssrc: u32,
    /// A frame's timestamp on the conference timeline.
    pub frame_timestamp: u32,
    /// The sequence number of that frame's packet (one more per frame after it).
    pub sequence: u16,
    /// The RTP timestamp of that frame's packet (every frame's is its timeline timestamp
    /// plus `timestamp - frame_timestamp`).
    pub timestamp: u32,
}

/// Sequence, timestamp and marker state of one outbound RTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    /// Input timing: RTP timestamp minus timeline timestamp.
    timestamp_offset: u32,
    /// Input timing: the (frame timestamp, sequence number) of a [`RtpBasis`] that the next
    /// packet written numbers itself from.
    sequence_basis: Option<(u32, u16)>,
    /// The previous tick sent a voiced packet (so the next voiced one continues a spurt).
    in_talkspurt: bool,
    packets_sent: u32,
    octets_sent: u32,
}

impl RtpSender {
    /// A sender that has sent nothing yet.
    pub fn new(config: RtpSenderConfig) -> Self {
        RtpSender {
            ssrc: config.ssrc,
            payload_type: config.payload_type & 0x7F,
            sequence: config.initial_sequence,
            timestamp: config.initial_timestamp,
            timestamp_offset: 0,
            sequence_basis: None,
            in_talkspurt: false,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The payload type used for the next packet.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Changes the payload type (e.g. after a re-INVITE changed the codec).
    pub fn set_payload_type(&mut self, pt: u8) {
        self.payload_type = pt & 0x7F;
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp the next frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Packets sent so far (wrapping, as RTCP counts them).
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets sent so far (wrapping).
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// Writes the 12-byte header of this tick's packet at the start of `out` and advances
    /// the stream by one packet of `samples` samples carrying `payload_len` bytes. `voiced`
    /// says whether the frame holds speech: the first voiced packet after silence (or after
    /// ticks with nothing sent) gets the marker bit. Returns the header length; on error
    /// nothing changes.
    pub fn write_header(
        &mut self,
        out: &mut [u8],
        payload_len: usize,
        samples: u32,
        voiced: bool,
    ) -> Result<usize, RtpError> {
        let header = RtpHeader {
            marker: voiced && !self.in_talkspurt,
            payload_type: self.payload_type,
            sequence_number: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        let n = header.write(out)?;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.in_talkspurt = voiced;
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
        Ok(n)
    }

    /// Writes header and `payload` into `out`; returns the packet length. On error nothing
    /// is written and the stream does not advance.
    pub fn write_packet(
        &mut self,
        out: &mut [u8],
        payload: &[u8],
        samples: u32,
        voiced: bool,
    ) -> Result<usize, RtpError> {
        let len = FIXED_HEADER_LEN + payload.len();
        let out = out.get_mut(..len).ok_or(RtpError::BufferTooSmall)?;
        let (head, body) = out.split_at_mut(FIXED_HEADER_LEN);
        body.copy_from_slice(payload);
        self.write_header(head, payload.len(), samples, voiced)?;
        Ok(len)
    }

    /// Input timing: writes the packet of the frame at timeline timestamp
    /// `frame_timestamp`, like [`RtpSender::write_packet`], with RTP timestamp
    /// `frame_timestamp` plus the offset (0 until a [`RtpSender::rebase`]). The sequence
    /// number is one more than the previous packet's, except for the first packet after a
    /// rebase: that one carries the basis's sequence number plus the frames from the
    /// basis's frame to this one (whole frames of `samples`, rounded towards the basis).
    pub fn write_frame(
        &mut self,
        out: &mut [u8],
        payload: &[u8],
        frame_timestamp: u32,
        samples: u32,
        voiced: bool,
    ) -> Result<usize, RtpError> {
        let before = (self.sequence, self.timestamp);
        self.timestamp = frame_timestamp.wrapping_add(self.timestamp_offset);
        if let Some((basis_frame, basis_sequence)) = self.sequence_basis {
            let step = i64::from(samples.max(1));
            let frames = i64::from(frame_timestamp.wrapping_sub(basis_frame) as i32) / step;
            // Sequence numbers wrap: the low 16 bits of the frame count are what count.
            self.sequence = basis_sequence.wrapping_add(frames as u16);
        }
        match self.write_packet(out, payload, samples, voiced) {
            Ok(n) => {
                self.sequence_basis = None;
                Ok(n)
            }
            Err(e) => {
                (self.sequence, self.timestamp) = before;
                Err(e)
            }
        }
    }

    /// Input timing: continue as `basis` says from the next packet [`RtpSender::write_frame`]
    /// writes. A new SSRC is a new stream: its RTCP packet and octet counts start at 0.
    pub fn rebase(&mut self, basis: RtpBasis) {
        if basis.ssrc != self.ssrc {
            self.ssrc = basis.ssrc;
            self.packets_sent = 0;
            self.octets_sent = 0;
        }
        self.timestamp_offset = basis.timestamp.wrapping_sub(basis.frame_timestamp);
        self.sequence_basis = Some((basis.frame_timestamp, basis.sequence));
        self.in_talkspurt = false;
    }

    /// A tick in which nothing is sent (discontinuous transmission): the timestamp still
    /// advances by `samples`, the sequence number does not, and the next voiced packet
    /// starts a new talkspurt.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.in_talkspurt = false;
    }

    /// The sender-info section for an RTCP sender report at `ntp_timestamp`, whose RTP
    /// timestamp is `rtp_timestamp` (the caller maps wall clock to media time).
    pub fn sender_info(&self, ntp_timestamp: u64, rtp_timestamp: u32) -> SenderInfo {
        SenderInfo {
            ssrc: self.ssrc,
            ntp_timestamp,
            rtp_timestamp,
            packet_count: self.packets_sent,
            octet_count: self.octets_sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rtp::RtpPacket;

    #[test]
    fn sequence_timestamp_and_marker_across_silence_and_talk() {
        let mut s = RtpSender::new(RtpSenderConfig {
            ssrc: 42,
            payload_type: 0,
            initial_sequence: 65534,
            initial_timestamp: u32::MAX - 159,
        });
        let payload = [0xFFu8; 160];
        let mut buf = [0u8; 200];
        // (voiced, sent) per tick.
        let ticks = [
            (false, true),
            (true, true),
            (true, true),
            (false, true),
            (false, false),
            (true, true),
            (true, false),
            (true, true),
        ];
        let mut expect_seq = 65534u16;
        let mut expect_ts = u32::MAX - 159;
        let mut markers = Vec::new();
        for (voiced, sent) in ticks {
            if sent {
                let n = s.write_packet(&mut buf, &payload, 160, voiced).unwrap();
                let p = RtpPacket::parse(&buf[..n]).unwrap();
                assert_eq!((p.ssrc(), p.payload_type()), (42, 0));
                assert_eq!(p.sequence_number(), expect_seq);
                assert_eq!(p.timestamp(), expect_ts);
                assert_eq!(p.payload(), &payload);
                markers.push(p.marker());
                expect_seq = expect_seq.wrapping_add(1);
            } else {
                s.skip(160);
            }
            expect_ts = expect_ts.wrapping_add(160);
        }
        assert_eq!(markers, [false, true, false, false, true, true]);
        assert_eq!(s.next_sequence(), expect_seq);
        assert_eq!(s.next_timestamp(), expect_ts);
        assert_eq!((s.packets_sent(), s.octets_sent()), (6, 960));
        let info = s.sender_info(7, 9);
        assert_eq!(
            (
                info.ssrc,
                info.packet_count,
                info.octet_count,
                info.ntp_timestamp,
                info.rtp_timestamp
            ),
            (42, 6, 960, 7, 9)
        );
    }

    #[test]
    fn frames_carry_timeline_timestamps_and_rebase_continues_another_stream() {
        let mut s = RtpSender::new(RtpSenderConfig {
            ssrc: 7,
            payload_type: 0,
            initial_sequence: 100,
            initial_timestamp: 12345,
        });
        let mut buf = [0u8; 200];
        let mut sent = |s: &mut RtpSender, frame: u32| {
            let n = s
                .write_frame(&mut buf, &[0xFF; 160], frame, 160, false)
                .unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            (p.ssrc(), p.sequence_number(), p.timestamp())
        };
        // Timestamps are the frames'; sequence numbers count packets (a frame not sent
        // leaves no gap in them).
        assert_eq!(sent(&mut s, u32::MAX - 159), (7, 100, u32::MAX - 159));
        assert_eq!(sent(&mut s, 160), (7, 101, 160));
        assert_eq!(s.next_timestamp(), 320);
        assert_eq!(s.packets_sent(), 2);
        // A basis for a frame in the past: the next frame numbers itself from it.
        s.rebase(RtpBasis {
            ssrc: 0xBEEF,
            frame_timestamp: 160,
            sequence: 65535,
            timestamp: 1_000_000,
        });
        assert_eq!(s.ssrc(), 0xBEEF);
        assert_eq!(s.packets_sent(), 0, "a new SSRC is a new stream");
        assert_eq!(sent(&mut s, 800), (0xBEEF, 3, 1_000_640));
        assert_eq!(sent(&mut s, 960), (0xBEEF, 4, 1_000_800));
        // A basis for a frame still to come, across the timestamp wrap; same SSRC.
        s.rebase(RtpBasis {
            ssrc: 0xBEEF,
            frame_timestamp: 320,
            sequence: 10,
            timestamp: 5,
        });
        assert_eq!(s.packets_sent(), 2);
        assert_eq!(
            sent(&mut s, u32::MAX - 159 - 160),
            (0xBEEF, 6, 5u32.wrapping_sub(640))
        );
        // A failed write changes nothing and keeps the basis for the next one.
        s.rebase(RtpBasis {
            ssrc: 1,
            frame_timestamp: 0,
            sequence: 0,
            timestamp: 0,
        });
        let before = s;
        assert_eq!(
            s.write_frame(&mut [0u8; 20], &[0u8; 160], 1600, 160, true),
            Err(RtpError::BufferTooSmall)
        );
        assert_eq!(s, before);
        assert_eq!(sent(&mut s, 1600), (1, 10, 1600));
    }

    #[test]
    fn too_small_buffer_changes_nothing() {
        let mut s = RtpSender::new(RtpSenderConfig {
            ssrc: 1,
            payload_type: 8,
            ..Default::default()
        });
        let before = s;
        assert_eq!(
            s.write_packet(&mut [0u8; 20], &[0u8; 160], 160, true),
            Err(RtpError::BufferTooSmall)
        );
        assert_eq!(
            s.write_header(&mut [0u8; 11], 0, 160, true),
            Err(RtpError::BufferTooSmall)
        );
        assert_eq!(s, before);
        s.set_payload_type(0x80 | 9);
        assert_eq!(s.payload_type(), 9);
        let mut hdr = [0u8; 12];
        assert_eq!(s.write_header(&mut hdr, 0, 160, false), Ok(12));
        assert_eq!(RtpPacket::parse(&hdr).unwrap().payload_type(), 9);
    }
}
