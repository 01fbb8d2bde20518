//! Packet loss concealment: repeat the last pitch period of good audio with a linear
//! fade to silence over a few frames.

/// History kept for pitch search, samples (60 ms at 8 kHz).
const HISTORY: usize = 480;
/// Shortest pitch period searched (2.5 ms: 400 Hz).
const MIN_LAG: usize = 20;
/// Longest pitch period searched (15 ms: 67 Hz).
const MAX_LAG: usize = 120;
/// Correlation window for the pitch search.
const WINDOW: usize = 160;

/// Concealment state for one stream.
#[derive(Clone, Debug)]
pub struct Concealer {
    /// The newest [`HISTORY`] samples, a ring whose oldest sample is at `head` (made
    /// linear, oldest first, when a loss burst begins).
    history: [i16; HISTORY],
    head: usize,
    /// How many of the newest history samples are real audio.
    filled: usize,
    /// Samples concealed so far in the current loss burst, if in one.
    position: Option<usize>,
    lag: usize,
    fade_samples: usize,
}

impl Concealer {
    /// A concealer that fades to silence over `fade_samples` samples.
    pub fn new(fade_samples: usize) -> Self {
        Concealer {
            history: [0; HISTORY],
            head: 0,
            filled: 0,
            position: None,
            lag: MAX_LAG,
            fade_samples: fade_samples.max(1),
        }
    }

    /// Record good audio that was played out; ends any loss burst.
    pub fn push_good(&mut self, pcm: &[i16]) {
        self.position = None;
        let n = pcm.len().min(HISTORY);
        let tail = pcm.get(pcm.len() - n..).unwrap_or(&[]);
        self.head = super::ring_write(&mut self.history, self.head, tail);
        self.filled = (self.filled + n).min(HISTORY);
    }

    /// Forget everything (new stream, or after silence).
    pub fn reset(&mut self) {
        self.filled = 0;
        self.position = None;
    }

    /// Whether concealment has faded out completely (or has nothing to repeat).
    pub fn faded(&self) -> bool {
        self.filled == 0 || self.position.is_some_and(|p| p >= self.fade_samples)
    }

    /// Produce concealment audio for missing samples.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.filled == 0 {
            out.fill(0);
            return;
        }
        let pos = match self.position {
            Some(p) => p,
            None => {
                self.history.rotate_left(self.head);
                self.head = 0;
                self.lag = self.find_lag();
                0
            }
        };
        let lag = self.lag;
        for (i, s) in out.iter_mut().enumerate() {
            let p = pos + i;
            if p >= self.fade_samples {
                *s = 0;
                continue;
            }
            let gain = 1.0 - p as f32 / self.fade_samples as f32;
            let src = self
                .history
                .get(HISTORY - lag + p % lag)
                .copied()
                .unwrap_or(0);
            *s = (f32::from(src) * gain) as i16;
        }
        self.position = Some(pos + out.len());
    }

    /// The pitch period maximising normalised correlation of the newest window with
    /// the window one period earlier; a full window-length repeat when there is not
    /// enough history or the audio is not periodic.
    fn find_lag(&self) -> usize {
        if self.filled < WINDOW + MAX_LAG {
            return self.filled.clamp(1, MAX_LAG);
        }
        let recent = &self.history[HISTORY - WINDOW..];
        let mut best = (0.0f64, MAX_LAG);
        for lag in MIN_LAG..=MAX_LAG {
            let past = &self.history[HISTORY - WINDOW - lag..HISTORY - lag];
            let (mut xy, mut yy) = (0.0f64, 0.0f64);
            for (&x, &y) in recent.iter().zip(past) {
                xy += f64::from(x) * f64::from(y);
                yy += f64::from(y) * f64::from(y);
            }
            if yy > 0.0 {
                let score = xy / yy.sqrt();
                if score > best.0 {
                    best = (score, lag);
                }
            }
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_pitch_period_and_fades_out() {
        let mut c = Concealer::new(320);
        // A 100 Hz sawtooth-ish periodic signal: period 80 samples.
        let good: Vec<i16> = (0..480).map(|i| ((i % 80) as i16 - 40) * 200).collect();
        c.push_good(&good);
        let mut out = [0i16; 160];
        c.conceal(&mut out);
        // First period continues the waveform (with slight attenuation).
        for (i, &v) in out.iter().enumerate().take(80) {
            let want = f32::from(((i % 80) as i16 - 40) * 200);
            let gain = 1.0 - i as f32 / 320.0;
            assert!(
                (f32::from(v) - want * gain).abs() <= 1.0,
                "sample {i}: {v} vs {}",
                want * gain
            );
        }
        assert!(!c.faded());
        c.conceal(&mut out);
        assert!(c.faded());
        c.conceal(&mut out);
        assert!(out.iter().all(|&v| v == 0));
        // Energy decreases frame by frame.
        c.push_good(&good);
        let mut e = Vec::new();
        for _ in 0..3 {
            let mut f = [0i16; 100];
            c.conceal(&mut f);
            e.push(f.iter().map(|&v| i64::from(v).abs()).sum::<i64>());
        }
        assert!(e[0] > e[1] && e[1] > e[2], "{e:?}");
    }

    #[test]
    fn conceals_silence_without_history() {
        let mut c = Concealer::new(100);
        let mut out = [7i16; 50];
        c.conceal(&mut out);
        assert!(out.iter().all(|&v| v == 0));
        assert!(c.faded());
    }
}
