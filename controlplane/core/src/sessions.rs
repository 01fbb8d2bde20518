//! The session table: which conferences and participants exist, where they live and what
//! they hold. It chooses keys, places conferences on cores, hands out each core's UDP
//! ports and admits participants against the cores' and conferences' capacities. Pure
//! logic: no clock (callers pass the time), no I/O; [`crate::Control`] turns its entries into
//! [`MediaOp`](tutti_dataplane::conference::MediaOp)s.

use crate::media::MediaCore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddrV4;
use std::time::SystemTime;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, ConferenceSpec, Liveness, PartKey, ParticipantSettings, ParticipantSpec, Timing,
};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::rate::SampleRate;
use tutti_dataplane::rx::PayloadTypes;

/// Longest user-supplied conference id.
pub const MAX_CONFERENCE_ID_LEN: usize = 64;

/// Why the table refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A conference id with characters or a length we do not accept.
    #[error(
        "invalid conference id {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
    )]
    InvalidConferenceId(String),
    /// A conference with that id exists already.
    #[error("conference {0:?} already exists")]
    DuplicateConference(String),
    /// No conference has that id.
    #[error("no conference {0:?}")]
    NoSuchConference(String),
    /// The conference has no participant with that id.
    #[error("no participant {part:?} in conference {conf:?}")]
    NoSuchParticipant {
        /// The conference id.
        conf: String,
        /// The participant id.
        part: String,
    },
    /// Every core is full (or there are no cores), so a new conference has nowhere to go.
    #[error("no dataplane core has room for another participant ({used} of {capacity} participant slots in use)")]
    NoCapacity {
        /// Participants on all cores.
        used: u64,
        /// Participant slots on all cores.
        capacity: u64,
    },
    /// The core hosting the conference has no free participant slot.
    #[error("dataplane core {lcore}, which hosts conference {conf:?}, is full ({capacity} participants)")]
    CoreFull {
        /// The core's lcore id.
        lcore: u32,
        /// The conference id.
        conf: String,
        /// The core's participant capacity.
        capacity: u32,
    },
    /// The participant is in that conference already.
    #[error("participant {part:?} is in conference {conf:?} already")]
    AlreadyIn {
        /// The conference id.
        conf: String,
        /// The participant id.
        part: String,
    },
    /// The conference has its `max_participants` already.
    #[error("conference {conf:?} is full ({max} participants)")]
    ConferenceFull {
        /// The conference id.
        conf: String,
        /// Its `max_participants`.
        max: u16,
    },
}

/// A conference to create (validated input).
#[derive(Clone, Debug, PartialEq)]
pub struct NewConference {
    /// The caller's id, or `None` to have one generated.
    pub id: Option<String>,
    /// The call manager that owns it.
    pub owner: Option<String>,
    /// Packetisation interval.
    pub ptime: Ptime,
    /// Talker selection.
    pub active_speakers: ActiveSpeakers,
    /// Most participants it admits.
    pub max_participants: u16,
    /// Playout and outbound RTP timing.
    pub timing: Timing,
}

/// A participant to add (validated input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewParticipant {
    /// Where its media goes and comes from.
    pub remote: SocketAddrV4,
    /// Its codec.
    pub codec: CodecKind,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Whether it speaks RTCP.
    pub rtcp: bool,
    /// Initial mute/deaf/gain.
    pub settings: ParticipantSettings,
    /// SRTP (SDES) keys, ours and its, if its stream is protected.
    pub srtp: Option<crate::srtp::SrtpKeys>,
}

/// Changes to a live participant; `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParticipantPatch {
    /// Contributes nothing to the mix.
    pub muted: Option<bool>,
    /// Receives nothing.
    pub deaf: Option<bool>,
    /// Gain in dB.
    pub gain_db: Option<f32>,
    /// On remote hold (recorded only).
    pub hold: Option<bool>,
}

impl ParticipantPatch {
    /// The participant's settings and hold flag after this patch.
    pub fn applied_to(&self, p: &Participant) -> (ParticipantSettings, bool) {
        self.apply(p.settings, p.hold)
    }

    /// Settings `s` and hold flag `hold` after this patch.
    pub fn apply(&self, s: ParticipantSettings, hold: bool) -> (ParticipantSettings, bool) {
        let settings = ParticipantSettings {
            muted: self.muted.unwrap_or(s.muted),
            deaf: self.deaf.unwrap_or(s.deaf),
            gain_db: self.gain_db.unwrap_or(s.gain_db),
            ..s
        };
        (settings, self.hold.unwrap_or(hold))
    }
}

/// A conference in the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Conference {
    /// Its id in the API.
    pub id: String,
    /// Its key on the dataplane.
    pub key: ConfKey,
    /// Index of its core in [`MediaPlane::cores`](crate::media::MediaPlane::cores).
    pub core: usize,
    /// That core's lcore id.
    pub lcore: u32,
    /// The call manager that owns it.
    pub owner: Option<String>,
    /// Packetisation interval.
    pub ptime: Ptime,
    /// Talker selection.
    pub active_speakers: ActiveSpeakers,
    /// Most participants it admits.
    pub max_participants: u16,
    /// Playout and outbound RTP timing.
    pub timing: Timing,
    /// When it was created.
    pub created_at: SystemTime,
    participants: BTreeMap<PartKey, Participant>,
}

impl Conference {
    /// What the dataplane needs to create it.
    pub fn spec(&self) -> ConferenceSpec {
        ConferenceSpec {
            key: self.key,
            ptime: self.ptime,
            rate: SampleRate::default(),
            active_speakers: self.active_speakers,
            max_participants: self.max_participants,
            timing: self.timing,
        }
    }

    /// Its participants, oldest first.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    /// How many participants it has.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// The participant with API id `id`.
    pub fn participant(&self, id: &str) -> Option<&Participant> {
        let p = self.participants.get(&part_key_of(id)?)?;
        (p.id == id).then_some(p)
    }
}

/// A participant in the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Participant {
    /// Its id in the API.
    pub id: String,
    /// Its key on the dataplane.
    pub key: PartKey,
    /// Its conference's key.
    pub conf: ConfKey,
    /// Our address for its RTP (RTCP on the next port).
    pub local: SocketAddrV4,
    /// Its address.
    pub remote: SocketAddrV4,
    /// Its codec.
    pub codec: CodecKind,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Whether it speaks RTCP.
    pub rtcp: bool,
    /// SSRC of the stream we send it.
    pub ssrc: u32,
    /// Mute/deaf/gain.
    pub settings: ParticipantSettings,
    /// On remote hold.
    pub hold: bool,
    /// When it was added.
    pub created_at: SystemTime,
    /// The SIP call it came by, if it did.
    pub call: Option<crate::sip::CallInfo>,
    /// How its dial-out goes, if tutti called it; while it is calling or ringing the
    /// participant only holds its port pair and slot (nothing on the dataplane).
    pub dial: Option<crate::sip::DialStatus>,
    /// SRTP (SDES) keys, ours and its, if its stream is protected.
    pub srtp: Option<crate::srtp::SrtpKeys>,
}

impl Participant {
    /// Whether it is a dial-out not answered yet (not on the dataplane).
    pub fn pending(&self) -> bool {
        self.dial
            .as_ref()
            .is_some_and(crate::sip::DialStatus::pending)
    }
}

impl Participant {
    /// What the dataplane needs to add it, with its stream's liveness timers.
    pub fn spec(&self, liveness: Liveness) -> ParticipantSpec {
        ParticipantSpec {
            conf: self.conf,
            key: self.key,
            local_port: self.local.port(),
            remote: self.remote,
            codec: self.codec,
            payload_types: PayloadTypes::negotiated(self.codec, None, self.telephone_event_pt),
            rtcp: self.rtcp,
            ssrc: self.ssrc,
            settings: self.settings,
            liveness,
            srtp: self.srtp,
        }
    }
}

/// Participant slots over all cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    /// Slots in total.
    pub participants: u64,
    /// Slots taken.
    pub used: u64,
    /// Slots free.
    pub free: u64,
}

/// One core's load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreLoad {
    /// The core's lcore id.
    pub lcore: u32,
    /// Its participant slots (the configured capacity, or fewer if its port range
    /// holds fewer RTP/RTCP pairs).
    pub capacity: u32,
    /// Participants on it.
    pub participants: u32,
    /// Conferences on it.
    pub conferences: u32,
}

#[derive(Debug)]
struct CoreSlots {
    info: MediaCore,
    capacity: u32,
    participants: u32,
    conferences: u32,
    /// Port pairs of relayed clients (gateway role) on it.
    relayed: u32,
}

/// The RTP ports (even; the odd port after each is its RTCP port) of `ports`.
fn rtp_ports(ports: &std::ops::RangeInclusive<u16>) -> impl Iterator<Item = u16> + '_ {
    ports
        .clone()
        .filter(|p| p % 2 == 0 && *p != 0 && ports.contains(&(p + 1)))
}

impl CoreSlots {
    fn new(info: MediaCore) -> Self {
        let pairs = u32::try_from(rtp_ports(&info.ports).count()).unwrap_or(u32::MAX);
        CoreSlots {
            capacity: info.capacity.min(pairs),
            info,
            participants: 0,
            conferences: 0,
            relayed: 0,
        }
    }

    fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.participants)
    }
}

/// The session table. See the module documentation.
#[derive(Debug)]
pub struct Sessions {
    cores: Vec<CoreSlots>,
    /// Free RTP ports of the cores' (shared) media ports: a pair goes to whichever core
    /// hosts the call, and follows it when it moves.
    free_ports: BTreeSet<u16>,
    conferences: BTreeMap<ConfKey, Conference>,
    conf_ids: HashMap<String, ConfKey>,
    parts: HashMap<PartKey, ConfKey>,
    last_conf: u32,
    last_part: u32,
    rng: StdRng,
}

/// Whether `id` is an acceptable conference id.
pub fn valid_conference_id(id: &str) -> bool {
    (1..=MAX_CONFERENCE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The API id of participant `key`.
fn part_id(key: PartKey) -> String {
    format!("p{}", key.0)
}

/// The key named by a participant API id (the inverse of [`part_id`]).
fn part_key_of(id: &str) -> Option<PartKey> {
    id.strip_prefix('p')?.parse().ok().map(PartKey)
}

/// The next non-zero value after `*last` (wrapping) that is not `in_use`.
fn next_key(last: &mut u32, in_use: impl Fn(u32) -> bool) -> u32 {
    loop {
        *last = last.wrapping_add(1);
        if *last != 0 && !in_use(*last) {
            return *last;
        }
    }
}

/// The first value from `draw` that is non-zero and not `taken`.
fn pick_ssrc(mut draw: impl FnMut() -> u32, taken: impl Fn(u32) -> bool) -> u32 {
    loop {
        let ssrc = draw();
        if ssrc != 0 && !taken(ssrc) {
            return ssrc;
        }
    }
}

impl Sessions {
    /// An empty table over `cores` (in [`MediaPlane::cores`](crate::media::MediaPlane::cores)
    /// order), drawing SSRCs from an RNG seeded with `seed`.
    pub fn new(cores: Vec<MediaCore>, seed: u64) -> Self {
        let free_ports = cores.iter().flat_map(|c| rtp_ports(&c.ports)).collect();
        Sessions {
            free_ports,
            cores: cores.into_iter().map(CoreSlots::new).collect(),
            conferences: BTreeMap::new(),
            conf_ids: HashMap::new(),
            parts: HashMap::new(),
            last_conf: 0,
            last_part: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Participant slots over all cores.
    pub fn capacity(&self) -> Capacity {
        let participants = self.cores.iter().map(|c| u64::from(c.capacity)).sum();
        let used = self.cores.iter().map(|c| u64::from(c.participants)).sum();
        Capacity {
            participants,
            used,
            free: self.cores.iter().map(|c| u64::from(c.free())).sum(),
        }
    }

    /// Each core's load, in core order.
    pub fn core_loads(&self) -> impl Iterator<Item = CoreLoad> + '_ {
        self.cores.iter().map(|c| CoreLoad {
            lcore: c.info.lcore,
            capacity: c.capacity,
            participants: c.participants,
            conferences: c.conferences,
        })
    }

    /// Every conference, oldest first.
    pub fn conferences(&self) -> impl Iterator<Item = &Conference> {
        self.conferences.values()
    }

    /// How many conferences exist.
    pub fn conference_count(&self) -> usize {
        self.conferences.len()
    }

    /// The conference with API id `id`.
    pub fn conference(&self, id: &str) -> Result<&Conference, SessionError> {
        self.conf_ids
            .get(id)
            .and_then(|k| self.conferences.get(k))
            .ok_or_else(|| SessionError::NoSuchConference(id.to_string()))
    }

    /// The conference with key `key`.
    pub fn conference_by_key(&self, key: ConfKey) -> Option<&Conference> {
        self.conferences.get(&key)
    }

    /// Give conference `key` a new owner; `false` if it does not exist.
    pub fn set_owner(&mut self, key: ConfKey, owner: String) -> bool {
        match self.conferences.get_mut(&key) {
            Some(c) => {
                c.owner = Some(owner);
                true
            }
            None => false,
        }
    }

    /// Participant `part` of conference `conf` (API ids).
    pub fn participant(&self, conf: &str, part: &str) -> Result<&Participant, SessionError> {
        self.conference(conf)?
            .participant(part)
            .ok_or_else(|| SessionError::NoSuchParticipant {
                conf: conf.to_string(),
                part: part.to_string(),
            })
    }

    /// The API ids of a dataplane core's conference and participant keys, if both are
    /// live and the conference is on `core` (events about deleted ones are stale).
    pub fn ids(
        &self,
        core: usize,
        conf: ConfKey,
        part: Option<PartKey>,
    ) -> Option<(&str, Option<&str>)> {
        let c = self.conferences.get(&conf).filter(|c| c.core == core)?;
        let p = match part {
            Some(k) => Some(c.participants.get(&k)?.id.as_str()),
            None => None,
        };
        Some((c.id.as_str(), p))
    }

    /// Create a conference on the core with the most free participant slots.
    pub fn create_conference(
        &mut self,
        new: NewConference,
        now: SystemTime,
    ) -> Result<&Conference, SessionError> {
        if let Some(id) = &new.id {
            if !valid_conference_id(id) {
                return Err(SessionError::InvalidConferenceId(id.clone()));
            }
            if self.conf_ids.contains_key(id) {
                return Err(SessionError::DuplicateConference(id.clone()));
            }
        }
        let core = self
            .cores
            .iter()
            .enumerate()
            .filter(|(_, c)| c.free() > 0)
            .max_by_key(|(i, c)| (c.free(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
            .ok_or_else(|| {
                let cap = self.capacity();
                SessionError::NoCapacity {
                    used: cap.used,
                    capacity: cap.participants,
                }
            })?;
        let (key, id) = loop {
            let conferences = &self.conferences;
            let key = ConfKey(next_key(&mut self.last_conf, |k| {
                conferences.contains_key(&ConfKey(k))
            }));
            match &new.id {
                Some(id) => break (key, id.clone()),
                None => {
                    let id = format!("conf-{}", key.0);
                    if !self.conf_ids.contains_key(&id) {
                        break (key, id);
                    }
                }
            }
        };
        let slots = &mut self.cores[core];
        slots.conferences += 1;
        self.conf_ids.insert(id.clone(), key);
        let conf = Conference {
            id,
            key,
            core,
            lcore: slots.info.lcore,
            owner: new.owner,
            ptime: new.ptime,
            active_speakers: new.active_speakers,
            max_participants: new.max_participants,
            timing: new.timing,
            created_at: now,
            participants: BTreeMap::new(),
        };
        Ok(self.conferences.entry(key).or_insert(conf))
    }

    /// Remove a conference with all its participants, freeing their ports and slots.
    pub fn remove_conference(&mut self, key: ConfKey) -> Option<Conference> {
        let conf = self.conferences.remove(&key)?;
        self.conf_ids.remove(&conf.id);
        if let Some(slots) = self.cores.get_mut(conf.core) {
            slots.conferences = slots.conferences.saturating_sub(1);
            for p in conf.participants.values() {
                slots.participants = slots.participants.saturating_sub(1);
                self.free_ports.insert(p.local.port());
                self.parts.remove(&p.key);
            }
        }
        Some(conf)
    }

    /// Add a participant to conference `conf_id`, with a port pair from its core and a
    /// fresh SSRC.
    pub fn add_participant(
        &mut self,
        conf_id: &str,
        new: NewParticipant,
        now: SystemTime,
    ) -> Result<&Participant, SessionError> {
        let conf_key = self.conference(conf_id)?.key;
        let Some(conf) = self.conferences.get_mut(&conf_key) else {
            return Err(SessionError::NoSuchConference(conf_id.to_string()));
        };
        if conf.participants.len() >= usize::from(conf.max_participants) {
            return Err(SessionError::ConferenceFull {
                conf: conf.id.clone(),
                max: conf.max_participants,
            });
        }
        let Some(slots) = self.cores.get_mut(conf.core) else {
            return Err(SessionError::NoSuchConference(conf_id.to_string()));
        };
        let port = match self.free_ports.first() {
            Some(&port) if slots.free() > 0 => port,
            _ => {
                return Err(SessionError::CoreFull {
                    lcore: slots.info.lcore,
                    conf: conf.id.clone(),
                    capacity: slots.capacity,
                })
            }
        };
        self.free_ports.remove(&port);
        slots.participants += 1;
        let parts = &self.parts;
        let key = PartKey(next_key(&mut self.last_part, |k| {
            parts.contains_key(&PartKey(k))
        }));
        let rng = &mut self.rng;
        let ssrc = pick_ssrc(
            || rng.gen(),
            |s| conf.participants.values().any(|p| p.ssrc == s),
        );
        self.parts.insert(key, conf_key);
        let participant = Participant {
            id: part_id(key),
            key,
            conf: conf_key,
            local: SocketAddrV4::new(slots.info.local_ip, port),
            remote: new.remote,
            codec: new.codec,
            telephone_event_pt: new.telephone_event_pt,
            rtcp: new.rtcp,
            ssrc,
            settings: new.settings,
            hold: false,
            created_at: now,
            call: None,
            dial: None,
            srtp: new.srtp,
        };
        Ok(conf.participants.entry(key).or_insert(participant))
    }

    /// Remove a participant, freeing its ports and slot.
    pub fn remove_participant(&mut self, conf: ConfKey, part: PartKey) -> Option<Participant> {
        let c = self.conferences.get_mut(&conf)?;
        let p = c.participants.remove(&part)?;
        self.parts.remove(&part);
        if let Some(slots) = self.cores.get_mut(c.core) {
            slots.participants = slots.participants.saturating_sub(1);
        }
        self.free_ports.insert(p.local.port());
        Some(p)
    }

    fn participant_mut(&mut self, conf: ConfKey, part: PartKey) -> Option<&mut Participant> {
        self.conferences.get_mut(&conf)?.participants.get_mut(&part)
    }

    /// Record a participant's new settings and hold flag.
    pub fn set_participant(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        settings: ParticipantSettings,
        hold: bool,
    ) -> Option<&Participant> {
        let p = self.participant_mut(conf, part)?;
        p.settings = settings;
        p.hold = hold;
        Some(p)
    }

    /// Record the SIP call a participant came by.
    pub fn set_participant_call(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        call: crate::sip::CallInfo,
    ) -> Option<&Participant> {
        let p = self.participant_mut(conf, part)?;
        p.call = Some(call);
        Some(p)
    }

    /// Record how a participant's dial-out goes.
    pub fn set_participant_dial(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        dial: crate::sip::DialStatus,
    ) -> Option<&Participant> {
        let p = self.participant_mut(conf, part)?;
        p.dial = Some(dial);
        Some(p)
    }

    /// Record the media a dialled participant's answer negotiated.
    pub fn set_participant_media(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        remote: SocketAddrV4,
        codec: CodecKind,
        telephone_event_pt: Option<u8>,
    ) -> Option<&Participant> {
        let p = self.participant_mut(conf, part)?;
        (p.remote, p.codec, p.telephone_event_pt) = (remote, codec, telephone_event_pt);
        Some(p)
    }

    /// Record the SSRC the dataplane now sends a participant its stream with.
    pub fn set_participant_ssrc(
        &mut self,
        conf: ConfKey,
        part: PartKey,
        ssrc: u32,
    ) -> Option<&Participant> {
        let p = self.participant_mut(conf, part)?;
        p.ssrc = ssrc;
        Some(p)
    }

    /// Reserve `n` RTP/RTCP port pairs on one core (the one with the fewest calls:
    /// participants and relayed pairs), for a gateway's relayed client; `None` when
    /// fewer than `n` pairs are free.
    pub fn reserve_port_pairs(&mut self, n: usize) -> Option<(usize, Vec<u16>)> {
        if self.free_ports.len() < n {
            return None;
        }
        let (core, slots) = self
            .cores
            .iter_mut()
            .enumerate()
            .min_by_key(|(i, c)| (c.participants.saturating_add(c.relayed), *i))?;
        let ports: Vec<u16> = (0..n).filter_map(|_| self.free_ports.pop_first()).collect();
        slots.relayed = slots.relayed.saturating_add(ports.len() as u32);
        Some((core, ports))
    }

    /// Give back port pairs taken by [`Sessions::reserve_port_pairs`].
    pub fn release_port_pairs(&mut self, core: usize, ports: &[u16]) {
        if let Some(slots) = self.cores.get_mut(core) {
            slots.relayed = slots.relayed.saturating_sub(ports.len() as u32);
        }
        self.free_ports.extend(ports.iter().copied());
    }

    /// Move participant `pid` of conference `conf_id` to conference `to_id` (on its
    /// core, or another: its port pair goes with it), keeping its id and the SSRC of the
    /// stream it is sent. Returns the participant's key and the keys
    /// of the conferences it left and joined.
    pub fn move_participant(
        &mut self,
        conf_id: &str,
        pid: &str,
        to_id: &str,
    ) -> Result<(PartKey, ConfKey, ConfKey), SessionError> {
        let part = self.participant(conf_id, pid)?.key;
        let (from, src_core) = {
            let c = self.conference(conf_id)?;
            (c.key, c.core)
        };
        let dst = self.conference(to_id)?;
        let (to, dst_core) = (dst.key, dst.core);
        if from == to {
            return Err(SessionError::AlreadyIn {
                conf: dst.id.clone(),
                part: pid.to_string(),
            });
        }
        if dst.participants.len() >= usize::from(dst.max_participants) {
            return Err(SessionError::ConferenceFull {
                conf: dst.id.clone(),
                max: dst.max_participants,
            });
        }
        if let Some(slots) = self.cores.get(dst_core) {
            if src_core != dst_core && slots.free() == 0 {
                return Err(SessionError::CoreFull {
                    lcore: slots.info.lcore,
                    conf: dst.id.clone(),
                    capacity: slots.capacity,
                });
            }
        }
        let Some(mut p) = self
            .conferences
            .get_mut(&from)
            .and_then(|c| c.participants.remove(&part))
        else {
            return Err(SessionError::NoSuchParticipant {
                conf: conf_id.to_string(),
                part: pid.to_string(),
            });
        };
        let Some(dst) = self.conferences.get_mut(&to) else {
            return Err(SessionError::NoSuchConference(to_id.to_string()));
        };
        p.conf = to;
        dst.participants.insert(part, p);
        self.parts.insert(part, to);
        if src_core != dst_core {
            if let Some(s) = self.cores.get_mut(src_core) {
                s.participants = s.participants.saturating_sub(1);
            }
            if let Some(s) = self.cores.get_mut(dst_core) {
                s.participants += 1;
            }
        }
        Ok((part, from, to))
    }

    /// The conference participant `pid` (an API id) is in now.
    pub fn conference_of_participant(&self, pid: &str) -> Option<&Conference> {
        self.conference_of(part_key_of(pid)?)
    }

    /// The conference participant `part` is in.
    pub fn conference_of(&self, part: PartKey) -> Option<&Conference> {
        self.conferences.get(self.parts.get(&part)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn core(lcore: u32, ports: std::ops::RangeInclusive<u16>, capacity: u32) -> MediaCore {
        MediaCore {
            lcore,
            local_ip: Ipv4Addr::new(198, 18, 0, 1),
            ports,
            capacity,
        }
    }

    fn conf(id: Option<&str>, max: u16) -> NewConference {
        NewConference {
            id: id.map(str::to_string),
            owner: None,
            ptime: Ptime::Ms20,
            active_speakers: ActiveSpeakers::default(),
            max_participants: max,
            timing: Timing::Arrival,
        }
    }

    fn part(port: u16) -> NewParticipant {
        NewParticipant {
            remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), port),
            codec: CodecKind::Pcmu,
            telephone_event_pt: Some(101),
            rtcp: true,
            settings: ParticipantSettings::default(),
            srtp: None,
        }
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn conference_ids_are_validated_unique_and_generated() {
        let mut s = Sessions::new(vec![core(1, 20000..=20099, 10)], 1);
        assert!(matches!(
            s.create_conference(conf(Some("a b"), 5), T0),
            Err(SessionError::InvalidConferenceId(_))
        ));
        let long = "x".repeat(65);
        assert!(s.create_conference(conf(Some(&long), 5), T0).is_err());
        let ok = "A.z_0-9".to_string() + &"y".repeat(57);
        assert_eq!(ok.len(), 64);
        assert_eq!(s.create_conference(conf(Some(&ok), 5), T0).unwrap().id, ok);
        assert_eq!(
            s.create_conference(conf(Some(&ok), 5), T0),
            Err(SessionError::DuplicateConference(ok.clone()))
        );
        // A user took the id the next generated one would have had.
        s.create_conference(conf(Some("conf-2"), 5), T0).unwrap();
        let generated = s.create_conference(conf(None, 5), T0).unwrap();
        assert_ne!(generated.id, "conf-2");
        assert!(valid_conference_id(&generated.id));
        assert_eq!(s.conference_count(), 3);
        let keys: BTreeSet<u32> = s.conferences().map(|c| c.key.0).collect();
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn places_on_the_core_with_most_free_slots() {
        let mut s = Sessions::new(
            vec![core(1, 20000..=20099, 2), core(2, 30000..=30099, 3)],
            1,
        );
        let a = s.create_conference(conf(Some("a"), 10), T0).unwrap();
        assert_eq!((a.core, a.lcore), (1, 2));
        s.add_participant("a", part(4000), T0).unwrap();
        s.add_participant("a", part(4002), T0).unwrap();
        // Core 2 has 1 free, core 1 has 2 free.
        let b = s.create_conference(conf(Some("b"), 10), T0).unwrap();
        assert_eq!(b.lcore, 1);
        let loads: Vec<_> = s.core_loads().collect();
        assert_eq!(loads[0].conferences, 1);
        assert_eq!(loads[1].participants, 2);
    }

    #[test]
    fn ports_are_even_pairs_from_the_core_and_are_reused() {
        // 20001 is odd: the first pair is 20002/20003; 20008 has no odd partner.
        let mut s = Sessions::new(vec![core(1, 20001..=20008, 100)], 1);
        assert_eq!(s.capacity().participants, 3, "port pairs bound capacity");
        s.create_conference(conf(Some("a"), 10), T0).unwrap();
        let ports: Vec<u16> = (0..3)
            .map(|i| {
                s.add_participant("a", part(4000 + i), T0)
                    .unwrap()
                    .local
                    .port()
            })
            .collect();
        assert_eq!(ports, [20002, 20004, 20006]);
        let p = s.participant("a", "p2").unwrap().clone();
        assert_eq!(
            p.local,
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 20004)
        );
        assert!(matches!(
            s.add_participant("a", part(5000), T0),
            Err(SessionError::CoreFull {
                lcore: 1,
                capacity: 3,
                ..
            })
        ));
        assert_eq!(s.remove_participant(p.conf, p.key).unwrap().id, "p2");
        assert_eq!(s.capacity().free, 1);
        let again = s.add_participant("a", part(5000), T0).unwrap();
        assert_eq!(again.local.port(), 20004);
        assert_ne!(again.id, "p2", "participant ids are never reused");
    }

    #[test]
    fn admission_against_conference_and_core_capacity() {
        let mut s = Sessions::new(vec![core(1, 20000..=20099, 3)], 1);
        s.create_conference(conf(Some("small"), 1), T0).unwrap();
        s.create_conference(conf(Some("big"), 10), T0).unwrap();
        s.add_participant("small", part(1), T0).unwrap();
        assert_eq!(
            s.add_participant("small", part(2), T0),
            Err(SessionError::ConferenceFull {
                conf: "small".into(),
                max: 1
            })
        );
        s.add_participant("big", part(3), T0).unwrap();
        s.add_participant("big", part(4), T0).unwrap();
        assert!(matches!(
            s.add_participant("big", part(5), T0),
            Err(SessionError::CoreFull { .. })
        ));
        assert_eq!(
            s.create_conference(conf(Some("c"), 10), T0),
            Err(SessionError::NoCapacity {
                used: 3,
                capacity: 3
            })
        );
        assert_eq!(
            s.add_participant("nope", part(6), T0),
            Err(SessionError::NoSuchConference("nope".into()))
        );
        let mut empty = Sessions::new(vec![], 1);
        assert!(matches!(
            empty.create_conference(conf(None, 1), T0),
            Err(SessionError::NoCapacity { .. })
        ));
    }

    #[test]
    fn removing_a_conference_frees_everything() {
        let mut s = Sessions::new(vec![core(1, 20000..=20099, 10)], 1);
        let before = (s.capacity(), s.core_loads().collect::<Vec<_>>());
        let key = s.create_conference(conf(Some("a"), 10), T0).unwrap().key;
        let p1 = s.add_participant("a", part(1), T0).unwrap().clone();
        s.add_participant("a", part(2), T0).unwrap();
        assert_eq!(s.capacity().used, 2);
        assert_eq!(s.ids(0, key, Some(p1.key)), Some(("a", Some("p1"))));
        let gone = s.remove_conference(key).unwrap();
        assert_eq!(gone.participant_count(), 2);
        assert_eq!((s.capacity(), s.core_loads().collect::<Vec<_>>()), before);
        assert_eq!(s.ids(0, key, None), None);
        assert!(s.conference("a").is_err());
        assert!(s.remove_conference(key).is_none());
        // The id and the lowest ports are free again.
        s.create_conference(conf(Some("a"), 10), T0).unwrap();
        assert_eq!(
            s.add_participant("a", part(1), T0).unwrap().local.port(),
            20000
        );
    }

    #[test]
    fn ids_map_only_live_keys_on_their_core() {
        let mut s = Sessions::new(
            vec![core(1, 20000..=20099, 10), core(2, 30000..=30099, 10)],
            1,
        );
        let c = s.create_conference(conf(Some("a"), 10), T0).unwrap();
        let (key, core) = (c.key, c.core);
        let p = s.add_participant("a", part(1), T0).unwrap().key;
        assert_eq!(s.ids(core, key, None), Some(("a", None)));
        assert_eq!(s.ids(1 - core, key, None), None);
        assert_eq!(s.ids(core, key, Some(PartKey(p.0 + 1))), None);
        s.remove_participant(key, p).unwrap();
        assert_eq!(s.ids(core, key, Some(p)), None);
        assert_eq!(
            s.participant("a", "p1").map(|p| p.key),
            Err(SessionError::NoSuchParticipant {
                conf: "a".into(),
                part: "p1".into()
            })
        );
    }

    #[test]
    fn participant_lookup_needs_the_exact_id() {
        let mut s = Sessions::new(vec![core(1, 20000..=20099, 10)], 1);
        s.create_conference(conf(Some("a"), 10), T0).unwrap();
        s.add_participant("a", part(1), T0).unwrap();
        assert!(s.participant("a", "p1").is_ok());
        for bad in ["p01", "1", "p", "p+1", "q1", ""] {
            assert!(s.participant("a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_change_only_given_fields() {
        let mut s = Sessions::new(vec![core(1, 20000..=20099, 10)], 1);
        s.create_conference(conf(Some("a"), 10), T0).unwrap();
        let p = s.add_participant("a", part(1), T0).unwrap().clone();
        let patch = ParticipantPatch {
            gain_db: Some(-6.0),
            hold: Some(true),
            ..Default::default()
        };
        let (settings, hold) = patch.applied_to(&p);
        assert_eq!(
            settings,
            ParticipantSettings {
                gain_db: -6.0,
                ..p.settings
            }
        );
        assert!(hold);
        let after = s.set_participant(p.conf, p.key, settings, hold).unwrap();
        assert_eq!((after.settings.gain_db, after.hold), (-6.0, true));
        assert_eq!(
            ParticipantPatch::default().applied_to(after),
            (settings, true)
        );
    }

    #[test]
    fn timing_reaches_the_spec_and_ssrcs_can_be_replaced() {
        let mut s = Sessions::new(vec![core(1, 20000..=20099, 10)], 1);
        let timing = Timing::Input { delay_frames: 3 };
        let new = NewConference {
            active_speakers: ActiveSpeakers::All,
            timing,
            ..conf(Some("a"), 10)
        };
        assert_eq!(s.create_conference(new, T0).unwrap().spec().timing, timing);
        let p = s.add_participant("a", part(1), T0).unwrap().clone();
        let after = s.set_participant_ssrc(p.conf, p.key, 0xdead_beef).unwrap();
        assert_eq!((after.ssrc, &after.id), (0xdead_beef, &p.id));
        assert_eq!(s.participant("a", &p.id).unwrap().ssrc, 0xdead_beef);
        assert!(s.set_participant_ssrc(p.conf, PartKey(999), 1).is_none());
    }

    #[test]
    fn ssrcs_are_nonzero_and_unique_in_the_conference() {
        let mut draws = [0, 7, 7, 9].into_iter();
        assert_eq!(pick_ssrc(|| draws.next().unwrap_or(1), |s| s == 7), 9);
        let mut s = Sessions::new(vec![core(1, 20000..=29999, 1000)], 1);
        s.create_conference(conf(Some("a"), 500), T0).unwrap();
        for i in 0..500 {
            s.add_participant("a", part(i + 1), T0).unwrap();
        }
        let ssrcs: BTreeSet<u32> = s
            .conference("a")
            .unwrap()
            .participants()
            .map(|p| p.ssrc)
            .collect();
        assert_eq!(ssrcs.len(), 500);
        assert!(!ssrcs.contains(&0));
    }

    #[test]
    fn keys_skip_zero_and_live_values_when_wrapping() {
        let mut last = u32::MAX - 1;
        assert_eq!(next_key(&mut last, |k| k == u32::MAX || k == 1), 2);
    }
}
