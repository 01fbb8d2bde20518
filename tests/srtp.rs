//! SRTP end to end: baresip calls tutti over SIP with RTP/SAVP (SDES, the srtp module
//! of baresip's own libre, not libsrtp) next to a plain caller, and a participant made
//! over REST with an `srtp` key is driven by a client here that protects and
//! unprotects with libsrtp2 (the tutti-srtp wrapper), next to a plain REST client.
//! Each hears the others' tones through the mix; a tampered packet is counted as an
//! authentication failure and a replayed one by the replay window.

mod common;
use common::sip::*;
use common::srtp::srtp_client;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddrV4;
use tutti_control_core::srtp::{decode_key, encode_key, generate_key, Suite};
use tutti_dataplane::srtp::{Context, Direction};

#[test]
fn sdes_callers_and_a_rest_srtp_client_hear_the_mix_and_tampering_is_counted() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig("");
    let t = &rig.t;
    let (code, v) = t.call("POST", "/v1/conferences", Some(r#"{"id":"srtp"}"#));
    assert_eq!(code, 201, "{v}");

    // A REST participant with a wrong-length key or an unknown suite is refused.
    let client: SocketAddrV4 = "198.18.0.4:40000".parse().unwrap();
    for srtp in [
        json!({"suite": "AES_CM_128_HMAC_SHA1_80", "key": "c2hvcnQ="}),
        json!({"suite": "F8_128_HMAC_SHA1_80", "key": encode_key(&generate_key(Suite::AesCm128HmacSha1_80))}),
    ] {
        let body = json!({"remote": client.to_string(), "codec": "pcmu", "srtp": srtp});
        let (code, v) = t.call(
            "POST",
            "/v1/conferences/srtp/participants",
            Some(&body.to_string()),
        );
        assert!((400..500).contains(&code), "{srtp} accepted: {code} {v}");
    }

    // The SRTP client, and a plain one (rtp-peer) that hears it through the mix.
    let ours = generate_key(Suite::AesCm128HmacSha1_32);
    let body = json!({
        "remote": client.to_string(),
        "codec": "pcmu",
        "rtcp": false,
        "srtp": {"suite": "AES_CM_128_HMAC_SHA1_32", "key": encode_key(&ours)},
    });
    let (code, p) = t.call(
        "POST",
        "/v1/conferences/srtp/participants",
        Some(&body.to_string()),
    );
    assert_eq!(code, 201, "{p}");
    assert_eq!(p["srtp"]["suite"], "AES_CM_128_HMAC_SHA1_32", "{p}");
    let theirs = decode_key(
        Suite::AesCm128HmacSha1_32,
        p["srtp"]["key"].as_str().unwrap(),
    )
    .expect("tutti's key");
    assert_ne!(theirs, ours, "tutti sends with a key of its own");
    let local: SocketAddrV4 = p["local"].as_str().unwrap().parse().unwrap();
    let body = json!({"remote": "198.18.0.4:40002", "codec": "pcmu"});
    let (code, plain) = t.call(
        "POST",
        "/v1/conferences/srtp/participants",
        Some(&body.to_string()),
    );
    assert_eq!(code, 201, "{plain}");
    assert!(plain.get("srtp").is_none(), "{plain}");

    // Two callers: baresip with SRTP (SDES) and baresip with plain RTP.
    let secure = baresip(
        &rig,
        "198.18.0.3",
        FREQS[0],
        "sip:conf-srtp@198.18.0.1",
        12,
        true,
    );
    let open = baresip(
        &rig,
        "198.18.0.2",
        FREQS[1],
        "sip:conf-srtp@198.18.0.1",
        12,
        false,
    );
    t.wait_for(10, "both callers joined", |t| {
        let (_, c) = t.call("GET", "/v1/conferences/srtp", None);
        c["participants"].as_array().is_some_and(|a| a.len() == 4)
    });
    let (_, c) = t.call("GET", "/v1/conferences/srtp", None);
    let callers: Vec<&Value> = c["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("sip").is_some())
        .collect();
    let keyed = callers.iter().filter(|p| p["srtp"]["key"].is_string());
    assert_eq!(keyed.count(), 1, "one caller has SRTP keys: {c}");

    let peer = Peer::start(
        &rig.clients,
        "198.18.0.4:40002",
        plain["local"].as_str().unwrap(),
        8,
        &[],
    );
    let heard = srtp_client(
        &rig.clients,
        client,
        local,
        FREQS[2],
        8,
        (
            Context::new(&ours, Direction::Outbound).unwrap(),
            Context::new(&theirs, Direction::Inbound).unwrap(),
        ),
        100,
    )
    .join()
    .expect("client thread");
    let peer = peer.finish();

    // The SRTP client hears both callers (unprotected with tutti's key), not itself.
    assert_eq!(
        heard.unprotect_errors, 0,
        "tutti's SRTP did not authenticate"
    );
    let wav = rig.t.dir.join("rest-client.wav");
    let tail = heard.pcm.len().saturating_sub(3 * 8000);
    std::fs::write(
        &wav,
        tutti_dataplane::rx::wav::write_pcm16(&heard.pcm[tail..]),
    )
    .unwrap();
    let r = analyze_wav(&wav, &FREQS);
    eprintln!("REST SRTP client heard ({} packets sent): {r}", heard.sent);
    let own = db(&r, FREQS[2]);
    assert!(
        r["seconds"].as_f64().unwrap() >= 2.0
            && db(&r, FREQS[0]) - own >= 20.0
            && db(&r, FREQS[1]) - own >= 20.0,
        "the REST SRTP client does not hear both callers: {r}"
    );
    // The plain REST client hears the SRTP one: tutti unprotected its stream.
    eprintln!("plain REST client heard: {peer}");
    assert!(
        db(&peer, FREQS[2]) > -30.0,
        "the SRTP client is not heard: {peer}"
    );
    // The callers hear each other, the SRTP one through its SDES keys both ways.
    for (i, (child, dir)) in [secure, open].into_iter().enumerate() {
        let _ = child.wait_with_output();
        let r = analyze_wav(&decoded_wav(&dir), &FREQS[..2]);
        eprintln!("caller {i} heard: {r}");
        let (own, other) = (db(&r, FREQS[i]), db(&r, FREQS[1 - i]));
        assert!(
            r["seconds"].as_f64().unwrap() >= 3.0 && other - own >= 20.0,
            "caller {i} hears {other:.1} dB of the other, {own:.1} dB of itself: {r}"
        );
    }

    // The tampered packet failed authentication, the replayed one the replay window.
    let core = "{core=\"1\"}";
    let auth = rig
        .t
        .metric(&format!("tutti_srtp_auth_failures_total{core}"));
    let replays = rig
        .t
        .metric(&format!("tutti_srtp_replayed_packets_total{core}"));
    assert_eq!(auth, 1.0, "tampered packets counted");
    assert_eq!(replays, 1.0, "replayed packets counted");
    rig.t.assert_metrics_valid();
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn an_srtp_offer_without_a_usable_crypto_line_is_refused_with_488() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig("  auto_create: true\n");
    let sdp = offer(
        "198.18.0.3",
        4000,
        "0",
        "a=crypto:1 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm\r\n",
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let invite = request(
        "INVITE",
        "sip:conf-nocrypto@198.18.0.1",
        "198.18.0.3",
        "nocrypto",
        1,
        &[],
        &sdp,
    );
    let replies = rig.exchange(&[("198.18.0.3", invite)]);
    assert_eq!(code(last(&replies[0])), 488, "{:?}", replies[0]);
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
}
