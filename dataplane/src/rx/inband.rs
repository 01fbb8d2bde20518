//! In-band DTMF detection on decoded 8 kHz audio.
//!
//! Every [`HOP`] samples a bank of Goertzel filters (the eight DTMF frequencies) runs
//! over the newest [`WINDOW`] samples, Hann-windowed. An analysis is a *hit* for a key
//! when:
//! - both tones are at least [`MIN_AMPLITUDE`];
//! - the strongest row tone and the strongest column tone together carry at least
//!   [`MIN_PURITY`] of the window's energy (speech and music spread theirs);
//! - twist is within limits: the high tone at most 8 dB below the low one (normal
//!   twist), at most 4 dB above it (reverse twist);
//! - each tone's frequency, measured from the phase advance of its Goertzel output
//!   between this window and the previous one ([`HOP`] samples earlier), is within
//!   [`MAX_DEVIATION`] of nominal: ITU-T Q.24 asks to accept ±1.5% and reject ±3.5%;
//! - each tone's power changed by less than a factor of 2 since the previous window.
//!
//! A key is recognised after [`ON_HITS`] consecutive hits (so a tone needs about 40 ms;
//! tones of 30 ms or less never qualify) and ends after [`OFF_MISSES`] consecutive
//! analyses that are not hits for it (the minimum pause, ≈ 10 ms plus the window).
//! It is reported once, at its end, with its measured duration.
//!
//! # The gate
//! Most audio is not DTMF, and the filter bank costs far more than the audio it looks
//! at. So each window first passes a cheap gate on two sums kept per hop as the samples
//! arrive (integers, on the samples reduced to 13 bits): the energy `E = Σ x²` and the
//! lag-one product `C = Σ x[n] x[n-1]`. A hit needs both tones at [`MIN_AMPLITUDE`] or more, which bounds `E` from
//! below ([`InbandDetector`] derives the bound from the window: Cauchy-Schwarz on the
//! Goertzel sum and the largest gain correction); and a hit needs at least
//! [`MIN_PURITY`] of the energy in two tones between 697 and 1633 Hz (±[`MAX_DEVIATION`]),
//! which puts `C / E`, the energy-weighted mean of `cos ω`, between [`GATE_RHO`]'s
//! bounds (they leave room for the rest of the energy, twist and the cross terms of a
//! short window). Windows outside the gate are misses without running the filters; the
//! window before one that passes is analysed on demand (a window plus a hop of history
//! is kept), so the phase and power checks see exactly what they did without the gate.
//! A test runs both on random tone bursts in noise and out-of-band sound: the same
//! digits, and one hit window in over 10,000 refused (its newest hop, which the window
//! all but ignores, held sound ten times louder than the tones).

use core::f32::consts::PI;
use core::time::Duration;

use crate::clock::Instant;

use super::event::{Digit, DigitEvent, DigitSource, Event};

/// Analysis window, samples (20 ms at 8 kHz).
pub const WINDOW: usize = 160;
/// Samples between analyses (5 ms); also the lag of the phase measurement.
pub const HOP: usize = 40;
/// Consecutive hits needed to recognise a key.
pub const ON_HITS: u32 = 3;
/// Consecutive misses that end a key.
pub const OFF_MISSES: u32 = 2;
/// Smallest amplitude of each tone (about -38 dBov).
pub const MIN_AMPLITUDE: f32 = 400.0;
/// Share of the window's energy the two tones must carry.
pub const MIN_PURITY: f32 = 0.93;
/// Largest accepted relative frequency deviation.
pub const MAX_DEVIATION: f32 = 0.025;
/// Normal twist limit (high tone below low tone), dB.
pub const NORMAL_TWIST_DB: f32 = 8.0;
/// Reverse twist limit (low tone below high tone), dB.
pub const REVERSE_TWIST_DB: f32 = 4.0;

/// Nominal DTMF frequencies: four rows then four columns, Hz.
pub const FREQUENCIES: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];

/// The detector's rate (it analyses narrowband audio).
const SAMPLE_RATE: f32 = crate::rate::SampleRate::Hz8000.hz() as f32;
/// Samples kept: a window plus a hop, so the window before the current one can be
/// analysed when the gate passed the current one but not that one.
const HISTORY: usize = WINDOW + HOP;
/// Hops per window.
const BLOCKS: usize = WINDOW / HOP;
/// Bounds of `C / E` (lag-one autocorrelation over energy) a window needs to pass the
/// gate. Two tones at 697·0.965 Hz and 1209·0.965 Hz at the largest normal twist give
/// 0.83 (cos ω weighted by power), at 941·1.035 Hz and 1633·1.035 Hz at the largest reverse
/// twist 0.38; 7% of the energy elsewhere moves that by at most ±0.07 (cos ω is within
/// ±1), and the rest is margin for the window's edges and the cross term of the two
/// tones. The window weights the outer hops of the sums at an eighth (about what the
/// Hann window's square gives them).
pub const GATE_RHO: (f32, f32) = (0.18, 0.90);

#[derive(Clone, Copy, Debug, Default)]
struct Tone {
    re: f32,
    im: f32,
}

impl Tone {
    fn power(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
}

#[derive(Clone, Copy, Debug)]
struct Active {
    digit: Digit,
    started: Instant,
    first_hit: u64,
    last_hit: u64,
    misses: u32,
}

/// The window, the filters' coefficients and the gate's bound (the same for every
/// stream: computed once).
#[derive(Debug)]
struct Filters {
    hann: [f32; WINDOW],
    coef: [f32; 8],
    cos: [f32; 8],
    sin: [f32; 8],
    /// `e^{-j w D}` per frequency, to remove the nominal phase advance over a hop.
    hop_rot: [(f32, f32); 8],
    /// `2 sum(w^2) / (sum w)^2`: turns |Y|^2 / energy into a share of the energy.
    share_scale: f32,
    /// `2 / sum(w)`: turns |Y| into an amplitude.
    amp_scale: f32,
    /// Smallest window energy `Σ (x >> 3)²` in which both tones can reach [`MIN_AMPLITUDE`].
    min_energy: u64,
}

static FILTERS: std::sync::OnceLock<Filters> = std::sync::OnceLock::new();

impl Filters {
    fn new() -> Filters {
        let mut hann = [0f32; WINDOW];
        for (i, w) in hann.iter_mut().enumerate() {
            *w = 0.5 - 0.5 * (2.0 * PI * (i as f32 + 0.5) / WINDOW as f32).cos();
        }
        let sum: f32 = hann.iter().sum();
        let sum_sq: f32 = hann.iter().map(|w| w * w).sum();
        let mut coef = [0f32; 8];
        let mut cos = [0f32; 8];
        let mut sin = [0f32; 8];
        let mut hop_rot = [(0f32, 0f32); 8];
        for (k, f) in FREQUENCIES.iter().enumerate() {
            let w = 2.0 * PI * f / SAMPLE_RATE;
            cos[k] = w.cos();
            sin[k] = w.sin();
            coef[k] = 2.0 * w.cos();
            let a = w * HOP as f32;
            hop_rot[k] = (a.cos(), -a.sin());
        }
        let amp_scale = 2.0 / sum;
        // |Y|² <= Σw² · Σx² (Cauchy-Schwarz) and the power is |Y|² over a gain of at least
        // √0.1, so amplitude A needs Σx² >= (A / amp_scale)² · 0.1 / Σw².
        // The gate's sums are of samples reduced to 13 bits: about a 64th of the energy
        // (half that, for the rounding of small samples).
        let min_energy = (MIN_AMPLITUDE / amp_scale).powi(2) * 0.1 / sum_sq / 128.0;
        Filters {
            hann,
            coef,
            cos,
            sin,
            hop_rot,
            share_scale: 2.0 * sum_sq / (sum * sum),
            amp_scale,
            min_energy: min_energy as u64,
        }
    }
}

/// In-band DTMF detector for one stream.
#[derive(Clone, Debug)]
pub struct InbandDetector {
    /// The constants of the filter bank and the gate, shared by every detector.
    f: &'static Filters,
    /// Whether windows go through the gate (tests compare with the filters alone).
    gated: bool,
    /// Ring of the newest samples; `pos` is the oldest (next to overwrite).
    buf: [i16; HISTORY],
    pos: usize,
    /// Samples since the last interrupt, up to [`HISTORY`].
    buffered: usize,
    /// Samples in the current hop, and its running `Σ x²` and `Σ x[n] x[n-1]` (of the
    /// samples reduced to 13 bits, `x >> 3`).
    in_hop: usize,
    hop_sums: (i64, i64),
    /// The sample before the current one (0 after an interrupt).
    last: i16,
    /// The sums of the last [`BLOCKS`] hops (a ring; `hop_ring_pos` is the oldest).
    hop_ring: [(i64, i64); BLOCKS],
    hop_ring_pos: usize,
    /// The filter outputs of the latest analysed window and the clock at its end.
    prev: Option<(u64, [Tone; 8])>,
    /// Windows that were hits, and hits the gate would have refused (tests).
    #[cfg(test)]
    hits: u64,
    #[cfg(test)]
    gate_misses: u64,
    /// Samples consumed in total; analysis positions are measured in it.
    clock: u64,
    candidate: Option<(Digit, u32, u64, Instant)>,
    active: Option<Active>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    /// A detector for 8 kHz audio.
    pub fn new() -> Self {
        InbandDetector {
            f: FILTERS.get_or_init(Filters::new),
            gated: true,
            buf: [0; HISTORY],
            pos: 0,
            buffered: 0,
            in_hop: 0,
            hop_sums: (0, 0),
            last: 0,
            hop_ring: [(0, 0); BLOCKS],
            hop_ring_pos: 0,
            prev: None,
            #[cfg(test)]
            hits: 0,
            #[cfg(test)]
            gate_misses: 0,
            clock: 0,
            candidate: None,
            active: None,
        }
    }

    /// Whether a key is being held right now.
    pub fn key_down(&self) -> Option<Digit> {
        self.active.map(|a| a.digit)
    }

    /// Feed decoded audio that was played out at `now` (the tick's time).
    pub fn push(&mut self, now: Instant, pcm: &[i16], emit: &mut impl FnMut(Event)) {
        let mut rest = pcm;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at((HOP - self.in_hop).min(rest.len()));
            self.absorb(chunk);
            rest = tail;
            if self.in_hop == HOP {
                self.in_hop = 0;
                self.hop_ring[self.hop_ring_pos] = core::mem::take(&mut self.hop_sums);
                self.hop_ring_pos = (self.hop_ring_pos + 1) % BLOCKS;
                if self.buffered >= WINDOW {
                    let hit = if !self.gated || self.passes_gate() {
                        self.analyse()
                    } else {
                        None
                    };
                    #[cfg(test)]
                    {
                        self.hits += u64::from(hit.is_some());
                        self.gate_misses += u64::from(hit.is_some() && !self.passes_gate());
                    }
                    self.step(now, hit, emit);
                }
            }
        }
    }

    /// Store samples of one hop in the ring and add them to the hop's sums.
    fn absorb(&mut self, chunk: &[i16]) {
        let n = chunk.len();
        self.pos = super::ring_write(&mut self.buf, self.pos, chunk);
        self.buffered = (self.buffered + n).min(HISTORY);
        self.clock += n as u64;
        self.in_hop += n;
        let Some(&newest) = chunk.last() else {
            return;
        };
        // On samples reduced to 13 bits, so a hop's sums fit in i32 lanes (40 * 2^24).
        let x = |v: i16| i32::from(v >> 3);
        let energy: i32 = chunk.iter().map(|&v| x(v) * x(v)).sum();
        let lagged: i32 = chunk
            .iter()
            .skip(1)
            .zip(chunk)
            .map(|(&a, &b)| x(a) * x(b))
            .sum();
        let edge = x(self.last) * x(chunk[0]);
        let (energy, lagged, edge) = (i64::from(energy), i64::from(lagged), i64::from(edge));
        self.hop_sums.0 += energy;
        self.hop_sums.1 += lagged + edge;
        self.last = newest;
    }

    /// Whether the newest window can hold DTMF at all (see the module notes).
    fn passes_gate(&self) -> bool {
        // Oldest to newest, the outer hops at a quarter (the window weights them less).
        let (mut e, mut c) = (0i64, 0i64);
        for k in 0..BLOCKS {
            let (he, hc) = self.hop_ring[(self.hop_ring_pos + k) % BLOCKS];
            let shift = if k == 0 || k == BLOCKS - 1 { 3 } else { 0 };
            e += he >> shift;
            c += hc >> shift;
        }
        if e <= 0 || (e as u64) < self.f.min_energy {
            return false;
        }
        let rho = c as f32 / e as f32;
        (GATE_RHO.0..=GATE_RHO.1).contains(&rho)
    }

    /// The stream had a gap (loss, comfort noise, silence): end any key in progress and
    /// start afresh.
    pub fn interrupt(&mut self, emit: &mut impl FnMut(Event)) {
        if let Some(a) = self.active.take() {
            self.report(a, emit);
        }
        self.buffered = 0;
        self.in_hop = 0;
        self.hop_sums = (0, 0);
        self.last = 0;
        self.prev = None;
        self.candidate = None;
    }

    fn step(&mut self, now: Instant, hit: Option<Digit>, emit: &mut impl FnMut(Event)) {
        if let Some(mut a) = self.active {
            if hit == Some(a.digit) {
                a.last_hit = self.clock;
                a.misses = 0;
                self.active = Some(a);
            } else {
                a.misses += 1;
                if a.misses >= OFF_MISSES {
                    self.active = None;
                    self.candidate = None;
                    self.report(a, emit);
                } else {
                    self.active = Some(a);
                }
            }
            return;
        }
        self.candidate = match (hit, self.candidate) {
            (None, _) => None,
            (Some(d), Some((c, n, first, started))) if c == d => Some((d, n + 1, first, started)),
            (Some(d), _) => {
                let window = Duration::from_nanos(WINDOW as u64 * 125_000);
                Some((d, 1, self.clock, now - window))
            }
        };
        if let Some((d, n, first, started)) = self.candidate {
            if n >= ON_HITS {
                self.active = Some(Active {
                    digit: d,
                    started,
                    first_hit: first,
                    last_hit: self.clock,
                    misses: 0,
                });
            }
        }
    }

    fn report(&self, a: Active, emit: &mut impl FnMut(Event)) {
        // The tone spans from the first hit window's start to the last hit's end.
        let samples = a.last_hit - a.first_hit + WINDOW as u64;
        emit(Event::Digit(DigitEvent {
            digit: a.digit,
            source: DigitSource::InBand,
            duration: Duration::from_nanos(samples * 125_000),
            volume: None,
            started: a.started,
        }));
    }

    /// The Goertzel outputs of the eight frequencies and the energy of the Hann-windowed
    /// window that ended `ago` samples ago (`ago + WINDOW <= buffered`).
    fn filter_bank(&self, ago: usize) -> ([Tone; 8], f32) {
        let mut xw = [0f32; WINDOW];
        let mut energy = 0f32;
        let start = (self.pos + HISTORY - WINDOW - ago) % HISTORY;
        let first = WINDOW.min(HISTORY - start);
        let samples = self.buf[start..start + first]
            .iter()
            .chain(&self.buf[..WINDOW - first]);
        for ((o, &s), &w) in xw.iter_mut().zip(samples).zip(&self.f.hann) {
            *o = f32::from(s) * w;
            energy += *o * *o;
        }
        // The eight recursions side by side (independent lanes the compiler vectorises).
        let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
        for &x in &xw {
            for k in 0..8 {
                let s0 = x + self.f.coef[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        let mut tones = [Tone::default(); 8];
        for (k, t) in tones.iter_mut().enumerate() {
            *t = Tone {
                re: s1[k] - self.f.cos[k] * s2[k],
                im: self.f.sin[k] * s2[k],
            };
        }
        (tones, energy)
    }

    fn analyse(&mut self) -> Option<Digit> {
        let (tones, energy) = self.filter_bank(0);
        // The window one hop earlier: remembered if it was analysed, else computed now
        // (it was gated out), unless it began before the last interrupt.
        let prev = match self.prev {
            Some((at, t)) if at + HOP as u64 == self.clock => Some(t),
            _ if self.buffered >= HISTORY => Some(self.filter_bank(HOP).0),
            _ => None,
        };
        self.prev = Some((self.clock, tones));
        let prev = prev?;
        if energy <= 0.0 {
            return None;
        }
        let best = |range: core::ops::Range<usize>| {
            range
                .max_by(|&a, &b| tones[a].power().total_cmp(&tones[b].power()))
                .unwrap_or(0)
        };
        let (r, c) = (best(0..4), best(4..8));
        let mut power = [0f32; 2];
        for (p, k) in power.iter_mut().zip([r, c]) {
            let (now_t, then_t) = (tones[k], prev[k]);
            let ratio = now_t.power() / then_t.power().max(f32::MIN_POSITIVE);
            if !(0.5..=2.0).contains(&ratio) {
                return None;
            }
            // now * conj(then) * e^{-j w D}: its angle is the deviation's phase advance.
            let re = now_t.re * then_t.re + now_t.im * then_t.im;
            let im = now_t.im * then_t.re - now_t.re * then_t.im;
            let (cr, ci) = self.f.hop_rot[k];
            let (dr, di) = (re * cr - im * ci, re * ci + im * cr);
            let deviation_hz = di.atan2(dr) * SAMPLE_RATE / (2.0 * PI * HOP as f32);
            if deviation_hz.abs() > MAX_DEVIATION * FREQUENCIES[k] {
                return None;
            }
            // Undo the window's attenuation at the measured offset (Hann response,
            // offset in bins of SAMPLE_RATE / WINDOW Hz).
            let bins = deviation_hz * WINDOW as f32 / SAMPLE_RATE;
            let gain = if bins.abs() < 1e-3 {
                1.0
            } else {
                (PI * bins).sin() / (PI * bins) / (1.0 - bins * bins)
            };
            *p = now_t.power() / (gain * gain).max(0.1);
        }
        let [pr, pc] = power;
        let amp = |p: f32| p.sqrt() * self.f.amp_scale;
        if amp(pr) < MIN_AMPLITUDE || amp(pc) < MIN_AMPLITUDE {
            return None;
        }
        if (pr + pc) * self.f.share_scale / energy < MIN_PURITY {
            return None;
        }
        let twist_db = 10.0 * (pr / pc).log10();
        if twist_db > NORMAL_TWIST_DB || -twist_db > REVERSE_TWIST_DB {
            return None;
        }
        Digit::from_position(r, c - 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(digit: Digit, ms: usize, dev: f32, amp: (f32, f32)) -> Vec<i16> {
        let (fr, fc) = (
            FREQUENCIES[digit.row()] * (1.0 + dev),
            FREQUENCIES[4 + digit.column()] * (1.0 + dev),
        );
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE;
                (amp.0 * (2.0 * PI * fr * t).sin() + amp.1 * (2.0 * PI * fc * t + 1.0).sin()) as i16
            })
            .collect()
    }

    fn detect(pcm: &[i16]) -> Vec<DigitEvent> {
        let mut d = InbandDetector::new();
        let mut out = Vec::new();
        let mut t = Instant::ZERO;
        for chunk in pcm.chunks(160) {
            d.push(t, chunk, &mut |e| {
                if let Event::Digit(x) = e {
                    out.push(x)
                }
            });
            t += Duration::from_millis(20);
        }
        d.interrupt(&mut |e| {
            if let Event::Digit(x) = e {
                out.push(x)
            }
        });
        out
    }

    fn with_silence(mut v: Vec<i16>) -> Vec<i16> {
        let mut s = vec![0i16; 400];
        s.append(&mut v);
        s.extend_from_slice(&[0; 400]);
        s
    }

    #[test]
    fn every_key_detected_once_with_duration() {
        for d in Digit::ALL {
            let got = detect(&with_silence(tone(d, 100, 0.0, (6000.0, 6000.0))));
            assert_eq!(got.len(), 1, "{d:?}: {got:?}");
            assert_eq!(got[0].digit, d);
            let ms = got[0].duration.as_millis();
            assert!((90..=130).contains(&ms), "{d:?} duration {ms}");
        }
    }

    #[test]
    fn frequency_tolerance_follows_q24() {
        for d in Digit::ALL {
            for dev in [-0.015, 0.015] {
                assert_eq!(
                    detect(&with_silence(tone(d, 80, dev, (5000.0, 5000.0)))).len(),
                    1,
                    "{d:?} {dev}"
                );
            }
            for dev in [-0.035, 0.035] {
                assert!(
                    detect(&with_silence(tone(d, 80, dev, (5000.0, 5000.0)))).is_empty(),
                    "{d:?} {dev}"
                );
            }
        }
    }

    #[test]
    fn twist_limits() {
        let db = |x: f32| 10f32.powf(x / 20.0);
        let d = Digit::D5;
        // Normal twist: high tone weaker.
        assert_eq!(
            detect(&with_silence(tone(d, 80, 0.0, (8000.0, 8000.0 / db(7.0))))).len(),
            1
        );
        assert!(detect(&with_silence(tone(d, 80, 0.0, (8000.0, 8000.0 / db(10.0))))).is_empty());
        // Reverse twist: low tone weaker.
        assert_eq!(
            detect(&with_silence(tone(d, 80, 0.0, (8000.0 / db(3.0), 8000.0)))).len(),
            1
        );
        assert!(detect(&with_silence(tone(d, 80, 0.0, (8000.0 / db(6.0), 8000.0)))).is_empty());
    }

    #[test]
    fn duration_limits_and_pauses() {
        assert_eq!(
            detect(&with_silence(tone(Digit::D9, 40, 0.0, (5000.0, 5000.0)))).len(),
            1
        );
        assert!(detect(&with_silence(tone(Digit::D9, 25, 0.0, (5000.0, 5000.0)))).is_empty());
        // 40 ms on / 40 ms off, repeated: every press counted.
        let mut s = Vec::new();
        for d in [Digit::D1, Digit::D1, Digit::Pound, Digit::D0] {
            s.extend(tone(d, 45, 0.0, (5000.0, 5000.0)));
            s.extend_from_slice(&[0; 320]);
        }
        let got: Vec<_> = detect(&with_silence(s)).iter().map(|e| e.digit).collect();
        assert_eq!(got, [Digit::D1, Digit::D1, Digit::Pound, Digit::D0]);
    }

    /// Tone bursts of random keys, deviations, twists, levels and lengths in noise, with
    /// gaps of noise, speech-band tones and silence between them.
    fn random_signal(seed: u64) -> Vec<i16> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f32 / (1u64 << 53) as f32
        };
        let mut out = Vec::new();
        for _ in 0..40 {
            let d = Digit::ALL[(rnd() * 16.0) as usize % 16];
            let ms = 15 + (rnd() * 120.0) as usize;
            let dev = (rnd() - 0.5) * 0.07;
            let level = 300.0 + rnd() * 9000.0;
            let twist = 10f32.powf((rnd() * 14.0 - 9.0) / 20.0);
            let noise = rnd() * rnd() * 0.4 * level;
            let mut t = tone(d, ms, dev, (level, level * twist));
            for v in t.iter_mut() {
                *v = v.saturating_add(((rnd() - 0.5) * 2.0 * noise) as i16);
            }
            out.extend(t);
            let gap = (rnd() * 60.0) as usize * 8;
            let f = 100.0 + rnd() * 3500.0;
            let a = rnd() * 6000.0 * f32::from(u8::from(rnd() < 0.5));
            out.extend((0..gap).map(|i| {
                let v = a * (2.0 * PI * f * i as f32 / SAMPLE_RATE).sin();
                (v + (rnd() - 0.5) * 2.0 * noise) as i16
            }));
        }
        out
    }

    #[test]
    fn gate_refuses_almost_no_window_the_filters_accept_and_changes_no_digit() {
        let (mut hits, mut misses) = (0, 0);
        let digits = |v: &[Event]| -> Vec<Digit> {
            v.iter()
                .filter_map(|e| match e {
                    Event::Digit(d) => Some(d.digit),
                    _ => None,
                })
                .collect()
        };
        for seed in 1..=200u64 {
            let pcm = random_signal(seed);
            let mut ungated = InbandDetector::new();
            ungated.gated = false;
            let mut gated = InbandDetector::new();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut t = Instant::ZERO;
            for chunk in pcm.chunks(160) {
                ungated.push(t, chunk, &mut |e| a.push(e));
                gated.push(t, chunk, &mut |e| b.push(e));
                t += Duration::from_millis(20);
            }
            assert_eq!(
                gated.hits + ungated.gate_misses,
                ungated.hits,
                "seed {seed}"
            );
            if ungated.gate_misses == 0 {
                assert_eq!(a, b, "seed {seed}");
            }
            assert_eq!(digits(&a), digits(&b), "seed {seed}");
            hits += ungated.hits;
            misses += ungated.gate_misses;
        }
        assert!(hits > 10_000, "the signals hold DTMF: {hits} hit windows");
        // Only a window whose newest hop holds out-of-band sound ten times louder than
        // the tones before it (the window all but ignores that hop) gets past the filters
        // and not the gate: once in these 200 signals.
        assert!(
            misses * 5000 <= hits,
            "{misses} of {hits} hit windows refused"
        );
    }

    #[test]
    fn gate_refuses_speech_band_tones_silence_and_noise() {
        let d = InbandDetector::new();
        for (f, a) in [
            (500.0f32, 8000.0f32),
            (200.0, 3000.0),
            (2500.0, 5000.0),
            (1000.0, 5.0),
        ] {
            let mut d = d.clone();
            let pcm: Vec<i16> = (0..WINDOW)
                .map(|i| (a * (2.0 * PI * f * i as f32 / SAMPLE_RATE).sin()) as i16)
                .collect();
            d.absorb(&pcm[..HOP]);
            for (k, hop) in pcm.chunks(HOP).enumerate() {
                if k > 0 {
                    d.absorb(hop);
                }
                d.hop_ring[k] = core::mem::take(&mut d.hop_sums);
            }
            assert!(!d.passes_gate(), "{f} Hz at {a}");
        }
    }

    #[test]
    fn weak_tones_ignored() {
        assert!(detect(&with_silence(tone(Digit::D3, 100, 0.0, (200.0, 200.0)))).is_empty());
    }
}
