//! Request extractors whose rejections answer as [`HttpError`]s (JSON, with the status
//! axum chose, body problems as 400).

use super::error::HttpError;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
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

/// A JSON request body whose rejections answer as [`HttpError`]s.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
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
