//! Events for subscribers (`GET /v1/events`): what the dataplane cores report, mapped
//! from keys to API ids, and the changes the control core makes. The core queues them
//! ([`crate::Control::poll_event`]); the server broadcasts them.

use crate::media::MediaPlane;
use crate::sessions::Sessions;
use serde::Serialize;
use std::time::SystemTime;
use tutti_dataplane::conference::{MediaEvent, MediaEventKind};
use tutti_dataplane::rx::DigitSource;

/// One event, as subscribers see it (JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// What happened: `talk_start`, `digit`, `conference_created`, ...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The conference's id (`None` for call-manager events).
    pub conference: Option<String>,
    /// The participant's id, if the event concerns one.
    pub participant: Option<String>,
    /// When the control plane learnt of it: RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// Fields particular to the kind.
    #[serde(flatten)]
    pub detail: Box<Detail>,
}

/// Fields some event kinds carry.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Detail {
    /// The key pressed (`digit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digit: Option<char>,
    /// How the key was detected (`digit`): `rfc4733` or `inband`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// The prompt's name (`prompt_done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Whether the prompt played to its end (`prompt_done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    /// Whether comfort-noise SID came before the silence (`participant_quiet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid_before: Option<bool>,
    /// Why (`participant_deleted`, `conference_released`, `prompt_played` by the
    /// orphan procedure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The callee's SIP status code (`call_failed`, when it answered one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// How a participant replied (`reply_heard`): `voice` or `digit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'static str>,
    /// Whether the prompt was missing from the library, so the procedure went on
    /// without playing it (`prompt_played`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<bool>,
    /// The call manager concerned (`lease_lapsed`, `lease_renewed`,
    /// `conference_orphaned`, `conference_adopted`: the new owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_manager: Option<String>,
    /// The owner before (`conference_adopted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<String>,
    /// Why the dataplane did not take the step (`prompt_played`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The conference the participant left (`participant_moved`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The mixer concerned (`mixer_draining`, `mixer_drained`, `mixer_undrained`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixer: Option<String>,
}

/// Every kind of event `/v1/events` sends: the OpenAPI document's `Event` schema lists
/// exactly these, and the server's tests check each event they publish against it.
pub const KINDS: [&str; 42] = [
    // The dataplane's, per participant or conference.
    "talk_start",
    "talk_stop",
    "digit",
    "prompt_done",
    "participant_quiet",
    "participant_active",
    "sid_seen",
    "rtcp_seen",
    "rtcp_timeout",
    "bye",
    "tick_overrun",
    // Session changes.
    "conference_created",
    "conference_deleted",
    "participant_created",
    "participant_deleted",
    "participant_moved",
    // Leases and the orphan procedure.
    "lease_lapsed",
    "lease_renewed",
    "conference_orphaned",
    "prompt_played",
    "reply_heard",
    "conference_released",
    "conference_adopted",
    // SIP calls.
    "call_ringing",
    "call_answered",
    "call_held",
    "call_resumed",
    "call_ended",
    "call_failed",
    // Gateway handovers.
    "handover_started",
    "handover_duplicating",
    "handover_validating",
    "handover_cutting_over",
    "handover_completed",
    "handover_aborted",
    "handover_participant_validated",
    "handover_participant_cut_over",
    "handover_participant_failed_over",
    // Draining mixers (gateway).
    "mixer_draining",
    "mixer_drained",
    "mixer_undrained",
    // The subscriber fell behind (`missed` events).
    "lagged",
];

/// Format `t` as RFC 3339 UTC with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Event {
    /// An event about a session change made through the API.
    pub fn session(
        kind: &'static str,
        conference: &str,
        participant: Option<&str>,
        at: SystemTime,
    ) -> Event {
        Event {
            kind,
            conference: Some(conference.to_string()),
            participant: participant.map(str::to_string),
            timestamp: timestamp(at),
            detail: Box::default(),
        }
    }

    /// An event about mixer `url` (gateway).
    pub fn mixer(kind: &'static str, url: &str, at: SystemTime) -> Event {
        Event::appliance(
            kind,
            at,
            Detail {
                mixer: Some(url.to_string()),
                ..Detail::default()
            },
        )
    }

    /// An event about call manager `cm`'s lease.
    pub fn lease(kind: &'static str, cm: &str, at: SystemTime) -> Event {
        Event::appliance(
            kind,
            at,
            Detail {
                call_manager: Some(cm.to_string()),
                ..Detail::default()
            },
        )
    }

    /// An event about no conference, with `detail`.
    fn appliance(kind: &'static str, at: SystemTime, detail: Detail) -> Event {
        Event {
            kind,
            conference: None,
            participant: None,
            timestamp: timestamp(at),
            detail: Box::new(detail),
        }
    }

    /// The API form of an event from dataplane core `core`, received at `at`; `None` if
    /// its conference or participant no longer exists (or lives on another core).
    pub fn from_media(
        sessions: &Sessions,
        media: &dyn MediaPlane,
        core: usize,
        ev: &MediaEvent,
        at: SystemTime,
    ) -> Option<Event> {
        let (conference, participant) = sessions.ids(core, ev.conf, ev.part)?;
        let mut detail = Box::<Detail>::default();
        let kind = match ev.kind {
            MediaEventKind::TalkStart => "talk_start",
            MediaEventKind::TalkStop => "talk_stop",
            MediaEventKind::Digit { digit, source } => {
                detail.digit = Some(digit.as_char());
                detail.source = Some(match source {
                    DigitSource::Rfc4733 => "rfc4733",
                    DigitSource::InBand => "inband",
                });
                "digit"
            }
            MediaEventKind::PromptDone { prompt, completed } => {
                detail.prompt = media
                    .prompt_names()
                    .into_iter()
                    .find(|n| media.prompt(n) == Some(prompt));
                detail.completed = Some(completed);
                "prompt_done"
            }
            MediaEventKind::Quiet { sid_before } => {
                detail.sid_before = Some(sid_before);
                "participant_quiet"
            }
            MediaEventKind::Active => "participant_active",
            MediaEventKind::SidSeen => "sid_seen",
            MediaEventKind::RtcpSeen => "rtcp_seen",
            MediaEventKind::RtcpTimeout => "rtcp_timeout",
            MediaEventKind::Bye => "bye",
            MediaEventKind::TickOverrun => "tick_overrun",
        };
        Some(Event {
            kind,
            conference: Some(conference.to_string()),
            participant: participant.map(str::to_string),
            timestamp: timestamp(at),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> Event {
        Event::session(
            "conference_created",
            &format!("c{n}"),
            None,
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn event_json_shape() {
        let mut e = Event::session(
            "digit",
            "c",
            Some("p1"),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
        );
        e.detail.digit = Some('#');
        e.detail.source = Some("inband");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "digit", "conference": "c", "participant": "p1",
                "timestamp": "2023-11-14T22:13:20.123Z", "digit": "#", "source": "inband"})
        );
        let v = serde_json::to_value(ev(1)).unwrap();
        assert_eq!(v["participant"], serde_json::Value::Null);
        assert!(v.get("digit").is_none());
    }
}
