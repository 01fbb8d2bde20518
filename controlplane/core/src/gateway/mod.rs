//! The gateway role's table: clients' RTP terminates at this appliance's dataplane,
//! which relays it to the mixer hosting their conference and relays the mixer's
//! streams back ([`tutti_dataplane::relay`]). This is what the gateway knows about each
//! relayed conference and participant (typed; requests are validated at the edge) and
//! the decisions around the calls to mixers: which mixer, which ports, what each mixer
//! is asked to create, and the [`handover`] plan that moves a conference between
//! mixers. The server crate makes the calls ([`crate::peer`]) and feeds the answers in.
//!
//! Conferences are created on the mixers with the same id, with input timing (frames
//! keyed to the timeline the relay maps every client's timestamps onto) so that two
//! mixers mix identically; each participant's `remote` on the mixer is the gateway's
//! own address and port towards the mixers.

pub mod handover;

use crate::error::ControlError;
use crate::peer::{MixerParticipant, PeerError, PeerRequest, PeerRequestId};
use crate::sessions::{NewConference, NewParticipant, SessionError};
use handover::Handover;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::time::{Duration, SystemTime};
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{ConfKey, PartKey};
use tutti_dataplane::relay::Timeline;

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

/// One relayed participant.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayedParticipant {
    pub id: String,
    pub key: PartKey,
    /// The dataplane core relaying it.
    pub core: usize,
    /// Our RTP address towards the client, and our port towards the mixers.
    pub local: SocketAddrV4,
    pub mixer_port: u16,
    /// The client's RTP address.
    pub client: SocketAddrV4,
    /// What mixers are asked to create (the client's request, `remote` ours), with the
    /// settings changed since.
    pub spec: NewParticipant,
    /// The client's SRTP keys (the relay protects and unprotects; the mixers see the
    /// media plain).
    pub srtp: Option<crate::srtp::SrtpKeys>,
    /// On remote hold (as last set).
    pub hold: bool,
    /// The participant on the hosting mixer.
    pub on_mixer: MixerParticipant,
    pub created_at: SystemTime,
}

/// One conference relayed through the gateway.
#[derive(Debug)]
pub struct RelayedConference {
    pub id: String,
    pub key: ConfKey,
    /// Base URL of the hosting mixer.
    pub mixer: String,
    /// What mixers are asked to create.
    pub spec: NewConference,
    pub timeline: Timeline,
    pub parts: BTreeMap<String, RelayedParticipant>,
    pub created_at: SystemTime,
    /// Whether the hosting mixer showed it orphaned when it was created or adopted.
    pub orphaned: bool,
    /// The last (or running) handover.
    pub handover: Option<Handover>,
}

impl RelayedConference {
    /// Refuse while a handover runs.
    pub(crate) fn idle(&self) -> Result<(), ControlError> {
        match &self.handover {
            Some(h) if !h.finished() => Err(ControlError::HandingOver {
                conf: self.id.clone(),
                to: h.status().to.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The gateway's table and its pending peer requests.
#[derive(Debug)]
pub struct GatewayTable {
    pub(crate) config: GatewayConfig,
    pub(crate) confs: BTreeMap<String, RelayedConference>,
    pub(crate) by_key: HashMap<ConfKey, String>,
    pub(crate) last_conf: u32,
    pub(crate) last_part: u32,
    pub(crate) next_request: u64,
    /// Peer requests to send, with the conference whose handover awaits each answer.
    pub(crate) requests: Vec<(PeerRequestId, PeerRequest, ConfKey)>,
    pub(crate) awaited: HashMap<PeerRequestId, ConfKey>,
    /// Mixers being drained, by URL.
    pub(crate) draining: BTreeMap<String, Draining>,
}

/// A mixer being drained: its conferences are handed over to the others one by one, and
/// it takes no new ones.
#[derive(Debug, Default)]
pub(crate) struct Draining {
    /// When each of its conferences may next be tried (a handover that failed or could
    /// not start is tried again after [`DRAIN_RETRY`]).
    pub(crate) next_try: HashMap<String, Instant>,
    /// Whether `mixer_drained` was sent (since the last conference left).
    pub(crate) drained: bool,
}

/// How long a draining mixer's conference waits before another handover is tried.
pub const DRAIN_RETRY: Duration = Duration::from_secs(2);
/// Handovers off one draining mixer at once at most.
pub const DRAIN_CONCURRENCY: usize = 4;

/// A mixer as the gateway sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MixerStatus {
    /// Its API URL (as configured).
    pub mixer: String,
    /// Whether it is being drained.
    pub draining: bool,
    /// Conferences on it.
    pub conferences: usize,
    /// Of those, being handed over now.
    pub handing_over: usize,
}

impl GatewayTable {
    pub(crate) fn new(config: GatewayConfig) -> Self {
        GatewayTable {
            config,
            confs: BTreeMap::new(),
            by_key: HashMap::new(),
            last_conf: 0,
            last_part: 0,
            next_request: 0,
            requests: Vec::new(),
            awaited: HashMap::new(),
            draining: BTreeMap::new(),
        }
    }

    /// Each configured mixer: whether it is draining, its conferences.
    pub fn mixers(&self) -> Vec<MixerStatus> {
        self.config
            .mixers
            .iter()
            .map(|m| {
                let on = self.confs.values().filter(|c| &c.mixer == m);
                MixerStatus {
                    mixer: m.clone(),
                    draining: self.draining.contains_key(m),
                    conferences: on.clone().count(),
                    handing_over: on.filter(|c| c.idle().is_err()).count(),
                }
            })
            .collect()
    }

    /// Mixer `url` (as [`GatewayTable::configured_mixer`]) if it takes new conferences.
    pub fn placeable_mixer(&self, url: &str) -> Result<String, ControlError> {
        let m = self.configured_mixer(url)?;
        if self.draining.contains_key(&m) {
            return Err(ControlError::Draining(m));
        }
        Ok(m)
    }

    /// Whether any mixer is being drained.
    pub fn draining_any(&self) -> bool {
        !self.draining.is_empty()
    }

    /// The mixers that take new conferences (not draining), except `except`.
    pub fn placeable_mixers(&self, except: Option<&str>) -> Vec<String> {
        let mut all = self.mixers_except(except);
        all.retain(|m| !self.draining.contains_key(m));
        all
    }

    /// Every relayed conference, by id.
    pub fn conferences(&self) -> impl Iterator<Item = &RelayedConference> {
        self.confs.values()
    }

    /// Conference `id`.
    pub fn conference(&self, id: &str) -> Result<&RelayedConference, ControlError> {
        self.confs
            .get(id)
            .ok_or_else(|| SessionError::NoSuchConference(id.to_string()).into())
    }

    pub(crate) fn conference_mut(
        &mut self,
        id: &str,
    ) -> Result<&mut RelayedConference, ControlError> {
        self.confs
            .get_mut(id)
            .ok_or_else(|| SessionError::NoSuchConference(id.to_string()).into())
    }

    /// Participant `pid` of conference `id`.
    pub fn participant(&self, id: &str, pid: &str) -> Result<&RelayedParticipant, ControlError> {
        self.conference(id)?.parts.get(pid).ok_or_else(|| {
            SessionError::NoSuchParticipant {
                conf: id.to_string(),
                part: pid.to_string(),
            }
            .into()
        })
    }

    /// `url` as the configured mixer it names (a trailing `/` aside): requests may only
    /// name configured mixers, so the gateway calls no other address.
    pub fn configured_mixer(&self, url: &str) -> Result<String, ControlError> {
        let url = url.trim_end_matches('/');
        self.config
            .mixers
            .iter()
            .find(|m| m.as_str() == url)
            .cloned()
            .ok_or_else(|| {
                ControlError::Invalid(format!(
                    "{url:?} is not one of the configured mixers (gateway.mixers): {}",
                    self.config.mixers.join(", ")
                ))
            })
    }

    /// The mixers to ask, except `except`.
    pub fn mixers_except(&self, except: Option<&str>) -> Vec<String> {
        self.config
            .mixers
            .iter()
            .filter(|m| Some(m.as_str()) != except)
            .cloned()
            .collect()
    }
}

/// The mixer with the most free capacity among the answers of the mixers asked
/// (`other`: all but the conference's own mixer were asked).
pub fn pick_mixer(
    answers: Vec<(String, Result<u64, PeerError>)>,
    other: bool,
) -> Result<String, ControlError> {
    let mut best: Option<(u64, String)> = None;
    let mut errors = Vec::new();
    for (m, answer) in answers {
        match answer {
            Ok(free) if best.as_ref().is_none_or(|(b, _)| free > *b) => best = Some((free, m)),
            Ok(_) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    match best {
        Some((free, m)) if free > 0 => Ok(m),
        Some(_) => Err(ControlError::NoMixer("every mixer is full".into())),
        None if errors.is_empty() => Err(ControlError::NoMixer(format!(
            "no {}mixer is configured (gateway.mixers)",
            if other { "other " } else { "" }
        ))),
        None => Err(ControlError::PeersFailed {
            what: "answered",
            errors: errors.join("; "),
        }),
    }
}

/// A conference id reserved for creation on a mixer.
#[derive(Debug)]
pub struct PendingConference {
    pub id: String,
    pub(crate) key: ConfKey,
}

/// A participant whose ports are reserved while it is created on the mixer.
#[derive(Debug)]
pub struct PendingParticipant {
    /// The hosting mixer and what it is asked to create.
    pub mixer: String,
    pub spec: NewParticipant,
    pub(crate) srtp: Option<crate::srtp::SrtpKeys>,
    pub(crate) conf: ConfKey,
    pub(crate) timeline: Timeline,
    pub(crate) core: usize,
    pub(crate) ports: [u16; 2],
    pub(crate) client: SocketAddrV4,
    pub(crate) local: SocketAddrV4,
}

/// Something to measure (the server's metrics record it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observation {
    /// A handover ended after `took`.
    HandoverFinished { completed: bool, took: Duration },
    /// A client's stream was delayed this much at its cut-over.
    ExtraDelay(Duration),
}
