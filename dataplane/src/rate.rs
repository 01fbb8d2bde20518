//! [`SampleRate`]: the rate a conference mixes at and a codec samples at. Frame sizes,
//! buffer sizes and durations of samples derive from it; nothing else in the dataplane
//! assumes a rate.

use core::time::Duration;

/// Samples per second of a conference's mix or of a codec's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SampleRate {
    /// Narrowband, 8 kHz (G.711; every conference today).
    #[default]
    Hz8000,
    /// Wideband, 16 kHz (G.722, Opus).
    Hz16000,
    /// Fullband, 48 kHz (Opus).
    Hz48000,
}

impl SampleRate {
    /// Every rate, lowest first.
    pub const ALL: [SampleRate; 3] = [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz48000];
    /// The highest rate (sizes buffers that must hold a frame at any rate).
    pub const MAX: SampleRate = SampleRate::Hz48000;

    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// The rate of `hz` samples per second, if it is one of ours.
    pub const fn from_hz(hz: u32) -> Option<SampleRate> {
        match hz {
            8000 => Some(SampleRate::Hz8000),
            16_000 => Some(SampleRate::Hz16000),
            48_000 => Some(SampleRate::Hz48000),
            _ => None,
        }
    }

    /// Samples in `ms` milliseconds.
    pub const fn samples_in_ms(self, ms: u32) -> usize {
        (ms as usize) * (self.hz() as usize) / 1000
    }

    /// How long `samples` samples play (saturating).
    pub const fn duration_of(self, samples: u64) -> Duration {
        Duration::from_nanos(samples.saturating_mul(1_000_000_000) / self.hz() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_sizes_and_durations() {
        for r in SampleRate::ALL {
            assert_eq!(SampleRate::from_hz(r.hz()), Some(r));
            assert_eq!(r.samples_in_ms(1000), r.hz() as usize);
            assert_eq!(r.duration_of(u64::from(r.hz())), Duration::from_secs(1));
            assert!(r <= SampleRate::MAX);
        }
        assert_eq!(SampleRate::from_hz(44_100), None);
        assert_eq!(SampleRate::Hz8000.samples_in_ms(20), 160);
        assert_eq!(SampleRate::Hz16000.samples_in_ms(20), 320);
        assert_eq!(SampleRate::Hz48000.samples_in_ms(40), 1920);
        assert_eq!(
            SampleRate::Hz8000.duration_of(80),
            Duration::from_millis(10)
        );
        assert_eq!(SampleRate::default(), SampleRate::Hz8000);
    }
}
