//! `POST /v1/conferences/{id}/dial`: tutti calls a SIP user into a conference. The
//! participant is reserved at once (202, `dial.state` `calling`) and joins when the
//! call is answered; the SIP user agent ([`crate::sip::ua::Ua::dial`]) makes the call.

use super::conferences::participant_view;
use super::error::{error, HttpError};
use super::extract::{JsonBody, PathParams};
use crate::sip::ua::{DialError, DialRequest};
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::time::Duration;
use tutti_control_core::sip::dial::DEFAULT_TIMEOUT;
use tutti_control_core::sip::DialOffer;
use tutti_dataplane::codec::CodecKind;

/// The longest `timeout_ms` we take (10 minutes).
pub const MAX_DIAL_TIMEOUT_MS: u64 = 600_000;

/// `POST /v1/conferences/{id}/dial` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    to: String,
    from: Option<String>,
    codecs: Option<Vec<String>>,
    timeout_ms: Option<u64>,
}

impl DialBody {
    /// The request, or why it cannot be dialled (422).
    fn validate(self) -> Result<DialRequest, String> {
        let offer = match self.codecs {
            None => DialOffer {
                codecs: vec![CodecKind::Pcmu, CodecKind::Pcma],
                telephone_event: true,
            },
            Some(names) => {
                let mut offer = DialOffer {
                    codecs: Vec::new(),
                    telephone_event: false,
                };
                for n in &names {
                    match n.to_ascii_lowercase().as_str() {
                        "pcmu" if !offer.codecs.contains(&CodecKind::Pcmu) => {
                            offer.codecs.push(CodecKind::Pcmu)
                        }
                        "pcma" if !offer.codecs.contains(&CodecKind::Pcma) => {
                            offer.codecs.push(CodecKind::Pcma)
                        }
                        "telephone-event" => offer.telephone_event = true,
                        _ => {
                            return Err(format!(
                            "codecs: {n:?} is not one of PCMU, PCMA, telephone-event (each once)"
                        ))
                        }
                    }
                }
                if offer.codecs.is_empty() {
                    return Err("codecs: at least one of PCMU, PCMA is needed".into());
                }
                offer
            }
        };
        let timeout = match self.timeout_ms {
            None => DEFAULT_TIMEOUT,
            Some(ms) if (1..=MAX_DIAL_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
            Some(ms) => {
                return Err(format!(
                    "timeout_ms: {ms} is not between 1 and {MAX_DIAL_TIMEOUT_MS}"
                ))
            }
        };
        Ok(DialRequest {
            to: self.to,
            from: self.from,
            offer,
            timeout,
        })
    }
}

/// `POST /v1/conferences/{id}/dial`.
pub(crate) async fn dial(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<DialBody>,
) -> Result<Response, HttpError> {
    let req = match body.validate() {
        Ok(r) => r,
        Err(why) => return Ok(error(StatusCode::UNPROCESSABLE_ENTITY, why)),
    };
    s.control()
        .sessions()
        .conference(&id)
        .map_err(|e| HttpError::Control(tutti_control_core::ControlError::Session(e)))?;
    let Some(ua) = s.sip_ua.get().and_then(std::sync::Weak::upgrade) else {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SIP is not configured (no sip: section)",
        ));
    };
    let pid = match ua.dial(&id, req).await {
        Ok(pid) => pid,
        Err(DialError::Invalid(why)) => return Ok(error(StatusCode::UNPROCESSABLE_ENTITY, why)),
        Err(DialError::Unavailable(why)) => return Ok(error(StatusCode::SERVICE_UNAVAILABLE, why)),
        Err(DialError::Control(e)) => return Err(e.into()),
    };
    let view = participant_view(&s.control(), &id, &pid)?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}
