//! What the control plane asks of a dataplane core ([`MediaOp`]), and what a core reports
//! back ([`MediaEvent`]). Plain values: the control core turns a `MediaOp` into state
//! (allocating there) before it goes down the command ring, so the core only links it in.

use crate::clock::Instant;
use crate::codec::CodecKind;
use crate::mixer::{ActiveSpeakers, Ptime};
use crate::rx::{Digit, DigitSource, PromptId};
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
    pub active_speakers: ActiveSpeakers,
    /// Participants to preallocate mixer room for.
    pub max_participants: u16,
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
}

impl Default for ParticipantSettings {
    fn default() -> Self {
        ParticipantSettings {
            muted: false,
            deaf: false,
            gain_db: 0.0,
        }
    }
}

/// A participant to add to a conference on this core.
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
    /// RTP payload type of RFC 4733 telephone-events, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Whether the endpoint speaks RTCP (we send SR/RR and watch for its reports).
    pub rtcp: bool,
    /// SSRC of the stream we send it.
    pub ssrc: u32,
    pub settings: ParticipantSettings,
    /// When the participant's stream counts as quiet or its RTCP as stopped.
    pub liveness: Liveness,
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
