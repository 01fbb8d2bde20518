//! Orphaned-conference reclamation end to end: tutti on net_tap with short `orphan:`
//! timers, the tap in a namespace this test creates (198.18.0.2 there), call managers
//! that heartbeat over the REST API and then stop, and `scripts/rtp-peer` endpoints that
//! talk, fall silent with DTX, press keys, speak on cue or die. The test checks who is
//! deleted and why, who is kept, when conferences are released, that a backup call
//! manager's adoption stops the procedure and that every resource returns.

mod common;
use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lease 300 ms × 3; silence 3 s; RTP timeout 2 s; reply window 2 s. The talker
/// timers are out of the way (other tests cover them in virtual time).
const ORPHAN: &str = "orphan:\n  lease_misses: 3\n  no_packet: 3s\n  single_talker: 2m\n  multi_talker: 1m\n  rtcp_timeout: 4s\n  rtp_timeout: 2s\n  reply_window: 2s\n";
/// How long the endpoints run.
const PEER_SECONDS: u32 = 16;

/// An rtp-peer inside the namespace, ended (by PID) on drop.
struct Peer(Child);

impl Peer {
    fn start(ns: &Netns, port: u16, remote: &str, extra: &[&str]) -> Peer {
        let peer = repo_path("scripts/rtp-peer");
        let bind = format!("198.18.0.2:{port}");
        let secs = PEER_SECONDS.to_string();
        let limit = (PEER_SECONDS + 10).to_string();
        let mut args = vec![
            "netns",
            "exec",
            &ns.name,
            "timeout",
            &limit,
            "python3",
            peer.to_str().unwrap(),
            "--bind",
            &bind,
            "--remote",
            remote,
            "--seconds",
            &secs,
        ];
        args.extend_from_slice(extra);
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rtp-peer");
        Peer(child)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Heartbeats for a set of call managers every 100 ms (interval 300 ms) from a thread,
/// until each is stopped; the thread ends when `done` is set (bounded by 60 s).
struct Heartbeats {
    running: Vec<(String, Arc<AtomicBool>)>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeats {
    fn start(t: &Tutti, cms: &[&str]) -> Heartbeats {
        let running: Vec<(String, Arc<AtomicBool>)> = cms
            .iter()
            .map(|c| (c.to_string(), Arc::new(AtomicBool::new(true))))
            .collect();
        for (cm, _) in &running {
            let (code, v) = t.call(
                "POST",
                &format!("/v1/call-managers/{cm}/heartbeat"),
                Some(r#"{"interval_ms": 300}"#),
            );
            assert_eq!(code, 201, "{v}");
        }
        let done = Arc::new(AtomicBool::new(false));
        let (api, list, stop) = (t.api, running.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                for (cm, on) in &list {
                    if on.load(Ordering::Relaxed) {
                        let path = format!("/v1/call-managers/{cm}/heartbeat");
                        let _ = http(api, "POST", &path, Some(r#"{"interval_ms": 300}"#));
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Heartbeats {
            running,
            done,
            thread: Some(thread),
        }
    }

    fn stop_all(&self) {
        for (_, on) in &self.running {
            on.store(false, Ordering::Relaxed);
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Create conference `id` owned by `owner` with one participant per remote port.
fn conference(t: &Tutti, id: &str, owner: &str, ports: &[u16]) -> Vec<Value> {
    let body = format!(r#"{{"id":"{id}","owner":"{owner}"}}"#);
    let (code, c) = t.call("POST", "/v1/conferences", Some(&body));
    assert_eq!(code, 201, "{c}");
    ports
        .iter()
        .map(|port| {
            let body = format!(r#"{{"remote":"198.18.0.2:{port}","codec":"pcmu"}}"#);
            let (code, p) = t.call(
                "POST",
                &format!("/v1/conferences/{id}/participants"),
                Some(&body),
            );
            assert_eq!(code, 201, "{p}");
            p
        })
        .collect()
}

fn local(p: &Value) -> &str {
    p["local"].as_str().expect("local address")
}

fn pid(p: &Value) -> &str {
    p["id"].as_str().expect("participant id")
}

/// Participant ids of conference `id` (empty if it is gone).
fn members(t: &Tutti, id: &str) -> Vec<String> {
    let (code, c) = t.call("GET", &format!("/v1/conferences/{id}"), None);
    if code == 404 {
        return Vec::new();
    }
    c["participants"]
        .as_array()
        .map(|ps| ps.iter().map(|p| pid(p).to_string()).collect())
        .unwrap_or_default()
}

/// Milliseconds into the day of an event's RFC 3339 timestamp.
fn ms_of(ev: &Value) -> i64 {
    let ts = ev["timestamp"].as_str().unwrap_or_default();
    let time = ts
        .split('T')
        .nth(1)
        .unwrap_or("0:0:0.0Z")
        .trim_end_matches('Z');
    let mut it = time.split(':');
    let h: i64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let m: i64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let s: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (h * 3600 + m * 60) * 1000 + (s * 1000.0).round() as i64
}

#[test]
fn orphaned_conferences_are_reclaimed_by_the_rules_and_adoption_stops_it() {
    let extra = format!("prompts: {}\n{ORPHAN}", repo_path("prompts").display());
    let (mut t, ns) = start_on_tap("to", |y| y + &extra, &[]);
    let (_, baseline) = t.call("GET", "/v1/status", None);
    let events = sse_collect(t.api, "/v1/events", PEER_SECONDS as u64 + 8);
    std::thread::sleep(Duration::from_millis(300));

    // solo: one participant. dead: two talkers, one that dies and one on remote hold.
    // gone: everyone dies. reply: a talker, and three DTX endpoints that are silent:
    // one answers the stay prompt with a key, one by speaking, one never.
    // Each owner holds a lease before its conference is made (else it is refused).
    let beats = Heartbeats::start(&t, &["cm-solo", "cm-dead", "cm-gone", "cm-reply"]);
    let solo = conference(&t, "solo", "cm-solo", &[4000]);
    let dead = conference(&t, "dead", "cm-dead", &[4010, 4012, 4014, 4016]);
    let gone = conference(&t, "gone", "cm-gone", &[4020, 4022]);
    let reply = conference(&t, "reply", "cm-reply", &[4030, 4032, 4034, 4036]);
    let hold = format!("/v1/conferences/dead/participants/{}", pid(&dead[3]));
    assert_eq!(t.call("PATCH", &hold, Some(r#"{"hold": true}"#)).0, 200);

    // Peer timeline (seconds from their start): heartbeats stop at 1.0, so the
    // conferences are orphaned at about 1.9; silent participants are asked to stay at
    // about 4.9 (the prompt lasts 4.2 s, the window 2 s more).
    let mut peers = vec![Peer::start(&ns, 4000, local(&solo[0]), &["--tone", "440"])];
    for (i, extra) in [
        &["--tone", "440"][..],
        &["--tone", "700", "--stop-after", "1"],
        &["--tone", "1000"],
        &["--tone", "1900"],
    ]
    .iter()
    .enumerate()
    {
        peers.push(Peer::start(
            &ns,
            4010 + 2 * i as u16,
            local(&dead[i]),
            extra,
        ));
    }
    for (i, port) in [4020u16, 4022].iter().enumerate() {
        peers.push(Peer::start(
            &ns,
            *port,
            local(&gone[i]),
            &["--tone", "500", "--stop-after", "1"],
        ));
    }
    peers.push(Peer::start(&ns, 4030, local(&reply[0]), &["--tone", "440"]));
    let dtx = ["--dtx", "--tone", "800", "--talk"];
    peers.push(Peer::start(
        &ns,
        4032,
        local(&reply[1]),
        &[&dtx[..], &["0-0.2", "--rfc4733", "5@7.0"]].concat(),
    ));
    peers.push(Peer::start(
        &ns,
        4034,
        local(&reply[2]),
        &[&dtx[..], &["0-0.2", "--talk", "7.5-9.0"]].concat(),
    ));
    peers.push(Peer::start(
        &ns,
        4036,
        local(&reply[3]),
        &[&dtx[..], &["0-0.2"]].concat(),
    ));
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    beats.stop_all();

    // By 11.8 s every rule has acted on these conferences.
    while start.elapsed() < Duration::from_millis(11_800) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, c) = t.call("GET", "/v1/conferences/reply", None);
    assert_eq!((code, c["orphaned"].as_bool()), (200, Some(true)), "{c}");
    let kept: Vec<String> = [0, 1, 2]
        .iter()
        .map(|i| pid(&reply[*i]).to_string())
        .collect();
    assert_eq!(
        members(&t, "reply"),
        kept,
        "the key and the voice reply are kept, the silent one goes"
    );
    let dead_kept: Vec<String> = [0, 2].iter().map(|i| pid(&dead[*i]).to_string()).collect();
    assert_eq!(
        members(&t, "dead"),
        dead_kept,
        "the dead endpoint and the held one are deleted"
    );
    assert!(members(&t, "solo").is_empty() && members(&t, "gone").is_empty());

    // A backup call manager (holding a lease) adopts: nothing more happens to the
    // conference.
    let beat = r#"{"interval_ms": 60000}"#;
    let (code, v) = t.call("POST", "/v1/call-managers/cm-backup/heartbeat", Some(beat));
    assert_eq!(code, 201, "{v}");
    let (code, c) = t.call(
        "POST",
        "/v1/conferences/reply/adopt",
        Some(r#"{"owner":"cm-backup"}"#),
    );
    assert_eq!(code, 200, "{c}");
    assert_eq!(
        (c["owner"].as_str(), c["orphaned"].as_bool()),
        (Some("cm-backup"), Some(false))
    );
    assert_eq!(
        t.metric("tutti_orphaned_conferences"),
        1.0,
        "dead is still orphaned"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        members(&t, "reply"),
        kept,
        "the adopted conference is left alone"
    );

    // Resources: the two released conferences and five deleted participants are free.
    assert_eq!(t.metric("tutti_participants{core=\"1\"}"), 5.0);
    assert_eq!(t.metric("tutti_conferences{core=\"1\"}"), 2.0);
    for (sample, want) in [
        (
            r#"tutti_reclaimed_conferences_total{reason="last_participant"}"#,
            1.0,
        ),
        (
            r#"tutti_reclaimed_conferences_total{reason="no_participants"}"#,
            1.0,
        ),
        (
            r#"tutti_deleted_participants_total{reason="remote_hold"}"#,
            1.0,
        ),
        (
            r#"tutti_deleted_participants_total{reason="rtp_timeout"}"#,
            3.0,
        ),
        (
            r#"tutti_deleted_participants_total{reason="no_reply"}"#,
            1.0,
        ),
        (
            r#"tutti_deleted_participants_total{reason="last_participant"}"#,
            1.0,
        ),
        (r#"tutti_call_manager_lease_up{cm="cm-solo"}"#, 0.0),
    ] {
        assert_eq!(t.metric(sample), want, "{sample}");
    }
    t.assert_metrics_valid();
    for id in ["dead", "reply"] {
        assert_eq!(
            t.call("DELETE", &format!("/v1/conferences/{id}"), None).0,
            204
        );
    }
    let (_, after) = t.call("GET", "/v1/status", None);
    assert_eq!(after["capacity"], baseline["capacity"]);
    assert_eq!(after["conferences"], 0);
    assert_eq!(t.metric("tutti_participants{core=\"1\"}"), 0.0);
    drop(peers);
    drop(beats);

    // The events tell the story, with the timing the rules give.
    let text = events.join().unwrap();
    let evs = sse_events(&text);
    let find = |ty: &str, conf: &str, part: Option<&str>| {
        evs.iter()
            .find(|e| {
                e["type"] == ty
                    && e["conference"] == conf
                    && part.is_none_or(|p| e["participant"] == p)
            })
            .unwrap_or_else(|| panic!("no {ty} for {conf} {part:?} in:\n{text}"))
    };
    for conf in ["solo", "dead", "gone", "reply"] {
        find("conference_orphaned", conf, None);
    }
    assert!(
        evs.iter()
            .any(|e| e["type"] == "lease_lapsed" && e["call_manager"] == "cm-solo"),
        "{text}"
    );
    let orphaned = |c: &str| ms_of(find("conference_orphaned", c, None));
    // One participant: goodbye (2.7 s), then released.
    let released = find("conference_released", "solo", None);
    assert_eq!(released["reason"], "last_participant");
    let took = ms_of(released) - orphaned("solo");
    assert!(
        (2_500..=3_800).contains(&took),
        "solo released {took} ms after the orphaning"
    );
    // Remote hold goes first, at once; the dead one after 2 s plus its prompt (2 s).
    let held = find("participant_deleted", "dead", Some(pid(&dead[3])));
    assert_eq!(held["reason"], "remote_hold");
    assert!(ms_of(held) - orphaned("dead") <= 1_000, "{held}");
    let died = find("participant_deleted", "dead", Some(pid(&dead[1])));
    assert_eq!(died["reason"], "rtp_timeout");
    let took = ms_of(died) - orphaned("dead");
    assert!(
        (3_500..=5_200).contains(&took),
        "dead endpoint deleted after {took} ms"
    );
    let p = find("prompt_played", "dead", Some(pid(&dead[1])));
    assert_eq!(
        (p["prompt"].as_str(), p["missing"].as_bool()),
        (Some("disconnect"), Some(false))
    );
    // Everyone dead: released with nobody left.
    assert_eq!(
        find("conference_released", "gone", None)["reason"],
        "no_participants"
    );
    // The replies.
    let by = |i: usize| find("reply_heard", "reply", Some(pid(&reply[i])))["by"].clone();
    assert_eq!((by(1), by(2)), ("digit".into(), "voice".into()), "{text}");
    let silent = find("participant_deleted", "reply", Some(pid(&reply[3])));
    assert_eq!(silent["reason"], "no_reply");
    let stay = find("prompt_played", "reply", Some(pid(&reply[3])));
    assert_eq!(
        (stay["prompt"].as_str(), stay["reason"].as_str()),
        (Some("stay"), Some("silent"))
    );
    let asked = ms_of(stay) - orphaned("reply");
    assert!(
        (2_800..=4_000).contains(&asked),
        "asked {asked} ms after the orphaning"
    );
    let took = ms_of(silent) - ms_of(stay);
    assert!(
        (6_000..=7_300).contains(&took),
        "deleted {took} ms after the prompt (4.2 s + 2 s)"
    );
    assert!(
        !evs.iter().any(|e| e["type"] == "participant_deleted"
            && e["conference"] == "reply"
            && e.get("reason").is_some()
            && e["participant"] != pid(&reply[3])),
        "{text}"
    );
    assert_eq!(
        find("conference_adopted", "reply", None)["call_manager"],
        "cm-backup"
    );
    let (st, _) = t.terminate();
    assert!(st.success(), "{}", t.stderr());
}
