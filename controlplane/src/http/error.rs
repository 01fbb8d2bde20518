//! How the HTTP API answers errors: every failure is a JSON `{"error": ...}` with a
//! 4xx/5xx status. [`HttpError`] is either the core's [`ControlError`] — mapped to a
//! status here, exactly once — or a request axum could not take apart.

use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tutti_control_core::directory::DirectoryError;
use tutti_control_core::error::ControlError;
use tutti_control_core::leases::LeaseError;
use tutti_control_core::media::MediaError;
use tutti_control_core::sessions::SessionError;

/// A JSON error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The control core refused or failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A provisioning value the core refused (400).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The provisioning store failed, is busy or did not answer in time.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// axum refused the request body or path (400, 413 or 415).
    #[error("{message}")]
    Rejected {
        /// The status to answer with.
        status: StatusCode,
        /// axum's explanation.
        message: String,
    },
}

/// The status the API answers a core error with.
pub fn status_of(e: &ControlError) -> StatusCode {
    match e {
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        ControlError::UnknownPrompt { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::Gone | ControlError::NotAGateway => StatusCode::NOT_FOUND,
        ControlError::NotInputTimed(_)
        | ControlError::NoLease(_)
        | ControlError::Orphaned(_)
        | ControlError::Draining(_)
        | ControlError::AllDraining(_)
        | ControlError::HandingOver { .. }
        | ControlError::Moved { .. } => StatusCode::CONFLICT,
        ControlError::NoRelayPorts | ControlError::NoMixer(_) => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::PeersFailed { .. } => StatusCode::BAD_GATEWAY,
        // A mixer's refusal of a request keeps its status when it is the client's
        // fault (4xx); everything else is a bad gateway.
        ControlError::Peer(p) => match p {
            tutti_control_core::peer::PeerError::Refused { status, .. } if p.refused_request() => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            _ => StatusCode::BAD_GATEWAY,
        },
        ControlError::Session(e) => match e {
            SessionError::InvalidConferenceId(_) => StatusCode::BAD_REQUEST,
            SessionError::NoSuchConference(_) | SessionError::NoSuchParticipant { .. } => {
                StatusCode::NOT_FOUND
            }
            SessionError::DuplicateConference(_)
            | SessionError::ConferenceFull { .. }
            | SessionError::AlreadyIn { .. } => StatusCode::CONFLICT,
            SessionError::NoCapacity { .. } | SessionError::CoreFull { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        },
        ControlError::Media(MediaError::Busy(_)) => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::Media(MediaError::Rejected(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        ControlError::Lease(LeaseError::Interval(_)) => StatusCode::BAD_REQUEST,
        ControlError::Lease(LeaseError::Full) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<tutti_control_core::peer::PeerError> for HttpError {
    fn from(e: tutti_control_core::peer::PeerError) -> Self {
        HttpError::Control(e.into())
    }
}

impl From<SessionError> for HttpError {
    fn from(e: SessionError) -> Self {
        HttpError::Control(e.into())
    }
}

impl HttpError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Control(e) => status_of(e),
            HttpError::Directory(_) => StatusCode::BAD_REQUEST,
            HttpError::Store(e) => match e {
                StoreError::Busy(_) | StoreError::Closed => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                StoreError::Backend(_) | StoreError::Corrupt { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            HttpError::Rejected { status, .. } => *status,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut r = error(self.status(), self.to_string());
        if matches!(self, HttpError::Store(StoreError::Busy(_))) {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, 1.into());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_control_core::peer::PeerError;

    #[test]
    fn a_mixers_refusal_keeps_its_4xx_and_anything_else_is_502() {
        let refused = |status| {
            ControlError::Peer(PeerError::Refused {
                url: "http://m".into(),
                status,
                message: "no".into(),
            })
        };
        assert_eq!(status_of(&refused(409)), StatusCode::CONFLICT);
        assert_eq!(status_of(&refused(503)), StatusCode::BAD_GATEWAY);
        let gone = PeerError::Unreachable {
            url: "http://m".into(),
            reason: "refused".into(),
        };
        assert_eq!(status_of(&gone.into()), StatusCode::BAD_GATEWAY);
    }
}
