//! [`Control`]: the control core. It owns the session table, the leases and orphan
//! watches (and, on a gateway, the relay table and its handovers), and offers the
//! operations every door into the appliance uses — the REST API today, SIP and the IVR
//! next. Each operation changes the dataplane (through the [`MediaPlane`] sink) and the
//! table together, so a dataplane that refuses a command leaves the table as it was.

mod gateway;
mod reclaim;
mod taps;

pub use taps::{TapOn, TAP_RING_FRAMES};

use crate::clock::ControlClock;
use crate::error::ControlError;
use crate::events::Event;
use crate::gateway::{GatewayTable, Observation};
use crate::media::MediaPlane;
use crate::orphan::{OrphanConfig, PromptTable, Reason};
use crate::reclaim::{Reclaim, ReclaimCounts};
use crate::sessions::{NewConference, NewParticipant, ParticipantPatch, SessionError, Sessions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::VecDeque;
use std::sync::Arc;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{
    ConfKey, MediaEvent, MediaOp, PartKey, ParticipantSettings, PromptSpec, RtpBasis, Timing,
};

/// Where a participant is: its conference's core (index into
/// [`MediaPlane::cores`](crate::media::MediaPlane::cores)) and key, and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Home {
    pub core: usize,
    pub conf: ConfKey,
    pub settings: ParticipantSettings,
}

/// The control core. See the module documentation.
pub struct Control {
    pub(crate) media: Arc<dyn MediaPlane>,
    pub(crate) clock: Arc<dyn ControlClock>,
    pub(crate) sessions: Sessions,
    pub(crate) reclaim: Reclaim,
    pub(crate) counts: ReclaimCounts,
    /// The gateway role's table, when it has the role.
    pub(crate) gateway: Option<GatewayTable>,
    /// The RNG for everything but SSRCs (the session table has its own).
    pub(crate) rng: StdRng,
    pub(crate) observations: Vec<Observation>,
    /// Dial-outs that failed, kept a while for `GET` of their participant.
    pub(crate) failed_dials: crate::sip::FailedDials,
    events: VecDeque<Event>,
    /// The last audio tap key handed out.
    pub(crate) next_tap: u32,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("sessions", &self.sessions)
            .field("reclaim", &self.reclaim)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// The core over the conference cores of `media` (its cores and reclamation
    /// prompts are read once, here), on `clock`, with reclamation timers `orphan` and
    /// an RNG (SSRCs) seeded with `seed`.
    pub fn new(
        media: Arc<dyn MediaPlane>,
        clock: Arc<dyn ControlClock>,
        orphan: OrphanConfig,
        seed: u64,
    ) -> Self {
        let prompts = PromptTable::new(|p| {
            let id = media.prompt(p.name())?;
            Some((id, media.prompt_length(id)?))
        });
        Control {
            sessions: Sessions::new(media.cores(), seed),
            reclaim: Reclaim::new(orphan, prompts),
            counts: ReclaimCounts::default(),
            gateway: None,
            rng: StdRng::seed_from_u64(seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15),
            observations: Vec::new(),
            failed_dials: crate::sip::FailedDials::default(),
            events: VecDeque::new(),
            next_tap: 0,
            media,
            clock,
        }
    }

    /// The session table.
    /// The names of the prompts the dataplane can play.
    pub fn prompt_names(&self) -> Vec<String> {
        self.media.prompt_names()
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The lease table and orphan watches.
    pub fn reclaim(&self) -> &Reclaim {
        &self.reclaim
    }

    /// Reclamation counts.
    pub fn reclaim_counts(&self) -> &ReclaimCounts {
        &self.counts
    }

    /// The next event for subscribers.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn publish(&mut self, ev: Event) {
        self.events.push_back(ev);
    }

    pub(crate) fn session_event(&mut self, kind: &'static str, conf: &str, part: Option<&str>) {
        let ev = Event::session(kind, conf, part, self.clock.wall());
        self.publish(ev);
    }

    /// When [`Control::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.orphan_timeout()
            .into_iter()
            .chain(self.handover_timeout())
            .min()
    }

    /// Run every timer due at the clock's now: leases, orphan steps, handovers.
    pub fn handle_timeout(&mut self) {
        let now = self.clock.now();
        self.poll_orphans(now);
        self.poll_handovers(now);
    }

    /// Create a conference; its owner (if any) must hold a live lease.
    pub fn create_conference(&mut self, new: NewConference) -> Result<ConfKey, ControlError> {
        if let Some(owner) = &new.owner {
            self.require_lease(owner)?;
        }
        let now = self.clock.wall();
        let c = self.sessions.create_conference(new, now)?;
        let (core, key, spec, id) = (c.core, c.key, c.spec(), c.id.clone());
        let _span = tracing::info_span!("conference", id = %id).entered();
        if let Err(e) = self.media.apply(core, MediaOp::CreateConference(spec)) {
            self.sessions.remove_conference(key);
            tracing::warn!(error = %e, "conference not created");
            return Err(e.into());
        }
        tracing::info!(lcore = c.lcore, "conference created");
        self.reclaim.conference_created(key);
        self.session_event("conference_created", &id, None);
        Ok(key)
    }

    /// Delete conference `id` and its participants.
    pub fn delete_conference(&mut self, id: &str) -> Result<(), ControlError> {
        let key = self.sessions.conference(id)?.key;
        self.remove_conference(key, None)
    }

    /// Add a participant to conference `conf_id`.
    pub fn add_participant(
        &mut self,
        conf_id: &str,
        new: NewParticipant,
    ) -> Result<PartKey, ControlError> {
        let _span = tracing::info_span!("conference", id = %conf_id).entered();
        self.admits(conf_id)?;
        let now = self.clock.wall();
        let liveness = self.reclaim.config().liveness();
        let core = self.sessions.conference(conf_id)?.core;
        let p = self.sessions.add_participant(conf_id, new, now)?;
        let (spec, pid) = (p.spec(liveness), p.id.clone());
        if let Err(e) = self.media.apply(core, MediaOp::AddParticipant(spec)) {
            self.sessions.remove_participant(spec.conf, spec.key);
            tracing::warn!(error = %e, "participant not added");
            return Err(e.into());
        }
        tracing::info!(participant = %pid, remote = %spec.remote, "participant added");
        self.reclaim
            .participant_added(spec.conf, spec.key, self.clock.now());
        self.session_event("participant_created", conf_id, Some(&pid));
        Ok(spec.key)
    }

    /// An error unless conference `conf_id` takes new participants: it exists and is
    /// not orphaned (an orphaned conference takes none, from any door, until a
    /// heartbeat or an adoption).
    pub(crate) fn admits(&self, conf_id: &str) -> Result<(), ControlError> {
        let key = self.sessions.conference(conf_id)?.key;
        if self.reclaim.is_orphaned(key) {
            return Err(ControlError::Orphaned(conf_id.to_string()));
        }
        Ok(())
    }

    /// Move participant `pid` of conference `id` to conference `to` — on the same
    /// dataplane core or another — with its call as it is: same local port, same SSRC
    /// and sequence numbers, no renegotiation with the endpoint (what an IVR does when
    /// the caller's code is accepted, or breakout rooms). It keeps its id and settings;
    /// `to` must take new participants ([`Control::add_participant`]'s rules).
    pub fn move_participant(&mut self, id: &str, pid: &str, to: &str) -> Result<(), ControlError> {
        let _span = tracing::info_span!("conference", id = %id).entered();
        self.admits(to)?;
        let core = self.sessions.conference(id)?.core;
        let p = self.sessions.participant(id, pid)?;
        let (pending, settings) = (p.pending(), p.settings);
        let (part, from, to_key) = self.sessions.move_participant(id, pid, to)?;
        if !pending {
            let op = MediaOp::MoveParticipant {
                conf: from,
                part,
                to: to_key,
                settings,
            };
            if let Err(e) = self.media.apply(core, op) {
                // Put it back as it was: the dataplane did not take the move.
                let _ = self.sessions.move_participant(to, pid, id);
                return Err(e.into());
            }
            self.reclaim.participant_removed(from, part);
            self.reclaim
                .participant_added(to_key, part, self.clock.now());
        }
        tracing::info!(participant = %pid, to = %to, "participant moved");
        let mut ev = Event::session("participant_moved", to, Some(pid), self.clock.wall());
        ev.detail.from = Some(id.to_string());
        self.publish(ev);
        Ok(())
    }

    /// Where participant `part` is now (a core sending a moving participant on asks).
    pub fn participant_home(&self, part: PartKey) -> Option<Home> {
        let c = self.sessions.conference_of(part)?;
        let p = c.participants().find(|p| p.key == part)?;
        Some(Home {
            core: c.core,
            conf: c.key,
            settings: p.settings,
        })
    }

    /// The keys of participant `pid` of conference `id` and the conference's core.
    pub(crate) fn part_keys(
        &self,
        id: &str,
        pid: &str,
    ) -> Result<(usize, ConfKey, PartKey), ControlError> {
        let core = self.sessions.conference(id)?.core;
        let p = self.sessions.participant(id, pid)?;
        Ok((core, p.conf, p.key))
    }

    fn no_such_participant(id: &str, pid: &str) -> ControlError {
        SessionError::NoSuchParticipant {
            conf: id.to_string(),
            part: pid.to_string(),
        }
        .into()
    }

    /// Change participant `pid`'s mute, deaf, gain or hold; while orphaned, a
    /// participant put on remote hold is deleted first.
    pub fn patch_participant(
        &mut self,
        id: &str,
        pid: &str,
        patch: ParticipantPatch,
    ) -> Result<(), ControlError> {
        let _span = tracing::info_span!("conference", id = %id).entered();
        let (core, conf, part) = self.part_keys(id, pid)?;
        let p = self.sessions.participant(id, pid)?;
        let (settings, hold) = patch.applied_to(p);
        // A dial-out not answered yet takes its settings to the dataplane when it is.
        if settings != p.settings && !p.pending() {
            self.media.apply(
                core,
                MediaOp::UpdateParticipant {
                    conf,
                    part,
                    settings,
                },
            )?;
        }
        self.sessions
            .set_participant(conf, part, settings, hold)
            .ok_or_else(|| Self::no_such_participant(id, pid))?;
        self.reclaim.hold_changed(conf, part, hold);
        Ok(())
    }

    /// Participant `pid`'s stream goes on with another SSRC, sequence number and
    /// timestamp (a mixer taking a conference over from another); input timing only.
    pub fn set_rtp_basis(
        &mut self,
        id: &str,
        pid: &str,
        basis: RtpBasis,
    ) -> Result<(), ControlError> {
        let (core, conf, part) = self.part_keys(id, pid)?;
        self.answered(id, pid)?;
        if self.sessions.conference(id)?.timing == Timing::Arrival {
            return Err(ControlError::NotInputTimed(id.to_string()));
        }
        self.media
            .apply(core, MediaOp::SetRtpBasis { conf, part, basis })?;
        self.sessions
            .set_participant_ssrc(conf, part, basis.ssrc)
            .ok_or_else(|| Self::no_such_participant(id, pid))?;
        Ok(())
    }

    /// Delete participant `pid` of conference `id` (or forget its failed dial-out).
    pub fn delete_participant(&mut self, id: &str, pid: &str) -> Result<(), ControlError> {
        if self.sessions.participant(id, pid).is_err() {
            let now = self.clock.now();
            if self.failed_dials.forget(now, id, pid) {
                return Ok(());
            }
        }
        let (_, conf, part) = self.part_keys(id, pid)?;
        self.remove_participant(conf, part, None)
    }

    /// An error unless participant `pid` is on the dataplane (a dial-out not answered
    /// yet is not).
    fn answered(&self, id: &str, pid: &str) -> Result<(), ControlError> {
        if self.sessions.participant(id, pid)?.pending() {
            return Err(ControlError::Invalid(format!(
                "participant {pid} is being dialled and has no media yet"
            )));
        }
        Ok(())
    }

    /// Play prompt `prompt` to conference `id`, or to one of its participants.
    pub fn play_prompt(
        &mut self,
        id: &str,
        participant: Option<&str>,
        prompt: &str,
    ) -> Result<(), ControlError> {
        let c = self.sessions.conference(id)?;
        let (core, conf) = (c.core, c.key);
        let part = match participant {
            Some(pid) => {
                self.answered(id, pid)?;
                Some(self.sessions.participant(id, pid)?.key)
            }
            None => None,
        };
        let Some(prompt_id) = self.media.prompt(prompt) else {
            let names = self.media.prompt_names();
            return Err(ControlError::UnknownPrompt {
                prompt: prompt.to_string(),
                available: if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                },
            });
        };
        let spec = PromptSpec {
            conf,
            part,
            prompt: prompt_id,
        };
        self.media.apply(core, MediaOp::PlayPrompt(spec))?;
        tracing::info!(conference = %id, participant = ?participant, prompt, "prompt played");
        Ok(())
    }

    /// An event about a deletion, with its reclamation reason if it has one.
    fn deleted(
        &mut self,
        kind: &'static str,
        conf: &str,
        part: Option<&str>,
        reason: Option<Reason>,
    ) {
        let mut ev = Event::session(kind, conf, part, self.clock.wall());
        ev.detail.reason = reason.map(Reason::as_str);
        self.publish(ev);
    }

    /// Delete conference `key` and its participants on the dataplane and in the table,
    /// with its orphan watch, and publish the events: what a delete request does, and
    /// what reclamation does (with a `reason`: then it is counted and a
    /// `conference_released` event says why).
    pub(crate) fn remove_conference(
        &mut self,
        key: ConfKey,
        reason: Option<Reason>,
    ) -> Result<(), ControlError> {
        let core = self
            .sessions
            .conference_by_key(key)
            .ok_or(ControlError::Gone)?
            .core;
        let id = self.sessions.conference_by_key(key).map(|c| c.id.clone());
        let _span = tracing::info_span!("conference", id = ?id).entered();
        self.media.apply(core, MediaOp::DeleteConference(key))?;
        self.reclaim.conference_removed(key);
        let Some(c) = self.sessions.remove_conference(key) else {
            return Ok(());
        };
        tracing::info!(reason = reason.map(Reason::as_str), "conference deleted");
        for p in c.participants() {
            self.deleted("participant_deleted", &c.id, Some(&p.id), reason);
        }
        if let Some(reason) = reason {
            self.counts
                .conference_released(reason, c.participant_count());
            self.deleted("conference_released", &c.id, None, Some(reason));
        }
        self.deleted("conference_deleted", &c.id, None, reason);
        Ok(())
    }

    /// Delete participant `part` of conference `conf` on the dataplane, in the table
    /// and in the orphan watch, and publish the event (with a `reason`, counted).
    pub(crate) fn remove_participant(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        reason: Option<Reason>,
    ) -> Result<(), ControlError> {
        let c = self
            .sessions
            .conference_by_key(conf)
            .ok_or(ControlError::Gone)?;
        let (core, conf_id) = (c.core, c.id.clone());
        let pending = c
            .participants()
            .find(|p| p.key == part)
            .is_some_and(|p| p.pending());
        let _span = tracing::info_span!("conference", id = %conf_id).entered();
        if !pending {
            self.media
                .apply(core, MediaOp::RemoveParticipant { conf, part })?;
            self.reclaim.participant_removed(conf, part);
        }
        let Some(p) = self.sessions.remove_participant(conf, part) else {
            return Ok(());
        };
        tracing::info!(participant = %p.id, reason = reason.map(Reason::as_str), "participant deleted");
        if let Some(reason) = reason {
            self.counts.participant_deleted(reason);
        }
        self.deleted("participant_deleted", &conf_id, Some(&p.id), reason);
        Ok(())
    }

    /// Handle one event drained from dataplane core `core`'s event ring (index into
    /// `media.cores()`): map its keys to API ids, queue it for subscribers and feed it
    /// to the conference's orphan watch. Events about conferences or participants that
    /// no longer exist are dropped. The timestamp is the wall-clock time of this call,
    /// not `ev.at` (the dataplane clock has no wall-clock origin); the event ring is
    /// drained every few milliseconds, so the two differ by that much.
    pub fn media_event(&mut self, core: usize, ev: MediaEvent) {
        let event = crate::events::Event::from_media(
            &self.sessions,
            self.media.as_ref(),
            core,
            &ev,
            self.clock.wall(),
        );
        let Some(event) = event else {
            return;
        };
        self.publish(event);
        self.watch_event(&ev);
    }
}
