//! Call-manager leases and orphan reclamation wired to the session table and the
//! dataplane: the `/v1/call-managers` endpoints, `POST /v1/conferences/{id}/adopt`,
//! [`ControlState::poll_orphans`] (which the binary runs every few milliseconds) and the
//! execution of the orphan watches' [`Action`]s through the same deletion code the
//! `DELETE` endpoints use.

use crate::api::{ApiError, JsonBody, PathParams};
use crate::conferences::{check_owner, remove_conference, remove_participant, ConferenceView};
use crate::events::Event;
use crate::leases::{Leases, Renewal};
use crate::media::MediaError;
use crate::orphan::{Action, ConferenceWatch, OrphanConfig, PromptTable, Reason, Target};
use crate::sessions::Sessions;
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{ConfKey, MediaEvent, MediaOp, PartKey, PromptSpec};

/// The lease table, one orphan watch per conference, and the reclamation steps the
/// dataplane was too busy to take (retried on the next poll).
#[derive(Debug)]
pub struct Reclaim {
    config: OrphanConfig,
    prompts: PromptTable,
    leases: Leases,
    watches: HashMap<ConfKey, ConferenceWatch>,
    retry: Vec<(ConfKey, Action)>,
}

impl Reclaim {
    /// No leases and no conferences yet.
    pub fn new(config: OrphanConfig, prompts: PromptTable) -> Self {
        Reclaim {
            leases: Leases::new(config.lease_misses),
            config,
            prompts,
            watches: HashMap::new(),
            retry: Vec::new(),
        }
    }

    /// The reclamation timers.
    pub fn config(&self) -> &OrphanConfig {
        &self.config
    }

    /// The lease table.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Whether conference `key` is orphaned.
    pub fn is_orphaned(&self, key: ConfKey) -> bool {
        self.watches.get(&key).is_some_and(|w| w.is_orphaned())
    }

    /// How many conferences are orphaned.
    pub fn orphaned(&self) -> usize {
        self.watches.values().filter(|w| w.is_orphaned()).count()
    }

    pub(crate) fn conference_created(&mut self, key: ConfKey) {
        self.watches
            .insert(key, ConferenceWatch::new(self.config, self.prompts));
    }

    pub(crate) fn conference_removed(&mut self, key: ConfKey) {
        self.watches.remove(&key);
        self.retry.retain(|(k, _)| *k != key);
    }

    pub(crate) fn participant_added(&mut self, conf: ConfKey, part: PartKey, now: Instant) {
        if let Some(w) = self.watches.get_mut(&conf) {
            w.add_participant(part, now);
        }
    }

    pub(crate) fn participant_removed(&mut self, conf: ConfKey, part: PartKey) {
        if let Some(w) = self.watches.get_mut(&conf) {
            w.remove_participant(part);
        }
    }

    pub(crate) fn hold_changed(&mut self, conf: ConfKey, part: PartKey, hold: bool) {
        if let Some(w) = self.watches.get_mut(&conf) {
            w.set_hold(part, hold);
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    reason: &'static str,
}

/// Reclamation counters, by reason.
#[derive(Debug)]
pub struct ReclaimMetrics {
    pub(crate) reclaimed: Family<ReasonLabel, Counter>,
    pub(crate) deleted: Family<ReasonLabel, Counter>,
}

impl Default for ReclaimMetrics {
    /// Every reason at zero, so that the series exist before the first reclamation.
    fn default() -> Self {
        let m = ReclaimMetrics {
            reclaimed: Family::default(),
            deleted: Family::default(),
        };
        for r in Reason::ALL {
            let label = ReasonLabel { reason: r.as_str() };
            let _ = m.reclaimed.get_or_create(&label);
            let _ = m.deleted.get_or_create(&label);
        }
        m
    }
}

impl ReclaimMetrics {
    /// Count one participant deleted by reclamation.
    pub fn participant_deleted(&self, reason: Reason) {
        let label = ReasonLabel {
            reason: reason.as_str(),
        };
        self.deleted.get_or_create(&label).inc();
    }

    /// Count one conference released, with the participants it still had.
    pub fn conference_released(&self, reason: Reason, participants: usize) {
        let label = ReasonLabel {
            reason: reason.as_str(),
        };
        self.reclaimed.get_or_create(&label).inc();
        self.deleted
            .get_or_create(&label)
            .inc_by(u64::try_from(participants).unwrap_or(u64::MAX));
    }
}

impl ControlState {
    /// Run the lease and orphan timers due now: lapse leases (orphaning their call
    /// managers' conferences), retry the steps the dataplane was too busy for, and take
    /// every orphan watch's due steps.
    pub fn poll_orphans(&self) {
        let now = self.clock.now();
        let mut t = self.lock_sessions();
        let mut r = self.lock_reclaim();
        for cm in r.leases.poll(now) {
            self.events
                .publish(Event::lease("lease_lapsed", &cm, SystemTime::now()));
            let owned: Vec<ConfKey> = t
                .conferences()
                .filter(|c| c.owner.as_deref() == Some(cm.as_str()))
                .map(|c| c.key)
                .collect();
            for key in owned {
                self.orphan(&t, &mut r, key, &cm, now);
            }
        }
        for (key, action) in std::mem::take(&mut r.retry) {
            self.execute(&mut t, &mut r, key, action);
        }
        let due: Vec<ConfKey> = r
            .watches
            .iter()
            .filter(|(_, w)| w.is_orphaned() && w.poll_timeout().is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let actions = match r.watches.get_mut(&key) {
                Some(w) => w.handle_timeout(now),
                None => continue,
            };
            for a in actions {
                self.execute(&mut t, &mut r, key, a);
            }
        }
    }

    /// Orphan conference `key` if its owner's lease has lapsed.
    pub(crate) fn orphan_if_lapsed(&self, t: &Sessions, r: &mut Reclaim, key: ConfKey) {
        let owner = t.conference_by_key(key).and_then(|c| c.owner.clone());
        if let Some(cm) = owner.filter(|cm| r.leases.is_lapsed(cm)) {
            self.orphan(t, r, key, &cm, self.clock.now());
        }
    }

    /// Start the orphan procedure of conference `key`, whose owner `cm` is gone.
    fn orphan(&self, t: &Sessions, r: &mut Reclaim, key: ConfKey, cm: &str, now: Instant) {
        let (Some(c), Some(w)) = (t.conference_by_key(key), r.watches.get_mut(&key)) else {
            return;
        };
        if w.orphan(now) {
            let mut ev = Event::session("conference_orphaned", &c.id, None, SystemTime::now());
            ev.detail.call_manager = Some(cm.to_string());
            self.events.publish(ev);
        }
    }

    /// Feed a dataplane event to its conference's watch (the caller has checked that
    /// the conference and participant are live on the event's core).
    pub(crate) fn watch_event(&self, t: &mut Sessions, r: &mut Reclaim, ev: &MediaEvent) {
        let actions = match r.watches.get_mut(&ev.conf) {
            Some(w) => w.handle_event(ev.part, ev.at, ev.kind),
            None => return,
        };
        for a in actions {
            self.execute(t, r, ev.conf, a);
        }
    }

    /// Carry out one step of conference `key`'s procedure.
    fn execute(&self, t: &mut Sessions, r: &mut Reclaim, key: ConfKey, action: Action) {
        let Some(c) = t.conference_by_key(key) else {
            return;
        };
        let core = c.core;
        let event = |kind, part: Option<PartKey>| {
            let part = part.and_then(|k| t.ids(core, key, Some(k))?.1);
            Event::session(kind, &c.id, part, SystemTime::now())
        };
        match action {
            Action::PlayPrompt {
                target,
                prompt,
                reason,
                available,
            } => {
                let part = match target {
                    Target::All => None,
                    Target::Part(k) => Some(k),
                };
                let mut ev = event("prompt_played", part);
                ev.detail.prompt = Some(prompt.name().to_string());
                ev.detail.reason = Some(reason.as_str());
                ev.detail.missing = Some(!available);
                if let Some((id, _)) = r.prompts.get(prompt) {
                    let spec = PromptSpec {
                        conf: key,
                        part,
                        prompt: id,
                    };
                    if let Err(e) = self.media.apply(core, MediaOp::PlayPrompt(spec)) {
                        ev.detail.error = Some(e.to_string());
                    }
                }
                self.events.publish(ev);
            }
            Action::ReplyHeard { part, by } => {
                let mut ev = event("reply_heard", Some(part));
                ev.detail.by = Some(by.as_str());
                self.events.publish(ev);
            }
            Action::DeleteParticipant { part, reason } => {
                let done = remove_participant(self, t, r, key, part, Some(reason));
                self.retry_if_busy(r, key, action, done);
            }
            Action::Release { reason } => {
                let done = remove_conference(self, t, r, key, Some(reason));
                self.retry_if_busy(r, key, action, done);
            }
        }
    }

    /// Keep `action` for the next poll if the dataplane was too busy to take it; other
    /// failures mean the conference or participant is gone already.
    fn retry_if_busy(
        &self,
        r: &mut Reclaim,
        key: ConfKey,
        action: Action,
        done: Result<(), ApiError>,
    ) {
        if let Err(ApiError::Media(MediaError::Busy(_))) = done {
            r.retry.push((key, action));
        }
    }
}

/// `POST /v1/call-managers/{cm}/heartbeat` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Heartbeat {
    interval_ms: u64,
}

/// A call manager's lease as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct CallManagerView {
    id: String,
    interval_ms: u64,
    lease_misses: u32,
    /// The lease is live.
    up: bool,
    last_heartbeat_ms_ago: u64,
    /// Until the lease lapses (0 once it has).
    expires_in_ms: u64,
    /// Conferences it owns.
    conferences: usize,
    /// Of those, the orphaned ones.
    orphaned_conferences: usize,
}

/// Conferences and orphaned conferences per owner.
fn owned_counts(t: &Sessions, r: &Reclaim) -> BTreeMap<String, (usize, usize)> {
    let mut counts = BTreeMap::new();
    for c in t.conferences() {
        if let Some(owner) = &c.owner {
            let e: &mut (usize, usize) = counts.entry(owner.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(r.is_orphaned(c.key));
        }
    }
    counts
}

fn call_manager_view(
    r: &Reclaim,
    counts: &BTreeMap<String, (usize, usize)>,
    cm: &str,
    now: Instant,
) -> Option<CallManagerView> {
    let (_, lease) = r.leases.iter().find(|(name, _)| *name == cm)?;
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (conferences, orphaned_conferences) = counts.get(cm).copied().unwrap_or_default();
    Some(CallManagerView {
        id: cm.to_string(),
        interval_ms: ms(lease.interval),
        lease_misses: r.leases.misses(),
        up: !lease.lapsed,
        last_heartbeat_ms_ago: ms(now.saturating_since(lease.last)),
        expires_in_ms: ms(r.leases.expiry(lease).saturating_since(now)),
        conferences,
        orphaned_conferences,
    })
}

/// `GET /v1/call-managers`.
pub(crate) async fn list_call_managers(State(s): State<ControlState>) -> Json<serde_json::Value> {
    let now = s.clock.now();
    let t = s.lock_sessions();
    let r = s.lock_reclaim();
    let counts = owned_counts(&t, &r);
    let all: Vec<CallManagerView> = r
        .leases
        .iter()
        .filter_map(|(cm, _)| call_manager_view(&r, &counts, cm, now))
        .collect();
    Json(serde_json::json!({ "call_managers": all }))
}

/// `POST /v1/call-managers/{cm}/heartbeat`: create (201) or renew (200) the lease; a
/// renewed lapsed lease ends the orphaned state of the call manager's conferences.
pub(crate) async fn heartbeat(
    State(s): State<ControlState>,
    PathParams(cm): PathParams<String>,
    JsonBody(req): JsonBody<Heartbeat>,
) -> Result<(StatusCode, Json<CallManagerView>), ApiError> {
    check_owner("call manager id", &cm)?;
    let now = s.clock.now();
    let t = s.lock_sessions();
    let mut r = s.lock_reclaim();
    let renewal = r.leases.heartbeat(&cm, req.interval_ms, now)?;
    if renewal == Renewal::Restored {
        s.events
            .publish(Event::lease("lease_renewed", &cm, SystemTime::now()));
        for c in t.conferences() {
            if c.owner.as_deref() != Some(cm.as_str()) {
                continue;
            }
            if let Some(w) = r.watches.get_mut(&c.key) {
                if w.adopt() {
                    s.events.publish(adopted_event(&c.id, &cm, Some(&cm)));
                }
            }
        }
    }
    let counts = owned_counts(&t, &r);
    let view = call_manager_view(&r, &counts, &cm, now).ok_or(ApiError::Gone)?;
    let status = if renewal == Renewal::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

fn adopted_event(conf: &str, owner: &str, previous: Option<&str>) -> Event {
    let mut ev = Event::session("conference_adopted", conf, None, SystemTime::now());
    ev.detail.call_manager = Some(owner.to_string());
    ev.detail.previous_owner = previous.map(str::to_string);
    ev
}

/// `POST /v1/conferences/{id}/adopt` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Adopt {
    owner: String,
}

/// `POST /v1/conferences/{id}/adopt`: a (backup) call manager becomes the owner; the
/// orphan procedure, if it runs, stops (unless the new owner's lease has lapsed too).
pub(crate) async fn adopt(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<Adopt>,
) -> Result<Json<ConferenceView>, ApiError> {
    check_owner("owner", &req.owner)?;
    let mut t = s.lock_sessions();
    let mut r = s.lock_reclaim();
    let c = t.conference(&id)?;
    let (key, previous) = (c.key, c.owner.clone());
    t.set_owner(key, req.owner.clone());
    if let Some(w) = r.watches.get_mut(&key) {
        w.adopt();
    }
    s.events
        .publish(adopted_event(&id, &req.owner, previous.as_deref()));
    s.orphan_if_lapsed(&t, &mut r, key);
    let c = t.conference_by_key(key).ok_or(ApiError::Gone)?;
    Ok(Json(ConferenceView::new(c, true, r.is_orphaned(key))))
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

    async fn metric(h: &Harness, sample: &str) -> f64 {
        let (_, text) = get(&h.state, "/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
    }

    /// A conference `id` owned by `owner` with `n` participants; their dataplane keys.
    async fn conference(h: &Harness, id: &str, owner: &str, n: u16) -> Vec<(PartKey, String)> {
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
        let key = h.state.lock_sessions().conference(conf).unwrap().key;
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
            h.state.poll_orphans();
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
        assert_eq!(b["orphaned"], false, "no lease, never orphaned: {b}");
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
        // A conference created for the lapsed call manager is orphaned at once.
        let body = r#"{"id": "late", "owner": "cm1"}"#;
        let (_, late) = call(&h, Method::POST, "/v1/conferences", Some(body)).await;
        assert_eq!(late["orphaned"], true);
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
        let conf = h.state.lock_sessions().conference("c").unwrap().key;
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
        let (code, c) = call(
            &h,
            Method::POST,
            "/v1/conferences/c/adopt",
            Some(r#"{"owner": "backup"}"#),
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
        // Adopted by a call manager whose own lease lapsed: orphaned again.
        let (_, c) = call(
            &h,
            Method::POST,
            "/v1/conferences/c/adopt",
            Some(r#"{"owner": "cm1"}"#),
        )
        .await;
        assert_eq!(c["orphaned"], true, "{c}");
    }
}
