//! RTCP state of one participant's session: liveness of its reports, BYE, the LSR/DLSR
//! bookkeeping for our report blocks, round-trip time, and the RFC 3550 section 6.3
//! transmission schedule for our own SR/RR.
//!
//! Packet parsing and building live in `crate::wire::rtcp`; this module takes parsed
//! values and says when to send and what to put in the report block.

use core::time::Duration;

use crate::clock::Instant;

use super::cn::Prng;
use super::event::Event;
use crate::wire::rtcp::ReportBlock;

/// e - 3/2: the compensation divisor for timer reconsideration (RFC 3550 6.3.1).
const COMPENSATION: f64 = core::f64::consts::E - 1.5;
/// Bytes of IPv4 + UDP header counted in the average RTCP packet size.
pub const IP_UDP_OVERHEAD: usize = 28;

/// Maps the dataplane clock to NTP wall-clock time (64-bit, 32.32 fixed point).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NtpClock {
    /// NTP time at [`Instant::ZERO`].
    pub ntp_at_zero: u64,
}

impl NtpClock {
    /// NTP time (32.32) at `now`.
    pub fn ntp(&self, now: Instant) -> u64 {
        let frac = (u128::from(now.as_nanos()) << 32) / 1_000_000_000;
        self.ntp_at_zero
            .wrapping_add(u64::try_from(frac).unwrap_or(u64::MAX))
    }

    /// The middle 32 bits of the NTP time at `now` (the LSR/DLSR unit: 1/65536 s).
    pub fn mid32(&self, now: Instant) -> u32 {
        (self.ntp(now) >> 16) as u32
    }
}

/// RTCP settings of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpConfig {
    /// Session bandwidth, bits per second (RTCP gets 5% of it).
    pub session_bandwidth_bps: u32,
    /// Use the reduced minimum interval 360 / (session bandwidth in kbit/s) seconds
    /// instead of 5 s (RFC 3550 6.2).
    pub reduced_minimum: bool,
    /// Report [`Event::RtcpTimeout`] when RTCP stops for this long.
    pub timeout: Duration,
    /// Wall-clock mapping for SR timestamps and round-trip times.
    pub ntp: NtpClock,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        RtcpConfig {
            // G.711 at 50 packets/s: 64 kbit/s payload + 40-byte IP/UDP/RTP headers.
            session_bandwidth_bps: 80_000,
            reduced_minimum: false,
            timeout: Duration::from_secs(30),
            ntp: NtpClock::default(),
        }
    }
}

/// A report is due: what the sender needs to build it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportDue {
    /// Send an SR (we sent RTP since the report before last), else an RR.
    pub sender_report: bool,
    /// NTP timestamp for the SR sender info (consistent with round-trip times).
    pub ntp: u64,
    /// The block about the participant's stream, if it has sent RTP.
    pub block: Option<ReportBlock>,
}

/// Per-session RTCP state.
#[derive(Clone, Debug)]
pub struct RtcpState {
    config: RtcpConfig,
    rng: Prng,
    last_seen: Option<Instant>,
    timed_out: bool,
    last_sr: Option<(u32, Instant)>,
    rtt: Option<Duration>,
    // Transmission schedule (RFC 3550 6.3).
    tp: Instant,
    tn: Instant,
    initial: bool,
    avg_rtcp_size: f64,
    sent_since_report: bool,
    sent_before_report: bool,
    peer_sends: bool,
}

impl RtcpState {
    /// State for a session that starts at `now`; the first report is scheduled with the
    /// halved initial minimum.
    pub fn new(config: RtcpConfig, now: Instant, seed: u64) -> Self {
        let mut s = RtcpState {
            config,
            rng: Prng::new(seed),
            last_seen: None,
            timed_out: false,
            last_sr: None,
            rtt: None,
            tp: now,
            tn: now,
            initial: true,
            // A typical compound RR + SDES with headers.
            avg_rtcp_size: 100.0,
            sent_since_report: false,
            sent_before_report: false,
            peer_sends: false,
        };
        s.tn = now + s.interval();
        s
    }

    /// Arrival time of the last RTCP packet.
    pub fn last_seen(&self) -> Option<Instant> {
        self.last_seen
    }

    /// The latest round-trip time measured from a report block about our stream.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The deterministic interval Td (before randomisation), RFC 3550 6.3.1.
    pub fn deterministic_interval(&self) -> Duration {
        let we_sent = self.sent_since_report || self.sent_before_report;
        let members = 2.0;
        let senders = f64::from(u8::from(we_sent) + u8::from(self.peer_sends));
        let rtcp_bw = f64::from(self.config.session_bandwidth_bps.max(1)) / 8.0 * 0.05;
        let (bw, n) = if senders <= members * 0.25 {
            if we_sent {
                (rtcp_bw * 0.25, senders)
            } else {
                (rtcp_bw * 0.75, members - senders)
            }
        } else {
            (rtcp_bw, members)
        };
        let mut tmin = if self.config.reduced_minimum {
            360.0 / (f64::from(self.config.session_bandwidth_bps.max(1)) / 1000.0)
        } else {
            5.0
        };
        if self.initial {
            tmin /= 2.0;
        }
        let td = (self.avg_rtcp_size * n / bw).max(tmin);
        Duration::from_secs_f64(td.min(86_400.0))
    }

    /// A randomised, compensated interval: Td * [0.5, 1.5] / (e - 3/2).
    fn interval(&mut self) -> Duration {
        let factor = 0.5 + f64::from(self.rng.next_f32());
        self.deterministic_interval().mul_f64(factor / COMPENSATION)
    }

    /// Note that we sent an RTP packet (makes our reports SRs and uses the sender share
    /// of the RTCP bandwidth).
    pub fn on_rtp_sent(&mut self) {
        self.sent_since_report = true;
    }

    /// Note that the participant sends RTP (it counts as a sender).
    pub fn on_rtp_received(&mut self) {
        self.peer_sends = true;
    }

    /// Any RTCP packet of `size` bytes (UDP payload) arrived: liveness and average size.
    pub fn on_packet(&mut self, now: Instant, size: usize, emit: &mut impl FnMut(Event)) {
        self.avg_rtcp_size =
            (size + IP_UDP_OVERHEAD) as f64 / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        if self.last_seen.is_none() || self.timed_out {
            emit(Event::RtcpSeen { at: now });
        }
        self.timed_out = false;
        self.last_seen = Some(now);
    }

    /// The participant's SR carried NTP time `ntp`: remember it for LSR/DLSR.
    pub fn on_sender_report(&mut self, now: Instant, ntp: u64) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// A report block about *our* stream: compute the round-trip time
    /// `A - LSR - DLSR` (RFC 3550 6.4.1). Returns it when valid.
    pub fn on_report_block(&mut self, now: Instant, lsr: u32, dlsr: u32) -> Option<Duration> {
        if lsr == 0 {
            return None;
        }
        let a = self.config.ntp.mid32(now);
        let rtt = a.wrapping_sub(lsr).wrapping_sub(dlsr);
        // A negative result (clock trouble or a bogus block) is discarded.
        if rtt > u32::MAX / 2 {
            return None;
        }
        let d = Duration::from_nanos(u64::from(rtt) * 1_000_000_000 / 65536);
        self.rtt = Some(d);
        Some(d)
    }

    /// LSR and DLSR for a report block sent at `now`.
    pub fn lsr_dlsr(&self, now: Instant) -> (u32, u32) {
        match self.last_sr {
            None => (0, 0),
            Some((lsr, at)) => {
                let d = now.saturating_since(at);
                let units = d.as_nanos() * 65536 / 1_000_000_000;
                (lsr, u32::try_from(units).unwrap_or(u32::MAX))
            }
        }
    }

    /// The next time [`RtcpState::poll_report`] or the liveness check needs to run.
    pub fn poll_timeout(&self) -> Instant {
        match self.last_seen {
            Some(seen) if !self.timed_out => self.tn.min(seen + self.config.timeout),
            _ => self.tn,
        }
    }

    /// Report a timeout when RTCP stopped.
    pub fn handle_timeout(&mut self, now: Instant, emit: &mut impl FnMut(Event)) {
        if let Some(seen) = self.last_seen {
            if !self.timed_out && now >= seen + self.config.timeout {
                self.timed_out = true;
                emit(Event::RtcpTimeout { last_seen: seen });
            }
        }
    }

    /// If our report is due at `now` (with timer reconsideration), advance the schedule
    /// and say whether to send an SR or RR; the caller adds the report block and calls
    /// [`RtcpState::on_report_sent`].
    pub fn poll_report(&mut self, now: Instant) -> Option<(bool, u64)> {
        if now < self.tn {
            return None;
        }
        let t = self.interval();
        if self.tp + t > now {
            // Reconsideration: the interval grew, wait longer.
            self.tn = self.tp + t;
            return None;
        }
        let sender = self.sent_since_report || self.sent_before_report;
        self.tp = now;
        self.initial = false;
        self.sent_before_report = self.sent_since_report;
        self.sent_since_report = false;
        self.tn = now + self.interval();
        Some((sender, self.config.ntp.ntp(now)))
    }

    /// We sent a compound RTCP packet of `size` bytes (UDP payload).
    pub fn on_report_sent(&mut self, size: usize) {
        self.avg_rtcp_size =
            (size + IP_UDP_OVERHEAD) as f64 / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_mapping_and_rtt() {
        let ntp = NtpClock {
            ntp_at_zero: 3_900_000_000u64 << 32,
        };
        let t = Instant::from_nanos(1_500_000_000);
        assert_eq!(ntp.ntp(t), (3_900_000_001u64 << 32) + (1u64 << 31));
        let mut s = RtcpState::new(
            RtcpConfig {
                ntp,
                ..Default::default()
            },
            Instant::ZERO,
            1,
        );
        // Our SR left at t=1 s; the peer held it 250 ms; its block arrives at t=1.4 s:
        // RTT = 150 ms.
        let lsr = ntp.mid32(Instant::from_nanos(1_000_000_000));
        let dlsr = 65536 / 4;
        let rtt = s
            .on_report_block(Instant::from_nanos(1_400_000_000), lsr, dlsr)
            .unwrap();
        assert!((rtt.as_secs_f64() - 0.150).abs() < 0.0001, "{rtt:?}");
        assert_eq!(
            s.on_report_block(Instant::from_nanos(1_400_000_000), 0, 0),
            None
        );
        // DLSR bigger than elapsed time: negative, discarded.
        assert_eq!(
            s.on_report_block(Instant::from_nanos(1_100_000_000), lsr, 65536),
            None
        );
    }

    #[test]
    fn lsr_dlsr_from_received_sr() {
        let mut s = RtcpState::new(RtcpConfig::default(), Instant::ZERO, 1);
        assert_eq!(s.lsr_dlsr(Instant::ZERO), (0, 0));
        s.on_sender_report(Instant::from_nanos(2_000_000_000), 0x1234_5678_9abc_def0);
        assert_eq!(
            s.lsr_dlsr(Instant::from_nanos(2_500_000_000)),
            (0x5678_9abc, 32768)
        );
    }

    #[test]
    fn intervals_within_rfc3550_bounds() {
        let mut now = Instant::ZERO;
        let mut s = RtcpState::new(RtcpConfig::default(), now, 42);
        let lo = 5.0 * 0.5 / COMPENSATION;
        let hi = 5.0 * 1.5 / COMPENSATION;
        let first = s.poll_timeout().as_nanos() as f64 / 1e9;
        assert!((lo / 2.0..=hi / 2.0).contains(&first), "initial {first}");
        let mut sent: Vec<f64> = Vec::new();
        let mut last: Option<Instant> = None;
        while sent.len() < 200 {
            now = s.poll_timeout();
            s.on_rtp_sent();
            s.on_rtp_received();
            if s.poll_report(now).is_some() {
                s.on_report_sent(90);
                if let Some(prev) = last {
                    sent.push((now - prev).as_secs_f64());
                }
                last = Some(now);
            }
        }
        let (min, max) = sent
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(min >= lo - 1e-6 && max <= hi + 1e-6, "{min}..{max}");
        // Randomised, not fixed.
        assert!(max - min > 1.0, "{min}..{max}");
        let mean = sent.iter().sum::<f64>() / sent.len() as f64;
        // Reconsideration on each expiry keeps the larger of successive draws, so the
        // mean sits above Td / (e - 3/2) = 4.1 s but well inside the bounds.
        assert!((4.0..5.6).contains(&mean), "{mean}");
    }

    #[test]
    fn low_bandwidth_lengthens_interval_and_reduced_minimum_shortens() {
        let slow = RtcpState::new(
            RtcpConfig {
                session_bandwidth_bps: 2_000,
                ..Default::default()
            },
            Instant::ZERO,
            1,
        );
        // 100 B avg, 1 receiver share of 0.75 * 12.5 B/s: > 5 s.
        assert!(slow.deterministic_interval() > Duration::from_secs(5));
        let mut fast = RtcpState::new(
            RtcpConfig {
                session_bandwidth_bps: 1_000_000,
                reduced_minimum: true,
                ..Default::default()
            },
            Instant::ZERO,
            1,
        );
        fast.initial = false;
        assert!(fast.deterministic_interval() < Duration::from_secs(1));
    }

    #[test]
    fn liveness_events() {
        let mut s = RtcpState::new(RtcpConfig::default(), Instant::ZERO, 1);
        let mut ev = Vec::new();
        s.handle_timeout(Instant::from_nanos(100_000_000_000), &mut |e| ev.push(e));
        assert!(ev.is_empty(), "no timeout before any RTCP");
        let t1 = Instant::from_nanos(1_000_000_000);
        s.on_packet(t1, 80, &mut |e| ev.push(e));
        s.on_packet(t1, 80, &mut |e| ev.push(e));
        assert_eq!(ev, [Event::RtcpSeen { at: t1 }]);
        let deadline = t1 + Duration::from_secs(30);
        assert!(s.poll_timeout() <= deadline);
        s.handle_timeout(deadline, &mut |e| ev.push(e));
        s.handle_timeout(deadline + Duration::from_secs(5), &mut |e| ev.push(e));
        assert_eq!(ev[1..], [Event::RtcpTimeout { last_seen: t1 }]);
        s.on_packet(deadline + Duration::from_secs(6), 80, &mut |e| ev.push(e));
        assert!(matches!(ev[2], Event::RtcpSeen { .. }));
    }
}
