//! Seeded virtual-time tests of the receive path's jitter buffer: reordering, loss
//! bursts, duplicates and jitter spikes through `ReceiveStream`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tutti_dataplane::clock::{Clock, Instant, VirtualClock};
use tutti_dataplane::codec::g711;
use tutti_dataplane::rx::jitter::JitterConfig;
use tutti_dataplane::rx::{Event, ReceiveConfig, ReceiveStream, RtpIn};

const SRC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40000);
const TICK: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug)]
struct Net {
    base: Duration,
    jitter_ms: u64,
    loss: f64,
    burst_loss: f64,
    duplicate: f64,
    /// (start packet, end packet, extra delay)
    spike: Option<(u32, u32, Duration)>,
    /// Packets from this index on are silent (low-level) audio.
    silent_from: Option<u32>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            base: Duration::from_millis(30),
            jitter_ms: 0,
            loss: 0.0,
            burst_loss: 0.0,
            duplicate: 0.0,
            spike: None,
            silent_from: None,
        }
    }
}

struct Outcome {
    /// Per sequence number: (arrival, first tick it was played in)
    played: BTreeMap<u64, Instant>,
    arrival: BTreeMap<u64, Instant>,
    order_ok: bool,
    sent: u32,
    lost_in_network: u32,
    duplicates_sent: u32,
    stream: ReceiveStream,
    targets: Vec<(u32, Duration)>,
}

fn payload(i: u32, silent: bool) -> Vec<u8> {
    (0..160)
        .map(|k| {
            let t = f64::from(i * 160 + k) / 8000.0;
            let amp = if silent { 20.0 } else { 8000.0 };
            g711::ulaw_encode((amp * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16)
        })
        .collect()
}

fn run(seed: u64, packets: u32, net: Net, config: JitterConfig) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let start = clock.now();
    // Schedule every delivery: (arrival, index, seq, ts).
    let mut deliveries = Vec::new();
    let (mut lost, mut dups) = (0, 0);
    let mut in_burst = false;
    for i in 0..packets {
        let send = start + TICK * i;
        in_burst = if in_burst {
            rng.gen_bool(0.6)
        } else {
            rng.gen_bool(net.burst_loss)
        };
        if in_burst || rng.gen_bool(net.loss) {
            lost += 1;
            continue;
        }
        let mut delay = net.base + Duration::from_millis(rng.gen_range(0..=net.jitter_ms));
        if let Some((a, b, extra)) = net.spike {
            if (a..b).contains(&i) {
                delay += extra;
            }
        }
        deliveries.push((send + delay, i));
        if rng.gen_bool(net.duplicate) {
            dups += 1;
            deliveries.push((
                send + delay + Duration::from_millis(rng.gen_range(0..40)),
                i,
            ));
        }
    }
    deliveries.sort();
    let mut stream = ReceiveStream::new(
        ReceiveConfig {
            jitter: config,
            inband_dtmf: false,
            ..Default::default()
        },
        start,
    )
    .unwrap();
    let mut played = BTreeMap::new();
    let mut arrival = BTreeMap::new();
    let mut order_ok = true;
    let mut last_played: Option<u64> = None;
    let mut targets = Vec::new();
    let mut next = 0;
    let mut out = [0i16; 160];
    // Ticks are offset from the sender's packet clock by 7 ms.
    clock.set(start + Duration::from_millis(7));
    let end = start + TICK * (packets + 30);
    let mut tick_no = 0u32;
    while clock.now() < end {
        let now = clock.now();
        while let Some(&(at, i)) = deliveries.get(next) {
            if at > now {
                break;
            }
            let silent = net.silent_from.is_some_and(|s| i >= s);
            let data = payload(i, silent);
            let seq = (60000u32 + i) as u16; // wraps at 65536
            let ts = 4_294_960_000u32.wrapping_add(i * 160); // wraps too
            let _ = stream.handle_rtp(
                at,
                SRC,
                RtpIn {
                    ssrc: 0x1234,
                    seq,
                    timestamp: ts,
                    payload_type: 0,
                    payload: &data,
                    audio_level: None,
                },
                &mut |_e: Event| {},
            );
            arrival.entry(u64::from(i)).or_insert(at);
            next += 1;
        }
        let info = stream.poll_frame(now, &mut out, &mut |_e| {});
        if let (Some(a), Some(b)) = (info.first_seq, info.last_seq) {
            // Extended numbers start at 60000: map back to packet index.
            let (a, b) = (a - 60000, b - 60000);
            if last_played.is_some_and(|l| a < l) || a > b {
                order_ok = false;
            }
            for s in a..=b {
                if arrival.contains_key(&s) {
                    played.entry(s).or_insert(now);
                }
            }
            last_played = Some(b);
        }
        targets.push((tick_no, stream.target_delay()));
        tick_no += 1;
        clock.advance(TICK);
    }
    Outcome {
        played,
        arrival,
        order_ok,
        sent: packets,
        lost_in_network: lost,
        duplicates_sent: dups,
        stream,
        targets,
    }
}

fn max_delay(o: &Outcome) -> Duration {
    o.played
        .iter()
        .map(|(s, p)| *p - o.arrival[s])
        .max()
        .unwrap_or_default()
}

#[test]
fn clean_network_plays_everything_in_order_with_min_delay() {
    let o = run(1, 500, Net::default(), JitterConfig::default());
    assert!(o.order_ok);
    assert_eq!(o.played.len(), 500);
    let d = max_delay(&o);
    assert!(d <= Duration::from_millis(40), "delay {d:?}");
    let c = o.stream.jitter_counters();
    assert_eq!(c.late, 0);
    assert_eq!(c.played_samples, 500 * 160);
}

#[test]
fn reorder_jitter_duplicates_and_loss_bursts() {
    for seed in 0..8 {
        let net = Net {
            jitter_ms: 60,
            loss: 0.02,
            burst_loss: 0.01,
            duplicate: 0.05,
            ..Default::default()
        };
        let o = run(seed, 1500, net, JitterConfig::default());
        assert!(o.order_ok, "seed {seed}: out of order");
        let c = *o.stream.jitter_counters();
        // No packet's samples played twice: played samples never exceed the distinct
        // packets that were played.
        assert!(
            c.played_samples <= 160 * o.played.len() as u64,
            "seed {seed}"
        );
        assert!(
            c.duplicates >= u64::from(o.duplicates_sent) * 9 / 10,
            "seed {seed}: {c:?}"
        );
        let received = (o.sent - o.lost_in_network) as usize;
        // Jitter of 60 ms within a 200 ms bound: (nearly) nothing is late.
        assert!(
            o.played.len() * 100 >= received * 98,
            "seed {seed}: played {} of {received}",
            o.played.len()
        );
        let d = max_delay(&o);
        assert!(d <= Duration::from_millis(220), "seed {seed}: delay {d:?}");
        // The buffer adapted to the jitter: target between 60 and 100 ms.
        let target = o.stream.target_delay();
        assert!(
            (Duration::from_millis(60)..=Duration::from_millis(100)).contains(&target),
            "seed {seed}: target {target:?}"
        );
        assert!(c.concealed_samples > 0, "losses were concealed");
        eprintln!(
            "seed {seed}: played {}/{received}, max delay {d:?}, target {target:?}, {c:?}",
            o.played.len()
        );
    }
}

#[test]
fn delay_stays_within_configured_bounds_under_extreme_jitter() {
    let config = JitterConfig {
        min_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(120),
        ..Default::default()
    };
    for seed in 0..4 {
        let net = Net {
            jitter_ms: 300,
            ..Default::default()
        };
        let o = run(seed, 1000, net, config);
        assert!(o.order_ok);
        let d = max_delay(&o);
        assert!(d <= Duration::from_millis(140), "seed {seed}: delay {d:?}");
        let c = o.stream.jitter_counters();
        assert!(c.late > 0, "packets beyond the bound are dropped as late");
        eprintln!(
            "extreme seed {seed}: max delay {d:?}, played {}, late {}",
            o.played.len(),
            c.late
        );
        assert!(o
            .targets
            .iter()
            .all(|(_, t)| *t >= Duration::from_millis(40) && *t <= Duration::from_millis(120)));
    }
}

#[test]
fn grows_on_spike_and_shrinks_in_silence() {
    let net = Net {
        jitter_ms: 5,
        spike: Some((300, 310, Duration::from_millis(120))),
        silent_from: Some(700),
        ..Default::default()
    };
    let o = run(3, 1500, net, JitterConfig::default());
    assert!(o.order_ok);
    let at = |tick: u32| o.targets[tick as usize].1;
    assert!(at(250) <= Duration::from_millis(30), "{:?}", at(250));
    // The spike raised the target...
    assert!(at(320) >= Duration::from_millis(120), "{:?}", at(320));
    let c = o.stream.jitter_counters();
    assert!(c.stalls >= 5, "grew by stalling: {c:?}");
    // ...and after the windows expire it comes back down; in the silent part the
    // extra delay is skipped away.
    assert!(at(1400) <= Duration::from_millis(30), "{:?}", at(1400));
    assert!(c.skipped_samples >= 160 * 5, "{c:?}");
    // Packets after the shrink play with low delay again.
    let late_delays: Vec<_> = o
        .played
        .range(1300..1500)
        .map(|(s, p)| *p - o.arrival[s])
        .collect();
    assert!(
        late_delays.iter().all(|d| *d <= Duration::from_millis(60)),
        "{:?}",
        late_delays.iter().max()
    );
}
