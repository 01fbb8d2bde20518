//! Capacity of one dataplane core: the real poll loop (rx -> receive path -> N-1 mixer ->
//! RTP out) with conferences of 3, 10 and 100 G.711 participants, ramped until frames
//! would be late.
//!
//! `io=memory`: the loop on the in-memory backend. Time is virtual (so the generator's own
//! cost does not count) but the loop's real cost is measured as this thread's CPU time:
//! a 20 ms window whose work takes longer than 20 ms would have made its frames late. `busy_ratio` is work time over media time; `p99_mix_latency_us` is how
//! long after its due time a conference's last packet was queued, in real time.
//!
//! `io=virtio`: the real `tutti` binary polling one core on `virtio_user`, fed through
//! `net_vhost` by a generator in this process on the other core, conferences created
//! through the REST API; participants are added in steps until tutti's own metrics show
//! more than 0.1% of frames mixed later than one ptime after they were due (a core that
//! is not isolated from the OS is preempted now and then), the core busier than 90%, or
//! fewer mixed frames coming back than expected.
//!
//! Prints one line per case:
//! `capacity io=<virtio|memory> conf=<n> participants_per_core=<N> late_frames=<x> busy_ratio=<r> p99_mix_latency_us=<l>`

mod common;
use common::{bench_eal, metric, VirtioRig};

use cpu_time::ThreadTime;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tutti_dataplane::clock::{Clock, Instant};
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, Conference, ConferenceSpec, Engine, EngineCounters, Liveness, MediaCommand, PartKey,
    Participant, ParticipantSettings, ParticipantSpec,
};
use tutti_dataplane::io::{MemoryIo, PacketBuf, PacketIo, BURST};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::poll::{command_ring, Command, Handoff, PollLoop, PortAddr};
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::stats::{CoreCounters, LatencyHistogram};
use tutti_dataplane::wire::{eth, ipv4, udp};
use tutti_dpdk::TscClock;

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const GEN_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 2]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const FIRST_PORT: u16 = 10_000;
const PTIME_MS: u64 = 20;
const WARMUP_WINDOWS: u64 = 10;
const MEASURED_WINDOWS: u64 = 25;

/// Virtual time for the loop's schedule plus the real time spent so far in this step, so
/// the engine's mixing-latency histogram measures real processing delay.
struct StepClock<'a> {
    virtual_now: Instant,
    tsc: &'a TscClock,
    step_start: u64,
}

impl Clock for StepClock<'_> {
    fn now(&self) -> Instant {
        let real = (self.tsc.cycles() - self.step_start) as u128 * 1_000_000_000
            / u128::from(self.tsc.hz());
        self.virtual_now + Duration::from_nanos(real as u64)
    }
}

/// An RTP/UDP frame from the generator to local `port` (UDP checksum 0: optional in IPv4).
fn template(port: u16, ssrc: u32, level: i16) -> Vec<u8> {
    let mut rtp = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0];
    rtp.extend_from_slice(&ssrc.to_be_bytes());
    // A 500 Hz tone at the participant's level, as G.711 mu-law.
    let pcm: Vec<i16> = (0..160)
        .map(|n| {
            (f64::from(level) * (2.0 * std::f64::consts::PI * 500.0 * n as f64 / 8000.0).sin())
                as i16
        })
        .collect();
    let mut payload = vec![0u8; 160];
    let _ = CodecKind::Pcmu.encode(&pcm, &mut payload);
    rtp.extend_from_slice(&payload);
    let mut f = vec![0u8; 42 + rtp.len()];
    f[42..].copy_from_slice(&rtp);
    udp::write_header(&mut f[34..], GEN_IP, OUR_IP, port, port);
    f[40..42].fill(0);
    ipv4::write_header(
        &mut f[14..],
        GEN_IP,
        OUR_IP,
        ipv4::PROTO_UDP,
        8 + rtp.len(),
        1,
    );
    eth::EthHeader {
        dst: OUR_MAC,
        src: GEN_MAC,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(&mut f);
    f
}

struct Trial {
    late_frames: u64,
    busy_ratio: f64,
    p99_us: u64,
}

fn run_trial(tsc: &TscClock, conf_size: usize, participants: usize) -> Trial {
    let confs = participants / conf_size;
    let total = confs * conf_size;
    let (mut commands, rx) = command_ring(4096);
    let (ev_p, mut events) = rtrb::RingBuffer::new(1 << 16);
    let (ret_p, _retired) = rtrb::RingBuffer::new(confs + total + 16);
    let engine_counters = Arc::new(EngineCounters::default());
    let last_port = FIRST_PORT + total as u16;
    let engine = Engine::new(
        0,
        vec![FIRST_PORT..=last_port],
        confs + 1,
        ev_p,
        ret_p,
        engine_counters.clone(),
    );
    let addr = PortAddr {
        mac: OUR_MAC,
        ip: OUR_IP,
        prefix_len: 24,
        gateway: None,
    };
    let pool = 3 * total + 1024;
    let mut lp = PollLoop::new(
        vec![(MemoryIo::new(pool, 256), addr)],
        Arc::new(CoreCounters::default()),
        rx,
        0,
        engine,
        Handoff::none(),
    );
    let start = Instant::from_nanos(1_000_000_000);
    let step = |lp: &mut PollLoop<MemoryIo>, now: Instant| {
        let clock = StepClock {
            virtual_now: now,
            tsc,
            step_start: tsc.cycles(),
        };
        while lp.run_once(now, &clock) {}
    };

    // Create the conferences spread over one ptime, so their ticks are spread too (as
    // they are when calls arrive at random times); each participant's frames arrive in
    // the millisecond before its conference ticks.
    let mut templates: Vec<(u64, Vec<u8>)> = Vec::with_capacity(total);
    for c in 0..confs {
        let phase_ns = c as u64 * PTIME_MS * 1_000_000 / confs as u64;
        let created = start + Duration::from_nanos(phase_ns);
        let phase = phase_ns / 1_000_000;
        let key = ConfKey(c as u32);
        let spec = ConferenceSpec {
            key,
            ptime: Ptime::Ms20,
            active_speakers: ActiveSpeakers::Loudest(3),
            max_participants: conf_size as u16,
            timing: Default::default(),
        };
        let _ = commands.push(Command::Media(MediaCommand::AddConference(
            Conference::new(spec).expect("conference"),
        )));
        for i in 0..conf_size {
            let n = c * conf_size + i;
            let port = FIRST_PORT + n as u16;
            let spec = ParticipantSpec {
                conf: key,
                key: PartKey(n as u32),
                local_port: port,
                remote: SocketAddrV4::new(GEN_IP, port),
                codec: CodecKind::Pcmu,
                telephone_event_pt: Some(101),
                rtcp: false,
                ssrc: 0x1000_0000 + n as u32,
                settings: ParticipantSettings::default(),
                liveness: Liveness::default(),
            };
            let p = Participant::new(spec, created, NtpClock::default()).expect("participant");
            let _ = commands.push(Command::Media(MediaCommand::AddParticipant(p)));
            templates.push((
                phase,
                template(port, 0x7000_0000 + n as u32, 2000 + 300 * (i as i16 % 20)),
            ));
        }
        // Apply now, so the conference ticks at its own phase.
        step(&mut lp, created);
    }
    let mut now = start + Duration::from_millis(PTIME_MS);
    step(&mut lp, now);

    let mut work_ns_total = 0u128;
    let mut late_frames = 0u64;
    let mut hist_before = engine_counters.mix_latency.counts();
    let mut seq = 0u16;
    for window in 0..WARMUP_WINDOWS + MEASURED_WINDOWS {
        let mut window_ns = 0u128;
        for ms in 0..PTIME_MS {
            // The generator: every participant whose conference phase is now sends a frame.
            let io = lp.io_mut(0).expect("port");
            for (_, t) in templates.iter_mut().filter(|(p, _)| *p == ms) {
                t[44..46].copy_from_slice(&seq.to_be_bytes());
                let ts = u32::from(seq) * 160;
                t[46..50].copy_from_slice(&ts.to_be_bytes());
                io.inject(t);
            }
            // CPU time of this thread: the work itself, not the time the OS gave the
            // (non-isolated) CPU to someone else.
            let c0 = ThreadTime::now();
            step(&mut lp, now);
            window_ns += c0.elapsed().as_nanos();
            let io = lp.io_mut(0).expect("port");
            while let Some(b) = io.tx.pop_front() {
                io.recycle(b);
            }
            while events.pop().is_ok() {}
            now += Duration::from_millis(1);
        }
        seq = seq.wrapping_add(1);
        if window >= WARMUP_WINDOWS {
            work_ns_total += window_ns;
            if window_ns > u128::from(PTIME_MS) * 1_000_000 {
                late_frames += total as u64;
            }
        }
        if window + 1 == WARMUP_WINDOWS {
            // Measure latency only after warm-up.
            hist_before = engine_counters.mix_latency.counts();
        }
    }
    let counts = engine_counters.mix_latency.counts();
    let measured: Vec<u64> = counts
        .iter()
        .zip(hist_before.iter())
        .map(|(a, b)| a - b)
        .collect();
    let work_ns = work_ns_total as f64;
    Trial {
        late_frames,
        busy_ratio: work_ns / (MEASURED_WINDOWS * PTIME_MS * 1_000_000) as f64,
        p99_us: LatencyHistogram::quantile_us(&measured, 0.99).unwrap_or(0),
    }
}

fn ramp(tsc: &TscClock, conf_size: usize) {
    let ok = |t: &Trial| t.late_frames == 0 && t.busy_ratio < 0.9;
    // Every participant needs its own local port above FIRST_PORT.
    let cap = usize::from(u16::MAX - FIRST_PORT) / conf_size * conf_size;
    let mut lo = conf_size;
    let mut lo_trial = run_trial(tsc, conf_size, lo);
    let mut hi = None;
    let mut n = 1000usize.max(conf_size);
    while lo < cap {
        let t = run_trial(tsc, conf_size, n);
        if ok(&t) {
            lo = n;
            lo_trial = t;
            n = (n * 2).min(cap);
        } else {
            hi = Some(n);
            break;
        }
    }
    if let Some(mut hi) = hi {
        while hi - lo > (lo / 16).max(conf_size) {
            let mid = (lo + hi) / 2 / conf_size * conf_size;
            let t = run_trial(tsc, conf_size, mid);
            if ok(&t) {
                lo = mid;
                lo_trial = t;
            } else {
                hi = mid;
            }
        }
    }
    let per_core = lo / conf_size * conf_size;
    println!(
        "capacity io=memory conf={conf_size} participants_per_core={per_core} late_frames={} busy_ratio={:.3} p99_mix_latency_us={}",
        lo_trial.late_frames, lo_trial.busy_ratio, lo_trial.p99_us
    );
}

/// What tutti's metrics say at one moment: ticks later than one ptime, latency bucket
/// counts, busy seconds, run seconds.
struct Snapshot {
    late_ticks: f64,
    buckets: Vec<f64>,
    busy_s: f64,
    run_s: f64,
}

fn snapshot(rig: &VirtioRig) -> Snapshot {
    let text = rig.metrics();
    let count = metric(&text, "tutti_mix_latency_seconds_count");
    let within = metric(&text, "tutti_mix_latency_seconds_bucket{le=\"0.02\"}");
    let mut buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("tutti_mix_latency_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    // Cumulative -> per bucket.
    for i in (1..buckets.len()).rev() {
        buckets[i] -= buckets[i - 1];
    }
    Snapshot {
        late_ticks: count - within,
        buckets,
        busy_s: metric(&text, "tutti_core_busy_seconds_total{core=\"1\"}"),
        run_s: metric(&text, "tutti_core_run_seconds_total{core=\"1\"}"),
    }
}

/// Send every participant's frame once per 20 ms for `secs` seconds, spread over the
/// milliseconds, and count the mixed frames that come back.
fn generate(rig: &mut VirtioRig, templates: &mut [(u64, Vec<u8>)], secs: u64) -> (u64, u64) {
    let (mut sent, mut back) = (0u64, 0u64);
    let mut tx = Vec::with_capacity(8 * BURST);
    let mut rx = Vec::with_capacity(BURST);
    let t0 = std::time::Instant::now();
    for k in 0..secs * 1000 {
        let slot = k % PTIME_MS;
        let seq = (k / PTIME_MS) as u16;
        let target = t0 + Duration::from_millis(k);
        loop {
            rig.queue.rx_burst(&mut rx, BURST);
            back += rx.drain(..).count() as u64;
            if std::time::Instant::now() >= target {
                break;
            }
        }
        for (_, t) in templates.iter_mut().filter(|(p, _)| *p == slot) {
            t[44..46].copy_from_slice(&seq.to_be_bytes());
            t[46..50].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            if tx.len() >= 4 * BURST {
                break; // the ring stayed full: this frame is not sent (counted)
            }
            if let Some(mut m) = rig.queue.alloc() {
                if m.set_len(t.len()) {
                    m.data_mut().copy_from_slice(t);
                    tx.push(m);
                }
            }
            if tx.len() >= BURST {
                sent += rig.queue.tx_burst(&mut tx) as u64;
            }
        }
        // What the ring had no room for waits for the next millisecond, like a NIC queue.
        sent += rig.queue.tx_burst(&mut tx) as u64;
    }
    sent += rig.queue.tx_burst(&mut tx) as u64;
    (sent, back)
}

fn virtio_ramp(rig: &mut VirtioRig, conf_size: usize) {
    // Double from a few hundred participants.
    let mut target = conf_size * (300 / conf_size).max(1);
    let secs = 3;
    let mut templates: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut confs: Vec<String> = Vec::new();
    let mut best: Option<(usize, u64, f64, u64)> = None;
    loop {
        while templates.len() + conf_size <= target {
            let id = format!("cap{}", confs.len());
            let body = format!(r#"{{"id":"{id}","max_participants":{conf_size}}}"#);
            match rig.http("POST", "/v1/conferences", Some(&body)) {
                Some((201, _)) => confs.push(id.clone()),
                other => panic!("creating a conference failed: {other:?}"),
            }
            for i in 0..conf_size {
                let n = templates.len();
                let port = 10_000 + 2 * n as u16;
                let body =
                    format!(r#"{{"remote":"198.18.0.2:{port}","codec":"pcmu","rtcp":false}}"#);
                match rig.http(
                    "POST",
                    &format!("/v1/conferences/{id}/participants"),
                    Some(&body),
                ) {
                    Some((201, b)) => assert!(
                        b.contains(&format!(":{port}\"")),
                        "ports are allocated in order: {b}"
                    ),
                    other => panic!("adding a participant failed: {other:?}"),
                }
                templates.push((
                    (n as u64) % PTIME_MS,
                    template(port, 0x7000_0000 + n as u32, 2000 + 300 * (i as i16 % 20)),
                ));
            }
        }
        // Warm up, then measure.
        generate(rig, &mut templates, 1);
        let before = snapshot(rig);
        let (sent, back) = generate(rig, &mut templates, secs);
        let after = snapshot(rig);
        let n = templates.len();
        let late_frames = (after.late_ticks - before.late_ticks).max(0.0) as u64 * conf_size as u64;
        let busy = (after.busy_s - before.busy_s) / (after.run_s - before.run_s).max(1e-9);
        let counts: Vec<u64> = after
            .buckets
            .iter()
            .zip(&before.buckets)
            .map(|(a, b)| (a - b).max(0.0) as u64)
            .collect();
        let p99 = LatencyHistogram::quantile_us(&counts, 0.99).unwrap_or(0);
        let expected = (n as u64) * secs * 1000 / PTIME_MS;
        eprintln!(
            "capacity-step io=virtio conf={conf_size} participants={n} late_frames={late_frames} busy_ratio={busy:.3} p99_mix_latency_us={p99} frames_sent={sent} frames_back={back} frames_expected={expected}"
        );
        // The dataplane thread here shares its vCPU with the VM's housekeeping threads
        // (tens of involuntary context switches a second, some lasting milliseconds), so
        // a few late frames happen at any load: allow 0.1% (an isolated core has none).
        let ok = late_frames * 1000 <= expected
            && busy < 0.9
            && back * 100 >= expected * 99
            && sent * 100 >= expected * 99;
        if !ok {
            break;
        }
        best = Some((n, late_frames, busy, p99));
        target = (target * 2).min(usize::from(u16::MAX - 10_000) / 2 / conf_size * conf_size);
        if target <= n {
            break;
        }
    }
    for id in &confs {
        let deleted = rig.http("DELETE", &format!("/v1/conferences/{id}"), None);
        assert!(
            matches!(deleted, Some((204, _))),
            "deleting {id}: {deleted:?}"
        );
    }
    // The core must be back to nothing before the next case.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let engine = metric(&rig.metrics(), "tutti_rtp_sent_packets_total{core=\"1\"}");
        std::thread::sleep(Duration::from_millis(100));
        if metric(&rig.metrics(), "tutti_rtp_sent_packets_total{core=\"1\"}") == engine {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tutti still sends after every conference was deleted"
        );
    }
    let (n, late, busy, p99) = best.unwrap_or((0, 0, 0.0, 0));
    println!(
        "capacity io=virtio conf={conf_size} participants_per_core={n} late_frames={late} busy_ratio={busy:.3} p99_mix_latency_us={p99}"
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    // `cargo bench --bench capacity -- memory` (or `virtio`) runs one backend only.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |io: &str| only.is_empty() || only.iter().any(|a| a == io);
    let (eal, sock) = bench_eal("cap");
    let tsc = TscClock::new(&eal);
    if wants("memory") {
        for conf_size in [3usize, 10, 100] {
            ramp(&tsc, conf_size);
        }
    }
    if !wants("virtio") {
        return;
    }
    let mut rig = VirtioRig::start(
        &eal,
        &sock,
        "  udp_ports: 10000-65535\n  participants_per_core: 30000\n  conferences_per_core: 12000\n",
    );
    for conf_size in [3usize, 10, 100] {
        virtio_ramp(&mut rig, conf_size);
    }
    drop(rig);
    drop(eal);
}
