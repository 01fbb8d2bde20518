//! Input timing: two engines (mixers A and B of a seamless handover) fed the same inbound
//! packets, B from 1 s later, each with its own arrival jitter and its ticks at another
//! phase, must send every participant the same payload bytes with the same RTP
//! timestamps (those of the conference timeline) for the same frame once B has converged;
//! comfort noise included, and `SetRtpBasis` makes B's packets A's exactly. A long stall
//! and a timeline jump keep an engine's output on the timeline.

mod common;
use common::*;

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, Conference, ConferenceSpec, Engine, EngineCounters, Liveness, MediaCommand, PartKey,
    Participant, ParticipantSettings, ParticipantSpec, RtpBasis, Timing, Transmit,
};
use tutti_dataplane::host::{CorePorts, Retired};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::rate::SampleRate;
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::rx::PayloadTypes;
use tutti_dataplane::wire::rtp::RtpPacket;

/// Samples per frame (20 ms).
const FRAME: u32 = 160;
/// Timeline timestamp of frame 0: frame 100 is at 0, so the timeline wraps mid-test.
const TS0: u32 = 0u32.wrapping_sub(100 * FRAME);
const FREQS: [f64; 3] = [440.0, 1000.0, 1900.0];
const CODECS: [CodecKind; 3] = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Pcmu];
const DELAY_FRAMES: u8 = 2;
/// Frames every participant sends (6.6 s).
const FRAMES: i64 = 330;
const CONF: ConfKey = ConfKey(1);
/// Frames lost before the gateway (so at both mixers): (participant, frame).
const LOST: [(usize, i64); 4] = [(0, 53), (1, 120), (1, 121), (2, 200)];
/// Participant 2 sends a SID at this frame and nothing until `CN_END`.
const CN_START: i64 = 230;
const CN_END: i64 = 260;
/// Participant 2's frames `REORDERED` and `REORDERED + 1` arrive the other way round.
const REORDERED: i64 = 140;

/// The timeline timestamp of frame `k`.
fn ts(k: i64) -> u32 {
    TS0.wrapping_add((k * i64::from(FRAME)) as u32)
}

/// The frame whose timeline timestamp is `ts`.
fn frame_of(ts: u32) -> i64 {
    i64::from(ts.wrapping_sub(TS0) as i32) / i64::from(FRAME)
}

fn peer(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(198, 18, 0, 10 + i as u8),
        30000 + 2 * i as u16,
    )
}

fn local_port(i: usize) -> u16 {
    20000 + 2 * i as u16
}

/// Participant `i`'s audio in frame `k`: its tone, continuous over the frames.
fn audio(i: usize, k: i64) -> Vec<u8> {
    let pcm = tone(
        FREQS[i],
        5000.0,
        k as usize * FRAME as usize,
        FRAME as usize,
    );
    encode(CODECS[i], &pcm)
}

/// Whether participant `i` sent audio (that arrived) for frame `k`.
fn sent_audio(i: usize, k: i64, cn: bool) -> bool {
    (0..FRAMES).contains(&k)
        && !LOST.contains(&(i, k))
        && !(cn && i == 2 && (CN_START..CN_END).contains(&k))
}

/// What participant `i` hears in frame `k` when everyone else sent audio: the others'
/// decoded frames summed, in its codec.
fn expected_mix(i: usize, k: i64) -> Vec<u8> {
    let mut sum = [0i32; FRAME as usize];
    for j in (0..3).filter(|&j| j != i) {
        for (s, v) in sum.iter_mut().zip(decode(CODECS[j], &audio(j, k))) {
            *s += i32::from(v);
        }
    }
    let pcm: Vec<i16> = sum.iter().map(|&s| s.clamp(-32768, 32767) as i16).collect();
    encode(CODECS[i], &pcm)
}

/// One inbound packet as the gateway relays it: when the client sent it, from whom, for
/// which frame.
struct Inbound {
    sent: Duration,
    part: usize,
    frame: i64,
    bytes: Vec<u8>,
}

/// Every participant's packets for frames `0..FRAMES`: audio, with the losses, and (when
/// `cn`) participant 2's SID and silence; timestamps from frame `jump_at` on moved by
/// `jump` samples.
fn inbound(cn: bool, jump_at: i64, jump: u32) -> Vec<Inbound> {
    let mut out = Vec::new();
    for (i, codec) in CODECS.into_iter().enumerate() {
        let mut seq = 7000u16.wrapping_mul(i as u16 + 1);
        for k in 0..FRAMES {
            let sent = Duration::from_millis(k as u64 * 20 + 3 * i as u64);
            let t = if k >= jump_at {
                ts(k).wrapping_add(jump)
            } else {
                ts(k)
            };
            let ssrc = 0x1000 + i as u32;
            let bytes = if LOST.contains(&(i, k)) {
                None
            } else if cn && i == 2 && k == CN_START {
                Some(rtp(13, seq, t, ssrc, &[50, 140, 100, 127]))
            } else if cn && i == 2 && (CN_START..CN_END).contains(&k) {
                continue; // DTX: no packet, no sequence number
            } else {
                let pt = codec.static_payload_type().unwrap();
                Some(rtp(pt, seq, t, ssrc, &audio(i, k)))
            };
            seq = seq.wrapping_add(1);
            if let Some(bytes) = bytes {
                out.push(Inbound {
                    sent,
                    part: i,
                    frame: k,
                    bytes,
                });
            }
        }
    }
    out
}

/// Network jitter of packet (participant `i`, frame `k`) on its way to mixer `m`: 0 to 6 ms.
fn jitter(m: usize, i: usize, k: i64) -> Duration {
    let x = (m as u64 * 7919 + i as u64 * 104_729 + k as u64 * 1_299_709)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Duration::from_micros((x >> 40) % 6000)
}

/// A packet a participant received from a mixer.
#[derive(Clone, Debug, PartialEq)]
struct Out {
    at: Instant,
    ssrc: u32,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
}

/// Records what an engine sends, per participant.
struct Sink<'a> {
    at: Instant,
    out: &'a mut [Vec<Out>; 3],
}

impl Transmit for Sink<'_> {
    fn send(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> bool {
        let mut buf = [0u8; 1500];
        let n = fill(&mut buf);
        if n == 0 {
            return false;
        }
        let i = (0..3)
            .find(|&i| peer(i) == dst)
            .unwrap_or_else(|| panic!("datagram to {dst}"));
        assert_eq!(src_port, local_port(i));
        let p = RtpPacket::parse(&buf[..n]).expect("RTP");
        self.out[i].push(Out {
            at: self.at,
            ssrc: p.ssrc(),
            seq: p.sequence_number(),
            ts: p.timestamp(),
            payload: p.payload().to_vec(),
        });
        true
    }
}

/// One engine with one conference of three participants, and what it sent.
struct Mixer {
    engine: Engine,
    retired: rtrb::Producer<Retired>,
    _retired_rx: rtrb::Consumer<Retired>,
    counters: Arc<EngineCounters>,
    out: [Vec<Out>; 3],
    /// Inbound packets still on their way: (arrival, participant, bytes).
    queue: VecDeque<(Instant, usize, Vec<u8>)>,
    /// Polled (receives and ticks) no earlier than this.
    stalled_until: Instant,
}

impl Mixer {
    /// Created at `now`; participant `i` has key `key_base + i` and SSRC `ssrc_base + i`.
    fn new(now: Instant, key_base: u32, ssrc_base: u32) -> Mixer {
        let timing = Timing::Input {
            delay_frames: DELAY_FRAMES,
        };
        Mixer::with_timing(now, key_base, ssrc_base, timing)
    }

    fn with_timing(now: Instant, key_base: u32, ssrc_base: u32, timing: Timing) -> Mixer {
        let (mut retired, retired_rx) = rtrb::RingBuffer::new(64);
        let counters = Arc::new(EngineCounters::default());
        let mut engine = Engine::new(CorePorts::single(20000..=20999), 4, counters.clone());
        let spec = ConferenceSpec {
            key: CONF,
            ptime: Ptime::Ms20,
            rate: SampleRate::Hz8000,
            active_speakers: ActiveSpeakers::All,
            max_participants: 8,
            timing,
        };
        engine.apply(
            MediaCommand::AddConference(Conference::new(spec).unwrap()),
            now,
            &mut retired,
        );
        for (i, codec) in CODECS.into_iter().enumerate() {
            let spec = ParticipantSpec {
                conf: CONF,
                key: PartKey(key_base + i as u32),
                local_port: local_port(i),
                remote: peer(i),
                codec,
                payload_types: PayloadTypes::negotiated(codec, None, Some(101)),
                rtcp: false,
                ssrc: ssrc_base + i as u32,
                settings: ParticipantSettings::default(),
                liveness: Liveness::default(),
                srtp: None,
            };
            let p = Participant::new(spec, now, NtpClock::default()).unwrap();
            engine.apply(MediaCommand::AddParticipant(p), now, &mut retired);
        }
        assert_eq!(counters.participants.get(), 3);
        Mixer {
            engine,
            retired,
            _retired_rx: retired_rx,
            counters,
            out: Default::default(),
            queue: VecDeque::new(),
            stalled_until: Instant::ZERO,
        }
    }

    /// When this mixer next has something to do.
    fn next_event(&self) -> Option<Instant> {
        let arrival = self.queue.front().map(|a| a.0);
        [arrival, self.engine.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(self.stalled_until))
    }

    /// One poll-loop iteration at `now`: what arrived, then the ticks due.
    fn run_once(&mut self, now: Instant) {
        while self.queue.front().is_some_and(|a| a.0 <= now) {
            let (_, i, mut bytes) = self.queue.pop_front().unwrap();
            assert!(self
                .engine
                .handle_udp(now, peer(i), local_port(i), &mut bytes));
        }
        let mut sink = Sink {
            at: now,
            out: &mut self.out,
        };
        self.engine.poll(now, &mut sink, &|| now);
        while self.engine.poll_event().is_some() {}
    }

    fn rebase(&mut self, now: Instant, i: usize, key_base: u32, basis: RtpBasis) {
        let cmd = MediaCommand::SetRtpBasis {
            conf: CONF,
            part: PartKey(key_base + i as u32),
            basis,
        };
        self.engine.apply(cmd, now, &mut self.retired);
    }
}

/// Virtual time over some mixers.
struct Sim {
    now: Instant,
    mixers: Vec<Mixer>,
}

impl Sim {
    /// Queue `packets` (sent from `start` on) to mixer `m`, those for frames from `from`
    /// on, with `m`'s network jitter as their trip unless `trip` says otherwise.
    fn deliver(
        &mut self,
        m: usize,
        start: Instant,
        packets: &[Inbound],
        from: i64,
        trip: impl Fn(usize, i64) -> Option<Duration>,
    ) {
        let mut q: Vec<(Instant, usize, Vec<u8>)> = packets
            .iter()
            .filter(|p| p.frame >= from)
            .map(|p| {
                let t = trip(p.part, p.frame).unwrap_or_else(|| jitter(m, p.part, p.frame));
                (start + p.sent + t, p.part, p.bytes.clone())
            })
            .collect();
        q.sort_by_key(|a| a.0);
        self.mixers[m].queue = q.into();
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let next = self.mixers.iter().filter_map(Mixer::next_event).min();
            let Some(next) = next.filter(|&t| t <= end) else {
                self.now = end;
                return;
            };
            self.now = next.max(self.now);
            for m in &mut self.mixers {
                if m.next_event().is_some_and(|t| t <= self.now) {
                    m.run_once(self.now);
                }
            }
        }
    }
}

fn at_ms(ms: f64) -> Instant {
    Instant::from_nanos((ms * 1e6) as u64)
}

/// The packets of `out` by frame, for a stream whose RTP timestamps are the timeline's
/// plus `offset(packet)`.
fn by_frame(out: &[Out], offset: impl Fn(&Out) -> u32) -> BTreeMap<i64, &Out> {
    let mut m = BTreeMap::new();
    for o in out {
        assert!(
            m.insert(frame_of(o.ts.wrapping_sub(offset(o))), o)
                .is_none(),
            "one packet per frame"
        );
    }
    m
}

/// Consecutive packets advance by one sequence number and one frame of timestamp, except
/// into `rebased`, the first packet sent after a rebase (if any).
fn assert_contiguous(who: &str, out: &[Out], rebased: Option<Instant>) {
    for w in out.windows(2) {
        if Some(w[1].at) == rebased {
            continue;
        }
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "{who}: {w:?}");
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(FRAME), "{who}: {w:?}");
        assert_eq!(w[1].ssrc, w[0].ssrc, "{who}");
    }
}

/// B's first packets arrive 1 s after A's.
const B_FIRST_FRAME: i64 = 50;
/// B's frames are A's from this many frames after B's first one with audio: concealment
/// needs 280 samples (2 frames) of a participant's audio (see the engine's documentation;
/// nothing is lost in B's first frames).
const CONVERGENCE_FRAMES: i64 = 2;

/// Whether every participant but `i` sent audio for frame `k`: then `i` hears exactly
/// [`expected_mix`].
fn clean(i: usize, k: i64, cn: bool) -> bool {
    (0..3).all(|j| j == i || sent_audio(j, k, cn))
}

#[test]
fn two_mixers_send_identical_frames_on_the_timeline() {
    let start = at_ms(1_005.0);
    let packets = inbound(true, i64::MAX, 0);
    // The reordered pair: REORDERED arrives 25 ms late, after REORDERED + 1.
    let reorder = |i: usize, k: i64| match (i, k - REORDERED) {
        (2, 0) => Some(Duration::from_millis(25)),
        (2, 1) => Some(Duration::ZERO),
        _ => None,
    };
    // Mixer A from before the first packet; B from half a second later, its ticks 7.3 ms
    // out of phase with A's, its first packets 1 s after A's.
    let mut sim = Sim {
        now: at_ms(1_000.0),
        mixers: vec![Mixer::new(at_ms(1_000.0), 100, 0xA0)],
    };
    sim.deliver(0, start, &packets, 0, reorder);
    sim.run_until(at_ms(1_507.3));
    sim.mixers.push(Mixer::new(at_ms(1_507.3), 200, 0xB0));
    sim.deliver(1, start, &packets, B_FIRST_FRAME, reorder);

    // A takes an RTP basis of its own (SSRC, sequence number, offset) mid-way...
    let a_basis = |i: usize| RtpBasis {
        ssrc: 0x00A1_1CE0 + i as u32,
        frame_timestamp: ts(160),
        sequence: 65530 + i as u16,
        timestamp: 0x1234_5678 + i as u32,
    };
    let a_offset = |i: usize| {
        a_basis(i)
            .timestamp
            .wrapping_sub(a_basis(i).frame_timestamp)
    };
    let a_rebase_at = start + Duration::from_millis(150 * 20);
    sim.run_until(a_rebase_at);
    for i in 0..3 {
        sim.mixers[0].rebase(a_rebase_at, i, 100, a_basis(i));
    }
    // ...and B continues A's streams from A's packet for frame 265 (instruct mode).
    let b_rebase_at = start + Duration::from_millis(270 * 20);
    sim.run_until(b_rebase_at);
    for i in 0..3 {
        let a = by_frame(&sim.mixers[0].out[i], |o| {
            if o.at > a_rebase_at {
                a_offset(i)
            } else {
                0
            }
        });
        let last = a[&265];
        let basis = RtpBasis {
            ssrc: last.ssrc,
            frame_timestamp: ts(265),
            sequence: last.seq,
            timestamp: last.ts,
        };
        sim.mixers[1].rebase(b_rebase_at, i, 200, basis);
    }
    sim.run_until(start + Duration::from_millis(FRAMES as u64 * 20 + 100));

    let (a, b) = (&sim.mixers[0], &sim.mixers[1]);
    for m in [a, b] {
        assert_eq!(m.counters.rtp_late.get(), 0, "nothing arrived late");
        assert_eq!(m.counters.timeline_jumps.get(), 0);
        assert_eq!(m.counters.commands_rejected.get(), 0);
    }
    assert!(a.counters.rtp_reordered.get() >= 1);
    assert!(a.counters.frames_lost.get() >= LOST.len() as u64);
    let mut compared = 0;
    for i in 0..3 {
        let first_after = |out: &[Out], t: Instant| out.iter().map(|o| o.at).find(|&at| at > t);
        assert_contiguous("A", &a.out[i], first_after(&a.out[i], a_rebase_at));
        assert_contiguous("B", &b.out[i], first_after(&b.out[i], b_rebase_at));
        // Both rebases change the RTP timestamps by A's offset.
        let a_frames = by_frame(
            &a.out[i],
            |o| if o.at > a_rebase_at { a_offset(i) } else { 0 },
        );
        let b_frames = by_frame(
            &b.out[i],
            |o| if o.at > b_rebase_at { a_offset(i) } else { 0 },
        );
        // Output timestamps are the timeline: the first frame mixed is the input delay
        // before the first packet, and every frame in which the others all sent audio
        // holds exactly their audio of the frame its timestamp names.
        let delay = i64::from(DELAY_FRAMES);
        assert_eq!(a_frames.keys().next(), Some(&-delay));
        assert_eq!(b_frames.keys().next(), Some(&(B_FIRST_FRAME - delay)));
        for (frames, from) in [(&a_frames, 0), (&b_frames, B_FIRST_FRAME)] {
            let mut checked = 0;
            for (&k, o) in frames.range(from..).filter(|(&k, _)| clean(i, k, true)) {
                assert_eq!(o.payload, expected_mix(i, k), "participant {i} frame {k}");
                checked += 1;
            }
            assert!(checked > 200, "{checked}");
        }
        // Every frame from B's convergence on is A's, byte for byte; after B's rebase
        // with A's SSRC, sequence number and timestamp too.
        for (&k, bo) in b_frames.range(B_FIRST_FRAME + CONVERGENCE_FRAMES..) {
            let ao = a_frames[&k];
            assert_eq!(bo.payload, ao.payload, "participant {i} frame {k}");
            if bo.at > b_rebase_at {
                assert_eq!(
                    (bo.ssrc, bo.seq, bo.ts),
                    (ao.ssrc, ao.seq, ao.ts),
                    "participant {i} frame {k}"
                );
            }
            compared += 1;
        }
        assert!(b_frames.values().filter(|o| o.at > b_rebase_at).count() > 40);
        // A's rebase: the basis's frame carries the basis's sequence number and timestamp.
        let f = a_frames[&160];
        let basis = a_basis(i);
        assert_eq!(
            (f.ssrc, f.seq, f.ts),
            (basis.ssrc, basis.sequence, basis.timestamp)
        );
    }
    assert!(compared > 3 * 250, "{compared} frames compared");

    // Comfort noise: while participant 2 is silent after its SID, the others hear noise
    // from it (the same on both mixers, as compared above), not just each other.
    for i in 0..2 {
        let a_frames = by_frame(
            &a.out[i],
            |o| if o.at > a_rebase_at { a_offset(i) } else { 0 },
        );
        for k in CN_START + 1..CN_END {
            let got = decode(CODECS[i], &a_frames[&k].payload);
            let other = decode(CODECS[1 - i], &audio(1 - i, k));
            let power = got
                .iter()
                .zip(&other)
                .map(|(&g, &o)| (f64::from(g) - f64::from(o)).powi(2))
                .sum::<f64>()
                / f64::from(FRAME);
            assert!(power.sqrt() > 30.0, "participant {i} frame {k}: no noise");
        }
    }
}

#[test]
fn a_long_stall_and_a_timeline_jump_keep_the_output_on_the_timeline() {
    const JUMP_AT: i64 = 200;
    const JUMP: u32 = 1_000_000;
    let start = at_ms(1_005.0);
    let packets = inbound(false, JUMP_AT, JUMP);
    let mut sim = Sim {
        now: at_ms(1_000.0),
        mixers: vec![Mixer::new(at_ms(1_000.0), 100, 0xA0)],
    };
    // Participant 1's last packet before the jump arrives after participant 0's first
    // after it: it must not move the timeline back.
    let late_old =
        |i: usize, k: i64| (i == 1 && k == JUMP_AT - 1).then_some(Duration::from_millis(25));
    sim.deliver(0, start, &packets, 0, late_old);
    // The core stalls for 400 ms (20 ticks) around frame 100.
    let stall_at = start + Duration::from_millis(100 * 20);
    sim.run_until(stall_at);
    sim.mixers[0].stalled_until = stall_at + Duration::from_millis(400);
    sim.run_until(start + Duration::from_millis(FRAMES as u64 * 20 + 100));

    let a = &sim.mixers[0];
    assert_eq!(
        a.counters.timeline_jumps.get(),
        1,
        "one jump, not back and forth"
    );
    assert!(a.counters.tick_overruns.get() >= 1);
    for i in 0..3 {
        let out = &a.out[i];
        // The frame each packet's timestamp names, on the timeline before or after the
        // jump.
        let frame = |o: &Out| match frame_of(o.ts) {
            k if (-10..FRAMES + 10).contains(&k) => (false, k),
            _ => (true, frame_of(o.ts.wrapping_sub(JUMP))),
        };
        let (mut stalled, mut jumped) = (0, 0);
        for w in out.windows(2) {
            assert_eq!(
                w[1].seq,
                w[0].seq.wrapping_add(1),
                "one sequence number per packet"
            );
            let ((j0, k0), (j1, k1)) = (frame(&w[0]), frame(&w[1]));
            match (j0, j1, k1 - k0) {
                (false, false, 1) | (true, true, 1) => {}
                // The stall: its ticks' frames were skipped.
                (false, false, gap) if (19..=21).contains(&gap) => stalled += 1,
                // The jump: mixing starts the input delay before the first new packet.
                (false, true, _) => {
                    assert_eq!(k1, JUMP_AT - i64::from(DELAY_FRAMES));
                    jumped += 1;
                }
                other => panic!("participant {i}: {other:?} between {w:?}"),
            }
        }
        assert_eq!((stalled, jumped), (1, 1), "participant {i}");
        // Each frame the others sent audio for holds exactly that audio, on both sides
        // of the stall and of the jump.
        let mut checked = [0; 3];
        for o in out {
            let (j, k) = frame(o);
            // (The new timeline has nothing before JUMP_AT; participant 1's last frame
            // on the old one came after the jump.)
            let sent = if j { k >= JUMP_AT } else { k < JUMP_AT - 1 };
            if sent && clean(i, k, false) {
                assert_eq!(o.payload, expected_mix(i, k), "participant {i} frame {k}");
                let part = if j {
                    2
                } else if o.at > stall_at {
                    1
                } else {
                    0
                };
                checked[part] += 1;
            }
        }
        assert!(checked.iter().all(|&n| n > 50), "{checked:?}");
    }
}

#[test]
fn input_timing_needs_all_speakers_and_a_sane_delay_and_rebases_need_it() {
    use tutti_dataplane::conference::engine::BuildError;
    let spec = |active_speakers, delay_frames| ConferenceSpec {
        key: CONF,
        ptime: Ptime::Ms20,
        rate: SampleRate::Hz8000,
        active_speakers,
        max_participants: 2,
        timing: Timing::Input { delay_frames },
    };
    assert!(matches!(
        Conference::new(spec(ActiveSpeakers::Loudest(3), 2)),
        Err(BuildError::InputTimingSpeakers)
    ));
    for bad in [0, 11] {
        assert!(matches!(
            Conference::new(spec(ActiveSpeakers::All, bad)),
            Err(BuildError::InputDelay(d)) if d == bad
        ));
    }
    for good in [1, 10] {
        assert!(Conference::new(spec(ActiveSpeakers::All, good)).is_ok());
    }

    // Before its first packet an input-timed conference has no timeline: it sends nothing.
    let t0 = at_ms(1_000.0);
    let mut input = Mixer::new(t0, 100, 0xA0);
    // An arrival-timed one sends from the first tick, and refuses an RTP basis.
    let mut arrival = Mixer::with_timing(t0, 100, 0xA0, Timing::Arrival);
    let basis = RtpBasis {
        ssrc: 99,
        frame_timestamp: 0,
        sequence: 0,
        timestamp: 0,
    };
    arrival.rebase(t0, 0, 100, basis);
    assert_eq!(arrival.counters.commands_rejected.get(), 1);
    for ms in [20.0, 40.0, 60.0] {
        input.run_once(t0 + Duration::from_secs_f64(ms / 1000.0));
        arrival.run_once(t0 + Duration::from_secs_f64(ms / 1000.0));
    }
    assert!(input.out.iter().all(Vec::is_empty));
    assert_eq!(arrival.out[0].len(), 3);
    assert!(arrival.out[0].iter().all(|o| o.ssrc == 0xA0));
}
