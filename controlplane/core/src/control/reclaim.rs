//! The reclamation procedure and the call-manager operations of [`Control`]: lapse
//! leases, orphan their conferences, carry the orphan watches' steps out through the
//! same deletion code the API's deletes use, heartbeats and adoption.

use super::Control;
use crate::error::ControlError;
use crate::events::Event;
use crate::leases::{CallManagerStatus, Renewal};
use crate::media::MediaError;
use crate::orphan::{Action, ConferenceWatch, Target};
use crate::reclaim::check_name;
use std::collections::BTreeMap;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{ConfKey, MediaEvent, MediaOp, PartKey, PromptSpec};

impl Control {
    /// Run the lease and orphan timers due now: lapse leases (orphaning their call
    /// managers' conferences), retry the steps the dataplane was too busy for, and take
    /// every orphan watch's due steps.
    pub(crate) fn poll_orphans(&mut self, now: Instant) {
        for cm in self.reclaim.leases.poll(now) {
            tracing::warn!(call_manager = %cm, "call-manager lease lapsed");
            let ev = Event::lease("lease_lapsed", &cm, self.clock.wall());
            self.publish(ev);
            let owned: Vec<ConfKey> = self
                .sessions
                .conferences()
                .filter(|c| c.owner.as_deref() == Some(cm.as_str()))
                .map(|c| c.key)
                .collect();
            for key in owned {
                self.orphan(key, &cm, now);
            }
        }
        for (key, action) in std::mem::take(&mut self.reclaim.retry) {
            self.execute(key, action);
        }
        let due: Vec<ConfKey> = self
            .reclaim
            .watches
            .iter()
            .filter(|(_, w)| w.is_orphaned() && w.poll_timeout().is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let actions = match self.reclaim.watches.get_mut(&key) {
                Some(w) => w.handle_timeout(now),
                None => continue,
            };
            for a in actions {
                self.execute(key, a);
            }
        }
    }

    /// When the next lease lapses or orphan step is due.
    pub(crate) fn orphan_timeout(&self) -> Option<Instant> {
        let watches = self
            .reclaim
            .watches
            .values()
            .filter(|w| w.is_orphaned())
            .filter_map(ConferenceWatch::poll_timeout);
        let retry = (!self.reclaim.retry.is_empty()).then(|| self.clock.now());
        watches
            .chain(self.reclaim.leases.poll_timeout())
            .chain(retry)
            .min()
    }

    /// Call manager `cm` holds a live lease (else a conference made for it would have
    /// no heartbeat to keep it, and be reclaimed at once).
    pub(crate) fn require_lease(&self, cm: &str) -> Result<(), ControlError> {
        let leases = &self.reclaim.leases;
        if leases.holds(cm) && !leases.is_lapsed(cm) {
            Ok(())
        } else {
            Err(ControlError::NoLease(cm.to_string()))
        }
    }

    /// Start the orphan procedure of conference `key`, whose owner `cm` is gone.
    pub(crate) fn orphan(&mut self, key: ConfKey, cm: &str, now: Instant) {
        let (Some(c), Some(w)) = (
            self.sessions.conference_by_key(key),
            self.reclaim.watches.get_mut(&key),
        ) else {
            return;
        };
        if w.orphan(now) {
            tracing::info!(conference = %c.id, call_manager = %cm, "conference orphaned");
            let mut ev = Event::session("conference_orphaned", &c.id, None, self.clock.wall());
            ev.detail.call_manager = Some(cm.to_string());
            self.publish(ev);
        }
    }

    /// Feed a dataplane event to its conference's watch (the caller has checked that
    /// the conference and participant are live on the event's core).
    pub(crate) fn watch_event(&mut self, ev: &MediaEvent) {
        let actions = match self.reclaim.watches.get_mut(&ev.conf) {
            Some(w) => w.handle_event(ev.part, ev.at, ev.kind),
            None => return,
        };
        for a in actions {
            self.execute(ev.conf, a);
        }
    }

    /// Carry out one step of conference `key`'s procedure.
    fn execute(&mut self, key: ConfKey, action: Action) {
        let Some(c) = self.sessions.conference_by_key(key) else {
            return;
        };
        let (core, id) = (c.core, c.id.clone());
        let span = tracing::info_span!("reclaim", conference = %id);
        let _enter = span.enter();
        let part_id = |s: &crate::sessions::Sessions, part: Option<PartKey>| {
            part.and_then(|k| s.ids(core, key, Some(k))?.1.map(str::to_string))
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
                let pid = part_id(&self.sessions, part);
                let mut ev =
                    Event::session("prompt_played", &id, pid.as_deref(), self.clock.wall());
                ev.detail.prompt = Some(prompt.name().to_string());
                ev.detail.reason = Some(reason.as_str());
                ev.detail.missing = Some(!available);
                if let Some((prompt_id, _)) = self.reclaim.prompts.get(prompt) {
                    let spec = PromptSpec {
                        conf: key,
                        part,
                        prompt: prompt_id,
                    };
                    if let Err(e) = self.media.apply(core, MediaOp::PlayPrompt(spec)) {
                        tracing::warn!(prompt = prompt.name(), error = %e, "reclamation prompt not played");
                        ev.detail.error = Some(e.to_string());
                    }
                }
                tracing::info!(prompt = prompt.name(), participant = ?pid, reason = reason.as_str(), "reclamation prompt");
                self.publish(ev);
            }
            Action::ReplyHeard { part, by } => {
                let pid = part_id(&self.sessions, Some(part));
                let mut ev = Event::session("reply_heard", &id, pid.as_deref(), self.clock.wall());
                ev.detail.by = Some(by.as_str());
                self.publish(ev);
            }
            Action::DeleteParticipant { part, reason } => {
                let done = self.remove_participant(key, part, Some(reason));
                self.retry_if_busy(key, action, done);
            }
            Action::Release { reason } => {
                let done = self.remove_conference(key, Some(reason));
                self.retry_if_busy(key, action, done);
            }
        }
    }

    /// Keep `action` for the next poll if the dataplane was too busy to take it; other
    /// failures mean the conference or participant is gone already.
    fn retry_if_busy(&mut self, key: ConfKey, action: Action, done: Result<(), ControlError>) {
        if let Err(ControlError::Media(MediaError::Busy(_))) = done {
            tracing::warn!("dataplane busy; reclamation step retried on the next poll");
            self.reclaim.retry.push((key, action));
        }
    }
}

impl Control {
    /// Every call manager with a lease, by name.
    pub fn call_managers(&self) -> Vec<CallManagerStatus> {
        let now = self.clock.now();
        let counts = self.owned_counts();
        self.reclaim
            .leases
            .iter()
            .filter_map(|(cm, _)| self.call_manager(&counts, cm, now))
            .collect()
    }

    /// Conferences and orphaned conferences per owner.
    fn owned_counts(&self) -> BTreeMap<String, (usize, usize)> {
        let mut counts = BTreeMap::new();
        for c in self.sessions.conferences() {
            if let Some(owner) = &c.owner {
                let e: &mut (usize, usize) = counts.entry(owner.clone()).or_default();
                e.0 += 1;
                e.1 += usize::from(self.reclaim.is_orphaned(c.key));
            }
        }
        counts
    }

    fn call_manager(
        &self,
        counts: &BTreeMap<String, (usize, usize)>,
        cm: &str,
        now: Instant,
    ) -> Option<CallManagerStatus> {
        let leases = &self.reclaim.leases;
        let (_, lease) = leases.iter().find(|(name, _)| *name == cm)?;
        let (conferences, orphaned_conferences) = counts.get(cm).copied().unwrap_or_default();
        Some(CallManagerStatus {
            id: cm.to_string(),
            interval: lease.interval,
            lease_misses: leases.misses(),
            up: !lease.lapsed,
            since_last_heartbeat: now.saturating_since(lease.last),
            expires_in: leases.expiry(lease).saturating_since(now),
            conferences,
            orphaned_conferences,
        })
    }

    /// A heartbeat from call manager `cm` announcing `interval_ms`: create or renew its
    /// lease; a renewed lapsed lease ends the orphaned state of its conferences. What
    /// the heartbeat did and the lease afterwards.
    pub fn heartbeat(
        &mut self,
        cm: &str,
        interval_ms: u64,
    ) -> Result<(Renewal, CallManagerStatus), ControlError> {
        check_name("call manager id", cm)?;
        let now = self.clock.now();
        let renewal = self.reclaim.leases.heartbeat(cm, interval_ms, now)?;
        match renewal {
            Renewal::Created => {
                tracing::info!(call_manager = %cm, interval_ms, "call-manager lease created")
            }
            Renewal::Restored => tracing::info!(call_manager = %cm, "call-manager lease restored"),
            Renewal::Renewed => {}
        }
        if renewal == Renewal::Restored {
            let ev = Event::lease("lease_renewed", cm, self.clock.wall());
            self.publish(ev);
            let owned: Vec<(ConfKey, String)> = self
                .sessions
                .conferences()
                .filter(|c| c.owner.as_deref() == Some(cm))
                .map(|c| (c.key, c.id.clone()))
                .collect();
            for (key, id) in owned {
                if self
                    .reclaim
                    .watches
                    .get_mut(&key)
                    .is_some_and(|w| w.adopt())
                {
                    let ev = self.adopted_event(&id, cm, Some(cm));
                    self.publish(ev);
                }
            }
        }
        let counts = self.owned_counts();
        let status = self
            .call_manager(&counts, cm, now)
            .ok_or(ControlError::Gone)?;
        Ok((renewal, status))
    }

    fn adopted_event(&self, conf: &str, owner: &str, previous: Option<&str>) -> Event {
        let mut ev = Event::session("conference_adopted", conf, None, self.clock.wall());
        ev.detail.call_manager = Some(owner.to_string());
        ev.detail.previous_owner = previous.map(str::to_string);
        ev
    }

    /// A (backup) call manager `owner`, which must hold a live lease, takes conference
    /// `id` over; the orphan procedure, if it runs, stops.
    pub fn adopt(&mut self, id: &str, owner: &str) -> Result<ConfKey, ControlError> {
        check_name("owner", owner)?;
        let c = self.sessions.conference(id)?;
        self.require_lease(owner)?;
        let (key, previous) = (c.key, c.owner.clone());
        self.sessions.set_owner(key, owner.to_string());
        if let Some(w) = self.reclaim.watches.get_mut(&key) {
            w.adopt();
        }
        tracing::info!(conference = %id, owner = %owner, previous = ?previous, "conference adopted");
        let ev = self.adopted_event(id, owner, previous.as_deref());
        self.publish(ev);
        Ok(key)
    }
}
