//! RFC 3550 receiver statistics for one source: extended highest sequence number,
//! cumulative and interval loss, interarrival jitter (section 6.4.1 and appendix A.1,
//! A.3, A.8).

/// A sequence jump this large (forward) is a restart, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind the highest is late, not a restart (RFC 3550 A.1).
const MAX_MISORDER: u16 = 100;

/// What [`RtpStats::update_seq`] made of a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqVerdict {
    /// A packet of the current sequence; carries its extended sequence number.
    Valid(u64),
    /// Two consecutive packets confirmed a sequence jump: the statistics restarted at
    /// this (extended) sequence number and downstream state should resynchronise.
    Restarted(u64),
    /// A large jump not (yet) confirmed by a following packet: drop it.
    Jump,
}

/// Receiver statistics for one RTP source.
#[derive(Clone, Debug, Default)]
pub struct RtpStats {
    initialized: bool,
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    last_transit: Option<u32>,
    /// Interarrival jitter in timestamp units, scaled by 16 (RFC 3550 A.8).
    jitter_q4: u32,
}

/// The loss and jitter fields of an RTCP report block (RFC 3550 section 6.4.1), minus
/// the LSR/DLSR pair which the RTCP state adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossReport {
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost, clamped to the 24-bit signed field.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub ext_highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
}

impl RtpStats {
    /// Statistics with nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn init_seq(&mut self, seq: u16) {
        self.initialized = true;
        self.max_seq = seq;
        self.cycles = 0;
        self.base_seq = u64::from(seq);
        self.bad_seq = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.last_transit = None;
        self.jitter_q4 = 0;
    }

    fn ext_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Feed a packet's sequence number; counts it as received when valid.
    pub fn update_seq(&mut self, seq: u16) -> SeqVerdict {
        if !self.initialized {
            self.init_seq(seq);
            self.received = 1;
            return SeqVerdict::Valid(self.ext_max());
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A big jump: accept it only if the next packet continues from it.
            if self.bad_seq == Some(seq) {
                self.init_seq(seq);
                self.received = 1;
                return SeqVerdict::Restarted(self.ext_max());
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            return SeqVerdict::Jump;
        }
        // In order, or a duplicate / reordered packet slightly behind the highest.
        self.bad_seq = None;
        self.received += 1;
        let back = i64::from(seq.wrapping_sub(self.max_seq) as i16);
        let ext = i64::try_from(self.ext_max()).unwrap_or(i64::MAX) + back;
        SeqVerdict::Valid(u64::try_from(ext).unwrap_or(0))
    }

    /// Update the interarrival jitter with a packet's RTP timestamp and its arrival
    /// time expressed in the same timestamp units (RFC 3550 A.8).
    pub fn update_jitter(&mut self, rtp_ts: u32, arrival_ts: u32) {
        let transit = arrival_ts.wrapping_sub(rtp_ts);
        if let Some(prev) = self.last_transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            let j =
                i64::from(self.jitter_q4) + i64::from(d) - ((i64::from(self.jitter_q4) + 8) >> 4);
            self.jitter_q4 = u32::try_from(j.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX);
        }
        self.last_transit = Some(transit);
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Packets received (including duplicates, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected: extended highest minus base plus one; 0 before any packet.
    pub fn expected(&self) -> u64 {
        if self.initialized {
            self.ext_max() - self.base_seq + 1
        } else {
            0
        }
    }

    /// Cumulative packets lost (negative when duplicates outnumber losses).
    pub fn cumulative_lost(&self) -> i64 {
        i64::try_from(self.expected()).unwrap_or(i64::MAX)
            - i64::try_from(self.received).unwrap_or(i64::MAX)
    }

    /// The extended highest sequence number received, if any.
    pub fn ext_highest_seq(&self) -> Option<u64> {
        self.initialized.then(|| self.ext_max())
    }

    /// Build the loss fields of a report block and start a new reporting interval.
    pub fn take_report(&mut self) -> Option<LossReport> {
        if !self.initialized {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval == 0 {
            0
        } else {
            u8::try_from((lost_interval << 8) / expected_interval).unwrap_or(u8::MAX)
        };
        Some(LossReport {
            fraction_lost,
            cumulative_lost: i32::try_from(self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff))
                .unwrap_or(0),
            ext_highest_seq: self.ext_max() as u32,
            jitter: self.jitter(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_sequence_across_wrap_and_counts_loss() {
        let mut s = RtpStats::new();
        let mut seq = 65530u16;
        for i in 0..20u16 {
            if i == 7 || i == 8 {
                seq = seq.wrapping_add(1);
                continue; // lost
            }
            assert!(matches!(s.update_seq(seq), SeqVerdict::Valid(_)));
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.ext_highest_seq(), Some(65530 + 19));
        assert_eq!(s.expected(), 20);
        assert_eq!(s.cumulative_lost(), 2);
        let r = s.take_report().unwrap();
        assert_eq!(r.fraction_lost, (2 * 256 / 20) as u8);
        assert_eq!(r.ext_highest_seq, 65530 + 19);
        // Next interval: no loss.
        for _ in 0..10 {
            s.update_seq(seq);
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.take_report().unwrap().fraction_lost, 0);
    }

    #[test]
    fn reordered_packet_gets_earlier_extended_number() {
        let mut s = RtpStats::new();
        s.update_seq(65535);
        s.update_seq(1);
        assert_eq!(s.update_seq(0), SeqVerdict::Valid(65536));
        assert_eq!(s.update_seq(2), SeqVerdict::Valid(65538));
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn big_jump_needs_confirmation() {
        let mut s = RtpStats::new();
        s.update_seq(100);
        s.update_seq(101);
        assert_eq!(s.update_seq(30000), SeqVerdict::Jump);
        assert_eq!(s.update_seq(102), SeqVerdict::Valid(102));
        assert_eq!(s.update_seq(40000), SeqVerdict::Jump);
        assert_eq!(s.update_seq(40001), SeqVerdict::Restarted(40001));
        assert_eq!(s.expected(), 1);
    }

    #[test]
    fn jitter_follows_rfc3550_estimator() {
        let mut s = RtpStats::new();
        // Constant transit: zero jitter.
        for i in 0..50u32 {
            s.update_jitter(i * 160, 1000 + i * 160);
        }
        assert_eq!(s.jitter(), 0);
        // Alternating +-40 samples of transit: converges to 40 (|D| is always 40).
        for i in 50..400u32 {
            let wobble = if i % 2 == 0 { 40 } else { 0 };
            s.update_jitter(i * 160, 1000 + i * 160 + wobble);
        }
        assert!((36..=40).contains(&s.jitter()), "{}", s.jitter());
    }
}
