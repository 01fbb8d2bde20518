//! The one clock type. Time is a count of nanoseconds on a monotonic timeline whose origin
//! is chosen by whoever owns the clock: the dataplane derives it from the TSC, the control
//! plane from CLOCK_MONOTONIC, tests advance a virtual clock by hand.

use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point on a monotonic timeline, in nanoseconds since the clock's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the timeline.
    pub const ZERO: Instant = Instant(0);

    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// A source of [`Instant`]s. The poll loop is generic over it so tests can drive it.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// A clock that only moves when told to: for virtual-time tests.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: core::cell::Cell<u64>,
}

impl VirtualClock {
    pub fn new(start: Instant) -> Self {
        VirtualClock {
            now: core::cell::Cell::new(start.as_nanos()),
        }
    }

    pub fn advance(&self, d: Duration) {
        self.now.set((Instant(self.now.get()) + d).0);
    }

    pub fn set(&self, t: Instant) {
        self.now.set(t.0);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant(self.now.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Instant::from_nanos(5);
        assert_eq!((t - Duration::from_nanos(10)).as_nanos(), 0);
        assert_eq!(Instant::from_nanos(3) - t, Duration::ZERO);
        assert_eq!(
            (Instant::from_nanos(u64::MAX - 1) + Duration::from_secs(1)).as_nanos(),
            u64::MAX
        );
    }

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let c = VirtualClock::new(Instant::from_nanos(1_000));
        assert_eq!(c.now().as_nanos(), 1_000);
        c.advance(Duration::from_micros(20));
        assert_eq!(c.now().as_nanos(), 21_000);
        c.set(Instant::ZERO);
        assert_eq!(c.now(), Instant::ZERO);
    }
}
