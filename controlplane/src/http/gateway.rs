//! The gateway API's conference calls: parse and validate, ask the control core what to
//! do, send the mixer calls it needs through the peer client, and tell the core what
//! the mixers answered. `POST /v1/conferences/{id}/handover` starts the core's handover
//! plan, which the pump then drives.

use super::dto::{AddParticipant, MixerRequest};
use super::dto::{
    Adopt, CallManagerView, CreateRelayedConference, HandoverRequest, Heartbeat, PatchParticipant,
    PlayPrompt, RelayedConferenceView, RelayedParticipantView,
};
use super::error::HttpError;
use super::extract::{JsonBody, PathParams};
use crate::gateway::Gateway;
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use serde_json::{json, Value};
use tutti_control_core::gateway::{pick_mixer, MixerStatus};
use tutti_control_core::peer::{PeerAnswer, PeerCall, PeerError, PeerRequest};
use tutti_control_core::reclaim::check_name;
use tutti_control_core::ControlError;

/// The routes the gateway API serves on top of the shared ones.
pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<ControlState>)> {
    vec![
        ("/v1/conferences", get(list).post(create)),
        ("/v1/conferences/{id}", get(get_conf).delete(delete_conf)),
        (
            "/v1/conferences/{id}/participants",
            get(list_participants).post(add_participant),
        ),
        (
            "/v1/conferences/{id}/participants/{pid}",
            get(get_participant)
                .patch(patch_participant)
                .delete(delete_participant),
        ),
        ("/v1/conferences/{id}/prompts", post(play_prompt)),
        ("/v1/conferences/{id}/adopt", post(adopt)),
        ("/v1/conferences/{id}/handover", post(handover)),
        ("/v1/call-managers/{cm}/heartbeat", post(heartbeat)),
        ("/v1/mixers", get(mixers)),
        ("/v1/mixers/drain", post(drain)),
        ("/v1/mixers/undrain", post(undrain)),
    ]
}

fn gateway(s: &ControlState) -> Result<&Gateway, ControlError> {
    s.gateway.as_deref().ok_or(ControlError::NotAGateway)
}

/// Call `mixer` with `call`.
async fn call(g: &Gateway, mixer: &str, call: PeerCall) -> Result<PeerAnswer, PeerError> {
    let req = PeerRequest {
        mixer: mixer.to_string(),
        call,
    };
    g.client.execute(&req).await
}

/// A deletion on a mixer that does not know the thing any more is fine.
fn deleted(r: Result<PeerAnswer, PeerError>) -> Result<(), PeerError> {
    match r {
        Err(e) if !e.not_found() => Err(e),
        _ => Ok(()),
    }
}

/// The configured mixer (but `except`) with the most free capacity.
pub(crate) async fn freest_mixer(
    s: &ControlState,
    g: &Gateway,
    except: Option<&str>,
) -> Result<String, ControlError> {
    let mixers = {
        let c = s.control();
        let t = c.gateway()?;
        let placeable = t.placeable_mixers(except);
        if placeable.is_empty() && !t.mixers_except(except).is_empty() {
            let other = if except.is_some() { "other " } else { "" };
            return Err(ControlError::AllDraining(other));
        }
        placeable
    };
    let mut answers = Vec::with_capacity(mixers.len());
    for m in mixers {
        let free = match call(g, &m, PeerCall::Status).await {
            Ok(PeerAnswer::Free(n)) => Ok(n),
            Ok(other) => Err(PeerError::BadAnswer {
                url: m.clone(),
                reason: format!("{other:?}"),
            }),
            Err(e) => Err(e),
        };
        answers.push((m, free));
    }
    pick_mixer(answers, except.is_some())
}

fn conference_view(
    s: &ControlState,
    id: &str,
    with_participants: bool,
) -> Result<RelayedConferenceView, ControlError> {
    let c = s.control();
    Ok(RelayedConferenceView::new(
        c.gateway()?.conference(id)?,
        with_participants,
    ))
}

fn participant_view(
    s: &ControlState,
    id: &str,
    pid: &str,
) -> Result<RelayedParticipantView, ControlError> {
    let c = s.control();
    Ok(RelayedParticipantView::new(
        id,
        c.gateway()?.participant(id, pid)?,
    ))
}

/// `GET /v1/conferences`.
async fn list(State(s): State<ControlState>) -> Result<Json<Value>, HttpError> {
    let c = s.control();
    let all: Vec<RelayedConferenceView> = c
        .gateway()?
        .conferences()
        .map(|conf| RelayedConferenceView::new(conf, false))
        .collect();
    Ok(Json(json!({ "conferences": all })))
}

/// `POST /v1/conferences`: create the conference on a mixer.
async fn create(
    State(s): State<ControlState>,
    JsonBody(req): JsonBody<CreateRelayedConference>,
) -> Result<(StatusCode, Json<RelayedConferenceView>), HttpError> {
    let g = gateway(&s)?;
    let (mixer, spec) = req.validate()?;
    // Reserve the id and key before going to the mixer, so two requests cannot race.
    let pending = s.control().gw_reserve_conference(spec.id.clone())?;
    let created = async {
        let mixer = match mixer {
            Some(m) => s.control().gateway()?.placeable_mixer(&m)?,
            None => freest_mixer(&s, g, None).await?,
        };
        let create = PeerCall::CreateConference {
            id: pending.id.clone(),
            spec: spec.clone(),
        };
        let orphaned = match call(g, &mixer, create).await? {
            PeerAnswer::Conference { orphaned } => orphaned,
            _ => false,
        };
        Ok::<_, ControlError>((mixer, orphaned))
    }
    .await;
    let id = pending.id.clone();
    let mut c = s.control();
    match created {
        Ok((mixer, orphaned)) => c.gw_conference_created(pending, mixer, spec, orphaned)?,
        Err(e) => {
            c.gw_cancel_conference(pending);
            return Err(e.into());
        }
    }
    drop(c);
    Ok((StatusCode::CREATED, Json(conference_view(&s, &id, true)?)))
}

/// `GET /v1/conferences/{id}`.
async fn get_conf(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RelayedConferenceView>, HttpError> {
    Ok(Json(conference_view(&s, &id, true)?))
}

/// `DELETE /v1/conferences/{id}`: on its mixer, then here.
async fn delete_conf(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, HttpError> {
    let g = gateway(&s)?;
    let mixer = s.control().gw_mixer(&id)?;
    deleted(call(g, &mixer, PeerCall::DeleteConference { id: id.clone() }).await)?;
    s.control().gw_conference_deleted(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/conferences/{id}/participants`.
async fn list_participants(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, HttpError> {
    let c = s.control();
    let parts: Vec<RelayedParticipantView> = c
        .gateway()?
        .conference(&id)?
        .parts
        .values()
        .map(|p| RelayedParticipantView::new(&id, p))
        .collect();
    Ok(Json(json!({ "participants": parts })))
}

/// `POST /v1/conferences/{id}/participants`: a port pair towards the client and one
/// towards the mixers here, the participant on the mixer, then the relay.
async fn add_participant(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<AddParticipant>,
) -> Result<(StatusCode, Json<RelayedParticipantView>), HttpError> {
    let g = gateway(&s)?;
    let new = req.validate()?;
    let pending = s.control().gw_reserve_participant(&id, new.remote, new)?;
    let mixer = pending.mixer.clone();
    let add = PeerCall::AddParticipant {
        conf: id.clone(),
        spec: pending.spec,
    };
    let on_mixer = match call(g, &mixer, add).await {
        Ok(PeerAnswer::Participant(p)) => p,
        other => {
            s.control().gw_cancel_participant(pending);
            let e = match other {
                Err(e) => e,
                Ok(a) => PeerError::BadAnswer {
                    url: mixer,
                    reason: format!("{a:?}"),
                },
            };
            return Err(e.into());
        }
    };
    let mixer_id = on_mixer.id.clone();
    let placed = s.control().gw_participant_created(&id, pending, on_mixer);
    let pid = match placed {
        Ok(pid) => pid,
        Err(e) => {
            let gone = PeerCall::DeleteParticipant {
                conf: id.clone(),
                part: mixer_id,
            };
            if let Err(d) = call(g, &mixer, gone).await {
                tracing::warn!(conference = %id, error = %d, "participant left on the mixer");
            }
            return Err(e.into());
        }
    };
    Ok((StatusCode::CREATED, Json(participant_view(&s, &id, &pid)?)))
}

/// `GET /v1/conferences/{id}/participants/{pid}`.
async fn get_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<Json<RelayedParticipantView>, HttpError> {
    Ok(Json(participant_view(&s, &id, &pid)?))
}

/// `PATCH /v1/conferences/{id}/participants/{pid}`: on the hosting mixer.
async fn patch_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(req): JsonBody<PatchParticipant>,
) -> Result<Json<RelayedParticipantView>, HttpError> {
    let g = gateway(&s)?;
    let patch = req.validate()?;
    let (mixer, part) = s.control().gw_mixer_participant(&id, &pid)?;
    let conf = id.clone();
    call(g, &mixer, PeerCall::PatchParticipant { conf, part, patch }).await?;
    s.control().gw_participant_patched(&id, &pid, patch)?;
    Ok(Json(participant_view(&s, &id, &pid)?))
}

/// `DELETE /v1/conferences/{id}/participants/{pid}`.
async fn delete_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<StatusCode, HttpError> {
    let g = gateway(&s)?;
    let (mixer, part) = s.control().gw_mixer_participant(&id, &pid)?;
    let conf = id.clone();
    deleted(call(g, &mixer, PeerCall::DeleteParticipant { conf, part }).await)?;
    s.control().gw_participant_deleted(&id, &pid)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/conferences/{id}/prompts`: played by the hosting mixer.
async fn play_prompt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<PlayPrompt>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    let g = gateway(&s)?;
    let (mixer, participant) = match &req.participant {
        Some(pid) => {
            let (mixer, part) = s.control().gw_mixer_participant(&id, pid)?;
            (mixer, Some(part))
        }
        None => (s.control().gw_mixer(&id)?, None),
    };
    let play = PeerCall::PlayPrompt {
        conf: id.clone(),
        prompt: req.prompt.clone(),
        participant,
    };
    call(g, &mixer, play).await?;
    let answer = json!({
        "conference": id,
        "participant": req.participant,
        "prompt": req.prompt,
    });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// `POST /v1/conferences/{id}/adopt`: on the hosting mixer (whose orphan procedure it
/// stops); a later handover creates the conference with the new owner.
async fn adopt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<Adopt>,
) -> Result<Json<RelayedConferenceView>, HttpError> {
    let g = gateway(&s)?;
    check_name("owner", &req.owner)?;
    let mixer = s.control().gw_mixer(&id)?;
    let adopt = PeerCall::Adopt {
        conf: id.clone(),
        owner: req.owner.clone(),
    };
    let orphaned = match call(g, &mixer, adopt).await? {
        PeerAnswer::Conference { orphaned } => orphaned,
        _ => false,
    };
    s.control().gw_adopted(&id, &req.owner, orphaned)?;
    Ok(Json(conference_view(&s, &id, true)?))
}

/// `POST /v1/call-managers/{cm}/heartbeat`: to every mixer (a call manager's
/// conferences may be on any of them, and move). The first mixer's answer; a refusal
/// of the request itself (4xx) as the mixer gave it; 502 when no mixer answered.
async fn heartbeat(
    State(s): State<ControlState>,
    PathParams(cm): PathParams<String>,
    JsonBody(req): JsonBody<Heartbeat>,
) -> Result<Json<CallManagerView>, HttpError> {
    let g = gateway(&s)?;
    let mixers = s.control().gateway()?.mixers_except(None);
    let mut answer = None;
    let mut failed = Vec::new();
    for m in &mixers {
        let hb = PeerCall::Heartbeat {
            cm: cm.clone(),
            interval_ms: req.interval_ms,
        };
        match call(g, m, hb).await {
            Ok(PeerAnswer::Lease(lease)) => {
                answer.get_or_insert(lease);
            }
            Ok(other) => failed.push(format!("mixer {m} answered {other:?}")),
            Err(e) if e.refused_request() => return Err(e.into()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    match answer {
        Some(lease) => Ok(Json(lease.into())),
        None if failed.is_empty() => {
            Err(ControlError::NoMixer("no mixer is configured (gateway.mixers)".into()).into())
        }
        None => Err(ControlError::PeersFailed {
            what: "took the heartbeat",
            errors: failed.join("; "),
        }
        .into()),
    }
}

/// `POST /v1/conferences/{id}/handover`: start it; 202 with its state.
async fn handover(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<HandoverRequest>,
) -> Result<(StatusCode, Json<RelayedConferenceView>), HttpError> {
    let g = gateway(&s)?;
    let (to, mode) = req.validate()?;
    let from = s.control().gw_mixer(&id)?;
    let to = match to {
        Some(to) if to.trim_end_matches('/') == from.trim_end_matches('/') => {
            return Err(
                ControlError::Invalid(format!("conference {id} is already on {from}")).into(),
            )
        }
        Some(to) => s.control().gateway()?.placeable_mixer(&to)?,
        None => freest_mixer(&s, g, Some(&from)).await?,
    };
    s.control().gw_start_handover(&id, &from, to, mode)?;
    Ok((StatusCode::ACCEPTED, Json(conference_view(&s, &id, true)?)))
}

/// `GET /v1/mixers`: each configured mixer, whether it drains, its conferences.
async fn mixers(State(s): State<ControlState>) -> Result<Json<Value>, HttpError> {
    let all = s.control().gateway()?.mixers();
    Ok(Json(json!({ "mixers": all })))
}

/// `POST /v1/mixers/drain`: the mixer takes no new conferences, and its conferences are
/// handed over to the others (by placement), a few at a time, until none is left
/// (event `mixer_drained`); `GET /v1/mixers` shows the progress.
async fn drain(
    State(s): State<ControlState>,
    JsonBody(req): JsonBody<MixerRequest>,
) -> Result<(StatusCode, Json<MixerStatus>), HttpError> {
    // The pump's next turn starts the handovers (ControlState::drive_drain).
    Ok((
        StatusCode::ACCEPTED,
        Json(s.control().gw_drain(&req.mixer)?),
    ))
}

/// `POST /v1/mixers/undrain`: the mixer takes new conferences again.
async fn undrain(
    State(s): State<ControlState>,
    JsonBody(req): JsonBody<MixerRequest>,
) -> Result<Json<MixerStatus>, HttpError> {
    Ok(Json(s.control().gw_undrain(&req.mixer)?))
}
