//! The per-client splice of the media gateway: moves one client's mixed stream from mixer A
//! (the active leg) to mixer B (the candidate leg) between two packets, sans-IO.
//!
//! Both legs carry the same frames: mixer B mixes the same inputs as A and is
//! deterministic, so once converged B's payload for a frame is byte-identical to A's. A
//! frame is named by its **key**, a `u32` RTP timestamp on the client's timeline: for a
//! packet from A, A's timestamp plus A's rewrite `ts_delta`; for a packet from B, B's
//! timestamp plus `candidate_ts_delta`.
//!
//! The splice goes through these phases (see [`SpliceState`]):
//!
//! 1. **Learning**: packets from A are forwarded with A's rewrite, packets from B are
//!    dropped; both are remembered (header, arrival time and a payload copy) in one
//!    preallocated history ring per leg.
//! 2. **Validating**: a key seen on both legs is a pair. The first pair gives B's rewrite
//!    ([`RtpRewrite::continuing`] onto A's client-visible SSRC, sequence number and
//!    timestamp). A pair matches when B's rewritten sequence number and timestamp equal A's
//!    and the payloads are identical; `validate_frames` matches on consecutive keys
//!    validate. A mismatch, or a key missing on a leg, restarts the count (a mismatch also
//!    re-derives the rewrite from its pair).
//! 3. **Aligning**: `need` is the largest `arrival(B) - arrival(A)` over the validation
//!    window. Out of `±max_align` the splice fails. If B is later, A's added delay ramps
//!    up to `need` by at most `ramp_step` per forwarded packet of A.
//! 4. **Cut over**, decided on a packet of B with key `T` once aligned: if A already
//!    delivered `T` (A's highest forwarded key `H >= T`), the cut is at `H + 1 frame` and
//!    B's `T` is dropped; if A did not deliver `T`, the cut is at `T` and B's `T` is
//!    forwarded (a cut at most `max_align` ahead of A's newest frame). From then on B's packets at or after the cut are forwarded with
//!    B's rewrite, held by `A's delay - need` (so they keep A's schedule), and that hold
//!    ramps down to zero by `ramp_step` per packet; A's packets at or after the cut are
//!    dropped, A's late packets before it are still forwarded.
//!
//! Release times never decrease along one leg (each is clamped to at least that leg's
//! previous one), and B's never precede A's last, so a caller that sends held packets in
//! release-time order (the relay keeps them in a queue ordered by release time) sends
//! the client its frames in order. When B leads A by a packet interval or more, B's
//! frame `T` comes before A's frame `T - 1 frame`: the cut is at `T` all the same, and
//! A's frames before it are forwarded when they come; one that would then be released
//! after B's first is dropped ([`DropWhy::Overtaken`]) rather than sent out of order.
//!
//! All key, sequence-number and timestamp comparisons are serial-number (wrapping)
//! arithmetic. All memory is allocated in [`Splice::new`]; nothing allocates afterwards,
//! and no input panics.

use core::time::Duration;

use crate::clock::Instant;
use crate::wire::rewrite::RtpRewrite;

/// Tuning of a [`Splice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceConfig {
    /// RTP timestamp units per frame (key spacing): 160 for 20 ms at 8 kHz.
    pub frame_samples: u32,
    /// Packet interval.
    pub ptime: Duration,
    /// Consecutive matching frames needed to validate (K; 0 is taken as 1).
    pub validate_frames: u32,
    /// Largest arrival offset between the legs that may be aligned, either way.
    pub max_align: Duration,
    /// Largest change of a stream's added delay per packet.
    pub ramp_step: Duration,
    /// Frames remembered per leg (0 is taken as 1).
    pub history: usize,
    /// Largest payload that can be compared (longer ones never match).
    pub max_payload: usize,
    /// Instruct mode: B was told to emit A's client-visible SSRC, sequence numbers and
    /// timestamps itself, so the rewrite found must be the identity.
    pub expect_identity: bool,
    /// Cut over only once [`Splice::commit`] was called (the control plane commits when
    /// every client of the conference is validated); otherwise as soon as aligned.
    pub await_commit: bool,
    /// A is taken for dead when B's packets keep coming and A has sent nothing for this
    /// long: the client is failed over to B at once, validated or not (zero: never).
    pub active_silence: Duration,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        SpliceConfig {
            frame_samples: super::RTP_CLOCK.samples_in_ms(20) as u32,
            ptime: Duration::from_millis(20),
            validate_frames: 5,
            max_align: Duration::from_millis(60),
            ramp_step: Duration::from_millis(2),
            history: 16,
            max_payload: 320,
            expect_identity: false,
            await_commit: false,
            active_silence: Duration::from_millis(100),
        }
    }
}

/// Which mixer a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Mixer A, the one the client hears now.
    Active,
    /// Mixer B, the one taking over.
    Candidate,
}

/// The RTP header fields the splice looks at (as received on the leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RtpHead {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Rewrite it with `rewrite` and send it to the client at `release_at`.
    Forward {
        rewrite: RtpRewrite,
        release_at: Instant,
    },
    /// Drop it.
    Drop(DropWhy),
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropWhy {
    /// From B before the cut (remembered for validation).
    NotCut,
    /// From B, for a frame before the cut: A delivered (or owned) it.
    BeforeCut,
    /// From A, for a frame at or after the cut: B delivers it.
    AfterCut,
    /// From B after the splice failed or was aborted.
    Abandoned,
    /// From A, for a frame before the cut that came so late it would be released after
    /// B's first frame (the client would get it out of order).
    Overtaken,
}

/// Why a pair did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MismatchReason {
    /// B's rewritten sequence number is `got`, A's is `expected`.
    Sequence { expected: u16, got: u16 },
    /// B's rewritten timestamp is `got`, A's is `expected`.
    Timestamp { expected: u32, got: u32 },
    /// B's SSRC changed from the one the rewrite was derived for.
    Ssrc { expected: u32, got: u32 },
    /// Instruct mode: B's header differs from A's client-visible one (`ssrc` is B's SSRC,
    /// the deltas are what would map B onto A).
    NotIdentity {
        ssrc: u32,
        seq_delta: u16,
        ts_delta: u32,
    },
    /// Payload lengths differ.
    PayloadLength { active: usize, candidate: usize },
    /// Payloads differ, first at byte `offset`.
    Payload { offset: usize },
    /// Payload longer than `max_payload`: cannot be compared.
    Unverifiable { len: usize },
}

/// Why the splice gave up (B's packets are dropped from then on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// `arrival(B) - arrival(A)` needed (nanoseconds) is outside `±max_align`.
    OutOfRange { need_ns: i64 },
}

/// Progress reports, queued by [`Splice::on_packet`] and read with
/// [`Splice::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceEvent {
    /// B's rewrite was derived (first pair, or again after a mismatch) from the pair `key`.
    Paired { key: u32, rewrite: RtpRewrite },
    /// The pair `key` did not match; validation restarts.
    Mismatch { key: u32, reason: MismatchReason },
    /// `validate_frames` consecutive frames matched, the last one being `key`. `need_ns` is
    /// the largest `arrival(B) - arrival(A)` over them (positive: B later).
    Validated {
        key: u32,
        rewrite: RtpRewrite,
        need_ns: i64,
    },
    /// The splice failed; the caller should abort the handover.
    Failed { reason: FailReason },
    /// A sent nothing for `silent_for` while B's packets kept coming: the client is failed
    /// over to B without waiting for validation (a [`SpliceEvent::CutOver`] follows).
    ActiveLost { silent_for: Duration },
    /// The cut is decided: frames from `key` on come from B, the first of them with
    /// client-visible sequence number `seq`. `active_delay` is A's added delay at the
    /// switch, `candidate_delay` B's (which then ramps down to zero).
    CutOver {
        key: u32,
        seq: u16,
        active_delay: Duration,
        candidate_delay: Duration,
        at: Instant,
    },
}

/// Where the splice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceState {
    /// No frame seen on both legs yet.
    Learning,
    /// Counting consecutive matching frames.
    Validating { matched: u32 },
    /// Validated; A's added delay (`active_delay`) ramps towards `need_ns` if B is later.
    Aligning {
        need_ns: i64,
        active_delay: Duration,
    },
    /// Cut over at frame `key`, B's first client-visible sequence number being `seq`.
    CutOver { key: u32, seq: u16 },
    /// Gave up (B dropped, A forwarded, A's delay ramps back to where it started).
    Failed(FailReason),
    /// Aborted by the caller (as `Failed`).
    Aborted,
}

/// Events kept until polled; when full, the oldest is dropped.
const EVENT_QUEUE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Validating,
    Aligning { need_ns: i64 },
    Cut { key: u32, seq: u16 },
    Failed(FailReason),
    Aborted,
}

/// One remembered packet. For A: client-visible (rewritten) header; for B: as received.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    used: bool,
    key: u32,
    ssrc: u32,
    seq: u16,
    ts: u32,
    at: Instant,
    len: usize,
}

/// Fixed ring of remembered packets with their payload copies.
#[derive(Debug)]
struct History {
    entries: Vec<Entry>,
    data: Vec<u8>,
    slot: usize,
    next: usize,
}

impl History {
    fn new(frames: usize, slot: usize) -> Self {
        let frames = frames.max(1);
        History {
            entries: vec![Entry::default(); frames],
            data: vec![0; frames.saturating_mul(slot)],
            slot,
            next: 0,
        }
    }

    fn clear(&mut self) {
        self.entries.fill(Entry::default());
        self.next = 0;
    }

    fn find(&self, key: u32) -> Option<usize> {
        self.entries.iter().position(|e| e.used && e.key == key)
    }

    fn entry(&self, i: usize) -> Entry {
        self.entries.get(i).copied().unwrap_or_default()
    }

    /// Remembers a packet; `None` if that key is already remembered (kept as it was).
    fn insert(&mut self, mut e: Entry, payload: &[u8]) -> Option<usize> {
        if self.find(e.key).is_some() {
            return None;
        }
        let i = self.next;
        self.next = (i + 1) % self.entries.len();
        e.used = true;
        e.len = payload.len();
        let n = payload.len().min(self.slot);
        let start = i * self.slot;
        if let (Some(dst), Some(src)) = (self.data.get_mut(start..start + n), payload.get(..n)) {
            dst.copy_from_slice(src);
        }
        if let Some(slot) = self.entries.get_mut(i) {
            *slot = e;
        }
        Some(i)
    }

    fn payload(&self, i: usize) -> &[u8] {
        let n = self.entry(i).len.min(self.slot);
        let start = i * self.slot;
        self.data.get(start..start + n).unwrap_or(&[])
    }
}

/// The per-client splice state machine (see the module documentation).
#[derive(Debug)]
pub struct Splice {
    cfg: SpliceConfig,
    active: RtpRewrite,
    initial_delay: Duration,
    candidate_ts_delta: u32,
    phase: Phase,
    /// A's added delay now, and where it ramps to.
    a_delay: Duration,
    a_target: Duration,
    /// B's added delay (meaningful once cut over).
    b_delay: Duration,
    /// B's rewrite and the SSRC of B it was derived for.
    rewrite: Option<RtpRewrite>,
    b_ssrc: u32,
    paired: bool,
    committed: bool,
    matched: u32,
    last_matched: Option<u32>,
    max_d: i64,
    /// A's highest forwarded key and its client-visible sequence number.
    a_high: Option<(u32, u16)>,
    /// When A's newest packet arrived, and the client-visible SSRC it had.
    a_last: Option<(Instant, u32)>,
    /// The last release handed out on each leg, and B's first after the cut.
    a_release: Option<Instant>,
    b_release: Option<Instant>,
    b_first: Option<Instant>,
    hist_a: History,
    hist_b: History,
    events: [Option<SpliceEvent>; EVENT_QUEUE],
    ev_head: usize,
    ev_len: usize,
    ev_dropped: u64,
}

/// `a` is before `b` in serial-number order.
fn key_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// `b - a` in signed nanoseconds.
fn diff_nanos(b: Instant, a: Instant) -> i64 {
    let d = i128::from(b.as_nanos()) - i128::from(a.as_nanos());
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

fn step_towards(cur: Duration, target: Duration, step: Duration) -> Duration {
    if cur < target {
        cur.saturating_add(step).min(target)
    } else {
        cur.saturating_sub(step).max(target)
    }
}

impl Splice {
    /// A splice for one client: `active` is A's rewrite (identity for the first mixer),
    /// `active_delay` the delay currently added to A's packets, `candidate_ts_delta` what
    /// maps B's timestamps onto the client's timeline (the frame key). Allocates the
    /// history rings; nothing allocates afterwards.
    pub fn new(
        cfg: SpliceConfig,
        active: RtpRewrite,
        active_delay: Duration,
        candidate_ts_delta: u32,
    ) -> Splice {
        let cfg = SpliceConfig {
            validate_frames: cfg.validate_frames.max(1),
            history: cfg.history.max(1),
            ..cfg
        };
        Splice {
            hist_a: History::new(cfg.history, cfg.max_payload),
            hist_b: History::new(cfg.history, cfg.max_payload),
            cfg,
            active,
            initial_delay: active_delay,
            candidate_ts_delta,
            phase: Phase::Validating,
            a_delay: active_delay,
            a_target: active_delay,
            b_delay: Duration::ZERO,
            rewrite: None,
            b_ssrc: 0,
            paired: false,
            committed: false,
            matched: 0,
            last_matched: None,
            max_d: 0,
            a_high: None,
            a_last: None,
            a_release: None,
            b_release: None,
            b_first: None,
            events: [None; EVENT_QUEUE],
            ev_head: 0,
            ev_len: 0,
            ev_dropped: 0,
        }
    }

    /// Starts over for a new handover (on the dataplane core: allocates nothing), as if
    /// built by [`Splice::new`] with these arguments and the same configuration.
    pub fn start(&mut self, active: RtpRewrite, active_delay: Duration, candidate_ts_delta: u32) {
        self.active = active;
        self.initial_delay = active_delay;
        self.candidate_ts_delta = candidate_ts_delta;
        self.phase = Phase::Validating;
        self.a_delay = active_delay;
        self.a_target = active_delay;
        self.b_delay = Duration::ZERO;
        self.rewrite = None;
        self.b_ssrc = 0;
        self.paired = false;
        self.committed = false;
        self.matched = 0;
        self.last_matched = None;
        self.max_d = 0;
        self.a_high = None;
        self.a_last = None;
        self.a_release = None;
        self.b_release = None;
        self.b_first = None;
        self.hist_a.clear();
        self.hist_b.clear();
        self.events = [None; EVENT_QUEUE];
        self.ev_head = 0;
        self.ev_len = 0;
        self.ev_dropped = 0;
    }

    /// What the client last got from A before the splice was linked in: the frame `key`
    /// with client-visible sequence number `seq` and SSRC `ssrc`, arrived at `at`. If A
    /// sends nothing more, the client can still be failed over to B right after it.
    pub fn seed_active(&mut self, at: Instant, key: u32, seq: u16, ssrc: u32) {
        self.a_high = Some((key, seq));
        self.a_last = Some((at, ssrc));
    }

    /// Permits the cut (with [`SpliceConfig::await_commit`]; without, cutting needs no
    /// permission and this changes nothing).
    pub fn commit(&mut self) {
        self.committed = true;
    }

    /// A packet from `leg` arrived at `now`; `payload` is its RTP payload.
    pub fn on_packet(&mut self, now: Instant, leg: Leg, head: RtpHead, payload: &[u8]) -> Decision {
        match leg {
            Leg::Active => self.on_active(now, head, payload),
            Leg::Candidate => self.on_candidate(now, head, payload),
        }
    }

    /// The next queued event, oldest first.
    pub fn poll_event(&mut self) -> Option<SpliceEvent> {
        if self.ev_len == 0 {
            return None;
        }
        let e = self.events.get_mut(self.ev_head).and_then(Option::take);
        self.ev_head = (self.ev_head + 1) % EVENT_QUEUE;
        self.ev_len -= 1;
        e
    }

    /// Events lost because the queue was full when they were raised.
    pub fn events_dropped(&self) -> u64 {
        self.ev_dropped
    }

    /// Where the splice is.
    pub fn state(&self) -> SpliceState {
        match self.phase {
            Phase::Validating if !self.paired => SpliceState::Learning,
            Phase::Validating => SpliceState::Validating {
                matched: self.matched,
            },
            Phase::Aligning { need_ns } => SpliceState::Aligning {
                need_ns,
                active_delay: self.a_delay,
            },
            Phase::Cut { key, seq } => SpliceState::CutOver { key, seq },
            Phase::Failed(r) => SpliceState::Failed(r),
            Phase::Aborted => SpliceState::Aborted,
        }
    }

    /// Once cut over: B's rewrite and B's current added delay.
    pub fn forward_after_cut(&self) -> Option<(RtpRewrite, Duration)> {
        match (self.phase, self.rewrite) {
            (Phase::Cut { .. }, Some(rw)) => Some((rw, self.b_delay)),
            _ => None,
        }
    }

    /// The delay currently added to A's packets.
    pub fn active_delay(&self) -> Duration {
        self.a_delay
    }

    /// B's rewrite as derived so far (before validation it may still change).
    pub fn candidate_rewrite(&self) -> Option<RtpRewrite> {
        self.rewrite
    }

    /// Gives up before the cut: from now on B's packets are dropped, A's forwarded as
    /// before (A's added delay ramps back to where it started). After the cut, or once
    /// failed, this does nothing.
    pub fn abort(&mut self) {
        match self.phase {
            Phase::Cut { .. } | Phase::Failed(_) | Phase::Aborted => {}
            Phase::Validating | Phase::Aligning { .. } => {
                self.phase = Phase::Aborted;
                self.a_target = self.initial_delay;
            }
        }
    }

    fn push(&mut self, e: SpliceEvent) {
        if self.ev_len == EVENT_QUEUE {
            if let Some(old) = self.events.get_mut(self.ev_head) {
                *old = None;
            }
            self.ev_head = (self.ev_head + 1) % EVENT_QUEUE;
            self.ev_len -= 1;
            self.ev_dropped += 1;
        }
        let i = (self.ev_head + self.ev_len) % EVENT_QUEUE;
        if let Some(slot) = self.events.get_mut(i) {
            *slot = Some(e);
        }
        self.ev_len += 1;
    }

    /// When a packet of `leg` arriving at `now` with `delay` added goes out: not before
    /// the leg's previous one, and for B not before A's last either.
    fn release_at(&self, leg: Leg, now: Instant, delay: Duration) -> Instant {
        let floor = match leg {
            Leg::Active => self.a_release,
            Leg::Candidate => self.b_release.max(self.a_release),
        };
        floor.map_or(now + delay, |f| (now + delay).max(f))
    }

    fn forward(
        &mut self,
        leg: Leg,
        now: Instant,
        delay: Duration,
        rewrite: RtpRewrite,
    ) -> Decision {
        let at = self.release_at(leg, now, delay);
        match leg {
            Leg::Active => self.a_release = Some(at),
            Leg::Candidate => {
                self.b_release = Some(at);
                self.b_first.get_or_insert(at);
            }
        }
        Decision::Forward {
            rewrite,
            release_at: at,
        }
    }

    fn on_active(&mut self, now: Instant, head: RtpHead, payload: &[u8]) -> Decision {
        let key = head.ts.wrapping_add(self.active.ts_delta);
        match self.phase {
            Phase::Cut { key: cut, .. } => {
                if !key_before(key, cut) {
                    return Decision::Drop(DropWhy::AfterCut);
                }
                let at = self.release_at(Leg::Active, now, self.a_delay);
                if self.b_first.is_some_and(|b| at > b) {
                    return Decision::Drop(DropWhy::Overtaken);
                }
                return self.forward(Leg::Active, now, self.a_delay, self.active);
            }
            Phase::Failed(_) | Phase::Aborted => {
                self.a_delay = step_towards(self.a_delay, self.a_target, self.cfg.ramp_step);
                return self.forward(Leg::Active, now, self.a_delay, self.active);
            }
            Phase::Validating | Phase::Aligning { .. } => {}
        }
        self.a_last = Some((now, self.active.ssrc.unwrap_or(head.ssrc)));
        let seq = head.seq.wrapping_add(self.active.seq_delta);
        let entry = Entry {
            used: true,
            key,
            ssrc: self.active.ssrc.unwrap_or(head.ssrc),
            seq,
            ts: key,
            at: now,
            len: payload.len(),
        };
        if self.a_high.is_none_or(|(h, _)| key_before(h, key)) {
            self.a_high = Some((key, seq));
        }
        if let Some(ai) = self.hist_a.insert(entry, payload) {
            if let Some(bi) = self.hist_b.find(key) {
                self.on_pair(key, ai, bi);
            }
        }
        if matches!(self.phase, Phase::Aligning { .. } | Phase::Failed(_)) {
            self.a_delay = step_towards(self.a_delay, self.a_target, self.cfg.ramp_step);
        }
        self.forward(Leg::Active, now, self.a_delay, self.active)
    }

    fn on_candidate(&mut self, now: Instant, head: RtpHead, payload: &[u8]) -> Decision {
        let key = head.ts.wrapping_add(self.candidate_ts_delta);
        match self.phase {
            Phase::Cut { key: cut, .. } => {
                if key_before(key, cut) {
                    return Decision::Drop(DropWhy::BeforeCut);
                }
                let rw = self.rewrite.unwrap_or_default();
                let d = self.forward(Leg::Candidate, now, self.b_delay, rw);
                self.b_delay = self.b_delay.saturating_sub(self.cfg.ramp_step);
                return d;
            }
            Phase::Failed(_) | Phase::Aborted => return Decision::Drop(DropWhy::Abandoned),
            Phase::Validating | Phase::Aligning { .. } => {}
        }
        let entry = Entry {
            used: true,
            key,
            ssrc: head.ssrc,
            seq: head.seq,
            ts: head.ts,
            at: now,
            len: payload.len(),
        };
        if let Some(bi) = self.hist_b.insert(entry, payload) {
            if let Some(ai) = self.hist_a.find(key) {
                self.on_pair(key, ai, bi);
            }
        }
        if let Some(d) = self.fail_over(now, key, head) {
            return d;
        }
        if let Phase::Aligning { need_ns } = self.phase {
            let permitted = self.committed || !self.cfg.await_commit;
            if permitted && need_ns <= nanos(self.a_delay) {
                if let Some(d) = self.try_cut(now, key, head, need_ns) {
                    return d;
                }
            }
        }
        Decision::Drop(DropWhy::NotCut)
    }

    /// A went silent while B's packet `key` is here: cut over to B right after A's last
    /// frame (frames A never sent are lost to the client, as on any dead stream). B's
    /// rewrite is the one validation found, or else the one that continues A's last
    /// packet's sequence numbers at B's frame.
    fn fail_over(&mut self, now: Instant, key: u32, head: RtpHead) -> Option<Decision> {
        let (last, a_ssrc) = self.a_last?;
        let silent_for = now.saturating_since(last);
        if self.cfg.active_silence.is_zero() || silent_for < self.cfg.active_silence {
            return None;
        }
        let (high, high_seq) = self.a_high?;
        let cut = high.wrapping_add(self.cfg.frame_samples);
        if key_before(key, cut) {
            return None;
        }
        let rw = match self.rewrite {
            Some(rw) => rw,
            None => {
                let frames = key.wrapping_sub(high) / self.cfg.frame_samples.max(1);
                let seq = high_seq.wrapping_add(frames as u16);
                RtpRewrite {
                    payload_type: self.active.payload_type,
                    marker: self.active.marker,
                    ..RtpRewrite::continuing(head.seq, head.ts, a_ssrc, seq, key)
                }
            }
        };
        self.rewrite = Some(rw);
        self.push(SpliceEvent::ActiveLost { silent_for });
        self.cut(now, cut, high_seq.wrapping_add(1), Duration::ZERO);
        Some(self.forward(Leg::Candidate, now, Duration::ZERO, rw))
    }

    /// Aligned and B's packet `key` is here: cut if this is a point where A's frames end
    /// and B's begin without a gap, repeat or reordering.
    fn try_cut(&mut self, now: Instant, key: u32, head: RtpHead, need_ns: i64) -> Option<Decision> {
        let (high, high_seq) = self.a_high?;
        let rw = self.rewrite?;
        let fs = self.cfg.frame_samples;
        let b_delay = from_nanos(nanos(self.a_delay).saturating_sub(need_ns));
        if !key_before(high, key) {
            // A already delivered this frame: cut after A's last one, if B's packet for
            // that frame is still to come.
            let cut = high.wrapping_add(fs);
            if self.hist_b.find(cut).is_some() {
                return None;
            }
            self.cut(now, cut, high_seq.wrapping_add(1), b_delay);
            Some(Decision::Drop(DropWhy::BeforeCut))
        } else if key.wrapping_sub(high) <= self.max_lead() {
            // A has not delivered this frame: cut here. A's frames before it that are
            // still to come (B leads, or A's packet is late or lost) go out when they
            // come, if they can still go out before this one.
            self.cut(now, key, head.seq.wrapping_add(rw.seq_delta), b_delay);
            let d = self.forward(Leg::Candidate, now, self.b_delay, rw);
            self.b_delay = self.b_delay.saturating_sub(self.cfg.ramp_step);
            Some(d)
        } else {
            None
        }
    }

    /// How far ahead of A's newest frame a cut may be (in timestamp units): the frames
    /// `max_align` spans, and the frame itself.
    fn max_lead(&self) -> u32 {
        let ptime = nanos(self.cfg.ptime).max(1);
        let frames = nanos(self.cfg.max_align)
            .div_euclid(ptime)
            .saturating_add(1);
        self.cfg
            .frame_samples
            .saturating_mul(u32::try_from(frames).unwrap_or(u32::MAX))
    }

    fn cut(&mut self, now: Instant, key: u32, seq: u16, b_delay: Duration) {
        self.phase = Phase::Cut { key, seq };
        self.b_delay = b_delay;
        self.push(SpliceEvent::CutOver {
            key,
            seq,
            active_delay: self.a_delay,
            candidate_delay: b_delay,
            at: now,
        });
    }

    fn compare_payloads(&self, ai: usize, bi: usize) -> Result<(), MismatchReason> {
        let (a, b) = (self.hist_a.entry(ai), self.hist_b.entry(bi));
        if a.len != b.len {
            return Err(MismatchReason::PayloadLength {
                active: a.len,
                candidate: b.len,
            });
        }
        if a.len > self.cfg.max_payload {
            return Err(MismatchReason::Unverifiable { len: a.len });
        }
        let (pa, pb) = (self.hist_a.payload(ai), self.hist_b.payload(bi));
        match pa.iter().zip(pb).position(|(x, y)| x != y) {
            Some(offset) => Err(MismatchReason::Payload { offset }),
            None => Ok(()),
        }
    }

    /// Frame `key` is remembered on both legs (A at `ai`, B at `bi`).
    fn on_pair(&mut self, key: u32, ai: usize, bi: usize) {
        let (a, b) = (self.hist_a.entry(ai), self.hist_b.entry(bi));
        self.paired = true;
        let derived = RtpRewrite {
            payload_type: self.active.payload_type,
            marker: self.active.marker,
            ..RtpRewrite::continuing(b.seq, b.ts, a.ssrc, a.seq, a.ts)
        };
        let header = if self.cfg.expect_identity {
            if a.ssrc != b.ssrc || derived.seq_delta != 0 || derived.ts_delta != 0 {
                Err(MismatchReason::NotIdentity {
                    ssrc: b.ssrc,
                    seq_delta: derived.seq_delta,
                    ts_delta: derived.ts_delta,
                })
            } else {
                if self.rewrite.is_none() {
                    self.set_rewrite(key, derived, b.ssrc);
                }
                Ok(())
            }
        } else {
            match self.rewrite {
                None => {
                    self.set_rewrite(key, derived, b.ssrc);
                    Ok(())
                }
                Some(_) if b.ssrc != self.b_ssrc => Err(MismatchReason::Ssrc {
                    expected: self.b_ssrc,
                    got: b.ssrc,
                }),
                Some(rw) if b.seq.wrapping_add(rw.seq_delta) != a.seq => {
                    Err(MismatchReason::Sequence {
                        expected: a.seq,
                        got: b.seq.wrapping_add(rw.seq_delta),
                    })
                }
                Some(rw) if b.ts.wrapping_add(rw.ts_delta) != a.ts => {
                    Err(MismatchReason::Timestamp {
                        expected: a.ts,
                        got: b.ts.wrapping_add(rw.ts_delta),
                    })
                }
                Some(_) => Ok(()),
            }
        };
        match header.and_then(|()| self.compare_payloads(ai, bi)) {
            Ok(()) => {
                let d = diff_nanos(b.at, a.at);
                let consecutive = self.matched > 0
                    && self.last_matched == Some(key.wrapping_sub(self.cfg.frame_samples));
                if consecutive {
                    self.matched = self.matched.saturating_add(1);
                    self.max_d = self.max_d.max(d);
                } else {
                    self.matched = 1;
                    self.max_d = d;
                }
                self.last_matched = Some(key);
                if self.phase == Phase::Validating && self.matched >= self.cfg.validate_frames {
                    self.validated(key);
                }
            }
            Err(reason) => {
                self.push(SpliceEvent::Mismatch { key, reason });
                self.matched = 0;
                self.last_matched = None;
                if !self.cfg.expect_identity && self.rewrite != Some(derived) {
                    self.set_rewrite(key, derived, b.ssrc);
                }
                if let Phase::Aligning { .. } = self.phase {
                    self.phase = Phase::Validating;
                }
            }
        }
    }

    fn set_rewrite(&mut self, key: u32, rewrite: RtpRewrite, b_ssrc: u32) {
        self.rewrite = Some(rewrite);
        self.b_ssrc = b_ssrc;
        self.push(SpliceEvent::Paired { key, rewrite });
    }

    fn validated(&mut self, key: u32) {
        let need_ns = self.max_d;
        self.push(SpliceEvent::Validated {
            key,
            rewrite: self.rewrite.unwrap_or_default(),
            need_ns,
        });
        let range = nanos(self.cfg.max_align);
        if need_ns > range || need_ns < range.saturating_neg() {
            self.fail(FailReason::OutOfRange { need_ns });
        } else {
            self.phase = Phase::Aligning { need_ns };
            self.a_target = self.a_delay.max(from_nanos(need_ns));
        }
    }

    fn fail(&mut self, reason: FailReason) {
        self.phase = Phase::Failed(reason);
        self.a_target = self.initial_delay;
        self.push(SpliceEvent::Failed { reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn t(ms: u64) -> Instant {
        Instant::from_nanos(ms * MS)
    }

    #[test]
    fn serial_order_wraps() {
        assert!(key_before(u32::MAX - 10, 5));
        assert!(!key_before(5, u32::MAX - 10));
        assert!(key_before(1, 2));
        assert!(!key_before(2, 2));
    }

    #[test]
    fn steps_towards_target_by_at_most_step() {
        let ms = Duration::from_millis;
        assert_eq!(step_towards(ms(0), ms(5), ms(2)), ms(2));
        assert_eq!(step_towards(ms(4), ms(5), ms(2)), ms(5));
        assert_eq!(step_towards(ms(5), ms(0), ms(2)), ms(3));
        assert_eq!(step_towards(ms(1), ms(0), ms(2)), ms(0));
        assert_eq!(diff_nanos(t(1), t(3)), -2_000_000);
        assert_eq!(from_nanos(-5), Duration::ZERO);
    }

    #[test]
    fn history_keeps_first_copy_and_evicts_oldest() {
        let mut h = History::new(2, 4);
        let e = |key| Entry {
            key,
            ..Entry::default()
        };
        assert_eq!(h.insert(e(1), &[1, 2, 3]), Some(0));
        assert_eq!(h.insert(e(1), &[9]), None);
        assert_eq!(h.payload(0), &[1, 2, 3]);
        assert_eq!(h.insert(e(2), &[4, 5, 6, 7, 8]), Some(1));
        assert_eq!(h.entry(1).len, 5);
        assert_eq!(h.payload(1), &[4, 5, 6, 7], "stored up to the slot size");
        assert_eq!(h.insert(e(3), &[]), Some(0));
        assert_eq!((h.find(1), h.find(2), h.find(3)), (None, Some(1), Some(0)));
    }

    #[test]
    fn event_queue_drops_oldest_when_full() {
        let mut s = Splice::new(
            SpliceConfig::default(),
            RtpRewrite::default(),
            Duration::ZERO,
            0,
        );
        for key in 0..(EVENT_QUEUE as u32 + 3) {
            s.push(SpliceEvent::Mismatch {
                key,
                reason: MismatchReason::Payload { offset: 0 },
            });
        }
        assert_eq!(s.events_dropped(), 3);
        let keys: Vec<u32> = core::iter::from_fn(|| s.poll_event())
            .map(|e| match e {
                SpliceEvent::Mismatch { key, .. } => key,
                _ => u32::MAX,
            })
            .collect();
        assert_eq!(keys, (3..EVENT_QUEUE as u32 + 3).collect::<Vec<_>>());
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn first_pair_derives_rewrite_onto_a() {
        let a_rw = RtpRewrite {
            ssrc: Some(0xAAAA),
            seq_delta: 100,
            ts_delta: 1000,
            ..RtpRewrite::default()
        };
        // Key of A's ts 0 is 1000; B's ts 5000 maps to key 1000 with delta -4000.
        let mut s = Splice::new(
            SpliceConfig::default(),
            a_rw,
            Duration::ZERO,
            1000u32.wrapping_sub(5000),
        );
        let p = [7u8; 160];
        let a = RtpHead {
            ssrc: 1,
            seq: 10,
            ts: 0,
            marker: false,
        };
        let b = RtpHead {
            ssrc: 2,
            seq: 300,
            ts: 5000,
            marker: false,
        };
        assert!(matches!(
            s.on_packet(t(0), Leg::Active, a, &p),
            Decision::Forward { rewrite, release_at } if rewrite == a_rw && release_at == t(0)
        ));
        assert_eq!(s.state(), SpliceState::Learning);
        assert_eq!(
            s.on_packet(t(5), Leg::Candidate, b, &p),
            Decision::Drop(DropWhy::NotCut)
        );
        let want = RtpRewrite::continuing(300, 5000, 0xAAAA, 110, 1000);
        assert_eq!(
            s.poll_event(),
            Some(SpliceEvent::Paired {
                key: 1000,
                rewrite: want
            })
        );
        assert_eq!(s.state(), SpliceState::Validating { matched: 1 });
        assert_eq!(s.candidate_rewrite(), Some(want));
    }
}
