//! [`ReceiveStream`]: everything the appliance knows about one participant's inbound
//! media, driven sans-IO: packets in with their arrival time, one frame of PCM out per
//! tick, timers via `poll_timeout` / `handle_timeout`, events through a callback.

use core::net::SocketAddrV4;
use core::time::Duration;

use crate::clock::Instant;
use crate::codec::CodecKind;

use super::cn::Sid;
use super::dtmf::{Rfc4733Receiver, TelephoneEvent};
use super::event::Event;
use super::inband::InbandDetector;
use super::jitter::{
    FrameInfo, Insert, JitterBuffer, JitterConfig, JitterConfigError, JitterCounters, MediaKind,
    MediaPacket, Playout,
};
use super::rtcp::{ReportDue, RtcpConfig, RtcpState};
use super::stats::{RtpStats, SeqVerdict};
use super::vad::{Vad, VadConfig, VadInput};
use crate::wire::rtcp::{ReportBlock, RtcpCompound, RtcpPacket};

/// In-band digits are ignored while the sender also uses RFC 4733 (packets within this
/// long), so one key press is not reported twice.
pub const INBAND_SUPPRESSION: Duration = Duration::from_secs(2);

/// RTP payload type numbers negotiated for the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTypes {
    /// G.711 mu-law (static 0).
    pub pcmu: Option<u8>,
    /// G.711 A-law (static 8).
    pub pcma: Option<u8>,
    /// L16 mono 8 kHz (dynamic), if negotiated.
    pub l16: Option<u8>,
    /// RFC 3389 comfort noise (static 13).
    pub comfort_noise: Option<u8>,
    /// RFC 4733 telephone-event (dynamic, commonly 101).
    pub telephone_event: Option<u8>,
}

impl PayloadTypes {
    /// The map of a session that negotiated `codec` (static payload types for G.711 and
    /// comfort noise, as RFC 3551; L16 on `dynamic`, if given) and RFC 4733 on
    /// `telephone_event`. G.711 streams accept both laws, as phones switch mid-call.
    pub const fn negotiated(
        codec: CodecKind,
        dynamic: Option<u8>,
        telephone_event: Option<u8>,
    ) -> PayloadTypes {
        PayloadTypes {
            pcmu: Some(0),
            pcma: Some(8),
            l16: match codec {
                CodecKind::L16 => dynamic,
                CodecKind::Pcmu | CodecKind::Pcma => None,
            },
            comfort_noise: Some(13),
            telephone_event,
        }
    }

    /// The payload type `codec` is sent and received with, if negotiated.
    pub const fn payload_type(&self, codec: CodecKind) -> Option<u8> {
        match codec {
            CodecKind::Pcmu => self.pcmu,
            CodecKind::Pcma => self.pcma,
            CodecKind::L16 => self.l16,
        }
    }
}

impl Default for PayloadTypes {
    fn default() -> Self {
        PayloadTypes {
            pcmu: Some(0),
            pcma: Some(8),
            l16: None,
            comfort_noise: Some(13),
            telephone_event: Some(101),
        }
    }
}

/// Settings of one received stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReceiveConfig {
    /// Jitter buffer bounds and sizes.
    pub jitter: JitterConfig,
    /// Payload type numbers.
    pub payload_types: PayloadTypes,
    /// A new SSRC from the latched address is accepted after this long without
    /// packets from the old one (or at once after its BYE).
    pub ssrc_change_gap: Duration,
    /// [`Event::MediaQuiet`] after this long without RTP.
    pub quiet_after: Duration,
    /// RTCP schedule and liveness.
    pub rtcp: RtcpConfig,
    /// Voice activity detection.
    pub vad: VadConfig,
    /// Run the in-band DTMF detector on the played audio.
    pub inband_dtmf: bool,
    /// Seed for the stream's comfort noise and RTCP randomisation.
    pub seed: u64,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig {
            jitter: JitterConfig::default(),
            payload_types: PayloadTypes::default(),
            ssrc_change_gap: Duration::from_secs(2),
            quiet_after: Duration::from_secs(5),
            rtcp: RtcpConfig::default(),
            vad: VadConfig::default(),
            inband_dtmf: true,
            seed: 0,
        }
    }
}

/// The parsed fields of an RTP packet that the receive path uses.
#[derive(Clone, Copy, Debug)]
pub struct RtpIn<'a> {
    /// Synchronisation source.
    pub ssrc: u32,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Payload bytes (after header, extensions, and padding removed).
    pub payload: &'a [u8],
    /// RFC 6464 client-to-mixer audio level (voice flag, level -dBov), if present.
    pub audio_level: Option<(bool, u8)>,
}

/// Why a packet was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// From an address other than the latched one.
    ForeignAddress,
    /// From the latched address but another SSRC, too soon to switch.
    ForeignSsrc,
    /// Payload type not negotiated.
    UnknownPayloadType,
    /// An unconfirmed sequence jump.
    SequenceJump,
    /// A CN or telephone-event payload that does not parse.
    Malformed,
    /// Rejected by the jitter buffer (duplicate, late, size, overflow).
    Buffer(Insert),
}

/// Why an RTCP packet was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpDropReason {
    /// It does not parse as (compound) RTCP.
    Malformed,
    /// Not from the latched participant's IP address.
    ForeignAddress,
}

/// Counters of the receive path (read by the stats scraper).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// RTP packets accepted.
    pub accepted: u64,
    /// RTP from a foreign address.
    pub foreign_address: u64,
    /// RTP from a foreign SSRC.
    pub foreign_ssrc: u64,
    /// RTP with an unknown payload type.
    pub unknown_payload_type: u64,
    /// Unconfirmed sequence jumps.
    pub sequence_jumps: u64,
    /// Malformed CN / telephone-event payloads.
    pub malformed: u64,
    /// SSRC changes accepted.
    pub ssrc_changes: u64,
    /// SID frames received.
    pub sid_frames: u64,
    /// RTCP packets from a foreign address.
    pub rtcp_foreign: u64,
    /// RTCP packets that failed to parse.
    pub rtcp_malformed: u64,
}

/// What the stream remembers about comfort noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SidStatus {
    /// Arrival of the first SID ever.
    pub first: Option<Instant>,
    /// Arrival of the latest SID.
    pub last: Option<Instant>,
    /// Level of the latest SID, -dBov.
    pub level: Option<u8>,
    /// Whether a SID arrived after the latest audio packet (the sender is in DTX).
    pub since_last_audio: bool,
}

/// One participant's inbound stream.
#[derive(Debug)]
pub struct ReceiveStream {
    config: ReceiveConfig,
    latched: Option<(SocketAddrV4, u32)>,
    /// Sequence number and timestamp of the latched source's newest packet.
    newest: Option<(u16, u32)>,
    bye: bool,
    last_rtp: Option<Instant>,
    quiet: bool,
    local_ssrc: Option<u32>,
    stats: RtpStats,
    jitter: JitterBuffer,
    dtmf: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    vad: Vad,
    rtcp: RtcpState,
    sid: SidStatus,
    counters: RxCounters,
}

impl ReceiveStream {
    /// Allocate the stream's state (all of it: nothing allocates afterwards).
    pub fn new(config: ReceiveConfig, now: Instant) -> Result<Self, JitterConfigError> {
        Ok(ReceiveStream {
            latched: None,
            newest: None,
            bye: false,
            last_rtp: None,
            quiet: false,
            local_ssrc: None,
            stats: RtpStats::new(),
            jitter: JitterBuffer::new(config.jitter, config.seed)?,
            dtmf: Rfc4733Receiver::new(config.jitter.clock_rate),
            inband: config.inband_dtmf.then(InbandDetector::new),
            vad: Vad::new(config.vad),
            rtcp: RtcpState::new(config.rtcp, now, config.seed ^ 0x5254_4350),
            sid: SidStatus::default(),
            counters: RxCounters::default(),
            config,
        })
    }

    /// Set the SSRC of our outbound stream to this participant (report blocks about it
    /// give round-trip times).
    pub fn set_local_ssrc(&mut self, ssrc: u32) {
        self.local_ssrc = Some(ssrc);
    }

    fn classify(&self, pt: u8) -> Option<PayloadClass> {
        let p = &self.config.payload_types;
        if p.telephone_event == Some(pt) {
            Some(PayloadClass::TelephoneEvent)
        } else if p.comfort_noise == Some(pt) {
            Some(PayloadClass::Media(MediaKind::ComfortNoise))
        } else if p.pcmu == Some(pt) {
            Some(PayloadClass::Media(MediaKind::Audio(CodecKind::Pcmu)))
        } else if p.pcma == Some(pt) {
            Some(PayloadClass::Media(MediaKind::Audio(CodecKind::Pcma)))
        } else if p.l16 == Some(pt) {
            Some(PayloadClass::Media(MediaKind::Audio(CodecKind::L16)))
        } else {
            None
        }
    }

    /// Whether an RTP packet with `seq` and `timestamp` is newer than every packet of the
    /// latched source so far and its timestamp is more than `limit` from the newest one's:
    /// the source's timestamps jumped (not: a packet from before a jump arrived late).
    pub fn timestamp_jumped(&self, seq: u16, timestamp: u32, limit: u32) -> bool {
        self.newest.is_some_and(|(newest_seq, newest_ts)| {
            (seq.wrapping_sub(newest_seq) as i16) > 0
                && (timestamp.wrapping_sub(newest_ts) as i32).unsigned_abs() > limit
        })
    }

    fn latch(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        ssrc: u32,
        emit: &mut impl FnMut(Event),
    ) -> Result<(), DropReason> {
        let Some((addr, old)) = self.latched else {
            self.latched = Some((src, ssrc));
            return Ok(());
        };
        if addr != src {
            self.counters.foreign_address += 1;
            return Err(DropReason::ForeignAddress);
        }
        if old == ssrc {
            return Ok(());
        }
        let gap = !matches!(self.last_rtp, Some(t) if now.saturating_since(t) < self.config.ssrc_change_gap);
        if !(self.bye || gap) {
            self.counters.foreign_ssrc += 1;
            return Err(DropReason::ForeignSsrc);
        }
        self.latched = Some((src, ssrc));
        self.newest = None;
        self.bye = false;
        self.stats = RtpStats::new();
        self.jitter.reset();
        self.dtmf.reset();
        if let Some(d) = self.inband.as_mut() {
            d.interrupt(emit);
        }
        self.counters.ssrc_changes += 1;
        emit(Event::SsrcChanged { old, new: ssrc });
        Ok(())
    }

    /// An RTP packet from `src` arrived at `now`.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        pkt: RtpIn<'_>,
        emit: &mut impl FnMut(Event),
    ) -> Result<(), DropReason> {
        self.latch(now, src, pkt.ssrc, emit)?;
        let ext_seq = match self.stats.update_seq(pkt.seq) {
            SeqVerdict::Valid(e) => {
                if self
                    .newest
                    .is_none_or(|(seq, _)| (pkt.seq.wrapping_sub(seq) as i16) > 0)
                {
                    self.newest = Some((pkt.seq, pkt.timestamp));
                }
                e
            }
            SeqVerdict::Restarted(e) => {
                self.jitter.reset();
                self.dtmf.reset();
                self.newest = Some((pkt.seq, pkt.timestamp));
                e
            }
            SeqVerdict::Jump => {
                self.counters.sequence_jumps += 1;
                return Err(DropReason::SequenceJump);
            }
        };
        self.last_rtp = Some(now);
        if self.quiet {
            self.quiet = false;
            emit(Event::MediaResumed { at: now });
        }
        self.rtcp.on_rtp_received();
        let Some(class) = self.classify(pkt.payload_type) else {
            self.counters.unknown_payload_type += 1;
            return Err(DropReason::UnknownPayloadType);
        };
        let kind = match class {
            PayloadClass::TelephoneEvent => {
                let ev = TelephoneEvent::parse(pkt.payload).map_err(|_| {
                    self.counters.malformed += 1;
                    DropReason::Malformed
                })?;
                self.dtmf.on_packet(now, pkt.timestamp, ev, emit);
                self.counters.accepted += 1;
                return Ok(());
            }
            PayloadClass::Media(kind) => kind,
        };
        match kind {
            MediaKind::ComfortNoise => {
                let sid = Sid::parse(pkt.payload).map_err(|_| {
                    self.counters.malformed += 1;
                    DropReason::Malformed
                })?;
                self.counters.sid_frames += 1;
                if !self.sid.since_last_audio {
                    emit(Event::SidSeen {
                        at: now,
                        level: sid.level,
                    });
                }
                self.sid.first.get_or_insert(now);
                self.sid.last = Some(now);
                self.sid.level = Some(sid.level);
                self.sid.since_last_audio = true;
            }
            MediaKind::Audio(_) => self.sid.since_last_audio = false,
        }
        let arrival = self.jitter_arrival(now);
        self.stats.update_jitter(pkt.timestamp, arrival);
        let verdict = self.jitter.insert(
            now,
            MediaPacket {
                ext_seq,
                timestamp: pkt.timestamp,
                kind,
                payload: pkt.payload,
                audio_level: pkt.audio_level,
            },
        );
        if verdict != Insert::Stored {
            return Err(DropReason::Buffer(verdict));
        }
        self.counters.accepted += 1;
        Ok(())
    }

    fn jitter_arrival(&self, now: Instant) -> u32 {
        super::jitter::samples_in(now.as_nanos(), self.config.jitter.clock_rate) as u32
    }

    /// How the stream is played out (see [`Playout`]).
    pub fn set_playout(&mut self, playout: Playout) {
        self.jitter.set_playout(playout);
    }

    /// How the jitter buffer plays out.
    pub fn playout(&self) -> Playout {
        self.jitter.playout()
    }

    /// Drop what is buffered and where playout stands, keeping concealment and comfort
    /// noise (see [`JitterBuffer::restart_timeline`]).
    pub fn restart_timeline(&mut self) {
        self.jitter.restart_timeline();
    }

    /// Produce this tick's PCM for the mixer (`out.len()` samples: jitter buffer,
    /// concealment, comfort noise), and run voice activity and in-band DTMF on it.
    pub fn poll_frame(
        &mut self,
        now: Instant,
        out: &mut [i16],
        emit: &mut impl FnMut(Event),
    ) -> FrameInfo {
        let info = self.jitter.poll(now, out);
        self.analyse_frame(now, out, info, emit);
        info
    }

    /// [`Playout::Timeline`]: produce the PCM of the samples from RTP timestamp
    /// `timestamp` on (`out.len()` of them), comfort noise keyed to the latched SSRC and
    /// the timestamps, and run voice activity and in-band DTMF on it.
    pub fn poll_frame_at(
        &mut self,
        now: Instant,
        timestamp: u32,
        out: &mut [i16],
        emit: &mut impl FnMut(Event),
    ) -> FrameInfo {
        let ssrc = self.latched.map_or(0, |(_, ssrc)| ssrc);
        let info = self.jitter.poll_at(timestamp, ssrc, out);
        self.analyse_frame(now, out, info, emit);
        info
    }

    /// Voice activity and in-band DTMF on a frame just played out.
    fn analyse_frame(
        &mut self,
        now: Instant,
        out: &[i16],
        info: FrameInfo,
        emit: &mut impl FnMut(Event),
    ) {
        let input = if info.audio_samples > 0 {
            VadInput::Audio {
                pcm: out,
                level: info.audio_level,
            }
        } else if info.comfort_noise_samples > 0 {
            VadInput::ComfortNoise(self.sid.level.unwrap_or(127))
        } else {
            VadInput::Nothing
        };
        self.vad.on_frame(now, input, emit);
        if let Some(det) = self.inband.as_mut() {
            let suppress = self
                .dtmf
                .last_packet()
                .is_some_and(|t| now.saturating_since(t) < INBAND_SUPPRESSION);
            let mut filtered = |e: Event| {
                if !(suppress && matches!(e, Event::Digit(_))) {
                    emit(e);
                }
            };
            if info.audio_samples == out.len() {
                det.push(now, out, &mut filtered);
            } else {
                det.interrupt(&mut filtered);
            }
        }
    }

    /// The earliest time [`ReceiveStream::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.rtcp.poll_timeout();
        for d in [
            self.dtmf.poll_timeout(),
            self.vad.poll_timeout(),
            self.last_rtp
                .filter(|_| !self.quiet)
                .map(|l| l + self.config.quiet_after),
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(d);
        }
        t
    }

    /// Run the timers due at `now`: RFC 4733 event close, talk hangover, media quiet,
    /// RTCP timeout. (RTCP transmission is [`ReceiveStream::poll_rtcp`].)
    pub fn handle_timeout(&mut self, now: Instant, emit: &mut impl FnMut(Event)) {
        self.dtmf.handle_timeout(now, emit);
        self.vad.handle_timeout(now, emit);
        self.rtcp.handle_timeout(now, emit);
        if let Some(last) = self.last_rtp {
            if !self.quiet && now >= last + self.config.quiet_after {
                self.quiet = true;
                emit(Event::MediaQuiet {
                    last_packet: last,
                    sid_before: self.sid.since_last_audio,
                });
            }
        }
    }

    /// A (compound) RTCP packet from `src` arrived: validate it and feed its SR, RR and
    /// BYE contents to the stream. Malformed or foreign packets are counted and dropped.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        packet: &[u8],
        emit: &mut impl FnMut(Event),
    ) -> Result<(), RtcpDropReason> {
        let Ok(compound) = RtcpCompound::parse(packet) else {
            self.counters.rtcp_malformed += 1;
            return Err(RtcpDropReason::Malformed);
        };
        if !self.on_rtcp(now, src, packet.len(), emit) {
            return Err(RtcpDropReason::ForeignAddress);
        }
        for p in compound.packets() {
            match p {
                RtcpPacket::SenderReport(sr) => {
                    let info = sr.sender_info();
                    self.on_sender_report(now, info.ssrc, info.ntp_timestamp);
                    for b in sr.report_blocks() {
                        self.on_report_block(now, b.ssrc, b.last_sr, b.delay_since_last_sr);
                    }
                }
                RtcpPacket::ReceiverReport(rr) => {
                    for b in rr.report_blocks() {
                        self.on_report_block(now, b.ssrc, b.last_sr, b.delay_since_last_sr);
                    }
                }
                RtcpPacket::Bye(bye) => {
                    for ssrc in bye.ssrcs() {
                        self.on_bye(now, ssrc, emit);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An RTCP packet of `size` bytes from `src` arrived. Returns `false` (and counts
    /// it) when it is not from the latched participant's IP address; the caller then
    /// ignores its contents.
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        size: usize,
        emit: &mut impl FnMut(Event),
    ) -> bool {
        if self.latched.is_some_and(|(a, _)| a.ip() != src.ip()) {
            self.counters.rtcp_foreign += 1;
            return false;
        }
        self.rtcp.on_packet(now, size, emit);
        true
    }

    /// A sender report from `ssrc` carrying NTP time `ntp` (32.32).
    pub fn on_sender_report(&mut self, now: Instant, ssrc: u32, ntp: u64) {
        if !matches!(self.latched, Some((_, s)) if s != ssrc) {
            self.rtcp.on_sender_report(now, ntp);
        }
    }

    /// A report block about `source_ssrc`; when that is our stream, measure the
    /// round-trip time from its LSR/DLSR.
    pub fn on_report_block(
        &mut self,
        now: Instant,
        source_ssrc: u32,
        lsr: u32,
        dlsr: u32,
    ) -> Option<Duration> {
        if self.local_ssrc == Some(source_ssrc) {
            self.rtcp.on_report_block(now, lsr, dlsr)
        } else {
            None
        }
    }

    /// An RTCP BYE listing `ssrc`.
    pub fn on_bye(&mut self, now: Instant, ssrc: u32, emit: &mut impl FnMut(Event)) {
        if self.latched.is_some_and(|(_, s)| s == ssrc) && !self.bye {
            self.bye = true;
            emit(Event::Bye { ssrc, at: now });
        }
    }

    /// Note that we sent RTP to this participant (our reports become SRs).
    pub fn on_rtp_sent(&mut self) {
        self.rtcp.on_rtp_sent();
    }

    /// If our RTCP report to this participant is due, what to put in it. The caller
    /// builds and sends it, then calls [`ReceiveStream::on_rtcp_sent`].
    pub fn poll_rtcp(&mut self, now: Instant) -> Option<ReportDue> {
        let (sender_report, ntp) = self.rtcp.poll_report(now)?;
        let block = match (self.latched, self.stats.take_report()) {
            (Some((_, ssrc)), Some(loss)) => {
                let (lsr, dlsr) = self.rtcp.lsr_dlsr(now);
                Some(ReportBlock {
                    ssrc,
                    fraction_lost: loss.fraction_lost,
                    cumulative_lost: loss.cumulative_lost,
                    extended_highest_seq: loss.ext_highest_seq,
                    jitter: loss.jitter,
                    last_sr: lsr,
                    delay_since_last_sr: dlsr,
                })
            }
            _ => None,
        };
        Some(ReportDue {
            sender_report,
            ntp,
            block,
        })
    }

    /// We sent an RTCP compound packet of `size` bytes.
    pub fn on_rtcp_sent(&mut self, size: usize) {
        self.rtcp.on_report_sent(size);
    }

    /// When the current talk spurt began, if the participant is talking.
    pub fn active_since(&self) -> Option<Instant> {
        self.vad.active_since()
    }

    /// Comfort-noise memory.
    pub fn sid_status(&self) -> SidStatus {
        self.sid
    }

    /// Arrival of the last accepted RTP packet.
    pub fn last_rtp(&self) -> Option<Instant> {
        self.last_rtp
    }

    /// Arrival of the last RTCP packet.
    pub fn last_rtcp(&self) -> Option<Instant> {
        self.rtcp.last_seen()
    }

    /// The latest round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtcp.rtt()
    }

    /// The latched source address and SSRC.
    pub fn latched(&self) -> Option<(SocketAddrV4, u32)> {
        self.latched
    }

    /// RFC 3550 statistics of the latched source.
    pub fn stats(&self) -> &RtpStats {
        &self.stats
    }

    /// Receive-path counters.
    pub fn counters(&self) -> &RxCounters {
        &self.counters
    }

    /// Jitter-buffer counters.
    pub fn jitter_counters(&self) -> &JitterCounters {
        self.jitter.counters()
    }

    /// The jitter buffer's current target delay.
    pub fn target_delay(&self) -> Duration {
        self.jitter.target_delay()
    }
}

#[derive(Clone, Copy, Debug)]
enum PayloadClass {
    TelephoneEvent,
    Media(MediaKind),
}
