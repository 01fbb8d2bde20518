//! `POST /v1/conferences/{id}/dial`: tutti calls a SIP user into a conference. The
//! participant is reserved at once (202, `dial.state` `calling`) and joins when the
//! call is answered; the SIP user agent ([`crate::sip::ua::Ua::dial`]) makes the call.

use super::conferences::participant_view;
use super::error::{error, HttpError};
use super::extract::{JsonBody, PathParams};
use crate::sip::ua::{DialError, DialRequest};
use crate::ControlState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::time::Duration;
use tutti_control_core::json::given;
use tutti_control_core::sip::dial::DEFAULT_TIMEOUT;
use tutti_control_core::sip::DialOffer;
use tutti_dataplane::codec::CodecKind;

/// The longest `timeout_ms` we take (10 minutes).
pub const MAX_DIAL_TIMEOUT_MS: u64 = 600_000;

/// `POST /v1/conferences/{id}/dial` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    to: String,
    #[serde(default, deserialize_with = "given")]
    from: Option<String>,
    #[serde(default, deserialize_with = "given")]
    codecs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "given")]
    timeout_ms: Option<u64>,
}

impl DialBody {
    /// The request, or why it cannot be dialled (422).
    fn validate(self) -> Result<DialRequest, String> {
        let offer = match self.codecs {
            None => DialOffer {
                codecs: vec![CodecKind::Pcmu, CodecKind::Pcma],
                telephone_event: true,
            },
            Some(names) => {
                let mut offer = DialOffer {
                    codecs: Vec::new(),
                    telephone_event: false,
                };
                for n in &names {
                    match n.to_ascii_lowercase().as_str() {
                        "pcmu" if !offer.codecs.contains(&CodecKind::Pcmu) => {
                            offer.codecs.push(CodecKind::Pcmu)
                        }
                        "pcma" if !offer.codecs.contains(&CodecKind::Pcma) => {
                            offer.codecs.push(CodecKind::Pcma)
                        }
                        "telephone-event" => offer.telephone_event = true,
                        _ => {
                            return Err(format!(
                            "codecs: {n:?} is not one of PCMU, PCMA, telephone-event (each once)"
                        ))
                        }
                    }
                }
                if offer.codecs.is_empty() {
                    return Err("codecs: at least one of PCMU, PCMA is needed".into());
                }
                offer
            }
        };
        let timeout = match self.timeout_ms {
            None => DEFAULT_TIMEOUT,
            Some(ms) if (1..=MAX_DIAL_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
            Some(ms) => {
                return Err(format!(
                    "timeout_ms: {ms} is not between 1 and {MAX_DIAL_TIMEOUT_MS}"
                ))
            }
        };
        Ok(DialRequest {
            to: self.to,
            from: self.from,
            offer,
            timeout,
        })
    }
}

/// `POST /v1/conferences/{id}/dial`.
pub(crate) async fn dial(
    State(s): State<ControlState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<DialBody>,
) -> Result<Response, HttpError> {
    let req = match body.validate() {
        Ok(r) => r,
        Err(why) => return Ok(error(StatusCode::UNPROCESSABLE_ENTITY, why)),
    };
    s.control()
        .sessions()
        .conference(&id)
        .map_err(|e| HttpError::Control(tutti_control_core::ControlError::Session(e)))?;
    let Some(ua) = s.sip_ua.get().and_then(std::sync::Weak::upgrade) else {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SIP is not configured (no sip: section)",
        ));
    };
    let pid = match ua.dial(&id, req).await {
        Ok(pid) => pid,
        Err(DialError::Invalid(why)) => return Ok(error(StatusCode::UNPROCESSABLE_ENTITY, why)),
        Err(DialError::Unavailable(why)) => return Ok(error(StatusCode::SERVICE_UNAVAILABLE, why)),
        Err(DialError::Control(e)) => return Err(e.into()),
    };
    let view = participant_view(&s.control(), &id, &pid)?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[cfg(test)]
mod tests {
    use crate::sip::ua::Ua;
    use crate::sip::{Listen, SipConfig, SipMetrics};
    use crate::test_support::*;
    use axum::http::{Method, StatusCode};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::UdpSocket;
    use tutti_dataplane::conference::MediaOp;

    async fn conference(h: &Harness) {
        let (code, _) = json(
            &h.state,
            Method::POST,
            "/v1/conferences",
            Some(r#"{"id": "c"}"#),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dial_requests_are_checked_before_anything_is_reserved() {
        let h = harness(vec![media_core(10)]);
        conference(&h).await;
        let dial = |body: &'static str| {
            let st = h.state.clone();
            async move { json(&st, Method::POST, "/v1/conferences/c/dial", Some(body)).await }
        };
        for (body, want) in [
            (
                r#"{"to": "sip:a@127.0.0.1:5070"}"#,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                r#"{"to": "sip:a@127.0.0.1", "codecs": ["G722"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"to": "sip:a@127.0.0.1", "codecs": ["telephone-event"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"to": "sip:a@127.0.0.1", "codecs": ["PCMU", "pcmu"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"to": "sip:a@127.0.0.1", "timeout_ms": 0}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                r#"{"to": "sip:a@127.0.0.1", "ring": 1}"#,
                StatusCode::BAD_REQUEST,
            ),
            (r#"{}"#, StatusCode::BAD_REQUEST),
        ] {
            let (code, e) = dial(body).await;
            assert_eq!(code, want, "{body}: {e}");
            assert!(e["error"].is_string(), "{e}");
        }
        let (code, _) = json(
            &h.state,
            Method::POST,
            "/v1/conferences/nope/dial",
            Some(r#"{"to": "sip:a@127.0.0.1"}"#),
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let cap = h.state.control().sessions().capacity();
        assert_eq!(cap.used, 0, "nothing reserved");
    }

    /// The callee's side: read one message (within 5 s).
    async fn recv(s: &UdpSocket) -> (String, std::net::SocketAddr) {
        let mut buf = vec![0u8; 65535];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
            .await
            .expect("a message from tutti")
            .unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    }

    /// A response to `req` with `status`, the callee's tag, its Contact (where the
    /// To URI says it is), and `body` (SDP) if any.
    fn reply(req: &str, status: &str, body: &str) -> String {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for l in req.split("\r\n").take_while(|l| !l.is_empty()) {
            let name = l.split(':').next().unwrap_or("");
            match name {
                "Via" | "From" | "Call-ID" | "CSeq" => out.push_str(&format!("{l}\r\n")),
                "To" => {
                    out.push_str(&format!("{l};tag=callee\r\n"));
                    let uri = l.split(['<', '>']).nth(1).unwrap_or("");
                    out.push_str(&format!("Contact: <{uri}>\r\n"));
                }
                _ => {}
            }
        }
        if body.is_empty() {
            out.push_str("Content-Length: 0\r\n\r\n");
        } else {
            out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        out
    }

    async fn sip(h: &Harness) -> Arc<Ua> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let cfg = SipConfig {
            listen: vec![format!("udp:{addr}").parse::<Listen>().unwrap()],
            domain: None,
            trusted: vec![],
            max_calls: 1,
            invite_rate: 10,
            session_expires: Duration::from_secs(1800),
            auto_create: false,
            auth: None,
            applications: Default::default(),
        };
        let ua = Ua::new(h.state.clone(), cfg, Arc::new(SipMetrics::default()));
        ua.add_udp_socket(socket.clone());
        let _ = h.state.sip_ua.set(Arc::downgrade(&ua));
        tokio::spawn(crate::sip::transport::serve(
            crate::sip::transport::Bound::Udp(socket),
            ua.clone(),
        ));
        tokio::spawn(ua.clone().drive_dials());
        tokio::spawn(ua.clone().watch_events());
        // Let the reactor see the new socket writable (sends are try_send_to).
        tokio::time::sleep(Duration::from_millis(20)).await;
        ua
    }

    fn adds(h: &Harness) -> usize {
        h.media
            .ops()
            .iter()
            .filter(|(_, op)| matches!(op, MediaOp::AddParticipant(_)))
            .count()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dialled_participant_reaches_the_dataplane_only_when_answered() {
        let h = harness(vec![media_core(10)]);
        conference(&h).await;
        let _ua = sip(&h).await;
        let callee = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = format!("sip:alice@{}", callee.local_addr().unwrap());
        let body = format!(r#"{{"to": "{to}", "codecs": ["PCMA"]}}"#);
        let (code, p) = json(
            &h.state,
            Method::POST,
            "/v1/conferences/c/dial",
            Some(&body),
        )
        .await;
        assert_eq!(code, StatusCode::ACCEPTED, "{p}");
        assert_eq!(p["dial"], serde_json::json!({"state": "calling"}));
        assert_eq!(p["sip"]["to"], to.as_str());
        let pid = p["id"].as_str().unwrap().to_string();
        let uri = format!("/v1/conferences/c/participants/{pid}");
        assert_eq!(h.state.control().sessions().capacity().used, 1, "reserved");
        // max_calls is 1: the dial counts.
        let (code, _) = json(
            &h.state,
            Method::POST,
            "/v1/conferences/c/dial",
            Some(&body),
        )
        .await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);

        let (invite, tutti) = recv(&callee).await;
        assert!(
            invite.starts_with(&format!("INVITE {to} SIP/2.0\r\n")),
            "{invite}"
        );
        assert!(invite.contains("m=audio 20000 RTP/AVP 8\r\n"), "{invite}");
        assert_eq!(adds(&h), 0, "nothing on the dataplane while calling");
        callee
            .send_to(reply(&invite, "180 Ringing", "").as_bytes(), tutti)
            .await
            .unwrap();
        let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\n";
        let ok = reply(&invite, "200 OK", answer);
        callee.send_to(ok.as_bytes(), tutti).await.unwrap();
        let (ack, _) = recv(&callee).await;
        assert!(ack.starts_with(&format!("ACK {to} SIP/2.0\r\n")), "{ack}");
        let (_, p) = json(&h.state, Method::GET, &uri, None).await;
        assert_eq!(p["dial"]["state"], "answered", "{p}");
        assert_eq!(
            (p["remote"].as_str(), p["codec"].as_str()),
            (Some("127.0.0.1:7000"), Some("pcma"))
        );
        assert_eq!(adds(&h), 1);
        // A retransmitted 200 is ACKed again.
        callee.send_to(ok.as_bytes(), tutti).await.unwrap();
        assert_eq!(recv(&callee).await.0, ack);

        // Deleted: BYE to the remote target, answered.
        let (code, _) = send(&h.state, Method::DELETE, &uri, None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (bye, _) = recv(&callee).await;
        assert!(bye.starts_with(&format!("BYE {to} SIP/2.0\r\n")), "{bye}");
        assert!(bye.contains("CSeq: 2 BYE\r\n"), "{bye}");
        callee
            .send_to(reply(&bye, "200 OK", "").as_bytes(), tutti)
            .await
            .unwrap();
        assert_eq!(h.state.control().sessions().capacity().used, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_dial_frees_its_port_and_stays_visible_for_five_minutes() {
        let h = harness(vec![media_core(10)]);
        conference(&h).await;
        let _ua = sip(&h).await;
        let callee = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = format!("sip:bob@{}", callee.local_addr().unwrap());
        let body = format!(r#"{{"to": "{to}"}}"#);
        let (_, p) = json(
            &h.state,
            Method::POST,
            "/v1/conferences/c/dial",
            Some(&body),
        )
        .await;
        let uri = format!(
            "/v1/conferences/c/participants/{}",
            p["id"].as_str().unwrap()
        );
        let (invite, tutti) = recv(&callee).await;
        assert!(
            invite.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"),
            "{invite}"
        );
        callee
            .send_to(reply(&invite, "603 Decline", "").as_bytes(), tutti)
            .await
            .unwrap();
        let (ack, _) = recv(&callee).await;
        assert!(ack.starts_with(&format!("ACK {to} SIP/2.0\r\n")), "{ack}");
        let (code, p) = json(&h.state, Method::GET, &uri, None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            p["dial"],
            serde_json::json!({"state": "failed", "reason": "rejected", "code": 603})
        );
        assert_eq!(
            h.state.control().sessions().capacity().used,
            0,
            "port freed"
        );
        let (_, conf) = json(&h.state, Method::GET, "/v1/conferences/c", None).await;
        assert_eq!(conf["participant_count"], 0);
        assert_eq!(adds(&h), 0);
        h.clock.advance(Duration::from_secs(301));
        assert_eq!(
            get(&h.state, &uri).await.0,
            StatusCode::NOT_FOUND,
            "expired"
        );
    }
}
