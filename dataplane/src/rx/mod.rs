//! Media receive path, sans-IO: everything between a parsed RTP/RTCP packet from a
//! participant and the PCM frame the mixer uses each tick.
//!
//! - [`stream::ReceiveStream`] ties it together per participant: source latching,
//!   [`stats`] (RFC 3550), the [`jitter`] buffer (adaptive, or keyed to a conference
//!   timeline) with [`plc`] concealment and [`cn`] comfort noise (RFC 3389), [`dtmf`]
//!   (RFC 4733) and [`inband`] DTMF, [`vad`] voice activity, and [`rtcp`] state and
//!   scheduling.
//! - [`prompt`] loads WAV prompts ([`wav`]) at start-up and plays them into a
//!   participant's or a conference's audio.
//! - Everything reports to the control plane through [`event::Event`] values handed to a
//!   caller-provided `FnMut(Event)`.
//!
//! Time is always a [`crate::clock::Instant`] argument; after construction nothing here
//! allocates, locks or logs.
//!
//! Per packet the poll loop calls [`ReceiveStream::handle_rtp`] (or, for RTCP,
//! [`ReceiveStream::handle_rtcp`]); per tick [`ReceiveStream::poll_frame`] and
//! [`ReceiveStream::poll_rtcp`]; when [`ReceiveStream::poll_timeout`] passes,
//! [`ReceiveStream::handle_timeout`].

pub mod cn;
pub mod dtmf;
pub mod event;
pub mod inband;
pub mod jitter;
pub mod plc;
pub mod prompt;
pub mod rtcp;
pub mod stats;
pub mod stream;
pub mod vad;
pub mod wav;

pub use event::{Digit, DigitEvent, DigitSource, Event};

/// Write `samples` (at most `ring.len()` of them) into `ring` from index `head` on,
/// wrapping; returns the index after the last one written.
pub(crate) fn ring_write(ring: &mut [i16], head: usize, samples: &[i16]) -> usize {
    let len = ring.len();
    let n = samples.len().min(len);
    let head = head % len.max(1);
    let first = n.min(len - head);
    let (a, b) = samples[..n].split_at(first);
    ring[head..head + first].copy_from_slice(a);
    ring[..b.len()].copy_from_slice(b);
    (head + n) % len.max(1)
}
pub use prompt::{PlayMode, PromptError, PromptId, PromptLibrary, PromptPlayer};
pub use stream::{
    DropReason, PayloadTypes, ReceiveConfig, ReceiveStream, RtcpDropReason, RtpIn, SidStatus,
};
