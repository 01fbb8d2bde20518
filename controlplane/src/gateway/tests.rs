//! The gateway API against two real mixer APIs (this crate's router, served over TCP on
//! loopback, each over a recording dataplane), with the relays' events fed by hand and
//! the handovers' timers run in virtual time: the test moves the gateway's clock and
//! sends the peer requests the control core queued ([`ControlState::drive_peers`]).

use super::peer::MixerAccess;
use super::{Gateway, GatewayConfig, HandoverSettings};
use crate::http as api;
use crate::test_support::{harness, json, media_core, send_via, Harness};
use axum::http::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tutti_dataplane::conference::{ConfKey, PartKey};
use tutti_dataplane::relay::splice::{RtpHead, SpliceEvent};
use tutti_dataplane::relay::{RelayEvent, RelayEventKind};
use tutti_dataplane::wire::rewrite::RtpRewrite;

/// A mixer: the mixer API over a recording dataplane with room for `capacity`, on TCP.
async fn mixer(capacity: u32) -> (Harness, String) {
    guarded_mixer(capacity, api::Access::open()).await
}

/// [`mixer`] whose API lets in whom `access` does.
async fn guarded_mixer(capacity: u32, access: api::Access) -> (Harness, String) {
    let h = harness(vec![media_core(capacity)]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = api::router(h.state.clone(), access);
    tokio::spawn(async move { axum::serve(listener, router).await });
    (h, url)
}

fn gateway(mixers: &[&str], validation_timeout: Duration) -> Harness {
    gateway_with(mixers, validation_timeout, MixerAccess::default())
}

/// [`gateway`] reaching its mixers with `access`.
fn gateway_with(mixers: &[&str], validation_timeout: Duration, access: MixerAccess) -> Harness {
    let mut h = harness(vec![media_core(100)]);
    let g = Gateway::new(
        GatewayConfig {
            mixers: mixers.iter().map(|m| m.to_string()).collect(),
            handover: HandoverSettings {
                validation_timeout,
                mixer_timeout: Duration::from_secs(2),
                ..HandoverSettings::default()
            },
        },
        access,
    )
    .unwrap();
    h.state = h.state.with_gateway(g);
    h
}

async fn gw(h: &Harness, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let (code, text) = send_via(
        api::gateway_router(h.state.clone(), api::Access::open()),
        method,
        uri,
        body,
    )
    .await;
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (code, v)
}

fn relays(h: &Harness) -> Vec<String> {
    h.media.relays.lock().unwrap().clone()
}

/// Send the peer requests the gateway's core queued (and those their answers lead
/// to) to the mixers.
async fn settle(g: &Harness) {
    g.state.drive_peers().await;
    assert_eq!(g.state.control().peer_requests_in_flight(), 0);
}

/// Move the gateway's clock by `d` and run the timers due.
async fn advance(g: &Harness, d: Duration) {
    g.clock.advance(d);
    g.state.control().handle_timeout();
    settle(g).await;
}

fn count(g: &Harness, what: &str) -> usize {
    relays(g).iter().filter(|r| r.starts_with(what)).count()
}

/// Ask for a handover of `c1` to `to`; the relays have then been told to start
/// duplicating `starts` times in all.
async fn hand_over(g: &Harness, to: &str, starts: usize) {
    let body = format!(r#"{{"to":"{to}"}}"#);
    let uri = "/v1/conferences/c1/handover";
    let (code, v) = gw(g, Method::POST, uri, Some(&body)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    settle(g).await;
    assert_eq!(count(g, "start"), starts, "{:?}", relays(g));
}

async fn handover_state(h: &Harness, id: &str) -> Value {
    gw(h, Method::GET, &format!("/v1/conferences/{id}"), None)
        .await
        .1["handover"]
        .clone()
}

#[tokio::test(flavor = "current_thread")]
async fn the_gateway_sends_its_mixer_token_on_every_call() {
    let (m, url) = guarded_mixer(10, api::Access::bearer("mixer-secret", false)).await;
    let token = |t: &str| MixerAccess {
        token: Some(t.to_string()),
        ..MixerAccess::default()
    };
    // Without the mixer's token, or with a wrong one, the mixer refuses the gateway:
    // that is the gateway's failure (502), not the client's (401).
    for access in [MixerAccess::default(), token("wrong")] {
        let g = gateway_with(&[&url], Duration::from_secs(2), access);
        let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c1"}"#)).await;
        assert_eq!(code, StatusCode::BAD_GATEWAY, "{v}");
        assert!(v["error"].as_str().unwrap().contains("401"), "{v}");
    }
    let g = gateway_with(&[&url], Duration::from_secs(2), token("mixer-secret"));
    // Its document names the only mixers a request may name, and a mixer's failure.
    let (_, doc) = gw(&g, Method::GET, "/openapi.json", None).await;
    let create = &doc["components"]["schemas"]["ConferenceCreate"]["properties"];
    assert_eq!(
        create["mixer"]["enum"],
        serde_json::json!([url]),
        "{create}"
    );
    let post = &doc["paths"]["/v1/conferences"]["post"]["responses"];
    assert!(post.get("502").is_some(), "{post}");
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c1"}"#)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let add = r#"{"remote":"198.18.0.2:4000","codec":"pcmu"}"#;
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/conferences/c1/participants",
        Some(add),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let hb = r#"{"interval_ms":1000}"#;
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/call-managers/cm1/heartbeat",
        Some(hb),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    settle(&g).await;
    let (_, on_m) = json(&m.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(on_m["participant_count"], 1, "{on_m}");
    let (_, cms) = json(&m.state, Method::GET, "/v1/call-managers", None).await;
    assert_eq!(cms["call_managers"][0]["id"], "cm1", "{cms}");
}

/// A self-signed certificate for 127.0.0.1 written to PEM files in a fresh directory:
/// (directory, certificate file, key file).
fn self_signed() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("tutti-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (dir, cert, key)
}

#[tokio::test(flavor = "current_thread")]
async fn the_gateway_reaches_an_https_mixer_that_its_mixer_ca_signs() {
    let (dir, cert, key) = self_signed();
    let m = harness(vec![media_core(10)]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = crate::http::tls::acceptor("control.tls", &cert, &key).unwrap();
    let router = api::router(m.state.clone(), api::Access::open());
    tokio::spawn(api::serve(
        listener,
        Some(acceptor),
        router,
        m.state.events.clone(),
        std::future::pending(),
    ));
    let url = format!("https://{addr}");
    // Trusting the mixer's certificate: the conference is made over HTTPS.
    let roots = crate::http::tls::certificates("gateway.mixer_ca", &cert).unwrap();
    let access = MixerAccess {
        roots,
        ..MixerAccess::default()
    };
    let g = gateway_with(&[&url], Duration::from_secs(2), access);
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c1"}"#)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, _) = json(&m.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::OK);
    // Trusting nothing: the handshake fails and so does the request.
    let g = gateway_with(&[&url], Duration::from_secs(2), MixerAccess::default());
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c2"}"#)).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{v}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = format!("http://{addr}");
    let g = gateway_with(&[&plain], Duration::from_secs(2), MixerAccess::default());
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c3"}"#)).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{v}");
    // Files that are not what they should be are named in the error.
    let e = crate::http::tls::acceptor("control.tls", &key, &key)
        .err()
        .unwrap();
    assert!(
        e.contains("control.tls.cert") && e.contains("key.pem"),
        "{e}"
    );
    let e = crate::http::tls::acceptor("control.tls", &cert, &cert)
        .err()
        .unwrap();
    assert!(
        e.contains("control.tls.key") && e.contains("cert.pem"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn conferences_go_to_the_freest_mixer_and_participants_are_relayed() {
    let (a, url_a) = mixer(10).await;
    let (b, url_b) = mixer(20).await;
    let g = gateway(&[&url_a, &url_b], Duration::from_secs(2));

    let (code, c) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c1"}"#)).await;
    assert_eq!(code, StatusCode::CREATED, "{c}");
    assert_eq!(
        c["mixer"],
        url_b.as_str(),
        "the mixer with more free capacity"
    );
    assert!(c["handover"].is_null());
    let (_, on_b) = json(&b.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(on_b["timing"], "input", "{on_b}");

    let (code, p) = gw(
        &g,
        Method::POST,
        "/v1/conferences/c1/participants",
        Some(r#"{"remote":"198.18.0.2:4000","codec":"pcmu"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    assert_eq!(p["remote"], "198.18.0.2:4000");
    let local: std::net::SocketAddrV4 = p["local"].as_str().unwrap().parse().unwrap();
    assert_eq!(local.ip().to_string(), "198.18.0.1");
    let (_, parts) = json(
        &b.state,
        Method::GET,
        "/v1/conferences/c1/participants",
        None,
    )
    .await;
    let remote_on_b: std::net::SocketAddrV4 = parts["participants"][0]["remote"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        remote_on_b.ip().to_string(),
        "198.18.0.1",
        "the mixer sends to us"
    );
    assert_ne!(
        remote_on_b.port(),
        local.port(),
        "our port towards the mixers"
    );
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(relays(&g), vec![format!("add {pid}")]);

    // Errors, each with a JSON message.
    for (body, status) in [
        (r#"{"mixer":"ftp://x"}"#, StatusCode::BAD_REQUEST),
        (r#"{"timing":"arrival"}"#, StatusCode::BAD_REQUEST),
        (r#"{"ptime_ms":25}"#, StatusCode::BAD_REQUEST),
        (r#"{"id":"c1"}"#, StatusCode::CONFLICT),
        (r#"{"id":"bad id!"}"#, StatusCode::BAD_REQUEST),
        (r#"{"max_participants":0}"#, StatusCode::BAD_REQUEST),
        // Only configured mixers are called.
        (r#"{"mixer":"http://127.0.0.1:1"}"#, StatusCode::BAD_REQUEST),
        ("[1]", StatusCode::BAD_REQUEST),
    ] {
        let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(body)).await;
        assert_eq!(code, status, "{body}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {v}"
        );
    }
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/conferences/c1/participants",
        Some(r#"{"remote":"198.18.0.3:4000","codec":"opus"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the mixer's refusal: {v}");
    assert!(v["error"].as_str().unwrap().contains("opus"), "{v}");
    let (code, _) = gw(
        &g,
        Method::POST,
        "/v1/conferences/zz/participants",
        Some(r#"{"remote":"198.18.0.3:4000","codec":"pcmu"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Call-manager heartbeats go to every mixer; adoption to the hosting one.
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/call-managers/cm1/heartbeat",
        Some(r#"{"interval_ms":1000}"#),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    for m in [&a, &b] {
        let (_, cms) = json(&m.state, Method::GET, "/v1/call-managers", None).await;
        assert!(cms.to_string().contains("cm1"), "{cms}");
    }
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/call-managers/cm1/heartbeat",
        Some(r#"{"interval_ms":1}"#),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the mixers' refusal: {v}");
    let adopt = r#"{"owner":"cm2"}"#;
    let (code, v) = gw(&g, Method::POST, "/v1/conferences/c1/adopt", Some(adopt)).await;
    assert_eq!(
        code,
        StatusCode::CONFLICT,
        "the mixer's: cm2 holds no live lease: {v}"
    );
    let hb = r#"{"interval_ms":1000}"#;
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/call-managers/cm2/heartbeat",
        Some(hb),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/conferences/c1/adopt",
        Some(r#"{"owner":"cm2"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (_, on_b) = json(&b.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(on_b["owner"], "cm2");

    let (_, list) = gw(&g, Method::GET, "/v1/conferences", None).await;
    assert_eq!(list["conferences"].as_array().unwrap().len(), 1);
    let (code, _) = gw(
        &g,
        Method::DELETE,
        &format!("/v1/conferences/c1/participants/{pid}"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(relays(&g).last().unwrap(), &format!("remove {pid}"));
    let (_, parts) = json(
        &b.state,
        Method::GET,
        "/v1/conferences/c1/participants",
        None,
    )
    .await;
    assert_eq!(parts["participants"].as_array().unwrap().len(), 0);
    let (code, _) = gw(&g, Method::DELETE, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = json(&b.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "deleted on the mixer");
    drop(a);
}

/// The gateway's keys of conference `id` and its participants.
fn keys(g: &Harness, id: &str) -> (ConfKey, Vec<PartKey>) {
    let core = g.state.control();
    let c = core.gateway().unwrap().conference(id).unwrap();
    (c.key, c.parts.values().map(|p| p.key).collect())
}

fn feed(g: &Harness, conf: ConfKey, part: PartKey, kind: RelayEventKind) {
    g.state.relay_event(RelayEvent {
        conf,
        part,
        at: g.state.clock.now(),
        kind,
    });
}

async fn conference_on(g: &Harness, mixer: &str, parts: usize) {
    let body = format!(r#"{{"id":"c1","mixer":"{mixer}"}}"#);
    assert_eq!(
        gw(g, Method::POST, "/v1/conferences", Some(&body)).await.0,
        StatusCode::CREATED
    );
    for i in 0..parts {
        let body = format!(
            r#"{{"remote":"198.18.0.2:{}","codec":"pcma"}}"#,
            4000 + 2 * i
        );
        let (code, v) = gw(
            g,
            Method::POST,
            "/v1/conferences/c1/participants",
            Some(&body),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
}

fn started(seq: u16) -> RelayEventKind {
    let head = RtpHead {
        ssrc: 0xAA,
        seq,
        ts: 160_000,
        marker: false,
    };
    RelayEventKind::Started {
        last: Some((head, 160_000)),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_handover_runs_its_steps_and_ends_with_the_conference_only_on_the_new_mixer() {
    let (a, url_a) = mixer(10).await;
    let (b, url_b) = mixer(10).await;
    let g = gateway(&[&url_a, &url_b], Duration::from_secs(2));
    conference_on(&g, &url_a, 2).await;
    let (conf, parts) = keys(&g, "c1");

    let (code, v) = gw(
        &g,
        Method::POST,
        "/v1/conferences/c1/handover",
        Some(&format!(r#"{{"to":"{url_b}","mode":"instruct"}}"#)),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["handover"]["state"], "creating");
    let (code, v) = gw(&g, Method::POST, "/v1/conferences/c1/handover", Some("{}")).await;
    assert_eq!(code, StatusCode::CONFLICT, "one at a time: {v}");
    let (code, _) = gw(&g, Method::DELETE, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::CONFLICT, "not while moving");

    settle(&g).await;
    assert_eq!(count(&g, "start"), 2, "duplication started");
    let (_, on_b) = json(
        &b.state,
        Method::GET,
        "/v1/conferences/c1/participants",
        None,
    )
    .await;
    assert_eq!(
        on_b["participants"].as_array().unwrap().len(),
        2,
        "created on B"
    );
    assert_eq!(handover_state(&g, "c1").await["state"], "duplicating");
    advance(&g, Duration::from_millis(20)).await;
    for (i, p) in parts.iter().enumerate() {
        feed(&g, conf, *p, started(100 + i as u16));
    }
    // Instruct mode: B is told the SSRC/sequence/timestamp the clients get.
    settle(&g).await;
    let instructed = b
        .media
        .ops()
        .iter()
        .filter(|(_, op)| format!("{op:?}").contains("SetRtpBasis"))
        .count();
    assert_eq!(instructed, 2, "B instructed");
    let ops = format!("{:?}", b.media.ops());
    assert!(
        ops.contains("ssrc: 170") && ops.contains("sequence: 101"),
        "{ops}"
    );
    assert_eq!(handover_state(&g, "c1").await["state"], "validating");
    for p in &parts {
        let e = SpliceEvent::Validated {
            key: 160_000,
            rewrite: RtpRewrite::default(),
            need_ns: 4_000_000,
        };
        feed(&g, conf, *p, RelayEventKind::Splice(e));
    }
    assert_eq!(count(&g, "commit"), 2, "committed");
    assert_eq!(handover_state(&g, "c1").await["state"], "cutting_over");
    advance(&g, Duration::from_millis(20)).await;
    for p in &parts {
        let e = SpliceEvent::CutOver {
            key: 160_160,
            seq: 102,
            active_delay: Duration::from_millis(4),
            candidate_delay: Duration::ZERO,
            at: g.state.clock.now(),
        };
        feed(&g, conf, *p, RelayEventKind::Splice(e));
    }
    settle(&g).await;
    assert_eq!(handover_state(&g, "c1").await["state"], "completed");
    let (_, c) = gw(&g, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(c["mixer"], url_b.as_str());
    let h = &c["handover"];
    assert_eq!(h["mode"], "instruct");
    assert_eq!(h["extra_delay_ms"], 4.0);
    assert_eq!(h["cutover_ms"], 40.0, "on the test's clock");
    assert_eq!(
        h["participants"][format!("p{}", parts[0].0)]["cut_seq"],
        102
    );
    assert!(h["reason"].is_null(), "{h}");
    assert_eq!(
        relays(&g).iter().filter(|r| r.starts_with("end")).count(),
        2
    );
    let (code, _) = json(&a.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "deleted on A");
    let (_, text) = send_via(
        api::gateway_router(g.state.clone(), api::Access::open()),
        Method::GET,
        "/metrics",
        None,
    )
    .await;
    assert!(
        text.contains("tutti_handovers_total{result=\"completed\"} 1"),
        "{text}"
    );
    assert!(text.contains("tutti_handovers_total{result=\"aborted\"} 0"));
    assert!(text.contains("tutti_handover_duration_seconds_count 1"));
    // Participant calls now go to B.
    let pid = format!("p{}", parts[0].0);
    let (code, v) = gw(
        &g,
        Method::PATCH,
        &format!("/v1/conferences/c1/participants/{pid}"),
        Some(r#"{"muted":true}"#),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["muted"], true);
}

#[tokio::test(flavor = "current_thread")]
async fn failed_handovers_leave_the_conference_where_it_was() {
    let (a, url_a) = mixer(10).await;
    let (b, url_b) = mixer(10).await;
    // A third configured mixer that is not there.
    let g = gateway(
        &[&url_a, &url_b, "http://127.0.0.1:1"],
        Duration::from_millis(300),
    );
    conference_on(&g, &url_a, 1).await;
    let (conf, parts) = keys(&g, "c1");
    let aborted = |reason: &str| {
        let reason = reason.to_string();
        let g = &g;
        async move {
            settle(g).await;
            let h = handover_state(g, "c1").await;
            assert_eq!(h["state"], "aborted", "{h}");
            assert!(h["reason"].as_str().unwrap().contains(&reason), "{h}");
        }
    };

    // Not a configured mixer: refused, nothing is called.
    let to = r#"{"to":"http://198.18.0.99:8080"}"#;
    let (code, v) = gw(&g, Method::POST, "/v1/conferences/c1/handover", Some(to)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("gateway.mixers"),
        "{v}"
    );

    // B unreachable.
    let (code, _) = gw(
        &g,
        Method::POST,
        "/v1/conferences/c1/handover",
        Some(r#"{"to":"http://127.0.0.1:1"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    aborted("unreachable").await;
    assert!(!relays(&g).iter().any(|r| r.starts_with("start")));

    // Validation never completes: aborted at the timeout, B's copy deleted.
    hand_over(&g, &url_b, 1).await;
    feed(&g, conf, parts[0], started(5));
    advance(&g, Duration::from_millis(299)).await;
    assert_eq!(handover_state(&g, "c1").await["state"], "validating");
    advance(&g, Duration::from_millis(1)).await;
    aborted("validation timed out").await;
    assert!(relays(&g).iter().any(|r| r.starts_with("end")));
    let (code, _) = json(&b.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "B's copy deleted");
    let (code, _) = json(&a.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::OK, "still on A");

    // A splice that cannot line the streams up.
    hand_over(&g, &url_b, 2).await;
    feed(&g, conf, parts[0], started(5));
    let e = SpliceEvent::Failed {
        reason: tutti_dataplane::relay::splice::FailReason::OutOfRange {
            need_ns: 80_000_000,
        },
    };
    feed(&g, conf, parts[0], RelayEventKind::Splice(e));
    aborted("80.0 ms after").await;

    // Bad requests.
    for (body, status) in [
        (
            r#"{"mode":"teleport"}"#.to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (format!(r#"{{"to":"{url_a}"}}"#), StatusCode::BAD_REQUEST),
        (r#"{"to":"mixer-b"}"#.to_string(), StatusCode::BAD_REQUEST),
        (r#"{"when":"now"}"#.to_string(), StatusCode::BAD_REQUEST),
    ] {
        let (code, v) = gw(&g, Method::POST, "/v1/conferences/c1/handover", Some(&body)).await;
        assert_eq!(code, status, "{body}: {v}");
    }
    let (code, _) = gw(
        &g,
        Method::POST,
        "/v1/conferences/nope/handover",
        Some("{}"),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, c) = gw(&g, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(c["mixer"], url_a.as_str());
    let (_, text) = send_via(
        api::gateway_router(g.state.clone(), api::Access::open()),
        Method::GET,
        "/metrics",
        None,
    )
    .await;
    assert!(
        text.contains("tutti_handovers_total{result=\"aborted\"} 3"),
        "{text}"
    );
}

/// Run conference `conf`'s handover (rewrite mode, started by the caller) through its
/// relay events to the end.
async fn run_handover(g: &Harness, conf: ConfKey, parts: &[PartKey]) {
    advance(g, Duration::from_millis(20)).await;
    for (i, p) in parts.iter().enumerate() {
        feed(g, conf, *p, started(100 + i as u16));
    }
    settle(g).await;
    for p in parts {
        let e = SpliceEvent::Validated {
            key: 160_000,
            rewrite: RtpRewrite::default(),
            need_ns: 4_000_000,
        };
        feed(g, conf, *p, RelayEventKind::Splice(e));
    }
    advance(g, Duration::from_millis(20)).await;
    for p in parts {
        let e = SpliceEvent::CutOver {
            key: 160_160,
            seq: 102,
            active_delay: Duration::from_millis(4),
            candidate_delay: Duration::ZERO,
            at: g.state.clock.now(),
        };
        feed(g, conf, *p, RelayEventKind::Splice(e));
    }
    settle(g).await;
}

#[tokio::test(flavor = "current_thread")]
async fn draining_a_mixer_hands_its_conferences_over_and_places_nothing_there() {
    use futures_util::StreamExt;
    let (a, url_a) = mixer(10).await;
    // B has less room than A: without the drain, placement would pick A.
    let (_b, url_b) = mixer(4).await;
    let g = gateway(&[&url_a, &url_b], Duration::from_secs(2));
    let mut events = Box::pin(g.state.events.subscribe());
    conference_on(&g, &url_a, 2).await;
    let (conf, parts) = keys(&g, "c1");
    let drain = |m: &str| format!(r#"{{"mixer":"{m}"}}"#);
    let (code, v) = gw(&g, Method::POST, "/v1/mixers/drain", Some(&drain(&url_a))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        (&v["draining"], &v["conferences"]),
        (&true.into(), &1.into())
    );

    // Nothing new goes to A, by placement or by name, nor by a handover.
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c2"}"#)).await;
    assert_eq!(
        (code, &v["mixer"]),
        (StatusCode::CREATED, &url_b.as_str().into()),
        "{v}"
    );
    let named = format!(r#"{{"id":"c3","mixer":"{url_a}"}}"#);
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(&named)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("draining"), "{v}");

    // The drain's turn hands c1 over to B; the next starts nothing more meanwhile.
    g.state.drive_drain().await;
    assert_eq!(count(&g, "start"), 2, "{:?}", relays(&g));
    assert_eq!(handover_state(&g, "c1").await["to"], url_b.as_str());
    g.state.drive_drain().await;
    assert_eq!(count(&g, "start"), 2);
    let (_, list) = gw(&g, Method::GET, "/v1/mixers", None).await;
    let on_a = &list["mixers"][0];
    assert_eq!(
        (
            &on_a["mixer"],
            &on_a["draining"],
            &on_a["conferences"],
            &on_a["handing_over"]
        ),
        (&url_a.as_str().into(), &true.into(), &1.into(), &1.into()),
        "{list}"
    );
    run_handover(&g, conf, &parts).await;
    assert_eq!(handover_state(&g, "c1").await["state"], "completed");
    let (code, _) = json(&a.state, Method::GET, "/v1/conferences/c1", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "gone from A");
    g.state.drive_drain().await;
    let (_, list) = gw(&g, Method::GET, "/v1/mixers", None).await;
    assert_eq!(list["mixers"][0]["conferences"], 0, "{list}");
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"mixer_drained") {
        match events.next().await {
            Some(crate::events::Delivery::Event(ev)) if ev.kind.starts_with("mixer_") => {
                assert_eq!(ev.detail.mixer.as_deref(), Some(url_a.as_str()));
                kinds.push(ev.kind);
            }
            Some(_) => {}
            None => panic!("events ended"),
        }
    }
    assert_eq!(kinds, ["mixer_draining", "mixer_drained"]);

    // With every mixer draining there is nowhere to go.
    let (code, _) = gw(&g, Method::POST, "/v1/mixers/drain", Some(&drain(&url_b))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(r#"{"id":"c5"}"#)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("every mixer is draining"),
        "{v}"
    );
    let (code, _) = gw(&g, Method::POST, "/v1/mixers/undrain", Some(&drain(&url_b))).await;
    assert_eq!(code, StatusCode::OK);
    // Undrained, A takes conferences again; bad requests are 400.
    let (code, v) = gw(&g, Method::POST, "/v1/mixers/undrain", Some(&drain(&url_a))).await;
    assert_eq!(
        (code, &v["draining"]),
        (StatusCode::OK, &false.into()),
        "{v}"
    );
    let (code, v) = gw(&g, Method::POST, "/v1/conferences", Some(&named)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    for body in [
        drain("http://127.0.0.1:9"),
        "{}".into(),
        r#"{"mixer":1}"#.into(),
    ] {
        let (code, v) = gw(&g, Method::POST, "/v1/mixers/drain", Some(&body)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
}
