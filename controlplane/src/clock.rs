//! The production clock: the dataplane's monotonic clock for timers and the system's
//! wall clock for timestamps users read; and the seed of the core's RNG.

use std::time::SystemTime;
use tutti_control_core::clock::{Clock, ControlClock, Instant};

/// `C`'s monotonic time and the system's wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock<C>(pub C);

impl<C: Clock + Send + Sync + 'static> ControlClock for SystemClock<C> {
    fn now(&self) -> Instant {
        self.0.now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A seed for the control core's RNG from the operating system's entropy.
pub fn entropy_seed() -> u64 {
    rand::random()
}
