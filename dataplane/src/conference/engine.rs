//! The conferences of one dataplane core: UDP dispatch by local port to the owning
//! participant's receive path, a tick per conference every ptime (receive -> mix ->
//! prompt overlay -> RTP out), RTCP in and out, and media events up to the control core.
//!
//! State is built on the control core ([`Conference::new`], [`Participant::new`]) and
//! linked in by [`Engine::apply`]; what is unlinked goes back up the core's retired ring to be
//! freed there, so the core allocates and frees nothing after start-up.
//!
//! # Input timing
//!
//! A conference with [`Timing::Input`] mixes, on every tick, the frame at its cursor on
//! the conference timeline (see [`Timing::Input`] for the rules). Two engines given the
//! same packets (same bytes, same timestamps) then send the same payload bytes with the
//! same RTP timestamps for the same cursor value, however their ticks are phased and
//! whenever each started, once the newer one (B) has converged. Everything that feeds a
//! payload, and why it converges:
//!
//! - **What is received:** playout is keyed to timestamps, so both play the same packets
//!   for every frame whose packets reached both before either mixed it (network jitter
//!   plus tick phase within the input delay). A packet late at one mixer only makes that
//!   frame differ (and concealment after it, as below).
//! - **Concealment** repeats a pitch period searched in the last 280 samples of received
//!   audio (the window plus the longest lag of [`crate::rx::plc`]): the same on both once
//!   B has played 280 samples of the participant's audio, i.e. 2 frames at 20 ms ptime
//!   (`ceil(280 / frame)`, at most 4 at any ptime).
//! - **Comfort noise** is a function of the inbound SSRC, the timestamps and the latest
//!   SID ([`crate::rx::cn::ComfortNoise::generate_keyed`]), not of a running generator
//!   seeded per mixer: the same from the first SID both received. A participant that
//!   went silent with a SID before B started has none at B, which plays silence for it
//!   until its next SID or audio packet.
//! - **Mixing** is [`ActiveSpeakers::All`]: each tick's sum of the frames that tick, with
//!   gain, mute and deaf as set (the control plane sets the same on both). Loudest-N
//!   selection is refused: its smoothed levels and keep/enter hysteresis carry history
//!   without a bound (a talker between the keep and enter levels stays one on A and never
//!   becomes one on B), and its ties go to the lower mixer slot, which depends on the
//!   order participants were added. The mixer's smoothed level still decides whether
//!   a packet is voiced, i.e. the marker bit, which may differ (the gateway compares
//!   sequence number, timestamp and payload only).
//! - **RTP**: timestamps are the cursor plus the participant's offset; the SSRC, offset
//!   and sequence number follow [`MediaOp::SetRtpBasis`](super::MediaOp::SetRtpBasis).
//! - **Prompts** play on the mixer that was asked only; frames carrying one differ.
//!
//! The bound: concealment is the only state that differs once B mixes a participant's
//! audio, and only until B has played 280 samples of it. So from the first frame B
//! mixes with audio from every participant, every frame is identical, except that a
//! frame concealed within B's first 280 samples of a participant's audio (2 frames at
//! 20 ms ptime, at most 4 at any ptime) may differ: within 10 frames unless more than 6
//! of those first frames are lost or late.

use super::ops::{
    ConfKey, ConferenceSpec, LegSpec, MediaEvent, MediaEventKind, PartKey, ParticipantSettings,
    ParticipantSpec, SrtpKeys, Timing, MAX_INPUT_DELAY_FRAMES, TIMELINE_JUMP_FRAMES,
};
use crate::clock::Instant;
use crate::codec::{Codec, CodecKind, LegCodec};
use crate::host::{retire, CorePorts, EventQueue, Owner, PortMap, Retired, Slab};
use crate::mixer::{self, ActiveSpeakers, Gain, Input, Mixer, MixerConfig, Ptime, Slot};
use crate::rtp_send::{RtpBasis, RtpSender, RtpSenderConfig};
use crate::rx::{
    self, jitter::Playout, rtcp::NtpClock, Event, PlayMode, PromptId, PromptPlayer, ReceiveConfig,
    ReceiveStream, RtpIn,
};
use crate::tap::{Tap, TapKey, TapSource};
use crate::wire::rtcp::{self as rtcp_wire, PacketClass, RtcpWriter};
use crate::wire::rtp::RtpPacket;
use crate::wire::rtp_ext::AudioLevel;
use core::cmp::Reverse;
use core::net::SocketAddrV4;
use core::time::Duration;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// RFC 6464 header-extension id we look for (the one browsers and SBCs use by default).
pub const AUDIO_LEVEL_EXT_ID: u8 = 1;
/// Conference ticks one [`Engine::poll`] runs at most.
const TICKS_PER_POLL: usize = 64;
/// A conference this many ticks behind skips the missed ticks instead of catching up.
const MAX_CATCH_UP: u32 = 10;
/// Events an engine holds for the poll loop at most (beyond, they are counted lost).
const EVENT_QUEUE: usize = 16_384;
/// Largest RTCP compound packet we build.
const RTCP_MAX: usize = 256;
/// Most audio taps one conference holds (each mix tap takes a mixer slot beyond the
/// participants').
pub const MAX_TAPS: usize = 8;

/// Why a conference or participant could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("mixer: {0}")]
    Mixer(#[from] mixer::MixerError),
    #[error("receive path: {0}")]
    Receive(#[from] rx::jitter::JitterConfigError),
    #[error("input timing needs active speakers \"all\"")]
    InputTimingSpeakers,
    #[error("input delay of {0} frames is not from 1 to {MAX_INPUT_DELAY_FRAMES}")]
    InputDelay(u8),
    #[error("no payload type negotiated for {0:?}")]
    NoPayloadType(CodecKind),
    #[error("SRTP: {0}")]
    Srtp(#[from] tutti_srtp::Error),
}

/// Most legs one participant has.
pub const MAX_LEGS: usize = 4;

/// The SRTP contexts of a leg: what it receives is unprotected with the remote's key
/// before it is parsed, what it sends is protected with ours after it is written (RTP
/// and RTCP both, in place).
#[derive(Debug)]
pub struct LegCrypto {
    inbound: tutti_srtp::Context,
    outbound: tutti_srtp::Context,
}

impl LegCrypto {
    /// Contexts for `keys` (on the control core: this allocates).
    pub fn new(keys: &SrtpKeys) -> Result<LegCrypto, tutti_srtp::Error> {
        Ok(LegCrypto {
            inbound: tutti_srtp::Context::new(&keys.remote, tutti_srtp::Direction::Inbound)?,
            outbound: tutti_srtp::Context::new(&keys.local, tutti_srtp::Direction::Outbound)?,
        })
    }

    /// Unprotects a received packet in place: the plain packet's length, or the drop
    /// counted in `drops` (failed authentication, replay, or malformed).
    pub(crate) fn unprotect(
        &mut self,
        buf: &mut [u8],
        rtcp: bool,
        drops: SrtpDrops<'_>,
    ) -> Option<usize> {
        let r = if rtcp {
            self.inbound.unprotect_rtcp(buf)
        } else {
            self.inbound.unprotect_rtp(buf)
        };
        match r {
            Ok(n) => Some(n),
            Err(e) => {
                match e {
                    tutti_srtp::Error::Auth => drops.auth.inc(),
                    tutti_srtp::Error::Replay => drops.replay.inc(),
                    _ => drops.other.inc(),
                }
                None
            }
        }
    }

    /// Protects the packet in `buf[..len]` in place (`buf` has room for the trailer):
    /// the protected length, 0 if it cannot be protected.
    pub(crate) fn protect(&mut self, buf: &mut [u8], len: usize, rtcp: bool) -> usize {
        let r = if rtcp {
            self.outbound.protect_rtcp(buf, len)
        } else {
            self.outbound.protect_rtp(buf, len)
        };
        r.unwrap_or(0)
    }
}

/// Where [`LegCrypto::unprotect`] counts what it drops.
#[derive(Clone, Copy)]
pub(crate) struct SrtpDrops<'a> {
    pub auth: &'a crate::stats::Counter,
    pub replay: &'a crate::stats::Counter,
    pub other: &'a crate::stats::Counter,
}

/// Protects the packet in `buf[..len]` in place if the leg has SRTP: the length to send
/// (0, nothing sent, if it cannot be protected).
fn protect(crypto: &mut Option<LegCrypto>, buf: &mut [u8], len: usize, rtcp: bool) -> usize {
    match crypto {
        None => len,
        Some(_) if len == 0 => 0,
        Some(c) => c.protect(buf, len, rtcp),
    }
}

/// One RTP stream of a participant on its conference's core: its receive path, its
/// sender, its codec instance and (room for) its SRTP context.
pub struct Leg {
    spec: LegSpec,
    rx: ReceiveStream,
    tx: RtpSender,
    codec: LegCodec,
    crypto: Option<LegCrypto>,
}

impl Leg {
    /// Build a leg (on the control core: this allocates). `seed` keys its comfort noise
    /// and RTCP randomisation.
    pub fn new(spec: LegSpec, seed: u64, now: Instant, ntp: NtpClock) -> Result<Leg, BuildError> {
        let payload_type = spec
            .payload_types
            .payload_type(spec.codec)
            .ok_or(BuildError::NoPayloadType(spec.codec))?;
        let mut config = ReceiveConfig {
            payload_types: spec.payload_types,
            seed,
            ..ReceiveConfig::default()
        };
        config.jitter.clock_rate = spec.codec.clock_rate();
        config.rtcp.ntp = ntp;
        config.quiet_after = spec.liveness.quiet_after;
        config.rtcp.timeout = spec.liveness.rtcp_timeout;
        let mut rx = ReceiveStream::new(config, now)?;
        rx.set_local_ssrc(spec.ssrc);
        let tx = RtpSender::new(RtpSenderConfig {
            ssrc: spec.ssrc,
            payload_type,
            initial_sequence: (spec.ssrc >> 16) as u16 ^ 0x5a5a,
            initial_timestamp: spec.ssrc.rotate_left(7),
        });
        Ok(Leg {
            spec,
            rx,
            tx,
            codec: LegCodec::new(spec.codec),
            crypto: spec.srtp.as_ref().map(LegCrypto::new).transpose()?,
        })
    }

    /// What the leg was built from.
    pub fn spec(&self) -> &LegSpec {
        &self.spec
    }

    /// The leg's SRTP context, if it has one.
    pub fn crypto(&self) -> Option<&LegCrypto> {
        self.crypto.as_ref()
    }
}

/// A participant's legs: the first inline, where the receive and send paths find it
/// without another pointer, the others (up to [`MAX_LEGS`]) preallocated beside it.
pub struct Legs {
    first: Leg,
    more: Vec<Leg>,
}

impl Legs {
    fn new(first: Leg) -> Legs {
        Legs {
            first,
            more: Vec::with_capacity(MAX_LEGS - 1),
        }
    }

    /// Leg `i` (0 is the first).
    pub fn get(&self, i: usize) -> Option<&Leg> {
        match i {
            0 => Some(&self.first),
            _ => self.more.get(i - 1),
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Leg> {
        match i {
            0 => Some(&mut self.first),
            _ => self.more.get_mut(i - 1),
        }
    }

    /// Every leg, the first first.
    pub fn iter(&self) -> impl Iterator<Item = &Leg> {
        core::iter::once(&self.first).chain(&self.more)
    }
}

impl<'a> IntoIterator for &'a mut Legs {
    type Item = &'a mut Leg;
    type IntoIter = core::iter::Chain<core::iter::Once<&'a mut Leg>, core::slice::IterMut<'a, Leg>>;
    fn into_iter(self) -> Self::IntoIter {
        core::iter::once(&mut self.first).chain(self.more.iter_mut())
    }
}

/// One participant's state on its conference's core: a mixer slot and its legs (one
/// today). The slot's input is the heard leg's audio; the slot's mix goes to every leg.
pub struct Participant {
    conf: ConfKey,
    key: PartKey,
    settings: ParticipantSettings,
    slot: Slot,
    legs: Legs,
    /// Index into `legs` of the leg whose audio the others hear.
    heard: usize,
    prompt: PromptPlayer,
    pcm: Box<[i16]>,
}

impl Participant {
    /// Build a participant with its first leg (on the control core: this allocates).
    pub fn new(
        spec: ParticipantSpec,
        now: Instant,
        ntp: NtpClock,
    ) -> Result<Box<Participant>, BuildError> {
        let seed = u64::from(spec.key.0) << 32 | u64::from(spec.ssrc);
        let legs = Legs::new(Leg::new(spec.leg(), seed, now, ntp)?);
        Ok(Box::new(Participant {
            conf: spec.conf,
            key: spec.key,
            settings: spec.settings,
            slot: Slot(u32::MAX),
            legs,
            heard: 0,
            prompt: PromptPlayer::new(),
            // A frame of the longest ptime at its codec's rate (its conference's rate).
            pcm: vec![0; Ptime::MAX.samples(spec.codec.sample_rate())].into_boxed_slice(),
        }))
    }

    /// The participant's key.
    pub fn key(&self) -> PartKey {
        self.key
    }

    /// The conference it is in (or on its way to).
    pub fn conf(&self) -> ConfKey {
        self.conf
    }

    /// Send a moving participant to conference `conf` instead, with `settings` there
    /// (the control core's word on where it is now; see [`Retired::Moving`]).
    pub fn rehome(&mut self, conf: ConfKey, settings: ParticipantSettings) {
        self.conf = conf;
        self.settings = settings;
    }

    /// Its legs.
    pub fn legs(&self) -> &Legs {
        &self.legs
    }

    /// The leg whose audio is the participant's input.
    pub fn heard_leg(&self) -> Option<&Leg> {
        self.legs.get(self.heard)
    }
}

/// One conference: its mixer and participants (indexed by mixer slot).
pub struct Conference {
    spec: ConferenceSpec,
    mixer: Mixer,
    parts: Vec<Option<Box<Participant>>>,
    generation: u32,
    ticks: u32,
    /// Input timing: the timeline timestamp of the next frame to mix, once anchored.
    cursor: Option<u32>,
    next_due: Instant,
    prompt: PromptPlayer,
    overlay: Box<[i16]>,
    overlay_out: Box<[u8]>,
    /// Audio taps (room for [`MAX_TAPS`]). Boxed: a tap arrives and leaves in the box
    /// the control side allocated, so the core neither frees nor allocates one.
    #[allow(clippy::vec_box)]
    taps: Vec<Box<Tap>>,
}

impl Conference {
    /// Build a conference (on the control core: this allocates).
    pub fn new(spec: ConferenceSpec) -> Result<Box<Conference>, BuildError> {
        if let Timing::Input { delay_frames } = spec.timing {
            if spec.active_speakers != ActiveSpeakers::All {
                return Err(BuildError::InputTimingSpeakers);
            }
            if !(1..=MAX_INPUT_DELAY_FRAMES).contains(&delay_frames) {
                return Err(BuildError::InputDelay(delay_frames));
            }
        }
        // Participants, and a slot for each mix tap.
        let capacity = usize::from(spec.max_participants.max(1)) + MAX_TAPS;
        let frame = spec.ptime.samples(spec.rate);
        // The largest payload of a frame in any codec.
        let max_payload = CodecKind::ALL
            .iter()
            .map(|c| c.encoded_len(frame))
            .max()
            .unwrap_or(0);
        let mixer = Mixer::new(MixerConfig {
            ptime: spec.ptime,
            rate: spec.rate,
            active_speakers: spec.active_speakers,
            capacity,
            ..MixerConfig::default()
        })?;
        Ok(Box::new(Conference {
            spec,
            mixer,
            parts: (0..capacity).map(|_| None).collect(),
            generation: 0,
            ticks: 0,
            cursor: None,
            next_due: Instant::ZERO,
            prompt: PromptPlayer::new(),
            overlay: vec![0; frame].into_boxed_slice(),
            overlay_out: vec![0; max_payload].into_boxed_slice(),
            taps: Vec::with_capacity(MAX_TAPS),
        }))
    }

    /// The conference's key.
    pub fn key(&self) -> ConfKey {
        self.spec.key
    }

    fn frame_samples(&self) -> u32 {
        self.spec.ptime.samples(self.spec.rate) as u32
    }

    /// Input timing: the delay between a packet and its frame's mix, in samples.
    fn input_delay(&self) -> Option<u32> {
        match self.spec.timing {
            Timing::Arrival => None,
            Timing::Input { delay_frames } => Some(u32::from(delay_frames) * self.frame_samples()),
        }
    }

    /// Input timing: forget the cursor and everything buffered, for the next packet to
    /// anchor the timeline afresh.
    fn restart_timeline(&mut self) {
        self.cursor = None;
        for leg in self.parts.iter_mut().flatten().flat_map(|p| &mut p.legs) {
            leg.rx.restart_timeline();
        }
    }
}

/// A media operation with its state already built.
pub enum MediaCommand {
    AddConference(Box<Conference>),
    DeleteConference(ConfKey),
    AddParticipant(Box<Participant>),
    UpdateParticipant {
        conf: ConfKey,
        part: PartKey,
        settings: ParticipantSettings,
    },
    RemoveParticipant {
        conf: ConfKey,
        part: PartKey,
    },
    PlayPrompt {
        conf: ConfKey,
        part: Option<PartKey>,
        prompt: PromptId,
        samples: Arc<[i16]>,
    },
    /// Input timing only (refused otherwise): see [`RtpSender::rebase`].
    SetRtpBasis {
        conf: ConfKey,
        part: PartKey,
        basis: RtpBasis,
    },
    /// Move participant `part` of `conf` to conference `to` with its legs, ports, RTP
    /// state and prompt (see [`MediaOp::MoveParticipant`](super::MediaOp::MoveParticipant)).
    MoveParticipant {
        conf: ConfKey,
        part: PartKey,
        to: ConfKey,
        settings: ParticipantSettings,
    },
    /// Link an audio tap into its conference (refused, and retired, when the conference
    /// or the tapped participant is not there or the conference has [`MAX_TAPS`]).
    AddTap(Box<Tap>),
    /// Unlink an audio tap.
    RemoveTap {
        conf: ConfKey,
        tap: TapKey,
    },
}

/// Engine counters (single writer: this core).
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub conferences: crate::stats::Counter,
    pub participants: crate::stats::Counter,
    pub ticks: crate::stats::Counter,
    pub tick_overruns: crate::stats::Counter,
    pub rtp_in: crate::stats::Counter,
    pub rtp_out: crate::stats::Counter,
    pub rtcp_in: crate::stats::Counter,
    pub rtcp_out: crate::stats::Counter,
    /// RTP refused for another reason (foreign source, unknown payload type, ...).
    pub rtp_dropped: crate::stats::Counter,
    /// RTP that arrived after its playout time.
    pub rtp_late: crate::stats::Counter,
    /// RTP received twice.
    pub rtp_duplicate: crate::stats::Counter,
    /// SRTP/SRTCP that failed authentication (tampered, or the wrong key).
    pub srtp_auth_failures: crate::stats::Counter,
    /// SRTP/SRTCP refused by the replay window (replayed, or too old).
    pub srtp_replays: crate::stats::Counter,
    /// Input timing: packets far from the cursor that re-anchored their conference's
    /// timeline.
    pub timeline_jumps: crate::stats::Counter,
    /// RTP older than the newest packet already received from the stream.
    pub rtp_reordered: crate::stats::Counter,
    /// Frames concealed because their packet was lost.
    pub frames_lost: crate::stats::Counter,
    /// Participants' interarrival jitter, sampled once a second each.
    pub jitter: crate::stats::LatencyHistogram,
    pub events_lost: crate::stats::Counter,
    pub commands_rejected: crate::stats::Counter,
    /// Mixing latency (tick due -> last packet of the tick queued) histogram.
    pub mix_latency: crate::stats::LatencyHistogram,
}

impl EngineCounters {
    fn srtp_drops(&self) -> SrtpDrops<'_> {
        SrtpDrops {
            auth: &self.srtp_auth_failures,
            replay: &self.srtp_replays,
            other: &self.rtp_dropped,
        }
    }
}

/// A packet the engine wants sent: the caller builds Ethernet/IPv4/UDP around it.
pub trait Transmit {
    /// Send a UDP datagram from local port `src_port` to `dst`: `fill` writes the payload
    /// into the buffer it is given and returns its length. False if it could not be sent
    /// (no buffer, no route yet): the engine counts nothing extra, the caller counts why.
    fn send(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> bool;
}

/// Which leg a local port belongs to.
#[derive(Clone, Copy, Debug)]
struct PortEntry {
    /// Conference index in the engine.
    conf: u32,
    /// The participant's mixer slot (below [`mixer::MAX_CAPACITY`]).
    slot: u16,
    /// Index of the leg in the participant's legs.
    leg: u8,
}

/// The conferences of one core.
pub struct Engine {
    /// This core's view of which core holds each media port.
    table: CorePorts,
    confs: Slab<ConfKey, Conference>,
    /// Our local ports -> the leg that receives on each.
    ports: PortMap<PortEntry>,
    due: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    events: EventQueue<MediaEvent>,
    counters: Arc<EngineCounters>,
    rtcp_buf: Box<[u8]>,
}

impl Engine {
    /// An engine on the core `table` is the view of, holding at most `max_conferences`.
    pub fn new(table: CorePorts, max_conferences: usize, counters: Arc<EngineCounters>) -> Engine {
        Engine {
            ports: table.map(),
            table,
            confs: Slab::new(max_conferences),
            due: BinaryHeap::with_capacity(max_conferences * 2 + 1),
            events: EventQueue::new(EVENT_QUEUE),
            counters,
            rtcp_buf: vec![0; RTCP_MAX].into_boxed_slice(),
        }
    }

    /// Which core handles local UDP port `port`.
    pub fn owner(&self, port: u16) -> Owner {
        self.table.owner(port)
    }

    /// The oldest event not yet taken (the poll loop sends them up).
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop()
    }

    /// Apply one command from the control core; what it unlinks goes up `retired`.
    pub fn apply(
        &mut self,
        cmd: MediaCommand,
        now: Instant,
        retired: &mut rtrb::Producer<Retired>,
    ) {
        match cmd {
            MediaCommand::AddConference(mut c) => {
                c.next_due = now + c.spec.ptime.duration();
                c.generation = c.generation.wrapping_add(1);
                let (due, generation) = (c.next_due, c.generation);
                match self.confs.insert(c.spec.key, c) {
                    Ok(idx) => {
                        self.due.push(Reverse((due, idx, generation)));
                        self.counters.conferences.add(1);
                    }
                    Err(c) => {
                        self.counters.commands_rejected.inc();
                        retire(retired, Retired::Conference(c));
                    }
                }
            }
            MediaCommand::DeleteConference(key) => {
                let Some((_, mut c)) = self.confs.remove(&key) else {
                    return;
                };
                for p in c.parts.iter_mut().filter_map(Option::take) {
                    self.unmap_legs(&p);
                    self.counters.participants.sub(1);
                    retire(retired, Retired::Participant(p));
                }
                for t in c.taps.drain(..) {
                    retire(retired, Retired::Tap(t));
                }
                self.counters.conferences.sub(1);
                retire(retired, Retired::Conference(c));
            }
            MediaCommand::AddParticipant(p) => self.link(p, retired),
            MediaCommand::UpdateParticipant {
                conf,
                part,
                settings,
            } => {
                if let Some((c, slot)) = self.find(conf, part) {
                    let _ = c.mixer.set_muted(slot, settings.muted);
                    let _ = c.mixer.set_deaf(slot, settings.deaf);
                    let _ = c.mixer.set_gain(slot, Gain::from_db(settings.gain_db));
                    if let Some(Some(p)) = c.parts.get_mut(slot.0 as usize) {
                        p.settings = settings;
                    }
                }
            }
            MediaCommand::RemoveParticipant { conf, part } => {
                if let Some(p) = self.unlink(conf, part, retired) {
                    retire(retired, Retired::Participant(p));
                }
            }
            MediaCommand::MoveParticipant {
                conf,
                part,
                to,
                settings,
            } => {
                let Some(mut p) = self.unlink(conf, part, retired) else {
                    self.counters.commands_rejected.inc();
                    return;
                };
                p.rehome(to, settings);
                if self.confs.contains(&to) {
                    self.link(p, retired);
                } else {
                    retire(retired, Retired::Moving(p));
                }
            }
            MediaCommand::PlayPrompt {
                conf,
                part,
                prompt,
                samples,
            } => {
                let Some(c) = self.confs.by_key_mut(&conf) else {
                    return;
                };
                let events = &mut self.events;
                let counters = &self.counters;
                let tag = u32::from(prompt.index());
                match part {
                    None => {
                        let mut emit = |e: Event| push_event(events, counters, conf, None, now, e);
                        c.prompt.start(&samples, PlayMode::Mix, tag, &mut emit);
                    }
                    Some(pk) => {
                        if let Some(p) = c.parts.iter_mut().flatten().find(|p| p.key == pk) {
                            let mut emit =
                                |e: Event| push_event(events, counters, conf, Some(pk), now, e);
                            p.prompt.start(&samples, PlayMode::Mix, tag, &mut emit);
                        }
                    }
                }
            }
            MediaCommand::SetRtpBasis { conf, part, basis } => {
                let Some((c, slot)) = self.find(conf, part) else {
                    return;
                };
                let input = c.spec.timing != Timing::Arrival;
                // The participant's first leg: the one its spec described.
                let leg = c
                    .parts
                    .get_mut(slot.0 as usize)
                    .and_then(Option::as_mut)
                    .map(|p| &mut p.legs.first);
                match leg {
                    Some(leg) if input => {
                        leg.tx.rebase(basis);
                        leg.spec.ssrc = basis.ssrc;
                        leg.rx.set_local_ssrc(basis.ssrc);
                    }
                    _ => self.counters.commands_rejected.inc(),
                }
            }
            MediaCommand::AddTap(tap) => self.add_tap(tap, retired),
            MediaCommand::RemoveTap { conf, tap } => {
                let Some(c) = self.confs.by_key_mut(&conf) else {
                    return;
                };
                if let Some(i) = c.taps.iter().position(|t| t.spec().key == tap) {
                    let t = c.taps.swap_remove(i);
                    if let Some(slot) = t.slot {
                        let _ = c.mixer.remove_participant(slot);
                    }
                    retire(retired, Retired::Tap(t));
                }
            }
        }
    }

    fn add_tap(&mut self, mut tap: Box<Tap>, retired: &mut rtrb::Producer<Retired>) {
        let spec = *tap.spec();
        let linked = self.confs.by_key_mut(&spec.conf).and_then(|c| {
            let fits = c.taps.len() < MAX_TAPS
                && spec.frame_samples == c.frame_samples() as usize
                && !c.taps.iter().any(|t| t.spec().key == spec.key);
            let source_there = match spec.source.part() {
                Some(part) => c.parts.iter().flatten().any(|p| p.key == part),
                None => true,
            };
            if !(fits && source_there) {
                return None;
            }
            if spec.source == TapSource::Mix {
                // The full mix is what a tap-role slot hears: the mixer's shared sum of
                // every contributor, as L16 to decode losslessly.
                let cfg = mixer::ParticipantConfig {
                    role: mixer::Role::Tap,
                    ..mixer::ParticipantConfig::new(CodecKind::L16)
                };
                tap.slot = Some(c.mixer.add_participant(cfg).ok()?);
            }
            Some(c)
        });
        match linked {
            Some(c) => c.taps.push(tap),
            None => {
                self.counters.commands_rejected.inc();
                retire(retired, Retired::Tap(tap));
            }
        }
    }

    fn find(&mut self, conf: ConfKey, part: PartKey) -> Option<(&mut Conference, Slot)> {
        let c = self.confs.by_key_mut(&conf)?;
        let slot = c.parts.iter().flatten().find(|p| p.key == part)?.slot;
        Some((c, slot))
    }

    fn unmap_legs(&mut self, p: &Participant) {
        for port in p.legs.iter().flat_map(|l| l.spec.ports()) {
            self.ports.set(port, None);
            self.table.release(port);
        }
    }

    /// Link participant `p` into its conference (`p.conf`) on this core: a mixer slot,
    /// its ports claimed; refused (and retired) if the conference is not here, is
    /// full, or a leg's codec does not sample at the conference's rate.
    fn link(&mut self, mut p: Box<Participant>, retired: &mut rtrb::Producer<Retired>) {
        let ok = p
            .legs
            .iter()
            .flat_map(|l| l.spec.ports())
            .all(|port| self.ports.covers(port));
        let idx = self.confs.index(&p.conf);
        let conf = idx.and_then(|i| self.confs.get_mut(i));
        let (Some(idx), Some(c), true) = (idx, conf, ok) else {
            self.counters.commands_rejected.inc();
            retire(retired, Retired::Participant(p));
            return;
        };
        // Until resampling exists, every leg's codec samples at the conference rate.
        let rate = c.spec.rate;
        let Some(codec) = p
            .heard_leg()
            .map(|l| l.codec.kind())
            .filter(|_| p.legs.iter().all(|l| l.spec.codec.sample_rate() == rate))
        else {
            self.counters.commands_rejected.inc();
            retire(retired, Retired::Participant(p));
            return;
        };
        let cfg = mixer::ParticipantConfig {
            role: if p.settings.echo {
                mixer::Role::Echo
            } else {
                mixer::Role::Local
            },
            codec,
            muted: p.settings.muted,
            deaf: p.settings.deaf,
            gain: Gain::from_db(p.settings.gain_db),
        };
        let Ok(slot) = c.mixer.add_participant(cfg) else {
            self.counters.commands_rejected.inc();
            retire(retired, Retired::Participant(p));
            return;
        };
        p.slot = slot;
        // Input timing: a participant (also one from another conference) starts afresh
        // on this conference's timeline; its sender keeps its SSRC and sequence numbers.
        let playout = match c.spec.timing {
            Timing::Arrival => Playout::Adaptive,
            Timing::Input { .. } => Playout::Timeline,
        };
        for leg in &mut p.legs {
            if playout == Playout::Timeline || leg.rx.playout() != playout {
                leg.rx.set_playout(playout);
            }
        }
        let Some(part) = c.parts.get_mut(slot.0 as usize) else {
            let _ = c.mixer.remove_participant(slot);
            self.counters.commands_rejected.inc();
            retire(retired, Retired::Participant(p));
            return;
        };
        let entry = |leg: usize| PortEntry {
            conf: idx,
            slot: slot.0 as u16,
            leg: leg as u8,
        };
        for (i, leg) in p.legs.iter().enumerate() {
            for port in leg.spec.ports() {
                self.ports.set(port, Some(entry(i)));
                self.table.claim(port);
            }
        }
        *part = Some(p);
        self.counters.participants.inc();
    }

    /// Unlink participant `part` of `conf`: its mixer slot freed, its ports given back,
    /// its taps ended (they go up `retired`).
    fn unlink(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        retired: &mut rtrb::Producer<Retired>,
    ) -> Option<Box<Participant>> {
        let (c, slot) = self.find(conf, part)?;
        let _ = c.mixer.remove_participant(slot);
        while let Some(i) = c
            .taps
            .iter()
            .position(|t| t.spec().source.part() == Some(part))
        {
            retire(retired, Retired::Tap(c.taps.swap_remove(i)));
        }
        let p = c.parts.get_mut(slot.0 as usize).and_then(Option::take)?;
        self.unmap_legs(&p);
        self.counters.participants.sub(1);
        Some(p)
    }

    /// A UDP datagram for local port `dst_port` (owned by this core) from `src`.
    /// Returns false when no participant has the port.
    pub fn handle_udp(
        &mut self,
        now: Instant,
        src: SocketAddrV4,
        dst_port: u16,
        payload: &mut [u8],
    ) -> bool {
        let Some(entry) = self.ports.get(dst_port) else {
            return false;
        };
        let (slot, leg) = (usize::from(entry.slot), usize::from(entry.leg));
        let Some(c) = self.confs.get_mut(entry.conf) else {
            return false;
        };
        // Input timing: (delay, cursor, how far from it a packet moves the timeline).
        let timeline = c
            .input_delay()
            .map(|delay| (delay, c.cursor, TIMELINE_JUMP_FRAMES * c.frame_samples()));
        let Some(p) = c.parts.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let part = p.key;
        let Some(l) = p.legs.get_mut(leg) else {
            return false;
        };
        let conf = c.spec.key;
        let events = &mut self.events;
        let counters = &self.counters;
        let mut emit = |e: Event| push_event(events, counters, conf, Some(part), now, e);
        let is_rtcp_port = dst_port != l.spec.local_port;
        let rtcp = is_rtcp_port || rtcp_wire::classify(payload) == PacketClass::Rtcp;
        let len = match l.crypto.as_mut() {
            Some(c) => match c.unprotect(payload, rtcp, counters.srtp_drops()) {
                Some(n) => n,
                None => return true,
            },
            None => payload.len(),
        };
        let payload = &payload[..len];
        if rtcp {
            counters.rtcp_in.inc();
            let _ = l.rx.handle_rtcp(now, src, payload, &mut emit);
            return true;
        }
        let Ok(pkt) = RtpPacket::parse(payload) else {
            counters.rtp_dropped.inc();
            return true;
        };
        let audio_level = AudioLevel::find(pkt.extension_elements(), AUDIO_LEVEL_EXT_ID)
            .map(|a| (a.voice, a.level));
        let input = RtpIn {
            ssrc: pkt.ssrc(),
            seq: pkt.sequence_number(),
            timestamp: pkt.timestamp(),
            payload_type: pkt.payload_type(),
            payload: pkt.payload(),
            audio_level,
        };
        counters.rtp_in.inc();
        if let Some((_, Some(cursor), jump)) = timeline {
            let distance = (input.timestamp.wrapping_sub(cursor) as i32).unsigned_abs();
            // Only the latched source's own newest packets move it: a packet sent before
            // a jump and arriving after it does not move it back.
            if distance > jump
                && l.rx.latched() == Some((src, input.ssrc))
                && l.rx.timestamp_jumped(input.seq, input.timestamp, jump)
            {
                // The timeline moved: the packet lands in fresh buffers and anchors the
                // cursor anew below.
                counters.timeline_jumps.inc();
                c.restart_timeline();
            }
        }
        let Some(l) = c
            .parts
            .get_mut(slot)
            .and_then(Option::as_mut)
            .and_then(|p| p.legs.get_mut(leg))
        else {
            return true;
        };
        let newest = l.rx.stats().ext_highest_seq().map(|s| s as u16);
        let first = l.rx.last_rtp().is_none();
        match l.rx.handle_rtp(now, src, input, &mut emit) {
            Ok(()) => {
                if newest.is_some_and(|n| (n.wrapping_sub(input.seq) as i16) > 0) {
                    counters.rtp_reordered.inc();
                }
                if let (Some((delay, ..)), None) = (timeline, c.cursor) {
                    // The conference's first packet (or the first after a jump): the
                    // cursor starts the input delay before it.
                    c.cursor = Some(input.timestamp.wrapping_sub(delay));
                }
            }
            Err(rx::DropReason::Buffer(rx::jitter::Insert::Duplicate)) => {
                counters.rtp_duplicate.inc()
            }
            Err(rx::DropReason::Buffer(rx::jitter::Insert::TooLate)) => counters.rtp_late.inc(),
            Err(_) => counters.rtp_dropped.inc(),
        }
        if first && l.rx.last_rtp().is_some() {
            // The stream's first packet: the control plane learns that media flows
            // (later starts are reported after each quiet spell).
            emit(Event::MediaResumed { at: now });
        }
        true
    }

    /// When [`Engine::poll`] next has work (the earliest conference tick).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Run the conference ticks due at `now` (at most 64 per call), sending
    /// through `tx`.
    pub fn poll(&mut self, now: Instant, tx: &mut impl Transmit, clock: &dyn Fn() -> Instant) {
        // Bounded work: the rest of what is due runs on the next loop iteration, after
        // the next rx burst.
        for _ in 0..TICKS_PER_POLL {
            let Some(&Reverse((due, idx, gen))) = self.due.peek() else {
                break;
            };
            if due > now {
                break;
            }
            self.due.pop();
            let Some(c) = self.confs.get_mut(idx) else {
                continue;
            };
            if c.generation != gen {
                continue;
            }
            let ptime = c.spec.ptime.duration();
            let lag = now.saturating_since(due);
            let mut due = due;
            if lag >= ptime {
                self.counters.tick_overruns.inc();
                let ev = MediaEvent {
                    conf: c.spec.key,
                    part: None,
                    at: now,
                    kind: MediaEventKind::TickOverrun,
                };
                if self.events.push(ev).is_err() {
                    self.counters.events_lost.inc();
                }
                // A short stall is caught up tick by tick (every frame still goes out,
                // late); after a long one the missed ticks are skipped, their time still
                // counted in every stream's RTP timestamps.
                if lag >= ptime * MAX_CATCH_UP {
                    let missed = (lag.as_nanos() / ptime.as_nanos()) as u32;
                    let samples = missed.saturating_mul(c.frame_samples());
                    for leg in c.parts.iter_mut().flatten().flat_map(|p| &mut p.legs) {
                        leg.tx.skip(samples);
                    }
                    // Input timing: the skipped ticks' frames are skipped too.
                    if let Some(cursor) = c.cursor.as_mut() {
                        *cursor = cursor.wrapping_add(samples);
                    }
                    due += ptime * missed;
                }
            }
            tick_conference(
                c,
                now,
                tx,
                &mut self.events,
                &self.counters,
                &mut self.rtcp_buf,
            );
            self.counters.ticks.inc();
            self.counters
                .mix_latency
                .record(clock().saturating_since(due));
            c.next_due = due + ptime;
            self.due.push(Reverse((c.next_due, idx, gen)));
        }
    }
}

/// Which frame a tick plays out.
#[derive(Clone, Copy)]
enum TickFrame {
    /// Arrival timing: each participant's next one by arrival time.
    Arrival,
    /// Input timing: the one at this timeline timestamp.
    At(u32),
    /// Input timing before the first packet: none (nothing is received or sent).
    Unanchored,
}

fn tick_conference(
    c: &mut Conference,
    now: Instant,
    tx: &mut impl Transmit,
    events: &mut EventQueue<MediaEvent>,
    counters: &EngineCounters,
    rtcp_buf: &mut [u8],
) {
    let conf = c.spec.key;
    let frame = c.frame_samples() as usize;
    let tick_frame = match (c.spec.timing, c.cursor) {
        (Timing::Arrival, _) => TickFrame::Arrival,
        (Timing::Input { .. }, Some(cursor)) => TickFrame::At(cursor),
        (Timing::Input { .. }, None) => TickFrame::Unanchored,
    };
    c.ticks = c.ticks.wrapping_add(1);
    let sample_jitter = c.ticks.is_multiple_of(1000 / c.spec.ptime.millis());
    // Receive: one frame per leg; the heard leg's goes into the mixer.
    for p in c.parts.iter_mut().flatten() {
        let part = p.key;
        let pcm = &mut p.pcm[..frame];
        for (i, leg) in (&mut p.legs).into_iter().enumerate() {
            // Timers (RTCP timeout, media quiet, DTMF end, talk hangover) run at tick rate.
            if leg.rx.poll_timeout() <= now {
                leg.rx.handle_timeout(now, &mut |e| {
                    push_event(events, counters, conf, Some(part), now, e)
                });
            }
            if sample_jitter {
                let units = leg.rx.stats().jitter();
                counters.jitter.record(Duration::from_micros(
                    u64::from(units) * 1_000_000 / u64::from(leg.spec.codec.clock_rate()),
                ));
            }
            let mut emit = |e| push_event(events, counters, conf, Some(part), now, e);
            let info = match tick_frame {
                TickFrame::Arrival => leg.rx.poll_frame(now, pcm, &mut emit),
                TickFrame::At(ts) => leg.rx.poll_frame_at(now, ts, pcm, &mut emit),
                TickFrame::Unanchored => continue,
            };
            if info.concealed_samples > 0 {
                counters.frames_lost.inc();
            }
            let heard = i == p.heard;
            if heard && info.audio_samples + info.concealed_samples + info.comfort_noise_samples > 0
            {
                let _ = c.mixer.set_input(p.slot, Input::Pcm(pcm));
            }
            if heard {
                for t in c.taps.iter_mut() {
                    if t.spec().source == TapSource::Input(part) {
                        t.push(pcm);
                    }
                }
            }
        }
    }
    c.mixer.tick(now);
    for t in c.taps.iter_mut() {
        let Some(slot) = t.slot else { continue };
        match c.mixer.output(slot) {
            Some(out) if out.codec.decode(out.payload, t.scratch()) == Ok(frame) => {
                t.push_scratch()
            }
            _ => t.push_silence(),
        }
    }
    // A conference-wide prompt is rendered once per tick into a scratch frame.
    let conf_prompt = c.prompt.playing().is_some();
    if conf_prompt {
        c.overlay[..frame].fill(0);
        c.prompt.render(&mut c.overlay[..frame], &mut |e| {
            push_event(events, counters, conf, None, now, e)
        });
    }
    // Send: each participant its mix on every leg, with prompts overlaid.
    for p in c.parts.iter_mut().flatten() {
        let part = p.key;
        let tapped = c
            .taps
            .iter()
            .any(|t| t.spec().source == TapSource::Output(part));
        let Some(out) = c.mixer.output(p.slot) else {
            for leg in &mut p.legs {
                leg.tx.skip(frame as u32);
            }
            for t in c.taps.iter_mut() {
                if t.spec().source == TapSource::Output(part) {
                    t.push_silence();
                }
            }
            continue;
        };
        let own_prompt = p.prompt.playing().is_some();
        let overlay = own_prompt || conf_prompt;
        let pcm = &mut p.pcm[..frame];
        // The participant's PCM mix, once, when some leg needs more than the mixer's
        // payload: a prompt over it, or another codec.
        if tapped || overlay || p.legs.iter().any(|l| l.codec.kind() != out.codec) {
            let _ = out.codec.decode(out.payload, pcm);
        }
        if conf_prompt {
            for (o, s) in pcm.iter_mut().zip(&c.overlay[..frame]) {
                *o = o.saturating_add(*s);
            }
        }
        if own_prompt {
            p.prompt.render(pcm, &mut |e| {
                push_event(events, counters, conf, Some(part), now, e)
            });
        }
        if tapped {
            for t in c.taps.iter_mut() {
                if t.spec().source == TapSource::Output(part) {
                    t.push(pcm);
                }
            }
        }
        for leg in &mut p.legs {
            let (payload, voiced) = if overlay || leg.codec.kind() != out.codec {
                let n = leg.codec.encode(pcm, &mut c.overlay_out).unwrap_or(0);
                (&c.overlay_out[..n], out.voiced || overlay)
            } else {
                (out.payload, out.voiced)
            };
            let (tx_state, crypto) = (&mut leg.tx, &mut leg.crypto);
            let sent = !matches!(tick_frame, TickFrame::Unanchored)
                && tx.send(leg.spec.local_port, leg.spec.remote, &mut |buf| {
                    let n = match tick_frame {
                        TickFrame::At(ts) => {
                            tx_state.write_frame(buf, payload, ts, frame as u32, voiced)
                        }
                        _ => tx_state.write_packet(buf, payload, frame as u32, voiced),
                    }
                    .unwrap_or(0);
                    protect(crypto, buf, n, false)
                });
            if sent {
                counters.rtp_out.inc();
                leg.rx.on_rtp_sent();
            } else {
                leg.tx.skip(frame as u32);
            }
            if leg.spec.rtcp {
                send_rtcp(leg, now, tx, counters, rtcp_buf);
            }
        }
    }
    if let TickFrame::At(ts) = tick_frame {
        c.cursor = Some(ts.wrapping_add(frame as u32));
    }
}

fn send_rtcp(
    p: &mut Leg,
    now: Instant,
    tx: &mut impl Transmit,
    counters: &EngineCounters,
    buf: &mut [u8],
) {
    let Some(due) = p.rx.poll_rtcp(now) else {
        return;
    };
    let blocks: &[rtcp_wire::ReportBlock] = match &due.block {
        Some(b) => core::slice::from_ref(b),
        None => &[],
    };
    let mut w = RtcpWriter::new(buf);
    let built = if due.sender_report {
        let info = p.tx.sender_info(due.ntp, p.tx.next_timestamp());
        w.sender_report(&info, blocks)
    } else {
        w.receiver_report(p.spec.ssrc, blocks)
    }
    .and_then(|_| w.sdes_cname(p.spec.ssrc, b"tutti"));
    if built.is_err() {
        return;
    }
    let pkt = w.finish();
    let len = pkt.len();
    let dst = SocketAddrV4::new(*p.spec.remote.ip(), p.spec.remote.port().wrapping_add(1));
    let crypto = &mut p.crypto;
    let sent = tx.send(
        p.spec.local_port.wrapping_add(1),
        dst,
        &mut |out| match out.get_mut(..len) {
            Some(o) => {
                o.copy_from_slice(pkt);
                protect(crypto, out, len, true)
            }
            None => 0,
        },
    );
    if sent {
        counters.rtcp_out.inc();
        p.rx.on_rtcp_sent(len);
    }
}

fn push_event(
    events: &mut EventQueue<MediaEvent>,
    counters: &EngineCounters,
    conf: ConfKey,
    part: Option<PartKey>,
    now: Instant,
    e: Event,
) {
    let (at, kind) = match e {
        Event::Digit(d) => (
            d.started,
            MediaEventKind::Digit {
                digit: d.digit,
                source: d.source,
            },
        ),
        Event::TalkStart { at } => (at, MediaEventKind::TalkStart),
        Event::TalkStop { at, .. } => (at, MediaEventKind::TalkStop),
        Event::SidSeen { at, .. } => (at, MediaEventKind::SidSeen),
        Event::MediaQuiet {
            last_packet,
            sid_before,
        } => (last_packet, MediaEventKind::Quiet { sid_before }),
        Event::MediaResumed { at } => (at, MediaEventKind::Active),
        Event::RtcpSeen { at } => (at, MediaEventKind::RtcpSeen),
        Event::RtcpTimeout { .. } => (now, MediaEventKind::RtcpTimeout),
        Event::Bye { at, .. } => (at, MediaEventKind::Bye),
        Event::PromptDone {
            playback,
            completed,
        } => (
            now,
            MediaEventKind::PromptDone {
                prompt: PromptId::from_index(playback as u16),
                completed,
            },
        ),
        // Liveness details the control plane does not need one by one.
        Event::SsrcChanged { .. } => return,
    };
    if events
        .push(MediaEvent {
            conf,
            part,
            at,
            kind,
        })
        .is_err()
    {
        counters.events_lost.inc();
    }
}
