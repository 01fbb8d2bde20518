//! The gateway operations of [`Control`]: the steps around the calls to mixers, the
//! handovers' effects, their peer requests and answers, relay events and timeouts.

use super::Control;
use crate::error::ControlError;
use crate::events::Event;
use crate::gateway::handover::{Action, Client, Handover, Mode, Refused};
use crate::gateway::{
    Draining, GatewayConfig, GatewayTable, MixerStatus, Observation, PendingConference,
    PendingParticipant, RelayedConference, RelayedParticipant, DRAIN_CONCURRENCY, DRAIN_RETRY,
};
use crate::peer::{MixerParticipant, PeerRequest, PeerRequestId, PeerResult};
use crate::sessions::{
    valid_conference_id, NewConference, NewParticipant, ParticipantPatch, SessionError,
};
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{ConfKey, PartKey};
use tutti_dataplane::relay::{RelayCommand, RelayEvent, RelaySession, RelaySpec, Timeline};

impl Control {
    /// Take the gateway role with `config`.
    pub fn enable_gateway(&mut self, config: GatewayConfig) {
        self.gateway = Some(GatewayTable::new(config));
    }

    /// The gateway's table.
    pub fn gateway(&self) -> Result<&GatewayTable, ControlError> {
        self.gateway.as_ref().ok_or(ControlError::NotAGateway)
    }

    fn gateway_mut(&mut self) -> Result<&mut GatewayTable, ControlError> {
        self.gateway.as_mut().ok_or(ControlError::NotAGateway)
    }

    /// Reserve an id (`id`, or a generated one) and key for a conference to create on
    /// a mixer, so two requests cannot race.
    pub fn gw_reserve_conference(
        &mut self,
        id: Option<String>,
    ) -> Result<PendingConference, ControlError> {
        let g = self.gateway_mut()?;
        let id = match id {
            None => {
                g.last_conf = g.last_conf.wrapping_add(1);
                format!("conf-{}", g.last_conf)
            }
            Some(id) if valid_conference_id(&id) => id,
            Some(id) => return Err(SessionError::InvalidConferenceId(id).into()),
        };
        if g.confs.contains_key(&id) || g.by_key.values().any(|v| *v == id) {
            return Err(SessionError::DuplicateConference(id).into());
        }
        let key = loop {
            g.last_conf = g.last_conf.wrapping_add(1);
            let k = ConfKey(g.last_conf);
            if k.0 != 0 && !g.by_key.contains_key(&k) {
                break k;
            }
        };
        g.by_key.insert(key, id.clone());
        Ok(PendingConference { id, key })
    }

    /// The mixer refused or failed: the reserved id is free again.
    pub fn gw_cancel_conference(&mut self, pending: PendingConference) {
        if let Ok(g) = self.gateway_mut() {
            g.by_key.remove(&pending.key);
        }
    }

    /// Conference `pending` was created on `mixer` as `spec`.
    pub fn gw_conference_created(
        &mut self,
        pending: PendingConference,
        mixer: String,
        spec: NewConference,
        orphaned: bool,
    ) -> Result<(), ControlError> {
        let timeline = Timeline {
            base: self.rng.gen(),
            origin: self.clock.now(),
            ptime: spec.ptime,
        };
        let created_at = self.clock.wall();
        let id = pending.id.clone();
        tracing::info!(conference = %id, mixer = %mixer, "relayed conference created");
        self.gateway_mut()?.confs.insert(
            id.clone(),
            RelayedConference {
                id: id.clone(),
                key: pending.key,
                mixer,
                spec,
                timeline,
                parts: BTreeMap::new(),
                created_at,
                orphaned,
                handover: None,
            },
        );
        let ev = Event::session("conference_created", &id, None, created_at);
        self.publish(ev);
        Ok(())
    }

    /// The hosting mixer of conference `id` (refused while it is handed over).
    pub fn gw_mixer(&self, id: &str) -> Result<String, ControlError> {
        let c = self.gateway()?.conference(id)?;
        c.idle()?;
        Ok(c.mixer.clone())
    }

    /// The hosting mixer of participant `pid` of `id` and the participant's id there
    /// (refused while the conference is handed over).
    pub fn gw_mixer_participant(
        &self,
        id: &str,
        pid: &str,
    ) -> Result<(String, String), ControlError> {
        let g = self.gateway()?;
        let p = g.participant(id, pid)?;
        let c = g.conference(id)?;
        c.idle()?;
        Ok((c.mixer.clone(), p.on_mixer.id.clone()))
    }

    /// Stop relaying `p` and free its ports.
    fn unrelay(&mut self, p: &RelayedParticipant) {
        if let Err(e) = self.media.relay(p.core, RelayCommand::Remove(p.key)) {
            tracing::warn!(participant = %p.id, error = %e, "relay not removed");
        }
        self.sessions
            .release_port_pairs(p.core, &[p.local.port(), p.mixer_port]);
    }

    /// Conference `id` is gone from its mixer: forget it here too.
    pub fn gw_conference_deleted(&mut self, id: &str) -> Result<(), ControlError> {
        let g = self.gateway_mut()?;
        let c = g.confs.remove(id).ok_or(ControlError::Gone)?;
        g.by_key.remove(&c.key);
        for p in c.parts.values() {
            self.unrelay(p);
        }
        tracing::info!(conference = %id, "relayed conference deleted");
        self.session_event("conference_deleted", id, None);
        Ok(())
    }

    /// Reserve a port pair towards client `client` and one towards the mixers for a
    /// participant of conference `id` whose request to the mixers is `spec` (its
    /// `remote` is set here to our address).
    pub fn gw_reserve_participant(
        &mut self,
        id: &str,
        client: SocketAddrV4,
        mut spec: NewParticipant,
    ) -> Result<PendingParticipant, ControlError> {
        let c = self.gateway()?.conference(id)?;
        c.idle()?;
        let (mixer, timeline, conf) = (c.mixer.clone(), c.timeline, c.key);
        let (core, ports) = self
            .sessions
            .reserve_port_pairs(2)
            .ok_or(ControlError::NoRelayPorts)?;
        let Some(ip) = self.media.cores().get(core).map(|c| c.local_ip) else {
            self.sessions.release_port_pairs(core, &ports);
            return Err(crate::media::MediaError::Rejected(format!("no core {core}")).into());
        };
        spec.remote = SocketAddrV4::new(ip, ports[1]);
        // SRTP ends here: the mixers get the client's media plain.
        let srtp = spec.srtp.take();
        Ok(PendingParticipant {
            mixer,
            spec,
            srtp,
            conf,
            timeline,
            core,
            ports: [ports[0], ports[1]],
            client,
            local: SocketAddrV4::new(ip, ports[0]),
        })
    }

    /// The mixer did not create the participant: its ports are free again.
    pub fn gw_cancel_participant(&mut self, pending: PendingParticipant) {
        self.sessions
            .release_port_pairs(pending.core, &pending.ports);
    }

    /// The mixer created participant `pending` of conference `id` as `on_mixer`:
    /// relay it. On an error the caller deletes it on the mixer again.
    pub fn gw_participant_created(
        &mut self,
        id: &str,
        pending: PendingParticipant,
        on_mixer: MixerParticipant,
    ) -> Result<String, ControlError> {
        let g = self.gateway_mut()?;
        g.last_part = g.last_part.wrapping_add(1);
        let key = PartKey(g.last_part);
        let spec = RelaySpec {
            conf: pending.conf,
            part: key,
            client: pending.client,
            client_port: pending.ports[0],
            mixer_port: pending.ports[1],
            mixer: on_mixer.local,
            timeline: pending.timeline,
        };
        let session = match &pending.srtp {
            Some(keys) => RelaySession::secured(spec, keys),
            None => Ok(RelaySession::new(spec)),
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                self.gw_cancel_participant(pending);
                return Err(ControlError::Invalid(format!("srtp: {e}")));
            }
        };
        if let Err(e) = self.media.relay(pending.core, RelayCommand::Add(session)) {
            self.gw_cancel_participant(pending);
            return Err(e.into());
        }
        let pid = format!("p{}", key.0);
        let part = RelayedParticipant {
            id: pid.clone(),
            key,
            core: pending.core,
            local: pending.local,
            mixer_port: pending.ports[1],
            client: pending.client,
            spec: pending.spec,
            srtp: pending.srtp,
            hold: false,
            on_mixer,
            created_at: self.clock.wall(),
        };
        let g = self.gateway_mut()?;
        match g.confs.get_mut(id) {
            Some(c) => {
                c.parts.insert(pid.clone(), part);
            }
            None => {
                self.unrelay(&part);
                return Err(ControlError::Gone);
            }
        }
        tracing::info!(conference = %id, participant = %pid, client = %pending.client, "relayed participant added");
        self.session_event("participant_created", id, Some(&pid));
        Ok(pid)
    }

    /// The hosting mixer took `patch` for participant `pid`: later mixers (after a
    /// handover) are created with the new settings too.
    pub fn gw_participant_patched(
        &mut self,
        id: &str,
        pid: &str,
        patch: ParticipantPatch,
    ) -> Result<(), ControlError> {
        let p = self
            .gateway_mut()?
            .conference_mut(id)?
            .parts
            .get_mut(pid)
            .ok_or(ControlError::Gone)?;
        let (settings, hold) = patch.apply(p.spec.settings, p.hold);
        p.spec.settings = settings;
        p.hold = hold;
        Ok(())
    }

    /// Participant `pid` is gone from its mixer: stop relaying it.
    pub fn gw_participant_deleted(&mut self, id: &str, pid: &str) -> Result<(), ControlError> {
        let p = self
            .gateway_mut()?
            .conference_mut(id)?
            .parts
            .remove(pid)
            .ok_or(ControlError::Gone)?;
        self.unrelay(&p);
        tracing::info!(conference = %id, participant = %pid, "relayed participant deleted");
        self.session_event("participant_deleted", id, Some(pid));
        Ok(())
    }

    /// The hosting mixer took adoption of conference `id` by `owner`: a later
    /// handover creates it with the new owner.
    pub fn gw_adopted(
        &mut self,
        id: &str,
        owner: &str,
        orphaned: bool,
    ) -> Result<(), ControlError> {
        let c = self.gateway_mut()?.conference_mut(id)?;
        c.spec.owner = Some(owner.to_string());
        c.orphaned = orphaned;
        Ok(())
    }

    /// Start handing conference `id` over from `from` (its mixer when the caller
    /// looked) to `to` in `mode`.
    pub fn gw_start_handover(
        &mut self,
        id: &str,
        from: &str,
        to: String,
        mode: Mode,
    ) -> Result<(), ControlError> {
        let (now, wall) = (self.clock.now(), self.clock.wall());
        let g = self.gateway_mut()?;
        let settings = g.config.handover;
        let c = g.conference_mut(id)?;
        c.idle()?;
        if c.mixer != from {
            return Err(ControlError::Moved {
                conf: id.to_string(),
                mixer: c.mixer.clone(),
            });
        }
        let clients = c
            .parts
            .values()
            .map(|p| Client {
                id: p.id.clone(),
                key: p.key,
                core: p.core,
                spec: p.spec,
            })
            .collect();
        let mut spec = c.spec.clone();
        spec.id = Some(id.to_string());
        let span = tracing::info_span!("handover", conference = %id, from = %from, to = %to);
        let _enter = span.enter();
        tracing::info!(mode = mode.as_str(), "handover started");
        let h = Handover::start(
            id,
            spec,
            c.timeline.ptime,
            clients,
            from,
            &to,
            mode,
            settings,
            now,
            wall,
        );
        c.handover = Some(h);
        let key = c.key;
        self.run_handover(key);
        Ok(())
    }

    /// Drain mixer `url`: it takes no new conferences, and [`Control::gw_drain_due`]
    /// names its conferences to hand over to the others, until none is left.
    pub fn gw_drain(&mut self, url: &str) -> Result<MixerStatus, ControlError> {
        let wall = self.clock.wall();
        let g = self.gateway_mut()?;
        let m = g.configured_mixer(url)?;
        if !g.draining.contains_key(&m) {
            g.draining.insert(m.clone(), Draining::default());
            tracing::info!(mixer = %m, "mixer draining");
            self.publish(Event::mixer("mixer_draining", &m, wall));
        }
        self.gw_mixer_status(&m)
    }

    /// Stop draining mixer `url` (it takes new conferences again; what moved stays).
    pub fn gw_undrain(&mut self, url: &str) -> Result<MixerStatus, ControlError> {
        let wall = self.clock.wall();
        let g = self.gateway_mut()?;
        let m = g.configured_mixer(url)?;
        if g.draining.remove(&m).is_some() {
            tracing::info!(mixer = %m, "mixer undrained");
            self.publish(Event::mixer("mixer_undrained", &m, wall));
        }
        self.gw_mixer_status(&m)
    }

    fn gw_mixer_status(&self, m: &str) -> Result<MixerStatus, ControlError> {
        self.gateway()?
            .mixers()
            .into_iter()
            .find(|s| s.mixer == m)
            .ok_or_else(|| ControlError::Invalid(format!("{m} is not a configured mixer")))
    }

    /// The conferences of draining mixers to hand over now, with their mixer: each idle
    /// one not tried in the last [`DRAIN_RETRY`], at most [`DRAIN_CONCURRENCY`] moving
    /// off one mixer at once. A mixer left with no conference is reported drained
    /// (`mixer_drained`, once).
    pub fn gw_drain_due(&mut self) -> Vec<(String, String)> {
        let (now, wall) = (self.clock.now(), self.clock.wall());
        let Some(g) = self.gateway.as_mut() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        let mut drained = Vec::new();
        for (m, d) in g.draining.iter_mut() {
            let on: Vec<&RelayedConference> = g.confs.values().filter(|c| &c.mixer == m).collect();
            d.next_try.retain(|id, _| on.iter().any(|c| &c.id == id));
            if on.is_empty() {
                if !d.drained {
                    d.drained = true;
                    drained.push(m.clone());
                }
                continue;
            }
            d.drained = false;
            let moving = on.iter().filter(|c| c.idle().is_err()).count();
            let room = DRAIN_CONCURRENCY.saturating_sub(moving);
            let ready: Vec<String> = on
                .iter()
                .filter(|c| c.idle().is_ok())
                .filter(|c| d.next_try.get(&c.id).is_none_or(|t| *t <= now))
                .take(room)
                .map(|c| c.id.clone())
                .collect();
            for id in ready {
                d.next_try.insert(id.clone(), now + DRAIN_RETRY);
                due.push((id, m.clone()));
            }
        }
        for m in drained {
            tracing::info!(mixer = %m, "mixer drained");
            self.publish(Event::mixer("mixer_drained", &m, wall));
        }
        due
    }

    /// Carry out what conference `key`'s handover wants done, until it waits.
    fn run_handover(&mut self, key: ConfKey) {
        loop {
            let Some(g) = self.gateway.as_mut() else {
                return;
            };
            let Some(c) = g.by_key.get(&key).and_then(|id| g.confs.get_mut(id)) else {
                return;
            };
            let Some(h) = c.handover.as_mut() else { return };
            let Some(action) = h.poll_action() else {
                return;
            };
            let id = c.id.clone();
            let _span = tracing::info_span!("handover", conference = %id).entered();
            match action {
                Action::Peer(req) => {
                    let rid = PeerRequestId(g.next_request);
                    g.next_request += 1;
                    g.requests.push((rid, req, key));
                }
                Action::Relay { core, command } => {
                    let kind = Refused::of(&command);
                    if let Err(e) = self.media.relay(core, command) {
                        tracing::warn!(conference = %id, error = %e, "relay refused a handover command");
                        let now = self.clock.now();
                        if let Some(h) = self.handover_mut(key) {
                            h.handle_relay_refused(now, kind, e.to_string());
                        }
                    }
                }
                Action::Event { kind, part, reason } => {
                    match kind {
                        "handover_aborted" => {
                            tracing::warn!(conference = %id, reason = ?reason, "handover aborted")
                        }
                        "handover_completed" => {
                            tracing::info!(conference = %id, note = ?reason, "handover completed")
                        }
                        _ => tracing::info!(conference = %id, participant = ?part, "{kind}"),
                    }
                    let mut ev = Event::session(kind, &id, part.as_deref(), self.clock.wall());
                    ev.detail.error = reason;
                    self.publish(ev);
                }
                Action::Rehome { mixer, moved } => {
                    if let Some(m) = mixer {
                        c.mixer = m;
                    }
                    for m in moved {
                        if let Some(p) = c.parts.get_mut(&m.id) {
                            p.on_mixer.id = m.mixer_id;
                            p.on_mixer.local = m.mixer_local;
                        }
                    }
                }
                Action::ExtraDelay(d) => self.observations.push(Observation::ExtraDelay(d)),
                Action::Finished { completed, took } => self
                    .observations
                    .push(Observation::HandoverFinished { completed, took }),
            }
        }
    }

    fn handover_mut(&mut self, key: ConfKey) -> Option<&mut Handover> {
        let g = self.gateway.as_mut()?;
        let id = g.by_key.get(&key)?;
        g.confs.get_mut(id)?.handover.as_mut()
    }

    /// The next request to send to a mixer for a handover.
    pub fn poll_peer_request(&mut self) -> Option<(PeerRequestId, PeerRequest)> {
        let g = self.gateway.as_mut()?;
        if g.requests.is_empty() {
            return None;
        }
        let (id, req, key) = g.requests.remove(0);
        g.awaited.insert(id, key);
        Some((id, req))
    }

    /// Peer requests queued and not yet taken by [`Control::poll_peer_request`].
    pub fn peer_requests_queued(&self) -> usize {
        self.gateway.as_ref().map_or(0, |g| g.requests.len())
    }

    /// Peer requests sent whose answers have not come back.
    pub fn peer_requests_in_flight(&self) -> usize {
        self.gateway.as_ref().map_or(0, |g| g.awaited.len())
    }

    /// The answer to peer request `id`.
    pub fn handle_peer_response(&mut self, id: PeerRequestId, result: PeerResult) {
        let Some(key) = self.gateway.as_mut().and_then(|g| g.awaited.remove(&id)) else {
            return;
        };
        let now = self.clock.now();
        if let Some(h) = self.handover_mut(key) {
            h.handle_peer_response(now, result);
        }
        self.run_handover(key);
    }

    /// An event from a core's relay: to the handover running for its conference.
    pub fn relay_event(&mut self, ev: RelayEvent) {
        let now = self.clock.now();
        if let Some(h) = self.handover_mut(ev.conf) {
            h.handle_relay_event(now, ev.part, ev.kind);
            self.run_handover(ev.conf);
        }
    }

    /// When the next handover step times out.
    pub(crate) fn handover_timeout(&self) -> Option<Instant> {
        let g = self.gateway.as_ref()?;
        g.confs
            .values()
            .filter_map(|c| c.handover.as_ref()?.poll_timeout())
            .min()
    }

    /// Run the handover timeouts due at `now`.
    pub(crate) fn poll_handovers(&mut self, now: Instant) {
        let Some(g) = self.gateway.as_mut() else {
            return;
        };
        let due: Vec<ConfKey> = g
            .confs
            .values_mut()
            .filter_map(|c| {
                let h = c.handover.as_mut()?;
                h.poll_timeout().is_some_and(|d| d <= now).then(|| {
                    h.handle_timeout(now);
                    c.key
                })
            })
            .collect();
        for key in due {
            self.run_handover(key);
        }
    }

    /// The next measurement for the metrics.
    pub fn poll_observation(&mut self) -> Option<Observation> {
        (!self.observations.is_empty()).then(|| self.observations.remove(0))
    }
}
