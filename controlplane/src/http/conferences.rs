//! The conference REST API under `/v1/conferences`: parse the request, call the control
//! core, answer with its view.

use super::dto::{
    AddParticipant, ConferenceView, CreateConference, MoveParticipant, ParticipantView,
    PatchParticipant, PlayPrompt, PutRtpBasis,
};
use super::error::HttpError;
use super::extract::{JsonBody, PathParams};
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use tutti_control_core::sessions::SessionError;
use tutti_control_core::{Control, ControlError};

/// The view of conference `id` with its participants.
fn conference_view(c: &Control, id: &str) -> Result<ConferenceView, ControlError> {
    let conf = c.sessions().conference(id)?;
    Ok(ConferenceView::new(
        conf,
        true,
        c.reclaim().is_orphaned(conf.key),
    ))
}

/// The view of participant `pid` of conference `id` (or of its failed dial-out).
pub(super) fn participant_view(
    c: &Control,
    id: &str,
    pid: &str,
) -> Result<ParticipantView, ControlError> {
    Ok(ParticipantView::new(id, c.participant_or_failed(id, pid)?))
}

/// `GET /v1/conferences`.
pub(crate) async fn list(State(s): State<ControlState>) -> Json<Value> {
    let c = s.control();
    let all: Vec<_> = c
        .sessions()
        .conferences()
        .map(|conf| ConferenceView::new(conf, false, c.reclaim().is_orphaned(conf.key)))
        .collect();
    Json(serde_json::json!({ "conferences": all }))
}

/// `POST /v1/conferences`.
pub(crate) async fn create(
    State(s): State<ControlState>,
    JsonBody(req): JsonBody<CreateConference>,
) -> Result<(StatusCode, Json<ConferenceView>), HttpError> {
    let new = req.validate()?;
    let mut c = s.control();
    let key = c.create_conference(new)?;
    let conf = c
        .sessions()
        .conference_by_key(key)
        .ok_or(ControlError::Gone)?;
    let view = ConferenceView::new(conf, true, c.reclaim().is_orphaned(key));
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/conferences/{id}`.
pub(crate) async fn get(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConferenceView>, HttpError> {
    Ok(Json(conference_view(&s.control(), &id)?))
}

/// `DELETE /v1/conferences/{id}`.
pub(crate) async fn delete(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, HttpError> {
    s.control().delete_conference(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/conferences/{id}/participants`.
pub(crate) async fn list_participants(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, HttpError> {
    let c = s.control();
    let all: Vec<_> = c
        .sessions()
        .conference(&id)?
        .participants()
        .map(|p| ParticipantView::new(&id, p))
        .collect();
    Ok(Json(serde_json::json!({ "participants": all })))
}

/// `POST /v1/conferences/{id}/participants`.
pub(crate) async fn add_participant(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<AddParticipant>,
) -> Result<(StatusCode, Json<ParticipantView>), HttpError> {
    let new = req.validate()?;
    let mut c = s.control();
    let key = c.add_participant(&id, new)?;
    let p = c
        .sessions()
        .conference(&id)?
        .participants()
        .find(|p| p.key == key)
        .ok_or(ControlError::Gone)?;
    Ok((StatusCode::CREATED, Json(ParticipantView::new(&id, p))))
}

/// `GET /v1/conferences/{id}/participants/{pid}`.
pub(crate) async fn get_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<Json<ParticipantView>, HttpError> {
    Ok(Json(participant_view(&s.control(), &id, &pid)?))
}

/// `PATCH /v1/conferences/{id}/participants/{pid}`.
pub(crate) async fn patch_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(req): JsonBody<PatchParticipant>,
) -> Result<Json<ParticipantView>, HttpError> {
    let patch = req.validate()?;
    let mut c = s.control();
    c.patch_participant(&id, &pid, patch)?;
    Ok(Json(participant_view(&c, &id, &pid)?))
}

/// `PUT /v1/conferences/{id}/participants/{pid}/rtp`: the participant's stream goes on
/// with another SSRC, sequence number and timestamp (for a mixer that takes a conference
/// over from another); 409 unless the conference has input timing.
pub(crate) async fn set_rtp_basis(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(req): JsonBody<PutRtpBasis>,
) -> Result<Json<ParticipantView>, HttpError> {
    let mut c = s.control();
    c.set_rtp_basis(&id, &pid, req.basis())?;
    Ok(Json(participant_view(&c, &id, &pid)?))
}

/// `POST /v1/conferences/{id}/participants/{pid}/move`: the participant, as it is
/// now in the conference it moved to.
pub(crate) async fn move_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(req): JsonBody<MoveParticipant>,
) -> Result<Json<ParticipantView>, HttpError> {
    let mut c = s.control();
    // A conference the body names and that does not exist is 422: 404 is for the
    // conference and participant in the path.
    c.sessions().participant(&id, &pid)?;
    c.move_participant(&id, &pid, &req.conference)
        .map_err(|e| match e {
            ControlError::Session(SessionError::NoSuchConference(ref to))
                if *to == req.conference =>
            {
                HttpError::Rejected {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    message: e.to_string(),
                }
            }
            e => e.into(),
        })?;
    Ok(Json(participant_view(&c, &req.conference, &pid)?))
}

/// `DELETE /v1/conferences/{id}/participants/{pid}`.
pub(crate) async fn delete_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<StatusCode, HttpError> {
    s.control().delete_participant(&id, &pid)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/conferences/{id}/prompts`.
pub(crate) async fn play_prompt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<PlayPrompt>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    // A participant the body names and that does not exist is 422 (as an unknown
    // prompt is): 404 is for the conference in the path.
    s.control()
        .play_prompt(&id, req.participant.as_deref(), &req.prompt)
        .map_err(|e| match e {
            ControlError::Session(SessionError::NoSuchParticipant { .. }) => HttpError::Rejected {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: e.to_string(),
            },
            e => e.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "conference": id,
            "participant": req.participant,
            "prompt": req.prompt,
        })),
    ))
}

#[cfg(test)]
mod tests {
    use crate::media::MediaCore;
    use crate::test_support::{harness, json, media_core, send, Harness};
    use axum::http::{Method, StatusCode};
    use serde_json::{json, Value};
    use tutti_dataplane::codec::CodecKind;
    use tutti_dataplane::conference::{MediaOp, ParticipantSettings, RtpBasis, Timing};
    use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};

    async fn post(h: &Harness, uri: &str, body: &str) -> (StatusCode, Value) {
        json(&h.state, Method::POST, uri, Some(body)).await
    }

    async fn get(h: &Harness, uri: &str) -> (StatusCode, Value) {
        json(&h.state, Method::GET, uri, None).await
    }

    async fn delete(h: &Harness, uri: &str) -> StatusCode {
        let (code, body) = send(&h.state, Method::DELETE, uri, None).await;
        if code == StatusCode::NO_CONTENT {
            assert_eq!(body, "");
        }
        code
    }

    async fn capacity(h: &Harness) -> Value {
        let (_, status) = get(h, "/v1/status").await;
        json!([status["capacity"], status["conferences"]])
    }

    const ALICE: &str = r#"{"remote": "198.18.0.2:4000", "codec": "pcmu"}"#;
    const BASIS: &str =
        r#"{"ssrc": 4000000000, "frame_timestamp": 4294967200, "sequence": 65535, "timestamp": 7}"#;

    /// The timing of the conference the last `CreateConference` created.
    fn created_timing(h: &Harness) -> (Timing, ActiveSpeakers) {
        match h.media.ops().last() {
            Some((_, MediaOp::CreateConference(spec))) => (spec.timing, spec.active_speakers),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn conferences_with_input_timing() {
        let h = harness(vec![media_core(10)]);
        let (code, c) = post(&h, "/v1/conferences", r#"{"id": "a"}"#).await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(c["timing"], "arrival");
        assert!(c.get("input_delay_ms").is_none(), "{c}");
        assert_eq!(created_timing(&h).0, Timing::Arrival);
        // Input timing: 40 ms of delay and every talker mixed by default.
        let (code, c) = post(&h, "/v1/conferences", r#"{"id": "i", "timing": "input"}"#).await;
        assert_eq!(code, StatusCode::CREATED, "{c}");
        assert_eq!(
            (&c["timing"], &c["input_delay_ms"], &c["active_speakers"]),
            (&json!("input"), &json!(40), &json!("all"))
        );
        let input = |delay_frames| Timing::Input { delay_frames };
        assert_eq!(created_timing(&h), (input(2), ActiveSpeakers::All));
        assert_eq!(get(&h, "/v1/conferences/i").await.1["input_delay_ms"], 40);
        // The default rounds up to whole frames; the delay is any 1 to 10 frames.
        for (body, delay_ms, frames) in [
            (r#"{"timing": "input", "ptime_ms": 30}"#, 60, 2),
            (r#"{"timing": "INPUT", "ptime_ms": 10}"#, 40, 4),
            (
                r#"{"timing": "input", "ptime_ms": 40, "input_delay_ms": 40}"#,
                40,
                1,
            ),
            (
                r#"{"timing": "input", "input_delay_ms": 200, "active_speakers": "all"}"#,
                200,
                10,
            ),
            (r#"{"timing": "input", "input_delay_ms": 20}"#, 20, 1),
        ] {
            let (code, c) = post(&h, "/v1/conferences", body).await;
            assert_eq!(code, StatusCode::CREATED, "{body}: {c}");
            assert_eq!(c["input_delay_ms"], delay_ms, "{body}");
            assert_eq!(created_timing(&h).0, input(frames), "{body}");
        }
        let (code, c) = post(&h, "/v1/conferences", r#"{"timing": "arrival"}"#).await;
        assert_eq!(
            (code, &c["timing"]),
            (StatusCode::CREATED, &json!("arrival"))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rtp_bases_go_to_the_dataplane_and_the_session_table() {
        let h = harness(vec![media_core(10)]);
        post(&h, "/v1/conferences", r#"{"id": "i", "timing": "input"}"#).await;
        let (_, a) = post(&h, "/v1/conferences/i/participants", ALICE).await;
        let uri = format!(
            "/v1/conferences/i/participants/{}",
            a["id"].as_str().unwrap()
        );
        let rtp = format!("{uri}/rtp");
        let (code, p) = json(&h.state, Method::PUT, &rtp, Some(BASIS)).await;
        assert_eq!(code, StatusCode::OK, "{p}");
        assert_eq!((&p["id"], &p["ssrc"]), (&a["id"], &json!(4_000_000_000u32)));
        assert_eq!(get(&h, &uri).await.1["ssrc"], 4_000_000_000u32);
        match h.media.ops().last() {
            Some((0, MediaOp::SetRtpBasis { basis, .. })) => assert_eq!(
                *basis,
                RtpBasis {
                    ssrc: 4_000_000_000,
                    frame_timestamp: 4_294_967_200,
                    sequence: 65535,
                    timestamp: 7
                }
            ),
            other => panic!("{other:?}"),
        }
        // A busy dataplane: 503, and the table keeps the SSRC the dataplane has.
        h.media.set_busy(true);
        let other = BASIS.replace("4000000000", "5");
        let (code, _) = json(&h.state, Method::PUT, &rtp, Some(&other)).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        h.media.set_busy(false);
        assert_eq!(get(&h, &uri).await.1["ssrc"], 4_000_000_000u32);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn conference_lifecycle() {
        let h = harness(vec![media_core(10)]);
        let body = r#"{"id": "room-1", "owner": "kamailio-a", "ptime_ms": 40,
                       "max_participants": 7, "active_speakers": "ALL"}"#;
        // An owner must hold a lease first: else nothing would keep the conference.
        let (code, e) = post(&h, "/v1/conferences", body).await;
        assert_eq!(code, StatusCode::CONFLICT, "{e}");
        let want = "call manager \"kamailio-a\" holds no live lease: send POST \
                    /v1/call-managers/kamailio-a/heartbeat first";
        assert!(e["error"].as_str().unwrap().starts_with(want), "{e}");
        assert_eq!(
            get(&h, "/v1/conferences/room-1").await.0,
            StatusCode::NOT_FOUND
        );
        let hb = r#"{"interval_ms": 1000}"#;
        let beat = post(&h, "/v1/call-managers/kamailio-a/heartbeat", hb).await;
        assert_eq!(beat.0, StatusCode::CREATED);
        let (code, c) = post(&h, "/v1/conferences", body).await;
        assert_eq!(code, StatusCode::CREATED, "{c}");
        assert_eq!((&c["id"], &c["core"]), (&json!("room-1"), &json!(3)));
        assert_eq!(c["owner"], "kamailio-a");
        assert_eq!(c["active_speakers"], "all");
        let (code, d) = post(&h, "/v1/conferences", "{}").await;
        assert_eq!(code, StatusCode::CREATED);
        let generated = d["id"].as_str().unwrap().to_string();
        assert!(crate::sessions::valid_conference_id(&generated));
        assert_eq!(
            (
                &d["ptime_ms"],
                &d["max_participants"],
                &d["active_speakers"]
            ),
            (&json!(20), &json!(100), &json!(3))
        );

        let ops = h.media.ops();
        let MediaOp::CreateConference(spec) = ops[0].1 else {
            panic!("{ops:?}")
        };
        assert_eq!(ops[0].0, 0);
        assert_eq!(
            (spec.ptime, spec.active_speakers, spec.max_participants),
            (Ptime::Ms40, ActiveSpeakers::All, 7)
        );

        let (code, list) = get(&h, "/v1/conferences").await;
        assert_eq!(code, StatusCode::OK);
        let ids: Vec<&str> = list["conferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["room-1", generated.as_str()]);
        let (code, one) = get(&h, "/v1/conferences/room-1").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(one["participants"], json!([]));
        assert_eq!(one["ptime_ms"], 40);
        assert_eq!(capacity(&h).await[1], 2);

        assert_eq!(
            delete(&h, "/v1/conferences/room-1").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            h.media.ops().last(),
            Some(&(0, MediaOp::DeleteConference(spec.key)))
        );
        let (code, err) = get(&h, "/v1/conferences/room-1").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(err["error"].as_str().unwrap().contains("room-1"));
        assert_eq!(
            delete(&h, "/v1/conferences/room-1").await,
            StatusCode::NOT_FOUND
        );
        let (_, list) = get(&h, "/v1/conferences").await;
        assert_eq!(list["conferences"].as_array().unwrap().len(), 1);
        // The id can be used again.
        let (code, _) = post(&h, "/v1/conferences", r#"{"id": "room-1"}"#).await;
        assert_eq!(code, StatusCode::CREATED);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn participant_lifecycle_frees_ports_and_slots() {
        let h = harness(vec![media_core(10)]);
        post(&h, "/v1/conferences", r#"{"id": "c"}"#).await;
        let before = capacity(&h).await;
        let (code, a) = post(&h, "/v1/conferences/c/participants", ALICE).await;
        assert_eq!(code, StatusCode::CREATED, "{a}");
        assert_eq!(a["local"], "198.18.0.1:20000");
        assert_eq!(
            (&a["codec"], &a["telephone_event_pt"], &a["rtcp"]),
            (&json!("pcmu"), &json!(101), &json!(true))
        );
        let ssrc = a["ssrc"].as_u64().unwrap();
        assert_ne!(ssrc, 0);
        let pid = a["id"].as_str().unwrap().to_string();
        let body = r#"{"remote": "198.18.0.3:5000", "codec": "PcmA", "telephone_event_pt": null,
                       "rtcp": false, "muted": true, "deaf": false, "gain_db": -3.5}"#;
        let (code, b) = post(&h, "/v1/conferences/c/participants", body).await;
        assert_eq!(code, StatusCode::CREATED, "{b}");
        assert_eq!(b["local"], "198.18.0.1:20002");
        assert_ne!(b["id"], a["id"]);
        assert_ne!(b["ssrc"], a["ssrc"]);
        match h.media.ops().last() {
            Some((0, MediaOp::AddParticipant(spec))) => {
                assert_eq!(spec.remote.to_string(), "198.18.0.3:5000");
                assert_eq!(spec.local_port, 20002);
                assert_eq!(spec.codec, CodecKind::Pcma);
                assert_eq!(spec.payload_types.telephone_event, None);
                assert!(!spec.rtcp);
                assert_eq!(u64::from(spec.ssrc), b["ssrc"].as_u64().unwrap());
                let s = ParticipantSettings {
                    muted: true,
                    deaf: false,
                    gain_db: -3.5,
                    echo: false,
                };
                assert_eq!(spec.settings, s);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(capacity(&h).await[0]["used"], 2);

        let uri = format!("/v1/conferences/c/participants/{pid}");
        let (code, got) = get(&h, &uri).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            (&got["remote"], &got["ssrc"]),
            (&json!("198.18.0.2:4000"), &json!(ssrc))
        );
        let (_, list) = get(&h, "/v1/conferences/c/participants").await;
        assert_eq!(list["participants"].as_array().unwrap().len(), 2);
        let (_, conf) = get(&h, "/v1/conferences/c").await;
        assert_eq!(conf["participant_count"], 2);
        assert_eq!(conf["participants"][0]["id"], a["id"]);

        let n = h.media.ops().len();
        let (code, p) = json(&h.state, Method::PATCH, &uri, Some(r#"{"hold": true}"#)).await;
        assert_eq!((code, &p["hold"]), (StatusCode::OK, &json!(true)));
        assert_eq!(
            h.media.ops().len(),
            n,
            "hold alone is not sent to the dataplane"
        );
        let patch = r#"{"muted": true, "gain_db": 6}"#;
        let (code, p) = json(&h.state, Method::PATCH, &uri, Some(patch)).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            (&p["muted"], &p["gain_db"], &p["hold"], &p["deaf"]),
            (&json!(true), &json!(6.0), &json!(true), &json!(false))
        );
        match h.media.ops().last() {
            Some((0, MediaOp::UpdateParticipant { settings, .. })) => {
                assert_eq!(
                    *settings,
                    ParticipantSettings {
                        muted: true,
                        deaf: false,
                        gain_db: 6.0,
                        echo: false,
                    }
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(get(&h, &uri).await.1["gain_db"], 6.0);

        assert_eq!(delete(&h, &uri).await, StatusCode::NO_CONTENT);
        assert!(matches!(
            h.media.ops().last(),
            Some((0, MediaOp::RemoveParticipant { .. }))
        ));
        assert_eq!(get(&h, &uri).await.0, StatusCode::NOT_FOUND);
        assert_eq!(delete(&h, &uri).await, StatusCode::NOT_FOUND);
        // Its port goes to the next participant.
        let (_, again) = post(&h, "/v1/conferences/c/participants", ALICE).await;
        assert_eq!(again["local"], "198.18.0.1:20000");
        assert_ne!(again["id"], a["id"]);

        // Deleting the conference frees every slot.
        assert_eq!(
            delete(&h, "/v1/conferences/c").await,
            StatusCode::NO_CONTENT
        );
        let after = capacity(&h).await;
        assert_eq!(after[0], before[0]);
        assert_eq!(after[1], 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn participants_move_between_conferences_and_cores_with_their_call() {
        use futures_util::StreamExt;
        let h = harness(vec![
            media_core(2),
            MediaCore {
                lcore: 4,
                ..media_core(2)
            },
        ]);
        let mut events = Box::pin(h.state.events.subscribe());
        // Placement puts the second conference on the emptier core.
        post(
            &h,
            "/v1/conferences",
            r#"{"id": "a", "max_participants": 2}"#,
        )
        .await;
        let (_, a) = post(&h, "/v1/conferences/a/participants", ALICE).await;
        post(
            &h,
            "/v1/conferences",
            r#"{"id": "b", "max_participants": 1}"#,
        )
        .await;
        post(
            &h,
            "/v1/conferences",
            r#"{"id": "c", "max_participants": 2}"#,
        )
        .await;
        let pid = a["id"].as_str().unwrap();
        let (key_a, key_b) = {
            let c = h.state.control();
            let s = c.sessions();
            let (ca, cb) = (s.conference("a").unwrap(), s.conference("b").unwrap());
            assert_ne!(ca.core, cb.core, "b is on the other core");
            (ca.key, cb.key)
        };
        let uri = |conf: &str| format!("/v1/conferences/{conf}/participants/{pid}/move");
        let (code, moved) = post(&h, &uri("a"), r#"{"conference": "b"}"#).await;
        assert_eq!(code, StatusCode::OK, "{moved}");
        // Same participant, same call: id, local address, SSRC and remote kept.
        for field in ["id", "local", "ssrc", "remote", "codec"] {
            assert_eq!(moved[field], a[field], "{field}");
        }
        assert_eq!(moved["conference"], "b");
        match h.media.ops().last() {
            Some((0, MediaOp::MoveParticipant { conf, to, .. })) => {
                assert_eq!((*conf, *to), (key_a, key_b))
            }
            other => panic!("{other:?}"),
        }
        let (code, _) = get(&h, &format!("/v1/conferences/a/participants/{pid}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = get(&h, &format!("/v1/conferences/b/participants/{pid}")).await;
        assert_eq!(code, StatusCode::OK);
        let loads = |h: &Harness| -> Vec<u32> {
            let c = h.state.control();
            c.sessions().core_loads().map(|l| l.participants).collect()
        };
        assert_eq!(loads(&h), [0, 1]);
        loop {
            let Some(crate::events::Delivery::Event(ev)) = events.next().await else {
                panic!("events ended");
            };
            if ev.kind == "participant_moved" {
                assert_eq!(ev.conference.as_deref(), Some("b"));
                assert_eq!(ev.participant.as_deref(), Some(pid));
                assert_eq!(ev.detail.from.as_deref(), Some("a"));
                break;
            }
        }
        // Refusals change nothing.
        let ops = h.media.ops().len();
        for (from, body, want) in [
            ("b", r#"{"conference": "b"}"#, StatusCode::CONFLICT),
            ("a", r#"{"conference": "c"}"#, StatusCode::NOT_FOUND),
            (
                "b",
                r#"{"conference": "nope"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            ("b", r#"{"conference": 7}"#, StatusCode::BAD_REQUEST),
            ("b", r#"{"to": "c"}"#, StatusCode::BAD_REQUEST),
        ] {
            let (code, e) = post(&h, &uri(from), body).await;
            assert_eq!(code, want, "{from} {body}: {e}");
            assert!(e["error"].is_string(), "{e}");
        }
        // A full conference takes nobody.
        let (_, d) = post(&h, "/v1/conferences/a/participants", ALICE).await;
        let did = d["id"].as_str().unwrap();
        let full = format!("/v1/conferences/a/participants/{did}/move");
        let (code, e) = post(&h, &full, r#"{"conference": "b"}"#).await;
        assert_eq!(code, StatusCode::CONFLICT, "{e}");
        assert_eq!(
            h.media.ops().len(),
            ops + 1,
            "only the add reached the dataplane"
        );
        // A busy dataplane leaves the participant where it was.
        h.media.set_busy(true);
        let (code, _) = post(&h, &full, r#"{"conference": "c"}"#).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        h.media.set_busy(false);
        let (code, _) = get(&h, &format!("/v1/conferences/a/participants/{did}")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(loads(&h), [1, 1]);
        // Within one core, then gone with its conference.
        let (code, _) = post(&h, &uri("b"), r#"{"conference": "c"}"#).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(loads(&h), [1, 1]);
        assert_eq!(
            delete(&h, "/v1/conferences/c").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(loads(&h), [1, 0]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn core_full_is_503_and_conference_full_is_409() {
        let small = MediaCore {
            capacity: 2,
            ..media_core(0)
        };
        let h = harness(vec![small]);
        post(
            &h,
            "/v1/conferences",
            r#"{"id": "one", "max_participants": 1}"#,
        )
        .await;
        post(&h, "/v1/conferences", r#"{"id": "big"}"#).await;
        assert_eq!(
            post(&h, "/v1/conferences/one/participants", ALICE).await.0,
            StatusCode::CREATED
        );
        let (code, err) = post(&h, "/v1/conferences/one/participants", ALICE).await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert!(err["error"].as_str().unwrap().contains("full"), "{err}");
        assert_eq!(
            post(&h, "/v1/conferences/big/participants", ALICE).await.0,
            StatusCode::CREATED
        );
        let (code, err) = post(&h, "/v1/conferences/big/participants", ALICE).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let msg = err["error"].as_str().unwrap();
        assert!(msg.contains("core 3") && msg.contains("full"), "{msg}");
        let (code, err) = post(&h, "/v1/conferences", "{}").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(err["error"].as_str().unwrap().contains("2 of 2"), "{err}");
        assert_eq!(
            capacity(&h).await[0],
            json!({"participants": 2, "used": 2, "free": 0})
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_dataplane_is_503_and_changes_nothing() {
        let h = harness(vec![media_core(10)]);
        post(&h, "/v1/conferences", r#"{"id": "c"}"#).await;
        let (_, a) = post(&h, "/v1/conferences/c/participants", ALICE).await;
        let before = (capacity(&h).await, get(&h, "/v1/conferences/c").await.1);
        h.media.set_busy(true);
        let uri = format!(
            "/v1/conferences/c/participants/{}",
            a["id"].as_str().unwrap()
        );
        for (method, uri, body) in [
            (Method::POST, "/v1/conferences", Some(r#"{"id": "d"}"#)),
            (Method::POST, "/v1/conferences/c/participants", Some(ALICE)),
            (
                Method::PATCH,
                uri.as_str(),
                Some(r#"{"muted": true, "hold": true}"#),
            ),
            (Method::DELETE, uri.as_str(), None),
            (Method::DELETE, "/v1/conferences/c", None),
            (
                Method::POST,
                "/v1/conferences/c/prompts",
                Some(r#"{"prompt": "welcome"}"#),
            ),
        ] {
            let (code, err) = json(&h.state, method.clone(), uri, body).await;
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}");
            assert!(
                err["error"].as_str().unwrap().contains("try again"),
                "{err}"
            );
        }
        h.media.set_busy(false);
        assert_eq!(
            (capacity(&h).await, get(&h, "/v1/conferences/c").await.1),
            before
        );
        assert_eq!(get(&h, "/v1/conferences/d").await.0, StatusCode::NOT_FOUND);
        // The port the failed add had taken is free again.
        let (_, b) = post(&h, "/v1/conferences/c/participants", ALICE).await;
        assert_eq!(b["local"], "198.18.0.1:20002");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn prompts_play_to_a_conference_or_a_participant() {
        let h = harness(vec![media_core(10)]);
        post(&h, "/v1/conferences", r#"{"id": "c"}"#).await;
        let (_, a) = post(&h, "/v1/conferences/c/participants", ALICE).await;
        let (code, r) = post(&h, "/v1/conferences/c/prompts", r#"{"prompt": "welcome"}"#).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{r}");
        let welcome = h.media.prompts.id("welcome");
        match h.media.ops().last() {
            Some((0, MediaOp::PlayPrompt(p))) => {
                assert_eq!((Some(p.prompt), p.part), (welcome, None))
            }
            other => panic!("{other:?}"),
        }
        let body = json!({"prompt": "goodbye", "participant": a["id"]}).to_string();
        let (code, r) = post(&h, "/v1/conferences/c/prompts", &body).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        assert_eq!(r["participant"], a["id"]);
        let Some((0, MediaOp::PlayPrompt(p))) = h.media.ops().last().cloned() else {
            panic!()
        };
        assert_eq!(p.prompt, h.media.prompts.id("goodbye").unwrap());
        assert!(p.part.is_some());

        let n = h.media.ops().len();
        let (code, err) = post(&h, "/v1/conferences/c/prompts", r#"{"prompt": "nope"}"#).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        let msg = err["error"].as_str().unwrap();
        assert!(
            msg.contains("nope") && msg.contains("welcome, goodbye"),
            "{msg}"
        );
        let body = r#"{"prompt": "welcome", "participant": "p999"}"#;
        assert_eq!(
            post(&h, "/v1/conferences/c/prompts", body).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let body = r#"{"prompt": "welcome"}"#;
        assert_eq!(
            post(&h, "/v1/conferences/x/prompts", body).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(h.media.ops().len(), n);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bad_input_is_a_4xx_json_error_and_disturbs_nothing() {
        let h = harness(vec![media_core(10)]);
        post(&h, "/v1/conferences", r#"{"id": "c"}"#).await;
        let (_, a) = post(&h, "/v1/conferences/c/participants", ALICE).await;
        let part = format!(
            "/v1/conferences/c/participants/{}",
            a["id"].as_str().unwrap()
        );
        let before = (
            capacity(&h).await,
            get(&h, "/v1/conferences/c").await.1,
            h.media.ops(),
        );
        let conf = "/v1/conferences";
        let parts = "/v1/conferences/c/participants";
        let rtp = format!("{part}/rtp");
        let input = |extra: &str| format!(r#"{{"timing": "input"{extra}}}"#);
        let p = |remote: &str| json!({"remote": remote, "codec": "pcmu"}).to_string();
        let big = format!(r#"{{"id": "x", "owner": "{}"}}"#, "a".repeat(70 * 1024));
        let cases: Vec<(Method, &str, String, StatusCode)> = vec![
            (Method::POST, conf, "{".into(), StatusCode::BAD_REQUEST),
            (Method::POST, conf, "".into(), StatusCode::BAD_REQUEST),
            (Method::POST, conf, "[]".into(), StatusCode::BAD_REQUEST),
            (
                Method::POST,
                conf,
                r#"{"id": "c"}"#.into(),
                StatusCode::CONFLICT,
            ),
            (
                Method::POST,
                conf,
                r#"{"id": "a b"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"id": ""}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"id": 5}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"colour": "red"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"ptime_ms": 25}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"ptime_ms": "20"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"ptime_ms": -20}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"max_participants": 0}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"max_participants": 70000}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"active_speakers": 0}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"active_speakers": 33}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"active_speakers": 2.5}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"active_speakers": "most"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"owner": ""}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"timing": "fast"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"timing": 1}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"input_delay_ms": 40}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                r#"{"timing": "arrival", "input_delay_ms": 40}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                input(r#", "input_delay_ms": 50"#),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                input(r#", "input_delay_ms": 0"#),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                input(r#", "input_delay_ms": 220"#),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                input(r#", "input_delay_ms": -40"#),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                input(r#", "ptime_ms": 30, "input_delay_ms": 40"#),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                conf,
                input(r#", "active_speakers": 3"#),
                StatusCode::BAD_REQUEST,
            ),
            (Method::PUT, &rtp, BASIS.into(), StatusCode::CONFLICT),
            (
                Method::PUT,
                &rtp,
                r#"{"ssrc": 1}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PUT,
                &rtp,
                BASIS.replace("65535", "65536"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PUT,
                &rtp,
                BASIS.replace("4000000000", "-1"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PUT,
                &rtp,
                BASIS.replace('}', r#", "marker": true}"#),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PUT,
                "/v1/conferences/c/participants/p77/rtp",
                BASIS.into(),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PUT,
                "/v1/conferences/nope/participants/p1/rtp",
                BASIS.into(),
                StatusCode::NOT_FOUND,
            ),
            (Method::POST, conf, big, StatusCode::PAYLOAD_TOO_LARGE),
            (
                Method::POST,
                parts,
                r#"{"codec": "pcmu"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                r#"{"remote": "198.18.0.2:4000", "codec": "g729"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                r#"{"remote": "198.18.0.2:4000", "codec": "l16"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                r#"{"remote": "198.18.0.2:4000", "codec": "pcmu", "x": 1}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                r#"{"remote": "198.18.0.2:4000", "codec": "pcmu", "telephone_event_pt": 8}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                r#"{"remote": "198.18.0.2:4000", "codec": "pcmu", "telephone_event_pt": 300}"#
                    .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                r#"{"remote": "198.18.0.2:4000", "codec": "pcmu", "gain_db": 21}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("198.18.0.2"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("198.18.0.2:0"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("198.18.0.2:70000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("0.0.0.0:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("224.0.0.1:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("255.255.255.255:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("[::1]:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("example.com:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("0.1.2.3:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("240.0.0.1:4000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                parts,
                p("198.18.0.2:04000"),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/v1/conferences/nope/participants",
                ALICE.into(),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PATCH,
                &part,
                r#"{"gain_db": -61}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PATCH,
                &part,
                r#"{"muted": "yes"}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PATCH,
                &part,
                r#"{"volume": 3}"#.into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PATCH,
                "/v1/conferences/c/participants/p77",
                "{}".into(),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PATCH,
                "/v1/conferences/nope/participants/p1",
                "{}".into(),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/v1/conferences/c/prompts",
                "{}".into(),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (method, uri, body, status) in cases {
            let (code, err) = json(&h.state, method.clone(), uri, Some(&body)).await;
            let short: String = body.chars().take(80).collect();
            assert_eq!(code, status, "{method} {uri} {short}: {err}");
            let msg = err["error"].as_str().unwrap_or_default();
            assert!(!msg.is_empty(), "{method} {uri} {short}: {err}");
        }
        // Not JSON at all.
        let r = axum::http::Request::post(conf)
            .header("content-type", "text/plain")
            .body(axum::body::Body::from("id=x"))
            .unwrap();
        let r = tower::ServiceExt::oneshot(
            crate::http::router(h.state.clone(), crate::http::Access::open()),
            r,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        for uri in [
            "/v1/conferences/nope",
            "/v1/conferences/c/participants/p9",
            "/v1/conferences/c/participants/x",
        ] {
            let (code, err) = get(&h, uri).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{uri}");
            assert!(err["error"].is_string());
        }
        let after = (
            capacity(&h).await,
            get(&h, "/v1/conferences/c").await.1,
            h.media.ops(),
        );
        assert_eq!(after, before);
        // A valid owner of the maximum length is fine and the remote may be loopback.
        let max = tutti_control_core::reclaim::MAX_OWNER_LEN;
        let beat = format!("/v1/call-managers/{}/heartbeat", "%C3%BC".repeat(max));
        let (code, _) = post(&h, &beat, r#"{"interval_ms": 1000}"#).await;
        assert_eq!(code, StatusCode::CREATED);
        let owner = json!({"owner": "ü".repeat(max)}).to_string();
        assert_eq!(post(&h, conf, &owner).await.0, StatusCode::CREATED);
        assert_eq!(
            post(&h, parts, &p("127.0.0.1:4000")).await.0,
            StatusCode::CREATED
        );
    }
}
