//! Conferences end to end with real clients: tutti on net_tap, the tap in a namespace
//! this test creates (198.18.0.2-4 there), driven only through the REST API, with
//! `scripts/rtp-peer` endpoints sending tones and DTMF and recording what they hear.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

fn start_tap() -> (Tutti, Netns) {
    // (Callers hold `one_at_a_time()`.)
    start_on_tap("tc", |y| y, &["198.18.0.3/24", "198.18.0.4/24"])
}

#[test]
fn three_participants_mix_dtmf_events_bad_input_and_cleanup() {
    let _turn = one_at_a_time();
    let (mut t, ns) = start_tap();
    let events = sse_collect(t.api, "/v1/events", 12);
    std::thread::sleep(Duration::from_millis(300));

    let beat = r#"{"interval_ms": 60000}"#;
    let (code, v) = t.call("POST", "/v1/call-managers/cm1/heartbeat", Some(beat));
    assert_eq!(code, 201, "{v}");
    let (code, conf) = t.call(
        "POST",
        "/v1/conferences",
        Some(r#"{"id":"e2e","owner":"cm1"}"#),
    );
    assert_eq!(code, 201, "{conf}");
    assert_eq!(conf["id"], "e2e");
    assert_eq!(conf["core"], 1);
    let mut parts = Vec::new();
    for (i, codec) in ["pcmu", "pcma", "pcmu"].iter().enumerate() {
        let body = format!(
            r#"{{"remote":"198.18.0.{}:4000","codec":"{codec}","telephone_event_pt":101}}"#,
            i + 2
        );
        let (code, p) = t.call("POST", "/v1/conferences/e2e/participants", Some(&body));
        assert_eq!(code, 201, "{p}");
        assert!(p["local"].as_str().unwrap().starts_with("198.18.0.1:"));
        parts.push(p);
    }

    // Bad input while the conference exists: 4xx with a JSON message, nothing disturbed.
    let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(100_000));
    let bad: [(&str, &str, Option<&str>, u16); 8] = [
        ("POST", "/v1/conferences", Some("{not json"), 400),
        ("POST", "/v1/conferences", Some(r#"{"id":"e2e"}"#), 409),
        ("POST", "/v1/conferences", Some(&long), 413),
        (
            "POST",
            "/v1/conferences/e2e/participants",
            Some(r#"{"remote":"198.18.0.9:4000","codec":"opus"}"#),
            400,
        ),
        (
            "POST",
            "/v1/conferences/e2e/participants",
            Some(r#"{"remote":"nowhere","codec":"pcmu"}"#),
            400,
        ),
        (
            "POST",
            "/v1/conferences/nope/participants",
            Some(r#"{"remote":"198.18.0.9:4000","codec":"pcmu"}"#),
            404,
        ),
        ("GET", "/v1/conferences/nope", None, 404),
        (
            "DELETE",
            "/v1/conferences/e2e/participants/p999999",
            None,
            404,
        ),
    ];
    for (method, path, body, want) in bad {
        let (code, v) = t.call(method, path, body);
        assert_eq!(code, want, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: no message in {v}"
        );
    }
    let (_, c) = t.call("GET", "/v1/conferences/e2e", None);
    assert_eq!(c["participants"].as_array().map(Vec::len), Some(3), "{c}");

    // The prompts built into the binary (this configuration names no prompts directory).
    let body = format!(
        r#"{{"prompt":"joining","participant":"{}"}}"#,
        parts[0]["id"].as_str().unwrap()
    );
    let (code, v) = t.call("POST", "/v1/conferences/e2e/prompts", Some(&body));
    assert_eq!(code, 202, "{v}");
    let (code, v) = t.call(
        "POST",
        "/v1/conferences/e2e/prompts",
        Some(r#"{"prompt":"nope"}"#),
    );
    assert_eq!(code, 422, "{v}");

    let secs = 4;
    let peers: Vec<Peer> = (0..3)
        .map(|i| {
            let mut extra = vec![
                "--tone".to_string(),
                FREQS[i].to_string(),
                "--codec".into(),
                ["pcmu", "pcma", "pcmu"][i].into(),
            ];
            if i == 0 {
                extra.extend(["--rfc4733".into(), "5@1.0".into()]);
            }
            if i == 1 {
                extra.extend(["--inband".into(), "7@2.0".into()]);
            }
            Peer::start(
                &ns,
                &format!("198.18.0.{}:4000", i + 2),
                parts[i]["local"].as_str().unwrap(),
                secs,
                &extra,
            )
        })
        .collect();
    let reports: Vec<Value> = peers.into_iter().map(Peer::finish).collect();

    for (i, r) in reports.iter().enumerate() {
        let received = r["received"].as_u64().unwrap();
        assert!((190..=212).contains(&received), "participant {i}: {r}");
        assert_eq!(
            r["ssrcs"],
            serde_json::json!([parts[i]["ssrc"]]),
            "one SSRC, the one the API gave: {r}"
        );
        assert_eq!(r["seq_gaps"], 0, "{r}");
        assert_eq!(r["ts_steps"], serde_json::json!([160]), "{r}");
        let rate = r["rate_pps"].as_f64().unwrap();
        assert!((48.0..=52.0).contains(&rate), "{r}");
        let own = db(r, FREQS[i]);
        let others: Vec<f64> = (0..3)
            .filter(|j| *j != i)
            .map(|j| db(r, FREQS[j]))
            .collect();
        for o in &others {
            assert!(
                o - own >= 40.0,
                "participant {i} hears itself: own {own:.1} dB vs {o:.1} dB: {r}"
            );
        }
        // The mixer itself is held to 1 dB by the spectral test in dataplane/tests; here
        // the senders are Python processes sharing two CPUs with tutti, so allow 3 dB.
        assert!(
            (others[0] - others[1]).abs() <= 3.0,
            "the others' tones differ in level: {r}"
        );
    }

    let text = events.join().unwrap();
    let evs = sse_events(&text);
    let has = |ty: &str, part: &str, f: &dyn Fn(&Value) -> bool| {
        evs.iter()
            .any(|e| e["type"] == ty && e["participant"] == part && f(e))
    };
    let p = |i: usize| parts[i]["id"].as_str().unwrap().to_string();
    assert!(has("participant_created", &p(0), &|_| true), "{text}");
    assert!(
        has("digit", &p(0), &|e| e["digit"] == "5"
            && e["source"] == "rfc4733"),
        "{text}"
    );
    assert!(
        has("digit", &p(1), &|e| e["digit"] == "7"
            && e["source"] == "inband"),
        "{text}"
    );
    assert!(has("talk_start", &p(2), &|_| true), "{text}");
    assert!(
        has("prompt_done", &p(0), &|e| e["prompt"] == "joining"
            && e["completed"] == true),
        "{text}"
    );
    assert_eq!(
        evs.iter().filter(|e| e["type"] == "digit").count(),
        2,
        "exactly the two digits sent: {text}"
    );

    assert!(t.metric("tutti_rtp_received_packets_total{core=\"1\"}") >= 590.0);
    assert!(t.metric("tutti_rtp_sent_packets_total{core=\"1\"}") >= 590.0);
    assert_eq!(t.metric("tutti_participants{core=\"1\"}"), 3.0);
    t.assert_metrics_valid();

    let (code, _) = t.call(
        "DELETE",
        &format!("/v1/conferences/e2e/participants/{}", p(2)),
        None,
    );
    assert_eq!(code, 204);
    assert_eq!(t.metric("tutti_participants{core=\"1\"}"), 2.0);
    let (code, _) = t.call("DELETE", "/v1/conferences/e2e", None);
    assert_eq!(code, 204);
    assert_eq!(t.metric("tutti_participants{core=\"1\"}"), 0.0);
    assert_eq!(t.metric("tutti_conferences{core=\"1\"}"), 0.0);
    let (st, _) = t.terminate();
    assert!(st.success(), "{}", t.stderr());
}

#[test]
fn ffmpeg_sends_and_receives_through_a_conference() {
    let _turn = one_at_a_time();
    let (mut t, ns) = start_tap();
    let (code, _) = t.call("POST", "/v1/conferences", Some(r#"{"id":"ff"}"#));
    assert_eq!(code, 201);
    // A: ffmpeg sending a tone from 198.18.0.2:5000. B: ffmpeg receiving on 198.18.0.3:6000.
    let (code_a, a) = t.call(
        "POST",
        "/v1/conferences/ff/participants",
        Some(r#"{"remote":"198.18.0.2:5000","codec":"pcmu"}"#),
    );
    let (code_b, _) = t.call(
        "POST",
        "/v1/conferences/ff/participants",
        Some(r#"{"remote":"198.18.0.3:6000","codec":"pcmu"}"#),
    );
    assert_eq!((code_a, code_b), (201, 201));
    let a_local = a["local"].as_str().unwrap().to_string();

    let dir = std::env::temp_dir().join(unique("tutti-ff-"));
    std::fs::create_dir_all(&dir).unwrap();
    let sdp = dir.join("recv.sdp");
    std::fs::write(
        &sdp,
        "v=0\no=- 0 0 IN IP4 198.18.0.1\ns=tutti\nc=IN IP4 198.18.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n",
    )
    .unwrap();
    let wav = dir.join("heard.wav");
    let (sdp_s, wav_s) = (sdp.display().to_string(), wav.display().to_string());
    let receiver = ns_spawn(
        &ns,
        25,
        &[
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
            &sdp_s,
            "-t",
            "3",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-c:a",
            "pcm_s16le",
            "-y",
            &wav_s,
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("rtp://{a_local}?localport=5000");
    let sender = ns_spawn(
        &ns,
        25,
        &[
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=8000:samples_per_frame=160:duration=5",
            "-ac",
            "1",
            "-c:a",
            "pcm_mulaw",
            "-f",
            "rtp",
            &url,
        ],
    );
    let r = receiver.wait_with_output().unwrap();
    assert!(
        r.status.success(),
        "ffmpeg receiver: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let s = sender.wait_with_output().unwrap();
    assert!(
        s.status.success(),
        "ffmpeg sender: {}",
        String::from_utf8_lossy(&s.stderr)
    );

    let out = run(
        "python3",
        &[
            repo_path("scripts/rtp-peer").to_str().unwrap(),
            "--analyze-wav",
            &wav_s,
            "--analyze",
            "1000",
            "--analyze",
            "440",
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("analysis JSON");
    assert!(v["seconds"].as_f64().unwrap() >= 2.9, "{v}");
    let tone = v["analysis_db"]["1000"].as_f64().unwrap();
    assert!(
        tone > -30.0,
        "ffmpeg's 1000 Hz tone did not reach the other participant: {v}"
    );
    assert!(
        tone - v["analysis_db"]["440"].as_f64().unwrap() > 30.0,
        "{v}"
    );
    assert!(
        t.metric("tutti_rtp_received_packets_total{core=\"1\"}") >= 100.0,
        "ffmpeg's RTP was accepted"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let (st, _) = t.terminate();
    assert!(st.success());
}

/// A configuration with two dataplane cores (lcores 1 and 2, both on CPU 1).
fn two_cores(y: String) -> String {
    y.replace("\"-l\", \"0-1\"", "\"--lcores\", \"0@0,1@1,2@1\"")
        .replace("cores: [1]", "cores: [1, 2]")
}

#[test]
fn conferences_on_two_dataplane_cores() {
    let _turn = one_at_a_time();
    let (mut t, ns) = start_on_tap("t2", two_cores, &[]);

    let mut cores = Vec::new();
    let mut peers = Vec::new();
    for (c, name) in ["left", "right"].iter().enumerate() {
        let (code, conf) = t.call(
            "POST",
            "/v1/conferences",
            Some(&format!(r#"{{"id":"{name}"}}"#)),
        );
        assert_eq!(code, 201, "{conf}");
        cores.push(conf["core"].as_u64().unwrap());
        for i in 0..2 {
            let port = 4000 + 10 * c + 2 * i;
            let (code, p) = t.call(
                "POST",
                &format!("/v1/conferences/{name}/participants"),
                Some(&format!(
                    r#"{{"remote":"198.18.0.2:{port}","codec":"pcmu"}}"#
                )),
            );
            assert_eq!(code, 201, "{p}");
            let extra = vec!["--tone".to_string(), FREQS[i + c].to_string()];
            peers.push((
                c,
                i,
                Peer::start(
                    &ns,
                    &format!("198.18.0.2:{port}"),
                    p["local"].as_str().unwrap(),
                    3,
                    &extra,
                ),
            ));
        }
    }
    cores.sort();
    assert_eq!(
        cores,
        vec![1, 2],
        "placement spreads the two conferences over both cores"
    );
    for (c, i, peer) in peers {
        let r = peer.finish();
        assert!(r["received"].as_u64().unwrap() >= 140, "{r}");
        assert_eq!(r["seq_gaps"], 0, "{r}");
        let other = db(&r, FREQS[(1 - i) + c]);
        let own = db(&r, FREQS[i + c]);
        assert!(other - own >= 40.0, "conference {c} participant {i}: {r}");
    }
    for core in [1, 2] {
        assert!(t.metric(&format!("tutti_mix_ticks_total{{core=\"{core}\"}}")) >= 100.0);
        assert!(t.metric(&format!("tutti_rtp_sent_packets_total{{core=\"{core}\"}}")) >= 280.0);
    }
    let (st, _) = t.terminate();
    assert!(st.success(), "{}", t.stderr());
}

#[test]
fn a_participant_moves_to_a_conference_on_the_other_core_with_its_call() {
    let _turn = one_at_a_time();
    let (mut t, ns) = start_on_tap("tm", two_cores, &[]);
    // A (440 Hz) and B (1000 Hz) in left, C (1900 Hz) in right: placement puts right on
    // the core left is not on, once left has its participants.
    let rec = std::env::temp_dir().join(format!("{}.wav", unique("tutti-moved-")));
    let mut peers = Vec::new();
    let mut cores = Vec::new();
    for (i, conf) in ["left", "left", "right"].iter().enumerate() {
        if i != 1 {
            let body = format!(r#"{{"id":"{conf}"}}"#);
            let (code, c) = t.call("POST", "/v1/conferences", Some(&body));
            assert_eq!(code, 201, "{c}");
            cores.push(c["core"].as_u64().unwrap());
        }
        let port = 4000 + 2 * i;
        let body = format!(r#"{{"remote":"198.18.0.2:{port}","codec":"pcmu"}}"#);
        let (code, p) = t.call(
            "POST",
            &format!("/v1/conferences/{conf}/participants"),
            Some(&body),
        );
        assert_eq!(code, 201, "{p}");
        let mut extra = vec!["--tone".to_string(), FREQS[i].to_string()];
        if i == 0 {
            extra.extend(["--record".to_string(), rec.display().to_string()]);
        }
        let local = p["local"].as_str().unwrap().to_string();
        let peer = Peer::start(&ns, &format!("198.18.0.2:{port}"), &local, 5, &extra);
        peers.push((p, peer));
    }
    assert_ne!(cores[0], cores[1], "one conference per core");
    std::thread::sleep(Duration::from_millis(2000));
    let a = &peers[0].0;
    let uri = format!(
        "/v1/conferences/left/participants/{}/move",
        a["id"].as_str().unwrap()
    );
    let (code, moved) = t.call("POST", &uri, Some(r#"{"conference":"right"}"#));
    assert_eq!(code, 200, "{moved}");
    assert_eq!(
        (&moved["conference"], &moved["local"]),
        (&"right".into(), &a["local"])
    );
    let reports: Vec<Value> = peers.into_iter().map(|(_, peer)| peer.finish()).collect();
    let (ra, rb, rc) = (&reports[0], &reports[1], &reports[2]);
    // A's stream went on: one SSRC, no sequence gap, hardly a frame missing.
    assert_eq!(ra["ssrcs"].as_array().unwrap().len(), 1, "{ra}");
    assert_eq!(ra["seq_gaps"], 0, "{ra}");
    assert!(ra["received"].as_u64().unwrap() >= 230, "{ra}");
    // After the move A hears C and not B; C hears A; B is alone.
    assert!(db(ra, FREQS[2]) - db(ra, FREQS[1]) >= 30.0, "A: {ra}");
    assert!(db(rc, FREQS[0]) - db(rc, FREQS[2]) >= 30.0, "C: {rc}");
    assert!(db(rb, FREQS[0]) < -50.0, "B no longer hears A: {rb}");
    // Before it, A heard B (its first second, recorded).
    let first = std::env::temp_dir().join(format!("{}.wav", unique("tutti-moved-first-")));
    let (rec_s, first_s) = (rec.display().to_string(), first.display().to_string());
    let out = run(
        "sox",
        &[rec_s.as_str(), first_s.as_str(), "trim", "0.5", "1"],
    );
    assert!(
        out.status.success(),
        "sox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer = repo_path("scripts/rtp-peer");
    let freqs: Vec<String> = FREQS.iter().map(u32::to_string).collect();
    let mut args = vec![peer.to_str().unwrap(), "--analyze-wav", first_s.as_str()];
    for f in &freqs {
        args.extend(["--analyze", f.as_str()]);
    }
    let out = run("python3", &args);
    let before: Value = serde_json::from_slice(&out.stdout).expect("analysis JSON");
    assert!(
        db(&before, FREQS[1]) - db(&before, FREQS[2]) >= 30.0,
        "A before: {before}"
    );
    for f in [&rec, &first] {
        let _ = std::fs::remove_file(f);
    }
    // Each core counts its participants: B on left's, A and C on right's.
    let on = |core: u64| t.metric(&format!("tutti_participants{{core=\"{core}\"}}"));
    assert_eq!((on(cores[0]), on(cores[1])), (1.0, 2.0));
    let (st, _) = t.terminate();
    assert!(st.success(), "{}", t.stderr());
}
