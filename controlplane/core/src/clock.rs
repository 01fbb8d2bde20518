//! The control plane's one clock: monotonic [`Instant`]s (the dataplane's clock type,
//! so lease, orphan and handover timers compare with the dataplane's event times) and,
//! only for timestamps printed for users, the wall-clock time. Production reads
//! CLOCK_MONOTONIC/the TSC and the system time (in the server crate); tests advance a
//! [`ManualClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
pub use tutti_dataplane::clock::{Clock, Instant};

/// The injected clock.
pub trait ControlClock: Send + Sync + 'static {
    /// Now, on the monotonic timeline (the dataplane's).
    fn now(&self) -> Instant;
    /// Now, as a wall-clock time (for timestamps users read).
    fn wall(&self) -> SystemTime;
}

/// A clock that moves only when told to, shareable across threads; its wall clock
/// reads `wall_origin` plus the time advanced.
#[derive(Debug)]
pub struct ManualClock {
    ns: AtomicU64,
    wall_origin: SystemTime,
}

impl Default for ManualClock {
    /// At zero, with its wall clock at 2023-11-14T22:13:20Z.
    fn default() -> Self {
        ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }
}

impl ManualClock {
    /// At zero, with the wall clock at `wall_origin`.
    pub fn new(wall_origin: SystemTime) -> Self {
        ManualClock {
            ns: AtomicU64::new(0),
            wall_origin,
        }
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl ControlClock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.ns.load(Ordering::Relaxed))
    }

    fn wall(&self) -> SystemTime {
        self.wall_origin + Duration::from_nanos(self.ns.load(Ordering::Relaxed))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        ControlClock::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_readings_move_together_and_only_when_told() {
        let c = ManualClock::default();
        let (t0, w0) = (ControlClock::now(&c), c.wall());
        assert_eq!((ControlClock::now(&c), c.wall()), (t0, w0));
        c.advance(Duration::from_millis(1500));
        assert_eq!(ControlClock::now(&c) - t0, Duration::from_millis(1500));
        assert_eq!(
            c.wall().duration_since(w0).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
