//! Voice activity: frame energy against an adaptive noise floor, with onset check and
//! hangover. Uses the sender's RFC 6464 audio level instead of measuring when present.

use core::time::Duration;

use crate::clock::Instant;

use super::event::Event;

/// Voice activity settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadConfig {
    /// A frame is speech when louder than the noise floor by this much, dB.
    pub margin_db: f32,
    /// ...and louder than this absolute level, dBov.
    pub min_level_dbov: f32,
    /// Consecutive speech frames before talk starts.
    pub onset_frames: u32,
    /// Talk stops after this long without a speech frame.
    pub hangover: Duration,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            margin_db: 9.0,
            min_level_dbov: -50.0,
            onset_frames: 2,
            hangover: Duration::from_millis(400),
        }
    }
}

/// What one tick of playout offers the detector.
#[derive(Clone, Copy, Debug)]
pub enum VadInput<'a> {
    /// Decoded received audio, with the sender's RFC 6464 (voice flag, level -dBov).
    Audio {
        /// The samples.
        pcm: &'a [i16],
        /// RFC 6464 level of the packet, if present.
        level: Option<(bool, u8)>,
    },
    /// Comfort noise at this level (-dBov): never speech, but tells the noise floor.
    ComfortNoise(u8),
    /// Concealment or silence: no new evidence.
    Nothing,
}

/// Energy of `pcm` in dBov (0 dBov = full-scale square wave); -127 for silence.
pub fn level_dbov(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return -127.0;
    }
    // Integer squares summed exactly (160 samples of 2^30 fit easily), as the f64 sum
    // of the same squares was: the same level, at a fraction of the cost.
    let sum = pcm
        .iter()
        .map(|&v| u64::from((i32::from(v) * i32::from(v)) as u32))
        .sum::<u64>() as f64;
    let ms = sum / pcm.len() as f64 / (32767.0 * 32767.0);
    if ms <= 0.0 {
        -127.0
    } else {
        ((10.0 * ms.log10()) as f32).max(-127.0)
    }
}

/// Voice activity detector for one stream.
#[derive(Clone, Debug)]
pub struct Vad {
    config: VadConfig,
    floor_db: f32,
    onset: u32,
    onset_at: Option<Instant>,
    last_speech: Option<Instant>,
    active_since: Option<Instant>,
}

impl Vad {
    /// A detector, initially inactive.
    pub fn new(config: VadConfig) -> Self {
        Vad {
            floor_db: config.min_level_dbov,
            config,
            onset: 0,
            onset_at: None,
            last_speech: None,
            active_since: None,
        }
    }

    /// When the current talk spurt began, if talking: `now - active_since` is how long
    /// the stream has been continuously active.
    pub fn active_since(&self) -> Option<Instant> {
        self.active_since
    }

    /// The current noise-floor estimate, dBov.
    pub fn noise_floor_dbov(&self) -> f32 {
        self.floor_db
    }

    /// Feed one tick of playout at `now`.
    pub fn on_frame(&mut self, now: Instant, input: VadInput<'_>, emit: &mut impl FnMut(Event)) {
        let speech = match input {
            VadInput::Audio { pcm, level } => {
                let (voice_flag, db) = match level {
                    Some((v, l)) => (v, -f32::from(l.min(127))),
                    None => (true, level_dbov(pcm)),
                };
                let loud =
                    db > (self.floor_db + self.config.margin_db).max(self.config.min_level_dbov);
                self.track_floor(db, loud);
                loud && voice_flag
            }
            VadInput::ComfortNoise(level) => {
                self.track_floor(-f32::from(level.min(127)), false);
                false
            }
            VadInput::Nothing => false,
        };
        if speech {
            self.last_speech = Some(now);
            if self.active_since.is_none() {
                self.onset += 1;
                let at = *self.onset_at.get_or_insert(now);
                if self.onset >= self.config.onset_frames.max(1) {
                    self.active_since = Some(at);
                    emit(Event::TalkStart { at });
                }
            }
        } else {
            self.onset = 0;
            self.onset_at = None;
        }
        self.check_hangover(now, emit);
    }

    fn check_hangover(&mut self, now: Instant, emit: &mut impl FnMut(Event)) {
        if let (Some(started), Some(last)) = (self.active_since, self.last_speech) {
            if now.saturating_since(last) >= self.config.hangover {
                self.active_since = None;
                emit(Event::TalkStop { at: now, started });
            }
        }
    }

    /// End talk if the hangover ran out while no frames were being played.
    pub fn handle_timeout(&mut self, now: Instant, emit: &mut impl FnMut(Event)) {
        self.check_hangover(now, emit);
    }

    /// When the hangover would end talk if no speech comes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active_since?;
        self.last_speech.map(|l| l + self.config.hangover)
    }

    fn track_floor(&mut self, db: f32, speech: bool) {
        let rate = if db < self.floor_db {
            0.3 // fall quickly to a quieter floor
        } else if speech {
            0.002 // creep up under long speech in rising noise
        } else {
            0.05
        };
        self.floor_db = (self.floor_db + (db - self.floor_db) * rate).max(-127.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(vad: &mut Vad, frames: &[(f32, bool)]) -> Vec<Event> {
        // (amplitude, use_level_extension)
        let mut events = Vec::new();
        let mut t = Instant::ZERO;
        for &(amp, _) in frames {
            let pcm: Vec<i16> = (0..160)
                .map(|i| (amp * ((i as f32) * 0.3).sin()) as i16)
                .collect();
            vad.on_frame(
                t,
                VadInput::Audio {
                    pcm: &pcm,
                    level: None,
                },
                &mut |e| events.push(e),
            );
            t += Duration::from_millis(20);
        }
        events
    }

    #[test]
    fn talk_start_and_stop_with_hangover() {
        let mut vad = Vad::new(VadConfig::default());
        let mut frames = vec![(30.0, false); 50];
        frames.extend(vec![(8000.0, false); 50]);
        frames.extend(vec![(30.0, false); 50]);
        let ev = run(&mut vad, &frames);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let Event::TalkStart { at } = ev[0] else {
            panic!()
        };
        assert_eq!(at, Instant::ZERO + Duration::from_millis(1000));
        let Event::TalkStop { at, started } = ev[1] else {
            panic!()
        };
        assert_eq!(started, Instant::ZERO + Duration::from_millis(1000));
        let stop_ms = at.as_nanos() / 1_000_000;
        assert!((1980 + 400..=1980 + 420).contains(&stop_ms), "{stop_ms}");
    }

    #[test]
    fn steady_noise_is_not_speech() {
        let mut vad = Vad::new(VadConfig::default());
        // Loud steady noise raises the floor; after adapting it stops counting as speech.
        let ev = run(&mut vad, &vec![(3000.0, false); 2000]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(vad.active_since().is_none());
        assert!(vad.noise_floor_dbov() > -25.0);
    }

    #[test]
    fn single_click_does_not_start_talk() {
        let mut vad = Vad::new(VadConfig::default());
        let mut frames = vec![(30.0, false); 10];
        frames.push((10000.0, false));
        frames.extend(vec![(30.0, false); 10]);
        assert!(run(&mut vad, &frames).is_empty());
    }

    #[test]
    fn uses_rfc6464_level_and_voice_flag() {
        let mut vad = Vad::new(VadConfig::default());
        let mut ev = Vec::new();
        let silent = [0i16; 160];
        let mut t = Instant::ZERO;
        for i in 0..40 {
            // Samples are silent: only the header extension says there is voice.
            let level = if i < 20 {
                Some((true, 20))
            } else {
                Some((false, 20))
            };
            vad.on_frame(
                t,
                VadInput::Audio {
                    pcm: &silent,
                    level,
                },
                &mut |e| ev.push(e),
            );
            t += Duration::from_millis(20);
        }
        assert!(
            matches!(ev[..], [Event::TalkStart { .. }, Event::TalkStop { .. }]),
            "{ev:?}"
        );
        // Comfort noise never starts talk.
        let mut vad = Vad::new(VadConfig::default());
        for _ in 0..10 {
            vad.on_frame(t, VadInput::ComfortNoise(20), &mut |e| ev.push(e));
        }
        assert!(vad.active_since().is_none());
    }
}
