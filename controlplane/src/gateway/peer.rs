//! The peer client: carries the core's [`PeerRequest`]s to mixers' REST APIs (the same
//! API this crate serves) and hands back their typed answers.

use crate::http::dto::codec_name;
use reqwest::Method;
use serde_json::json;
use serde_json::Value;
use std::time::Duration;
use tutti_control_core::leases::CallManagerStatus;
use tutti_control_core::peer::{
    MixerParticipant, PeerAnswer, PeerCall, PeerError, PeerRequest, PeerResult,
};
use tutti_control_core::sessions::{NewConference, NewParticipant};
use tutti_dataplane::conference::Timing;
use tutti_dataplane::mixer::ActiveSpeakers;

/// How the gateway reaches its mixers: the token it sends (`gateway.mixer_token`) and
/// the certificates it trusts for `https://` mixers (`gateway.mixer_ca`).
#[derive(Clone, Debug, Default)]
pub struct MixerAccess {
    /// Sent as `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
    /// The roots an `https://` mixer's certificate must chain to (none: no https).
    pub roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// An HTTP client for mixers, with a bounded time per call.
#[derive(Clone, Debug)]
pub struct MixerClient {
    http: reqwest::Client,
    token: Option<String>,
}

impl MixerClient {
    /// A client whose calls give up after `timeout`, authenticated by `access`.
    pub fn new(timeout: Duration, access: MixerAccess) -> Result<MixerClient, String> {
        reqwest::Client::builder()
            .tls_backend_preconfigured(crate::http::tls::client_config(&access.roots)?)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map(|http| MixerClient {
                http,
                token: access.token,
            })
            .map_err(|e| e.to_string())
    }

    /// `method base+path` with an optional JSON body; the JSON answer (`null` for an
    /// empty one such as 204).
    async fn call(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PeerError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| PeerError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| PeerError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            return Err(PeerError::Refused {
                url,
                status: status.as_u16(),
                message,
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| PeerError::BadAnswer {
            url,
            reason: e.to_string(),
        })
    }

    /// Carry out `req`.
    pub async fn execute(&self, req: &PeerRequest) -> PeerResult {
        let (method, path, body) = encode(&req.call);
        let url = format!("{}{path}", req.mixer.trim_end_matches('/'));
        let v = self.call(method, &req.mixer, &path, body.as_ref()).await?;
        let bad = |reason: &str| PeerError::BadAnswer {
            url: url.clone(),
            reason: reason.to_string(),
        };
        match &req.call {
            PeerCall::Status => v
                .pointer("/capacity/free")
                .and_then(Value::as_u64)
                .map(PeerAnswer::Free)
                .ok_or_else(|| bad("no capacity.free")),
            PeerCall::CreateConference { .. } | PeerCall::Adopt { .. } => {
                Ok(PeerAnswer::Conference {
                    orphaned: v.get("orphaned").and_then(Value::as_bool).unwrap_or(false),
                })
            }
            PeerCall::AddParticipant { .. } => {
                let id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("no \"id\""))?;
                let local = v
                    .get("local")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("no valid \"local\""))?;
                let ssrc = v
                    .get("ssrc")
                    .and_then(Value::as_u64)
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(|| bad("no valid \"ssrc\""))?;
                Ok(PeerAnswer::Participant(MixerParticipant {
                    id: id.to_string(),
                    local,
                    ssrc,
                }))
            }
            PeerCall::Heartbeat { .. } => lease(&v)
                .map(PeerAnswer::Lease)
                .ok_or_else(|| bad("not a lease")),
            _ => Ok(PeerAnswer::Done),
        }
    }
}

/// A call manager's lease as a mixer shows it.
fn lease(v: &Value) -> Option<CallManagerStatus> {
    let n = |f: &str| v.get(f).and_then(Value::as_u64);
    let ms = |f: &str| n(f).map(Duration::from_millis);
    Some(CallManagerStatus {
        id: v.get("id")?.as_str()?.to_string(),
        interval: ms("interval_ms")?,
        lease_misses: u32::try_from(n("lease_misses")?).ok()?,
        up: v.get("up")?.as_bool()?,
        since_last_heartbeat: ms("last_heartbeat_ms_ago")?,
        expires_in: ms("expires_in_ms")?,
        conferences: usize::try_from(n("conferences")?).ok()?,
        orphaned_conferences: usize::try_from(n("orphaned_conferences")?).ok()?,
    })
}

/// A mixer's `POST /v1/conferences` body for `spec`.
fn conference_body(id: &str, spec: &NewConference) -> Value {
    let mut v = json!({
        "id": id,
        "ptime_ms": spec.ptime.millis(),
        "max_participants": spec.max_participants,
        "active_speakers": match spec.active_speakers {
            ActiveSpeakers::All => json!("all"),
            ActiveSpeakers::Loudest(n) => json!(n),
        },
    });
    if let Some(owner) = &spec.owner {
        v["owner"] = owner.clone().into();
    }
    if let Timing::Input { delay_frames } = spec.timing {
        v["timing"] = "input".into();
        v["input_delay_ms"] = (u32::from(delay_frames) * spec.ptime.millis()).into();
    }
    v
}

/// A mixer's `POST /v1/conferences/{id}/participants` body for `spec`.
fn participant_body(spec: &NewParticipant) -> Value {
    json!({
        "remote": spec.remote.to_string(),
        "codec": codec_name(spec.codec),
        "telephone_event_pt": spec.telephone_event_pt,
        "rtcp": spec.rtcp,
        "muted": spec.settings.muted,
        "deaf": spec.settings.deaf,
        "gain_db": spec.settings.gain_db,
    })
}

/// The method, path and body of `call` on a mixer's API.
fn encode(call: &PeerCall) -> (Method, String, Option<Value>) {
    let conf = |id: &str| format!("/v1/conferences/{id}");
    let part = |id: &str, pid: &str| format!("/v1/conferences/{id}/participants/{pid}");
    match call {
        PeerCall::Status => (Method::GET, "/v1/status".into(), None),
        PeerCall::CreateConference { id, spec } => (
            Method::POST,
            "/v1/conferences".into(),
            Some(conference_body(id, spec)),
        ),
        PeerCall::DeleteConference { id } => (Method::DELETE, conf(id), None),
        PeerCall::AddParticipant { conf: id, spec } => (
            Method::POST,
            format!("{}/participants", conf(id)),
            Some(participant_body(spec)),
        ),
        PeerCall::PatchParticipant {
            conf: id,
            part: pid,
            patch,
        } => {
            let mut body = serde_json::Map::new();
            for (field, v) in [
                ("muted", patch.muted.map(Value::from)),
                ("deaf", patch.deaf.map(Value::from)),
                ("gain_db", patch.gain_db.map(Value::from)),
                ("hold", patch.hold.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body.insert(field.into(), v);
                }
            }
            (Method::PATCH, part(id, pid), Some(Value::Object(body)))
        }
        PeerCall::DeleteParticipant {
            conf: id,
            part: pid,
        } => (Method::DELETE, part(id, pid), None),
        PeerCall::SetRtpBasis {
            conf: id,
            part: pid,
            basis,
        } => (
            Method::PUT,
            format!("{}/rtp", part(id, pid)),
            Some(json!({
                "ssrc": basis.ssrc,
                "frame_timestamp": basis.frame_timestamp,
                "sequence": basis.sequence,
                "timestamp": basis.timestamp,
            })),
        ),
        PeerCall::PlayPrompt {
            conf: id,
            prompt,
            participant,
        } => {
            let mut body = json!({ "prompt": prompt });
            if let Some(p) = participant {
                body["participant"] = p.clone().into();
            }
            (Method::POST, format!("{}/prompts", conf(id)), Some(body))
        }
        PeerCall::Adopt { conf: id, owner } => (
            Method::POST,
            format!("{}/adopt", conf(id)),
            Some(json!({ "owner": owner })),
        ),
        PeerCall::Heartbeat { cm, interval_ms } => (
            Method::POST,
            format!("/v1/call-managers/{}/heartbeat", path_segment(cm)),
            Some(json!({ "interval_ms": interval_ms })),
        ),
    }
}

/// `s` as one URL path segment: every byte but RFC 3986's unreserved ones
/// percent-encoded (a call manager's name may hold `/`, `?`, `#`, spaces, ...).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn call_manager_names_are_one_path_segment() {
        assert_eq!(path_segment("cm-1.a_b~"), "cm-1.a_b~");
        assert_eq!(path_segment("a/b?c#d e+"), "a%2Fb%3Fc%23d%20e%2B");
        assert_eq!(path_segment("ć"), "%C4%87");
    }
}
