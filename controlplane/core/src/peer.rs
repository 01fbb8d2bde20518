//! Peer mixers (gateway role): what the core asks of another appliance's API
//! ([`PeerRequest`]), what comes back ([`PeerAnswer`]) and how a call fails
//! ([`PeerError`]). The server's peer client makes the calls and reports the results.

use crate::sessions::{NewConference, NewParticipant, ParticipantPatch};
use std::net::SocketAddrV4;
use tutti_dataplane::conference::RtpBasis;

/// Why a call to a mixer failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No answer (connection refused, timeout, ...).
    #[error("mixer {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer other than 2xx; `message` is the mixer's JSON `error` when it sent one.
    #[error("mixer {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    /// A 2xx answer that is not what was expected.
    #[error("mixer {url} sent an unexpected answer: {reason}")]
    BadAnswer { url: String, reason: String },
}

impl PeerError {
    /// The mixer refused the request itself (4xx): the caller's fault, not the mixer's
    /// — except 401, the mixer refusing the gateway's own credentials.
    pub fn refused_request(&self) -> bool {
        matches!(self, PeerError::Refused { status, .. }
            if (400..=499).contains(status) && *status != 401)
    }

    /// The mixer does not know what was named (404).
    pub fn not_found(&self) -> bool {
        matches!(self, PeerError::Refused { status: 404, .. })
    }
}

/// A request to a peer mixer's API, typed; the server's peer client encodes it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerRequest {
    /// The mixer's base URL.
    pub mixer: String,
    pub call: PeerCall,
}

/// What is asked of a mixer.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerCall {
    /// Its free participant slots.
    Status,
    /// Create conference `id` (input timing, so mixers mix identically).
    CreateConference {
        id: String,
        spec: NewConference,
    },
    DeleteConference {
        id: String,
    },
    /// Add a participant to conference `conf`; its `remote` is the gateway's address.
    AddParticipant {
        conf: String,
        spec: NewParticipant,
    },
    PatchParticipant {
        conf: String,
        part: String,
        patch: ParticipantPatch,
    },
    DeleteParticipant {
        conf: String,
        part: String,
    },
    /// The participant's stream continues another's (handover `instruct` mode).
    SetRtpBasis {
        conf: String,
        part: String,
        basis: RtpBasis,
    },
    PlayPrompt {
        conf: String,
        prompt: String,
        participant: Option<String>,
    },
    Adopt {
        conf: String,
        owner: String,
    },
    Heartbeat {
        cm: String,
        interval_ms: u64,
    },
}

/// A mixer's answer, as far as the gateway needs it.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerAnswer {
    /// `Status`: free participant slots.
    Free(u64),
    /// `CreateConference`, `Adopt`: whether the mixer shows the conference orphaned.
    Conference { orphaned: bool },
    /// `AddParticipant`: the participant on the mixer.
    Participant(MixerParticipant),
    /// `Heartbeat`: the lease on the mixer.
    Lease(crate::leases::CallManagerStatus),
    /// Anything else that succeeded.
    Done,
}

/// A participant as a mixer created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixerParticipant {
    /// Its id on the mixer.
    pub id: String,
    /// The mixer's RTP address for it.
    pub local: SocketAddrV4,
    /// The SSRC of the stream the mixer sends it.
    pub ssrc: u32,
}

/// What a peer request came to.
pub type PeerResult = Result<PeerAnswer, PeerError>;

/// Names a peer request the core queued, so its answer finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerRequestId(pub u64);
