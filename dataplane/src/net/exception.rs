//! The exception path: frames the dataplane does not consume go, rate- and
//! queue-bounded per core, to a kernel interface that carries the port's MAC and address
//! (a DPDK net_tap or virtio_user device, one queue per core), and every frame the kernel
//! sends there goes out of the NIC unchanged (but for the kernel's duplicate ARP
//! replies, see [`super::arp`]).
//!
//! Protecting the media: punted frames are only queued while a burst is processed (media
//! first), the queue is bounded, a token bucket in dataplane time bounds the rate, and
//! each loop iteration writes at most [`PUNT_BUDGET`] frames to the kernel and reads at
//! most [`INJECT_BUDGET`] from it, so a flood at the service address costs each
//! iteration a bounded amount of work and never delays a mixing tick. Excess is dropped
//! and counted by [`ExceptionDrop`] reason. Nothing here allocates after construction.

use crate::clock::Instant;
use crate::io::{PacketBuf, PacketIo, BURST};
use crate::stats::{CoreCounters, ExceptionDrop};
use core::time::Duration;

/// Frames written to the kernel per loop iteration at most.
pub const PUNT_BUDGET: usize = BURST;
/// Frames read from the kernel per loop iteration at most.
pub const INJECT_BUDGET: usize = BURST;
/// The kernel side is read at most this often unless the last read filled the budget
/// (a read of a net_tap queue is a system call even when nothing is waiting).
pub const INJECT_POLL: Duration = Duration::from_micros(20);

/// The bounds of one core's exception path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionConfig {
    /// Frames per second a core sends to the kernel at most (sustained).
    pub rate_pps: u32,
    /// Frames a core may send to the kernel at once above the rate (bucket depth).
    pub burst: u32,
    /// Frames a core holds for the kernel at most between two iterations.
    pub queue: usize,
}

impl ExceptionConfig {
    /// Default `rate_pps`: plenty for SIP signalling, TCP management and ARP.
    pub const DEFAULT_RATE_PPS: u32 = 10_000;
    /// Default `burst`.
    pub const DEFAULT_BURST: u32 = 256;
    /// Default `queue`.
    pub const DEFAULT_QUEUE: usize = 256;
}

impl Default for ExceptionConfig {
    fn default() -> Self {
        ExceptionConfig {
            rate_pps: Self::DEFAULT_RATE_PPS,
            burst: Self::DEFAULT_BURST,
            queue: Self::DEFAULT_QUEUE,
        }
    }
}

/// One token, in the bucket's fixed-point unit (a token per nanosecond of rate).
const TOKEN: u64 = 1_000_000_000;

/// A token bucket in dataplane time: `rate` tokens a second, at most `burst` saved up;
/// it starts full.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    rate: u64,
    depth: u64,
    level: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least one) refilled at `rate_pps`.
    pub fn new(rate_pps: u32, burst: u32) -> Self {
        let depth = u64::from(burst.max(1)) * TOKEN;
        TokenBucket {
            rate: u64::from(rate_pps),
            depth,
            level: depth,
            last: None,
        }
    }

    /// Take one token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let ns = u64::try_from(now.saturating_since(last).as_nanos()).unwrap_or(u64::MAX);
            self.level = self
                .level
                .saturating_add(ns.saturating_mul(self.rate))
                .min(self.depth);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        if self.level >= TOKEN {
            self.level -= TOKEN;
            true
        } else {
            false
        }
    }
}

/// One core's queue pair on a port's exception device, with its bounds.
pub struct Exception<I: PacketIo> {
    io: I,
    bucket: TokenBucket,
    queue: Vec<I::Buf>,
    capacity: usize,
    batch: Vec<I::Buf>,
    next_read: Option<Instant>,
}

impl<I: PacketIo> Exception<I> {
    /// The exception path over `io` (this core's queue pair of the kernel device).
    pub fn new(io: I, cfg: ExceptionConfig) -> Self {
        let capacity = cfg.queue.max(1);
        Exception {
            io,
            bucket: TokenBucket::new(cfg.rate_pps, cfg.burst),
            queue: Vec::with_capacity(capacity),
            capacity,
            batch: Vec::with_capacity(PUNT_BUDGET),
            next_read: None,
        }
    }

    /// The kernel-side queue pair (tests inspect the memory backend).
    pub fn io_mut(&mut self) -> &mut I {
        &mut self.io
    }

    /// Whether one more frame may be queued at `now`; counts the drop when not.
    fn admit(&mut self, now: Instant, c: &CoreCounters) -> bool {
        if self.queue.len() >= self.capacity {
            c.drop_exception(ExceptionDrop::QueueFull);
            false
        } else if !self.bucket.take(now) {
            c.drop_exception(ExceptionDrop::Rate);
            false
        } else {
            true
        }
    }

    /// Queue `buf` for the kernel, or drop it (counted) over the rate or queue bound.
    pub fn punt(&mut self, buf: I::Buf, now: Instant, c: &CoreCounters) {
        if self.admit(now, c) {
            self.queue.push(buf);
        }
    }

    /// Queue a copy of `frame` for the kernel (the original is answered by the
    /// dataplane), within the same bounds.
    pub fn punt_copy(&mut self, frame: &[u8], now: Instant, c: &CoreCounters) {
        if !self.admit(now, c) {
            return;
        }
        let Some(mut b) = self.io.alloc() else {
            c.drop_exception(ExceptionDrop::PoolExhausted);
            return;
        };
        if b.set_len(frame.len()) {
            b.data_mut().copy_from_slice(frame);
            self.queue.push(b);
        } else {
            // An ARP frame is far smaller than any buffer; count it all the same.
            c.drop_exception(ExceptionDrop::PoolExhausted);
        }
    }

    /// Write up to [`PUNT_BUDGET`] queued frames to the kernel, oldest first; what its
    /// queue refuses is dropped (counted). Returns true if there was anything to write.
    pub fn flush(&mut self, c: &CoreCounters) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let n = self.queue.len().min(PUNT_BUDGET);
        self.batch.extend(self.queue.drain(..n));
        let sent = self.io.tx_burst(&mut self.batch);
        c.exception_punted.add(sent as u64);
        for _ in self.batch.drain(..) {
            c.drop_exception(ExceptionDrop::ExceptionTxFull);
        }
        true
    }

    /// Append up to [`INJECT_BUDGET`] frames the kernel sent to `out` (reading at most
    /// every [`INJECT_POLL`] while the kernel sends less than a budget); returns how many.
    pub fn receive(&mut self, out: &mut Vec<I::Buf>, now: Instant) -> usize {
        if self.next_read.is_some_and(|t| now < t) {
            return 0;
        }
        let n = self.io.rx_burst(out, INJECT_BUDGET);
        self.next_read = (n < INJECT_BUDGET).then(|| now + INJECT_POLL);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::new(1000, 4);
        let t0 = Instant::from_nanos(1_000);
        for _ in 0..4 {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0), "the burst is used up");
        // 1000 pps: one token per millisecond.
        assert!(!b.take(t0 + Duration::from_micros(999)));
        assert!(b.take(t0 + Duration::from_millis(1)));
        assert!(!b.take(t0 + Duration::from_millis(1)));
        // A long pause refills to the depth only.
        let later = t0 + Duration::from_secs(60);
        let taken = (0..10).filter(|_| b.take(later)).count();
        assert_eq!(taken, 4);
        // Time going backwards refills nothing and does not move the bucket back.
        assert!(!b.take(t0));
        assert!(b.take(later + Duration::from_millis(1)));
    }

    #[test]
    fn the_kernel_side_is_read_at_most_every_inject_poll_unless_busy() {
        use crate::io::MemoryIo;
        let c = CoreCounters::default();
        let mut x = Exception::new(MemoryIo::new(128, 64), ExceptionConfig::default());
        let mut out = Vec::with_capacity(INJECT_BUDGET);
        let t0 = Instant::from_nanos(1_000);
        assert_eq!(x.receive(&mut out, t0), 0);
        for _ in 0..INJECT_BUDGET + 1 {
            assert!(x.io_mut().inject(&[1; 60]));
        }
        assert_eq!(
            x.receive(&mut out, t0 + Duration::from_micros(19)),
            0,
            "too soon"
        );
        let t1 = t0 + INJECT_POLL;
        assert_eq!(x.receive(&mut out, t1), INJECT_BUDGET);
        out.clear();
        // A full read: the next iteration reads again at once.
        assert_eq!(x.receive(&mut out, t1), 1);
        assert_eq!(x.receive(&mut out, t1 + Duration::from_micros(1)), 0);
        assert!(!x.flush(&c), "nothing queued for the kernel");
    }

    #[test]
    fn bucket_rate_over_a_second_is_the_rate_plus_the_burst() {
        let mut b = TokenBucket::new(10_000, 100);
        let t0 = Instant::from_nanos(0);
        // Offer 50,000 frames evenly over one second.
        let taken = (0..50_000u64)
            .filter(|i| b.take(t0 + Duration::from_micros(i * 20)))
            .count();
        assert!((10_000..=10_100).contains(&taken), "{taken}");
    }
}
