//! Jitter buffer with loss concealment and comfort noise, adaptive ([`Playout::Adaptive`],
//! the default) or keyed to timestamps ([`Playout::Timeline`]).
//!
//! Packets are stored in fixed slots allocated at creation, each in the lowest free slot
//! (when every slot is taken, the oldest packet makes room, or the new one is dropped if
//! it is older still); a bitmask of the slots in use keeps every lookup to those.
//! Playout is a cursor (`play_ts`, in unwrapped RTP timestamp units) that advances by
//! exactly the number of samples the caller asks for per tick, except when the buffer
//! deliberately *stalls* (does not advance: inserts concealment or comfort noise, i.e.
//! grows the delay) or *skips* (advances further: shrinks the delay).
//!
//! The delay is chosen from arrival times. For every packet the transit
//! `arrival - timestamp` (both in samples) is recorded in two sliding windows; `base` is
//! the smallest transit (the fastest packet), `spread` the largest minus the smallest.
//! A packet with timestamp `ts` is due at `ts + base + target` where
//! `target = clamp(spread + packet duration, min_delay, max_delay)`. At each tick the
//! cursor is compared with where it should be: too far behind (more delay than
//! `target`) it skips — freely in silence, a quiet frame at a time in speech, and
//! unconditionally once the delay exceeds `max_delay`; too far ahead (a jitter spike
//! raised `target`) it stalls. Packets arriving after their samples were played are
//! dropped as late; duplicates are dropped by a 128-packet sequence window.
//!
//! With [`Playout::Timeline`] none of the arrival statistics are kept: the caller names
//! the RTP timestamp of every frame it wants ([`JitterBuffer::poll_at`]), the buffer plays
//! exactly those samples (concealment, comfort noise or silence where nothing was
//! received, as in adaptive playout), and a packet whose samples precede the end of the
//! last frame asked for is late. Comfort noise is then keyed to the timestamps
//! ([`ComfortNoise::generate_keyed`]), so what comes out is a function of the packets
//! and the timestamps asked for, not of when anything happened.

use core::time::Duration;

use crate::clock::Instant;
use crate::codec::{g711, l16, CodecKind};
use crate::mixer::kernel::Kernel;
use crate::rate::SampleRate;

use super::cn::{ComfortNoise, Sid};
use super::plc::Concealer;

/// How long each of the two transit-statistics windows lasts.
const WINDOW: Duration = Duration::from_secs(2);
/// Mean absolute sample value below which a frame counts as quiet (about -54 dBov).
const QUIET_MEAN_ABS: u64 = 64;

/// Jitter buffer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterConfig {
    /// Smallest playout delay beyond the fastest packet's transit.
    pub min_delay: Duration,
    /// Largest playout delay; later packets are dropped.
    pub max_delay: Duration,
    /// Number of packet slots (allocated at creation).
    pub capacity: usize,
    /// Largest payload stored, bytes (320 = 40 ms of G.711).
    pub max_payload: usize,
    /// RTP clock rate of the audio, Hz.
    pub clock_rate: u32,
    /// How long concealment takes to fade to silence.
    pub conceal_fade: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            capacity: 32,
            // 20 ms of L16 at 8 kHz.
            max_payload: CodecKind::L16.encoded_len(SampleRate::Hz8000.samples_in_ms(20)),
            clock_rate: SampleRate::Hz8000.hz(),
            conceal_fade: Duration::from_millis(60),
        }
    }
}

/// Why a [`JitterConfig`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JitterConfigError {
    /// `min_delay` must not exceed `max_delay`, and `max_delay` must be at most 10 s.
    #[error("jitter buffer delay bounds {min:?}..{max:?} are inverted or too large")]
    Bounds {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// Capacity, payload size and clock rate must be non-zero (capacity at most 4096).
    #[error("jitter buffer capacity, payload size and clock rate must be non-zero and sane")]
    Size,
}

/// How the buffer decides what to play.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Playout {
    /// By arrival time, adapting the delay to the jitter ([`JitterBuffer::poll`]).
    #[default]
    Adaptive,
    /// The samples at the RTP timestamps the caller names ([`JitterBuffer::poll_at`]).
    Timeline,
}

/// What a stored packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// Audio in one of the fast-path codecs.
    Audio(CodecKind),
    /// An RFC 3389 SID frame (already validated by the caller).
    ComfortNoise,
}

/// A packet offered to the buffer.
#[derive(Clone, Copy, Debug)]
pub struct MediaPacket<'a> {
    /// Extended (32+ bit) sequence number from [`super::stats::RtpStats`].
    pub ext_seq: u64,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Audio or comfort noise.
    pub kind: MediaKind,
    /// Payload bytes (copied into a slot).
    pub payload: &'a [u8],
    /// RFC 6464 (voice flag, level in -dBov), if the sender provided it.
    pub audio_level: Option<(bool, u8)>,
}

/// What happened to an offered packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Stored for playout.
    Stored,
    /// Already received.
    Duplicate,
    /// Its samples were already played (or concealed).
    TooLate,
    /// The payload is larger than a slot or not a whole number of samples.
    BadSize,
    /// No slot was free and this packet was the oldest; dropped.
    Overflow,
}

/// Counters kept by the buffer (read by the stats scraper).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterCounters {
    /// Packets stored.
    pub stored: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late packets dropped.
    pub late: u64,
    /// Packets dropped for size.
    pub bad_size: u64,
    /// Packets dropped or evicted because the slots were full.
    pub overflow: u64,
    /// Stored packets discarded unplayed because playout skipped past them.
    pub skipped_packets: u64,
    /// Samples played from received audio.
    pub played_samples: u64,
    /// Samples of loss concealment.
    pub concealed_samples: u64,
    /// Samples of comfort noise.
    pub comfort_noise_samples: u64,
    /// Ticks on which playout stalled to grow the delay.
    pub stalls: u64,
    /// Samples skipped to shrink the delay.
    pub skipped_samples: u64,
    /// Timing resynchronisations after a timestamp discontinuity.
    pub resyncs: u64,
}

/// What one tick of playout produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Samples decoded from received packets.
    pub audio_samples: usize,
    /// Samples of loss concealment (including faded-out zeros).
    pub concealed_samples: usize,
    /// Samples of comfort noise.
    pub comfort_noise_samples: usize,
    /// Samples of plain silence (nothing received yet, or after concealment faded).
    pub silence_samples: usize,
    /// Extended sequence number of the first packet played from this tick.
    pub first_seq: Option<u64>,
    /// Extended sequence number of the last packet played from this tick.
    pub last_seq: Option<u64>,
    /// RFC 6464 level of the last packet played, if it had one.
    pub audio_level: Option<(bool, u8)>,
    /// Whether playout stalled (grew the delay) on this tick.
    pub stalled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing to continue: output silence.
    Idle,
    /// Last output was speech: gaps are concealed.
    Speech,
    /// A SID set the noise: gaps are comfort noise.
    Noise,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    used: bool,
    ext_seq: u64,
    ts: i64,
    samples: i64,
    kind: MediaKind,
    len: usize,
    audio_level: Option<(bool, u8)>,
}

const EMPTY_SLOT: Slot = Slot {
    used: false,
    ext_seq: 0,
    ts: 0,
    samples: 0,
    kind: MediaKind::ComfortNoise,
    len: 0,
    audio_level: None,
};

#[derive(Clone, Copy, Debug)]
struct TransitWindow {
    min: i64,
    max: i64,
    count: u32,
}

const EMPTY_WINDOW: TransitWindow = TransitWindow {
    min: i64::MAX,
    max: i64::MIN,
    count: 0,
};

/// The adaptive jitter buffer of one received stream.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Box<[Slot]>,
    /// One bit per slot in use (`Slot::used`), so lookups visit only those.
    occupied: Box<[u64]>,
    kernel: Kernel,
    data: Box<[u8]>,
    seen_top: Option<u64>,
    seen: u128,
    ts_ref: Option<(u32, i64)>,
    windows: [TransitWindow; 2],
    window_start: Option<Instant>,
    base: Option<i64>,
    target: i64,
    packet_samples: i64,
    play_ts: Option<i64>,
    playout: Playout,
    mode: Mode,
    concealer: Concealer,
    noise: ComfortNoise,
    counters: JitterCounters,
}

/// `nanos` nanoseconds in samples at `rate` Hz, rounded down: exactly
/// `nanos * rate / 10^9`, in 64-bit arithmetic (whole seconds and the rest apart).
pub(crate) fn samples_in(nanos: u64, rate: u32) -> u64 {
    const NS: u64 = 1_000_000_000;
    let r = u64::from(rate);
    (nanos / NS).saturating_mul(r) + nanos % NS * r / NS
}

fn bytes_per_sample(codec: CodecKind) -> usize {
    match codec {
        CodecKind::L16 => 2,
        CodecKind::Pcmu | CodecKind::Pcma => 1,
    }
}

fn decode(codec: CodecKind, bytes: &[u8], out: &mut [i16]) {
    match codec {
        CodecKind::Pcmu => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = g711::ulaw_decode(b);
            }
        }
        CodecKind::Pcma => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = g711::alaw_decode(b);
            }
        }
        CodecKind::L16 => {
            l16::decode_slice(bytes, out);
        }
    }
}

impl JitterBuffer {
    /// Allocate a buffer; `seed` makes its comfort noise deterministic.
    pub fn new(config: JitterConfig, seed: u64) -> Result<Self, JitterConfigError> {
        if config.min_delay > config.max_delay || config.max_delay > Duration::from_secs(10) {
            return Err(JitterConfigError::Bounds {
                min: config.min_delay,
                max: config.max_delay,
            });
        }
        if config.capacity == 0
            || config.capacity > 4096
            || config.max_payload == 0
            || config.clock_rate == 0
        {
            return Err(JitterConfigError::Size);
        }
        let fade = Self::duration_samples(config.clock_rate, config.conceal_fade);
        Ok(JitterBuffer {
            slots: vec![EMPTY_SLOT; config.capacity].into_boxed_slice(),
            occupied: vec![0; config.capacity.div_ceil(64)].into_boxed_slice(),
            kernel: Kernel::best(),
            data: vec![0; config.capacity * config.max_payload].into_boxed_slice(),
            seen_top: None,
            seen: 0,
            ts_ref: None,
            windows: [EMPTY_WINDOW; 2],
            window_start: None,
            base: None,
            target: Self::duration_samples(config.clock_rate, config.min_delay),
            packet_samples: 0,
            play_ts: None,
            playout: Playout::Adaptive,
            mode: Mode::Idle,
            concealer: Concealer::new(usize::try_from(fade).unwrap_or(usize::MAX)),
            noise: ComfortNoise::new(seed),
            counters: JitterCounters::default(),
            config,
        })
    }

    fn duration_samples(rate: u32, d: Duration) -> i64 {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        i64::try_from(samples_in(nanos, rate)).unwrap_or(i64::MAX)
    }

    fn now_samples(&self, now: Instant) -> i64 {
        i64::try_from(samples_in(now.as_nanos(), self.config.clock_rate)).unwrap_or(i64::MAX)
    }

    fn samples_duration(&self, samples: i64) -> Duration {
        let s = u64::try_from(samples.max(0)).unwrap_or(0);
        Duration::from_nanos(s.saturating_mul(1_000_000_000) / u64::from(self.config.clock_rate))
    }

    /// Counters so far.
    pub fn counters(&self) -> &JitterCounters {
        &self.counters
    }

    /// The current target playout delay (beyond the fastest packet's transit).
    pub fn target_delay(&self) -> Duration {
        self.samples_duration(self.target)
    }

    /// Whether a SID has configured the comfort-noise generator and gaps play noise.
    pub fn in_comfort_noise(&self) -> bool {
        self.mode == Mode::Noise
    }

    /// Switch playout mode (before packets arrive; whatever is stored is dropped).
    pub fn set_playout(&mut self, playout: Playout) {
        self.playout = playout;
        self.restart_timeline();
    }

    /// How the buffer plays out.
    pub fn playout(&self) -> Playout {
        self.playout
    }

    /// Forget everything except the counters: a new source.
    pub fn reset(&mut self) {
        self.restart_timeline();
        self.seen_top = None;
        self.seen = 0;
        self.mode = Mode::Idle;
        self.concealer.reset();
    }

    /// Drop the stored packets and every notion of where playout is, keeping what was
    /// played (concealment and comfort-noise state): the timestamps the stream is played
    /// at moved, e.g. a [`Playout::Timeline`] caller re-anchored its timeline.
    pub fn restart_timeline(&mut self) {
        self.slots.fill(EMPTY_SLOT);
        self.occupied.fill(0);
        self.ts_ref = None;
        self.resync_timing();
    }

    fn resync_timing(&mut self) {
        self.windows = [EMPTY_WINDOW; 2];
        self.window_start = None;
        self.base = None;
        self.play_ts = None;
    }

    fn unwrap_ts(&mut self, ts: u32) -> i64 {
        match self.ts_ref {
            None => {
                self.ts_ref = Some((ts, i64::from(ts)));
                i64::from(ts)
            }
            Some((raw, ext)) => {
                let e = ext + i64::from(ts.wrapping_sub(raw) as i32);
                if e > ext {
                    self.ts_ref = Some((ts, e));
                }
                e
            }
        }
    }

    /// Returns false if `ext_seq` was seen before (or is too old to tell).
    fn mark_seen(&mut self, ext_seq: u64) -> bool {
        let top = match self.seen_top {
            None => {
                self.seen_top = Some(ext_seq);
                self.seen = 1;
                return true;
            }
            Some(t) => t,
        };
        if ext_seq > top {
            let shift = ext_seq - top;
            self.seen = if shift >= 128 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.seen_top = Some(ext_seq);
            return true;
        }
        let back = top - ext_seq;
        if back >= 128 {
            return false;
        }
        let bit = 1u128 << back;
        let fresh = self.seen & bit == 0;
        self.seen |= bit;
        fresh
    }

    fn rotate_windows(&mut self, now: Instant) {
        match self.window_start {
            None => self.window_start = Some(now),
            Some(start) if now.saturating_since(start) >= WINDOW => {
                self.windows[1] = if now.saturating_since(start) >= 2 * WINDOW {
                    EMPTY_WINDOW
                } else {
                    self.windows[0]
                };
                self.windows[0] = EMPTY_WINDOW;
                self.window_start = Some(now);
                self.update_target();
            }
            Some(_) => {}
        }
    }

    fn update_target(&mut self) {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for w in self.windows.iter().filter(|w| w.count > 0) {
            lo = lo.min(w.min);
            hi = hi.max(w.max);
        }
        let min = Self::duration_samples(self.config.clock_rate, self.config.min_delay);
        let max = Self::duration_samples(self.config.clock_rate, self.config.max_delay);
        if lo <= hi {
            self.base = Some(lo);
            self.target = (hi - lo + self.packet_samples).clamp(min, max);
        } else {
            self.target = self.packet_samples.clamp(min, max);
        }
    }

    /// Offer a packet that arrived at `now`.
    pub fn insert(&mut self, now: Instant, pkt: MediaPacket<'_>) -> Insert {
        let samples = match pkt.kind {
            MediaKind::Audio(codec) => {
                let bps = bytes_per_sample(codec);
                if pkt.payload.is_empty() || !pkt.payload.len().is_multiple_of(bps) {
                    self.counters.bad_size += 1;
                    return Insert::BadSize;
                }
                (pkt.payload.len() / bps) as i64
            }
            MediaKind::ComfortNoise => 0,
        };
        if pkt.payload.len() > self.config.max_payload {
            self.counters.bad_size += 1;
            return Insert::BadSize;
        }
        if !self.mark_seen(pkt.ext_seq) {
            // Either a duplicate or more than 128 packets old: late in both readings,
            // but an exact repeat is the common case.
            self.counters.duplicates += 1;
            return Insert::Duplicate;
        }
        let mut ts = self.unwrap_ts(pkt.timestamp);
        if self.playout == Playout::Adaptive {
            ts = self.track_arrival(now, pkt.timestamp, ts, samples);
        }

        if let Some(play) = self.play_ts {
            match pkt.kind {
                MediaKind::Audio(_) if ts + samples <= play => {
                    self.counters.late += 1;
                    return Insert::TooLate;
                }
                // A late SID still sets the noise: apply it at the cursor.
                MediaKind::ComfortNoise => ts = ts.max(play),
                MediaKind::Audio(_) => {}
            }
        }

        // The lowest free slot (the one freed last is still in the cache), or, when all
        // are taken, the oldest packet's, unless this one is older still.
        let idx = match self.free_slot() {
            Some(i) => i,
            None => {
                let oldest = self
                    .used_slots()
                    .min_by_key(|(_, s)| (s.ts, s.ext_seq))
                    .map(|(i, s)| (i, s.ts, s.ext_seq));
                let Some((i, old_ts, old_seq)) = oldest else {
                    return Insert::Overflow;
                };
                self.counters.overflow += 1;
                if old_ts > ts || (old_ts == ts && old_seq > pkt.ext_seq) {
                    return Insert::Overflow;
                }
                i
            }
        };
        let Some(slot) = self.slots.get_mut(idx) else {
            return Insert::Overflow;
        };
        if let Some(w) = self.occupied.get_mut(idx / 64) {
            *w |= 1u64 << (idx % 64);
        }
        *slot = Slot {
            used: true,
            ext_seq: pkt.ext_seq,
            ts,
            samples,
            kind: pkt.kind,
            len: pkt.payload.len(),
            audio_level: pkt.audio_level,
        };
        let off = idx * self.config.max_payload;
        if let Some(dst) = self.data.get_mut(off..off + pkt.payload.len()) {
            dst.copy_from_slice(pkt.payload);
        }
        self.counters.stored += 1;
        Insert::Stored
    }

    /// Adaptive playout: record the transit of a packet with timestamp `raw` (unwrapped
    /// `ts`, `samples` long) that arrived at `now`, and update the target delay. Returns
    /// its unwrapped timestamp, which changes when the sender's timestamps jumped and the
    /// timing started afresh.
    fn track_arrival(&mut self, now: Instant, raw: u32, ts: i64, samples: i64) -> i64 {
        let mut ts = ts;
        let transit = self.now_samples(now) - ts;
        let limit = Self::duration_samples(self.config.clock_rate, self.config.max_delay)
            + i64::from(self.config.clock_rate);
        if let Some(base) = self.base {
            if (transit - base).abs() > limit {
                // The sender's timestamps jumped: start the timing afresh.
                self.counters.resyncs += 1;
                self.restart_timeline();
                self.ts_ref = Some((raw, i64::from(raw)));
                ts = i64::from(raw);
            }
        }
        self.rotate_windows(now);
        let transit = self.now_samples(now) - ts;
        let w = &mut self.windows[0];
        w.min = w.min.min(transit);
        w.max = w.max.max(transit);
        w.count += 1;
        if samples > 0 {
            self.packet_samples = samples;
        }
        self.update_target();
        ts
    }

    fn earliest(&self, audio_only: bool) -> Option<i64> {
        self.used_slots()
            .filter(|(_, s)| !audio_only || s.samples > 0)
            .map(|(_, s)| s.ts)
            .min()
    }

    /// The stored audio packet whose samples include timestamp `t`.
    fn covering(&self, t: i64) -> Option<(usize, CodecKind)> {
        self.used_slots().find_map(|(i, s)| match s.kind {
            MediaKind::Audio(codec) if s.ts <= t && t < s.ts + s.samples => Some((i, codec)),
            _ => None,
        })
    }

    /// The indices of the slots in use, in index order.
    fn in_use(&self) -> impl Iterator<Item = usize> + '_ {
        self.occupied.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            core::iter::from_fn(move || {
                let b = bits.trailing_zeros() as usize;
                bits &= bits.checked_sub(1)?;
                Some(w * 64 + b)
            })
        })
    }

    /// The slots in use, in index order.
    fn used_slots(&self) -> impl Iterator<Item = (usize, &Slot)> + '_ {
        self.in_use().filter_map(|i| Some((i, self.slots.get(i)?)))
    }

    /// The lowest slot not in use.
    fn free_slot(&self) -> Option<usize> {
        let (w, word) = self
            .occupied
            .iter()
            .enumerate()
            .find(|(_, &word)| word != u64::MAX)?;
        let idx = w * 64 + (!word).trailing_zeros() as usize;
        (idx < self.slots.len()).then_some(idx)
    }

    /// Mark slot `idx` free.
    fn release(&mut self, idx: usize) {
        if let Some(s) = self.slots.get_mut(idx) {
            s.used = false;
        }
        if let Some(w) = self.occupied.get_mut(idx / 64) {
            *w &= !(1u64 << (idx % 64));
        }
    }

    fn payload(&self, idx: usize) -> &[u8] {
        let len = self.slots.get(idx).map_or(0, |s| s.len);
        let off = idx * self.config.max_payload;
        self.data.get(off..off + len).unwrap_or(&[])
    }

    /// Whether a gap at the cursor would be inaudible (so the delay can change freely).
    fn silent_here(&self, play: i64, n: i64) -> bool {
        let speech_pending = self
            .used_slots()
            .any(|(_, s)| s.samples > 0 && s.ts < play + n);
        !speech_pending && (self.mode != Mode::Speech || self.concealer.faded())
    }

    /// Whether the audio at the cursor is quiet enough to drop unnoticed.
    fn quiet_here(&self, play: i64, n: i64) -> bool {
        let Some((idx, codec)) = self.covering(play) else {
            return false;
        };
        let Some(slot) = self.slots.get(idx) else {
            return false;
        };
        let bps = bytes_per_sample(codec);
        let from = usize::try_from(play - slot.ts).unwrap_or(0);
        let count = usize::try_from(n.min(slot.ts + slot.samples - play)).unwrap_or(0);
        let bytes = self
            .payload(idx)
            .get(from * bps..(from + count) * bps)
            .unwrap_or(&[]);
        let mut pcm = [0i16; 64];
        let mut sum = 0u64;
        for chunk in bytes.chunks(64 * bps) {
            let k = chunk.len() / bps;
            decode(codec, chunk, &mut pcm[..k]);
            sum += pcm[..k]
                .iter()
                .map(|&v| u64::from(v.unsigned_abs()))
                .sum::<u64>();
        }
        count > 0 && sum / count as u64 <= QUIET_MEAN_ABS
    }

    /// Produce the next `out.len()` samples of playout for the tick at `now`.
    pub fn poll(&mut self, now: Instant, out: &mut [i16]) -> FrameInfo {
        let mut info = FrameInfo::default();
        let n = out.len() as i64;
        self.rotate_windows(now);
        let Some(base) = self.base else {
            out.fill(0);
            info.silence_samples = out.len();
            return info;
        };
        let desired = self.now_samples(now) - base - self.target;
        let play = match self.play_ts {
            Some(p) => p,
            None => match self.earliest(false) {
                Some(first) => desired.min(first),
                None => {
                    out.fill(0);
                    info.silence_samples = out.len();
                    return info;
                }
            },
        };
        let max = Self::duration_samples(self.config.clock_rate, self.config.max_delay);
        let behind = desired - play;
        let mut play = play;
        if behind >= n {
            let skip = if self.silent_here(play, n) {
                match self.earliest(true) {
                    Some(first) => behind.min(first - play).max(0),
                    None => behind,
                }
            } else if self.target + behind > max + n || self.quiet_here(play, n) {
                n
            } else {
                0
            };
            play += skip;
            self.counters.skipped_samples += u64::try_from(skip).unwrap_or(0);
        } else if behind < -n / 4 {
            self.play_ts = Some(play);
            self.counters.stalls += 1;
            info.stalled = true;
            self.fill_gap(out, &mut info, None);
            return info;
        }
        self.fill(play, out, &mut info, None);
        self.play_ts = Some(play + n);
        info
    }

    /// Timeline playout: produce the `out.len()` samples from RTP timestamp `timestamp`
    /// on. `ssrc` is the stream's, to key its comfort noise to. Every packet whose
    /// samples end before the end of this frame is late from now on.
    pub fn poll_at(&mut self, timestamp: u32, ssrc: u32, out: &mut [i16]) -> FrameInfo {
        let mut info = FrameInfo::default();
        // Unwrapping the frame's timestamp also anchors the unwrapping of the packets
        // still to come when none came yet.
        let play = self.unwrap_ts(timestamp);
        self.fill(play, out, &mut info, Some(ssrc));
        self.play_ts = Some(play + out.len() as i64);
        info
    }

    /// Fill a gap in the received audio: concealment, comfort noise or silence. `keyed`
    /// is (stream SSRC, unwrapped timestamp of `out[0]`) in timeline playout.
    fn fill_gap(&mut self, out: &mut [i16], info: &mut FrameInfo, keyed: Option<(u32, i64)>) {
        let k = out.len();
        match self.mode {
            Mode::Speech if !self.concealer.faded() => {
                self.concealer.conceal(out);
                info.concealed_samples += k;
                self.counters.concealed_samples += k as u64;
            }
            Mode::Noise => {
                match keyed {
                    // The unwrapped timestamp modulo 2^32 is the wire timestamp.
                    Some((ssrc, t)) => self.noise.generate_keyed(out, ssrc, t as u32),
                    None => self.noise.generate(out),
                }
                info.comfort_noise_samples += k;
                self.counters.comfort_noise_samples += k as u64;
            }
            Mode::Speech | Mode::Idle => {
                out.fill(0);
                info.silence_samples += k;
            }
        }
    }

    /// Play the samples from unwrapped timestamp `play` into `out`; `ssrc` keys comfort
    /// noise to the timestamps (timeline playout).
    fn fill(&mut self, play: i64, out: &mut [i16], info: &mut FrameInfo, ssrc: Option<u32>) {
        let n = out.len();
        let mut pos = 0usize;
        while pos < n {
            let t = play + pos as i64;
            self.retire_before(t);
            match self.covering(t) {
                Some((idx, codec)) => {
                    let slot = self.slots.get(idx).copied().unwrap_or(EMPTY_SLOT);
                    let bps = bytes_per_sample(codec);
                    let from = usize::try_from(t - slot.ts).unwrap_or(0);
                    let remaining = usize::try_from(slot.ts + slot.samples - t).unwrap_or(0);
                    let k = remaining.min(n - pos);
                    let off = idx * self.config.max_payload;
                    let bytes = self
                        .data
                        .get(off + from * bps..off + (from + k) * bps)
                        .unwrap_or(&[]);
                    let dst = &mut out[pos..pos + k];
                    self.kernel.decode(codec, bytes, dst);
                    self.concealer.push_good(dst);
                    self.mode = Mode::Speech;
                    if k == remaining {
                        self.release(idx);
                    }
                    info.first_seq.get_or_insert(slot.ext_seq);
                    info.last_seq = Some(slot.ext_seq);
                    info.audio_level = slot.audio_level;
                    info.audio_samples += k;
                    self.counters.played_samples += k as u64;
                    pos += k;
                }
                None => {
                    let next = self
                        .used_slots()
                        .filter(|(_, s)| s.ts > t)
                        .map(|(_, s)| s.ts)
                        .min();
                    let k = next.map_or(n - pos, |nt| {
                        usize::try_from(nt - t).unwrap_or(0).clamp(1, n - pos)
                    });
                    self.fill_gap(&mut out[pos..pos + k], info, ssrc.map(|s| (s, t)));
                    pos += k;
                }
            }
        }
    }

    /// Discard audio that ends before `t` and apply comfort-noise frames due by `t`.
    fn retire_before(&mut self, t: i64) {
        let mut sid: Option<(i64, usize)> = None;
        for w in 0..self.occupied.len() {
            let mut bits = self.occupied.get(w).copied().unwrap_or(0);
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(s) = self.slots.get(i).copied() else {
                    continue;
                };
                if !s.used || s.ts > t {
                    continue;
                }
                match s.kind {
                    MediaKind::Audio(_) if s.ts + s.samples <= t => {
                        self.counters.skipped_packets += 1;
                        self.release(i);
                    }
                    MediaKind::Audio(_) => {}
                    MediaKind::ComfortNoise => {
                        if !matches!(sid, Some((ts, _)) if s.ts < ts) {
                            if let Some((_, old)) = sid {
                                self.release(old);
                            }
                            sid = Some((s.ts, i));
                        } else {
                            self.release(i);
                        }
                    }
                }
            }
        }
        if let Some((_, idx)) = sid {
            if let Ok(parsed) = Sid::parse(self.payload(idx)) {
                self.noise.update(&parsed);
                self.mode = Mode::Noise;
                self.concealer.reset();
            }
            self.release(idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(ext_seq: u64, timestamp: u32, payload: &[u8]) -> MediaPacket<'_> {
        MediaPacket {
            ext_seq,
            timestamp,
            kind: MediaKind::Audio(CodecKind::Pcmu),
            payload,
            audio_level: None,
        }
    }

    #[test]
    fn timeline_playout_plays_the_named_samples_whenever_packets_came() {
        let mut jb = JitterBuffer::new(JitterConfig::default(), 1).unwrap();
        jb.set_playout(Playout::Timeline);
        let t0 = u32::MAX - 100; // the timestamps wrap
        let frames: Vec<Vec<u8>> = (0..6u8).map(|k| vec![0x10 + k; 160]).collect();
        let pcm = |k: usize| g711::ulaw_decode(frames[k][0]);
        let ts = |k: u32| t0.wrapping_add(160 * k);
        let mut out = [0i16; 160];
        // Arrival times mean nothing; order neither.
        let late = Instant::from_nanos(9_000_000_000);
        assert_eq!(
            jb.insert(late, audio(11, ts(1), &frames[1])),
            Insert::Stored
        );
        assert_eq!(
            jb.insert(Instant::ZERO, audio(10, ts(0), &frames[0])),
            Insert::Stored
        );
        let info = jb.poll_at(ts(0).wrapping_sub(160), 7, &mut out);
        assert_eq!((info.audio_samples, info.silence_samples), (0, 160));
        for k in 0..2 {
            let info = jb.poll_at(ts(k as u32), 7, &mut out);
            assert_eq!(info.audio_samples, 160);
            assert!(out.iter().all(|&v| v == pcm(k)), "frame {k}");
        }
        // A packet for a frame already played is late; a gap is concealed.
        assert_eq!(
            jb.insert(late, audio(12, ts(1), &frames[2])),
            Insert::TooLate
        );
        assert_eq!(jb.poll_at(ts(2), 7, &mut out).concealed_samples, 160);
        assert_eq!(
            jb.insert(late, audio(14, ts(4), &frames[4])),
            Insert::Stored
        );
        assert_eq!(jb.poll_at(ts(3), 7, &mut out).concealed_samples, 160);
        assert_eq!(jb.poll_at(ts(4), 7, &mut out).audio_samples, 160);
        // Restarting the timeline drops what is stored, not the concealment.
        assert_eq!(
            jb.insert(late, audio(15, ts(5), &frames[5])),
            Insert::Stored
        );
        jb.restart_timeline();
        let info = jb.poll_at(ts(5), 7, &mut out);
        assert_eq!((info.audio_samples, info.concealed_samples), (0, 160));
        assert_eq!(jb.counters().late, 1);
    }
}
