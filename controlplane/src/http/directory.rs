//! Provisioning under `/v1/directory/conferences`: conference codes and their profiles,
//! created, read, replaced and deleted through the store's queue ([`crate::store`]).
//! Values are validated by the core ([`Entry::from_spec`]) before they reach the store.

use super::error::HttpError;
use super::extract::{JsonBody, PathParams};
use crate::store::queue::{Op, StoreQueue};
use crate::store::StoreError;
use crate::ControlState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tutti_control_core::directory::{Code, Entry, EntrySpec};

/// Entries a listing returns when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Most entries one listing returns.
pub const MAX_LIMIT: usize = 1000;

fn queue(s: &ControlState) -> Result<&StoreQueue, HttpError> {
    s.store.as_ref().ok_or(HttpError::Store(StoreError::Closed))
}

fn spec(body: Map<String, Value>) -> Result<EntrySpec, HttpError> {
    serde_json::from_value(Value::Object(body)).map_err(|e| HttpError::Rejected {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid entry: {e}"),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/directory/conferences?after=&limit=`: entries in code order, a page at a
/// time (`next` is the `after` of the next page, absent on the last).
pub(crate) async fn list(
    State(s): State<ControlState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, HttpError> {
    let Query(params) = params.map_err(|r| HttpError::Rejected {
        status: StatusCode::BAD_REQUEST,
        message: r.body_text(),
    })?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(HttpError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: format!("limit: use 1 to {MAX_LIMIT}"),
        });
    }
    let after = params.after.as_deref().map(Code::parse).transpose()?;
    let entries = queue(&s)?
        .run(Op::List, move |st| st.entries(after.as_ref(), limit))
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.code.to_string()))
        .flatten();
    let mut page = json!({ "entries": entries });
    if let Some(next) = next {
        page["next"] = next.into();
    }
    Ok(Json(page))
}

/// `POST /v1/directory/conferences` `{code, ...profile}`: 201, or 409 if the code exists.
pub(crate) async fn create(
    State(s): State<ControlState>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<Entry>), HttpError> {
    let code = match body.remove("code") {
        Some(Value::String(c)) => c,
        Some(other) => {
            return Err(HttpError::Rejected {
                status: StatusCode::BAD_REQUEST,
                message: format!("code: expected a string of digits, got {other}"),
            })
        }
        None => {
            return Err(HttpError::Rejected {
                status: StatusCode::BAD_REQUEST,
                message: "missing field `code`".into(),
            })
        }
    };
    let entry = Entry::from_spec(&code, spec(body)?)?;
    let stored = entry.clone();
    if queue(&s)?
        .run(Op::Insert, move |st| st.insert_entry(&stored))
        .await?
    {
        Ok((StatusCode::CREATED, Json(entry)))
    } else {
        Err(HttpError::Rejected {
            status: StatusCode::CONFLICT,
            message: format!("conference code {code} exists already (PUT replaces it)"),
        })
    }
}

fn no_entry(code: &Code) -> HttpError {
    HttpError::Rejected {
        status: StatusCode::NOT_FOUND,
        message: format!("no conference code {code}"),
    }
}

/// `GET /v1/directory/conferences/{code}`.
pub(crate) async fn get(
    State(s): State<ControlState>,
    PathParams(code): PathParams<String>,
) -> Result<Json<Entry>, HttpError> {
    let code = Code::parse(&code)?;
    let key = code.clone();
    queue(&s)?
        .run(Op::Get, move |st| st.entry(&key))
        .await?
        .map(Json)
        .ok_or_else(|| no_entry(&code))
}

/// `PUT /v1/directory/conferences/{code}` `{...profile}`: 201 created, 200 replaced.
pub(crate) async fn put(
    State(s): State<ControlState>,
    PathParams(code): PathParams<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<Entry>), HttpError> {
    let entry = Entry::from_spec(&code, spec(body)?)?;
    let stored = entry.clone();
    let created = queue(&s)?
        .run(Op::Put, move |st| st.put_entry(&stored))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)))
}

/// `DELETE /v1/directory/conferences/{code}`.
pub(crate) async fn delete(
    State(s): State<ControlState>,
    PathParams(code): PathParams<String>,
) -> Result<StatusCode, HttpError> {
    let code = Code::parse(&code)?;
    let key = code.clone();
    if queue(&s)?
        .run(Op::Delete, move |st| st.delete_entry(&key))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_entry(&code))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{harness, json, media_core, send};
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    const URI: &str = "/v1/directory/conferences";

    #[tokio::test(flavor = "current_thread")]
    async fn codes_are_created_read_replaced_listed_and_deleted() {
        let h = harness(vec![media_core(10)]);
        let s = &h.state;
        let body = r#"{"code": "4711", "pin": "1234", "moderator_pin": "9876",
                       "wait_for_moderator": true}"#;
        let (code, e) = json(s, Method::POST, URI, Some(body)).await;
        assert_eq!(code, StatusCode::CREATED, "{e}");
        assert_eq!(
            (&e["code"], &e["conference"]),
            (&json!("4711"), &json!("4711"))
        );
        assert_eq!(e["keys"]["0"], "mute_toggle");
        let (code, err) = json(s, Method::POST, URI, Some(body)).await;
        assert_eq!(code, StatusCode::CONFLICT, "{err}");
        let one = format!("{URI}/4711");
        let (code, got) = json(s, Method::GET, &one, None).await;
        assert_eq!((code, &got), (StatusCode::OK, &e));
        let (code, put) = json(s, Method::PUT, &one, Some(r#"{"conference": "ops"}"#)).await;
        assert_eq!((code, &put["conference"]), (StatusCode::OK, &json!("ops")));
        assert!(
            put.get("pin").is_none(),
            "PUT replaces the whole entry: {put}"
        );
        let (code, _) = json(s, Method::PUT, &format!("{URI}/12"), Some("{}")).await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, list) = json(s, Method::GET, &format!("{URI}?limit=1"), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            (&list["entries"][0]["code"], &list["next"]),
            (&json!("12"), &json!("12"))
        );
        let (_, rest) = json(s, Method::GET, &format!("{URI}?limit=1&after=12"), None).await;
        assert_eq!(rest["entries"][0]["code"], "4711");
        let (_, all) = json(s, Method::GET, URI, None).await;
        assert_eq!(all["entries"].as_array().unwrap().len(), 2);
        assert!(all.get("next").is_none());
        assert_eq!(
            send(s, Method::DELETE, &one, None).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            json(s, Method::GET, &one, None).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            json(s, Method::DELETE, &one, None).await.0,
            StatusCode::NOT_FOUND
        );
        let (_, metrics) = send(s, Method::GET, "/metrics", None).await;
        for line in [
            r#"tutti_store_requests_total{op="insert",result="ok"} 2"#,
            r#"tutti_store_requests_total{op="delete",result="ok"} 2"#,
            "tutti_store_queue_depth 0",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bad_entries_are_400_with_the_reason_and_change_nothing() {
        let h = harness(vec![media_core(10)]);
        let s = &h.state;
        let cases = [
            (Method::POST, URI.to_string(), r#"{"pin": "1"}"#, "code"),
            (Method::POST, URI.to_string(), r#"{"code": 12}"#, "code"),
            (
                Method::POST,
                URI.to_string(),
                r#"{"code": "12a"}"#,
                "invalid conference code",
            ),
            (
                Method::POST,
                URI.to_string(),
                r#"{"code": "1", "pin": "x"}"#,
                "pin",
            ),
            (
                Method::POST,
                URI.to_string(),
                r#"{"code": "1", "colour": "red"}"#,
                "colour",
            ),
            (
                Method::PUT,
                format!("{URI}/1"),
                r#"{"wait_for_moderator": true}"#,
                "moderator_pin",
            ),
            (
                Method::PUT,
                format!("{URI}/1"),
                r#"{"keys": {"0": "mute_all_toggle"}}"#,
                "moderators",
            ),
            (
                Method::PUT,
                format!("{URI}/1"),
                r#"{"max_participants": null, "x": 1}"#,
                "x",
            ),
            (
                Method::PUT,
                format!("{URI}/x1"),
                "{}",
                "invalid conference code",
            ),
            (Method::GET, format!("{URI}?limit=0"), "", "limit"),
            (Method::GET, format!("{URI}?limit=5000"), "", "limit"),
            (
                Method::GET,
                format!("{URI}?after=abc"),
                "",
                "invalid conference code",
            ),
            (Method::GET, format!("{URI}?colour=red"), "", "colour"),
        ];
        for (method, uri, body, why) in cases {
            let body = (!body.is_empty()).then_some(body);
            let (code, err) = json(s, method.clone(), &uri, body).await;
            assert_eq!(
                code,
                StatusCode::BAD_REQUEST,
                "{method} {uri} {body:?}: {err}"
            );
            let msg = err["error"].as_str().unwrap();
            assert!(msg.contains(why), "{method} {uri} {body:?}: {msg}");
        }
        let (_, all) = json(s, Method::GET, URI, None).await;
        assert_eq!(all["entries"], json!([]));
    }
}
