//! Bearer-token access to an API (`control.token`, `gateway.token`): with a token set,
//! every request but `/healthz` (and `/metrics` when it is public) must carry
//! `Authorization: Bearer <token>`; otherwise it is answered 401 with a
//! `WWW-Authenticate` challenge (RFC 6750) and the usual JSON error body. The token is
//! compared in constant time.

use super::error::error;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The realm named in challenges.
const REALM: &str = "tutti";

/// Who may use an API.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The bearer token every request needs; `None`: the API is open.
    token: Option<Arc<[u8]>>,
    /// `/metrics` needs no token.
    metrics_public: bool,
}

impl Access {
    /// An API anyone who can reach it may use.
    pub fn open() -> Access {
        Access::default()
    }

    /// An API that needs `token`, except on `/healthz` (and on `/metrics` if
    /// `metrics_public`).
    pub fn bearer(token: &str, metrics_public: bool) -> Access {
        Access {
            token: Some(token.as_bytes().into()),
            metrics_public,
        }
    }

    /// Does the API need a token?
    pub fn is_protected(&self) -> bool {
        self.token.is_some()
    }

    fn exempt(&self, path: &str) -> bool {
        path == "/healthz" || (self.metrics_public && path == "/metrics")
    }
}

/// `a == b` in time that depends only on the lengths, not on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive).
fn bearer_token(value: &HeaderValue) -> Option<&[u8]> {
    let v = value.as_bytes();
    let scheme = v.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| v[7..].trim_ascii())
}

fn unauthorized(challenge: String, message: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, message);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The middleware: pass the request on, or answer 401.
pub async fn require_token(State(access): State<Access>, req: Request, next: Next) -> Response {
    let Some(token) = access.token.as_deref() else {
        return next.run(req).await;
    };
    if access.exempt(req.uri().path()) {
        return next.run(req).await;
    }
    match req.headers().get(header::AUTHORIZATION).map(bearer_token) {
        None => unauthorized(
            format!("Bearer realm=\"{REALM}\""),
            "authentication required: send Authorization: Bearer <token>",
        ),
        Some(Some(given)) if constant_time_eq(given, token) => next.run(req).await,
        Some(_) => unauthorized(
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
            "invalid bearer token",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{harness, media_core};
    use axum::body::Body;
    use axum::http::Method;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_others_are_not_bearer() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer_token(&v("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&v("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&v("Basic YTpi")), None);
        assert_eq!(bearer_token(&v("Bear")), None);
    }

    /// Status, `WWW-Authenticate` and JSON body of `method uri` with `authorization`.
    async fn ask(
        router: axum::Router,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = router
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let challenge = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string());
        let code = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (code, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_token_guards_every_route_but_healthz() {
        let h = harness(vec![media_core(10)]);
        let r = super::super::router(h.state.clone(), Access::bearer("s3cret", false));
        for uri in [
            "/v1/status",
            "/v1/conferences",
            "/metrics",
            "/openapi.json",
            "/v1/events",
            "/v1/no-such-route",
        ] {
            let (code, challenge, body) = ask(r.clone(), Method::GET, uri, None).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri}");
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"tutti\""),
                "{uri}"
            );
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].as_str().unwrap().contains("Bearer"), "{body}");
            for wrong in [
                "Bearer s3cre",
                "Bearer s3cretx",
                "Basic czNjcmV0",
                "Bearer ",
            ] {
                let (code, challenge, _) = ask(r.clone(), Method::GET, uri, Some(wrong)).await;
                assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri} {wrong}");
                assert_eq!(
                    challenge.as_deref(),
                    Some("Bearer realm=\"tutti\", error=\"invalid_token\"")
                );
            }
        }
        let (code, _, _) = ask(r.clone(), Method::GET, "/healthz", None).await;
        assert_eq!(code, StatusCode::OK);
        for uri in ["/v1/status", "/v1/conferences", "/metrics", "/openapi.json"] {
            let (code, challenge, _) =
                ask(r.clone(), Method::GET, uri, Some("Bearer s3cret")).await;
            assert_eq!((code, challenge), (StatusCode::OK, None), "{uri}");
        }
        let (code, _, _) = ask(r.clone(), Method::GET, "/v1/nope", Some("Bearer s3cret")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        // Refused requests are counted like any other.
        let (_, _, text) = ask(r, Method::GET, "/metrics", Some("bearer s3cret")).await;
        assert!(
            text.contains(
                r#"tutti_api_requests_total{method="GET",route="/v1/status",status="401"} 5"#
            ),
            "{text}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn metrics_may_be_public_and_no_token_means_open() {
        let h = harness(vec![media_core(10)]);
        let r = super::super::router(h.state.clone(), Access::bearer("s3cret", true));
        assert_eq!(
            ask(r.clone(), Method::GET, "/metrics", None).await.0,
            StatusCode::OK
        );
        let (code, _, _) = ask(r, Method::GET, "/openapi.json", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let open = super::super::router(h.state.clone(), Access::open());
        for uri in ["/metrics", "/v1/status", "/openapi.json"] {
            assert_eq!(
                ask(open.clone(), Method::GET, uri, None).await.0,
                StatusCode::OK
            );
        }
    }
}
