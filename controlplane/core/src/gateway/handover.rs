//! The handover plan: moving a conference's mixing from mixer A to mixer B while every
//! client keeps one unbroken RTP stream, as a sans-IO state machine. It is fed peer
//! answers ([`Handover::handle_peer_response`]), relay events
//! ([`Handover::handle_relay_event`]), refused relay commands
//! ([`Handover::handle_relay_refused`]) and timeouts ([`Handover::handle_timeout`]),
//! and hands back what to do ([`Handover::poll_action`]) and when to be called next
//! ([`Handover::poll_timeout`]).
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

use super::HandoverSettings;
use crate::peer::{PeerAnswer, PeerCall, PeerRequest, PeerResult};
use crate::sessions::{NewConference, NewParticipant};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, SystemTime};
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{PartKey, RtpBasis};
use tutti_dataplane::mixer::Ptime;
use tutti_dataplane::relay::splice::{FailReason, RtpHead, Splice, SpliceConfig, SpliceEvent};
use tutti_dataplane::relay::{RelayCommand, RelayEventKind};
use tutti_dataplane::wire::rewrite::RtpRewrite;

/// How long after the commit every client must have cut over.
pub const CUT_OVER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the relays have to confirm that duplication started.
pub const START_TIMEOUT: Duration = Duration::from_secs(1);

/// How B's stream is made to continue A's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Rewrite,
    Instruct,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rewrite => "rewrite",
            Mode::Instruct => "instruct",
        }
    }
}

/// Where a handover is, as users see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Creating,
    Duplicating,
    Validating,
    CuttingOver,
    Completed,
    Aborted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Duplicating => "duplicating",
            State::Validating => "validating",
            State::CuttingOver => "cutting_over",
            State::Completed => "completed",
            State::Aborted => "aborted",
        }
    }
}

/// Where one client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartState {
    Waiting,
    Duplicating,
    Paired,
    Validated,
    CutOver,
    Aborted,
}

impl PartState {
    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Waiting => "waiting",
            PartState::Duplicating => "duplicating",
            PartState::Paired => "paired",
            PartState::Validated => "validated",
            PartState::CutOver => "cut_over",
            PartState::Aborted => "aborted",
        }
    }
}

/// One client's progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartProgress {
    pub state: PartState,
    /// Frames that differed.
    pub mismatches: u32,
    /// The first sequence number the client got from the new mixer.
    pub cut_seq: Option<u16>,
    pub extra_delay: Option<Duration>,
}

/// A handover's progress and result, as `GET /v1/conferences/{id}` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub state: State,
    pub from: String,
    pub to: String,
    pub mode: Mode,
    /// Why it was aborted (or what went wrong after the cut-over).
    pub reason: Option<String>,
    pub started_at: SystemTime,
    /// From the request to the last client's cut-over.
    pub cutover: Option<Duration>,
    /// From the request to the end.
    pub duration: Option<Duration>,
    /// The largest delay added to a client's stream at its switch.
    pub extra_delay: Option<Duration>,
    /// Each client's progress, by participant id.
    pub participants: BTreeMap<String, PartProgress>,
}

/// A client taking part in the handover.
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    /// Its gateway participant id and relay key, and the relay's core.
    pub id: String,
    pub key: PartKey,
    pub core: usize,
    /// What mixers are asked to create for it.
    pub spec: NewParticipant,
}

/// A client moved to B: its participant there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub id: String,
    pub mixer_id: String,
    pub mixer_local: SocketAddrV4,
}

/// Which relay command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    StartHandover,
    Commit,
    End(PartKey),
    Other,
}

impl Refused {
    /// The kind of `command`.
    pub fn of(command: &RelayCommand) -> Refused {
        match command {
            RelayCommand::StartHandover { .. } => Refused::StartHandover,
            RelayCommand::Commit(_) => Refused::Commit,
            RelayCommand::End(part) => Refused::End(*part),
            RelayCommand::Add(_) | RelayCommand::Remove(_) => Refused::Other,
        }
    }
}

/// What a handover wants done.
pub enum Action {
    /// Send this to a mixer; its result comes back through
    /// [`Handover::handle_peer_response`] (one at a time).
    Peer(PeerRequest),
    /// Give this to dataplane core `core`'s relay; a refusal comes back through
    /// [`Handover::handle_relay_refused`].
    Relay { core: usize, command: RelayCommand },
    /// An event for subscribers: its kind, the participant, a reason.
    Event {
        kind: &'static str,
        part: Option<String>,
        reason: Option<String>,
    },
    /// The clients in `moved` cut over: their mixer participant is now on B; with
    /// `mixer`, the whole conference is on it.
    Rehome {
        mixer: Option<String>,
        moved: Vec<Moved>,
    },
    /// A client's stream was delayed this much at its cut-over.
    ExtraDelay(Duration),
    /// It ended (completed or aborted) after `took`.
    Finished { completed: bool, took: Duration },
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Peer(r) => f.debug_tuple("Peer").field(r).finish(),
            Action::Relay { core, command } => f
                .debug_struct("Relay")
                .field("core", core)
                .field("command", &Refused::of(command))
                .finish(),
            Action::Event { kind, part, reason } => f
                .debug_struct("Event")
                .field("kind", kind)
                .field("part", part)
                .field("reason", reason)
                .finish(),
            Action::Rehome { mixer, moved } => f
                .debug_struct("Rehome")
                .field("mixer", mixer)
                .field("moved", moved)
                .finish(),
            Action::ExtraDelay(d) => f.debug_tuple("ExtraDelay").field(d).finish(),
            Action::Finished { completed, took } => f
                .debug_struct("Finished")
                .field("completed", completed)
                .field("took", took)
                .finish(),
        }
    }
}

/// One client in the plan.
#[derive(Debug)]
struct Moving {
    client: Client,
    /// Its participant on B, once created.
    on_b: Option<(String, SocketAddrV4)>,
    /// The last header the client got from A (client-visible) and A's leg timestamp of
    /// that frame; known once the relay started duplicating.
    last: Option<(RtpHead, u32)>,
    validated: bool,
    cut: bool,
    /// Cut over because A stopped sending, not after validation.
    failed_over: bool,
}

/// What the plan waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// B creating the conference.
    CreateConference,
    /// B creating client `n`.
    AddParticipant(usize),
    /// Every relay to confirm duplication (until the deadline).
    Started,
    /// B taking client `n`'s RTP basis (instruct mode).
    SetRtpBasis(usize),
    /// Every client validated (until the deadline).
    Validated,
    /// Every client cut over (until the deadline).
    CutOver,
    /// A deleting the conference (after the cut-over).
    DeleteOld,
    /// B deleting its copy (aborting, with the reason).
    DeleteCopy,
    /// Nothing: the handover is over.
    Done,
}

/// One handover. See the module documentation.
#[derive(Debug)]
pub struct Handover {
    conf: String,
    spec: NewConference,
    ptime: Ptime,
    settings: HandoverSettings,
    status: Status,
    t0: Instant,
    moving: Vec<Moving>,
    step: Step,
    deadline: Option<Instant>,
    /// Notes about what went wrong after the cut-over.
    notes: Vec<String>,
    /// The reason of an abort in progress.
    aborting: Option<String>,
    actions: VecDeque<Action>,
}

impl Handover {
    /// Start moving conference `conf` (created on mixers as `spec`, with frames of
    /// `ptime`) and its `clients` from mixer `from` to mixer `to`, at `now` (`wall`
    /// for users).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        conf: &str,
        spec: NewConference,
        ptime: Ptime,
        clients: Vec<Client>,
        from: &str,
        to: &str,
        mode: Mode,
        settings: HandoverSettings,
        now: Instant,
        wall: SystemTime,
    ) -> Handover {
        let participants = clients
            .iter()
            .map(|c| {
                let p = PartProgress {
                    state: PartState::Waiting,
                    mismatches: 0,
                    cut_seq: None,
                    extra_delay: None,
                };
                (c.id.clone(), p)
            })
            .collect();
        let mut h = Handover {
            conf: conf.to_string(),
            spec,
            ptime,
            settings,
            status: Status {
                state: State::Creating,
                from: from.to_string(),
                to: to.to_string(),
                mode,
                reason: None,
                started_at: wall,
                cutover: None,
                duration: None,
                extra_delay: None,
                participants,
            },
            t0: now,
            moving: clients
                .into_iter()
                .map(|client| Moving {
                    client,
                    on_b: None,
                    last: None,
                    validated: false,
                    cut: false,
                    failed_over: false,
                })
                .collect(),
            step: Step::CreateConference,
            deadline: None,
            notes: Vec::new(),
            aborting: None,
            actions: VecDeque::new(),
        };
        h.event("handover_started", None, None);
        let call = PeerCall::CreateConference {
            id: h.conf.clone(),
            spec: h.spec.clone(),
        };
        h.peer(to.to_string(), call);
        h
    }

    /// Its progress.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether it is over (completed or aborted).
    pub fn finished(&self) -> bool {
        self.step == Step::Done
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Handover::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn event(&mut self, kind: &'static str, part: Option<&str>, reason: Option<String>) {
        self.actions.push_back(Action::Event {
            kind,
            part: part.map(str::to_string),
            reason,
        });
    }

    fn peer(&mut self, mixer: String, call: PeerCall) {
        self.actions
            .push_back(Action::Peer(PeerRequest { mixer, call }));
    }

    fn part_state(&mut self, pid: &str, f: impl FnOnce(&mut PartProgress)) {
        if let Some(p) = self.status.participants.get_mut(pid) {
            f(p);
        }
    }

    fn enter(&mut self, state: State, kind: &'static str) {
        self.status.state = state;
        self.event(kind, None, None);
    }

    /// The answer to the peer request it asked for last.
    pub fn handle_peer_response(&mut self, now: Instant, result: PeerResult) {
        match self.step {
            Step::CreateConference => match result {
                Ok(_) => self.add_next(now, 0),
                Err(e) => self.abort(now, e.to_string()),
            },
            Step::AddParticipant(n) => match result {
                Ok(PeerAnswer::Participant(p)) => {
                    if let Some(m) = self.moving.get_mut(n) {
                        m.on_b = Some((p.id, p.local));
                    }
                    self.add_next(now, n + 1);
                }
                Ok(other) => {
                    self.abort(now, format!("mixer {} answered {other:?}", self.status.to))
                }
                Err(e) => self.abort(now, e.to_string()),
            },
            Step::SetRtpBasis(n) => match result {
                Ok(_) => self.instruct_next(now, n + 1),
                Err(e) => self.abort(now, e.to_string()),
            },
            Step::DeleteOld => {
                if let Err(e) = result {
                    let note = format!("the conference stays on {}: {e}", self.status.from);
                    self.notes.push(note);
                }
                self.complete(now);
            }
            Step::DeleteCopy => {
                let reason = self.aborting.take().unwrap_or_default();
                self.aborted(now, reason);
            }
            Step::Started | Step::Validated | Step::CutOver | Step::Done => {}
        }
    }

    /// a. Create client `n` on B, or go on to duplication once all are.
    fn add_next(&mut self, now: Instant, n: usize) {
        if let Some(m) = self.moving.get(n) {
            self.step = Step::AddParticipant(n);
            let call = PeerCall::AddParticipant {
                conf: self.conf.clone(),
                spec: m.client.spec,
            };
            self.peer(self.status.to.clone(), call);
            return;
        }
        // b. Duplicate every client's packets to B; splice B's streams in.
        self.enter(State::Duplicating, "handover_duplicating");
        let instruct = self.status.mode == Mode::Instruct;
        let s = self.settings;
        for i in 0..self.moving.len() {
            let (core, key, candidate, id) = {
                let m = &self.moving[i];
                let Some((_, b_local)) = m.on_b else { continue };
                (m.client.core, m.client.key, b_local, m.client.id.clone())
            };
            // The relay sets the active stream's rewrite and delay when it links the
            // splice in (they live on the core).
            let splice = Box::new(Splice::new(
                SpliceConfig {
                    frame_samples: self.ptime.samples(tutti_dataplane::relay::RTP_CLOCK) as u32,
                    ptime: self.ptime.duration(),
                    validate_frames: s.validate_frames,
                    max_align: s.max_align,
                    expect_identity: instruct,
                    await_commit: true,
                    ..SpliceConfig::default()
                },
                RtpRewrite::default(),
                Duration::ZERO,
                0,
            ));
            self.actions.push_back(Action::Relay {
                core,
                command: RelayCommand::StartHandover {
                    part: key,
                    candidate,
                    splice,
                    instruct,
                },
            });
            self.part_state(&id, |p| p.state = PartState::Duplicating);
        }
        self.step = Step::Started;
        self.deadline = Some(now + START_TIMEOUT);
        self.check_started(now);
    }

    /// Once every relay duplicates: instruct B, or validate.
    fn check_started(&mut self, now: Instant) {
        if self.step == Step::Started && self.moving.iter().all(|m| m.last.is_some()) {
            if self.status.mode == Mode::Instruct {
                self.instruct_next(now, 0);
            } else {
                self.validate(now);
            }
        }
    }

    /// c. Tell B client `n`'s RTP basis, or go on to validation once all have one.
    fn instruct_next(&mut self, now: Instant, n: usize) {
        let Some(m) = self.moving.get(n) else {
            self.validate(now);
            return;
        };
        let (Some((head, leg_ts)), Some((b_id, _))) = (m.last, &m.on_b) else {
            self.instruct_next(now, n + 1);
            return;
        };
        self.step = Step::SetRtpBasis(n);
        self.deadline = None;
        let call = PeerCall::SetRtpBasis {
            conf: self.conf.clone(),
            part: b_id.clone(),
            basis: RtpBasis {
                ssrc: head.ssrc,
                frame_timestamp: leg_ts,
                sequence: head.seq,
                timestamp: head.ts,
            },
        };
        self.peer(self.status.to.clone(), call);
    }

    /// d./e. Alignment and validation, on the dataplane.
    fn validate(&mut self, now: Instant) {
        self.enter(State::Validating, "handover_validating");
        self.step = Step::Validated;
        self.deadline = Some(now + self.settings.validation_timeout);
        self.check_validated(now);
    }

    /// A client failed over to B (A stopped sending) needs no validation.
    fn check_validated(&mut self, now: Instant) {
        if self.step != Step::Validated || self.moving.iter().any(|m| !m.validated && !m.cut) {
            return;
        }
        // f. Cut over, client by client.
        self.enter(State::CuttingOver, "handover_cutting_over");
        for i in 0..self.moving.len() {
            let (core, key) = (self.moving[i].client.core, self.moving[i].client.key);
            self.actions.push_back(Action::Relay {
                core,
                command: RelayCommand::Commit(key),
            });
        }
        self.step = Step::CutOver;
        self.deadline = Some(now + CUT_OVER_TIMEOUT + self.settings.max_align);
        self.check_cut(now, false);
    }

    /// Once every client cut over (or at the deadline): stop feeding A, delete it there.
    fn check_cut(&mut self, now: Instant, timed_out: bool) {
        if self.step != Step::CutOver || !(timed_out || self.moving.iter().all(|m| m.cut)) {
            return;
        }
        if !self.moving.iter().any(|m| m.cut) {
            let reason = format!("no client cut over within {CUT_OVER_TIMEOUT:?} of the commit");
            self.abort(now, reason);
            return;
        }
        self.deadline = None;
        self.status.cutover = Some(now - self.t0);
        let from = self.status.from.clone();
        let stragglers = self.ids(|m| !m.cut);
        if !stragglers.is_empty() {
            self.notes
                .push(format!("{stragglers} did not cut over and stay on {from}"));
        }
        let failed_over = self.ids(|m| m.failed_over);
        if !failed_over.is_empty() {
            self.notes.push(format!(
                "{from} stopped sending during the handover: {failed_over} failed over without validation"
            ));
        }
        for i in 0..self.moving.len() {
            let (core, key) = (self.moving[i].client.core, self.moving[i].client.key);
            self.actions.push_back(Action::Relay {
                core,
                command: RelayCommand::End(key),
            });
        }
        let moved = self
            .moving
            .iter()
            .filter(|m| m.cut)
            .filter_map(|m| {
                let (mixer_id, mixer_local) = m.on_b.clone()?;
                Some(Moved {
                    id: m.client.id.clone(),
                    mixer_id,
                    mixer_local,
                })
            })
            .collect();
        let all = stragglers.is_empty();
        self.actions.push_back(Action::Rehome {
            mixer: all.then(|| self.status.to.clone()),
            moved,
        });
        if all {
            self.step = Step::DeleteOld;
            let call = PeerCall::DeleteConference {
                id: self.conf.clone(),
            };
            self.peer(from, call);
        } else {
            self.complete(now);
        }
    }

    /// The ids of the clients for which `f` holds, joined.
    fn ids(&self, f: impl Fn(&Moving) -> bool) -> String {
        let ids: Vec<&str> = self
            .moving
            .iter()
            .filter(|m| f(m))
            .map(|m| m.client.id.as_str())
            .collect();
        ids.join(", ")
    }

    fn complete(&mut self, now: Instant) {
        let took = now - self.t0;
        let note = (!self.notes.is_empty()).then(|| self.notes.join("; "));
        self.step = Step::Done;
        self.deadline = None;
        self.status.state = State::Completed;
        self.status.reason = note.clone();
        self.status.duration = Some(took);
        self.actions.push_back(Action::Finished {
            completed: true,
            took,
        });
        self.event("handover_completed", None, note);
    }

    /// g. Clients stay on A; B's copy of the conference goes (then it is aborted).
    fn abort(&mut self, _now: Instant, reason: String) {
        if matches!(self.step, Step::DeleteCopy | Step::Done) {
            return;
        }
        // Ending a client whose relay never started is a no-op.
        for i in 0..self.moving.len() {
            let (core, key) = (self.moving[i].client.core, self.moving[i].client.key);
            self.actions.push_back(Action::Relay {
                core,
                command: RelayCommand::End(key),
            });
        }
        self.aborting = Some(reason);
        self.step = Step::DeleteCopy;
        self.deadline = None;
        let call = PeerCall::DeleteConference {
            id: self.conf.clone(),
        };
        self.peer(self.status.to.clone(), call);
    }

    fn aborted(&mut self, now: Instant, reason: String) {
        let took = now - self.t0;
        self.step = Step::Done;
        self.status.state = State::Aborted;
        self.status.reason = Some(reason.clone());
        self.status.duration = Some(took);
        for p in self.status.participants.values_mut() {
            p.state = PartState::Aborted;
        }
        self.actions.push_back(Action::Finished {
            completed: false,
            took,
        });
        self.event("handover_aborted", None, Some(reason));
    }

    /// The deadline of the current step passed (the caller checks
    /// [`Handover::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match self.step {
            Step::Started => self.abort(now, "the relays did not start duplicating".into()),
            Step::Validated => {
                let late = self.ids(|m| !m.validated && !m.cut);
                let s = self.settings;
                let reason = format!(
                    "validation timed out after {:?}: {late} not identical for {} frames",
                    s.validation_timeout, s.validate_frames
                );
                self.abort(now, reason);
            }
            Step::CutOver => self.check_cut(now, true),
            _ => {}
        }
    }

    /// A relay refused a command (its core's command ring was full, or it does not
    /// relay): before the cut-over that aborts; after it, it is noted.
    pub fn handle_relay_refused(&mut self, now: Instant, command: Refused, error: String) {
        match command {
            Refused::StartHandover | Refused::Commit => self.abort(now, error),
            Refused::End(part) if self.step == Step::DeleteOld || self.step == Step::Done => {
                if let Some(m) = self.moving.iter().find(|m| m.client.key == part) {
                    let note = format!("participant {}: {error}", m.client.id);
                    self.notes.push(note);
                }
            }
            _ => {}
        }
    }

    /// One event from a relay of this conference.
    pub fn handle_relay_event(&mut self, now: Instant, part: PartKey, kind: RelayEventKind) {
        if !matches!(
            self.step,
            Step::Started | Step::SetRtpBasis(_) | Step::Validated | Step::CutOver
        ) {
            return;
        }
        let Some(i) = self.moving.iter().position(|m| m.client.key == part) else {
            return;
        };
        let pid = self.moving[i].client.id.clone();
        let e = match kind {
            RelayEventKind::Started { last } => {
                match last {
                    Some(last) => self.moving[i].last = Some(last),
                    None => {
                        let reason = format!(
                            "participant {pid} has had no media from {} yet",
                            self.status.from
                        );
                        self.abort(now, reason);
                        return;
                    }
                }
                self.check_started(now);
                return;
            }
            RelayEventKind::Splice(e) => e,
        };
        match e {
            SpliceEvent::Paired { .. } => self.part_state(&pid, |p| p.state = PartState::Paired),
            SpliceEvent::Mismatch { .. } => self.part_state(&pid, |p| p.mismatches += 1),
            SpliceEvent::Validated { .. } => {
                self.moving[i].validated = true;
                self.part_state(&pid, |p| p.state = PartState::Validated);
                self.event("handover_participant_validated", Some(&pid), None);
            }
            SpliceEvent::CutOver {
                seq,
                active_delay,
                candidate_delay,
                ..
            } => {
                self.moving[i].cut = true;
                let extra = active_delay.max(candidate_delay);
                self.actions.push_back(Action::ExtraDelay(extra));
                self.status.extra_delay =
                    Some(self.status.extra_delay.unwrap_or_default().max(extra));
                self.part_state(&pid, |p| {
                    p.state = PartState::CutOver;
                    p.cut_seq = Some(seq);
                    p.extra_delay = Some(extra);
                });
                self.event("handover_participant_cut_over", Some(&pid), None);
            }
            SpliceEvent::ActiveLost { silent_for } => {
                self.moving[i].failed_over = true;
                let reason = format!(
                    "nothing from {} for {} ms",
                    self.status.from,
                    silent_for.as_millis()
                );
                self.event("handover_participant_failed_over", Some(&pid), Some(reason));
            }
            SpliceEvent::Failed { reason } => {
                let FailReason::OutOfRange { need_ns } = reason;
                let ms = need_ns as f64 / 1e6;
                let reason = format!(
                    "participant {pid}: {} sends its frames {:.1} ms {} {}, which cannot be lined up (max_align {:?})",
                    self.status.to,
                    ms.abs(),
                    if ms > 0.0 { "after" } else { "before" },
                    self.status.from,
                    self.settings.max_align
                );
                self.abort(now, reason);
                return;
            }
        }
        self.check_validated(now);
        self.check_cut(now, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{MixerParticipant, PeerError};
    use std::net::Ipv4Addr;
    use tutti_dataplane::codec::CodecKind;
    use tutti_dataplane::conference::{ParticipantSettings, Timing};
    use tutti_dataplane::mixer::ActiveSpeakers;

    const A: &str = "http://198.18.0.11:8080";
    const B: &str = "http://198.18.0.12:8080";
    const MS: Duration = Duration::from_millis(1);

    fn client(n: u32) -> Client {
        Client {
            id: format!("p{n}"),
            key: PartKey(n),
            core: 0,
            spec: NewParticipant {
                remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 30_000 + n as u16 * 2),
                codec: CodecKind::Pcmu,
                telephone_event_pt: Some(101),
                rtcp: true,
                settings: ParticipantSettings::default(),
                srtp: None,
            },
        }
    }

    fn start(mode: Mode, t0: Instant) -> Handover {
        let spec = NewConference {
            id: Some("c1".into()),
            owner: None,
            ptime: Ptime::Ms20,
            active_speakers: ActiveSpeakers::All,
            max_participants: 10,
            timing: Timing::Input { delay_frames: 2 },
        };
        let settings = HandoverSettings {
            validation_timeout: 300 * MS,
            ..HandoverSettings::default()
        };
        let clients = vec![client(1), client(2)];
        Handover::start(
            "c1",
            spec,
            Ptime::Ms20,
            clients,
            A,
            B,
            mode,
            settings,
            t0,
            SystemTime::UNIX_EPOCH,
        )
    }

    /// Every action queued, described in a line each.
    fn drain(h: &mut Handover) -> Vec<String> {
        std::iter::from_fn(|| h.poll_action())
            .map(|a| match a {
                Action::Peer(r) => {
                    let call = format!("{:?}", r.call);
                    let name = call.split([' ', '{']).next().unwrap_or("").to_string();
                    format!("peer {} {name}", r.mixer)
                }
                Action::Relay { command, .. } => format!("relay {:?}", Refused::of(&command)),
                Action::Event { kind, part, .. } => {
                    format!("event {kind} {}", part.unwrap_or_default())
                }
                Action::Rehome { mixer, moved } => format!("rehome {mixer:?} {}", moved.len()),
                Action::ExtraDelay(d) => format!("delay {d:?}"),
                Action::Finished { completed, took } => format!("finished {completed} {took:?}"),
            })
            .collect()
    }

    fn on_b(n: u16) -> PeerResult {
        Ok(PeerAnswer::Participant(MixerParticipant {
            id: format!("p{n}"),
            local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 12), 20_000 + n * 2),
            ssrc: 7,
        }))
    }

    fn started(seq: u16) -> RelayEventKind {
        let head = RtpHead {
            ssrc: 0xAA,
            seq,
            ts: 160_000,
            marker: false,
        };
        RelayEventKind::Started {
            last: Some((head, 160_000)),
        }
    }

    fn validated() -> RelayEventKind {
        RelayEventKind::Splice(SpliceEvent::Validated {
            key: 160_000,
            rewrite: RtpRewrite::default(),
            need_ns: 0,
        })
    }

    fn cut(delay_ms: u32, at: Instant) -> RelayEventKind {
        RelayEventKind::Splice(SpliceEvent::CutOver {
            key: 160_160,
            seq: 9,
            active_delay: delay_ms * MS,
            candidate_delay: Duration::ZERO,
            at,
        })
    }

    /// Up to duplication: both clients created on B and their relays duplicating.
    fn duplicating(mode: Mode, t0: Instant) -> Handover {
        let mut h = start(mode, t0);
        assert_eq!(
            drain(&mut h),
            [
                "event handover_started ",
                &format!("peer {B} CreateConference")
            ]
        );
        h.handle_peer_response(t0, Ok(PeerAnswer::Conference { orphaned: false }));
        assert_eq!(drain(&mut h), [format!("peer {B} AddParticipant")]);
        h.handle_peer_response(t0, on_b(1));
        drain(&mut h);
        h.handle_peer_response(t0, on_b(2));
        assert_eq!(
            drain(&mut h),
            [
                "event handover_duplicating ",
                "relay StartHandover",
                "relay StartHandover"
            ]
        );
        assert_eq!(h.status().state, State::Duplicating);
        assert_eq!(h.poll_timeout(), Some(t0 + START_TIMEOUT));
        h
    }

    #[test]
    fn a_rewrite_handover_runs_every_step_on_the_callers_clock() {
        let t0 = Instant::from_nanos(1_000_000_000);
        let mut h = duplicating(Mode::Rewrite, t0);
        h.handle_relay_event(t0 + 10 * MS, PartKey(1), started(5));
        assert!(drain(&mut h).is_empty(), "waits for every relay");
        h.handle_relay_event(t0 + 20 * MS, PartKey(2), started(6));
        assert_eq!(drain(&mut h), ["event handover_validating "]);
        assert_eq!(
            h.poll_timeout(),
            Some(t0 + 320 * MS),
            "validation_timeout from here"
        );
        h.handle_relay_event(t0 + 30 * MS, PartKey(1), validated());
        h.handle_relay_event(t0 + 40 * MS, PartKey(2), validated());
        assert_eq!(
            drain(&mut h),
            [
                "event handover_participant_validated p1",
                "event handover_participant_validated p2",
                "event handover_cutting_over ",
                "relay Commit",
                "relay Commit",
            ]
        );
        h.handle_relay_event(t0 + 50 * MS, PartKey(1), cut(4, t0));
        h.handle_relay_event(t0 + 60 * MS, PartKey(2), cut(2, t0));
        let done = drain(&mut h);
        assert_eq!(
            done[done.len() - 4..],
            [
                "relay End(PartKey(1))",
                "relay End(PartKey(2))",
                &format!("rehome Some(\"{B}\") 2"),
                &format!("peer {A} DeleteConference")
            ]
        );
        assert_eq!(h.status().cutover, Some(60 * MS));
        assert_eq!(h.status().extra_delay, Some(4 * MS));
        assert!(!h.finished(), "until A deleted it");
        h.handle_peer_response(t0 + 70 * MS, Ok(PeerAnswer::Done));
        assert_eq!(
            drain(&mut h),
            ["finished true 70ms", "event handover_completed "]
        );
        let s = h.status();
        assert_eq!(
            (s.state, s.reason.as_deref(), s.duration),
            (State::Completed, None, Some(70 * MS))
        );
        assert_eq!(s.participants["p2"].cut_seq, Some(9));
        assert!(h.finished() && h.poll_timeout().is_none());
    }

    #[test]
    fn instruct_mode_tells_the_new_mixer_each_clients_basis_first() {
        let t0 = Instant::ZERO;
        let mut h = duplicating(Mode::Instruct, t0);
        h.handle_relay_event(t0, PartKey(1), started(5));
        h.handle_relay_event(t0, PartKey(2), started(6));
        let want = [format!("peer {B} SetRtpBasis")];
        assert_eq!(drain(&mut h), want);
        h.handle_peer_response(t0, Ok(PeerAnswer::Done));
        assert_eq!(drain(&mut h), want);
        // Time spent instructing B does not count against validation.
        h.handle_timeout(t0 + START_TIMEOUT);
        h.handle_peer_response(t0 + 5 * START_TIMEOUT, Ok(PeerAnswer::Done));
        assert_eq!(drain(&mut h), ["event handover_validating "]);
        assert_eq!(h.status().state, State::Validating);
    }

    #[test]
    fn timeouts_abort_and_delete_the_copy_before_reporting() {
        // The relays never confirm duplication.
        let t0 = Instant::ZERO;
        let mut h = duplicating(Mode::Rewrite, t0);
        h.handle_timeout(t0 + START_TIMEOUT - MS);
        assert!(drain(&mut h).is_empty(), "not yet");
        h.handle_timeout(t0 + START_TIMEOUT);
        assert_eq!(
            drain(&mut h),
            [
                "relay End(PartKey(1))",
                "relay End(PartKey(2))",
                &format!("peer {B} DeleteConference")
            ]
        );
        assert_eq!(
            h.status().state,
            State::Duplicating,
            "until B's copy is deleted"
        );
        let gone = PeerError::Unreachable {
            url: B.into(),
            reason: "refused".into(),
        };
        h.handle_peer_response(t0 + START_TIMEOUT, Err(gone));
        assert_eq!(drain(&mut h)[1], "event handover_aborted ");
        let s = h.status();
        assert_eq!(s.state, State::Aborted);
        assert_eq!(
            s.reason.as_deref(),
            Some("the relays did not start duplicating")
        );
        assert!(s
            .participants
            .values()
            .all(|p| p.state == PartState::Aborted));
        // Validation that does not finish in time names the clients that are late.
        let mut h = duplicating(Mode::Rewrite, t0);
        h.handle_relay_event(t0, PartKey(1), started(5));
        h.handle_relay_event(t0, PartKey(2), started(6));
        h.handle_relay_event(t0, PartKey(2), validated());
        drain(&mut h);
        h.handle_timeout(t0 + 300 * MS);
        h.handle_peer_response(t0 + 300 * MS, Ok(PeerAnswer::Done));
        let reason = h.status().reason.clone().unwrap();
        assert!(
            reason.starts_with("validation timed out after 300ms: p1 not identical"),
            "{reason}"
        );
    }

    #[test]
    fn a_failed_creation_or_a_refused_relay_command_aborts() {
        let t0 = Instant::ZERO;
        let mut h = start(Mode::Rewrite, t0);
        drain(&mut h);
        let refused = PeerError::Refused {
            url: B.into(),
            status: 503,
            message: "full".into(),
        };
        h.handle_peer_response(t0, Err(refused.clone()));
        assert_eq!(
            drain(&mut h).last().unwrap(),
            &format!("peer {B} DeleteConference")
        );
        h.handle_peer_response(t0, Ok(PeerAnswer::Done));
        assert_eq!(h.status().reason, Some(refused.to_string()));
        let mut h = duplicating(Mode::Rewrite, t0);
        h.handle_relay_refused(t0, Refused::StartHandover, "ring full".into());
        h.handle_peer_response(t0, Ok(PeerAnswer::Done));
        assert_eq!(
            (h.status().state, h.status().reason.as_deref()),
            (State::Aborted, Some("ring full"))
        );
    }

    #[test]
    fn a_silent_old_mixer_fails_clients_over_and_stragglers_stay() {
        let t0 = Instant::ZERO;
        let mut h = duplicating(Mode::Rewrite, t0);
        h.handle_relay_event(t0, PartKey(1), started(5));
        h.handle_relay_event(t0, PartKey(2), started(6));
        // A goes quiet for p1 before it validated: p1 is failed over to B at once.
        let lost = RelayEventKind::Splice(SpliceEvent::ActiveLost {
            silent_for: 100 * MS,
        });
        h.handle_relay_event(t0 + 10 * MS, PartKey(1), lost);
        h.handle_relay_event(t0 + 10 * MS, PartKey(1), cut(0, t0));
        h.handle_relay_event(t0 + 20 * MS, PartKey(2), validated());
        drain(&mut h);
        assert_eq!(h.status().state, State::CuttingOver);
        // p2 never cuts over: at the deadline it stays on A, and so does the conference.
        let deadline = h.poll_timeout().unwrap();
        assert_eq!(
            deadline,
            t0 + 20 * MS + CUT_OVER_TIMEOUT + HandoverSettings::default().max_align
        );
        h.handle_timeout(deadline);
        let done = drain(&mut h);
        assert!(done.contains(&"rehome None 1".to_string()), "{done:?}");
        assert!(
            !done.iter().any(|a| a.contains("DeleteConference")),
            "{done:?}"
        );
        let s = h.status();
        assert_eq!(s.state, State::Completed);
        let reason = s.reason.as_deref().unwrap();
        assert!(
            reason.contains("p2 did not cut over and stay on"),
            "{reason}"
        );
        assert!(
            reason.contains("p1 failed over without validation"),
            "{reason}"
        );
    }
}
