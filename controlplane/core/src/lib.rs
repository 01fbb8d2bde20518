//! tutti-control-core: the control plane's decisions, without I/O (as quinn-proto is to
//! quinn). Nothing here touches sockets, threads, tokio, HTTP or the system clock: it
//! is driven through calls that take validated, typed requests and report typed
//! [`ControlError`]s, on one injected [`ControlClock`] and a seeded RNG, and it hands
//! its effects out:
//!
//! - media operations and relay commands go to a [`media::MediaPlane`] sink (pushing
//!   onto a dataplane core's command ring never blocks; a full ring is
//!   [`media::MediaError::Busy`]);
//! - events for subscribers queue up for [`Control::poll_event`];
//! - requests to peer mixers (gateway role) queue up for [`Control::poll_peer_request`]
//!   and their results come back through [`Control::handle_peer_response`];
//! - timers are due at [`Control::poll_timeout`] and run in [`Control::handle_timeout`].
//!
//! What lives where:
//! - [`sessions`]: the session table (conferences, participants, placement on cores,
//!   port allocation, SSRCs);
//! - [`leases`], [`orphan`], [`reclaim`]: call-manager leases, the per-conference orphan
//!   watch and the reclamation procedure that carries its steps out;
//! - [`control`]: [`Control`], the operations the REST API (and later SIP and the IVR)
//!   call;
//! - [`directory`]: provisioning — conference codes and their profiles (PINs,
//!   moderators, keypad maps), validated once;
//! - [`ivr`]: the conference IVR for one caller (code, PIN, attempts, timeouts), a state
//!   machine whose prompts, store lookups and joins the drivers carry out;
//! - [`gateway`]: the gateway's table of relayed conferences and the handover plan, a
//!   state machine driven by peer responses, relay events and timeouts;
//! - [`events`], [`error`], [`clock`], [`peer`], [`media`]: what goes in and out.
//!
//! The server crate (`tutti-controlplane`) holds the drivers: HTTP, the peer client,
//! metrics and the pump that feeds this crate and carries out its effects.

#![forbid(unsafe_code)]

pub mod clock;
pub mod control;
pub mod directory;
pub mod error;
pub mod events;
pub mod gateway;
pub mod ivr;
pub mod json;
pub mod leases;
pub mod media;
pub mod orphan;
pub mod peer;
pub mod reclaim;
pub mod sessions;
pub mod sip;
pub mod srtp;

pub use clock::{ControlClock, ManualClock};
pub use control::Control;
pub use error::ControlError;
