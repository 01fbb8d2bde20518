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
//! The memory backend also ramps conferences of 10 with every stream SRTP (AES_CM_128_
//! HMAC_SHA1_80 and AEAD_AES_128_GCM): tutti unprotects what it receives and protects
//! what it sends, in place; the generator protects its frames outside the measured time
//! (`cargo bench --bench capacity -- srtp` runs only these).
//!
//! Prints one line per case:
//! `capacity io=<virtio|memory> conf=<n> [srtp=<suite>] participants_per_core=<N> late_frames=<x> busy_ratio=<r> p99_mix_latency_us=<l>`
//! and, for the memory cases, one line of stage costs at that load (see [`stage_costs`]):
//! `stages io=memory conf=<n> participants=<N> ns_per_participant_frame: rx=.. dispatch=.. jitter_insert=.. playout_decode=.. vad=.. dtmf=.. mix=.. encode=.. packet_build=.. tx=.. sum=.. (engine_tick=..)`
//!
//! The memory trial checks that the benchmark is lossless: every frame the generator sends
//! is received and mixed and none is concealed (else it panics). Participants use local
//! ports from 1024 on, one each, so a core is measured up to 64,510 participants.
//! `TUTTI_CAPACITY_TRIAL=<conf>:<participants>` runs one memory trial and its stage costs
//! only (for a profiler).

mod common;
use common::{bench_eal, loadavg, metric, steal_idle_ms, Sched, VirtioRig};

use cpu_time::ThreadTime;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tutti_dataplane::clock::{Clock, Instant};
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, Conference, ConferenceSpec, Engine, EngineCounters, Liveness, MediaCommand, PartKey,
    Participant, ParticipantSettings, ParticipantSpec, SrtpKeys, Transmit,
};
use tutti_dataplane::host::{uplink, CorePorts};
use tutti_dataplane::io::{MemBuf, MemoryIo, PacketBuf, PacketIo, BURST};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::poll::{command_ring, Command, Handoff, PollLoop, PortAddr};
use tutti_dataplane::rate::SampleRate;
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::rx::PayloadTypes;
use tutti_dataplane::srtp::{Context, Direction, MasterKey, Suite, MAX_KEY_LEN};
use tutti_dataplane::stats::{CoreCounters, LatencyHistogram};
use tutti_dataplane::wire::{eth, ipv4, udp};
use tutti_dpdk::TscClock;

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const GEN_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 2]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const FIRST_PORT: u16 = 1024;
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

/// The RTP packet `rtp` in an Ethernet/IPv4/UDP frame from the generator to local `port`
/// (UDP checksum 0: optional in IPv4), in `f`.
fn wrap(port: u16, rtp: &[u8], f: &mut Vec<u8>) {
    f.clear();
    f.resize(42 + rtp.len(), 0);
    f[42..].copy_from_slice(rtp);
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
    .write(f);
}

/// An RTP/UDP frame from the generator to local `port`.
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
    let mut f = Vec::new();
    wrap(port, &rtp, &mut f);
    f
}

/// The master key of the SRTP cases, both ways (a benchmark needs no secret).
fn bench_key(suite: Suite) -> MasterKey {
    MasterKey::from_array(suite, [0x5a; MAX_KEY_LEN])
}

/// Conference `c` of the benchmark: Loudest(3) of `conf_size` at 20 ms.
fn conference(c: usize, conf_size: usize) -> Box<Conference> {
    Conference::new(ConferenceSpec {
        key: ConfKey(c as u32),
        ptime: Ptime::Ms20,
        rate: SampleRate::Hz8000,
        active_speakers: ActiveSpeakers::Loudest(3),
        max_participants: conf_size as u16,
        timing: Default::default(),
    })
    .expect("conference")
}

/// Participant `n` (local port `FIRST_PORT + n`, G.711 mu-law, RFC 4733, SRTP with
/// `srtp` if given) of conference `c`.
fn participant(c: usize, n: usize, created: Instant, srtp: Option<Suite>) -> Box<Participant> {
    let port = FIRST_PORT + n as u16;
    let spec = ParticipantSpec {
        conf: ConfKey(c as u32),
        key: PartKey(n as u32),
        local_port: port,
        remote: SocketAddrV4::new(GEN_IP, port),
        codec: CodecKind::Pcmu,
        payload_types: PayloadTypes::negotiated(CodecKind::Pcmu, None, Some(101)),
        rtcp: false,
        ssrc: 0x1000_0000 + n as u32,
        settings: ParticipantSettings::default(),
        liveness: Liveness::default(),
        srtp: srtp.map(|s| SrtpKeys {
            local: bench_key(s),
            remote: bench_key(s),
        }),
    };
    Participant::new(spec, created, NtpClock::default()).expect("participant")
}

/// The generator's frame for participant `n`, member `i` of its conference.
fn participant_frame(n: usize, i: usize) -> Vec<u8> {
    template(
        FIRST_PORT + n as u16,
        0x7000_0000 + n as u32,
        2000 + 300 * (i as i16 % 20),
    )
}

struct Trial {
    late_frames: u64,
    busy_ratio: f64,
    p99_us: u64,
}

/// One trial; with `srtp` every participant's stream is SRTP of that suite (the
/// generator protects its frames outside the measured time).
fn run_trial(tsc: &TscClock, conf_size: usize, participants: usize, srtp: Option<Suite>) -> Trial {
    let confs = participants / conf_size;
    let total = confs * conf_size;
    let (mut commands, rx) = command_ring(4096);
    let (up, mut up_rx) = uplink(1 << 16, confs + total + 16);
    let engine_counters = Arc::new(EngineCounters::default());
    let last_port = FIRST_PORT + total as u16;
    let engine = Engine::new(
        CorePorts::single(FIRST_PORT..=last_port),
        confs + 1,
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
        up,
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
        let _ = commands.push(Command::Media(MediaCommand::AddConference(conference(
            c, conf_size,
        ))));
        for i in 0..conf_size {
            let n = c * conf_size + i;
            let p = participant(c, n, created, srtp);
            let _ = commands.push(Command::Media(MediaCommand::AddParticipant(p)));
            templates.push((phase, participant_frame(n, i)));
        }
        // Apply now, so the conference ticks at its own phase.
        step(&mut lp, created);
    }
    let mut now = start + Duration::from_millis(PTIME_MS);
    step(&mut lp, now);

    let mut work_ns_total = 0u128;
    let mut late_frames = 0u64;
    let mut hist_before = engine_counters.mix_latency.counts();
    let media = |c: &EngineCounters| [c.frames_lost.get(), c.rtp_in.get(), c.rtp_out.get()];
    let mut media_before = media(&engine_counters);
    let mut seq = 0u16;
    // SRTP: the generator's context per participant, and a frame to protect into.
    let mut protect: Vec<Context> = srtp
        .iter()
        .flat_map(|&s| (0..total).map(move |_| Context::new(&bench_key(s), Direction::Outbound)))
        .collect::<Result<_, _>>()
        .expect("SRTP context");
    let (mut rtp, mut frame) = ([0u8; 256], Vec::with_capacity(256));
    for window in 0..WARMUP_WINDOWS + MEASURED_WINDOWS {
        let mut window_ns = 0u128;
        for ms in 0..PTIME_MS {
            // The generator: every participant whose conference phase is now sends a frame.
            let io = lp.io_mut(0).expect("port");
            // The loop drops the buffers it received (a DPDK mbuf goes back to its pool
            // then; a memory buffer does not): top the pool up outside the measured time.
            io.replenish(pool);
            for (n, (_, t)) in templates
                .iter_mut()
                .enumerate()
                .filter(|(_, (p, _))| *p == ms)
            {
                t[44..46].copy_from_slice(&seq.to_be_bytes());
                let ts = u32::from(seq) * 160;
                t[46..50].copy_from_slice(&ts.to_be_bytes());
                let queued = match protect.get_mut(n) {
                    Some(ctx) => {
                        let len = t.len() - 42;
                        rtp[..len].copy_from_slice(&t[42..]);
                        let len = ctx.protect_rtp(&mut rtp, len).expect("protect");
                        wrap(FIRST_PORT + n as u16, &rtp[..len], &mut frame);
                        io.inject(&frame)
                    }
                    None => io.inject(t),
                };
                assert!(queued, "the generator's frame was not queued");
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
            while up_rx.events.pop().is_ok() {}
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
            media_before = media(&engine_counters);
        }
    }
    let counts = engine_counters.mix_latency.counts();
    let measured: Vec<u64> = counts
        .iter()
        .zip(hist_before.iter())
        .map(|(a, b)| a - b)
        .collect();
    let work_ns = work_ns_total as f64;
    let [concealed, rtp_in, rtp_out] = {
        let (a, b) = (media(&engine_counters), media_before);
        [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
    };
    // The benchmark loses nothing: every frame must be received, played and mixed.
    let expected = total as u64 * MEASURED_WINDOWS;
    assert_eq!(
        (concealed, rtp_in, rtp_out),
        (0, expected, expected),
        "{total} participants: frames concealed, received and sent in a lossless run"
    );
    Trial {
        late_frames,
        busy_ratio: work_ns / (MEASURED_WINDOWS * PTIME_MS * 1_000_000) as f64,
        p99_us: LatencyHistogram::quantile_us(&measured, 0.99).unwrap_or(0),
    }
}

/// Ramp conferences of `conf_size` (SRTP of `srtp` if given) until frames would be late.
fn ramp(tsc: &TscClock, conf_size: usize, srtp: Option<Suite>) {
    let ok = |t: &Trial| t.late_frames == 0 && t.busy_ratio < 0.9;
    // Every participant needs its own local port above FIRST_PORT.
    let cap = usize::from(u16::MAX - FIRST_PORT) / conf_size * conf_size;
    let mut lo = conf_size;
    let mut lo_trial = run_trial(tsc, conf_size, lo, srtp);
    let mut hi = None;
    let mut n = 1000usize.max(conf_size);
    while lo < cap {
        let t = run_trial(tsc, conf_size, n, srtp);
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
            let t = run_trial(tsc, conf_size, mid, srtp);
            if ok(&t) {
                lo = mid;
                lo_trial = t;
            } else {
                hi = mid;
            }
        }
    }
    let per_core = lo / conf_size * conf_size;
    let srtp_field = srtp
        .map(|s| format!(" srtp={}", s.name()))
        .unwrap_or_default();
    println!(
        "capacity io=memory conf={conf_size}{srtp_field} participants_per_core={per_core} late_frames={} busy_ratio={:.3} p99_mix_latency_us={}",
        lo_trial.late_frames, lo_trial.busy_ratio, lo_trial.p99_us
    );
    if srtp.is_none() {
        stage_costs(tsc, conf_size, per_core);
    }
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

/// What the generator did in one run.
#[derive(Default)]
struct GenReport {
    sent: u64,
    back: u64,
    /// Frames not sent because the ring stayed full.
    unsent: u64,
    /// Frames not sent because the pool was empty.
    no_mbuf: u64,
    /// How late after its millisecond the generator got to its frames, at worst.
    max_lag_us: u64,
}

/// Send every participant's frame once per 20 ms for `secs` seconds, spread over the
/// milliseconds, and count the mixed frames that come back.
fn generate(rig: &mut VirtioRig, templates: &mut [(u64, Vec<u8>)], secs: u64) -> GenReport {
    let mut r = GenReport::default();
    let mut tx = Vec::with_capacity(8 * BURST);
    let mut rx = Vec::with_capacity(BURST);
    let t0 = std::time::Instant::now();
    for k in 0..secs * 1000 {
        let slot = k % PTIME_MS;
        let seq = (k / PTIME_MS) as u16;
        let target = t0 + Duration::from_millis(k);
        // Drain what came back, then sleep to the millisecond (a spinning generator
        // competes with tutti's control thread and every other task on its CPU, and the
        // scheduler preempts it; a sleeper gets the CPU back when it wakes).
        loop {
            rig.queue.rx_burst(&mut rx, BURST);
            let n = rx.drain(..).count() as u64;
            r.back += n;
            if n < BURST as u64 {
                break;
            }
        }
        let now = std::time::Instant::now();
        if target > now {
            std::thread::sleep(target - now);
        }
        let lag = std::time::Instant::now().saturating_duration_since(target);
        r.max_lag_us = r.max_lag_us.max(lag.as_micros() as u64);
        for (_, t) in templates.iter_mut().filter(|(p, _)| *p == slot) {
            t[44..46].copy_from_slice(&seq.to_be_bytes());
            t[46..50].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            if tx.len() >= 4 * BURST {
                r.unsent += 1; // the ring stayed full: this frame is not sent
                continue;
            }
            match rig.queue.alloc() {
                Some(mut m) => {
                    if m.set_len(t.len()) {
                        m.data_mut().copy_from_slice(t);
                        tx.push(m);
                    }
                }
                None => r.no_mbuf += 1,
            }
            if tx.len() >= BURST {
                r.sent += rig.queue.tx_burst(&mut tx) as u64;
            }
        }
        // What the ring had no room for waits for the next millisecond, like a NIC queue.
        r.sent += rig.queue.tx_burst(&mut tx) as u64;
    }
    r.sent += rig.queue.tx_burst(&mut tx) as u64;
    r
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
        let pid = rig.tutti_pid();
        let (dp0, ctl0, gen0) = (
            Sched::of_threads(pid, "rte-worker"),
            Sched::of_threads(pid, "tutti"),
            Sched::own(),
        );
        let (missed0, nombuf0) = (
            rig.tutti_xstat("rx_missed_errors"),
            rig.tutti_xstat("rx_mbuf_allocation_errors"),
        );
        let (cpu0, cpu1) = (steal_idle_ms(0), steal_idle_ms(1));
        let g = generate(rig, &mut templates, secs);
        let steal = (steal_idle_ms(0).0 - cpu0.0, steal_idle_ms(1).0 - cpu1.0);
        let (sent, back) = (g.sent, g.back);
        let after = snapshot(rig);
        let (dp, ctl, gen) = (
            Sched::of_threads(pid, "rte-worker").since(dp0),
            Sched::of_threads(pid, "tutti").since(ctl0),
            Sched::own().since(gen0),
        );
        let missed = rig.tutti_xstat("rx_missed_errors") - missed0;
        let nombuf = rig.tutti_xstat("rx_mbuf_allocation_errors") - nombuf0;
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
            "capacity-step io=virtio conf={conf_size} participants={n} late_frames={late_frames} busy_ratio={busy:.3} p99_mix_latency_us={p99} frames_sent={sent} frames_back={back} frames_expected={expected} gen_unsent={} gen_no_mbuf={} gen_max_lag_us={} dataplane_involuntary_switches={} dataplane_on_cpu_ms={} dataplane_waiting_ms={} control_involuntary_switches={} control_on_cpu_ms={} generator_involuntary_switches={} generator_waiting_ms={} tutti_rx_missed={missed} tutti_rx_nombuf={nombuf} steal_ms_cpu0={} steal_ms_cpu1={} loadavg={:.2}",
            g.unsent,
            g.no_mbuf,
            g.max_lag_us,
            dp.involuntary,
            dp.on_cpu_ms,
            dp.waiting_ms,
            ctl.involuntary,
            ctl.on_cpu_ms,
            gen.involuntary,
            gen.waiting_ms,
            steal.0,
            steal.1,
            loadavg()
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
    // `cargo bench --bench capacity -- memory` (or `virtio`) runs one backend only,
    // `-- srtp` the memory backend's SRTP cases only.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |io: &str| only.is_empty() || only.iter().any(|a| a == io);
    let (eal, sock) = bench_eal("cap");
    let tsc = TscClock::new(&eal);
    // `TUTTI_CAPACITY_TRIAL=<conf>:<participants>`: one memory trial (for a profiler).
    let trial = std::env::var("TUTTI_CAPACITY_TRIAL").unwrap_or_default();
    if let Some((conf, n)) = trial
        .split_once(':')
        .and_then(|(c, n)| Some((c.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
    {
        let t = run_trial(&tsc, conf, n, None);
        stage_costs(&tsc, conf, n);
        println!(
            "capacity-trial io=memory conf={conf} participants={n} late_frames={} busy_ratio={:.3}",
            t.late_frames, t.busy_ratio
        );
        return;
    }
    if wants("memory") {
        for conf_size in [3usize, 10, 100] {
            ramp(&tsc, conf_size, None);
        }
    }
    // The same with every stream SRTP (libsrtp2, in place), at two suites (`-- srtp`
    // runs only these).
    if wants("memory") || wants("srtp") {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm] {
            ramp(&tsc, 10, Some(suite));
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

/// Where a bench [`Engine`] sends: the payload is written into one scratch buffer.
struct Sink {
    buf: Vec<u8>,
}

impl Transmit for Sink {
    fn send(
        &mut self,
        _src_port: u16,
        _dst: SocketAddrV4,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> bool {
        fill(&mut self.buf[42..]) > 0
    }
}

/// The thread CPU time `f` takes, in ns.
fn cpu_ns(f: impl FnOnce()) -> u128 {
    let t = ThreadTime::now();
    f();
    t.elapsed().as_nanos()
}

/// Stage costs for `n` participants in conferences of `conf_size`: each stage's real code
/// run over every participant's frames for a tick at a time, in isolation, timed as this
/// thread's CPU time, over the measured ticks; printed as ns per participant-frame.
///
/// - `rx`: rx burst and Ethernet/IPv4/UDP classification in the real poll loop (with no
///   listener on the ports, so the frames stop there and are freed);
/// - `dispatch`: [`Engine::handle_udp`] (RTP parse, port lookup, the stream's latching
///   and sequence statistics) minus `jitter_insert`;
/// - `jitter_insert`, `playout_decode`, `vad`, `dtmf`: a [`JitterBuffer`] (insert; poll),
///   [`Vad`] and [`InbandDetector`] per participant, as the receive stream drives them;
/// - `mix`: [`Mixer::set_input`] and [`Mixer::tick`] per conference minus `encode`, the
///   kernel's G.711 encodes of as many own and shared mixes as the mixer made;
/// - `packet_build`: the RTP header and payload ([`RtpSender::write_packet`]) and the
///   UDP, IPv4 and Ethernet headers, as the poll loop writes them;
/// - `tx`: a buffer from the pool per packet and the tx bursts;
/// - `engine_tick`: the engine's whole tick ([`Engine::poll`], RTP payloads written to a
///   scratch buffer), to compare with the sum of its stages.
fn stage_costs(tsc: &TscClock, conf_size: usize, n: usize) {
    use tutti_dataplane::mixer::{kernel::Kernel, Input, Mixer, MixerConfig, ParticipantConfig};
    use tutti_dataplane::rtp_send::{RtpSender, RtpSenderConfig};
    use tutti_dataplane::rx::inband::InbandDetector;
    use tutti_dataplane::rx::jitter::{JitterBuffer, JitterConfig, MediaKind, MediaPacket};
    use tutti_dataplane::rx::vad::{Vad, VadConfig, VadInput};

    let confs = n / conf_size;
    let n = confs * conf_size;
    let start = Instant::from_nanos(1_000_000_000);
    let mut frames: Vec<Vec<u8>> = (0..n)
        .map(|i| participant_frame(i, i % conf_size))
        .collect();

    // The real engine (dispatch, whole ticks) and a poll loop with no listeners (rx).
    let (mut retired, _retired_rx) = rtrb::RingBuffer::new(confs + n + 16);
    let mut engine = Engine::new(
        CorePorts::single(FIRST_PORT..=FIRST_PORT + n as u16),
        confs + 1,
        Arc::new(EngineCounters::default()),
    );
    for c in 0..confs {
        engine.apply(
            MediaCommand::AddConference(conference(c, conf_size)),
            start,
            &mut retired,
        );
        for n in c * conf_size..(c + 1) * conf_size {
            engine.apply(
                MediaCommand::AddParticipant(participant(c, n, start, None)),
                start,
                &mut retired,
            );
        }
    }
    let (_commands, rx) = command_ring(16);
    let idle = Engine::new(
        CorePorts::single(FIRST_PORT..=FIRST_PORT + n as u16),
        1,
        Arc::new(EngineCounters::default()),
    );
    let addr = PortAddr {
        mac: OUR_MAC,
        ip: OUR_IP,
        prefix_len: 24,
        gateway: None,
    };
    let pool = n + 1024;
    let mut lp = PollLoop::new(
        vec![(MemoryIo::new(pool, 256), addr)],
        Arc::new(CoreCounters::default()),
        rx,
        0,
        idle,
        Handoff::none(),
        uplink(16, 16).0,
    );
    let mut sink = Sink { buf: vec![0; 1514] };

    // The components, one set per participant and a mixer per conference.
    let mut jbs: Vec<JitterBuffer> = (0..n)
        .map(|i| JitterBuffer::new(JitterConfig::default(), i as u64).expect("jitter buffer"))
        .collect();
    let mut vads: Vec<Vad> = (0..n).map(|_| Vad::new(VadConfig::default())).collect();
    let mut dets: Vec<InbandDetector> = (0..n).map(|_| InbandDetector::new()).collect();
    let mut pcm = vec![0i16; n * 160];
    let mut mixers: Vec<(Mixer, Vec<tutti_dataplane::mixer::Slot>)> = (0..confs)
        .map(|_| {
            let mut m = Mixer::new(MixerConfig {
                capacity: conf_size,
                active_speakers: ActiveSpeakers::Loudest(3),
                ..MixerConfig::default()
            })
            .expect("mixer");
            let slots = (0..conf_size)
                .map(|_| {
                    m.add_participant(ParticipantConfig::new(CodecKind::Pcmu))
                        .expect("slot")
                })
                .collect();
            (m, slots)
        })
        .collect();
    let mut senders: Vec<RtpSender> = (0..n)
        .map(|i| {
            RtpSender::new(RtpSenderConfig {
                ssrc: i as u32,
                payload_type: 0,
                initial_sequence: 1,
                initial_timestamp: 0,
            })
        })
        .collect();
    let mut packets = vec![0u8; n * 256];
    let kernel = Kernel::best();
    let (mut sum, mut encoded) = (vec![0i32; 160], vec![0u8; 320]);
    let mut tx: Vec<MemBuf> = Vec::with_capacity(BURST);

    // ns totals: rx, handle_udp, engine tick, insert, playout, vad, dtmf, mix+encode, encode, build, tx.
    let mut t = [0u128; 11];
    let clock = StepClock {
        virtual_now: start,
        tsc,
        step_start: tsc.cycles(),
    };
    for k in 0..WARMUP_WINDOWS + MEASURED_WINDOWS {
        let mut s = [0u128; 11];
        let seq = k as u16;
        let arrival = start + Duration::from_millis(20 * k + 19);
        let tick = start + Duration::from_millis(20 * (k + 1));
        for f in frames.iter_mut() {
            f[44..46].copy_from_slice(&seq.to_be_bytes());
            f[46..50].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        }
        let io = lp.io_mut(0).expect("port");
        io.replenish(pool);
        for f in &frames {
            assert!(io.inject(f), "frame queued");
        }
        s[0] = cpu_ns(|| while lp.run_once(arrival, &clock) {});
        s[1] = cpu_ns(|| {
            for (i, f) in frames.iter_mut().enumerate() {
                let src = SocketAddrV4::new(GEN_IP, FIRST_PORT + i as u16);
                engine.handle_udp(arrival, src, FIRST_PORT + i as u16, &mut f[42..]);
            }
        });
        s[2] = cpu_ns(|| {
            while engine.poll_timeout().is_some_and(|d| d <= tick) {
                engine.poll(tick, &mut sink, &|| tick);
            }
        });
        while engine.poll_event().is_some() {}
        s[3] = cpu_ns(|| {
            for (jb, f) in jbs.iter_mut().zip(&frames) {
                let pkt = MediaPacket {
                    ext_seq: 65_536 + k,
                    timestamp: u32::from(seq) * 160,
                    kind: MediaKind::Audio(CodecKind::Pcmu),
                    payload: &f[54..],
                    audio_level: None,
                };
                jb.insert(arrival, pkt);
            }
        });
        s[4] = cpu_ns(|| {
            for (jb, out) in jbs.iter_mut().zip(pcm.chunks_exact_mut(160)) {
                jb.poll(tick, out);
            }
        });
        s[5] = cpu_ns(|| {
            for (vad, frame) in vads.iter_mut().zip(pcm.chunks_exact(160)) {
                vad.on_frame(
                    tick,
                    VadInput::Audio {
                        pcm: frame,
                        level: None,
                    },
                    &mut |_| {},
                );
            }
        });
        s[6] = cpu_ns(|| {
            for (det, frame) in dets.iter_mut().zip(pcm.chunks_exact(160)) {
                det.push(tick, frame, &mut |_| {});
            }
        });
        let before: Vec<(u64, u64)> = mixers
            .iter()
            .map(|(m, _)| (m.stats().own_encodes, m.stats().shared_encodes))
            .collect();
        s[7] = cpu_ns(|| {
            for (c, (m, slots)) in mixers.iter_mut().enumerate() {
                for (j, &slot) in slots.iter().enumerate() {
                    let i = c * conf_size + j;
                    let _ = m.set_input(slot, Input::Pcm(&pcm[i * 160..(i + 1) * 160]));
                }
                m.tick(tick);
            }
        });
        // The same number of encodes, of the same kind, on a real sum.
        for (c, ((m, _), (own0, shared0))) in mixers.iter().zip(&before).enumerate() {
            let (own, shared) = (
                m.stats().own_encodes - own0,
                m.stats().shared_encodes - shared0,
            );
            sum.fill(0);
            for j in 0..conf_size.min(3) {
                let i = c * conf_size + j;
                kernel.accumulate(&mut sum, &pcm[i * 160..(i + 1) * 160]);
            }
            let own_pcm = &pcm[c * conf_size * 160..(c * conf_size + 1) * 160];
            s[8] += cpu_ns(|| {
                for _ in 0..own {
                    kernel.encode_minus(CodecKind::Pcmu, &sum, own_pcm, &mut encoded);
                }
                for _ in 0..shared {
                    kernel.encode_sum(CodecKind::Pcmu, &sum, &mut encoded);
                }
            });
        }
        s[9] = cpu_ns(|| {
            for (c, (m, slots)) in mixers.iter().enumerate() {
                for (j, &slot) in slots.iter().enumerate() {
                    let i = c * conf_size + j;
                    let Some(out) = m.output(slot) else { continue };
                    let pkt = &mut packets[i * 256..(i + 1) * 256];
                    let len = senders[i]
                        .write_packet(&mut pkt[42..], out.payload, 160, out.voiced)
                        .unwrap_or(0);
                    let port = FIRST_PORT + i as u16;
                    udp::write_header(&mut pkt[34..42 + len], OUR_IP, GEN_IP, port, port);
                    ipv4::write_header(
                        &mut pkt[14..],
                        OUR_IP,
                        GEN_IP,
                        ipv4::PROTO_UDP,
                        8 + len,
                        seq,
                    );
                    eth::EthHeader {
                        dst: GEN_MAC,
                        src: OUR_MAC,
                        ethertype: eth::ETHERTYPE_IPV4,
                    }
                    .write(pkt);
                }
            }
        });
        let io = lp.io_mut(0).expect("port");
        io.replenish(pool);
        for _ in 0..n.div_ceil(BURST) {
            s[10] += cpu_ns(|| {
                while tx.len() < BURST {
                    let Some(b) = io.alloc() else { break };
                    tx.push(b);
                }
                io.tx_burst(&mut tx);
            });
            while let Some(b) = io.tx.pop_front() {
                io.recycle(b);
            }
        }
        if k >= WARMUP_WINDOWS {
            for (a, b) in t.iter_mut().zip(s) {
                *a += b;
            }
        }
    }
    let per = |ns: u128| ns as f64 / (n as u64 * MEASURED_WINDOWS) as f64;
    let dispatch = t[1].saturating_sub(t[3]);
    let mix = t[7].saturating_sub(t[8]);
    let stages = [
        t[0], dispatch, t[3], t[4], t[5], t[6], mix, t[8], t[9], t[10],
    ];
    println!(
        "stages io=memory conf={conf_size} participants={n} ns_per_participant_frame: rx={:.0} dispatch={:.0} jitter_insert={:.0} playout_decode={:.0} vad={:.0} dtmf={:.0} mix={:.0} encode={:.0} packet_build={:.0} tx={:.0} sum={:.0} (engine_tick={:.0})",
        per(t[0]), per(dispatch), per(t[3]), per(t[4]), per(t[5]), per(t[6]), per(mix), per(t[8]), per(t[9]), per(t[10]),
        per(stages.iter().sum()), per(t[2]),
    );
}
