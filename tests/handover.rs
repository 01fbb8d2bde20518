//! Seamless mixer handover end to end: three real `tutti` processes — mixer A, mixer B
//! and a gateway in front of them — each on its own net_tap device, the three taps joined
//! by a Linux bridge inside a namespace this test creates (198.18.0.0/24 there: gateway
//! 198.18.0.1, mixer A 198.18.0.11, mixer B 198.18.0.12, bridge 198.18.0.254, clients
//! 198.18.0.2-4 on the bridge). Clients are `scripts/rtp-peer` endpoints sending
//! continuous tones through the gateway; every one must hear one SSRC from one source
//! address with contiguous sequence numbers, timestamps stepping by exactly 160 and
//! phase-continuous tones (the continuity report of rtp-peer) while the conference is
//! handed between the mixers, and through the abort paths.
//!
//! The processes run with `idle_sleep_us` so that all three share two CPUs; the tests
//! take turns (`one_at_a_time`), each is bounded well under a minute, and everything is
//! cleaned up by PID and by deleting the namespace. On failure the three processes'
//! stderr is printed.

mod common;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Mixer A, mixer B, the gateway (indices into `Bridged`).
const A: usize = 0;
const B: usize = 1;
const GW: usize = 2;
const IPS: [&str; 3] = ["198.18.0.11", "198.18.0.12", "198.18.0.1"];
const CLIENT_ADDRS: [&str; 3] = ["198.18.0.2/24", "198.18.0.3/24", "198.18.0.4/24"];
/// Odd multiples of 25 Hz: a dropped or repeated 20 ms frame turns each by 180°.
const TONES: [u32; 3] = [475, 825, 1175];
const CODECS: [&str; 3] = ["pcmu", "pcma", "pcmu"];
/// Discontinuities in the clients' first seconds are the mixers' jitter buffers settling
/// while the peers start up (Python start-up on two shared CPUs is late by tens of ms);
/// they are reported but not judged. Every handover starts after this.
const WARMUP_S: f64 = 1.5;
/// Scheduling priority of the clients and the tutti processes (they are real-time).
const NICE: &str = "-10";
/// How long a handover may take to reach a final state.
const HANDOVER_LIMIT: Duration = Duration::from_secs(8);

/// An rtp-peer inside the namespace (bounded by `timeout`), ended by PID on drop.
struct Peer {
    child: Child,
    report: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Peer {
    /// Client `i` (198.18.0.{2+i}:4000) sending tone `TONES[i]` in `CODECS[i]` to `remote`
    /// for `secs`, expecting to hear the tones of the clients in `hears`.
    fn start(
        ns: &Netns,
        i: usize,
        remote: &str,
        secs: u32,
        hears: &[usize],
        extra: &[&str],
    ) -> Peer {
        let report = std::env::temp_dir().join(format!("{}.json", unique("tutti-ho-peer-")));
        let log = report.with_extension("log");
        let peer = repo_path("scripts/rtp-peer");
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            ns.name.clone(),
            "nice".into(),
            "-n".into(),
            NICE.into(),
            "timeout".into(),
            (secs + 30).to_string(),
            "python3".into(),
            peer.display().to_string(),
            "--bind".into(),
            format!("198.18.0.{}:4000", i + 2),
            "--remote".into(),
            remote.into(),
            "--seconds".into(),
            secs.to_string(),
            "--codec".into(),
            CODECS[i].into(),
            "--tone".into(),
            TONES[i].to_string(),
            "--report".into(),
            report.display().to_string(),
            "--warmup".into(),
            WARMUP_S.to_string(),
            "--packets".into(),
            report.with_extension("csv").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        for j in hears {
            args.extend(["--expect".into(), TONES[*j].to_string()]);
        }
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("starting rtp-peer");
        Peer { child, report, log }
    }

    /// Wait for the peer (bounded by its `timeout`) and return its report, with each
    /// received sequence number's arrival time (seconds) added as `arrivals`.
    fn finish(mut self) -> Value {
        let st = self.child.wait().expect("rtp-peer wait");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(st.success(), "rtp-peer failed ({st}): {log}");
        let text = std::fs::read_to_string(&self.report).expect("rtp-peer report");
        let mut report: Value = serde_json::from_str(&text).expect("report JSON");
        let csv = std::fs::read_to_string(self.report.with_extension("csv")).unwrap_or_default();
        // arrival_s,source,ssrc,seq,ts,pt,payload_bytes
        let arrivals: serde_json::Map<String, Value> = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((
                    f.get(3)?.to_string(),
                    json!(f.first()?.parse::<f64>().ok()?),
                ))
            })
            .collect();
        report["arrivals"] = Value::Object(arrivals);
        report
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // `ip netns exec` execs `timeout`, which passes SIGTERM on to python.
            signal(self.child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.report);
        let _ = std::fs::remove_file(self.report.with_extension("csv"));
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Every client hears every other client of its conference.
fn others(i: usize, n: usize) -> Vec<usize> {
    (0..n).filter(|j| *j != i).collect()
}

/// What every client of a handover test must have received: one SSRC (the one the API
/// gave), from one source address (`local`), no gap, duplicate or reorder, timestamps
/// stepping by exactly 160, about 50 packets a second, and the other clients' tones
/// without a discontinuity from before `steady.0` until after `steady.1` (seconds since
/// the peers started).
fn assert_continuous(i: usize, r: &Value, part: &Value, secs: u32, steady: (f64, f64)) {
    let c = &r["continuity"];
    let local = part["local"].as_str().expect("participant local address");
    assert_eq!(
        c["sources"],
        json!([local]),
        "client {i}: one source address, the one the API gave: {c}"
    );
    assert_eq!(
        c["ssrcs"].as_array().map(Vec::len),
        Some(1),
        "client {i}: one SSRC: {c}"
    );
    if let Some(ssrc) = part["ssrc"].as_u64() {
        assert_eq!(
            c["ssrcs"],
            json!([ssrc]),
            "client {i}: the SSRC the API gave: {c}"
        );
    }
    for k in ["missing", "duplicates", "reorders", "ts_bad_steps"] {
        assert_eq!(c[k], 0, "client {i}: {k}: {c}");
    }
    assert_eq!(r["ts_steps"], json!([160]), "client {i}: {r}");
    let received = c["packets"].as_u64().unwrap_or(0);
    let want = u64::from(secs - 1) * 50;
    assert!(
        received >= want,
        "client {i}: {received} packets, want at least {want}: {c}"
    );
    let tone = &c["tone"];
    assert_eq!(
        tone["discontinuities"], 0,
        "client {i}: tone discontinuities (a click, a dropped or repeated frame): {tone}"
    );
    assert_eq!(tone["ok"], true, "client {i}: {tone}");
    let from = tone["steady_from_s"].as_f64().unwrap_or(f64::MAX);
    let to = tone["steady_to_s"].as_f64().unwrap_or(0.0);
    assert!(
        from <= steady.0 && to >= steady.1,
        "client {i}: the tones were steady only from {from} s to {to} s, want {} s to {} s: {tone}",
        steady.0,
        steady.1
    );
    assert_eq!(c["clean"], true, "client {i}: {c}");
}

/// Wait for the clients and print, for the report, the processes' counters, what each
/// client saw and its gaps at the handovers' switches; the clients' reports.
fn finish_clients(net: &mut Net, peers: Vec<Peer>, parts: &[Value], hs: &[Value]) -> Vec<Value> {
    let reports: Vec<Value> = peers.into_iter().map(Peer::finish).collect();
    eprint!("{}", media_counters(&mut net.b));
    for (i, r) in reports.iter().enumerate() {
        eprintln!("{}", summary(i, r));
    }
    eprint!("{}", switch_gaps(parts, &reports, hs));
    reports
}

/// A line for the report: what a client saw at the switches.
fn summary(i: usize, r: &Value) -> String {
    let c = &r["continuity"];
    let t = &c["tone"];
    format!(
        "client {i}: {} packets, max inter-arrival gap {} ms (largest at {}), p99 {} ms; tone phase jump max {} deg, level jump max {} dB, residual max {} dB; own sends up to {} ms late (at {})",
        c["packets"],
        c["max_gap_ms"],
        c["largest_gaps"],
        c["p99_gap_ms"],
        t["max_phase_jump_deg"],
        t["max_level_jump_db"],
        t["max_residual_db"],
        r["send_late_max_ms"],
        r["send_latest"]
    )
}

/// For the report: each client's inter-arrival time at each of its cut-overs (from the
/// packet before the first one from the new mixer to that one; 20 ms plus any delay the
/// switch added), from the handovers' `cut_seq`s.
fn switch_gaps(parts: &[Value], reports: &[Value], handovers: &[Value]) -> String {
    let mut out = String::new();
    for (i, (p, r)) in parts.iter().zip(reports).enumerate() {
        let pid = p["id"].as_str().unwrap_or("");
        out.push_str(&format!("client {i} ({pid}) at its switches:"));
        for h in handovers {
            let Some(cut) = h["handover"]["participants"][pid]["cut_seq"].as_u64() else {
                out.push_str(" (no cut_seq)");
                continue;
            };
            let at = |seq: u64| r["arrivals"][(seq & 0xffff).to_string()].as_f64();
            match (at(cut.wrapping_sub(1)), at(cut)) {
                (Some(a), Some(b)) => out.push_str(&format!(
                    " seq {cut} at {b:.3} s, {:.1} ms after the one before;",
                    (b - a) * 1e3
                )),
                _ => out.push_str(&format!(" seq {cut}: not received;")),
            }
        }
        out.push('\n');
    }
    out
}

/// The media counters of every live process, for the report: traffic, and every
/// non-zero count of a drop, late or lost packet, concealment or late tick (these
/// explain a discontinuity that is not the handover's).
fn media_counters(b: &mut Bridged) -> String {
    const SHOWN: [&str; 12] = [
        "tutti_rx_packets_total",
        "tutti_tx_packets_total",
        "tutti_dropped_packets_total",
        "tutti_rtp_received_packets_total",
        "tutti_rtp_sent_packets_total",
        "tutti_rtp_late_packets_total",
        "tutti_rtp_lost_frames_total",
        "tutti_rtp_refused_packets_total",
        "tutti_tick_overruns_total",
        "tutti_relay_",
        "tutti_handovers_total",
        "tutti_mbufs_in_use",
    ];
    let mut out = String::new();
    for i in 0..b.procs.len() {
        if !b.alive(i) {
            out.push_str(&format!("tutti #{i}: not running\n"));
            continue;
        }
        let text = http_get(b.api(i), "/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && SHOWN.iter().any(|p| l.starts_with(p)))
            .filter(|l| l.rsplit(' ').next().is_some_and(|v| v != "0"))
            .collect();
        out.push_str(&format!("tutti #{i}: {}\n", samples.join(", ")));
    }
    out
}

/// The gateway test network: mixers A and B, then the gateway naming both and a third
/// mixer that never answers.
struct Net {
    b: Bridged,
    /// The gateway's `gateway.listen` API.
    gw: SocketAddr,
    /// The configured mixer that is not there (nothing listens on its port).
    nowhere: String,
}

impl Net {
    fn start(tag: &str) -> Net {
        let gw_port = free_port();
        let nowhere = format!("http://127.0.0.1:{}", free_port());
        let b = start_bridged(tag, &IPS, &CLIENT_ADDRS, |node, all, yaml| {
            if node.index != GW {
                return yaml;
            }
            format!(
                "{yaml}gateway:\n  listen: 127.0.0.1:{gw_port}\n  mixers: [\"{}\", \"{}\", \"{nowhere}\"]\n",
                all[A].url(),
                all[B].url()
            )
        });
        b.renice(NICE.parse().unwrap());
        let gw = SocketAddr::from(([127, 0, 0, 1], gw_port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_get(gw, "/healthz").is_none_or(|(c, _)| c != 200) {
            assert!(
                Instant::now() < deadline,
                "the gateway API on {gw} never answered /healthz"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Net { b, gw, nowhere }
    }

    fn call(&self, method: &str, path: &str, json: Option<&str>) -> (u16, Value) {
        call_at(self.gw, method, path, json)
    }

    /// A conference `id` on mixer `on` through the gateway, with clients 0..n (mixed
    /// codecs); returns the gateway's participant answers.
    fn conference(&self, id: &str, on: usize, n: usize) -> Vec<Value> {
        let body = json!({"id": id, "mixer": self.b.url(on)}).to_string();
        let (code, conf) = self.call("POST", "/v1/conferences", Some(&body));
        assert_eq!(code, 201, "{conf}");
        assert_eq!(conf["mixer"], json!(self.b.url(on)), "{conf}");
        assert_eq!(conf["handover"], Value::Null, "{conf}");
        (0..n)
            .map(|i| {
                let body = format!(
                    r#"{{"remote":"198.18.0.{}:4000","codec":"{}"}}"#,
                    i + 2,
                    CODECS[i]
                );
                let (code, p) = self.call(
                    "POST",
                    &format!("/v1/conferences/{id}/participants"),
                    Some(&body),
                );
                assert_eq!(code, 201, "{p}");
                assert!(
                    p["local"].as_str().unwrap_or("").starts_with("198.18.0.1:"),
                    "clients talk to the gateway: {p}"
                );
                p
            })
            .collect()
    }

    /// Ask for a handover of `id` to `to` and wait (bounded) for a final state; returns
    /// the conference as the gateway shows it then, and the states seen on the way.
    fn handover(&self, id: &str, to: &str, mode: &str) -> (Value, Vec<String>) {
        let body = json!({"to": to, "mode": mode}).to_string();
        let (code, v) = self.call(
            "POST",
            &format!("/v1/conferences/{id}/handover"),
            Some(&body),
        );
        assert_eq!(code, 202, "handover request: {v}");
        let deadline = Instant::now() + HANDOVER_LIMIT;
        let mut states: Vec<String> = Vec::new();
        loop {
            let (code, conf) = self.call("GET", &format!("/v1/conferences/{id}"), None);
            assert_eq!(code, 200, "{conf}");
            let state = conf["handover"]["state"].as_str().unwrap_or("").to_string();
            if states.last() != Some(&state) {
                states.push(state.clone());
            }
            if state == "completed" || state == "aborted" {
                return (conf, states);
            }
            assert!(
                Instant::now() < deadline,
                "handover of {id} to {to} not done in {HANDOVER_LIMIT:?}; states {states:?}: {conf}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A handover that must complete; prints its timings.
    fn handover_ok(&self, id: &str, to: usize, mode: &str, t0: Instant) -> Value {
        let (code, before) = self.call("GET", &format!("/v1/conferences/{id}"), None);
        assert_eq!(code, 200, "{before}");
        let asked = t0.elapsed().as_secs_f64();
        let (conf, states) = self.handover(id, &self.b.url(to), mode);
        let h = &conf["handover"];
        assert_eq!(h["from"], before["mixer"], "{conf}");
        assert_eq!(
            h["state"], "completed",
            "handover to mixer #{to} ({mode}) failed: {conf}"
        );
        assert_eq!(conf["mixer"], json!(self.b.url(to)), "{conf}");
        assert_eq!(h["to"], json!(self.b.url(to)), "{conf}");
        assert_eq!(h["mode"], mode, "{conf}");
        eprintln!(
            "handover {id} -> mixer #{to} ({mode}): asked at {asked:.2} s, completed at {:.2} s; states {states:?}; cutover_ms {}, extra_delay_ms {}",
            t0.elapsed().as_secs_f64(),
            h["cutover_ms"],
            h["extra_delay_ms"]
        );
        eprintln!("  clients: {}", h["participants"]);
        assert!(h["cutover_ms"].is_number(), "{conf}");
        assert!(h["extra_delay_ms"].is_number(), "{conf}");
        conf
    }

    /// A sample of the gateway's metrics (absent: 0).
    fn metric(&self, sample: &str) -> f64 {
        metric_at(self.gw, sample).unwrap_or(0.0)
    }

    /// The gateway's handover metrics are `completed` and `aborted` handovers, and the
    /// duration histogram counted every one of them.
    fn assert_handover_metrics(&self, completed: f64, aborted: f64) {
        let text = http_get(self.gw, "/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default();
        let ours: Vec<&str> = text.lines().filter(|l| l.contains("handover")).collect();
        let got = (
            self.metric("tutti_handovers_total{result=\"completed\"}"),
            self.metric("tutti_handovers_total{result=\"aborted\"}"),
            metric_sum(&text, "tutti_handover_duration_seconds_count"),
        );
        assert_eq!(
            got,
            (completed, aborted, completed + aborted),
            "(completed, aborted, histogram count) in:\n{}",
            ours.join("\n")
        );
    }

    /// Mixer `i`'s conferences (its own API).
    fn conferences_on(&self, i: usize) -> Vec<Value> {
        let (code, v) = self.b.procs[i].call("GET", "/v1/conferences", None);
        assert_eq!(code, 200, "{v}");
        v["conferences"].as_array().cloned().unwrap_or_default()
    }

    /// Wait (bounded) until mixer `i` has `n` conferences.
    fn wait_conferences_on(&self, i: usize, n: usize, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.conferences_on(i);
            if c.len() == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mixer #{i} should have {n} conference(s) ({why}), has {c:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Delete the conference at the gateway; both mixers end up with none.
    fn delete(&self, id: &str) {
        let (code, v) = self.call("DELETE", &format!("/v1/conferences/{id}"), None);
        assert_eq!(code, 204, "{v}");
        for m in [A, B] {
            self.wait_conferences_on(m, 0, "after the gateway deleted the conference");
        }
    }
}

/// The sum of every sample of metric `name` in Prometheus text, whatever its labels.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if let Some(r) = rest.strip_prefix('{') {
                r.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Start clients 0..n of conference `parts` for `secs` seconds.
fn start_clients(net: &Net, parts: &[Value], secs: u32) -> (Vec<Peer>, Instant) {
    let peers = (0..parts.len())
        .map(|i| {
            Peer::start(
                &net.b.ns,
                i,
                parts[i]["local"].as_str().unwrap(),
                secs,
                &others(i, parts.len()),
                &[],
            )
        })
        .collect();
    (peers, Instant::now())
}

/// (a) A → B → A → B in rewrite mode during continuous tones from three clients.
#[test]
fn handover_back_and_forth_is_seamless() {
    let _turn = one_at_a_time();
    let mut net = Net::start("ha");
    let parts = net.conference("c1", A, 3);
    let secs = 14;
    let (peers, t0) = start_clients(&net, &parts, secs);
    std::thread::sleep(Duration::from_millis(2500));
    let first = t0.elapsed().as_secs_f64();
    let mut hs = vec![net.handover_ok("c1", B, "rewrite", t0)];
    net.wait_conferences_on(A, 0, "A was left");
    std::thread::sleep(Duration::from_millis(1500));
    hs.push(net.handover_ok("c1", A, "rewrite", t0));
    net.wait_conferences_on(B, 0, "B was left");
    std::thread::sleep(Duration::from_millis(1500));
    hs.push(net.handover_ok("c1", B, "rewrite", t0));
    let last = t0.elapsed().as_secs_f64();
    assert!(
        last + 2.0 <= f64::from(secs),
        "the handovers took until {last:.1} s of the clients' {secs} s"
    );
    let reports = finish_clients(&mut net, peers, &parts, &hs);
    for (i, r) in reports.iter().enumerate() {
        assert_continuous(i, r, &parts[i], secs, (first - 1.0, last + 1.0));
    }
    assert!(
        net.conferences_on(A).is_empty(),
        "mixer A, left, still has a conference"
    );
    assert_eq!(net.conferences_on(B).len(), 1);
    net.assert_handover_metrics(3.0, 0.0);
    net.b.procs[GW].assert_metrics_valid();
    net.delete("c1");
}

/// (b) One handover in instruct mode: the same continuity.
#[test]
fn handover_in_instruct_mode_is_seamless() {
    let _turn = one_at_a_time();
    let mut net = Net::start("hi");
    let parts = net.conference("c2", A, 3);
    let secs = 9;
    let (peers, t0) = start_clients(&net, &parts, secs);
    std::thread::sleep(Duration::from_millis(2500));
    let first = t0.elapsed().as_secs_f64();
    let hs = vec![net.handover_ok("c2", B, "instruct", t0)];
    let last = t0.elapsed().as_secs_f64();
    net.wait_conferences_on(A, 0, "A was left");
    let reports = finish_clients(&mut net, peers, &parts, &hs);
    for (i, r) in reports.iter().enumerate() {
        assert_continuous(i, r, &parts[i], secs, (first - 1.0, last + 1.0));
    }
    assert_eq!(net.conferences_on(B).len(), 1);
    net.assert_handover_metrics(1.0, 0.0);
    net.delete("c2");
}

/// (c) A handover to a mixer nobody answers for aborts with a reason and leaves every
/// call as it was; a handover after it still works.
#[test]
fn aborted_handover_leaves_the_calls_intact() {
    let _turn = one_at_a_time();
    let mut net = Net::start("hx");
    let parts = net.conference("c3", A, 3);
    let secs = 11;
    let (peers, t0) = start_clients(&net, &parts, secs);
    std::thread::sleep(Duration::from_millis(2500));
    let first = t0.elapsed().as_secs_f64();
    let nowhere = net.nowhere.clone();
    let (conf, states) = net.handover("c3", &nowhere, "rewrite");
    eprintln!(
        "handover to {nowhere}: states {states:?}, ended at {:.2} s: {}",
        t0.elapsed().as_secs_f64(),
        conf["handover"]
    );
    assert_eq!(conf["handover"]["state"], "aborted", "{conf}");
    assert!(
        conf["handover"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "an aborted handover says why: {conf}"
    );
    assert_eq!(
        conf["mixer"],
        json!(net.b.url(A)),
        "the conference stays on A: {conf}"
    );
    net.assert_handover_metrics(0.0, 1.0);
    assert_eq!(net.conferences_on(A).len(), 1);
    assert!(net.conferences_on(B).is_empty());
    // Still movable after the abort.
    std::thread::sleep(Duration::from_millis(1500));
    let hs = vec![net.handover_ok("c3", B, "rewrite", t0)];
    let last = t0.elapsed().as_secs_f64();
    net.wait_conferences_on(A, 0, "A was left");
    let reports = finish_clients(&mut net, peers, &parts, &hs);
    for (i, r) in reports.iter().enumerate() {
        assert_continuous(i, r, &parts[i], secs, (first - 1.0, last + 1.0));
    }
    net.assert_handover_metrics(1.0, 1.0);
    net.delete("c3");
}

/// (d) Mixer A dies (SIGKILL) right after the conference moved to B: the calls go on
/// from B, untouched.
#[test]
fn calls_survive_the_old_mixer_dying_after_handover() {
    let _turn = one_at_a_time();
    let mut net = Net::start("hk");
    let parts = net.conference("c4", A, 3);
    let secs = 9;
    let (peers, t0) = start_clients(&net, &parts, secs);
    std::thread::sleep(Duration::from_millis(2500));
    let first = t0.elapsed().as_secs_f64();
    let hs = vec![net.handover_ok("c4", B, "rewrite", t0)];
    eprint!("before the kill: {}", media_counters(&mut net.b));
    net.b.kill_hard(A);
    let killed = t0.elapsed().as_secs_f64();
    eprintln!("mixer A killed at {killed:.2} s");
    assert!(!net.b.alive(A));
    let reports = finish_clients(&mut net, peers, &parts, &hs);
    for (i, r) in reports.iter().enumerate() {
        assert_continuous(i, r, &parts[i], secs, (first - 1.0, killed + 2.0));
    }
    let (code, conf) = net.call("GET", "/v1/conferences/c4", None);
    assert_eq!(code, 200, "{conf}");
    assert_eq!(conf["mixer"], json!(net.b.url(B)), "{conf}");
    assert_eq!(net.conferences_on(B).len(), 1);
    net.assert_handover_metrics(1.0, 0.0);
    let (code, v) = net.call("DELETE", "/v1/conferences/c4", None);
    assert_eq!(code, 204, "{v}");
    net.wait_conferences_on(B, 0, "after the gateway deleted the conference");
}

/// Mixer A dies just as the conference is being handed over to B, before anything could
/// be validated: each client is failed over to B once its stream from A has been silent
/// for 100 ms (the frames A never sent are lost, as on any dead stream), keeping its
/// SSRC, source address and sequence numbering; the handover completes and says so.
#[test]
fn clients_fail_over_when_the_old_mixer_dies_during_a_handover() {
    let _turn = one_at_a_time();
    let mut net = Net::start("hf");
    let parts = net.conference("c5", A, 3);
    let secs = 8;
    let (peers, t0) = start_clients(&net, &parts, secs);
    std::thread::sleep(Duration::from_millis(2500));
    let body = json!({"to": net.b.url(B)}).to_string();
    let (code, v) = net.call("POST", "/v1/conferences/c5/handover", Some(&body));
    assert_eq!(code, 202, "{v}");
    net.b.kill_hard(A);
    let killed = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + HANDOVER_LIMIT;
    let conf = loop {
        let (code, conf) = net.call("GET", "/v1/conferences/c5", None);
        assert_eq!(code, 200, "{conf}");
        if matches!(
            conf["handover"]["state"].as_str(),
            Some("completed" | "aborted")
        ) {
            break conf;
        }
        assert!(Instant::now() < deadline, "handover not done: {conf}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let h = &conf["handover"];
    eprintln!(
        "mixer A killed at {killed:.2} s; handover {} after {} ms: {}",
        h["state"], h["duration_ms"], h["reason"]
    );
    assert_eq!(h["state"], "completed", "{conf}");
    assert!(
        h["reason"].as_str().unwrap_or("").contains("failed over"),
        "{conf}"
    );
    assert_eq!(conf["mixer"], json!(net.b.url(B)), "{conf}");
    let reports: Vec<Value> = peers.into_iter().map(Peer::finish).collect();
    eprint!("{}", media_counters(&mut net.b));
    for (i, r) in reports.iter().enumerate() {
        eprintln!("{}", summary(i, r));
        let c = &r["continuity"];
        let local = parts[i]["local"].as_str().unwrap();
        assert_eq!(c["sources"], json!([local]), "client {i}: {c}");
        assert_eq!(c["ssrcs"], json!([parts[i]["ssrc"]]), "client {i}: {c}");
        for k in ["duplicates", "reorders", "ts_bad_steps"] {
            assert_eq!(c[k], 0, "client {i}: {k}: {c}");
        }
        let missing = c["missing"].as_u64().unwrap_or(u64::MAX);
        assert!(
            missing <= 15,
            "client {i}: {missing} packets lost at the failover: {c}"
        );
        let gap = c["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
        assert!(gap < 400.0, "client {i}: a {gap} ms hole: {c}");
        let received = c["packets"].as_u64().unwrap_or(0);
        assert!(
            received + missing >= u64::from(secs - 1) * 50,
            "client {i}: the stream went on to the end: {c}"
        );
    }
    net.assert_handover_metrics(1.0, 0.0);
}

/// (f) Draining mixer A moves its conference to B by a seamless handover, with no
/// request naming B; A takes no new conference until it is undrained.
#[test]
fn draining_a_mixer_moves_its_conference_seamlessly() {
    let _turn = one_at_a_time();
    let mut net = Net::start("hd");
    let parts = net.conference("c6", A, 3);
    let secs = 9;
    let (peers, t0) = start_clients(&net, &parts, secs);
    std::thread::sleep(Duration::from_millis(2500));
    let first = t0.elapsed().as_secs_f64();
    let drain = json!({"mixer": net.b.url(A)}).to_string();
    let (code, v) = net.call("POST", "/v1/mixers/drain", Some(&drain));
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        (&v["draining"], &v["conferences"]),
        (&json!(true), &json!(1)),
        "{v}"
    );
    // The gateway's pump hands the conference over by itself.
    let deadline = Instant::now() + HANDOVER_LIMIT;
    let conf = loop {
        let (_, conf) = net.call("GET", "/v1/conferences/c6", None);
        if conf["handover"]["state"] == "completed" {
            break conf;
        }
        assert!(
            Instant::now() < deadline,
            "the drain did not move c6: {conf}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let last = t0.elapsed().as_secs_f64();
    assert_eq!(conf["mixer"], json!(net.b.url(B)), "{conf}");
    net.wait_conferences_on(A, 0, "A was drained");
    let (_, mixers) = net.call("GET", "/v1/mixers", None);
    let a = &mixers["mixers"][A];
    assert_eq!(
        (&a["draining"], &a["conferences"]),
        (&json!(true), &json!(0)),
        "{mixers}"
    );
    // Nothing new lands on A meanwhile.
    let named = json!({"id": "c7", "mixer": net.b.url(A)}).to_string();
    let (code, v) = net.call("POST", "/v1/conferences", Some(&named));
    assert_eq!(code, 409, "{v}");
    let reports = finish_clients(&mut net, peers, &parts, &[conf]);
    for (i, r) in reports.iter().enumerate() {
        assert_continuous(i, r, &parts[i], secs, (first - 1.0, last + 1.0));
    }
    net.assert_handover_metrics(1.0, 0.0);
    let (code, v) = net.call("POST", "/v1/mixers/undrain", Some(&drain));
    assert_eq!((code, &v["draining"]), (200, &json!(false)), "{v}");
    let (code, v) = net.call("POST", "/v1/conferences", Some(&named));
    assert_eq!(code, 201, "{v}");
    let (code, v) = net.call("DELETE", "/v1/conferences/c7", None);
    assert_eq!(code, 204, "{v}");
    net.delete("c6");
}

/// (g) An SRTP client through the gateway: the gateway unprotects what it sends for
/// the mixers (which see plain RTP) and protects the mixers' stream with its own key,
/// after rewriting it — so a handover to B (instruct mode) goes by unnoticed: every
/// packet authenticates, one SSRC, no gap in the sequence numbers, and the client
/// hears both plain clients, who hear it.
#[test]
fn an_srtp_client_is_relayed_through_a_handover() {
    use common::srtp::srtp_client;
    use tutti_control_core::srtp::{decode_key, encode_key, generate_key, Suite};
    use tutti_dataplane::srtp::{Context, Direction};
    let _turn = one_at_a_time();
    let mut net = Net::start("hs");
    let mut parts = net.conference("c7", A, 2);
    let ours = generate_key(Suite::AesCm128HmacSha1_80);
    let body = json!({
        "remote": "198.18.0.4:4000",
        "codec": "pcmu",
        "srtp": {"suite": "AES_CM_128_HMAC_SHA1_80", "key": encode_key(&ours)},
    });
    let (code, p) = net.call(
        "POST",
        "/v1/conferences/c7/participants",
        Some(&body.to_string()),
    );
    assert_eq!(code, 201, "{p}");
    let theirs = decode_key(
        Suite::AesCm128HmacSha1_80,
        p["srtp"]["key"].as_str().unwrap(),
    )
    .expect("the gateway's key");
    assert_ne!(theirs, ours, "the gateway sends with a key of its own");
    let (_, on_mixer) = net.b.procs[A].call("GET", "/v1/conferences/c7", None);
    assert!(
        on_mixer["participants"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|q| q.get("srtp").is_none_or(Value::is_null))),
        "the mixer sees the clients plain: {on_mixer}"
    );
    let local = p["local"].as_str().unwrap().parse().unwrap();
    parts.push(p);
    let secs = 9;
    // The plain clients hear each other and the SRTP client.
    let peers: Vec<Peer> = (0..2)
        .map(|i| {
            let remote = parts[i]["local"].as_str().unwrap();
            Peer::start(&net.b.ns, i, remote, secs, &others(i, 3), &[])
        })
        .collect();
    let t0 = Instant::now();
    let secure = srtp_client(
        &net.b.ns,
        "198.18.0.4:4000".parse().unwrap(),
        local,
        TONES[2],
        u64::from(secs),
        (
            Context::new(&ours, Direction::Outbound).unwrap(),
            Context::new(&theirs, Direction::Inbound).unwrap(),
        ),
        u32::MAX,
    );
    std::thread::sleep(Duration::from_millis(2500));
    let first = t0.elapsed().as_secs_f64();
    let hs = vec![net.handover_ok("c7", B, "instruct", t0)];
    let last = t0.elapsed().as_secs_f64();
    net.wait_conferences_on(A, 0, "A was left");
    let heard = secure.join().expect("SRTP client thread");
    let reports = finish_clients(&mut net, peers, &parts[..2], &hs);
    for (i, r) in reports.iter().enumerate() {
        assert_continuous(i, r, &parts[i], secs, (first - 1.0, last + 1.0));
    }

    assert_eq!(
        heard.unprotect_errors, 0,
        "gateway SRTP did not authenticate"
    );
    let want = (secs as usize - 1) * 50;
    assert!(
        heard.received.len() >= want,
        "{} packets, want {want}",
        heard.received.len()
    );
    let ssrc = parts[2]["ssrc"].as_u64().expect("the SSRC the API gave") as u32;
    assert!(
        heard.received.iter().all(|&(s, _)| s == ssrc),
        "one SSRC, {ssrc:#x}"
    );
    let gaps: Vec<(u16, u16)> = heard
        .received
        .windows(2)
        .filter(|w| w[1].1 != w[0].1.wrapping_add(1))
        .map(|w| (w[0].1, w[1].1))
        .collect();
    assert!(gaps.is_empty(), "sequence numbers not contiguous: {gaps:?}");
    let wav = std::env::temp_dir().join(format!("{}.wav", unique("tutti-ho-srtp-")));
    let tail = heard.pcm.len().saturating_sub(3 * 8000);
    std::fs::write(
        &wav,
        tutti_dataplane::rx::wav::write_pcm16(&heard.pcm[tail..]),
    )
    .unwrap();
    let r = analyze_wav(&wav, &TONES);
    let _ = std::fs::remove_file(&wav);
    eprintln!("SRTP client heard ({} packets sent): {r}", heard.sent);
    let own = db(&r, TONES[2]);
    assert!(
        db(&r, TONES[0]) - own >= 20.0 && db(&r, TONES[1]) - own >= 20.0,
        "the SRTP client does not hear both plain clients after the handover: {r}"
    );
    let text = http_get(net.b.api(GW), "/metrics")
        .map(|(_, t)| t)
        .unwrap_or_default();
    assert!(
        text.contains("tutti_relay_srtp_failures_total"),
        "the gateway's metrics have the relay's SRTP failures"
    );
    for name in [
        "tutti_srtp_auth_failures_total",
        "tutti_srtp_replayed_packets_total",
        "tutti_relay_srtp_failures_total",
    ] {
        assert_eq!(metric_sum(&text, name), 0.0, "{name} at the gateway");
    }
    net.assert_handover_metrics(1.0, 0.0);
    net.delete("c7");
}
