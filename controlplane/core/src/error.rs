//! What went wrong, in domain terms. The drivers map these to their protocol once (the
//! HTTP API in the server crate's `http::error`; SIP responses later).

use crate::leases::LeaseError;
use crate::media::MediaError;
use crate::peer::PeerError;
use crate::sessions::SessionError;

/// Why the control core refused or could not carry out a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Input that is well-formed but not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The session table refused the change.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The dataplane did not take the command.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The lease table refused a heartbeat.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The prompt library has no such prompt.
    #[error("unknown prompt {prompt:?}; available prompts: {available}")]
    UnknownPrompt { prompt: String, available: String },
    /// A conference's owner is a call manager without a live lease (it never sent a
    /// heartbeat, or its lease lapsed).
    #[error(
        "call manager {0:?} holds no live lease: send POST /v1/call-managers/{0}/heartbeat \
         first, then create or adopt conferences for it"
    )]
    NoLease(String),
    /// The conference went away while the request was being handled.
    #[error("the conference no longer exists")]
    Gone,
    /// An RTP basis for a conference that mixes by arrival time.
    #[error(
        "conference {0:?} mixes by arrival time: an RTP basis needs a conference created \
         with \"timing\": \"input\""
    )]
    NotInputTimed(String),
    /// The request needs the gateway role, which this appliance does not have.
    #[error("this appliance is not a gateway")]
    NotAGateway,
    /// The conference's owner holds no live lease: it is being reclaimed, and takes no
    /// new participants through the API until a heartbeat or an adoption.
    #[error(
        "conference {0:?} is orphaned (its owner's lease lapsed): send the owner's heartbeat \
         or adopt it before adding participants"
    )]
    Orphaned(String),
    /// The conference is being handed over (gateway).
    #[error("conference {conf} is being handed over to {to}; try again when the handover ends")]
    HandingOver { conf: String, to: String },
    /// The conference moved to another mixer while the request was being handled.
    #[error("conference {conf} moved to {mixer} meanwhile")]
    Moved { conf: String, mixer: String },
    /// No ports left for a relayed participant (gateway).
    #[error("no free ports for a relayed participant")]
    NoRelayPorts,
    /// No mixer can take a conference (gateway).
    #[error("{0}")]
    NoMixer(String),
    /// Every mixer that could take the conference is being drained (gateway).
    #[error("every {0}mixer is draining (POST /v1/mixers/undrain one first)")]
    AllDraining(&'static str),
    /// The mixer is being drained: it takes no new conferences (gateway).
    #[error("mixer {0} is draining: it takes no new conferences (POST /v1/mixers/undrain first)")]
    Draining(String),
    /// A mixer failed or refused (gateway).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Every mixer asked failed (gateway): what was asked and why each failed.
    #[error("no mixer {what}: {errors}")]
    PeersFailed { what: &'static str, errors: String },
}
