//! Call-manager leases and adoption: `/v1/call-managers`, its heartbeats and
//! `POST /v1/conferences/{id}/adopt`.

use super::dto::{Adopt, CallManagerView, ConferenceView, Heartbeat};
use super::error::HttpError;
use super::extract::{JsonBody, PathParams};
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use tutti_control_core::leases::Renewal;
use tutti_control_core::ControlError;

/// `GET /v1/call-managers`.
pub(crate) async fn list(State(s): State<ControlState>) -> Json<serde_json::Value> {
    let all: Vec<CallManagerView> = s
        .control()
        .call_managers()
        .into_iter()
        .map(CallManagerView::from)
        .collect();
    Json(serde_json::json!({ "call_managers": all }))
}

/// `POST /v1/call-managers/{cm}/heartbeat`: create (201) or renew (200) the lease.
pub(crate) async fn heartbeat(
    State(s): State<ControlState>,
    PathParams(cm): PathParams<String>,
    JsonBody(req): JsonBody<Heartbeat>,
) -> Result<(StatusCode, Json<CallManagerView>), HttpError> {
    let (renewal, lease) = s.control().heartbeat(&cm, req.interval_ms)?;
    let status = if renewal == Renewal::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(lease.into())))
}

/// `POST /v1/conferences/{id}/adopt`.
pub(crate) async fn adopt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<Adopt>,
) -> Result<Json<ConferenceView>, HttpError> {
    let mut c = s.control();
    let key = c.adopt(&id, &req.owner)?;
    let conf = c
        .sessions()
        .conference_by_key(key)
        .ok_or(ControlError::Gone)?;
    Ok(Json(ConferenceView::new(
        conf,
        true,
        c.reclaim().is_orphaned(key),
    )))
}

#[cfg(test)]
mod tests {
    use crate::orphan::OrphanConfig;
    use crate::test_support::{get, harness, harness_with, json, media_core, Harness};
    use axum::http::{Method, StatusCode};
    use serde_json::{json, Value};
    use std::time::Duration;
    use tutti_dataplane::conference::{MediaEvent, MediaEventKind, MediaOp, PartKey};

    const MS: Duration = Duration::from_millis(1);

    async fn call(
        h: &Harness,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        json(&h.state, method, uri, body).await
    }

    /// Give call manager `cm` a lease of a minute.
    async fn lease(h: &Harness, cm: &str) {
        let uri = format!("/v1/call-managers/{cm}/heartbeat");
        let (code, v) = call(h, Method::POST, &uri, Some(r#"{"interval_ms": 60000}"#)).await;
        assert!(code.is_success(), "{v}");
    }

    async fn metric(h: &Harness, sample: &str) -> f64 {
        let (_, text) = get(&h.state, "/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
    }

    /// A conference `id` owned by `owner` (given a lease of a minute first, which the
    /// test's own heartbeats then renew) with `n` participants; their dataplane keys.
    async fn conference(h: &Harness, id: &str, owner: &str, n: u16) -> Vec<(PartKey, String)> {
        lease(h, owner).await;
        let body = json!({"id": id, "owner": owner}).to_string();
        assert_eq!(
            call(h, Method::POST, "/v1/conferences", Some(&body))
                .await
                .0,
            StatusCode::CREATED
        );
        let mut parts = Vec::new();
        for i in 0..n {
            let body = json!({"remote": format!("198.18.0.2:{}", 4000 + 2 * i), "codec": "pcmu"})
                .to_string();
            let (code, p) = call(
                h,
                Method::POST,
                &format!("/v1/conferences/{id}/participants"),
                Some(&body),
            )
            .await;
            assert_eq!(code, StatusCode::CREATED, "{p}");
            let Some((_, MediaOp::AddParticipant(spec))) = h.media.ops().last().cloned() else {
                panic!("no add")
            };
            parts.push((spec.key, p["id"].as_str().unwrap().to_string()));
        }
        parts
    }

    fn event(h: &Harness, conf: &str, part: Option<PartKey>, kind: MediaEventKind) {
        let key = h.state.control().sessions().conference(conf).unwrap().key;
        let at = h.state.clock.now();
        h.state.media_event(
            0,
            MediaEvent {
                conf: key,
                part,
                at,
                kind,
            },
        );
    }

    /// Advance the test clock by `d` in 10 ms steps, polling like the binary's pump.
    fn run(h: &Harness, d: Duration) {
        let end = h.state.clock.now() + d;
        while h.state.clock.now() < end {
            h.clock.advance(10 * MS);
            h.state.poll();
        }
    }

    fn ops_since(h: &Harness, n: usize) -> Vec<MediaOp> {
        h.media.ops()[n..].iter().map(|(_, op)| *op).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn heartbeats_create_and_renew_leases_and_bad_ones_are_refused() {
        let h = harness(vec![media_core(10)]);
        let uri = "/v1/call-managers/cm-a/heartbeat";
        let (code, v) = call(&h, Method::POST, uri, Some(r#"{"interval_ms": 300}"#)).await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
        assert_eq!(
            (
                v["id"].as_str(),
                v["up"].as_bool(),
                v["expires_in_ms"].as_u64()
            ),
            (Some("cm-a"), Some(true), Some(900))
        );
        h.clock.advance(100 * MS);
        let (code, v) = call(&h, Method::POST, uri, Some(r#"{"interval_ms": 1000}"#)).await;
        assert_eq!(
            (code, v["interval_ms"].as_u64()),
            (StatusCode::OK, Some(1000))
        );
        let (code, list) = call(&h, Method::GET, "/v1/call-managers", None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            list["call_managers"].as_array().map(Vec::len),
            Some(1),
            "{list}"
        );
        assert_eq!(list["call_managers"][0]["lease_misses"], 3);
        assert_eq!(
            metric(&h, r#"tutti_call_manager_lease_up{cm="cm-a"}"#).await,
            1.0
        );
        let long = format!("/v1/call-managers/{}/heartbeat", "x".repeat(200));
        for (uri, body, want) in [
            (uri, "{}", StatusCode::BAD_REQUEST),
            (uri, r#"{"interval_ms": 5}"#, StatusCode::BAD_REQUEST),
            (uri, r#"{"interval_ms": 3600001}"#, StatusCode::BAD_REQUEST),
            (uri, r#"{"interval_ms": -1}"#, StatusCode::BAD_REQUEST),
            (uri, r#"{"interval_ms": "300"}"#, StatusCode::BAD_REQUEST),
            (
                uri,
                r#"{"interval_ms": 300, "x": 1}"#,
                StatusCode::BAD_REQUEST,
            ),
            (uri, "[", StatusCode::BAD_REQUEST),
            (
                long.as_str(),
                r#"{"interval_ms": 300}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/call-managers/a%01b/heartbeat",
                r#"{"interval_ms": 300}"#,
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (code, err) = call(&h, Method::POST, uri, Some(body)).await;
            assert_eq!(code, want, "{uri} {body}: {err}");
            assert!(
                err["error"].as_str().is_some_and(|m| !m.is_empty()),
                "{err}"
            );
        }
        let (_, list) = call(&h, Method::GET, "/v1/call-managers", None).await;
        assert_eq!(
            list["call_managers"].as_array().map(Vec::len),
            Some(1),
            "{list}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lapsed_lease_orphans_its_conferences_until_the_next_heartbeat() {
        let h = harness(vec![media_core(10)]);
        conference(&h, "a", "cm1", 2).await;
        conference(&h, "b", "cm2", 2).await;
        let hb = |ms: u32| json!({"interval_ms": ms}).to_string();
        call(
            &h,
            Method::POST,
            "/v1/call-managers/cm1/heartbeat",
            Some(&hb(300)),
        )
        .await;
        run(&h, 890 * MS);
        let (_, a) = call(&h, Method::GET, "/v1/conferences/a", None).await;
        assert_eq!(a["orphaned"], false, "not yet: {a}");
        run(&h, 20 * MS);
        let (_, a) = call(&h, Method::GET, "/v1/conferences/a", None).await;
        assert_eq!(a["orphaned"], true, "{a}");
        let (_, b) = call(&h, Method::GET, "/v1/conferences/b", None).await;
        assert_eq!(b["orphaned"], false, "its lease runs: {b}");
        assert_eq!(metric(&h, "tutti_orphaned_conferences").await, 1.0);
        assert_eq!(
            metric(&h, r#"tutti_call_manager_lease_up{cm="cm1"}"#).await,
            0.0
        );
        let (_, list) = call(&h, Method::GET, "/v1/call-managers", None).await;
        assert_eq!(
            list["call_managers"][0]["orphaned_conferences"], 1,
            "{list}"
        );
        assert_eq!(list["call_managers"][0]["expires_in_ms"], 0);
        // No conference is created for the lapsed call manager (it would be reclaimed
        // at once).
        let body = r#"{"id": "late", "owner": "cm1"}"#;
        let (code, late) = call(&h, Method::POST, "/v1/conferences", Some(body)).await;
        assert_eq!(code, StatusCode::CONFLICT, "{late}");
        assert!(late["error"].as_str().unwrap().contains("heartbeat first"));
        // The call manager is back: the procedure ends.
        let (code, _) = call(
            &h,
            Method::POST,
            "/v1/call-managers/cm1/heartbeat",
            Some(&hb(300)),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let (_, a) = call(&h, Method::GET, "/v1/conferences/a", None).await;
        assert_eq!(a["orphaned"], false);
        assert_eq!(metric(&h, "tutti_orphaned_conferences").await, 0.0);
        let (_, list) = call(&h, Method::GET, "/v1/conferences", None).await;
        assert!(
            list["conferences"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["orphaned"] == false),
            "{list}"
        );
    }

    fn short() -> OrphanConfig {
        OrphanConfig {
            lease_misses: 3,
            no_packet: Duration::from_secs(3),
            single_talker: Duration::from_secs(60),
            multi_talker: Duration::from_secs(30),
            rtcp_timeout: Duration::from_secs(4),
            rtp_timeout: Duration::from_secs(2),
            reply_window: Duration::from_secs(2),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reclamation_deletes_the_dead_says_goodbye_and_frees_everything() {
        let h = harness_with(
            vec![media_core(10)],
            short(),
            &["stay", "goodbye", "disconnect"],
        );
        let (_, before) = call(&h, Method::GET, "/v1/status", None).await;
        let parts = conference(&h, "c", "cm1", 3).await;
        for (k, _) in &parts {
            event(&h, "c", Some(*k), MediaEventKind::Active);
            event(&h, "c", Some(*k), MediaEventKind::TalkStart);
        }
        // Participant 0 is on remote hold; 2 stops sending.
        let hold = format!("/v1/conferences/c/participants/{}", parts[0].1);
        let (code, _) = call(&h, Method::PATCH, &hold, Some(r#"{"hold": true}"#)).await;
        assert_eq!(code, StatusCode::OK);
        call(
            &h,
            Method::POST,
            "/v1/call-managers/cm1/heartbeat",
            Some(r#"{"interval_ms": 100}"#),
        )
        .await;
        let n = h.media.ops().len();
        run(&h, 300 * MS);
        let conf = h.state.control().sessions().conference("c").unwrap().key;
        assert_eq!(
            ops_since(&h, n),
            vec![MediaOp::RemoveParticipant {
                conf,
                part: parts[0].0
            }],
            "hold first"
        );
        event(
            &h,
            "c",
            Some(parts[2].0),
            MediaEventKind::Quiet { sid_before: false },
        );
        let n = h.media.ops().len();
        run(&h, 2 * 1000 * MS);
        let disconnect = h.media.prompts.id("disconnect").unwrap();
        match ops_since(&h, n).as_slice() {
            [MediaOp::PlayPrompt(p)] => {
                assert_eq!((p.part, p.prompt), (Some(parts[2].0), disconnect))
            }
            other => panic!("{other:?}"),
        }
        // The prompt plays; the participant goes when it is done.
        run(&h, 20 * MS);
        assert_eq!(ops_since(&h, n).len(), 1, "waits for the prompt");
        event(
            &h,
            "c",
            Some(parts[2].0),
            MediaEventKind::PromptDone {
                prompt: disconnect,
                completed: true,
            },
        );
        run(&h, 10 * MS);
        let goodbye = h.media.prompts.id("goodbye").unwrap();
        match ops_since(&h, n + 1).as_slice() {
            [MediaOp::RemoveParticipant { part, .. }, MediaOp::PlayPrompt(p)] => {
                assert_eq!(*part, parts[2].0);
                assert_eq!(
                    (p.part, p.prompt),
                    (Some(parts[1].0), goodbye),
                    "one left: goodbye"
                );
            }
            other => panic!("{other:?}"),
        }
        event(
            &h,
            "c",
            Some(parts[1].0),
            MediaEventKind::PromptDone {
                prompt: goodbye,
                completed: true,
            },
        );
        run(&h, 10 * MS);
        assert!(
            matches!(ops_since(&h, n + 3).as_slice(), [MediaOp::RemoveParticipant { .. }, MediaOp::DeleteConference(k)] if *k == conf)
        );
        assert_eq!(
            call(&h, Method::GET, "/v1/conferences/c", None).await.0,
            StatusCode::NOT_FOUND
        );
        let (_, after) = call(&h, Method::GET, "/v1/status", None).await;
        assert_eq!(
            (&after["capacity"], &after["conferences"]),
            (&before["capacity"], &before["conferences"])
        );
        for (sample, want) in [
            (
                r#"tutti_reclaimed_conferences_total{reason="last_participant"}"#,
                1.0,
            ),
            (
                r#"tutti_reclaimed_conferences_total{reason="no_reply"}"#,
                0.0,
            ),
            (
                r#"tutti_deleted_participants_total{reason="remote_hold"}"#,
                1.0,
            ),
            (
                r#"tutti_deleted_participants_total{reason="rtp_timeout"}"#,
                1.0,
            ),
            (
                r#"tutti_deleted_participants_total{reason="last_participant"}"#,
                1.0,
            ),
            ("tutti_orphaned_conferences", 0.0),
            (r#"tutti_participants{core="3"}"#, 0.0),
        ] {
            assert_eq!(metric(&h, sample).await, want, "{sample}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_backup_call_manager_adopts_and_the_procedure_stops() {
        let h = harness_with(
            vec![media_core(10)],
            short(),
            &["stay", "goodbye", "disconnect"],
        );
        let parts = conference(&h, "c", "cm1", 2).await;
        for (k, _) in &parts {
            event(&h, "c", Some(*k), MediaEventKind::Active);
        }
        call(
            &h,
            Method::POST,
            "/v1/call-managers/cm1/heartbeat",
            Some(r#"{"interval_ms": 100}"#),
        )
        .await;
        run(&h, 3500 * MS);
        assert!(
            h.media
                .ops()
                .iter()
                .any(|(_, op)| matches!(op, MediaOp::PlayPrompt(_))),
            "asked to stay"
        );
        let adopt = |owner: &str| json!({ "owner": owner }).to_string();
        let (code, e) = call(
            &h,
            Method::POST,
            "/v1/conferences/c/adopt",
            Some(&adopt("backup")),
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "a backup without a lease: {e}");
        assert!(
            e["error"].as_str().unwrap().contains("heartbeat first"),
            "{e}"
        );
        lease(&h, "backup").await;
        let (code, c) = call(
            &h,
            Method::POST,
            "/v1/conferences/c/adopt",
            Some(&adopt("backup")),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{c}");
        assert_eq!(
            (c["owner"].as_str(), c["orphaned"].as_bool()),
            (Some("backup"), Some(false))
        );
        let n = h.media.ops().len();
        run(&h, Duration::from_secs(30));
        assert_eq!(ops_since(&h, n), vec![], "nothing after the adoption");
        assert_eq!(c["participants"].as_array().map(Vec::len), Some(2));
        for (uri, body, want) in [
            (
                "/v1/conferences/nope/adopt",
                r#"{"owner": "b"}"#,
                StatusCode::NOT_FOUND,
            ),
            (
                "/v1/conferences/c/adopt",
                r#"{"owner": ""}"#,
                StatusCode::BAD_REQUEST,
            ),
            ("/v1/conferences/c/adopt", "{}", StatusCode::BAD_REQUEST),
            (
                "/v1/conferences/c/adopt",
                r#"{"owner": 7}"#,
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (code, err) = call(&h, Method::POST, uri, Some(body)).await;
            assert_eq!(code, want, "{uri} {body}: {err}");
            assert!(err["error"].is_string());
        }
        // Not by a call manager whose own lease lapsed.
        let (code, e) = call(
            &h,
            Method::POST,
            "/v1/conferences/c/adopt",
            Some(&adopt("cm1")),
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "{e}");
        assert!(
            e["error"].as_str().unwrap().contains("no live lease"),
            "{e}"
        );
        let (_, c) = call(&h, Method::GET, "/v1/conferences/c", None).await;
        assert_eq!(c["owner"], "backup", "{c}");
    }
}
