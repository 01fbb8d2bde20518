//! Conferences on a dataplane core: the operations the control plane sends, the events
//! the core reports, and the per-core engine that receives RTP, mixes and sends.

pub mod engine;
pub mod ops;

pub use engine::{
    Conference, Engine, EngineCounters, Leg, LegCrypto, Legs, MediaCommand, Participant, Transmit,
    MAX_LEGS,
};

pub use crate::rtp_send::RtpBasis;
pub(crate) use engine::SrtpDrops;
pub use ops::{
    ConfKey, ConferenceSpec, LegSpec, Liveness, MediaEvent, MediaEventKind, MediaOp, PartKey,
    ParticipantSettings, ParticipantSpec, PromptSpec, SrtpKeys, Timing, MAX_INPUT_DELAY_FRAMES,
    TIMELINE_JUMP_FRAMES,
};
