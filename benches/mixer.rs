//! Mixer benchmark: one conference tick (decode every inbound G.711 frame, pick the talkers,
//! mix, encode, build every outbound RTP packet) for conferences of 3, 10, 100 and 1,000
//! participants with 3 active talkers, against a reference that works the way Janus
//! AudioBridge and FreeSWITCH mod_conference do: one participant at a time, per-sample
//! loops, everyone summed, and a custom `sum - own` mix plus an encode for every
//! participant.
//!
//! Criterion reports both per size; at the end one summary line per size is printed:
//! `mixer conf=<n> talkers=<t> kernel=<k> ns_per_participant_frame=<x> reference_ns=<y>
//! speedup=<y/x> participants_per_core=<20000000/x>`.
//! `MIXER_KERNEL=scalar|avx2|avx512` forces a kernel.

use std::hint::black_box;
use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion};
use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::{g711, CodecKind};
use tutti_dataplane::mixer::kernel::{Kernel, KernelKind};
use tutti_dataplane::mixer::{Input, Mixer, MixerConfig, ParticipantConfig, Slot};
use tutti_dataplane::rtp_send::{RtpSender, RtpSenderConfig};

const SIZES: [usize; 4] = [3, 10, 100, 1000];
const TALKERS: usize = 3;
const FRAME: usize = 160;
const PACKET: usize = 12 + FRAME;
/// Distinct input frames per participant, cycled through tick by tick.
const VARIANTS: usize = 8;

/// Deterministic xorshift so the bench needs no seeding crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Mu-law frames: talkers carry loud tones, everyone else low background noise.
fn make_frames(n: usize) -> Vec<Vec<[u8; FRAME]>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|p| {
            (0..VARIANTS)
                .map(|v| {
                    let mut f = [0u8; FRAME];
                    for (i, b) in f.iter_mut().enumerate() {
                        let t = (v * FRAME + i) as f64 / 8000.0;
                        let s = if p < TALKERS {
                            let freq = 300.0 + 250.0 * p as f64;
                            6000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()
                        } else {
                            (rng.next() % 41) as f64 - 20.0
                        };
                        *b = g711::ulaw_encode(s as i16);
                    }
                    f
                })
                .collect()
        })
        .collect()
}

/// tutti: the product path.
struct Tutti {
    mixer: Mixer,
    slots: Vec<Slot>,
    senders: Vec<RtpSender>,
    out: Vec<[u8; PACKET]>,
    tick: u64,
}

impl Tutti {
    fn new(n: usize, kernel: KernelKind) -> Tutti {
        let config = MixerConfig {
            capacity: n,
            kernel: Some(kernel),
            ..MixerConfig::default()
        };
        let mut mixer = Mixer::new(config).expect("mixer");
        let slots = (0..n)
            .map(|_| {
                mixer
                    .add_participant(ParticipantConfig::new(CodecKind::Pcmu))
                    .expect("slot")
            })
            .collect();
        let senders = (0..n)
            .map(|i| {
                RtpSender::new(RtpSenderConfig {
                    ssrc: 0x1000 + i as u32,
                    payload_type: 0,
                    initial_sequence: i as u16,
                    initial_timestamp: 0,
                })
            })
            .collect();
        Tutti {
            mixer,
            slots,
            senders,
            out: vec![[0u8; PACKET]; n],
            tick: 0,
        }
    }

    fn run(&mut self, frames: &[Vec<[u8; FRAME]>]) {
        let v = (self.tick as usize) % VARIANTS;
        for (slot, f) in self.slots.iter().zip(frames) {
            let _ = self.mixer.set_input(*slot, Input::Encoded(&f[v]));
        }
        self.mixer.tick(Instant::from_nanos(self.tick * 20_000_000));
        for ((slot, tx), out) in self.slots.iter().zip(&mut self.senders).zip(&mut self.out) {
            if let Some(o) = self.mixer.output(*slot) {
                let _ = tx.write_packet(out, o.payload, FRAME as u32, o.voiced);
            }
        }
        self.tick += 1;
        black_box(&self.out);
    }
}

/// Per-sample mu-law decode by formula (what a generic C mixer does).
fn ref_ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

/// Per-sample mu-law encode with a segment search (the classic C formulation).
fn ref_ulaw_encode(sample: i16) -> u8 {
    let (mut v, mask) = if sample < 0 {
        (0x84 - i32::from(sample), 0x7F)
    } else {
        (i32::from(sample) + 0x84, 0xFF)
    };
    if v > 0x7FFF {
        v = 0x7FFF;
    }
    let mut seg = 0;
    while seg < 8 && v > (0xFF << seg) {
        seg += 1;
    }
    (((seg << 4) | ((v >> (seg + 3)) & 0x0F)) as u8) ^ mask
}

/// The Janus/FreeSWITCH-style reference: per participant decode, one shared sum of
/// everyone, then per participant `sum - own`, clamp, encode and packetise.
struct Reference {
    decoded: Vec<[i16; FRAME]>,
    sum: [i32; FRAME],
    out: Vec<[u8; PACKET]>,
    seq: Vec<u16>,
    ts: u32,
    tick: usize,
}

impl Reference {
    fn new(n: usize) -> Reference {
        Reference {
            decoded: vec![[0; FRAME]; n],
            sum: [0; FRAME],
            out: vec![[0u8; PACKET]; n],
            seq: vec![0; n],
            ts: 0,
            tick: 0,
        }
    }

    fn run(&mut self, frames: &[Vec<[u8; FRAME]>]) {
        let v = self.tick % VARIANTS;
        for (dec, f) in self.decoded.iter_mut().zip(frames) {
            for (d, &c) in dec.iter_mut().zip(f[v].iter()) {
                *d = ref_ulaw_decode(c);
            }
        }
        self.sum = [0; FRAME];
        for dec in &self.decoded {
            for (s, &d) in self.sum.iter_mut().zip(dec.iter()) {
                *s += i32::from(d);
            }
        }
        for (i, (dec, out)) in self.decoded.iter().zip(self.out.iter_mut()).enumerate() {
            out[0] = 0x80;
            out[1] = 0;
            out[2..4].copy_from_slice(&self.seq[i].to_be_bytes());
            out[4..8].copy_from_slice(&self.ts.to_be_bytes());
            out[8..12].copy_from_slice(&(0x1000 + i as u32).to_be_bytes());
            self.seq[i] = self.seq[i].wrapping_add(1);
            for ((o, &s), &d) in out[12..].iter_mut().zip(self.sum.iter()).zip(dec.iter()) {
                let mixed = (s - i32::from(d)).clamp(-32768, 32767) as i16;
                *o = ref_ulaw_encode(mixed);
            }
        }
        self.ts = self.ts.wrapping_add(FRAME as u32);
        self.tick += 1;
        black_box(&self.out);
    }
}

/// Calls of `f` that take about `round`.
fn calibrate(f: &mut impl FnMut(), round: Duration) -> u64 {
    let start = WallInstant::now();
    let mut calls = 0u64;
    while start.elapsed() < round / 4 {
        f();
        calls += 1;
    }
    (calls * 4).max(1)
}

/// Nanoseconds per call of `f` over `calls` calls.
fn time_round(f: &mut impl FnMut(), calls: u64) -> f64 {
    let t = WallInstant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_nanos() as f64 / calls as f64
}

/// Median nanoseconds per call of `a` and of `b`, measured in alternating rounds so both
/// see the same machine conditions (the cores are shared).
fn median_pair(
    mut a: impl FnMut(),
    mut b: impl FnMut(),
    round: Duration,
    rounds: usize,
) -> (f64, f64) {
    let (ca, cb) = (calibrate(&mut a, round), calibrate(&mut b, round));
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ta.push(time_round(&mut a, ca));
        tb.push(time_round(&mut b, cb));
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    (ta[rounds / 2], tb[rounds / 2])
}

fn main() {
    let kernel = std::env::var("MIXER_KERNEL")
        .ok()
        .and_then(|k| KernelKind::from_name(&k))
        .and_then(Kernel::new)
        .unwrap_or_else(Kernel::best);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .configure_from_args();
    let all_frames: Vec<_> = SIZES.iter().map(|&n| make_frames(n)).collect();
    {
        let mut group = c.benchmark_group("mixer_tick");
        for (&n, frames) in SIZES.iter().zip(&all_frames) {
            let mut t = Tutti::new(n, kernel.kind());
            group.bench_with_input(
                BenchmarkId::new(format!("tutti-{}", kernel.name()), n),
                frames,
                |b, f| b.iter(|| t.run(f)),
            );
            let mut r = Reference::new(n);
            group.bench_with_input(BenchmarkId::new("reference", n), frames, |b, f| {
                b.iter(|| r.run(f))
            });
        }
        group.finish();
    }
    c.final_summary();

    for (&n, frames) in SIZES.iter().zip(&all_frames) {
        let mut t = Tutti::new(n, kernel.kind());
        let mut r = Reference::new(n);
        let round = Duration::from_millis(if n >= 1000 { 300 } else { 120 });
        let (x, y) = median_pair(|| t.run(frames), || r.run(frames), round, 9);
        let (x, y) = (x / n as f64, y / n as f64);
        println!(
            "mixer conf={n} talkers={TALKERS} kernel={} ns_per_participant_frame={x:.1} reference_ns={y:.1} speedup={:.1} participants_per_core={:.0}",
            kernel.name(),
            y / x,
            20_000_000.0 / x
        );
    }
}
