//! Peer mixers (gateway role): how a call to another appliance's API failed, as the
//! core sees it. The server's peer client makes the calls and reports these.

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
    /// The mixer refused the request itself (4xx): the caller's fault, not the mixer's.
    pub fn refused_request(&self) -> bool {
        matches!(
            self,
            PeerError::Refused {
                status: 400..=499,
                ..
            }
        )
    }

    /// The mixer does not know what was named (404).
    pub fn not_found(&self) -> bool {
        matches!(self, PeerError::Refused { status: 404, .. })
    }
}
