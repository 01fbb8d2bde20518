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

const SAMPLE_RATE: f32 = 8000.0;

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

/// In-band DTMF detector for one stream.
#[derive(Clone, Debug)]
pub struct InbandDetector {
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
    /// Ring of the newest samples; `pos` is the oldest (next to overwrite).
    buf: [i16; WINDOW],
    pos: usize,
    buffered: usize,
    since_analysis: usize,
    prev: Option<[Tone; 8]>,
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
        InbandDetector {
            hann,
            coef,
            cos,
            sin,
            hop_rot,
            share_scale: 2.0 * sum_sq / (sum * sum),
            amp_scale: 2.0 / sum,
            buf: [0; WINDOW],
            pos: 0,
            buffered: 0,
            since_analysis: 0,
            prev: None,
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
        for &s in pcm {
            self.buf[self.pos] = s;
            self.pos = (self.pos + 1) % WINDOW;
            self.buffered = (self.buffered + 1).min(WINDOW);
            self.clock += 1;
            self.since_analysis += 1;
            if self.buffered == WINDOW && self.since_analysis >= HOP {
                self.since_analysis = 0;
                let hit = self.analyse();
                self.step(now, hit, emit);
            }
        }
    }

    /// The stream had a gap (loss, comfort noise, silence): end any key in progress and
    /// start afresh.
    pub fn interrupt(&mut self, emit: &mut impl FnMut(Event)) {
        if let Some(a) = self.active.take() {
            self.report(a, emit);
        }
        self.buffered = 0;
        self.since_analysis = 0;
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

    fn analyse(&mut self) -> Option<Digit> {
        let mut xw = [0f32; WINDOW];
        let mut energy = 0f32;
        let (newer, older) = self.buf.split_at(self.pos);
        for ((o, &s), &w) in xw.iter_mut().zip(older.iter().chain(newer)).zip(&self.hann) {
            *o = f32::from(s) * w;
            energy += *o * *o;
        }
        let mut tones = [Tone::default(); 8];
        for (k, t) in tones.iter_mut().enumerate() {
            let (mut s1, mut s2) = (0f32, 0f32);
            for &x in &xw {
                let s0 = x + self.coef[k] * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            *t = Tone {
                re: s1 - self.cos[k] * s2,
                im: self.sin[k] * s2,
            };
        }
        let prev = self.prev.replace(tones)?;
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
            let (cr, ci) = self.hop_rot[k];
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
        let amp = |p: f32| p.sqrt() * self.amp_scale;
        if amp(pr) < MIN_AMPLITUDE || amp(pc) < MIN_AMPLITUDE {
            return None;
        }
        if (pr + pc) * self.share_scale / energy < MIN_PURITY {
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

    #[test]
    fn weak_tones_ignored() {
        assert!(detect(&with_silence(tone(Digit::D3, 100, 0.0, (200.0, 200.0)))).is_empty());
    }
}
