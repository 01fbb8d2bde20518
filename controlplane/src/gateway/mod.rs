//! The gateway role: clients' RTP terminates at this appliance's dataplane, which relays
//! it to the mixer hosting their conference and relays the mixer's streams back
//! ([`tutti_dataplane::relay`]). The gateway API takes the same conference and
//! participant calls as a mixer's, plus a `mixer` field when creating a conference and
//! `POST /v1/conferences/{id}/handover`, which moves the conference's mixing to another
//! mixer without the clients noticing ([`handover`]).
//!
//! Conferences are created on the mixers through their REST API with the same id, with
//! `"timing": "input"` (frames keyed to the timeline the relay maps every client's
//! timestamps onto) so that two mixers mix identically; each participant's `remote` on
//! the mixer is the gateway's own address and port towards the mixers.

mod handover;
pub mod mixer;
#[cfg(test)]
mod tests;

use crate::events::{timestamp, Event};
use crate::http::error::HttpError;
use crate::http::extract::{JsonBody, PathParams};
use crate::media::MediaError;
use crate::sessions::valid_conference_id;
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use handover::HandoverView;
use mixer::MixerClient;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tutti_control_core::peer::PeerError;
use tutti_control_core::sessions::SessionError;
use tutti_control_core::ControlError;
use tutti_dataplane::conference::{ConfKey, PartKey};
use tutti_dataplane::mixer::Ptime;
use tutti_dataplane::relay::{RelayCommand, RelayEvent, RelaySession, RelaySpec, Timeline};

/// The gateway's settings (YAML `gateway:`).
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayConfig {
    /// Base URLs of the mixers' APIs (`http://host:port`).
    pub mixers: Vec<String>,
    pub handover: HandoverSettings,
}

/// How handovers are run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HandoverSettings {
    /// Consecutive identical frames required of every client before the cut-over.
    pub validate_frames: u32,
    /// Validation must succeed within this long after duplication starts.
    pub validation_timeout: Duration,
    /// The most one mixer's stream may be delayed to line up with the other's.
    pub max_align: Duration,
    /// Each call to a mixer's API gives up after this long.
    pub mixer_timeout: Duration,
}

impl Default for HandoverSettings {
    fn default() -> Self {
        HandoverSettings {
            validate_frames: 5,
            validation_timeout: Duration::from_secs(2),
            max_align: Duration::from_millis(60),
            mixer_timeout: Duration::from_secs(2),
        }
    }
}

/// Handover counters and timings.
#[derive(Debug)]
pub struct HandoverMetrics {
    pub(crate) handovers: Family<ResultLabel, Counter>,
    pub(crate) duration: Histogram,
    pub(crate) extra_delay: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ResultLabel {
    result: &'static str,
}

impl Default for HandoverMetrics {
    fn default() -> Self {
        let m = HandoverMetrics {
            handovers: Family::default(),
            duration: Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
            extra_delay: Histogram::new([0.0, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1]),
        };
        for result in ["completed", "aborted"] {
            let _ = m.handovers.get_or_create(&ResultLabel { result });
        }
        m
    }
}

impl HandoverMetrics {
    fn finished(&self, result: &'static str, took: Duration) {
        self.handovers.get_or_create(&ResultLabel { result }).inc();
        self.duration.observe(took.as_secs_f64());
    }
}

/// One relayed participant.
#[derive(Clone, Debug)]
struct GwPart {
    id: String,
    key: PartKey,
    core: usize,
    /// Our RTP ports towards the client and towards the mixers.
    client_port: u16,
    mixer_port: u16,
    /// What the mixers are asked to create (the client's request, `remote` ours).
    add: Value,
    /// The participant on the hosting mixer: its id and RTP address.
    mixer_id: String,
    mixer_local: SocketAddrV4,
    /// The participant as the API shows it.
    view: Value,
}

/// One conference relayed through the gateway.
#[derive(Debug)]
struct GwConf {
    id: String,
    key: ConfKey,
    /// Base URL of the hosting mixer.
    mixer: String,
    /// What mixers are asked to create.
    create: Value,
    timeline: Timeline,
    parts: BTreeMap<String, GwPart>,
    created_at: SystemTime,
    /// The conference as the hosting mixer showed it at creation.
    view: Value,
    handover: Option<HandoverView>,
    /// Where a running handover hears its relay events.
    events: Option<mpsc::UnboundedSender<RelayEvent>>,
}

impl GwConf {
    fn busy(&self) -> Result<(), ControlError> {
        match &self.handover {
            Some(h) if !h.finished() => Err(ControlError::HandingOver {
                conf: self.id.clone(),
                to: h.to.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn view(&self, with_participants: bool) -> Value {
        let mut v = self.view.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("mixer".into(), self.mixer.clone().into());
            o.insert("participant_count".into(), self.parts.len().into());
            o.insert("created_at".into(), timestamp(self.created_at).into());
            o.insert(
                "handover".into(),
                serde_json::to_value(&self.handover).unwrap_or(Value::Null),
            );
            o.remove("core");
            if with_participants {
                let parts: Vec<Value> = self.parts.values().map(|p| p.view.clone()).collect();
                o.insert("participants".into(), parts.into());
            } else {
                o.remove("participants");
            }
        }
        v
    }
}

#[derive(Debug, Default)]
struct GwTable {
    confs: BTreeMap<String, GwConf>,
    by_key: HashMap<ConfKey, String>,
    last_conf: u32,
    last_part: u32,
}

impl GwTable {
    fn conf(&self, id: &str) -> Result<&GwConf, ControlError> {
        self.confs
            .get(id)
            .ok_or_else(|| SessionError::NoSuchConference(id.to_string()).into())
    }

    fn conf_mut(&mut self, id: &str) -> Result<&mut GwConf, ControlError> {
        self.confs
            .get_mut(id)
            .ok_or_else(|| SessionError::NoSuchConference(id.to_string()).into())
    }
}

/// The gateway role's state.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    client: MixerClient,
    table: Mutex<GwTable>,
    pub metrics: HandoverMetrics,
}

impl Gateway {
    /// The gateway for `config`.
    pub fn new(config: GatewayConfig) -> Result<Gateway, String> {
        Ok(Gateway {
            client: MixerClient::new(config.handover.mixer_timeout)?,
            config,
            table: Mutex::default(),
            metrics: HandoverMetrics::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, GwTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An event from a core's relay: to the handover running for its conference.
    pub fn relay_event(&self, ev: RelayEvent) {
        let t = self.lock();
        let tx = t
            .by_key
            .get(&ev.conf)
            .and_then(|id| t.confs.get(id))
            .and_then(|c| c.events.as_ref());
        if let Some(tx) = tx {
            let _ = tx.send(ev);
        }
    }

    /// The configured mixer with the most free capacity (`except` excluded).
    async fn pick_mixer(&self, except: Option<&str>) -> Result<String, ControlError> {
        let mut best: Option<(u64, &String)> = None;
        let mut errors = Vec::new();
        for m in self
            .config
            .mixers
            .iter()
            .filter(|m| Some(m.as_str()) != except)
        {
            match self.client.free_capacity(m).await {
                Ok(free) if best.is_none_or(|(b, _)| free > b) => best = Some((free, m)),
                Ok(_) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        match best {
            Some((free, m)) if free > 0 => Ok(m.clone()),
            Some(_) => Err(ControlError::NoMixer("every mixer is full".into())),
            None if errors.is_empty() => Err(ControlError::NoMixer(format!(
                "no {}mixer is configured (gateway.mixers)",
                if except.is_some() { "other " } else { "" }
            ))),
            None => Err(ControlError::PeersFailed {
                what: "answered",
                errors: errors.join("; "),
            }),
        }
    }
}

/// A request the gateway refuses as invalid.
fn invalid(message: String) -> HttpError {
    ControlError::Invalid(message).into()
}

fn gateway(s: &ControlState) -> Result<&Gateway, ControlError> {
    s.gateway.as_deref().ok_or(ControlError::NotAGateway)
}

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
        ("/v1/conferences/{id}/handover", post(handover::start)),
        ("/v1/call-managers/{cm}/heartbeat", post(heartbeat)),
    ]
}

fn object(body: Value, what: &str) -> Result<Map<String, Value>, ControlError> {
    match body {
        Value::Object(o) => Ok(o),
        _ => Err(ControlError::Invalid(format!(
            "{what} must be a JSON object"
        ))),
    }
}

/// A `ip:port` field of a mixer's answer.
fn addr_field(v: &Value, field: &str, mixer: &str) -> Result<SocketAddrV4, ControlError> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            PeerError::BadAnswer {
                url: mixer.to_string(),
                reason: format!("no valid {field:?}"),
            }
            .into()
        })
}

/// `GET /v1/conferences`.
async fn list(State(s): State<ControlState>) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let t = g.lock();
    let all: Vec<Value> = t.confs.values().map(|c| c.view(false)).collect();
    Ok(Json(json!({ "conferences": all })))
}

/// `POST /v1/conferences`: create the conference on a mixer.
async fn create(
    State(s): State<ControlState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    let g = gateway(&s)?;
    let mut body = object(body, "the request")?;
    let mixer = match body.remove("mixer") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if m.starts_with("http://") => Some(m),
        Some(m) => {
            return Err(invalid(format!(
                "mixer must be a mixer's base URL such as \"http://198.18.0.11:8080\", not {m}"
            )))
        }
    };
    for field in ["timing", "input_delay_ms"] {
        if body.contains_key(field) {
            return Err(invalid(format!(
                "{field} is chosen by the gateway (its mixers mix by input timestamps)"
            )));
        }
    }
    let ptime_ms = match body.get("ptime_ms") {
        None => Ptime::default().millis(),
        Some(v) => v
            .as_u64()
            .and_then(|ms| u32::try_from(ms).ok())
            .filter(|ms| Ptime::from_millis(*ms).is_some())
            .ok_or_else(|| {
                ControlError::Invalid(format!("ptime_ms must be 10, 20, 30 or 40, not {v}"))
            })?,
    };
    let ptime = Ptime::from_millis(ptime_ms).unwrap_or_default();
    // Reserve the id and key before going to the mixer, so two requests cannot race.
    let (id, key) = {
        let mut t = g.lock();
        let id = match body.get("id") {
            None => {
                t.last_conf = t.last_conf.wrapping_add(1);
                format!("conf-{}", t.last_conf)
            }
            Some(Value::String(id)) if valid_conference_id(id) => id.clone(),
            Some(v) => {
                return Err(invalid(format!(
                    "id must be 1 to 64 letters, digits, '-', '_' or '.', not {v}"
                )))
            }
        };
        if t.confs.contains_key(&id) {
            return Err(SessionError::DuplicateConference(id).into());
        }
        let key = loop {
            t.last_conf = t.last_conf.wrapping_add(1);
            let k = ConfKey(t.last_conf);
            if !t.by_key.contains_key(&k) {
                break k;
            }
        };
        t.by_key.insert(key, id.clone());
        (id, key)
    };
    let result = async {
        let mixer = match mixer {
            Some(m) => m,
            None => g.pick_mixer(None).await?,
        };
        body.insert("id".into(), id.clone().into());
        body.insert("timing".into(), "input".into());
        let create = Value::Object(body);
        let view = g
            .client
            .call(Method::POST, &mixer, "/v1/conferences", Some(&create))
            .await?;
        Ok::<_, HttpError>((mixer, create, view))
    }
    .await;
    let mut t = g.lock();
    let (mixer, create, view) = match result {
        Ok(r) => r,
        Err(e) => {
            t.by_key.remove(&key);
            return Err(e);
        }
    };
    let now = SystemTime::now();
    let conf = GwConf {
        id: id.clone(),
        key,
        mixer,
        create,
        timeline: Timeline {
            base: rand::random(),
            origin: s.clock.now(),
            ptime,
        },
        parts: BTreeMap::new(),
        created_at: now,
        view,
        handover: None,
        events: None,
    };
    let out = conf.view(true);
    t.confs.insert(id.clone(), conf);
    drop(t);
    s.events
        .publish(Event::session("conference_created", &id, None, now));
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/conferences/{id}`.
async fn get_conf(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let t = g.lock();
    Ok(Json(t.conf(&id)?.view(true)))
}

/// Stop relaying `p` and free its ports.
fn unrelay(s: &ControlState, p: &GwPart) {
    let _ = s.media.relay(p.core, RelayCommand::Remove(p.key));
    s.control()
        .release_port_pairs(p.core, &[p.client_port, p.mixer_port]);
}

/// `DELETE /v1/conferences/{id}`: on its mixer, then here.
async fn delete_conf(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, HttpError> {
    let g = gateway(&s)?;
    let mixer = {
        let t = g.lock();
        let c = t.conf(&id)?;
        c.busy()?;
        c.mixer.clone()
    };
    let path = format!("/v1/conferences/{id}");
    match g.client.call(Method::DELETE, &mixer, &path, None).await {
        Ok(_) | Err(PeerError::Refused { status: 404, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let conf = {
        let mut t = g.lock();
        let c = t.confs.remove(&id).ok_or(ControlError::Gone)?;
        t.by_key.remove(&c.key);
        c
    };
    for p in conf.parts.values() {
        unrelay(&s, p);
    }
    s.events.publish(Event::session(
        "conference_deleted",
        &id,
        None,
        SystemTime::now(),
    ));
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/conferences/{id}/participants`.
async fn list_participants(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let t = g.lock();
    let parts: Vec<Value> = t
        .conf(&id)?
        .parts
        .values()
        .map(|p| p.view.clone())
        .collect();
    Ok(Json(json!({ "participants": parts })))
}

/// The participant view a client's call manager sees: the mixer's, with our addresses.
fn part_view(mixer_view: &Value, id: &str, local: SocketAddrV4, client: SocketAddrV4) -> Value {
    let mut v = mixer_view.clone();
    if let Some(o) = v.as_object_mut() {
        if let Some(mid) = o.insert("id".into(), id.into()) {
            o.insert("mixer_participant".into(), mid);
        }
        o.insert("local".into(), local.to_string().into());
        o.insert("remote".into(), client.to_string().into());
    }
    v
}

/// `POST /v1/conferences/{id}/participants`: a port pair towards the client and one
/// towards the mixers here, the participant on the mixer, then the relay.
async fn add_participant(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    let g = gateway(&s)?;
    let mut body = object(body, "the request")?;
    let client: SocketAddrV4 = body
        .get("remote")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .filter(|a: &SocketAddrV4| a.port() != 0 && !a.ip().is_unspecified())
        .ok_or_else(|| {
            ControlError::Invalid(
                "remote must be an IPv4 address and port such as \"198.18.0.2:4000\"".into(),
            )
        })?;
    let (mixer, timeline, conf_key) = {
        let t = g.lock();
        let c = t.conf(&id)?;
        c.busy()?;
        (c.mixer.clone(), c.timeline, c.key)
    };
    let (core, ports) = s
        .control()
        .reserve_port_pairs(2)
        .ok_or(ControlError::NoRelayPorts)?;
    let (client_port, mixer_port) = (ports[0], ports[1]);
    let our_ip = s
        .media
        .cores()
        .get(core)
        .map(|c| c.local_ip)
        .ok_or_else(|| ControlError::Media(MediaError::Rejected(format!("no core {core}"))))?;
    body.insert(
        "remote".into(),
        SocketAddrV4::new(our_ip, mixer_port).to_string().into(),
    );
    let add = Value::Object(body);
    let path = format!("/v1/conferences/{id}/participants");
    let answer = match g.client.call(Method::POST, &mixer, &path, Some(&add)).await {
        Ok(v) => v,
        Err(e) => {
            s.control().release_port_pairs(core, &ports);
            return Err(e.into());
        }
    };
    let mixer_id = answer
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let placed = addr_field(&answer, "local", &mixer).and_then(|mixer_local| {
        let key = {
            let mut t = g.lock();
            t.last_part = t.last_part.wrapping_add(1);
            PartKey(t.last_part)
        };
        let spec = RelaySpec {
            conf: conf_key,
            part: key,
            client,
            client_port,
            mixer_port,
            mixer: mixer_local,
            timeline,
        };
        s.media
            .relay(core, RelayCommand::Add(RelaySession::new(spec)))?;
        Ok((key, mixer_local))
    });
    let (key, mixer_local) = match placed {
        Ok(p) => p,
        Err(e) => {
            let _ = g
                .client
                .call(Method::DELETE, &mixer, &format!("{path}/{mixer_id}"), None)
                .await;
            s.control().release_port_pairs(core, &ports);
            return Err(e.into());
        }
    };
    let pid = format!("p{}", key.0);
    let local = SocketAddrV4::new(our_ip, client_port);
    let part = GwPart {
        id: pid.clone(),
        key,
        core,
        client_port,
        mixer_port,
        add,
        mixer_id,
        mixer_local,
        view: part_view(&answer, &pid, local, client),
    };
    let view = part.view.clone();
    let gone = {
        let mut t = g.lock();
        match t.confs.get_mut(&id) {
            Some(c) => {
                c.parts.insert(pid.clone(), part);
                None
            }
            None => Some(part),
        }
    };
    if let Some(p) = gone {
        unrelay(&s, &p);
        return Err(ControlError::Gone.into());
    }
    s.events.publish(Event::session(
        "participant_created",
        &id,
        Some(&pid),
        SystemTime::now(),
    ));
    Ok((StatusCode::CREATED, Json(view)))
}

fn find_part<'a>(
    t: &'a GwTable,
    id: &str,
    pid: &str,
) -> Result<(&'a GwConf, &'a GwPart), ControlError> {
    let c = t.conf(id)?;
    let p = c
        .parts
        .get(pid)
        .ok_or_else(|| SessionError::NoSuchParticipant {
            conf: id.to_string(),
            part: pid.to_string(),
        })?;
    Ok((c, p))
}

/// The mixer hosting participant `pid` of conference `id` and the participant's path
/// there; refused while the conference is being handed over.
fn on_mixer(g: &Gateway, id: &str, pid: &str) -> Result<(String, String), ControlError> {
    let t = g.lock();
    let (c, p) = find_part(&t, id, pid)?;
    c.busy()?;
    let path = format!("/v1/conferences/{id}/participants/{}", p.mixer_id);
    Ok((c.mixer.clone(), path))
}

/// `GET /v1/conferences/{id}/participants/{pid}`.
async fn get_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let t = g.lock();
    Ok(Json(find_part(&t, &id, &pid)?.1.view.clone()))
}

/// `PATCH /v1/conferences/{id}/participants/{pid}`: on the hosting mixer.
async fn patch_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let (mixer, path) = on_mixer(g, &id, &pid)?;
    let answer = g
        .client
        .call(Method::PATCH, &mixer, &path, Some(&body))
        .await?;
    let mut t = g.lock();
    let p = t
        .conf_mut(&id)?
        .parts
        .get_mut(&pid)
        .ok_or(ControlError::Gone)?;
    for field in ["muted", "deaf", "gain_db", "hold"] {
        if let (Some(v), Some(o)) = (answer.get(field), p.view.as_object_mut()) {
            o.insert(field.into(), v.clone());
        }
        // Later mixers (after a handover) are created with the new settings too.
        if let (Some(v), Some(o)) = (answer.get(field), p.add.as_object_mut()) {
            if field != "hold" {
                o.insert(field.into(), v.clone());
            }
        }
    }
    Ok(Json(p.view.clone()))
}

/// `DELETE /v1/conferences/{id}/participants/{pid}`.
async fn delete_participant(
    State(s): State<ControlState>,
    PathParams((id, pid)): PathParams<(String, String)>,
) -> Result<StatusCode, HttpError> {
    let g = gateway(&s)?;
    let (mixer, path) = on_mixer(g, &id, &pid)?;
    match g.client.call(Method::DELETE, &mixer, &path, None).await {
        Ok(_) | Err(PeerError::Refused { status: 404, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let p = {
        let mut t = g.lock();
        t.conf_mut(&id)?
            .parts
            .remove(&pid)
            .ok_or(ControlError::Gone)?
    };
    unrelay(&s, &p);
    s.events.publish(Event::session(
        "participant_deleted",
        &id,
        Some(&pid),
        SystemTime::now(),
    ));
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/conferences/{id}/prompts`: played by the hosting mixer.
async fn play_prompt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    let g = gateway(&s)?;
    let mut body = object(body, "the request")?;
    let mixer = {
        let t = g.lock();
        let c = t.conf(&id)?;
        c.busy()?;
        if let Some(pid) = body.get("participant").and_then(Value::as_str) {
            let p = c
                .parts
                .get(pid)
                .ok_or_else(|| SessionError::NoSuchParticipant {
                    conf: id.clone(),
                    part: pid.to_string(),
                })?;
            body.insert("participant".into(), p.mixer_id.clone().into());
        }
        c.mixer.clone()
    };
    let path = format!("/v1/conferences/{id}/prompts");
    let answer = g
        .client
        .call(Method::POST, &mixer, &path, Some(&Value::Object(body)))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// `POST /v1/conferences/{id}/adopt`: on the hosting mixer (whose orphan procedure it
/// stops); a later handover creates the conference with the new owner.
async fn adopt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let mixer = {
        let t = g.lock();
        let c = t.conf(&id)?;
        c.busy()?;
        c.mixer.clone()
    };
    let path = format!("/v1/conferences/{id}/adopt");
    let answer = g
        .client
        .call(Method::POST, &mixer, &path, Some(&body))
        .await?;
    let mut t = g.lock();
    let c = t.conf_mut(&id)?;
    if let (Some(owner), Some(o)) = (answer.get("owner"), c.create.as_object_mut()) {
        o.insert("owner".into(), owner.clone());
    }
    Ok(Json(c.view(true)))
}

/// `POST /v1/call-managers/{cm}/heartbeat`: to every mixer (a call manager's conferences
/// may be on any of them, and move). The first mixer's answer; a refusal of the request
/// itself (4xx) as the mixer gave it; 502 when no mixer answered.
async fn heartbeat(
    State(s): State<ControlState>,
    PathParams(cm): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, HttpError> {
    let g = gateway(&s)?;
    let path = format!("/v1/call-managers/{cm}/heartbeat");
    let mut answer = None;
    let mut failed = Vec::new();
    for m in &g.config.mixers {
        match g.client.call(Method::POST, m, &path, Some(&body)).await {
            Ok(v) => {
                answer.get_or_insert(v);
            }
            Err(
                e @ PeerError::Refused {
                    status: 400..=499, ..
                },
            ) => return Err(ControlError::from(e).into()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    match answer {
        Some(v) => Ok(Json(v)),
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
