//! What the control plane asks of a dataplane core ([`MediaOp`]), and what a core reports
//! back ([`MediaEvent`]). Plain values: the control core turns a `MediaOp` into state
//! (allocating there) before it goes down the command ring, so the core only links it in.

use crate::clock::Instant;
use crate::codec::CodecKind;
use crate::mixer::{ActiveSpeakers, Ptime};
use crate::rate::SampleRate;
use crate::rtp_send::RtpBasis;
use crate::rx::{Digit, DigitSource, PayloadTypes, PromptId};
use core::net::SocketAddrV4;
use core::time::Duration;

/// A conference's key on its core (chosen by the control plane, unique per appliance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfKey(pub u32);

/// A participant's key (chosen by the control plane, unique per appliance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartKey(pub u32);

/// A conference to create.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConferenceSpec {
    pub key: ConfKey,
    pub ptime: Ptime,
    /// The rate it mixes at (every participant's codec samples at it).
    pub rate: SampleRate,
    /// Must be [`ActiveSpeakers::All`] with [`Timing::Input`].
    pub active_speakers: ActiveSpeakers,
    /// Participants to preallocate mixer room for.
    pub max_participants: u16,
    /// How playout and outbound RTP timestamps are timed.
    pub timing: Timing,
}

/// Most frames of [`Timing::Input`] delay.
pub const MAX_INPUT_DELAY_FRAMES: u8 = 10;
/// [`Timing::Input`]: an inbound packet whose timestamp is more than this many frames
/// from the cursor (and from its own stream's newest) moves the conference timeline.
pub const TIMELINE_JUMP_FRAMES: u32 = 50;

/// How a conference decides which audio each tick mixes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Timing {
    /// Each participant's adaptive jitter buffer plays out by arrival time, and each
    /// outbound stream has its own RTP timestamps.
    #[default]
    Arrival,
    /// Playout keyed to one conference timeline, so that two mixers fed the same packets
    /// mix the same frames into the same bytes, whenever their ticks run and whenever
    /// they started (what seamless mixer handover needs).
    ///
    /// - Every participant's inbound RTP timestamps are on one timeline (a media gateway
    ///   maps each client's timestamps onto it), with frames on a common grid of ptime
    ///   samples.
    /// - The conference keeps a cursor on that timeline, unset until the first RTP packet
    ///   of any participant arrives; it is then that packet's timestamp minus
    ///   `delay_frames` frames. Every tick mixes the frame at the cursor (each
    ///   participant's samples `[cursor, cursor + frame)`, with concealment, comfort noise
    ///   or silence where none were received, as in arrival timing) and advances it by one
    ///   frame. There is no adaptive skipping or stalling: a packet whose frame was mixed
    ///   already is late. A tick skipped after a long stall skips its frame too.
    /// - A packet whose timestamp is more than [`TIMELINE_JUMP_FRAMES`] frames from the
    ///   cursor, either way, re-anchors the cursor as at the start (every participant's
    ///   buffer starts afresh; counted), if it is its stream's newest packet and its own
    ///   stream's timestamps jumped as far: packets sent before a jump that arrive after
    ///   it, and a participant whose stream is off the timeline, do not move it (their
    ///   packets are late, or never played).
    /// - Each outbound packet's RTP timestamp is the cursor plus the participant's offset
    ///   (0 until [`MediaOp::SetRtpBasis`]); its sequence number is one more than the
    ///   previous packet's. Before the cursor is set nothing is sent (prompts still run
    ///   their course).
    /// - Talker selection must be [`ActiveSpeakers::All`] (loudest-N selection has
    ///   hysteresis that depends on each mixer's history).
    Input {
        /// Frames (1..=[`MAX_INPUT_DELAY_FRAMES`]) between the first packet and the first
        /// frame mixed: the room for network jitter.
        delay_frames: u8,
    },
}

/// What can change on a live participant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParticipantSettings {
    /// Contributes nothing to the mix.
    pub muted: bool,
    /// Receives nothing.
    pub deaf: bool,
    /// Gain applied to what the participant contributes, in dB (-60..=+20).
    pub gain_db: f32,
    /// Hears its own input with the rest of the mix (the `echo` application's line
    /// test); fixed when the participant is added.
    pub echo: bool,
}

impl Default for ParticipantSettings {
    fn default() -> Self {
        ParticipantSettings {
            muted: false,
            deaf: false,
            gain_db: 0.0,
            echo: false,
        }
    }
}

/// A participant to add to a conference on this core: one mixer slot and its first leg
/// (the fields from `local_port` on describe that leg, see [`ParticipantSpec::leg`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParticipantSpec {
    pub conf: ConfKey,
    pub key: PartKey,
    /// Local UDP port for RTP (from the core's port range; RTCP on the next port, and
    /// also accepted multiplexed on this one per RFC 5761).
    pub local_port: u16,
    /// Where the participant's media goes (and the only source accepted from it).
    pub remote: SocketAddrV4,
    pub codec: CodecKind,
    /// The payload type numbers negotiated for the stream (the codec's must be among
    /// them: it is also the one we send).
    pub payload_types: PayloadTypes,
    /// Whether the endpoint speaks RTCP (we send SR/RR and watch for its reports).
    pub rtcp: bool,
    /// SSRC of the stream we send it.
    pub ssrc: u32,
    pub settings: ParticipantSettings,
    /// When the participant's stream counts as quiet or its RTCP as stopped.
    pub liveness: Liveness,
    /// SRTP keys if the stream is protected (SDES), `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
}

/// The SDES keys of an SRTP stream: ours protects what we send, the remote's unprotects
/// what we receive (RTP and RTCP both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrtpKeys {
    pub local: tutti_srtp::MasterKey,
    pub remote: tutti_srtp::MasterKey,
}

impl ParticipantSpec {
    /// The participant's first leg.
    pub const fn leg(&self) -> LegSpec {
        LegSpec {
            local_port: self.local_port,
            remote: self.remote,
            codec: self.codec,
            payload_types: self.payload_types,
            rtcp: self.rtcp,
            ssrc: self.ssrc,
            liveness: self.liveness,
            srtp: self.srtp,
        }
    }
}

/// One RTP stream of a participant (a leg): its own ports, remote, codec, payload types,
/// RTCP and SSRC. A participant hears the conference on every leg and is heard from one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LegSpec {
    /// Local UDP port for RTP (RTCP on the next port, or multiplexed, RFC 5761).
    pub local_port: u16,
    /// Where the leg's media goes (and the only source accepted from it).
    pub remote: SocketAddrV4,
    pub codec: CodecKind,
    /// The payload type numbers negotiated for the leg.
    pub payload_types: PayloadTypes,
    /// Whether the endpoint speaks RTCP.
    pub rtcp: bool,
    /// SSRC of the stream we send on the leg.
    pub ssrc: u32,
    /// When the leg's stream counts as quiet or its RTCP as stopped.
    pub liveness: Liveness,
    /// SRTP keys if the leg is protected.
    pub srtp: Option<SrtpKeys>,
}

impl LegSpec {
    /// The local ports the leg receives on: RTP, and RTCP if the leg speaks it.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        let rtp = self.local_port;
        core::iter::once(rtp).chain(self.rtcp.then(|| rtp.wrapping_add(1)))
    }
}

/// The liveness timers of a participant's receive stream: when it reports
/// [`MediaEventKind::Quiet`] and [`MediaEventKind::RtcpTimeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// [`MediaEventKind::Quiet`] after this long without RTP.
    pub quiet_after: Duration,
    /// [`MediaEventKind::RtcpTimeout`] after this long without RTCP (once RTCP was seen).
    pub rtcp_timeout: Duration,
}

impl Default for Liveness {
    /// The receive path's defaults.
    fn default() -> Self {
        let rx = crate::rx::ReceiveConfig::default();
        Liveness {
            quiet_after: rx.quiet_after,
            rtcp_timeout: rx.rtcp.timeout,
        }
    }
}

/// A prompt to play.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PromptSpec {
    pub conf: ConfKey,
    /// One participant, or the whole conference.
    pub part: Option<PartKey>,
    /// From the prompt library loaded at start-up.
    pub prompt: PromptId,
}

/// One operation on a dataplane core.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MediaOp {
    CreateConference(ConferenceSpec),
    DeleteConference(ConfKey),
    AddParticipant(ParticipantSpec),
    UpdateParticipant {
        conf: ConfKey,
        part: PartKey,
        settings: ParticipantSettings,
    },
    RemoveParticipant {
        conf: ConfKey,
        part: PartKey,
    },
    PlayPrompt(PromptSpec),
    /// Input timing only: from now on send participant `part` its stream as `basis`
    /// says (SSRC, and the sequence number and RTP timestamp of a frame's packet).
    SetRtpBasis {
        conf: ConfKey,
        part: PartKey,
        basis: RtpBasis,
    },
    /// Move participant `part` of `conf` to conference `to` (with `settings` there),
    /// keeping its legs, local ports, sender (SSRC, sequence numbers), receive state and
    /// prompt: no renegotiation with the endpoint. On one core it moves between two
    /// ticks; to another core it goes through the control core (its packets meanwhile
    /// are counted drops, about one pump interval).
    MoveParticipant {
        conf: ConfKey,
        part: PartKey,
        to: ConfKey,
        settings: ParticipantSettings,
    },
    /// Unlink audio tap `tap` of `conf` (its ring then ends for the reader). Adding one
    /// carries a ring built on the control side, so it is not a plain value: see
    /// [`crate::tap::Tap::new`].
    RemoveTap {
        conf: ConfKey,
        tap: crate::tap::TapKey,
    },
}

/// Something a core saw, for the control plane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MediaEvent {
    pub conf: ConfKey,
    /// The participant concerned (`None` for conference-wide events).
    pub part: Option<PartKey>,
    /// When, on the dataplane clock (for [`MediaEventKind::Quiet`]: the last packet).
    pub at: Instant,
    pub kind: MediaEventKind,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MediaEventKind {
    /// Voice activity started.
    TalkStart,
    /// Voice activity ended.
    TalkStop,
    /// A DTMF key press (RFC 4733 or in-band).
    Digit { digit: Digit, source: DigitSource },
    /// A prompt finished (`completed`) or was cut short.
    PromptDone { prompt: PromptId, completed: bool },
    /// No media from the participant for the quiet interval; `sid_before` if it had sent
    /// comfort-noise SID before falling quiet.
    Quiet { sid_before: bool },
    /// Media from the participant: its first RTP packet, or RTP again after
    /// [`MediaEventKind::Quiet`].
    Active,
    /// The participant sent a comfort-noise SID frame (first one of a silence period).
    SidSeen,
    /// The participant's first RTCP packet, or the first after [`MediaEventKind::RtcpTimeout`].
    RtcpSeen,
    /// An RTCP-capable participant stopped sending RTCP.
    RtcpTimeout,
    /// The participant sent RTCP BYE.
    Bye,
    /// A mixing tick ran late (the core is overloaded).
    TickOverrun,
}
