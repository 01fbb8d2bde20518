//! The HTTP API's request bodies and JSON views: bodies are validated here, once, into
//! the core's typed requests; views show the core's model as JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Duration;
use tutti_control_core::error::ControlError;
use tutti_control_core::events::timestamp;
use tutti_control_core::gateway::{handover, RelayedConference, RelayedParticipant};
use tutti_control_core::json::given;
use tutti_control_core::leases::CallManagerStatus;
use tutti_control_core::reclaim::check_name;
use tutti_control_core::sessions::{
    Conference, NewConference, NewParticipant, Participant, ParticipantPatch,
};
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{ParticipantSettings, RtpBasis, Timing, MAX_INPUT_DELAY_FRAMES};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime, MAX_LOUDEST};

/// `max_participants` when the request has none.
pub const DEFAULT_MAX_PARTICIPANTS: u16 = 100;
/// Largest `max_participants` a conference may ask for.
pub const MAX_PARTICIPANTS: u16 = 1000;
/// The telephone-event payload type when the request does not name one.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;
/// Allowed participant gain in dB.
pub const GAIN_DB: std::ops::RangeInclusive<f32> = -60.0..=20.0;
/// `input_delay_ms` when the request has none: this, rounded up to whole frames.
pub const DEFAULT_INPUT_DELAY_MS: u32 = 40;

/// The codecs participants may use through the API.
const API_CODECS: [CodecKind; 2] = [CodecKind::Pcmu, CodecKind::Pcma];

pub fn codec_name(codec: CodecKind) -> &'static str {
    match codec {
        CodecKind::Pcmu => "pcmu",
        CodecKind::Pcma => "pcma",
        CodecKind::L16 => "l16",
    }
}

fn bad(message: String) -> ControlError {
    ControlError::Invalid(message)
}

/// `POST /v1/conferences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConference {
    #[serde(default, deserialize_with = "given")]
    id: Option<String>,
    #[serde(default, deserialize_with = "given")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "given")]
    ptime_ms: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    max_participants: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    active_speakers: Option<Value>,
    /// `"arrival"` (the default) or `"input"`.
    #[serde(default, deserialize_with = "given")]
    timing: Option<String>,
    /// Only with `"timing": "input"`.
    #[serde(default, deserialize_with = "given")]
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
    pub fn validate(self) -> Result<NewConference, ControlError> {
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
            check_name("owner", owner)?;
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

/// `POST /v1/conferences/{id}/participants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    remote: String,
    codec: String,
    /// Missing: [`DEFAULT_TELEPHONE_EVENT_PT`]; `null`: no telephone-events.
    #[serde(default, deserialize_with = "given")]
    telephone_event_pt: Option<Option<u8>>,
    #[serde(default, deserialize_with = "given")]
    rtcp: Option<bool>,
    #[serde(default, deserialize_with = "given")]
    muted: Option<bool>,
    #[serde(default, deserialize_with = "given")]
    deaf: Option<bool>,
    #[serde(default, deserialize_with = "given")]
    gain_db: Option<f32>,
    /// SRTP (SDES): the suite and the key the client sends with; the response carries
    /// ours.
    #[serde(default, deserialize_with = "given")]
    srtp: Option<Srtp>,
}

/// An SRTP suite and master key plus salt (base64), in a request the client's, in a
/// response tutti's.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Srtp {
    suite: String,
    key: String,
}

impl Srtp {
    fn validate(&self) -> Result<tutti_control_core::srtp::SrtpKeys, ControlError> {
        use tutti_control_core::srtp;
        let suite = srtp::suite(&self.suite).map_err(bad)?;
        let remote =
            srtp::decode_key(suite, &self.key).map_err(|e| bad(format!("srtp.key: {e}")))?;
        Ok(srtp::keys_for(remote))
    }

    fn ours(keys: &tutti_control_core::srtp::SrtpKeys) -> Srtp {
        Srtp {
            suite: keys.local.suite().name().to_string(),
            key: tutti_control_core::srtp::encode_key(&keys.local),
        }
    }
}

fn parse_remote(remote: &str) -> Result<SocketAddrV4, ControlError> {
    let addr: SocketAddrV4 = remote.parse().map_err(|_| {
        bad(format!(
            "remote must be an IPv4 address and port such as \"198.18.0.2:4000\", not {remote:?}"
        ))
    })?;
    // 0/8 is "this network", 224/4 multicast and 240/4 reserved (with broadcast).
    let first = addr.ip().octets()[0];
    if addr.port() == 0 || first == 0 || first >= 224 {
        return Err(bad(format!(
            "remote {remote:?} is not a unicast address (first octet 1 to 223) with a non-zero port"
        )));
    }
    if addr.to_string() != remote {
        return Err(bad(format!(
            "remote {remote:?} must be written as {addr} (no leading zeros)"
        )));
    }
    Ok(addr)
}

fn check_gain(gain_db: Option<f32>) -> Result<(), ControlError> {
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
    pub fn validate(self) -> Result<NewParticipant, ControlError> {
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
        let srtp = self.srtp.as_ref().map(Srtp::validate).transpose()?;
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
                ..defaults
            },
            srtp,
        })
    }
}

/// `PATCH /v1/conferences/{id}/participants/{pid}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchParticipant {
    #[serde(default, deserialize_with = "given")]
    muted: Option<bool>,
    #[serde(default, deserialize_with = "given")]
    deaf: Option<bool>,
    #[serde(default, deserialize_with = "given")]
    gain_db: Option<f32>,
    #[serde(default, deserialize_with = "given")]
    hold: Option<bool>,
}

impl PatchParticipant {
    pub fn validate(self) -> Result<ParticipantPatch, ControlError> {
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
pub struct PutRtpBasis {
    ssrc: u32,
    frame_timestamp: u32,
    sequence: u16,
    timestamp: u32,
}

/// `POST /v1/conferences/{id}/participants/{pid}/move` body: the conference to move to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveParticipant {
    pub conference: String,
}

/// `POST /v1/conferences/{id}/prompts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayPrompt {
    pub prompt: String,
    #[serde(default, deserialize_with = "given")]
    pub participant: Option<String>,
}

/// A conference's settings as the API shows them.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    owner: Option<String>,
    ptime_ms: u32,
    max_participants: u16,
    active_speakers: Value,
    /// `"arrival"` or `"input"`.
    timing: &'static str,
    /// With input timing: frames are mixed this long after the first packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_delay_ms: Option<u32>,
}

impl SettingsView {
    fn new(
        owner: &Option<String>,
        ptime: Ptime,
        max_participants: u16,
        active_speakers: ActiveSpeakers,
        timing: Timing,
    ) -> Self {
        SettingsView {
            owner: owner.clone(),
            ptime_ms: ptime.millis(),
            max_participants,
            active_speakers: match active_speakers {
                ActiveSpeakers::Loudest(n) => n.into(),
                ActiveSpeakers::All => "all".into(),
            },
            timing: timing_name(timing),
            input_delay_ms: match timing {
                Timing::Arrival => None,
                Timing::Input { delay_frames } => Some(u32::from(delay_frames) * ptime.millis()),
            },
        }
    }
}

/// A conference as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConferenceView {
    id: String,
    /// The lcore id of its dataplane core.
    core: u32,
    #[serde(flatten)]
    settings: SettingsView,
    participant_count: usize,
    created_at: String,
    /// Its call manager's lease lapsed: the orphan procedure runs.
    orphaned: bool,
    /// Present when one conference is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<ParticipantView>>,
}

impl ConferenceView {
    pub fn new(c: &Conference, with_participants: bool, orphaned: bool) -> Self {
        ConferenceView {
            id: c.id.clone(),
            core: c.lcore,
            settings: SettingsView::new(
                &c.owner,
                c.ptime,
                c.max_participants,
                c.active_speakers,
                c.timing,
            ),
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
pub struct ParticipantView {
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
    /// The SIP call it came by (call-id, from, to), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    sip: Option<tutti_control_core::sip::CallInfo>,
    /// How tutti's call to it goes, if tutti dialled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    dial: Option<tutti_control_core::sip::DialStatus>,
    /// Tutti's SRTP suite and key for the client, if its stream is SRTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    srtp: Option<Srtp>,
}

impl ParticipantView {
    pub fn new(conference: &str, p: &Participant) -> Self {
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
            sip: p.call.clone(),
            dial: p.dial,
            srtp: p.srtp.as_ref().map(Srtp::ours),
        }
    }
}

/// A relayed conference as the gateway API shows it: its settings and the mixer
/// hosting it, with the last handover.
#[derive(Debug, Serialize)]
pub struct RelayedConferenceView {
    id: String,
    #[serde(flatten)]
    settings: SettingsView,
    participant_count: usize,
    created_at: String,
    /// As the hosting mixer showed it when it was created or adopted.
    orphaned: bool,
    mixer: String,
    handover: Option<HandoverView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<RelayedParticipantView>>,
}

impl RelayedConferenceView {
    pub fn new(c: &RelayedConference, with_participants: bool) -> Self {
        let s = &c.spec;
        RelayedConferenceView {
            id: c.id.clone(),
            settings: SettingsView::new(
                &s.owner,
                s.ptime,
                s.max_participants,
                s.active_speakers,
                s.timing,
            ),
            participant_count: c.parts.len(),
            created_at: timestamp(c.created_at),
            orphaned: c.orphaned,
            mixer: c.mixer.clone(),
            handover: c.handover.as_ref().map(|h| HandoverView::new(h.status())),
            participants: with_participants.then(|| {
                c.parts
                    .values()
                    .map(|p| RelayedParticipantView::new(&c.id, p))
                    .collect()
            }),
        }
    }
}

/// A relayed participant as the gateway API shows it: its client's side (our address
/// towards it and its own), and its id on the hosting mixer.
#[derive(Debug, Serialize)]
pub struct RelayedParticipantView {
    #[serde(flatten)]
    view: ParticipantView,
    mixer_participant: String,
}

impl RelayedParticipantView {
    pub fn new(conference: &str, p: &RelayedParticipant) -> Self {
        let s = &p.spec;
        RelayedParticipantView {
            view: ParticipantView {
                id: p.id.clone(),
                conference: conference.to_string(),
                local: p.local.to_string(),
                remote: p.client.to_string(),
                codec: codec_name(s.codec),
                telephone_event_pt: s.telephone_event_pt,
                rtcp: s.rtcp,
                ssrc: p.on_mixer.ssrc,
                muted: s.settings.muted,
                deaf: s.settings.deaf,
                gain_db: s.settings.gain_db,
                hold: p.hold,
                created_at: timestamp(p.created_at),
                sip: None,
                dial: None,
                srtp: p.srtp.as_ref().map(Srtp::ours),
            },
            mixer_participant: p.on_mixer.id.clone(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A handover as the gateway API shows it.
#[derive(Debug, Serialize)]
pub struct HandoverView {
    /// `creating`, `duplicating`, `validating`, `cutting_over`, `completed` or
    /// `aborted`.
    state: &'static str,
    from: String,
    to: String,
    mode: &'static str,
    /// Why it was aborted (or what went wrong after the cut-over).
    reason: Option<String>,
    started_at: String,
    /// From the request to the last client's cut-over.
    cutover_ms: Option<f64>,
    /// From the request to the end.
    duration_ms: Option<f64>,
    /// The largest delay added to a client's stream at its switch.
    extra_delay_ms: Option<f64>,
    /// Each client's progress, by participant id.
    participants: BTreeMap<String, PartProgressView>,
}

/// One client's handover progress.
#[derive(Debug, Serialize)]
pub struct PartProgressView {
    /// `waiting`, `duplicating`, `paired`, `validated`, `cut_over` or `aborted`.
    state: &'static str,
    /// Frames that differed.
    mismatches: u32,
    /// The first sequence number the client got from the new mixer.
    cut_seq: Option<u16>,
    extra_delay_ms: Option<f64>,
}

impl HandoverView {
    pub fn new(h: &handover::Status) -> Self {
        HandoverView {
            state: h.state.as_str(),
            from: h.from.clone(),
            to: h.to.clone(),
            mode: h.mode.as_str(),
            reason: h.reason.clone(),
            started_at: timestamp(h.started_at),
            cutover_ms: h.cutover.map(ms),
            duration_ms: h.duration.map(ms),
            extra_delay_ms: h.extra_delay.map(ms),
            participants: h
                .participants
                .iter()
                .map(|(id, p)| {
                    let v = PartProgressView {
                        state: p.state.as_str(),
                        mismatches: p.mismatches,
                        cut_seq: p.cut_seq,
                        extra_delay_ms: p.extra_delay.map(ms),
                    };
                    (id.clone(), v)
                })
                .collect(),
        }
    }
}

/// The gateway's `POST /v1/conferences` body: a mixer's, with the mixer to use; the
/// timing is the gateway's choice.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRelayedConference {
    #[serde(default, deserialize_with = "given")]
    id: Option<String>,
    #[serde(default, deserialize_with = "given")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "given")]
    ptime_ms: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    max_participants: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    active_speakers: Option<Value>,
    /// A mixer's base URL; by default the one with the most free capacity.
    #[serde(default, deserialize_with = "given")]
    mixer: Option<String>,
    /// Refused: the gateway's mixers mix by input timestamps.
    #[serde(default, deserialize_with = "given")]
    timing: Option<Value>,
    #[serde(default, deserialize_with = "given")]
    input_delay_ms: Option<Value>,
}

impl CreateRelayedConference {
    /// The mixer asked for and what mixers are asked to create.
    pub fn validate(self) -> Result<(Option<String>, NewConference), ControlError> {
        for (field, given) in [
            ("timing", self.timing.is_some()),
            ("input_delay_ms", self.input_delay_ms.is_some()),
        ] {
            if given {
                return Err(bad(format!(
                    "{field} is chosen by the gateway (its mixers mix by input timestamps)"
                )));
            }
        }
        if let Some(m) = self.mixer.as_ref().filter(|m| !is_base_url(m)) {
            return Err(bad(format!(
                "mixer must be a mixer's base URL such as \"http://198.18.0.11:8080\", not {m:?}"
            )));
        }
        let spec = CreateConference {
            id: self.id,
            owner: self.owner,
            ptime_ms: self.ptime_ms,
            max_participants: self.max_participants,
            active_speakers: self.active_speakers,
            timing: Some("input".into()),
            input_delay_ms: None,
        }
        .validate()?;
        Ok((self.mixer, spec))
    }
}

/// Does `url` look like a mixer's base URL (`http://` or `https://`)?
fn is_base_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// `POST /v1/mixers/drain` and `/v1/mixers/undrain` body: the mixer's URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixerRequest {
    pub mixer: String,
}

/// `POST /v1/conferences/{id}/handover` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    #[serde(default, deserialize_with = "given")]
    to: Option<String>,
    #[serde(default, deserialize_with = "given")]
    mode: Option<String>,
}

impl HandoverRequest {
    /// The mixer asked for (if any) and the mode.
    pub fn validate(self) -> Result<(Option<String>, handover::Mode), ControlError> {
        let mode = match self.mode.as_deref() {
            None | Some("rewrite") => handover::Mode::Rewrite,
            Some("instruct") => handover::Mode::Instruct,
            Some(m) => {
                return Err(bad(format!(
                    "mode must be \"rewrite\" or \"instruct\", not {m:?}"
                )))
            }
        };
        if let Some(to) = self.to.as_ref().filter(|to| !is_base_url(to)) {
            return Err(bad(format!(
                "to must be a mixer's base URL such as \"http://198.18.0.12:8080\", not {to:?}"
            )));
        }
        Ok((self.to, mode))
    }
}

impl PutRtpBasis {
    /// The core's request.
    pub fn basis(&self) -> RtpBasis {
        RtpBasis {
            ssrc: self.ssrc,
            frame_timestamp: self.frame_timestamp,
            sequence: self.sequence,
            timestamp: self.timestamp,
        }
    }
}

/// `POST /v1/call-managers/{cm}/heartbeat` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub interval_ms: u64,
}

/// A call manager's lease as the API shows it.
#[derive(Debug, Serialize)]
pub struct CallManagerView {
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

impl From<CallManagerStatus> for CallManagerView {
    fn from(s: CallManagerStatus) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        CallManagerView {
            interval_ms: ms(s.interval),
            lease_misses: s.lease_misses,
            up: s.up,
            last_heartbeat_ms_ago: ms(s.since_last_heartbeat),
            expires_in_ms: ms(s.expires_in),
            conferences: s.conferences,
            orphaned_conferences: s.orphaned_conferences,
            id: s.id,
        }
    }
}

/// `POST /v1/conferences/{id}/adopt` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adopt {
    pub owner: String,
}
