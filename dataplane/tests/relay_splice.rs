//! The handover splice in virtual time: mixers A and B are deterministic generators (the
//! same payload per frame on both, each with its own SSRC, sequence and timestamp bases),
//! their packets reach the splice at scripted times (offset, jitter, loss, reordering),
//! and the stream the client gets is checked frame by frame.

use std::time::Duration;

use proptest::prelude::*;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::relay::splice::{
    Decision, DropWhy, FailReason, Leg, MismatchReason, RtpHead, Splice, SpliceConfig, SpliceEvent,
    SpliceState,
};
use tutti_dataplane::wire::rewrite::RtpRewrite;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

const FS: u32 = 160;
const PTIME_NS: i64 = 20_000_000;
const MS_NS: i64 = 1_000_000;
/// Virtual time of frame 0 on A (leaves room for negative offsets).
const T0_NS: i64 = 1_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn instant(ns: i64) -> Instant {
    Instant::from_nanos(ns as u64)
}

/// The frame's payload: the same bytes from both mixers.
fn payload(key: u32) -> Vec<u8> {
    let mut x = key.wrapping_mul(2_654_435_761) | 1;
    (0..160)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A deterministic ±`j` µs jitter source.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn jitter_ns(&mut self, j_us: i64) -> i64 {
        if j_us == 0 {
            return 0;
        }
        let span = 2 * j_us + 1;
        ((self.next() % span as u64) as i64 - j_us) * 1000
    }
}

/// A leg's RTP header bases: frame `n` carries `seq0 + n`, `ts0 + n * FS`.
#[derive(Clone, Copy, Debug)]
struct Bases {
    ssrc: u32,
    seq0: u16,
    ts0: u32,
}

#[derive(Clone, Debug)]
struct Scenario {
    cfg: SpliceConfig,
    /// A sends frames 0..frames, B frames b_from..frames.
    frames: u32,
    b_from: u32,
    /// arrival(B) - arrival(A) of a frame, before jitter.
    d_ns: i64,
    jitter_us: i64,
    seed: u64,
    /// What the client sees for frame 0.
    client: Bases,
    a: Bases,
    b: Bases,
    a_delay: Duration,
    lose_a: Vec<u32>,
    lose_b: Vec<u32>,
    /// (frame, extra ns) late packets of A.
    late_a: Vec<(u32, i64)>,
    /// (frame, extra ns) late packets of B.
    late_b: Vec<(u32, i64)>,
    /// (frame, extra ns) copies of B's packets arriving that much after the original.
    dup_b: Vec<(u32, i64)>,
    /// B's payload differs for these frames, or for all.
    bad_b: Vec<u32>,
    all_bad_b: bool,
    /// B's sequence number jumps by one from this frame on.
    b_seq_skip_from: Option<u32>,
    /// Call `commit` / `abort` right after A's frame n was handed to the splice.
    commit_after: Option<u32>,
    abort_after: Option<u32>,
    /// Build with `new` and neutral arguments, then `start` with the real ones.
    via_start: bool,
}

impl Scenario {
    fn new(d_ms: i64) -> Self {
        Scenario {
            cfg: SpliceConfig::default(),
            frames: 60,
            b_from: 10,
            d_ns: d_ms * MS_NS,
            jitter_us: 0,
            seed: 1,
            client: Bases {
                ssrc: 0xC11E_0001,
                seq0: 1000,
                ts0: 50_000,
            },
            a: Bases {
                ssrc: 0xAAAA_0001,
                seq0: 20_000,
                ts0: 3_000_000,
            },
            b: Bases {
                ssrc: 0xBBBB_0002,
                seq0: 7,
                ts0: 900_000_000,
            },
            a_delay: Duration::ZERO,
            lose_a: vec![],
            lose_b: vec![],
            late_a: vec![],
            late_b: vec![],
            dup_b: vec![],
            bad_b: vec![],
            all_bad_b: false,
            b_seq_skip_from: None,
            commit_after: None,
            abort_after: None,
            via_start: false,
        }
    }

    fn key(&self, n: u32) -> u32 {
        self.client.ts0.wrapping_add(n.wrapping_mul(FS))
    }

    fn client_seq(&self, n: u32) -> u16 {
        self.client.seq0.wrapping_add(n as u16)
    }

    /// A's rewrite: A's leg onto the client's stream.
    fn a_rewrite(&self) -> RtpRewrite {
        RtpRewrite::continuing(
            self.a.seq0,
            self.a.ts0,
            self.client.ssrc,
            self.client.seq0,
            self.client.ts0,
        )
    }

    fn candidate_ts_delta(&self) -> u32 {
        self.client.ts0.wrapping_sub(self.b.ts0)
    }

    /// The rewrite B must end up with.
    fn b_rewrite(&self) -> RtpRewrite {
        let skip = u16::from(self.b_seq_skip_from.is_some());
        RtpRewrite::continuing(
            self.b.seq0.wrapping_add(skip),
            self.b.ts0,
            self.client.ssrc,
            self.client.seq0,
            self.client.ts0,
        )
    }

    fn a_head(&self, n: u32) -> RtpHead {
        RtpHead {
            ssrc: self.a.ssrc,
            seq: self.a.seq0.wrapping_add(n as u16),
            ts: self.a.ts0.wrapping_add(n.wrapping_mul(FS)),
            marker: n == 0,
        }
    }

    fn b_head(&self, n: u32) -> RtpHead {
        let skip = u16::from(self.b_seq_skip_from.is_some_and(|f| n >= f));
        RtpHead {
            ssrc: self.b.ssrc,
            seq: self.b.seq0.wrapping_add(n as u16).wrapping_add(skip),
            ts: self.b.ts0.wrapping_add(n.wrapping_mul(FS)),
            marker: n == self.b_from,
        }
    }

    fn b_payload(&self, n: u32) -> Vec<u8> {
        let mut p = payload(self.key(n));
        if self.all_bad_b || self.bad_b.contains(&n) {
            p[37] ^= 0x55;
        }
        p
    }

    /// A's nominal arrival of frame n.
    fn ta(n: u32) -> i64 {
        T0_NS + i64::from(n) * PTIME_NS
    }

    fn build(&self) -> Splice {
        if self.via_start {
            let mut s = Splice::new(self.cfg, RtpRewrite::default(), ms(7), 12345);
            s.start(self.a_rewrite(), self.a_delay, self.candidate_ts_delta());
            s
        } else {
            Splice::new(
                self.cfg,
                self.a_rewrite(),
                self.a_delay,
                self.candidate_ts_delta(),
            )
        }
    }

    /// The arrivals in time order: (time, leg, frame).
    fn arrivals(&self) -> Vec<(i64, Leg, u32)> {
        let mut rng = Rng(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut v = Vec::new();
        for n in 0..self.frames {
            let ja = rng.jitter_ns(self.jitter_us);
            let jb = rng.jitter_ns(self.jitter_us);
            if !self.lose_a.contains(&n) {
                let late: i64 = self
                    .late_a
                    .iter()
                    .filter(|(f, _)| *f == n)
                    .map(|(_, l)| l)
                    .sum();
                v.push((Self::ta(n) + ja + late, Leg::Active, n));
            }
            if n >= self.b_from && !self.lose_b.contains(&n) {
                let late: i64 = self
                    .late_b
                    .iter()
                    .filter(|(f, _)| *f == n)
                    .map(|(_, l)| l)
                    .sum();
                let tb = Self::ta(n) + self.d_ns + jb + late;
                v.push((tb, Leg::Candidate, n));
                for (_, extra) in self.dup_b.iter().filter(|(f, _)| *f == n) {
                    v.push((tb + extra, Leg::Candidate, n));
                }
            }
        }
        // Ties: A first.
        v.sort_by_key(|&(t, leg, n)| (t, leg == Leg::Candidate, n));
        v
    }
}

/// A packet the client got.
#[derive(Clone, Debug)]
struct Out {
    leg: Leg,
    n: u32,
    arrival: Instant,
    ssrc: u32,
    seq: u16,
    ts: u32,
    release: Instant,
    payload: Vec<u8>,
}

struct Run {
    outs: Vec<Out>,
    events: Vec<SpliceEvent>,
    drops: Vec<(Leg, u32, DropWhy)>,
    /// A's added delay after each of A's packets.
    a_delays: Vec<(u32, Duration)>,
    splice: Splice,
}

impl Run {
    fn cut(&self) -> Option<(u32, u16, Duration, Duration, Instant)> {
        self.events.iter().find_map(|e| match *e {
            SpliceEvent::CutOver {
                key,
                seq,
                active_delay,
                candidate_delay,
                at,
            } => Some((key, seq, active_delay, candidate_delay, at)),
            _ => None,
        })
    }

    fn validated(&self) -> Vec<(u32, i64)> {
        self.events
            .iter()
            .filter_map(|e| match *e {
                SpliceEvent::Validated { key, need_ns, .. } => Some((key, need_ns)),
                _ => None,
            })
            .collect()
    }

    fn out(&self, n: u32) -> &Out {
        self.outs.iter().find(|o| o.n == n).expect("frame sent")
    }

    /// Release spacing between consecutive frames, minus ptime, in ns: (frame, deviation).
    fn spacing_dev(&self) -> Vec<(u32, i64)> {
        self.outs
            .windows(2)
            .filter(|w| w[1].n == w[0].n + 1)
            .map(|w| {
                let gap = w[1].release.as_nanos() as i64 - w[0].release.as_nanos() as i64;
                (w[1].n, gap - PTIME_NS)
            })
            .collect()
    }
}

fn run(sc: &Scenario) -> Run {
    let mut splice = sc.build();
    let mut r = Run {
        outs: vec![],
        events: vec![],
        drops: vec![],
        a_delays: vec![],
        splice: Splice::new(SpliceConfig::default(), RtpRewrite::default(), ms(0), 0),
    };
    for (t, leg, n) in sc.arrivals() {
        let now = instant(t);
        let (head, body) = match leg {
            Leg::Active => (sc.a_head(n), payload(sc.key(n))),
            Leg::Candidate => (sc.b_head(n), sc.b_payload(n)),
        };
        let before = allocs();
        let d = splice.on_packet(now, leg, head, &body);
        let mut evs = [None; 4];
        let mut k = 0;
        while let Some(e) = splice.poll_event() {
            if k < evs.len() {
                evs[k] = Some(e);
            }
            k += 1;
        }
        assert_eq!(allocs(), before, "the splice allocated");
        assert!(k <= evs.len(), "{k} events from one packet");
        r.events.extend(evs.iter().flatten());
        match d {
            Decision::Forward {
                rewrite,
                release_at,
            } => r.outs.push(Out {
                leg,
                n,
                arrival: now,
                ssrc: rewrite.ssrc.unwrap_or(head.ssrc),
                seq: head.seq.wrapping_add(rewrite.seq_delta),
                ts: head.ts.wrapping_add(rewrite.ts_delta),
                release: release_at,
                payload: body,
            }),
            Decision::Drop(why) => r.drops.push((leg, n, why)),
        }
        if leg == Leg::Active {
            r.a_delays.push((n, splice.active_delay()));
            if sc.commit_after == Some(n) {
                splice.commit();
            }
            if sc.abort_after == Some(n) {
                splice.abort();
            }
        }
    }
    r.splice = splice;
    r
}

/// The client's stream as a relay sends it (in release-time order, ties in the order
/// the packets were forwarded): one SSRC, frames in order without repeats, exactly
/// `0..frames` minus `missing`, each with its own sequence number, timestamp and
/// payload, none released before it arrived.
fn check_client(sc: &Scenario, r: &Run, missing: &[u32]) {
    let mut prev: Option<&Out> = None;
    for o in client_order(r) {
        assert_eq!(o.ssrc, sc.client.ssrc, "frame {} SSRC", o.n);
        assert_eq!(o.seq, sc.client_seq(o.n), "frame {} seq", o.n);
        assert_eq!(o.ts, sc.key(o.n), "frame {} ts", o.n);
        assert_eq!(o.payload, payload(sc.key(o.n)), "frame {} payload", o.n);
        assert!(o.release >= o.arrival, "frame {} released early", o.n);
        if let Some(p) = prev {
            assert!(o.n > p.n, "frame {} after frame {}", o.n, p.n);
        }
        prev = Some(o);
    }
    let got: Vec<u32> = client_order(r).iter().map(|o| o.n).collect();
    let want: Vec<u32> = (0..sc.frames).filter(|n| !missing.contains(n)).collect();
    assert_eq!(got, want, "frames the client got");
}

/// The forwarded packets in the order the client gets them.
fn client_order(r: &Run) -> Vec<&Out> {
    let mut v: Vec<&Out> = r.outs.iter().collect();
    v.sort_by_key(|o| o.release);
    v
}

fn leg_of_frames(r: &Run) -> (Vec<u32>, Vec<u32>) {
    let a = r
        .outs
        .iter()
        .filter(|o| o.leg == Leg::Active)
        .map(|o| o.n)
        .collect();
    let b = r
        .outs
        .iter()
        .filter(|o| o.leg == Leg::Candidate)
        .map(|o| o.n)
        .collect();
    (a, b)
}

#[test]
fn clean_handover_candidate_later() {
    let sc = Scenario::new(15);
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    let b_rw = sc.b_rewrite();
    assert_eq!(
        r.events,
        vec![
            SpliceEvent::Paired {
                key: sc.key(10),
                rewrite: b_rw
            },
            SpliceEvent::Validated {
                key: sc.key(14),
                rewrite: b_rw,
                need_ns: 15 * MS_NS
            },
            SpliceEvent::CutOver {
                key: sc.key(23),
                seq: sc.client_seq(23),
                active_delay: ms(15),
                candidate_delay: ms(0),
                at: instant(Scenario::ta(22) + 15 * MS_NS),
            },
        ]
    );
    // A's delay ramps 2 ms per packet from frame 15 to 15 ms at frame 22.
    let ramp: Vec<u64> = r
        .a_delays
        .iter()
        .filter(|(n, _)| (14..=23).contains(n))
        .map(|(_, d)| d.as_millis() as u64)
        .collect();
    assert_eq!(ramp, vec![0, 2, 4, 6, 8, 10, 12, 14, 15, 15]);
    let (a, b) = leg_of_frames(&r);
    assert_eq!(a, (0..23).collect::<Vec<_>>());
    assert_eq!(b, (23..60).collect::<Vec<_>>());
    assert!(r.drops.contains(&(Leg::Candidate, 22, DropWhy::BeforeCut)));
    assert!(r.drops.contains(&(Leg::Active, 23, DropWhy::AfterCut)));
    // The client's spacing changes by at most the ramp step, and not at all at the cut.
    let dev = r.spacing_dev();
    assert_eq!(dev.iter().map(|(_, d)| d.abs()).max(), Some(2 * MS_NS));
    assert_eq!(dev.iter().find(|(n, _)| *n == 23).map(|x| x.1), Some(0));
    assert_eq!(r.out(23).release, instant(Scenario::ta(23) + 15 * MS_NS));
    assert_eq!(r.splice.forward_after_cut(), Some((b_rw, ms(0))));
    assert_eq!(
        r.splice.state(),
        SpliceState::CutOver {
            key: sc.key(23),
            seq: sc.client_seq(23)
        }
    );
}

#[test]
fn clean_handover_candidate_earlier() {
    let sc = Scenario::new(-15);
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    let b_rw = sc.b_rewrite();
    assert_eq!(
        r.events,
        vec![
            SpliceEvent::Paired {
                key: sc.key(10),
                rewrite: b_rw
            },
            SpliceEvent::Validated {
                key: sc.key(14),
                rewrite: b_rw,
                need_ns: -15 * MS_NS
            },
            SpliceEvent::CutOver {
                key: sc.key(15),
                seq: sc.client_seq(15),
                active_delay: ms(0),
                candidate_delay: ms(15),
                at: instant(Scenario::ta(15) - 15 * MS_NS),
            },
        ]
    );
    let (a, b) = leg_of_frames(&r);
    assert_eq!(a, (0..15).collect::<Vec<_>>());
    assert_eq!(b, (15..60).collect::<Vec<_>>());
    // B is held 15 ms to keep A's schedule, then the hold shrinks 2 ms per packet.
    let held: Vec<i64> = (15..25)
        .map(|n| (r.out(n).release.as_nanos() - r.out(n).arrival.as_nanos()) as i64 / MS_NS)
        .collect();
    assert_eq!(held, vec![15, 13, 11, 9, 7, 5, 3, 1, 0, 0]);
    assert_eq!(r.out(15).release, instant(Scenario::ta(15)));
    let dev = r.spacing_dev();
    assert_eq!(dev.iter().map(|(_, d)| d.abs()).max(), Some(2 * MS_NS));
    assert_eq!(dev.iter().find(|(n, _)| *n == 15).map(|x| x.1), Some(0));
    assert_eq!(r.splice.forward_after_cut(), Some((b_rw, ms(0))));
    assert!(r.a_delays.iter().all(|(_, d)| d.is_zero()));
}

#[test]
fn bunched_candidate_packets_keep_release_order() {
    // B 15 ms early and held 15 ms at the cut (frame 15), then 2 ms less per packet. B's
    // 16 comes 19 ms late, 1 ms before B's 17: 17's own release (arrival + 11 ms) would
    // be before 16's (arrival + 13 ms), so it is released with 16.
    let mut sc = Scenario::new(-15);
    sc.late_b = vec![(16, 19 * MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(15)));
    let t16 = Scenario::ta(16) + 4 * MS_NS;
    assert_eq!(r.out(16).arrival, instant(t16));
    assert_eq!(r.out(16).release, instant(t16 + 13 * MS_NS));
    assert_eq!(r.out(17).arrival, instant(t16 + MS_NS));
    assert_eq!(r.out(17).release, r.out(16).release);
    assert_eq!(
        r.out(18).release,
        instant(Scenario::ta(18) - 15 * MS_NS + 9 * MS_NS)
    );
}

#[test]
fn late_candidate_copy_does_not_cut_past_a_frame_already_gone() {
    // B 15 ms early; A's 14 is 8 ms late, so B's 15 has come (and been dropped) when A's
    // 14 completes the validation. A late copy of B's 12 then must not cut at 15 (B's 15
    // will not come again): the cut waits for B's 16.
    let mut sc = Scenario::new(-15);
    sc.late_a = vec![(14, 8 * MS_NS)];
    sc.dup_b = vec![(12, 65 * MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(14), -15 * MS_NS)]);
    assert!(r.drops.contains(&(Leg::Candidate, 15, DropWhy::NotCut)));
    assert_eq!(
        r.drops
            .iter()
            .filter(|d| **d == (Leg::Candidate, 12, DropWhy::NotCut))
            .count(),
        2
    );
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(16)));
}

#[test]
fn started_splice_behaves_as_new_and_restarts_cleanly() {
    let mut sc = Scenario::new(15);
    sc.via_start = true;
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(23)));
    // The same splice, started again, hands over a second time from scratch.
    let mut s = r.splice;
    s.start(sc.a_rewrite(), ms(0), sc.candidate_ts_delta());
    assert_eq!(s.state(), SpliceState::Learning);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.forward_after_cut(), None);
}

#[test]
fn sequence_and_timestamp_wrap_through_validation_and_cut() {
    for d in [15, -15] {
        let mut sc = Scenario::new(d);
        // The client's seq wraps between frames 11 and 12 (validation); its timestamp
        // (the key) wraps exactly at frame 23, the cut when B is later.
        sc.client.seq0 = 65_524;
        sc.client.ts0 = 0u32.wrapping_sub(23 * FS);
        // A's leg wraps its seq at 13 and ts at 16; B's leg seq at 23 and ts at 14.
        sc.a.seq0 = 65_523;
        sc.a.ts0 = 0u32.wrapping_sub(16 * FS) + 7;
        sc.b.seq0 = 65_513;
        sc.b.ts0 = 0u32.wrapping_sub(14 * FS) + 3;
        let r = run(&sc);
        check_client(&sc, &r, &[]);
        let cut = if d > 0 { 23 } else { 15 };
        assert_eq!(r.validated(), vec![(sc.key(14), d * MS_NS)], "d {d}");
        let (key, seq, ..) = r.cut().expect("cut over");
        assert_eq!((key, seq), (sc.key(cut), sc.client_seq(cut)), "d {d}");
        if d > 0 {
            assert_eq!(key, 0, "the cut is at timestamp 0");
        }
        assert_eq!(sc.client_seq(12), 0);
        assert_eq!(
            r.splice.forward_after_cut().map(|f| f.0),
            Some(sc.b_rewrite())
        );
        assert!(r.spacing_dev().iter().all(|(_, dv)| dv.abs() <= 2 * MS_NS));
    }
}

#[test]
fn reordered_active_frame_after_candidates_cuts_there() {
    // B 5 ms later than A: A's delay ramps 2, 4, 5 ms over frames 15..17, aligned at A's
    // 17. B's 17 is lost and A's 18 comes 8 ms late, after B's 18: A's 17 was the last
    // frame sent, so the cut is at 18 and B's 18 goes out (on A's schedule); A's 18 is
    // dropped when it comes.
    let mut sc = Scenario::new(5);
    sc.lose_b = vec![17];
    sc.late_a = vec![(18, 8 * MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(
        r.cut(),
        Some((
            sc.key(18),
            sc.client_seq(18),
            ms(5),
            ms(0),
            instant(Scenario::ta(18) + 5 * MS_NS)
        ))
    );
    assert!(r.drops.contains(&(Leg::Active, 18, DropWhy::AfterCut)));
    assert_eq!(r.out(18).leg, Leg::Candidate);
    assert_eq!(r.out(18).release, instant(Scenario::ta(18) + 5 * MS_NS));
    assert!(r.spacing_dev().iter().all(|(_, dv)| dv.abs() <= 2 * MS_NS));

    // In order, A's 18 is sent first and B's 18 is its duplicate: the cut is at 19.
    let mut in_order = sc.clone();
    in_order.late_a.clear();
    let r = run(&in_order);
    check_client(&in_order, &r, &[]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(19)));
    assert!(r.drops.contains(&(Leg::Candidate, 18, DropWhy::BeforeCut)));
}

#[test]
fn reordered_active_frame_before_the_cut_goes_out_first_or_not_at_all() {
    // B is 15 ms early; B's 15 is lost and A's 15 is 12 ms late, so B's 16 arrives before
    // A's 15. The cut is at 16 (held to A's schedule), and A's 15 still goes out first.
    let mut sc = Scenario::new(-15);
    sc.lose_b = vec![15];
    sc.late_a = vec![(15, 12 * MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.cut().map(|c| (c.0, c.3)), Some((sc.key(16), ms(15))));
    let (a, _) = leg_of_frames(&r);
    assert_eq!(a, (0..16).collect::<Vec<_>>());
    assert!(r.out(15).release < r.out(16).release);

    // A's 15 so late it would go out after B's 16: dropped, never sent out of order.
    let mut sc = Scenario::new(-15);
    sc.lose_b = vec![15];
    sc.late_a = vec![(15, 24 * MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[15]);
    assert!(r.drops.contains(&(Leg::Active, 15, DropWhy::Overtaken)));

    // A's last validation frame arriving after B's next one: validated then, cut after.
    let mut sc = Scenario::new(-15);
    sc.late_a = vec![(14, 12 * MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(14), -15 * MS_NS)]);
    assert!(r.drops.contains(&(Leg::Candidate, 15, DropWhy::NotCut)));
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(16)));
    assert_eq!(r.out(16).release, instant(Scenario::ta(16)));
}

#[test]
fn loss_during_validation_restarts_the_count() {
    // A loses 12: pairs 10, 11, then 13..17 validate; the client misses only 12.
    let mut sc = Scenario::new(15);
    sc.lose_a = vec![12];
    let r = run(&sc);
    check_client(&sc, &r, &[12]);
    assert_eq!(r.validated(), vec![(sc.key(17), 15 * MS_NS)]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(26)));

    // B loses 12: the same validation, and the client misses nothing.
    let mut sc = Scenario::new(15);
    sc.lose_b = vec![12];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(17), 15 * MS_NS)]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(26)));

    // Both, B earlier: A loses 11, B loses 15: pairs 16..20 validate.
    let mut sc = Scenario::new(-15);
    sc.lose_a = vec![11];
    sc.lose_b = vec![15];
    let r = run(&sc);
    check_client(&sc, &r, &[11]);
    assert_eq!(r.validated(), vec![(sc.key(20), -15 * MS_NS)]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(21)));
    assert_eq!(
        r.splice.state(),
        SpliceState::CutOver {
            key: sc.key(21),
            seq: sc.client_seq(21)
        }
    );
}

#[test]
fn mismatching_candidate_never_validates() {
    let mut sc = Scenario::new(15);
    sc.all_bad_b = true;
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    let (_, b) = leg_of_frames(&r);
    assert!(b.is_empty());
    assert_eq!(
        r.events.first(),
        Some(&SpliceEvent::Paired {
            key: sc.key(10),
            rewrite: sc.b_rewrite()
        })
    );
    let mismatches: Vec<(u32, MismatchReason)> = r
        .events
        .iter()
        .filter_map(|e| match *e {
            SpliceEvent::Mismatch { key, reason } => Some((key, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(mismatches.len(), 50);
    assert_eq!(
        mismatches[3],
        (sc.key(13), MismatchReason::Payload { offset: 37 })
    );
    assert_eq!(
        r.events.len(),
        51,
        "nothing but the pairing and the mismatches"
    );
    assert_eq!(r.splice.state(), SpliceState::Validating { matched: 0 });
    assert_eq!(r.splice.forward_after_cut(), None);
    assert_eq!(
        r.drops
            .iter()
            .filter(|(l, _, w)| *l == Leg::Candidate && *w == DropWhy::NotCut)
            .count(),
        50
    );
}

#[test]
fn one_bad_frame_or_a_sequence_jump_restarts_validation() {
    let mut sc = Scenario::new(15);
    sc.bad_b = vec![12];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(17), 15 * MS_NS)]);
    assert!(r.events.contains(&SpliceEvent::Mismatch {
        key: sc.key(12),
        reason: MismatchReason::Payload { offset: 37 }
    }));

    // B's sequence numbers jump by one at frame 13: the rewrite is derived again there.
    let mut sc = Scenario::new(-15);
    sc.b_seq_skip_from = Some(13);
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    let first = RtpRewrite::continuing(
        sc.b.seq0,
        sc.b.ts0,
        sc.client.ssrc,
        sc.client.seq0,
        sc.client.ts0,
    );
    let expected = sc.client_seq(13);
    assert_eq!(
        r.events[..4],
        [
            SpliceEvent::Paired {
                key: sc.key(10),
                rewrite: first
            },
            SpliceEvent::Mismatch {
                key: sc.key(13),
                reason: MismatchReason::Sequence {
                    expected,
                    got: expected.wrapping_add(1)
                }
            },
            SpliceEvent::Paired {
                key: sc.key(13),
                rewrite: sc.b_rewrite()
            },
            SpliceEvent::Validated {
                key: sc.key(18),
                rewrite: sc.b_rewrite(),
                need_ns: -15 * MS_NS
            },
        ]
    );
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(19)));
}

#[test]
fn mismatch_while_aligning_validates_again() {
    // B 15 ms later, validated at 14; A's delay has ramped to 8 ms when B's 18 does not
    // match: validating again (A's delay held), validated at 23, then the ramp goes on.
    let mut sc = Scenario::new(15);
    sc.bad_b = vec![18];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(
        r.validated(),
        vec![(sc.key(14), 15 * MS_NS), (sc.key(23), 15 * MS_NS)]
    );
    let delays: Vec<u64> = r
        .a_delays
        .iter()
        .filter(|(n, _)| (15..=28).contains(n))
        .map(|(_, d)| d.as_millis() as u64)
        .collect();
    assert_eq!(delays, vec![2, 4, 6, 8, 8, 8, 8, 8, 8, 10, 12, 14, 15, 15]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(28)));
}

#[test]
fn duplicated_candidate_packet_does_not_restart_validation() {
    let mut sc = Scenario::new(15);
    sc.dup_b = vec![(12, MS_NS)];
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(14), 15 * MS_NS)]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(23)));
}

#[test]
fn candidate_out_of_alignment_range_fails() {
    for (d, reason) in [
        (
            70,
            FailReason::OutOfRange {
                need_ns: 70 * MS_NS,
            },
        ),
        (
            -70,
            FailReason::OutOfRange {
                need_ns: -70 * MS_NS,
            },
        ),
    ] {
        let sc = Scenario::new(d);
        let r = run(&sc);
        check_client(&sc, &r, &[]);
        assert_eq!(r.validated(), vec![(sc.key(14), d * MS_NS)], "d {d}");
        assert_eq!(
            r.events.last(),
            Some(&SpliceEvent::Failed { reason }),
            "d {d}"
        );
        assert_eq!(r.splice.state(), SpliceState::Failed(reason));
        assert_eq!(r.cut(), None);
        let (_, b) = leg_of_frames(&r);
        assert!(b.is_empty());
        assert!(r
            .drops
            .iter()
            .any(|&(l, n, w)| l == Leg::Candidate && n == 20 && w == DropWhy::Abandoned));
        assert!(r.a_delays.iter().all(|(_, dl)| dl.is_zero()), "d {d}");
        assert!(r.spacing_dev().iter().all(|(_, dv)| *dv == 0));
    }
}

#[test]
fn candidate_a_frame_or_more_early_cuts_over() {
    // B 30 or 45 ms early: B's frame T comes before A's T - 1 (and T - 2). The cut is at
    // the first B packet after validation; A's frames before it still come and go out
    // first, B's are held onto A's schedule and the hold then shrinks 2 ms per packet.
    for d in [-21, -30, -45] {
        let sc = Scenario::new(d);
        let r = run(&sc);
        check_client(&sc, &r, &[]);
        assert_eq!(r.validated(), vec![(sc.key(14), d * MS_NS)], "d {d}");
        let (key, seq, active, candidate, _) = r.cut().expect("cut");
        let at = key.wrapping_sub(sc.client.ts0) / FS;
        assert_eq!(seq, sc.client_seq(at), "d {d}");
        assert_eq!((active, candidate), (ms(0), ms(-d as u64)), "d {d}");
        let (a, b) = leg_of_frames(&r);
        assert_eq!(a, (0..at).collect::<Vec<_>>(), "d {d}");
        assert_eq!(b, (at..sc.frames).collect::<Vec<_>>(), "d {d}");
        assert_eq!(r.out(at).release, instant(Scenario::ta(at)), "d {d}");
        assert!(r.spacing_dev().iter().all(|(_, dv)| dv.abs() <= 2 * MS_NS));
        assert!(!r.drops.iter().any(|d| d.2 == DropWhy::Overtaken));
    }
}

#[test]
fn candidate_at_the_alignment_limit_cuts_over() {
    // B 60 ms (three frames) late: A ramps to 60 ms, then the cut is after A's newest
    // frame, three frames ahead of the B packet that decides it.
    let mut sc = Scenario::new(60);
    sc.frames = 80;
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(14), 60 * MS_NS)]);
    assert_eq!(
        r.cut().map(|c| (c.0, c.2, c.3)),
        Some((sc.key(48), ms(60), ms(0)))
    );
    // Decided at B's 44, which came with A's 47: B's 44..47 are A's duplicates.
    for n in 44..=47 {
        assert!(
            r.drops.contains(&(Leg::Candidate, n, DropWhy::BeforeCut)),
            "B {n}"
        );
    }
    assert!(r.drops.contains(&(Leg::Candidate, 43, DropWhy::NotCut)));
    assert_eq!(r.cut().map(|c| c.4), Some(instant(Scenario::ta(47))));
    assert!(r.spacing_dev().iter().all(|(_, dv)| dv.abs() <= 2 * MS_NS));
    assert_eq!(r.out(48).release, instant(Scenario::ta(48) + 60 * MS_NS));
}

#[test]
fn instruct_mode_needs_the_identity() {
    // B was told to send A's SSRC, sequence numbers and timestamps (A's rewrite is the
    // identity: the first mixer).
    let mut sc = Scenario::new(15);
    sc.cfg.expect_identity = true;
    sc.client = sc.a;
    sc.b = sc.a;
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    let id = RtpRewrite {
        ssrc: Some(sc.a.ssrc),
        ..RtpRewrite::default()
    };
    assert_eq!(
        r.events[0],
        SpliceEvent::Paired {
            key: sc.key(10),
            rewrite: id
        }
    );
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(23)));
    assert_eq!(r.splice.forward_after_cut(), Some((id, ms(0))));

    // B's sequence numbers one ahead: never validated, every pair reported.
    let mut bad = sc.clone();
    bad.b.seq0 = sc.a.seq0.wrapping_add(1);
    let r = run(&bad);
    check_client(&bad, &r, &[]);
    assert_eq!(r.events.len(), 50);
    assert!(r.events.iter().all(|e| matches!(
        e,
        SpliceEvent::Mismatch {
            reason: MismatchReason::NotIdentity {
                ssrc,
                seq_delta: 0xFFFF,
                ts_delta: 0
            },
            ..
        } if *ssrc == sc.a.ssrc
    )));
    assert_eq!(r.splice.state(), SpliceState::Validating { matched: 0 });
    assert_eq!(r.splice.candidate_rewrite(), None);
    let (_, b) = leg_of_frames(&r);
    assert!(b.is_empty());
}

#[test]
fn jitter_on_both_legs() {
    const J_US: i64 = 3000;
    for d in [15, -15] {
        for seed in 1..=25 {
            let mut sc = Scenario::new(d);
            sc.jitter_us = J_US;
            sc.seed = seed;
            let r = run(&sc);
            check_client(&sc, &r, &[]);
            let v = r.validated();
            assert_eq!(v.len(), 1, "d {d} seed {seed}");
            let need = v[0].1;
            assert!(
                (need - d * MS_NS).abs() <= 2 * J_US * 1000,
                "d {d} seed {seed}: need {need}"
            );
            let (key, _, a_delay, b_delay, _) = r.cut().expect("cut over");
            if d > 0 {
                assert_eq!(a_delay.as_nanos() as i64, need, "seed {seed}");
                assert_eq!(b_delay, ms(0));
            } else {
                assert_eq!(a_delay, ms(0));
                assert_eq!(b_delay.as_nanos() as i64, -need, "seed {seed}");
            }
            let cut_n = key.wrapping_sub(sc.client.ts0) / FS;
            // Spacing: the input jitter plus the ramp step, and at the cut the input
            // jitter plus the spread of B's offset over the validation window.
            for (n, dev) in r.spacing_dev() {
                let bound = if n == cut_n {
                    4 * J_US * 1000
                } else {
                    2 * MS_NS + 2 * J_US * 1000
                };
                assert!(dev.abs() <= bound, "d {d} seed {seed} frame {n}: {dev}");
            }
        }
    }
}

#[test]
fn abort_drops_candidate_and_ramps_active_back() {
    // Abort while A's delay ramps up (after frame 18: 8 ms).
    let mut sc = Scenario::new(15);
    sc.abort_after = Some(18);
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.splice.state(), SpliceState::Aborted);
    assert_eq!(r.cut(), None);
    let delays: Vec<u64> = r
        .a_delays
        .iter()
        .filter(|(n, _)| (17..=24).contains(n))
        .map(|(_, d)| d.as_millis() as u64)
        .collect();
    assert_eq!(delays, vec![6, 8, 6, 4, 2, 0, 0, 0]);
    assert!(r
        .drops
        .iter()
        .filter(|(l, n, _)| *l == Leg::Candidate && *n >= 19)
        .all(|(_, _, w)| *w == DropWhy::Abandoned));
    assert!(r.spacing_dev().iter().all(|(_, dv)| dv.abs() <= 2 * MS_NS));

    // After the cut, abort changes nothing.
    let mut sc = Scenario::new(-15);
    sc.abort_after = Some(30);
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert!(matches!(r.splice.state(), SpliceState::CutOver { .. }));
}

#[test]
fn await_commit_holds_the_cut() {
    let mut sc = Scenario::new(-15);
    sc.cfg.await_commit = true;
    sc.commit_after = Some(30);
    let r = run(&sc);
    check_client(&sc, &r, &[]);
    assert_eq!(r.validated(), vec![(sc.key(14), -15 * MS_NS)]);
    assert_eq!(r.cut().map(|c| c.0), Some(sc.key(31)));
    assert!(r.drops.contains(&(Leg::Candidate, 30, DropWhy::NotCut)));

    let mut never = sc.clone();
    never.commit_after = None;
    let r = run(&never);
    assert_eq!(r.cut(), None);
    assert!(matches!(r.splice.state(), SpliceState::Aligning { .. }));
}

#[test]
fn nothing_allocates_after_new() {
    let sc = Scenario::new(15);
    let arrivals = sc.arrivals();
    let packets: Vec<(Instant, Leg, RtpHead, Vec<u8>)> = arrivals
        .iter()
        .map(|&(t, leg, n)| match leg {
            Leg::Active => (instant(t), leg, sc.a_head(n), payload(sc.key(n))),
            Leg::Candidate => (instant(t), leg, sc.b_head(n), sc.b_payload(n)),
        })
        .collect();
    let mut s = sc.build();
    let before = allocs();
    let mut forwarded = 0u32;
    for (now, leg, head, body) in &packets {
        if let Decision::Forward { .. } = s.on_packet(*now, *leg, *head, body) {
            forwarded += 1;
        }
        while s.poll_event().is_some() {}
        let _ = s.state();
    }
    s.start(sc.a_rewrite(), ms(0), sc.candidate_ts_delta());
    s.abort();
    assert_eq!(allocs(), before);
    assert_eq!(forwarded, 60);
}

/// A packet of an arbitrary input.
#[derive(Clone, Debug)]
enum Op {
    Packet {
        dt_us: u32,
        candidate: bool,
        head: RtpHead,
        payload: Vec<u8>,
    },
    Abort,
    Commit,
    Start,
}

fn arb_head() -> impl Strategy<Value = RtpHead> {
    (any::<u32>(), any::<u16>(), any::<u32>(), any::<bool>()).prop_map(|(ssrc, seq, ts, marker)| {
        RtpHead {
            ssrc,
            seq,
            ts,
            marker,
        }
    })
}

/// Headers close to a real pair of streams (so pairs, validation and cuts happen), with
/// a few wild ones.
fn near_head() -> impl Strategy<Value = RtpHead> {
    (0u32..40, 0u16..3, 0u32..2, any::<bool>()).prop_map(|(frame, skew, ssrc, marker)| RtpHead {
        ssrc,
        seq: 65_520u16.wrapping_add(frame as u16).wrapping_add(skew / 2),
        ts: (u32::MAX - 3000).wrapping_add(frame * 160),
        marker,
    })
}

fn arb_op(wild: bool) -> impl Strategy<Value = Op> {
    let head = if wild {
        arb_head().boxed()
    } else {
        near_head().boxed()
    };
    prop_oneof![
        20 => (0u32..40_000, any::<bool>(), head, 0usize..3).prop_map(|(dt_us, candidate, head, p)| {
            let payload = match p {
                0 => payload(head.ts),
                1 => vec![head.ts as u8; 5],
                _ => vec![0; 400],
            };
            Op::Packet { dt_us, candidate, head, payload }
        }),
        1 => Just(Op::Abort),
        1 => Just(Op::Commit),
        1 => Just(Op::Start),
    ]
}

fn arb_cfg() -> impl Strategy<Value = SpliceConfig> {
    (
        prop_oneof![Just(160u32), any::<u32>()],
        0u64..40,
        0u32..6,
        0u64..100,
        0u64..5,
        0usize..20,
        prop_oneof![Just(320usize), 0usize..400],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(frame_samples, ptime, k, max_align, step, history, max_payload, id, commit)| {
                SpliceConfig {
                    frame_samples,
                    ptime: ms(ptime),
                    validate_frames: k,
                    max_align: ms(max_align),
                    ramp_step: ms(step),
                    history,
                    max_payload,
                    expect_identity: id,
                    await_commit: commit,
                    active_silence: ms(100),
                }
            },
        )
}

fn check_ops(
    cfg: SpliceConfig,
    a_rw: RtpRewrite,
    b_delta: u32,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut s = Splice::new(cfg, a_rw, ms(3), b_delta);
    let mut now = Instant::from_nanos(1_000_000);
    // The last release on each leg, and B's first.
    let mut last: [Option<Instant>; 2] = [None; 2];
    let mut b_first: Option<Instant> = None;
    let mut cut_rw = None;
    let before = allocs();
    for op in ops {
        match op {
            Op::Abort => s.abort(),
            Op::Commit => s.commit(),
            Op::Start => {
                s.start(a_rw, ms(3), b_delta);
                last = [None; 2];
                b_first = None;
                cut_rw = None;
            }
            Op::Packet {
                dt_us,
                candidate,
                head,
                payload,
            } => {
                now += Duration::from_micros(u64::from(*dt_us));
                let leg = if *candidate {
                    Leg::Candidate
                } else {
                    Leg::Active
                };
                let state = s.state();
                let d = s.on_packet(now, leg, *head, payload);
                while s.poll_event().is_some() {}
                if let Decision::Forward {
                    rewrite,
                    release_at,
                } = d
                {
                    prop_assert!(release_at >= now);
                    let i = usize::from(leg == Leg::Candidate);
                    if let Some(l) = last[i] {
                        prop_assert!(release_at >= l, "release on {:?} went back", leg);
                    }
                    last[i] = Some(release_at);
                    match leg {
                        Leg::Candidate => {
                            if let Some(a) = last[0] {
                                prop_assert!(release_at >= a, "B released before A's last");
                            }
                            b_first.get_or_insert(release_at);
                        }
                        Leg::Active => {
                            if let Some(b) = b_first {
                                prop_assert!(release_at <= b, "A released after B's first");
                            }
                        }
                    }
                    match (leg, s.state()) {
                        (Leg::Active, SpliceState::CutOver { key, .. }) => {
                            let k = head.ts.wrapping_add(a_rw.ts_delta);
                            prop_assert!((k.wrapping_sub(key) as i32) < 0, "A after the cut");
                        }
                        (Leg::Active, _) => prop_assert_eq!(rewrite, a_rw),
                        (Leg::Candidate, SpliceState::CutOver { key, .. }) => {
                            let k = head.ts.wrapping_add(b_delta);
                            prop_assert!((k.wrapping_sub(key) as i32) >= 0, "B before the cut");
                            let (rw, _) = s.forward_after_cut().expect("cut rewrite");
                            prop_assert_eq!(rewrite, rw);
                            if let Some(prev) = cut_rw {
                                prop_assert_eq!(prev, rw);
                            }
                            cut_rw = Some(rw);
                        }
                        (Leg::Candidate, other) => {
                            prop_assert!(false, "B forwarded in {:?} (was {:?})", other, state)
                        }
                    }
                }
            }
        }
    }
    prop_assert_eq!(allocs(), before);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_packets_never_panic(
        cfg in arb_cfg(),
        ops in proptest::collection::vec(arb_op(true), 0..120),
        b_delta in any::<u32>(),
    ) {
        check_ops(cfg, RtpRewrite::default(), b_delta, &ops)?;
    }

    #[test]
    fn near_real_streams_keep_the_invariants(
        cfg in arb_cfg(),
        ops in proptest::collection::vec(arb_op(false), 0..200),
        seq_delta in 0u16..3,
    ) {
        let a_rw = RtpRewrite { ssrc: Some(9), seq_delta, ..RtpRewrite::default() };
        check_ops(cfg, a_rw, 0, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    /// Handovers with a random offset, jitter, losses on both legs and late packets of A:
    /// the client's stream stays clean (only the losses of the leg it was getting show).
    #[test]
    fn perturbed_handovers_keep_the_client_stream_clean(
        d_ms in -45i64..=54,
        jitter_us in 0i64..=3000,
        seed in any::<u64>(),
        lose_a in proptest::collection::vec(0u32..80, 0..4),
        lose_b in proptest::collection::vec(0u32..80, 0..4),
        late_a in proptest::collection::vec((0u32..80, 0i64..=12), 0..3),
        wrap in any::<bool>(),
    ) {
        let mut sc = Scenario::new(d_ms);
        sc.frames = 80;
        sc.jitter_us = jitter_us;
        sc.seed = seed;
        sc.lose_a = lose_a.clone();
        sc.lose_b = lose_b.clone();
        // One late packet per frame at most: later than a frame interval would reorder A
        // itself (the client would see that without any handover).
        for &(n, l) in &late_a {
            if sc.late_a.iter().all(|&(f, _)| f != n) {
                sc.late_a.push((n, l * MS_NS));
            }
        }
        if wrap {
            sc.client.seq0 = 65_500;
            sc.client.ts0 = 0u32.wrapping_sub(20 * FS);
            sc.b.seq0 = 65_530;
        }
        let r = run(&sc);
        let cut = r.cut().map_or(sc.frames, |c| c.0.wrapping_sub(sc.client.ts0) / FS);
        let mut missing: Vec<u32> = lose_a.iter().copied().filter(|&n| n < cut).collect();
        missing.extend(lose_b.iter().copied().filter(|&n| n >= cut));
        // Only a late packet of A can come after B's first one and be dropped for it.
        for &(leg, n, why) in &r.drops {
            if why == DropWhy::Overtaken {
                prop_assert!(leg == Leg::Active && sc.late_a.iter().any(|&(f, _)| f == n));
                missing.push(n);
            }
        }
        check_client(&sc, &r, &missing);
        if lose_a.is_empty() && lose_b.is_empty() {
            prop_assert!(r.cut().is_some(), "no cut: {:?}", r.splice.state());
        }
        if late_a.is_empty() {
            let j = jitter_us * 1000;
            for (n, dev) in r.spacing_dev() {
                let bound = if n == cut { 4 * j } else { 2 * MS_NS + 2 * j };
                prop_assert!(dev.abs() <= bound, "frame {}: {}", n, dev);
            }
        }
    }
}

#[test]
fn active_mixer_dying_before_validation_fails_the_client_over_to_the_candidate() {
    // A's last frame is 12, while B (15 ms later) has only paired frames 10..=12: no
    // validation. Once A has been silent for 100 ms, B's next packet (frame 17) cuts
    // over right after A's frame 12; frames 13..=16 never existed for the client.
    let mut sc = Scenario::new(15);
    sc.lose_a = (13..sc.frames).collect();
    let r = run(&sc);
    check_client(&sc, &r, &[13, 14, 15, 16]);
    assert!(r.validated().is_empty(), "never validated");
    let lost = r
        .events
        .iter()
        .find_map(|e| match e {
            SpliceEvent::ActiveLost { silent_for } => Some(*silent_for),
            _ => None,
        })
        .expect("A reported lost");
    assert_eq!(lost, ms(115));
    let (key, seq, _, b_delay, _) = r.cut().expect("cut over");
    assert_eq!((key, seq, b_delay), (sc.key(13), sc.client_seq(13), ms(0)));
    let (a, b) = leg_of_frames(&r);
    assert_eq!(a, (0..13).collect::<Vec<_>>());
    assert_eq!(b, (17..sc.frames).collect::<Vec<_>>());
    assert_eq!(r.splice.forward_after_cut(), Some((sc.b_rewrite(), ms(0))));

    // Before any pair (A's last frame 8, B from 10): the rewrite continues A's last
    // sequence number and timestamp at B's frame instead.
    let mut sc = Scenario::new(15);
    sc.lose_a = (9..sc.frames).collect();
    let r = run(&sc);
    let (key, seq, ..) = r.cut().expect("cut over");
    assert_eq!((key, seq), (sc.key(9), sc.client_seq(9)));
    let first_b = r.outs.iter().find(|o| o.leg == Leg::Candidate).unwrap();
    assert_eq!(first_b.n, 13, "ta(13) + 15 ms - ta(8) >= 100 ms");
    assert_eq!(
        (first_b.ssrc, first_b.seq, first_b.ts),
        (sc.client.ssrc, sc.client_seq(13), sc.key(13)),
        "B continues A's stream for the client"
    );
    check_client(&sc, &r, &[9, 10, 11, 12]);

    // Disabled: no failover.
    let mut sc = Scenario::new(15);
    sc.cfg.active_silence = Duration::ZERO;
    sc.lose_a = (13..sc.frames).collect();
    assert!(run(&sc).cut().is_none());
}
