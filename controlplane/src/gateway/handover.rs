//! `POST /v1/conferences/{id}/handover`: move a conference's mixing from mixer A to
//! mixer B while every client keeps one unbroken RTP stream.
//!
//! a. The same conference, with the same participants, is created on B.
//! b. Each client's relay starts duplicating the client's inbound packets to B too.
//! c. In `instruct` mode B is told (its `PUT …/rtp`) to send the SSRC, sequence numbers
//!    and timestamps the client already gets; in `rewrite` mode the relay finds the
//!    offsets and rewrites B's packets in place.
//! d./e. Each client's splice (on its dataplane core) aligns the two streams and
//!    validates K consecutive identical frames.
//! f. Once every client is validated the splices may cut over, each between two of its
//!    packets; then the relays stop feeding A and the conference is deleted on A.
//! g. Anything failing before the cut-over (B unreachable, validation not done within
//!    the timeout, a splice failing) aborts: clients stay on A, B's copy is deleted, and
//!    the reason is reported. If A itself stops sending during the handover, each
//!    client whose stream from A has been silent for 100 ms while B's keeps coming is
//!    failed over to B at once (noted in the result); once the clients are on B, A
//!    failing (its conference cannot be deleted) is noted too.

use super::{gateway, invalid, Gateway, GwPart};
use crate::events::{timestamp, Detail, Event};
use crate::http::error::HttpError;
use crate::http::extract::{JsonBody, PathParams};
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tutti_control_core::ControlError;
use tutti_dataplane::relay::splice::{FailReason, RtpHead, Splice, SpliceConfig, SpliceEvent};
use tutti_dataplane::relay::{RelayCommand, RelayEvent, RelayEventKind};
use tutti_dataplane::wire::rewrite::RtpRewrite;

/// How long after the commit every client must have cut over.
const CUT_OVER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the relays have to confirm that duplication started.
const START_TIMEOUT: Duration = Duration::from_secs(1);

/// How B's stream is made to continue A's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Rewrite,
    Instruct,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Rewrite => "rewrite",
            Mode::Instruct => "instruct",
        }
    }
}

/// A handover as `GET /v1/conferences/{id}` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HandoverView {
    /// `creating`, `duplicating`, `validating`, `cutting_over`, `completed` or
    /// `aborted`.
    pub state: &'static str,
    pub from: String,
    pub to: String,
    pub mode: &'static str,
    /// Why it was aborted (or what went wrong after the cut-over).
    pub reason: Option<String>,
    pub started_at: String,
    /// From the request to the last client's cut-over.
    pub cutover_ms: Option<f64>,
    /// From the request to the end.
    pub duration_ms: Option<f64>,
    /// The largest delay added to a client's stream at its switch.
    pub extra_delay_ms: Option<f64>,
    /// Each client's progress, by participant id.
    pub participants: BTreeMap<String, PartProgress>,
}

impl HandoverView {
    pub(crate) fn finished(&self) -> bool {
        matches!(self.state, "completed" | "aborted")
    }
}

/// One client's progress.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct PartProgress {
    /// `waiting`, `duplicating`, `paired`, `validated`, `cut_over` or `aborted`.
    pub state: &'static str,
    /// Frames that differed.
    pub mismatches: u32,
    /// The first sequence number the client got from the new mixer.
    pub cut_seq: Option<u16>,
    pub extra_delay_ms: Option<f64>,
}

/// `POST /v1/conferences/{id}/handover` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandoverRequest {
    to: Option<String>,
    mode: Option<String>,
}

/// `POST /v1/conferences/{id}/handover`: start it; 202 with its state.
pub(crate) async fn start(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<HandoverRequest>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    let g = gateway(&s)?;
    let mode = match req.mode.as_deref() {
        None | Some("rewrite") => Mode::Rewrite,
        Some("instruct") => Mode::Instruct,
        Some(m) => {
            return Err(invalid(format!(
                "mode must be \"rewrite\" or \"instruct\", not {m:?}"
            )))
        }
    };
    let from = {
        let t = g.lock();
        let c = t.conf(&id)?;
        c.busy()?;
        c.mixer.clone()
    };
    let to = match req.to {
        Some(to) if !to.starts_with("http://") => {
            return Err(invalid(format!(
                "to must be a mixer's base URL such as \"http://198.18.0.12:8080\", not {to:?}"
            )))
        }
        Some(to) if to.trim_end_matches('/') == from.trim_end_matches('/') => {
            return Err(invalid(format!("conference {id} is already on {from}")))
        }
        Some(to) => to,
        None => g.pick_mixer(Some(&from)).await?,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let view = {
        let mut t = g.lock();
        let c = t.conf_mut(&id)?;
        c.busy()?;
        if c.mixer != from {
            return Err(ControlError::Moved {
                conf: id.clone(),
                mixer: c.mixer.clone(),
            }
            .into());
        }
        let h = HandoverView {
            state: "creating",
            from: from.clone(),
            to: to.clone(),
            mode: mode.as_str(),
            reason: None,
            started_at: timestamp(SystemTime::now()),
            cutover_ms: None,
            duration_ms: None,
            extra_delay_ms: None,
            participants: c
                .parts
                .keys()
                .map(|pid| {
                    (
                        pid.clone(),
                        PartProgress {
                            state: "waiting",
                            ..PartProgress::default()
                        },
                    )
                })
                .collect(),
        };
        c.handover = Some(h);
        c.events = Some(tx);
        c.view(true)
    };
    publish(&s, &id, None, "handover_started", None);
    let task_state = s.clone();
    tokio::spawn(async move {
        let run = Run {
            s: &task_state,
            id: &id,
            from: &from,
            to: &to,
            mode,
            t0: Instant::now(),
        };
        run.go(rx).await;
    });
    Ok((StatusCode::ACCEPTED, Json(view)))
}

fn publish(
    s: &ControlState,
    id: &str,
    part: Option<&str>,
    kind: &'static str,
    reason: Option<String>,
) {
    let mut ev = Event::session(kind, id, part, SystemTime::now());
    ev.detail = Box::new(Detail {
        error: reason,
        ..Detail::default()
    });
    s.events.publish(ev);
}

/// A client taking part: its gateway participant and its twin on B.
struct Moving {
    part: GwPart,
    b_id: String,
    b_local: SocketAddrV4,
    /// The last header the client got from A (client-visible) and A's leg timestamp
    /// of that frame; known once the relay started duplicating.
    last: Option<(RtpHead, u32)>,
    validated: bool,
    cut: bool,
    /// Cut over because A stopped sending, not after validation.
    failed_over: bool,
}

/// Why a handover stopped before completing.
struct Abort {
    reason: String,
}

impl<E: std::fmt::Display> From<E> for Abort {
    fn from(e: E) -> Self {
        Abort {
            reason: e.to_string(),
        }
    }
}

struct Run<'a> {
    s: &'a ControlState,
    id: &'a str,
    from: &'a str,
    to: &'a str,
    mode: Mode,
    t0: Instant,
}

impl Run<'_> {
    fn gateway(&self) -> &Gateway {
        // The task is only started by the gateway API.
        self.s.gateway.as_deref().unwrap_or_else(|| unreachable!())
    }

    /// Update the handover's view (and its participants') in the table.
    fn update(&self, f: impl FnOnce(&mut HandoverView)) {
        let mut t = self.gateway().lock();
        if let Some(h) = t.confs.get_mut(self.id).and_then(|c| c.handover.as_mut()) {
            f(h);
        }
    }

    fn step(&self, state: &'static str) {
        self.update(|h| h.state = state);
        let kind = match state {
            "duplicating" => "handover_duplicating",
            "validating" => "handover_validating",
            _ => "handover_cutting_over",
        };
        publish(self.s, self.id, None, kind, None);
    }

    fn part_state(&self, pid: &str, f: impl FnOnce(&mut PartProgress)) {
        self.update(|h| {
            if let Some(p) = h.participants.get_mut(pid) {
                f(p);
            }
        });
    }

    async fn go(self, mut rx: mpsc::UnboundedReceiver<RelayEvent>) {
        let mut moving = Vec::new();
        let result = self.drive(&mut moving, &mut rx).await;
        let g = self.gateway();
        let took = self.t0.elapsed();
        match result {
            Ok(note) => {
                g.metrics.finished("completed", took);
                self.update(|h| {
                    h.state = "completed";
                    h.reason = note.clone();
                    h.duration_ms = Some(took.as_secs_f64() * 1e3);
                });
                publish(self.s, self.id, None, "handover_completed", note);
            }
            Err(abort) => {
                self.abort(&moving).await;
                g.metrics.finished("aborted", took);
                self.update(|h| {
                    h.state = "aborted";
                    h.reason = Some(abort.reason.clone());
                    h.duration_ms = Some(took.as_secs_f64() * 1e3);
                    for p in h.participants.values_mut() {
                        p.state = "aborted";
                    }
                });
                publish(
                    self.s,
                    self.id,
                    None,
                    "handover_aborted",
                    Some(abort.reason),
                );
            }
        }
        let mut t = g.lock();
        if let Some(c) = t.confs.get_mut(self.id) {
            c.events = None;
        }
    }

    /// Steps a–f; `Ok` with a note about anything that went wrong after the cut-over.
    async fn drive(
        &self,
        moving: &mut Vec<Moving>,
        rx: &mut mpsc::UnboundedReceiver<RelayEvent>,
    ) -> Result<Option<String>, Abort> {
        let g = self.gateway();
        let (create, parts, ptime) = {
            let t = g.lock();
            let c = t.conf(self.id).map_err(|_| Abort {
                reason: "the conference was deleted".into(),
            })?;
            (
                c.create.clone(),
                c.parts.values().cloned().collect::<Vec<_>>(),
                c.timeline.ptime,
            )
        };
        // a. The conference and its participants on B.
        g.client
            .call(Method::POST, self.to, "/v1/conferences", Some(&create))
            .await?;
        let path = format!("/v1/conferences/{}/participants", self.id);
        for part in parts {
            let answer = g
                .client
                .call(Method::POST, self.to, &path, Some(&part.add))
                .await?;
            let b_local = super::addr_field(&answer, "local", self.to)?;
            let b_id = answer
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            moving.push(Moving {
                part,
                b_id,
                b_local,
                last: None,
                validated: false,
                cut: false,
                failed_over: false,
            });
        }

        // b. Duplicate every client's packets to B; splice B's streams in.
        self.step("duplicating");
        let settings = g.config.handover;
        for m in moving.iter_mut() {
            // The relay sets the active stream's rewrite and delay when it links the
            // splice in (they live on the core).
            let splice = Box::new(Splice::new(
                SpliceConfig {
                    frame_samples: ptime.samples() as u32,
                    ptime: ptime.duration(),
                    validate_frames: settings.validate_frames,
                    max_align: settings.max_align,
                    expect_identity: self.mode == Mode::Instruct,
                    await_commit: true,
                    ..SpliceConfig::default()
                },
                RtpRewrite::default(),
                Duration::ZERO,
                0,
            ));
            self.s.media.relay(
                m.part.core,
                RelayCommand::StartHandover {
                    part: m.part.key,
                    candidate: m.b_local,
                    splice,
                    instruct: self.mode == Mode::Instruct,
                },
            )?;
            self.part_state(&m.part.id, |p| p.state = "duplicating");
        }
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while moving.iter().any(|m| m.last.is_none()) {
            let ev = recv(rx, deadline)
                .await
                .ok_or_else(|| Abort::from("the relays did not start duplicating"))?;
            if let (Some(m), RelayEventKind::Started { last }) =
                (moving.iter_mut().find(|m| m.part.key == ev.part), ev.kind)
            {
                m.last = Some(last.ok_or_else(|| {
                    Abort::from(format!(
                        "participant {} has had no media from {} yet",
                        m.part.id, self.from
                    ))
                })?);
            }
        }

        // c. Instruct mode: B sends what the clients already get.
        if self.mode == Mode::Instruct {
            for m in moving.iter() {
                let Some((head, leg_ts)) = m.last else {
                    continue;
                };
                let body = json!({
                    "ssrc": head.ssrc,
                    "frame_timestamp": leg_ts,
                    "sequence": head.seq,
                    "timestamp": head.ts,
                });
                let path = format!("{path}/{}/rtp", m.b_id);
                g.client
                    .call(Method::PUT, self.to, &path, Some(&body))
                    .await?;
            }
        }

        // d./e. Alignment and validation, on the dataplane.
        self.step("validating");
        let deadline = tokio::time::Instant::now() + settings.validation_timeout;
        // A client failed over to B (A stopped sending) needs no validation.
        while moving.iter().any(|m| !m.validated && !m.cut) {
            let ev = recv(rx, deadline).await.ok_or_else(|| {
                let late: Vec<&str> = moving
                    .iter()
                    .filter(|m| !m.validated && !m.cut)
                    .map(|m| m.part.id.as_str())
                    .collect();
                Abort::from(format!(
                    "validation timed out after {:?}: {} not identical for {} frames",
                    settings.validation_timeout,
                    late.join(", "),
                    settings.validate_frames
                ))
            })?;
            self.on_event(moving, ev)?;
        }

        // f. Cut over, client by client, then stop feeding A and delete it there.
        self.step("cutting_over");
        for m in moving.iter() {
            self.s
                .media
                .relay(m.part.core, RelayCommand::Commit(m.part.key))?;
        }
        let deadline = tokio::time::Instant::now() + CUT_OVER_TIMEOUT + settings.max_align;
        while moving.iter().any(|m| !m.cut) {
            let Some(ev) = recv(rx, deadline).await else {
                break;
            };
            self.on_event(moving, ev)?;
        }
        if !moving.iter().any(|m| m.cut) {
            return Err(Abort::from(format!(
                "no client cut over within {CUT_OVER_TIMEOUT:?} of the commit"
            )));
        }
        let cutover_ms = self.t0.elapsed().as_secs_f64() * 1e3;
        self.update(|h| h.cutover_ms = Some(cutover_ms));
        let mut notes = Vec::new();
        let stragglers: Vec<&str> = moving
            .iter()
            .filter(|m| !m.cut)
            .map(|m| m.part.id.as_str())
            .collect();
        if !stragglers.is_empty() {
            notes.push(format!(
                "{} did not cut over and stay on {}",
                stragglers.join(", "),
                self.from
            ));
        }
        let failed_over: Vec<&str> = moving
            .iter()
            .filter(|m| m.failed_over)
            .map(|m| m.part.id.as_str())
            .collect();
        if !failed_over.is_empty() {
            notes.push(format!(
                "{} stopped sending during the handover: {} failed over without validation",
                self.from,
                failed_over.join(", ")
            ));
        }
        for m in moving.iter() {
            if let Err(e) = self
                .s
                .media
                .relay(m.part.core, RelayCommand::End(m.part.key))
            {
                notes.push(format!("participant {}: {e}", m.part.id));
            }
        }
        {
            let mut t = g.lock();
            if let Some(c) = t.confs.get_mut(self.id) {
                if stragglers.is_empty() {
                    c.mixer = self.to.to_string();
                }
                for m in moving.iter().filter(|m| m.cut) {
                    if let Some(p) = c.parts.get_mut(&m.part.id) {
                        p.mixer_id = m.b_id.clone();
                        p.mixer_local = m.b_local;
                        if let Some(o) = p.view.as_object_mut() {
                            o.insert("mixer_participant".into(), m.b_id.clone().into());
                        }
                    }
                }
            }
        }
        if stragglers.is_empty() {
            let conf = format!("/v1/conferences/{}", self.id);
            if let Err(e) = g.client.call(Method::DELETE, self.from, &conf, None).await {
                notes.push(format!("the conference stays on {}: {e}", self.from));
            }
        }
        Ok((!notes.is_empty()).then(|| notes.join("; ")))
    }

    /// Account for one relay event during validation or cut-over.
    fn on_event(&self, moving: &mut [Moving], ev: RelayEvent) -> Result<(), Abort> {
        let Some(m) = moving.iter_mut().find(|m| m.part.key == ev.part) else {
            return Ok(());
        };
        let RelayEventKind::Splice(e) = ev.kind else {
            return Ok(());
        };
        let pid = m.part.id.clone();
        match e {
            SpliceEvent::Paired { .. } => self.part_state(&pid, |p| p.state = "paired"),
            SpliceEvent::Mismatch { .. } => self.part_state(&pid, |p| p.mismatches += 1),
            SpliceEvent::Validated { .. } => {
                m.validated = true;
                self.part_state(&pid, |p| p.state = "validated");
                publish(
                    self.s,
                    self.id,
                    Some(&pid),
                    "handover_participant_validated",
                    None,
                );
            }
            SpliceEvent::CutOver {
                seq,
                active_delay,
                candidate_delay,
                ..
            } => {
                m.cut = true;
                let extra_delay = active_delay.max(candidate_delay);
                let ms = extra_delay.as_secs_f64() * 1e3;
                self.gateway()
                    .metrics
                    .extra_delay
                    .observe(extra_delay.as_secs_f64());
                self.update(|h| {
                    h.extra_delay_ms = Some(h.extra_delay_ms.unwrap_or(0.0).max(ms));
                    if let Some(p) = h.participants.get_mut(&pid) {
                        p.state = "cut_over";
                        p.cut_seq = Some(seq);
                        p.extra_delay_ms = Some(ms);
                    }
                });
                publish(
                    self.s,
                    self.id,
                    Some(&pid),
                    "handover_participant_cut_over",
                    None,
                );
            }
            SpliceEvent::ActiveLost { silent_for } => {
                m.failed_over = true;
                publish(
                    self.s,
                    self.id,
                    Some(&pid),
                    "handover_participant_failed_over",
                    Some(format!(
                        "nothing from {} for {} ms",
                        self.from,
                        silent_for.as_millis()
                    )),
                );
            }
            SpliceEvent::Failed { reason } => {
                let (FailReason::OutOfRange { need_ns } | FailReason::CandidateLeads { need_ns }) =
                    reason;
                let ms = need_ns as f64 / 1e6;
                return Err(Abort::from(format!(
                    "participant {pid}: {} sends its frames {:.1} ms {} {}, which cannot be lined up (max_align {:?})",
                    self.to,
                    ms.abs(),
                    if ms > 0.0 { "after" } else { "before" },
                    self.from,
                    self.gateway().config.handover.max_align
                )));
            }
        }
        Ok(())
    }

    /// g. Clients stay on A; B's copy of the conference goes.
    async fn abort(&self, moving: &[Moving]) {
        // Ending a client whose relay never started is a no-op.
        for m in moving {
            let _ = self
                .s
                .media
                .relay(m.part.core, RelayCommand::End(m.part.key));
        }
        let conf = format!("/v1/conferences/{}", self.id);
        let _ = self
            .gateway()
            .client
            .call(Method::DELETE, self.to, &conf, None)
            .await;
    }
}

/// The next relay event, or `None` at `deadline`.
async fn recv(
    rx: &mut mpsc::UnboundedReceiver<RelayEvent>,
    deadline: tokio::time::Instant,
) -> Option<RelayEvent> {
    tokio::time::timeout_at(deadline, rx.recv())
        .await
        .ok()
        .flatten()
}
