//! The OpenAPI 3.0 description of the HTTP API, served at `/openapi.json`.

use super::dial::MAX_DIAL_TIMEOUT_MS;
use super::directory::{
    DEFAULT_LIMIT as DIRECTORY_DEFAULT_LIMIT, MAX_LIMIT as DIRECTORY_MAX_LIMIT,
};
use super::dto::{
    DEFAULT_INPUT_DELAY_MS, DEFAULT_MAX_PARTICIPANTS, DEFAULT_TELEPHONE_EVENT_PT, GAIN_DB,
    MAX_PARTICIPANTS,
};
use super::MAX_BODY_BYTES;
use crate::leases::{MAX_INTERVAL, MIN_INTERVAL};
use crate::orphan::Reason;
use crate::reclaim::MAX_OWNER_LEN;
use crate::sessions::MAX_CONFERENCE_ID_LEN;
use serde_json::{json, Map, Value};
use tutti_control_core::directory::{
    KeyAction, MAX_CODE_LEN, MAX_NAME_LEN, MAX_PIN_LEN, MAX_PROFILE_PARTICIPANTS,
};
use tutti_control_core::events::KINDS;
use tutti_dataplane::conference::MAX_INPUT_DELAY_FRAMES;
use tutti_dataplane::mixer::{Ptime, MAX_LOUDEST};

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": json_content(schema(name)) })
}

/// Responses: `ok` (status, description, optional schema name) plus the error statuses.
fn responses(ok: (&str, &str, Option<&str>), errors: &[(&str, &str)]) -> Value {
    let (status, description, ok_schema) = ok;
    let mut r = Map::new();
    let mut success = json!({ "description": description });
    if let Some(name) = ok_schema {
        success["content"] = json_content(schema(name));
    }
    r.insert(status.to_string(), success);
    for (status, description) in errors {
        r.insert(
            status.to_string(),
            json!({ "description": description, "content": json_content(schema("Error")) }),
        );
    }
    Value::Object(r)
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": { "type": "string" } })
}

const BAD_BODY: (&str, &str) = (
    "400",
    "Malformed JSON, wrong field types, unknown fields or invalid values",
);
const TOO_LARGE: (&str, &str) = ("413", "Request body too large");
const NOT_JSON: (&str, &str) = ("415", "Content-Type is not application/json");
const NO_CONF: (&str, &str) = ("404", "No such conference");
const NO_PART: (&str, &str) = ("404", "No such conference or participant");
const BUSY: (&str, &str) = (
    "503",
    "A dataplane core is full or not accepting commands; try again later",
);
const DATAPLANE: (&str, &str) = ("500", "The dataplane refused the command");

/// A call manager's name: 1 to [`MAX_OWNER_LEN`] characters, none a control character.
fn cm_name(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": MAX_OWNER_LEN,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", "description": description })
}

/// `POST /v1/conferences`: one of arrival timing (the default) or input timing with
/// each ptime, whose `input_delay_ms` is a multiple of it and `active_speakers` "all".
fn conference_create(speakers: &Value, timing: &Value) -> Value {
    let common = json!({
        "id": { "type": "string", "pattern": "^[A-Za-z0-9._-]+$",
                "minLength": 1, "maxLength": MAX_CONFERENCE_ID_LEN,
                "description": "Generated when absent" },
        "owner": cm_name("The call manager that owns the conference. It must hold a live \
                          lease (POST /v1/call-managers/{cm}/heartbeat first), else 409"),
        "max_participants": { "type": "integer", "minimum": 1, "maximum": MAX_PARTICIPANTS,
                              "default": DEFAULT_MAX_PARTICIPANTS }
    });
    let variant = |extra: Value, required: &[&str]| {
        let mut props = common.clone();
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({ "type": "object", "additionalProperties": false, "required": required,
                "properties": props })
    };
    let mut variants = vec![variant(
        json!({
            "ptime_ms": { "type": "integer", "enum": [10, 20, 30, 40], "default": 20 },
            "active_speakers": speakers,
            "timing": { "type": "string", "enum": ["arrival"], "default": "arrival" }
        }),
        &[],
    )];
    for ptime in [Ptime::Ms10, Ptime::Ms20, Ptime::Ms30, Ptime::Ms40] {
        let ms = ptime.millis();
        let is_default = ptime == Ptime::default();
        let required: &[&str] = if is_default {
            &["timing"]
        } else {
            &["timing", "ptime_ms"]
        };
        variants.push(variant(
            json!({
                "ptime_ms": { "type": "integer", "enum": [ms] },
                "active_speakers": { "type": "string", "enum": ["all"] },
                "timing": { "type": "string", "enum": ["input"] },
                "input_delay_ms": { "type": "integer", "minimum": ms, "multipleOf": ms,
                                    "maximum": ms * u32::from(MAX_INPUT_DELAY_FRAMES),
                                    "description": format!(
                                        "A multiple of ptime_ms, 1 to {MAX_INPUT_DELAY_FRAMES} \
                                         frames; default {DEFAULT_INPUT_DELAY_MS} ms rounded up \
                                         to whole frames") }
            }),
            required,
        ));
    }
    json!({ "oneOf": variants, "description": timing["description"] })
}

/// A remote RTP address as `POST .../participants` takes it (see `dto::parse_remote`).
const REMOTE_PATTERN: &str = concat!(
    "^(22[0-3]|2[01][0-9]|1[0-9]{2}|[1-9][0-9]?)",
    "(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}",
    ":([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
);

fn schemas() -> Value {
    let speakers = json!({
        "oneOf": [
            { "type": "integer", "minimum": 1, "maximum": MAX_LOUDEST },
            { "type": "string", "enum": ["all"] }
        ],
        "description": "Mix the loudest N talkers, or everyone who sends audio"
    });
    let gain = json!({ "type": "number", "minimum": GAIN_DB.start(), "maximum": GAIN_DB.end() });
    let timing = json!({
        "type": "string", "enum": ["arrival", "input"], "default": "arrival",
        "description": "arrival: adaptive jitter buffers, each stream its own RTP timestamps. \
                        input: every participant's RTP timestamps are on one conference \
                        timeline; each tick mixes the frame at a cursor that starts \
                        input_delay_ms before the first packet, and outbound RTP timestamps \
                        are that timeline's, so two mixers fed the same packets send the \
                        same bytes (mixer handover). Needs active_speakers \"all\" (the \
                        default with input)"
    });
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "string" } }
        },
        "ConferenceCreate": conference_create(&speakers, &timing),
        "Conference": {
            "type": "object",
            "required": ["id", "core", "ptime_ms", "max_participants", "active_speakers",
                         "timing", "participant_count", "created_at"],
            "properties": {
                "id": { "type": "string" },
                "core": { "type": "integer", "description": "lcore id of its dataplane core" },
                "owner": { "type": "string", "nullable": true },
                "ptime_ms": { "type": "integer" },
                "max_participants": { "type": "integer" },
                "active_speakers": speakers,
                "timing": timing,
                "input_delay_ms": { "type": "integer", "description": "With timing input only" },
                "participant_count": { "type": "integer" },
                "created_at": { "type": "string", "format": "date-time" },
                "orphaned": { "type": "boolean",
                              "description": "Its owner's lease lapsed: it is being reclaimed" },
                "participants": { "type": "array", "items": schema("Participant"),
                                  "description": "Only when one conference is asked for" }
            }
        },
        "ConferenceList": {
            "type": "object", "required": ["conferences"],
            "properties": { "conferences": { "type": "array", "items": schema("Conference") } }
        },
        "ParticipantCreate": {
            "type": "object", "additionalProperties": false, "required": ["remote", "codec"],
            "properties": {
                "remote": { "type": "string", "example": "198.18.0.2:4000",
                            "pattern": REMOTE_PATTERN,
                            "description": "Unicast IPv4 address (first octet 1 to 223) and \
                                            port (1 to 65535), written without leading zeros" },
                "codec": { "type": "string", "enum": ["pcmu", "pcma"],
                           "description": "Case-insensitive" },
                "telephone_event_pt": { "type": "integer", "minimum": 96, "maximum": 127,
                                        "nullable": true,
                                        "default": DEFAULT_TELEPHONE_EVENT_PT,
                                        "description": "RFC 4733 payload type; null for none" },
                "rtcp": { "type": "boolean", "default": true },
                "muted": { "type": "boolean", "default": false },
                "deaf": { "type": "boolean", "default": false },
                "gain_db": gain.clone(),
                "srtp": {
                    "allOf": [schema("Srtp")],
                    "description": "SRTP (SDES, RFC 4568): the suite and the key the client \
                                    sends with; the response's srtp is tutti's key for the \
                                    client (same suite). Not through a gateway (400)."
                }
            }
        },
        "Srtp": {
            "description": "An SRTP suite and its master key and salt in base64 (RFC 4568 \
                            inline key): 30 bytes for the AES_CM_128 suites, 28 for \
                            AEAD_AES_128_GCM",
            "oneOf": [
                {
                    "type": "object", "additionalProperties": false, "required": ["suite", "key"],
                    "properties": {
                        "suite": { "type": "string",
                                   "enum": ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"] },
                        "key": { "type": "string", "pattern": "^[A-Za-z0-9+/]{40}$",
                                 "example": "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" }
                    }
                },
                {
                    "type": "object", "additionalProperties": false, "required": ["suite", "key"],
                    "properties": {
                        "suite": { "type": "string", "enum": ["AEAD_AES_128_GCM"] },
                        "key": { "type": "string", "pattern": "^[A-Za-z0-9+/]{37}[AQgw](==)?$" }
                    }
                }
            ]
        },
        "Participant": {
            "type": "object",
            "required": ["id", "conference", "local", "remote", "codec", "rtcp", "ssrc",
                         "muted", "deaf", "gain_db", "hold", "created_at"],
            "properties": {
                "id": { "type": "string" },
                "conference": { "type": "string" },
                "local": { "type": "string", "description": "Our RTP address (RTCP: port + 1)" },
                "remote": { "type": "string" },
                "codec": { "type": "string" },
                "telephone_event_pt": { "type": "integer", "nullable": true },
                "rtcp": { "type": "boolean" },
                "ssrc": { "type": "integer", "format": "int64" },
                "muted": { "type": "boolean" },
                "deaf": { "type": "boolean" },
                "gain_db": { "type": "number" },
                "hold": { "type": "boolean" },
                "created_at": { "type": "string", "format": "date-time" },
                "sip": {
                    "type": "object", "description": "The SIP call it came by (SIP participants only)",
                    "required": ["call_id", "from", "to"],
                    "properties": {
                        "call_id": { "type": "string" },
                        "from": { "type": "string" },
                        "to": { "type": "string" }
                    }
                },
                "dial": {
                    "type": "object",
                    "description": "How tutti's call to it goes (dialled participants only); \
                                    a failed one stays visible for 5 minutes or until deleted",
                    "required": ["state"],
                    "properties": {
                        "state": { "type": "string", "enum": ["calling", "ringing", "answered", "failed"] },
                        "reason": { "type": "string", "description": "Why it failed: busy, no_answer, rejected, timeout, no_common_codec, unreachable, media" },
                        "code": { "type": "integer", "description": "The callee's final SIP status" }
                    }
                },
                "srtp": {
                    "allOf": [schema("Srtp")],
                    "description": "Tutti's SRTP suite and key for the client (SRTP participants only)"
                }
            }
        },
        "Dial": {
            "type": "object", "additionalProperties": false, "required": ["to"],
            "properties": {
                "to": { "type": "string", "description": "The callee's SIP URI (UDP)", "example": "sip:alice@198.18.0.2:5070" },
                "from": { "type": "string", "description": "Our From URI (default sip:tutti@<SIP address>)" },
                "codecs": { "type": "array", "minItems": 1, "uniqueItems": true,
                            "items": { "type": "string", "enum": ["PCMU", "PCMA", "telephone-event"] },
                            "not": { "items": { "enum": ["telephone-event"] } },
                            "description": "What to offer, in order (default PCMU, PCMA, telephone-event)" },
                "timeout_ms": { "type": "integer", "minimum": 1, "maximum": MAX_DIAL_TIMEOUT_MS, "default": 30000,
                                "description": "How long it may ring before tutti cancels it" }
            }
        },
        "ParticipantList": {
            "type": "object", "required": ["participants"],
            "properties": { "participants": { "type": "array", "items": schema("Participant") } }
        },
        "ParticipantPatch": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "muted": { "type": "boolean" },
                "deaf": { "type": "boolean" },
                "gain_db": gain,
                "hold": { "type": "boolean", "description": "Recorded in the session table" }
            }
        },
        "MoveParticipant": {
            "type": "object", "additionalProperties": false, "required": ["conference"],
            "properties": {
                "conference": { "type": "string", "minLength": 1, "maxLength": 64,
                                "pattern": "^[A-Za-z0-9._-]+$",
                                "description": "The conference to move to" }
            }
        },
        "RtpBasis": {
            "type": "object", "additionalProperties": false,
            "required": ["ssrc", "frame_timestamp", "sequence", "timestamp"],
            "description": "From now on the participant's stream has SSRC ssrc, and the packet \
                            of the frame at conference-timeline timestamp frame_timestamp \
                            carries sequence number sequence and RTP timestamp timestamp: later \
                            packets one sequence number more each, every RTP timestamp its \
                            frame's plus timestamp - frame_timestamp",
            "properties": {
                "ssrc": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                "frame_timestamp": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                "sequence": { "type": "integer", "minimum": 0, "maximum": u16::MAX },
                "timestamp": { "type": "integer", "minimum": 0, "maximum": u32::MAX }
            }
        },
        "PromptRequest": {
            "type": "object", "additionalProperties": false, "required": ["prompt"],
            "properties": {
                "prompt": { "type": "string", "description": "Name in the prompt library" },
                "participant": { "type": "string",
                                 "description": "Play to one participant; else to all" }
            }
        },
        "PromptAccepted": {
            "type": "object", "required": ["conference", "prompt"],
            "properties": {
                "conference": { "type": "string" },
                "participant": { "type": "string", "nullable": true },
                "prompt": { "type": "string" }
            }
        },
        "Heartbeat": {
            "type": "object", "additionalProperties": false, "required": ["interval_ms"],
            "properties": {
                "interval_ms": { "type": "integer",
                                 "minimum": MIN_INTERVAL.as_millis() as u64,
                                 "maximum": MAX_INTERVAL.as_millis() as u64,
                                 "description": "Time to the next heartbeat; the lease lapses after `orphan.lease_misses` intervals without one" }
            }
        },
        "CallManager": {
            "type": "object",
            "required": ["id", "interval_ms", "lease_misses", "up", "last_heartbeat_ms_ago",
                         "expires_in_ms", "conferences", "orphaned_conferences"],
            "properties": {
                "id": { "type": "string" },
                "interval_ms": { "type": "integer" },
                "lease_misses": { "type": "integer" },
                "up": { "type": "boolean", "description": "The lease is live" },
                "last_heartbeat_ms_ago": { "type": "integer" },
                "expires_in_ms": { "type": "integer", "description": "0 once lapsed" },
                "conferences": { "type": "integer", "description": "Conferences it owns" },
                "orphaned_conferences": { "type": "integer" }
            }
        },
        "CallManagerList": {
            "type": "object", "required": ["call_managers"],
            "properties": { "call_managers": { "type": "array", "items": schema("CallManager") } }
        },
        "Adopt": {
            "type": "object", "additionalProperties": false, "required": ["owner"],
            "properties": {
                "owner": cm_name("The call manager that takes the conference over; it must \
                                  hold a live lease (else 409)")
            }
        },
        "Event": {
            "type": "object", "additionalProperties": false,
            "required": ["type", "conference", "participant", "timestamp"],
            "description": "One event; the fields after timestamp come with the kinds named in \
                            their descriptions",
            "properties": {
                "type": { "type": "string", "enum": KINDS.as_slice() },
                "conference": { "type": "string", "nullable": true,
                                "description": "null for lease events and lagged" },
                "participant": { "type": "string", "nullable": true },
                "timestamp": { "type": "string", "format": "date-time" },
                "digit": { "type": "string", "description": "digit" },
                "source": { "type": "string", "enum": ["rfc4733", "inband"],
                            "description": "digit" },
                "prompt": { "type": "string", "description": "prompt_done, prompt_played" },
                "completed": { "type": "boolean", "description": "prompt_done" },
                "sid_before": { "type": "boolean", "description": "participant_quiet" },
                "reason": { "type": "string",
                            "description": format!(
                                "Why: the orphan procedure's step ({}; participant_deleted, \
                                 conference_released, conference_deleted, prompt_played), or \
                                 how a SIP call ended (call_ended: bye, cancel, no_ack, \
                                 session_expired, rtp_timeout, deleted, or the procedure's \
                                 reason), or why a dial-out failed (call_failed: busy, \
                                 no_answer, rejected, unreachable, timeout, no_common_codec, cancelled)",
                                Reason::ALL.map(Reason::as_str).join(", ")) },
                "code": { "type": "integer", "minimum": 100, "maximum": 699,
                          "description": "The callee's SIP status (call_failed, when it \
                                          answered one)" },
                "by": { "type": "string", "enum": ["voice", "digit"],
                        "description": "How a participant replied (reply_heard)" },
                "missing": { "type": "boolean",
                             "description": "The prompt is not in the library; the procedure went on without it (prompt_played)" },
                "call_manager": { "type": "string",
                                  "description": "lease_lapsed, lease_renewed, conference_orphaned, conference_adopted (the new owner)" },
                "previous_owner": { "type": "string", "nullable": true,
                                    "description": "conference_adopted" },
                "error": { "type": "string",
                           "description": "What failed (prompt_played, handover_aborted, handover_participant_failed_over) or a note (handover_completed)" },
                "missed": { "type": "integer", "minimum": 1,
                            "description": "Events the subscriber missed (lagged)" },
                "from": { "type": "string",
                          "description": "The conference the participant left (participant_moved)" },
                "mixer": { "type": "string",
                           "description": "The mixer (mixer_draining, mixer_drained, mixer_undrained)" }
            }
        },
        "Status": {
            "type": "object", "required": ["version", "ports", "cores", "capacity", "conferences"],
            "properties": {
                "version": { "type": "string" },
                "ports": { "type": "array", "items": { "type": "object" } },
                "cores": { "type": "array", "items": { "type": "object" } },
                "capacity": {
                    "type": "object", "required": ["participants", "used", "free"],
                    "properties": {
                        "participants": { "type": "integer" },
                        "used": { "type": "integer" },
                        "free": { "type": "integer" }
                    }
                },
                "conferences": { "type": "integer" }
            }
        }
    })
}

fn paths() -> Value {
    let id = path_param("id", "Conference id");
    let pid = path_param("pid", "Participant id");
    let mut heartbeat = responses(
        ("201", "Lease created", Some("CallManager")),
        &[
            BAD_BODY,
            TOO_LARGE,
            NOT_JSON,
            ("503", "Too many call managers hold leases"),
        ],
    );
    heartbeat["200"] = json!({ "description": "Lease renewed",
                               "content": json_content(schema("CallManager")) });
    let text = |description: &str, media: &str| {
        json!({ "200": { "description": description,
                         "content": { media: { "schema": { "type": "string" } } } } })
    };
    json!({
        "/healthz": { "get": {
            "summary": "Liveness", "operationId": "healthz",
            "responses": text("ok", "text/plain")
        }},
        "/v1/status": { "get": {
            "summary": "Ports, cores, capacity and conference count", "operationId": "status",
            "responses": responses(("200", "Status", Some("Status")), &[])
        }},
        "/metrics": { "get": {
            "summary": "Prometheus metrics (OpenMetrics when the Accept header asks for it)",
            "operationId": "metrics",
            "responses": text("Metrics", "text/plain")
        }},
        "/openapi.json": { "get": {
            "summary": "This document", "operationId": "openapi",
            "responses": { "200": { "description": "OpenAPI 3.0 document",
                                    "content": json_content(json!({ "type": "object" })) } }
        }},
        "/v1/events": { "get": {
            "summary": "Server-Sent Events: each `event: <type>` with a JSON Event as data; \
                        `lagged` (with `missed`) when the subscriber fell behind",
            "operationId": "events",
            "responses": { "200": { "description": "Event stream",
                                    "content": { "text/event-stream": { "schema": schema("Event") } } } }
        }},
        "/v1/conferences": {
            "get": {
                "summary": "List conferences", "operationId": "listConferences",
                "responses": responses(("200", "Conferences", Some("ConferenceList")), &[])
            },
            "post": {
                "summary": "Create a conference on the core with the most free capacity",
                "operationId": "createConference",
                "requestBody": body("ConferenceCreate"),
                "responses": responses(("201", "Created", Some("Conference")),
                    &[BAD_BODY, ("409", "A conference with this id exists, or the owner \
                                         holds no live lease (send a heartbeat first)"), TOO_LARGE,
                      NOT_JSON, DATAPLANE, BUSY])
            }
        },
        "/v1/conferences/{id}": {
            "parameters": [id.clone()],
            "get": {
                "summary": "A conference with its participants", "operationId": "getConference",
                "responses": responses(("200", "Conference", Some("Conference")), &[NO_CONF])
            },
            "delete": {
                "summary": "Delete a conference and its participants, freeing their ports",
                "operationId": "deleteConference",
                "responses": responses(("204", "Deleted", None), &[NO_CONF, DATAPLANE, BUSY])
            }
        },
        "/v1/conferences/{id}/participants": {
            "parameters": [id.clone()],
            "get": {
                "summary": "List a conference's participants", "operationId": "listParticipants",
                "responses": responses(("200", "Participants", Some("ParticipantList")), &[NO_CONF])
            },
            "post": {
                "summary": "Add a participant (local RTP port from the conference's core)",
                "operationId": "addParticipant",
                "requestBody": body("ParticipantCreate"),
                "responses": responses(("201", "Added", Some("Participant")),
                    &[BAD_BODY, NO_CONF, ("409", "The conference has max_participants, or is orphaned (its owner's lease lapsed: heartbeat or adopt first)"),
                      TOO_LARGE, NOT_JSON, DATAPLANE, BUSY])
            }
        },
        "/v1/conferences/{id}/participants/{pid}": {
            "parameters": [id.clone(), pid.clone()],
            "get": {
                "summary": "A participant", "operationId": "getParticipant",
                "responses": responses(("200", "Participant", Some("Participant")), &[NO_PART])
            },
            "patch": {
                "summary": "Change mute, deaf, gain or hold", "operationId": "updateParticipant",
                "requestBody": body("ParticipantPatch"),
                "responses": responses(("200", "Updated", Some("Participant")),
                    &[BAD_BODY, NO_PART, TOO_LARGE, NOT_JSON, DATAPLANE, BUSY])
            },
            "delete": {
                "summary": "Remove a participant, freeing its ports",
                "operationId": "deleteParticipant",
                "responses": responses(("204", "Removed", None), &[NO_PART, DATAPLANE, BUSY])
            }
        },
        "/v1/conferences/{id}/participants/{pid}/rtp": {
            "parameters": [id.clone(), pid.clone()],
            "put": {
                "summary": "Continue another mixer's stream to the participant: its SSRC, \
                            sequence numbers and timestamps (input timing only)",
                "operationId": "setParticipantRtp",
                "requestBody": body("RtpBasis"),
                "responses": responses(("200", "Set", Some("Participant")),
                    &[BAD_BODY, NO_PART, ("409", "The conference does not have input timing"),
                      TOO_LARGE, NOT_JSON, DATAPLANE, BUSY])
            }
        },
        "/v1/conferences/{id}/participants/{pid}/move": {
            "parameters": [id.clone(), pid],
            "post": {
                "summary": "Move the participant to another conference of this appliance, \
                            call and all: same local address, SSRC and sequence numbers, no \
                            renegotiation (event participant_moved)",
                "operationId": "moveParticipant",
                "requestBody": body("MoveParticipant"),
                "responses": responses(("200", "Moved: the participant in its new conference", Some("Participant")),
                    &[BAD_BODY, ("404", "No such conference or participant (the path's)"),
                      ("422", "The conference to move to does not exist"),
                      ("409", "It is in that conference already, or the conference has \
                               max_participants, or is orphaned"),
                      TOO_LARGE, NOT_JSON, DATAPLANE,
                      ("503", "The dataplane is busy, or the other conference's core is full")])
            }
        },
        "/v1/conferences/{id}/dial": {
            "parameters": [id.clone()],
            "post": {
                "summary": "Call a SIP user into the conference; the participant is reserved at \
                            once and joins when the call is answered (events call_ringing, \
                            call_answered, call_failed)",
                "operationId": "dial",
                "requestBody": body("Dial"),
                "responses": responses(("202", "Calling", Some("Participant")),
                    &[BAD_BODY, NO_CONF, ("409", "The conference has max_participants"),
                      ("422", "Not a SIP URI, or a codec we do not offer"), TOO_LARGE, NOT_JSON,
                      ("503", "SIP is not configured, sip.max_calls calls are up, or a core is full")])
            }
        },
        "/v1/conferences/{id}/adopt": {
            "parameters": [id.clone()],
            "post": {
                "summary": "A (backup) call manager takes the conference over; an orphaned \
                            conference's reclamation stops",
                "operationId": "adoptConference",
                "requestBody": body("Adopt"),
                "responses": responses(("200", "Adopted", Some("Conference")),
                    &[BAD_BODY, NO_CONF, ("409", "The owner holds no live lease (send a heartbeat \
                                                  first)"), TOO_LARGE, NOT_JSON])
            }
        },
        "/v1/call-managers": {
            "get": {
                "summary": "Call managers with a lease", "operationId": "listCallManagers",
                "responses": responses(("200", "Leases", Some("CallManagerList")), &[])
            }
        },
        "/v1/call-managers/{cm}/heartbeat": {
            "parameters": [{ "name": "cm", "in": "path", "required": true,
                             "description": "Call manager id",
                             "schema": cm_name("Call manager id") }],
            "post": {
                "summary": "Create or renew the call manager's lease; renewing a lapsed \
                            lease ends its conferences' orphaned state",
                "operationId": "heartbeat",
                "requestBody": body("Heartbeat"),
                "responses": heartbeat
            }
        },
        "/v1/conferences/{id}/prompts": {
            "parameters": [id],
            "post": {
                "summary": "Play a prompt to the conference or one participant",
                "operationId": "playPrompt",
                "requestBody": body("PromptRequest"),
                "responses": responses(("202", "Queued", Some("PromptAccepted")),
                    &[BAD_BODY, NO_CONF,
                      ("422", "The body names a participant or prompt that does not exist"),
                      TOO_LARGE, NOT_JSON, DATAPLANE, BUSY])
            }
        }
    })
}

/// The provisioning entry's profile fields (everything a client writes but the code).
fn directory_profile() -> Map<String, Value> {
    let pin = |what: &str| {
        json!({ "type": "string", "pattern": format!("^[0-9]{{1,{MAX_PIN_LEN}}}$"),
                "description": what })
    };
    let keys = |what: &str, moderator: bool| {
        let actions: Vec<&str> = KeyAction::ALL
            .into_iter()
            .filter(|a| moderator || !a.moderator_only())
            .map(KeyAction::as_str)
            .collect();
        let action = json!({ "type": "string", "enum": actions });
        let props: Map<String, Value> = "0123456789*#ABCD"
            .chars()
            .map(|k| (k.to_string(), action.clone()))
            .collect();
        json!({ "type": "object", "additionalProperties": false, "properties": props,
                "description": format!("{what}: DTMF key → action") })
    };
    let profile = json!({
        "conference": { "type": "string", "pattern": "^[A-Za-z0-9._-]+$",
                        "minLength": 1, "maxLength": MAX_CONFERENCE_ID_LEN,
                        "description": "The conference callers with this code join \
                                        (default: the code)" },
        "name": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_LEN,
                  "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
                  "description": "Without control characters" },
        "pin": pin("Callers key it after the code (unless they key the moderator PIN)"),
        "moderator_pin": pin("Keying it makes the caller a moderator (if it is pin too, \
                              everyone who keys it is one)"),
        "max_participants": { "type": "integer", "minimum": 1,
                              "maximum": MAX_PROFILE_PARTICIPANTS },
        "wait_for_moderator": { "type": "boolean", "default": false,
                                "description": "Music on hold until a moderator joins \
                                                (needs moderator_pin)" },
        "end_with_moderator": { "type": "boolean", "default": false,
                                "description": "The conference ends when its last \
                                                moderator leaves (needs moderator_pin)" },
        "locked": { "type": "boolean", "default": false },
        "announce": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "first_participant": { "type": "boolean", "default": true },
                "count": { "type": "boolean", "default": false },
                "join_leave_tones": { "type": "boolean", "default": true }
            }
        },
        "keys": keys("Participants' keys (default 0 mute, 1/2/3 talk volume down/zero/up, \
                      4/5/6 listen volume down/zero/up, # hang up; no moderator actions)",
                     false),
        "moderator_keys": keys("Moderators' keys (default the participants' plus * \
                                lock_toggle, 8 mute_all_toggle)", true)
    });
    match profile {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn directory_schemas() -> Value {
    let code = json!({ "type": "string", "pattern": format!("^[0-9]{{1,{MAX_CODE_LEN}}}$"),
                       "description": "The digits callers key in" });
    let mut create = directory_profile();
    create.insert("code".into(), code.clone());
    let mut entry = directory_profile();
    entry.insert("code".into(), code);
    // wait_for_moderator and end_with_moderator need a moderator PIN.
    let needs_moderator: Vec<Value> = ["wait_for_moderator", "end_with_moderator"]
        .into_iter()
        .map(|f| {
            json!({ "anyOf": [
                { "properties": { f: { "enum": [false] } } },
                { "required": ["moderator_pin"] }
            ] })
        })
        .collect();
    json!({
        "DirectoryEntrySpec": { "type": "object", "additionalProperties": false,
                                "properties": directory_profile(), "allOf": needs_moderator },
        "DirectoryEntryCreate": { "type": "object", "additionalProperties": false,
                                  "required": ["code"], "properties": create,
                                  "allOf": needs_moderator },
        "DirectoryEntry": {
            "type": "object",
            "required": ["code", "conference", "wait_for_moderator", "end_with_moderator",
                         "locked", "announce", "keys", "moderator_keys"],
            "properties": entry
        },
        "DirectoryPage": {
            "type": "object", "required": ["entries"],
            "properties": {
                "entries": { "type": "array", "items": schema("DirectoryEntry") },
                "next": { "type": "string",
                          "description": "Pass as `after` for the next page; absent on the \
                                          last" }
            }
        }
    })
}

fn directory_paths() -> Value {
    let mut code = path_param("code", "Conference code");
    code["schema"]["pattern"] = format!("^[0-9]{{1,{MAX_CODE_LEN}}}$").into();
    const STORE: [(&str, &str); 3] = [
        ("500", "The store failed or holds a damaged record"),
        ("503", "The store is busy (Retry-After) or not running"),
        (
            "504",
            "The store did not answer in time; a change may or may not have been made",
        ),
    ];
    let with_store = |errors: &[(&'static str, &'static str)]| {
        let mut all = errors.to_vec();
        all.extend(STORE);
        all
    };
    let list_params = json!([
        { "name": "after", "in": "query", "required": false,
          "description": "Start after this code",
          "schema": { "type": "string", "pattern": format!("^[0-9]{{1,{MAX_CODE_LEN}}}$") } },
        { "name": "limit", "in": "query", "required": false,
          "schema": { "type": "integer", "minimum": 1, "maximum": DIRECTORY_MAX_LIMIT,
                      "default": DIRECTORY_DEFAULT_LIMIT } }
    ]);
    let mut put = responses(
        ("200", "Replaced", Some("DirectoryEntry")),
        &with_store(&[BAD_BODY, TOO_LARGE, NOT_JSON]),
    );
    put["201"] = json!({ "description": "Created",
                         "content": json_content(schema("DirectoryEntry")) });
    json!({
        "/v1/directory/conferences": {
            "get": {
                "summary": "Conference codes and their profiles, in code order",
                "operationId": "listDirectory",
                "parameters": list_params,
                "responses": responses(("200", "A page", Some("DirectoryPage")),
                                       &with_store(&[("400", "Bad query parameters")]))
            },
            "post": {
                "summary": "Provision a conference code",
                "operationId": "createDirectoryEntry",
                "requestBody": body("DirectoryEntryCreate"),
                "responses": responses(("201", "Created", Some("DirectoryEntry")),
                    &with_store(&[BAD_BODY, ("409", "The code exists already"),
                                  TOO_LARGE, NOT_JSON]))
            }
        },
        "/v1/directory/conferences/{code}": {
            "parameters": [code],
            "get": {
                "summary": "One conference code's profile",
                "operationId": "getDirectoryEntry",
                "responses": responses(("200", "The entry", Some("DirectoryEntry")),
                    &with_store(&[("400", "Not a conference code"),
                                  ("404", "No such code")]))
            },
            "put": {
                "summary": "Create or replace a conference code's profile (fields left out \
                            take their defaults)",
                "operationId": "putDirectoryEntry",
                "requestBody": body("DirectoryEntrySpec"),
                "responses": put
            },
            "delete": {
                "summary": "Remove a conference code",
                "operationId": "deleteDirectoryEntry",
                "responses": responses(("204", "Deleted", None),
                    &with_store(&[("400", "Not a conference code"),
                                  ("404", "No such code")]))
            }
        }
    })
}

/// `base` with every member of the objects `more` added.
fn merged(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// Links from each create response to the operations that use its id (so a stateful
/// client or fuzzer can follow them): `(operation, status, [(target, parameters)])`,
/// each parameter taken from the response body.
// No link leads to moveParticipant: after a move the participant is no longer where
// the links of its creation say, which a stateful fuzzer would read as a lost resource.
const LINKS: [(&str, &str, &[Link]); 8] = [
    (
        "createConference",
        "201",
        &[
            ("getConference", &[("id", "/id")]),
            ("deleteConference", &[("id", "/id")]),
            ("listParticipants", &[("id", "/id")]),
            ("addParticipant", &[("id", "/id")]),
            ("adoptConference", &[("id", "/id")]),
            ("handoverConference", &[("id", "/id")]),
        ],
    ),
    (
        "addParticipant",
        "201",
        &[
            ("getParticipant", &[("id", "/conference"), ("pid", "/id")]),
            (
                "updateParticipant",
                &[("id", "/conference"), ("pid", "/id")],
            ),
            (
                "deleteParticipant",
                &[("id", "/conference"), ("pid", "/id")],
            ),
            (
                "setParticipantRtp",
                &[("id", "/conference"), ("pid", "/id")],
            ),
        ],
    ),
    (
        "dial",
        "202",
        &[
            ("getParticipant", &[("id", "/conference"), ("pid", "/id")]),
            (
                "deleteParticipant",
                &[("id", "/conference"), ("pid", "/id")],
            ),
        ],
    ),
    ("createDirectoryEntry", "201", DIRECTORY_LINKS),
    ("putDirectoryEntry", "201", DIRECTORY_LINKS),
    ("putDirectoryEntry", "200", DIRECTORY_LINKS),
    ("heartbeat", "201", &[("heartbeat", &[("cm", "/id")])]),
    ("heartbeat", "200", &[("heartbeat", &[("cm", "/id")])]),
];

/// From a provisioning entry to the operations on its code.
const DIRECTORY_LINKS: &[Link] = &[
    ("getDirectoryEntry", &[("code", "/code")]),
    ("putDirectoryEntry", &[("code", "/code")]),
    ("deleteDirectoryEntry", &[("code", "/code")]),
];

/// A link's target operation and its parameters: `(name, JSON pointer in the body)`.
type Link = (&'static str, &'static [(&'static str, &'static str)]);

/// Add [`LINKS`] whose operations the document has.
fn link(doc: &mut Value) {
    let mut ops = Map::new();
    for item in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ops.insert(id.to_string(), Value::Null);
            }
        }
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            for (_, status, targets) in LINKS.iter().filter(|(from, ..)| *from == id) {
                let links: Map<String, Value> = targets
                    .iter()
                    .filter(|(target, _)| ops.contains_key(*target))
                    .map(|(target, params)| {
                        let params: Map<String, Value> = params
                            .iter()
                            .map(|(name, at)| {
                                (name.to_string(), format!("$response.body#{at}").into())
                            })
                            .collect();
                        (
                            target.to_string(),
                            json!({ "operationId": target, "parameters": params }),
                        )
                    })
                    .collect();
                op["responses"][*status]["links"] = Value::Object(links);
            }
        }
    }
}

/// Declare the bearer scheme, require it of every operation but `/healthz`'s, and
/// document their 401.
fn secure(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http", "scheme": "bearer",
            "description": "control.token (gateway.token on the gateway API): when set, every \
                            request but GET /healthz needs Authorization: Bearer <token>, and \
                            so does /metrics unless control.metrics_public is true; \
                            /openapi.json follows the API's rule. Without a token set the API \
                            is open."
        }
    });
    doc["security"] = json!([{ "bearer": [] }]);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (_, op) in ops.iter_mut().filter(|(m, _)| *m != "parameters") {
            if path == "/healthz" {
                op["security"] = json!([]);
                continue;
            }
            if path == "/metrics" {
                op["security"] = json!([{ "bearer": [] }, {}]);
            }
            op["responses"]["401"] = json!({
                "description": "No bearer token, or the wrong one (the API has a token)",
                "headers": { "WWW-Authenticate": { "schema": { "type": "string" },
                    "description": "Bearer realm=\"tutti\" (with error=\"invalid_token\" for a wrong one)" } },
                "content": json_content(schema("Error"))
            });
        }
    }
}

/// The OpenAPI 3.0 document for API version `version`.
pub fn document(version: &str) -> Value {
    let mut doc = mixer_document(version);
    link(&mut doc);
    secure(&mut doc);
    doc
}

/// [`document`] before [`secure`].
fn mixer_document(version: &str) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tutti control API",
            "version": version,
            "description": format!(
                "Conferences and participants on the tutti audio conferencing appliance. \
                 Every error is a JSON body {{\"error\": message}}; request bodies are at \
                 most {MAX_BODY_BYTES} bytes."
            )
        },
        "paths": merged(paths(), directory_paths()),
        "components": { "schemas": merged(schemas(), directory_schemas()) }
    })
}

/// Name the prompts `PromptRequest.prompt` may be (the library this appliance loaded).
pub fn name_prompts(doc: &mut Value, names: Vec<String>) {
    if !names.is_empty() {
        doc["components"]["schemas"]["PromptRequest"]["properties"]["prompt"]["enum"] =
            names.into();
    }
}

/// The paths the gateway API serves as a mixer's do (its conference calls are a mixer's,
/// answered through the hosting mixer).
const GATEWAY_SHARED: [&str; 11] = [
    "/healthz",
    "/v1/status",
    "/metrics",
    "/v1/events",
    "/v1/conferences",
    "/v1/conferences/{id}",
    "/v1/conferences/{id}/participants",
    "/v1/conferences/{id}/participants/{pid}",
    "/v1/conferences/{id}/prompts",
    "/v1/conferences/{id}/adopt",
    "/v1/call-managers/{cm}/heartbeat",
];

/// The OpenAPI 3.0 document of the gateway API (`gateway.listen`).
pub fn gateway_document(version: &str) -> Value {
    let mut doc = mixer_document(version);
    doc["info"]["title"] = "tutti gateway API".into();
    doc["info"]["description"] = format!(
        "Conferences relayed through the tutti media gateway to its mixers, and their \
         seamless handover between mixers. The conference and participant calls are a \
         mixer's; participants' local addresses are the gateway's. Every error is a JSON \
         body {{\"error\": message}} (502 when a mixer fails; a mixer's 4xx refusal keeps \
         its status); request bodies are at most {MAX_BODY_BYTES} bytes."
    )
    .into();
    let id = path_param("id", "Conference id");
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.retain(|p, _| GATEWAY_SHARED.contains(&p.as_str()) || p == "/openapi.json");
        paths.insert(
            "/v1/conferences/{id}/handover".into(),
            json!({
                "parameters": [id],
                "post": {
                    "summary": "Move the conference's mixing to another mixer while every \
                                client keeps one unbroken RTP stream",
                    "operationId": "handoverConference",
                    "requestBody": body("HandoverRequest"),
                    "responses": responses(("202", "Started", Some("Conference")),
                        &[("400", "Malformed JSON, wrong field types, unknown fields, invalid values, \
                                 or to names the mixer the conference is on"),
                          ("404", "No such conference"),
                          ("409", "A handover of the conference is running"),
                          ("502", "No mixer answered"), ("503", "No other mixer has room"),
                          TOO_LARGE, NOT_JSON])
                }
            }),
        );
        paths.insert(
            "/v1/mixers".into(),
            json!({ "get": {
                "summary": "The configured mixers: whether each is draining, its conferences",
                "operationId": "listMixers",
                "responses": responses(("200", "Mixers", Some("MixerList")), &[])
            }}),
        );
        paths.insert(
            "/v1/mixers/drain".into(),
            json!({ "post": {
                "summary": "Drain a mixer: it takes no new conferences, and its conferences \
                            are handed over seamlessly to the others a few at a time \
                            (events mixer_draining, then mixer_drained when none is left; \
                            GET /v1/mixers shows the progress)",
                "operationId": "drainMixer",
                "requestBody": body("MixerRequest"),
                "responses": responses(("202", "Draining", Some("MixerStatus")),
                    &[("400", "Malformed JSON, wrong field types, unknown fields, or not a \
                             configured mixer"), TOO_LARGE, NOT_JSON])
            }}),
        );
        paths.insert(
            "/v1/mixers/undrain".into(),
            json!({ "post": {
                "summary": "The mixer takes new conferences again (what moved stays moved)",
                "operationId": "undrainMixer",
                "requestBody": body("MixerRequest"),
                "responses": responses(("200", "Taking conferences", Some("MixerStatus")),
                    &[("400", "Malformed JSON, wrong field types, unknown fields, or not a \
                             configured mixer"), TOO_LARGE, NOT_JSON])
            }}),
        );
    }
    // On the gateway a conference also conflicts with draining mixers.
    doc["paths"]["/v1/conferences"]["post"]["responses"]["409"]["description"] =
        "A conference with this id exists, the owner holds no live lease, the mixer named \
         is draining, or every mixer is"
            .into();
    doc["paths"]["/v1/conferences/{id}/handover"]["post"]["responses"]["409"]["description"] =
        "A handover of the conference is running, or the mixer to move to is draining (or \
         every other mixer is)"
            .into();
    let schemas = &mut doc["components"]["schemas"];
    // The mixer's arrival-timing form, without timing (the gateway's mixers mix by
    // input timestamps, so everyone is mixed).
    let create = schemas["ConferenceCreate"]["oneOf"][0].clone();
    schemas["ConferenceCreate"] = create;
    if let Some(props) = schemas["ConferenceCreate"]["properties"].as_object_mut() {
        props.remove("timing");
        props.insert(
            "active_speakers".into(),
            json!({ "type": "string", "enum": ["all"] }),
        );
        props.insert(
            "mixer".into(),
            json!({ "type": "string", "format": "uri",
                    "description": "Base URL of the mixer to host it (default: the \
                                    configured mixer with the most free capacity)" }),
        );
    }
    // Relayed conferences live on a mixer, not on a core of the gateway's.
    if let Some(required) = schemas["Conference"]["required"].as_array_mut() {
        required.retain(|r| r != "core");
    }
    if let Some(props) = schemas["Conference"]["properties"].as_object_mut() {
        props.remove("core");
        props.insert("mixer".into(), json!({ "type": "string", "format": "uri" }));
        props.insert(
            "handover".into(),
            json!({ "allOf": [schema("Handover")], "nullable": true }),
        );
    }
    if let Some(all) = schemas.as_object_mut() {
        all.insert(
            "MixerRequest".into(),
            json!({
                "type": "object", "additionalProperties": false, "required": ["mixer"],
                "properties": { "mixer": { "type": "string", "format": "uri",
                                           "description": "Base URL of a configured mixer" } }
            }),
        );
        all.insert(
            "MixerStatus".into(),
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["mixer", "draining", "conferences", "handing_over"],
                "properties": {
                    "mixer": { "type": "string", "format": "uri" },
                    "draining": { "type": "boolean" },
                    "conferences": { "type": "integer", "minimum": 0,
                                     "description": "Conferences on the mixer" },
                    "handing_over": { "type": "integer", "minimum": 0,
                                      "description": "Of those, being handed over now" }
                }
            }),
        );
        all.insert(
            "MixerList".into(),
            json!({
                "type": "object", "required": ["mixers"],
                "properties": { "mixers": { "type": "array", "items": schema("MixerStatus") } }
            }),
        );
        all.insert(
            "HandoverRequest".into(),
            json!({
                "type": "object", "additionalProperties": false,
                "properties": {
                    "to": { "type": "string", "format": "uri",
                            "description": "Base URL of the mixer to move to (default: the \
                                            other configured mixer with the most free capacity)" },
                    "mode": { "type": "string", "enum": ["rewrite", "instruct"],
                              "default": "rewrite",
                              "description": "rewrite: the gateway rewrites the new mixer's \
                                              SSRC, sequence numbers and timestamps in place; \
                                              instruct: the new mixer is told to send the \
                                              client's own, the gateway only checks" }
                }
            }),
        );
        all.insert(
            "Handover".into(),
            json!({
                "type": "object",
                "required": ["state", "from", "to", "mode", "started_at", "participants"],
                "properties": {
                    "state": { "type": "string", "enum": ["creating", "duplicating",
                               "validating", "cutting_over", "completed", "aborted"] },
                    "from": { "type": "string" },
                    "to": { "type": "string" },
                    "mode": { "type": "string", "enum": ["rewrite", "instruct"] },
                    "reason": { "type": "string", "nullable": true,
                                "description": "Why it was aborted, or what failed after \
                                                the cut-over" },
                    "started_at": { "type": "string", "format": "date-time" },
                    "cutover_ms": { "type": "number", "nullable": true,
                                    "description": "Request to the last client's cut-over" },
                    "duration_ms": { "type": "number", "nullable": true },
                    "extra_delay_ms": { "type": "number", "nullable": true,
                                        "description": "Largest delay added to a client's \
                                                        stream at its switch" },
                    "participants": { "type": "object", "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "state": { "type": "string", "enum": ["waiting", "duplicating",
                                       "paired", "validated", "cut_over", "aborted"] },
                            "mismatches": { "type": "integer" },
                            "cut_seq": { "type": "integer", "nullable": true },
                            "extra_delay_ms": { "type": "number", "nullable": true }
                        }
                    } }
                }
            }),
        );
    }
    // Any call that reaches a mixer may find it failing, and a conference's calls may
    // find it being handed over.
    for (path, item) in doc["paths"].as_object_mut().into_iter().flatten() {
        let conference = path.starts_with("/v1/conferences/{id}");
        if !conference
            && !path.starts_with("/v1/conferences")
            && !path.starts_with("/v1/call-managers")
        {
            continue;
        }
        for (_, op) in item.as_object_mut().into_iter().flatten() {
            let Some(r) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            r.entry("502").or_insert_with(|| {
                json!({ "description": "A mixer failed or could not be reached",
                        "content": json_content(schema("Error")) })
            });
            if conference {
                r.entry("409").or_insert_with(|| {
                    json!({ "description": "The conference is being handed over; try again \
                                            when the handover ends",
                            "content": json_content(schema("Error")) })
                });
            }
        }
    }
    link(&mut doc);
    secure(&mut doc);
    doc
}

/// Name the mixers `mixer` and `to` may be (`gateway.mixers`: no other is called).
pub fn name_mixers(doc: &mut Value, mixers: &[String]) {
    let schemas = &mut doc["components"]["schemas"];
    for (schema, field) in [
        ("ConferenceCreate", "mixer"),
        ("HandoverRequest", "to"),
        ("MixerRequest", "mixer"),
    ] {
        if !mixers.is_empty() {
            schemas[schema]["properties"][field]["enum"] = mixers.into();
        }
    }
}

/// Checking JSON against the document's schemas (the subset of OpenAPI 3.0 schema the
/// document uses), for tests.
#[cfg(test)]
pub(crate) mod check {
    use super::*;
    use crate::events::Event;

    /// Where `v` does not match `schema` (references resolved in `doc`), if anywhere.
    pub fn mismatch(doc: &Value, schema: &Value, v: &Value, at: &str) -> Option<String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = doc
                .pointer(r.trim_start_matches('#'))
                .expect("reference resolves");
            return mismatch(doc, target, v, at);
        }
        if v.is_null() {
            let nullable = schema.get("nullable") == Some(&Value::Bool(true));
            return (!nullable).then(|| format!("{at}: null where the schema is not nullable"));
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            if let Some(m) = all.iter().find_map(|s| mismatch(doc, s, v, at)) {
                return Some(m);
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let fits = one
                .iter()
                .filter(|s| mismatch(doc, s, v, at).is_none())
                .count();
            if fits != 1 {
                return Some(format!("{at}: {v} fits {fits} of oneOf"));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.contains(v) {
                return Some(format!("{at}: {v} is not one of {values:?}"));
            }
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let typed = match ty {
            None => true,
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some(other) => panic!("schema type {other} not checked"),
        };
        if !typed {
            return Some(format!("{at}: {v} is not of type {}", ty.unwrap_or("?")));
        }
        if let Some(items) = schema.get("items") {
            let arr = v.as_array()?;
            return arr
                .iter()
                .enumerate()
                .find_map(|(i, x)| mismatch(doc, items, x, &format!("{at}[{i}]")));
        }
        let obj = v.as_object()?;
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = req.as_str().unwrap();
            if !obj.contains_key(name) {
                return Some(format!("{at}: required {name} missing"));
            }
        }
        obj.iter().find_map(|(k, x)| {
            let here = format!("{at}.{k}");
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => mismatch(doc, s, x, &here),
                (None, Some(Value::Bool(false))) => Some(format!("{here}: not in the schema")),
                (None, Some(s)) if s.is_object() => mismatch(doc, s, x, &here),
                (None, _) => None,
            }
        })
    }

    /// Panic unless `ev`, as `/v1/events` sends it, matches the document's `Event`.
    pub fn event_documented(ev: &Event) {
        static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        let doc = DOC.get_or_init(|| document("test"));
        let v = serde_json::to_value(ev).expect("events serialize");
        if let Some(m) = mismatch(doc, &schema("Event"), &v, "event") {
            panic!("event {v} does not match the Event schema of /openapi.json: {m}");
        }
    }
}
