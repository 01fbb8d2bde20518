//! The conference REST API under `/v1/conferences`: request bodies and their
//! validation, the JSON views of conferences and participants, and the handlers that
//! change the session table and the dataplane together (the table is locked across
//! both, so a failed dataplane command leaves the table as it was).

use crate::api::{ApiError, JsonBody, PathParams};
use crate::events::{timestamp, Event};
use crate::orphan::Reason;
use crate::reclaim::Reclaim;
use crate::sessions::{
    Conference, NewConference, NewParticipant, Participant, ParticipantPatch, SessionError,
    Sessions,
};
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::net::SocketAddrV4;
use std::time::SystemTime;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, MediaOp, PartKey, ParticipantSettings, PromptSpec, RtpBasis, Timing,
    MAX_INPUT_DELAY_FRAMES,
};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime, MAX_LOUDEST};

/// `max_participants` when the request has none.
pub const DEFAULT_MAX_PARTICIPANTS: u16 = 100;
/// Largest `max_participants` a conference may ask for.
pub const MAX_PARTICIPANTS: u16 = 1000;
/// Longest `owner` name.
pub const MAX_OWNER_LEN: usize = 128;
/// The telephone-event payload type when the request does not name one.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;
/// Allowed participant gain in dB.
pub const GAIN_DB: std::ops::RangeInclusive<f32> = -60.0..=20.0;
/// `input_delay_ms` when the request has none: this, rounded up to whole frames.
pub const DEFAULT_INPUT_DELAY_MS: u32 = 40;

/// The codecs participants may use through the API.
const API_CODECS: [CodecKind; 2] = [CodecKind::Pcmu, CodecKind::Pcma];

fn codec_name(codec: CodecKind) -> &'static str {
    match codec {
        CodecKind::Pcmu => "pcmu",
        CodecKind::Pcma => "pcma",
        CodecKind::L16 => "l16",
    }
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

/// `POST /v1/conferences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateConference {
    id: Option<String>,
    owner: Option<String>,
    ptime_ms: Option<u32>,
    max_participants: Option<u32>,
    active_speakers: Option<Value>,
    /// `"arrival"` (the default) or `"input"`.
    timing: Option<String>,
    /// Only with `"timing": "input"`.
    input_delay_ms: Option<u32>,
}

/// The `timing` of a conference as the API names it.
fn timing_name(timing: Timing) -> &'static str {
    match timing {
        Timing::Arrival => "arrival",
        Timing::Input { .. } => "input",
    }
}

impl CreateConference {
    fn validate(self) -> Result<NewConference, ApiError> {
        let ptime = match self.ptime_ms {
            None => Ptime::default(),
            Some(ms) => Ptime::from_millis(ms)
                .ok_or_else(|| bad(format!("ptime_ms must be 10, 20, 30 or 40, not {ms}")))?,
        };
        let max_participants = match self.max_participants {
            None => DEFAULT_MAX_PARTICIPANTS,
            Some(n) => u16::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_PARTICIPANTS).contains(n))
                .ok_or_else(|| {
                    bad(format!(
                        "max_participants must be from 1 to {MAX_PARTICIPANTS}, not {n}"
                    ))
                })?,
        };
        let active_speakers = match &self.active_speakers {
            None => ActiveSpeakers::default(),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("all") => ActiveSpeakers::All,
            Some(v) => v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| (1..=MAX_LOUDEST).contains(n))
                .map(ActiveSpeakers::Loudest)
                .ok_or_else(|| {
                    bad(format!(
                        "active_speakers must be a number from 1 to {MAX_LOUDEST} or \"all\", not {v}"
                    ))
                })?,
        };
        let input = match self.timing.as_deref() {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("arrival") => false,
            Some(t) if t.eq_ignore_ascii_case("input") => true,
            Some(t) => {
                return Err(bad(format!(
                    "timing must be \"arrival\" or \"input\", not {t:?}"
                )))
            }
        };
        let (timing, active_speakers) = if input {
            let frame_ms = ptime.millis();
            let max_ms = u32::from(MAX_INPUT_DELAY_FRAMES) * frame_ms;
            let delay_ms = self
                .input_delay_ms
                .unwrap_or(DEFAULT_INPUT_DELAY_MS.div_ceil(frame_ms) * frame_ms);
            if delay_ms == 0 || delay_ms > max_ms || !delay_ms.is_multiple_of(frame_ms) {
                return Err(bad(format!(
                    "input_delay_ms must be a multiple of ptime_ms ({frame_ms}) from {frame_ms} \
                     to {max_ms}, not {delay_ms}"
                )));
            }
            // Loudest-N selection depends on each mixer's history; input timing is for
            // mixers that must agree, so it mixes everyone.
            if let (Some(v), ActiveSpeakers::Loudest(_)) = (&self.active_speakers, active_speakers)
            {
                return Err(bad(format!(
                    "active_speakers must be \"all\" with \"timing\": \"input\", not {v}"
                )));
            }
            let delay_frames = (delay_ms / frame_ms) as u8;
            (Timing::Input { delay_frames }, ActiveSpeakers::All)
        } else if self.input_delay_ms.is_some() {
            return Err(bad(
                "input_delay_ms is only allowed with \"timing\": \"input\"".to_string(),
            ));
        } else {
            (Timing::Arrival, active_speakers)
        };
        if let Some(owner) = &self.owner {
            check_owner("owner", owner)?;
        }
        Ok(NewConference {
            id: self.id,
            owner: self.owner,
            ptime,
            active_speakers,
            max_participants,
            timing,
        })
    }
}

/// Check a call manager's name (`what` names the field in the error).
pub(crate) fn check_owner(what: &str, owner: &str) -> Result<(), ApiError> {
    if owner.is_empty()
        || owner.chars().count() > MAX_OWNER_LEN
        || owner.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} must be 1 to {MAX_OWNER_LEN} characters without control characters"
        )));
    }
    Ok(())
}

/// Deserialize a field that is present (possibly `null`) as `Some`, so that a missing
/// field (`None` via `#[serde(default)]`) differs from an explicit `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `POST /v1/conferences/{id}/participants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddParticipant {
    remote: String,
    codec: String,
    /// Missing: [`DEFAULT_TELEPHONE_EVENT_PT`]; `null`: no telephone-events.
    #[serde(default, deserialize_with = "present")]
    telephone_event_pt: Option<Option<u8>>,
    rtcp: Option<bool>,
    muted: Option<bool>,
    deaf: Option<bool>,
    gain_db: Option<f32>,
}

fn parse_remote(remote: &str) -> Result<SocketAddrV4, ApiError> {
    let addr: SocketAddrV4 = remote.parse().map_err(|_| {
        bad(format!(
            "remote must be an IPv4 address and port such as \"198.18.0.2:4000\", not {remote:?}"
        ))
    })?;
    let ip = addr.ip();
    if addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(bad(format!(
            "remote {remote:?} is not a unicast address with a non-zero port"
        )));
    }
    Ok(addr)
}

fn check_gain(gain_db: Option<f32>) -> Result<(), ApiError> {
    match gain_db {
        Some(g) if !GAIN_DB.contains(&g) => Err(bad(format!(
            "gain_db must be from {} to {}, not {g}",
            GAIN_DB.start(),
            GAIN_DB.end()
        ))),
        _ => Ok(()),
    }
}

impl AddParticipant {
    fn validate(self) -> Result<NewParticipant, ApiError> {
        let remote = parse_remote(&self.remote)?;
        let codec = API_CODECS
            .into_iter()
            .find(|c| codec_name(*c).eq_ignore_ascii_case(&self.codec))
            .ok_or_else(|| {
                bad(format!(
                    "unknown codec {:?}: use \"pcmu\" or \"pcma\"",
                    self.codec
                ))
            })?;
        let telephone_event_pt = self
            .telephone_event_pt
            .unwrap_or(Some(DEFAULT_TELEPHONE_EVENT_PT));
        if let Some(pt) = telephone_event_pt.filter(|pt| !(96..=127).contains(pt)) {
            return Err(bad(format!(
                "telephone_event_pt must be a dynamic payload type (96 to 127), not {pt}"
            )));
        }
        check_gain(self.gain_db)?;
        let defaults = ParticipantSettings::default();
        Ok(NewParticipant {
            remote,
            codec,
            telephone_event_pt,
            rtcp: self.rtcp.unwrap_or(true),
            settings: ParticipantSettings {
                muted: self.muted.unwrap_or(defaults.muted),
                deaf: self.deaf.unwrap_or(defaults.deaf),
                gain_db: self.gain_db.unwrap_or(defaults.gain_db),
            },
        })
    }
}

/// `PATCH /v1/conferences/{id}/participants/{pid}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchParticipant {
    muted: Option<bool>,
    deaf: Option<bool>,
    gain_db: Option<f32>,
    hold: Option<bool>,
}

impl PatchParticipant {
    fn validate(self) -> Result<ParticipantPatch, ApiError> {
        check_gain(self.gain_db)?;
        Ok(ParticipantPatch {
            muted: self.muted,
            deaf: self.deaf,
            gain_db: self.gain_db,
            hold: self.hold,
        })
    }
}

/// `PUT /v1/conferences/{id}/participants/{pid}/rtp` body: from now on the participant's
/// stream has SSRC `ssrc`, and the packet of the frame at timeline timestamp
/// `frame_timestamp` carries `sequence` and `timestamp` (input timing only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutRtpBasis {
    ssrc: u32,
    frame_timestamp: u32,
    sequence: u16,
    timestamp: u32,
}

/// `POST /v1/conferences/{id}/prompts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayPrompt {
    prompt: String,
    participant: Option<String>,
}

/// A conference as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ConferenceView {
    id: String,
    /// The lcore id of its dataplane core.
    core: u32,
    owner: Option<String>,
    ptime_ms: u32,
    max_participants: u16,
    active_speakers: Value,
    /// `"arrival"` or `"input"`.
    timing: &'static str,
    /// With input timing: frames are mixed this long after the first packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_delay_ms: Option<u32>,
    participant_count: usize,
    created_at: String,
    /// Its call manager's lease lapsed: the orphan procedure runs.
    orphaned: bool,
    /// Present when one conference is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<ParticipantView>>,
}

impl ConferenceView {
    pub(crate) fn new(c: &Conference, with_participants: bool, orphaned: bool) -> Self {
        ConferenceView {
            id: c.id.clone(),
            core: c.lcore,
            owner: c.owner.clone(),
            ptime_ms: c.ptime.millis(),
            max_participants: c.max_participants,
            active_speakers: match c.active_speakers {
                ActiveSpeakers::Loudest(n) => n.into(),
                ActiveSpeakers::All => "all".into(),
            },
            timing: timing_name(c.timing),
            input_delay_ms: match c.timing {
                Timing::Arrival => None,
                Timing::Input { delay_frames } => Some(u32::from(delay_frames) * c.ptime.millis()),
            },
            participant_count: c.participant_count(),
            created_at: timestamp(c.created_at),
            orphaned,
            participants: with_participants.then(|| {
                c.participants()
                    .map(|p| ParticipantView::new(&c.id, p))
                    .collect()
            }),
        }
    }
}

/// A participant as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ParticipantView {
    id: String,
    conference: String,
    local: String,
    remote: String,
    codec: &'static str,
    telephone_event_pt: Option<u8>,
    rtcp: bool,
    ssrc: u32,
    muted: bool,
    deaf: bool,
    gain_db: f32,
    hold: bool,
    created_at: String,
}

impl ParticipantView {
    fn new(conference: &str, p: &Participant) -> Self {
        ParticipantView {
            id: p.id.clone(),
            conference: conference.to_string(),
            local: p.local.to_string(),
            remote: p.remote.to_string(),
            codec: codec_name(p.codec),
            telephone_event_pt: p.telephone_event_pt,
            rtcp: p.rtcp,
            ssrc: p.ssrc,
            muted: p.settings.muted,
            deaf: p.settings.deaf,
            gain_db: p.settings.gain_db,
            hold: p.hold,
            created_at: timestamp(p.created_at),
        }
    }
}

/// `GET /v1/conferences`.
pub(crate) async fn list(State(s): State<ControlState>) -> Json<Value> {
    let t = s.lock_sessions();
    let r = s.lock_reclaim();
    let all: Vec<_> = t
        .conferences()
        .map(|c| ConferenceView::new(c, false, r.is_orphaned(c.key)))
        .collect();
    Json(serde_json::json!({ "conferences": all }))
}

/// `POST /v1/conferences`.
pub(crate) async fn create(
    State(s): State<ControlState>,
    JsonBody(req): JsonBody<CreateConference>,
) -> Result<(StatusCode, Json<ConferenceView>), ApiError> {
    let new = req.validate()?;
    let now = SystemTime::now();
    let mut t = s.lock_sessions();
    let c = t.create_conference(new, now)?;
    let (core, key, spec) = (c.core, c.key, c.spec());
    if let Err(e) = s.media.apply(core, MediaOp::CreateConference(spec)) {
        t.remove_conference(key);
        return Err(e.into());
    }
    let mut r = s.lock_reclaim();
    r.conference_created(key);
    s.events
        .publish(Event::session("conference_created", &c.id, None, now));
    // A conference made for a call manager whose lease lapsed is orphaned at once.
    s.orphan_if_lapsed(&t, &mut r, key);
    let c = t.conference_by_key(key).ok_or(ApiError::Gone)?;
    Ok((
        StatusCode::CREATED,
        Json(ConferenceView::new(c, true, r.is_orphaned(key))),
    ))
}

/// `GET /v1/conferences/{id}`.
pub(crate) async fn get(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConferenceView>, ApiError> {
    let t = s.lock_sessions();
    let c = t.conference(&id)?;
    let orphaned = s.lock_reclaim().is_orphaned(c.key);
    Ok(Json(ConferenceView::new(c, true, orphaned)))
}

/// `DELETE /v1/conferences/{id}`.
pub(crate) async fn delete(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let mut t = s.lock_sessions();
    let key = t.conference(&id)?.key;
    remove_conference(&s, &mut t, &mut s.lock_reclaim(), key, None)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/conferences/{id}/participants`.
pub(crate) async fn list_participants(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let t = s.lock_sessions();
    let c = t.conference(&id)?;
    let all: Vec<_> = c
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
) -> Result<(StatusCode, Json<ParticipantView>), ApiError> {
    let new = req.validate()?;
    let now = SystemTime::now();
    let view = {
        let mut t = s.lock_sessions();
        let mut r = s.lock_reclaim();
        let core = t.conference(&id)?.core;
        let p = t.add_participant(&id, new, now)?;
        let (view, spec) = (ParticipantView::new(&id, p), p.spec(r.config().liveness()));
        if let Err(e) = s.media.apply(core, MediaOp::AddParticipant(spec)) {
            t.remove_participant(spec.conf, spec.key);
            return Err(e.into());
        }
        r.participant_added(spec.conf, spec.key, s.clock.now());
        view
    };
    s.events.publish(Event::session(
        "participant_created",
        &id,
        Some(&view.id),
        now,
    ));
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/conferences/{id}/participants/{pid}`.
pub(crate) async fn get_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<Json<ParticipantView>, ApiError> {
    let t = s.lock_sessions();
    Ok(Json(ParticipantView::new(&id, t.participant(&id, &pid)?)))
}

/// `PATCH /v1/conferences/{id}/participants/{pid}`.
pub(crate) async fn patch_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(req): JsonBody<PatchParticipant>,
) -> Result<Json<ParticipantView>, ApiError> {
    let patch = req.validate()?;
    let mut t = s.lock_sessions();
    let core = t.conference(&id)?.core;
    let p = t.participant(&id, &pid)?;
    let (settings, hold) = patch.applied_to(p);
    let (conf, part) = (p.conf, p.key);
    if settings != p.settings {
        s.media.apply(
            core,
            MediaOp::UpdateParticipant {
                conf,
                part,
                settings,
            },
        )?;
    }
    let p =
        t.set_participant(conf, part, settings, hold)
            .ok_or(SessionError::NoSuchParticipant {
                conf: id.clone(),
                part: pid.clone(),
            })?;
    // While orphaned, a participant put on remote hold is deleted first.
    s.lock_reclaim().hold_changed(conf, part, hold);
    Ok(Json(ParticipantView::new(&id, p)))
}

/// `PUT /v1/conferences/{id}/participants/{pid}/rtp`: the participant's stream goes on
/// with another SSRC, sequence number and timestamp (for a mixer that takes a conference
/// over from another); 409 unless the conference has input timing.
pub(crate) async fn set_rtp_basis(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(req): JsonBody<PutRtpBasis>,
) -> Result<Json<ParticipantView>, ApiError> {
    let basis = RtpBasis {
        ssrc: req.ssrc,
        frame_timestamp: req.frame_timestamp,
        sequence: req.sequence,
        timestamp: req.timestamp,
    };
    let mut t = s.lock_sessions();
    let c = t.conference(&id)?;
    let (core, timing) = (c.core, c.timing);
    let p = t.participant(&id, &pid)?;
    let (conf, part) = (p.conf, p.key);
    if timing == Timing::Arrival {
        return Err(ApiError::Conflict(format!(
            "conference {id:?} mixes by arrival time: an RTP basis needs a conference \
             created with \"timing\": \"input\""
        )));
    }
    s.media
        .apply(core, MediaOp::SetRtpBasis { conf, part, basis })?;
    let p =
        t.set_participant_ssrc(conf, part, basis.ssrc)
            .ok_or(SessionError::NoSuchParticipant {
                conf: id.clone(),
                part: pid,
            })?;
    Ok(Json(ParticipantView::new(&id, p)))
}

/// `DELETE /v1/conferences/{id}/participants/{pid}`.
pub(crate) async fn delete_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut t = s.lock_sessions();
    let p = t.participant(&id, &pid)?;
    let (conf, part) = (p.conf, p.key);
    remove_participant(&s, &mut t, &mut s.lock_reclaim(), conf, part, None)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An event about a deletion, with its reclamation reason if it has one.
fn deleted(kind: &'static str, conf: &str, part: Option<&str>, reason: Option<Reason>) -> Event {
    let mut ev = Event::session(kind, conf, part, SystemTime::now());
    ev.detail.reason = reason.map(Reason::as_str);
    ev
}

/// Delete conference `key` and its participants on the dataplane and in the table,
/// with its orphan watch, and publish the events: what `DELETE /v1/conferences/{id}`
/// does, and what reclamation does (with a `reason`: then it is counted and a
/// `conference_released` event says why).
pub(crate) fn remove_conference(
    s: &ControlState,
    t: &mut Sessions,
    r: &mut Reclaim,
    key: ConfKey,
    reason: Option<Reason>,
) -> Result<(), ApiError> {
    let core = t.conference_by_key(key).ok_or(ApiError::Gone)?.core;
    s.media.apply(core, MediaOp::DeleteConference(key))?;
    r.conference_removed(key);
    let Some(c) = t.remove_conference(key) else {
        return Ok(());
    };
    for p in c.participants() {
        s.events
            .publish(deleted("participant_deleted", &c.id, Some(&p.id), reason));
    }
    if let Some(reason) = reason {
        s.reclaim_metrics
            .conference_released(reason, c.participant_count());
        s.events
            .publish(deleted("conference_released", &c.id, None, Some(reason)));
    }
    s.events
        .publish(deleted("conference_deleted", &c.id, None, reason));
    Ok(())
}

/// Delete participant `part` of conference `conf` on the dataplane, in the table and
/// in the orphan watch, and publish the event: what
/// `DELETE /v1/conferences/{id}/participants/{pid}` does, and what reclamation does
/// (with a `reason`, counted).
pub(crate) fn remove_participant(
    s: &ControlState,
    t: &mut Sessions,
    r: &mut Reclaim,
    conf: ConfKey,
    part: PartKey,
    reason: Option<Reason>,
) -> Result<(), ApiError> {
    let c = t.conference_by_key(conf).ok_or(ApiError::Gone)?;
    let (core, conf_id) = (c.core, c.id.clone());
    s.media
        .apply(core, MediaOp::RemoveParticipant { conf, part })?;
    r.participant_removed(conf, part);
    let Some(p) = t.remove_participant(conf, part) else {
        return Ok(());
    };
    if let Some(reason) = reason {
        s.reclaim_metrics.participant_deleted(reason);
    }
    s.events.publish(deleted(
        "participant_deleted",
        &conf_id,
        Some(&p.id),
        reason,
    ));
    Ok(())
}

/// `POST /v1/conferences/{id}/prompts`.
pub(crate) async fn play_prompt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<PlayPrompt>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let t = s.lock_sessions();
    let c = t.conference(&id)?;
    let part = match &req.participant {
        Some(pid) => Some(t.participant(&id, pid)?.key),
        None => None,
    };
    let Some(prompt) = s.media.prompt(&req.prompt) else {
        let names = s.media.prompt_names();
        let available = if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        };
        return Err(ApiError::NotFound(format!(
            "unknown prompt {:?}; available prompts: {available}",
            req.prompt
        )));
    };
    s.media.apply(
        c.core,
        MediaOp::PlayPrompt(PromptSpec {
            conf: c.key,
            part,
            prompt,
        }),
    )?;
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
                assert_eq!(spec.telephone_event_pt, None);
                assert!(!spec.rtcp);
                assert_eq!(u64::from(spec.ssrc), b["ssrc"].as_u64().unwrap());
                let s = ParticipantSettings {
                    muted: true,
                    deaf: false,
                    gain_db: -3.5,
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
                        gain_db: 6.0
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
        assert_eq!(code, StatusCode::NOT_FOUND);
        let msg = err["error"].as_str().unwrap();
        assert!(
            msg.contains("nope") && msg.contains("welcome, goodbye"),
            "{msg}"
        );
        let body = r#"{"prompt": "welcome", "participant": "p999"}"#;
        assert_eq!(
            post(&h, "/v1/conferences/c/prompts", body).await.0,
            StatusCode::NOT_FOUND
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
        let r = tower::ServiceExt::oneshot(crate::api::router(h.state.clone()), r)
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
        let owner = json!({"owner": "ü".repeat(super::MAX_OWNER_LEN)}).to_string();
        assert_eq!(post(&h, conf, &owner).await.0, StatusCode::CREATED);
        assert_eq!(
            post(&h, parts, &p("127.0.0.1:4000")).await.0,
            StatusCode::CREATED
        );
    }
}
