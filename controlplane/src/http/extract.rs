//! Request extractors whose rejections answer as [`HttpError`]s (JSON, with the status
//! axum chose, body problems as 400).

use super::error::HttpError;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

impl From<JsonRejection> for HttpError {
    /// Wrong content type stays 415 and an oversized body 413; every other problem with
    /// the body (syntax, types, missing or unknown fields) is a 400.
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            s @ (StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE) => s,
            s if s.is_server_error() => s,
            _ => StatusCode::BAD_REQUEST,
        };
        HttpError::Rejected {
            status,
            message: r.body_text(),
        }
    }
}

impl From<PathRejection> for HttpError {
    fn from(r: PathRejection) -> Self {
        HttpError::Rejected {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

/// A JSON request body, which must be an object, whose rejections answer as
/// [`HttpError`]s.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Is `content_type` JSON (`application/json` or `application/*+json`)?
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(mime) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(HttpError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "Expected request with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| HttpError::Rejected {
                status: r.status(),
                message: r.body_text(),
            })?;
        // serde would take a struct from an array of its fields too.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(HttpError::Rejected {
                status: StatusCode::BAD_REQUEST,
                message: "the request body must be a JSON object".into(),
            });
        }
        let Json(v) = Json::<T>::from_bytes(&bytes)?;
        Ok(JsonBody(v))
    }
}

/// Path parameters whose rejections answer as [`HttpError`]s.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        let Path(v) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParams(v))
    }
}
