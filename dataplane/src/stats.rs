//! Per-core counters. Each dataplane core is the only writer of its own [`CoreCounters`]
//! (a plain load + store, no locked instruction); the control core reads them at scrape
//! time. The struct is cache-line aligned so two cores never share a line.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why the dataplane dropped a packet. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its headers say, or a header field is invalid.
    Malformed = 0,
    /// Neither our MAC address nor broadcast.
    NotForUs,
    /// An EtherType we do not handle (IPv6, VLAN, LLDP, ...).
    UnsupportedEthertype,
    /// An IPv4 packet to an address that is not ours.
    NotOurIp,
    /// An IPv4 header checksum that does not verify.
    BadChecksum,
    /// An IPv4 fragment (media is never fragmented; we do not reassemble).
    Fragment,
    /// An IP protocol we do not handle (TCP, ...).
    UnsupportedProtocol,
    /// An ICMP message other than echo request.
    UnsupportedIcmp,
    /// An ARP packet that is not an Ethernet/IPv4 request or reply for us.
    UnsupportedArp,
    /// A UDP datagram to a port nobody listens on.
    NoListener,
    /// A reply could not be sent because the packet pool was empty.
    PoolExhausted,
    /// The tx queue stayed full and the packet was dropped.
    TxFull,
    /// No ARP entry for the next hop yet (a request was sent).
    ArpUnresolved,
    /// The ring to the core that owns the packet's port was full.
    HandoffFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 14] = [
        DropReason::Malformed,
        DropReason::NotForUs,
        DropReason::UnsupportedEthertype,
        DropReason::NotOurIp,
        DropReason::BadChecksum,
        DropReason::Fragment,
        DropReason::UnsupportedProtocol,
        DropReason::UnsupportedIcmp,
        DropReason::UnsupportedArp,
        DropReason::NoListener,
        DropReason::PoolExhausted,
        DropReason::TxFull,
        DropReason::ArpUnresolved,
        DropReason::HandoffFull,
    ];

    /// The label value used in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotForUs => "not_for_us",
            DropReason::UnsupportedEthertype => "unsupported_ethertype",
            DropReason::NotOurIp => "not_our_ip",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::UnsupportedIcmp => "unsupported_icmp",
            DropReason::UnsupportedArp => "unsupported_arp",
            DropReason::NoListener => "no_listener",
            DropReason::PoolExhausted => "pool_exhausted",
            DropReason::TxFull => "tx_full",
            DropReason::ArpUnresolved => "arp_unresolved",
            DropReason::HandoffFull => "handoff_full",
        }
    }
}

/// Why a frame on the exception path (to or from the kernel) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExceptionDrop {
    /// Over the per-core punt rate (token bucket).
    Rate = 0,
    /// The per-core punt queue was full.
    QueueFull,
    /// The exception port's tx queue refused the frame.
    ExceptionTxFull,
    /// No buffer for the copy of an ARP packet the kernel also gets.
    PoolExhausted,
    /// The kernel's ARP reply for the port's address: the dataplane already answered.
    ArpDuplicate,
    /// A frame from the kernel that the NIC's tx queue had no room for.
    NicTxFull,
}

impl ExceptionDrop {
    /// Every reason, in counter order.
    pub const ALL: [ExceptionDrop; 6] = [
        ExceptionDrop::Rate,
        ExceptionDrop::QueueFull,
        ExceptionDrop::ExceptionTxFull,
        ExceptionDrop::PoolExhausted,
        ExceptionDrop::ArpDuplicate,
        ExceptionDrop::NicTxFull,
    ];

    /// The label value used in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExceptionDrop::Rate => "rate",
            ExceptionDrop::QueueFull => "queue_full",
            ExceptionDrop::ExceptionTxFull => "exception_tx_full",
            ExceptionDrop::PoolExhausted => "pool_exhausted",
            ExceptionDrop::ArpDuplicate => "arp_duplicate",
            ExceptionDrop::NicTxFull => "nic_tx_full",
        }
    }
}

/// A counter with a single writer: increments are a relaxed load and store, which the
/// compiler turns into a plain add on x86. Readers on other cores see a recent value.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`. Only the owning core may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Subtract `n` (for counters used as gauges). Only the owning core may call this.
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(n), Relaxed);
    }

    /// Add one. Only the owning core may call this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value, from any thread.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds (microseconds) of the [`LatencyHistogram`] buckets; a last bucket takes
/// everything above.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// A latency histogram with a single writer (the owning core) and lock-free readers: fixed
/// buckets of [`Counter`]s, merged across cores at scrape time.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: Counter,
}

impl LatencyHistogram {
    /// Record one observation. Only the owning core may call this.
    #[inline]
    pub fn record(&self, d: core::time::Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].inc();
        self.sum_ns.add(d.as_nanos() as u64);
    }

    /// Observations per bucket (not cumulative), the last one above every bound.
    pub fn counts(&self) -> [u64; LATENCY_BOUNDS_US.len() + 1] {
        core::array::from_fn(|i| self.buckets[i].get())
    }

    /// Sum of all observations, nanoseconds.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns.get()
    }

    /// The smallest bucket bound (µs) at or below which `q` (0..=1) of the observations
    /// fall; `None` when empty, `u64::MAX` when beyond the last bound.
    pub fn quantile_us(counts: &[u64], q: f64) -> Option<u64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(LATENCY_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// The counters of one dataplane core.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CoreCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub arp_replies_sent: Counter,
    pub arp_requests_sent: Counter,
    pub icmp_echo_replies: Counter,
    /// Nanoseconds spent in loop iterations that moved at least one packet or command.
    pub busy_ns: Counter,
    /// Nanoseconds the loop has run in all.
    pub total_ns: Counter,
    /// Loop iterations.
    pub iterations: Counter,
    /// Packets handed to another core / taken from another core.
    pub handoff_out: Counter,
    pub handoff_in: Counter,
    /// Frames sent to the kernel through the exception port.
    pub exception_punted: Counter,
    /// Frames from the kernel sent out of the NIC.
    pub exception_injected: Counter,
    drops: [Counter; DropReason::ALL.len()],
    exception_drops: [Counter; ExceptionDrop::ALL.len()],
}

impl CoreCounters {
    /// Count one dropped packet.
    #[inline]
    pub fn drop_packet(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    /// Packets dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Count one frame dropped on the exception path.
    #[inline]
    pub fn drop_exception(&self, reason: ExceptionDrop) {
        self.exception_drops[reason as usize].inc();
    }

    /// Exception-path frames dropped for `reason` so far.
    pub fn exception_drops(&self, reason: ExceptionDrop) -> u64 {
        self.exception_drops[reason as usize].get()
    }

    /// Packets dropped for any reason so far.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }

    /// Share of the loop's time spent doing work, in [0, 1].
    pub fn busy_ratio(&self) -> f64 {
        let total = self.total_ns.get();
        if total == 0 {
            return 0.0;
        }
        (self.busy_ns.get() as f64 / total as f64).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_counter() {
        let c = CoreCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            for _ in 0..=i {
                c.drop_packet(*r);
            }
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.drops(*r), i as u64 + 1, "{}", r.as_str());
        }
        assert_eq!(c.drops_total(), (1..=14).sum::<u64>());
        for (i, r) in ExceptionDrop::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            c.drop_exception(*r);
            assert_eq!(c.exception_drops(*r), 1, "{}", r.as_str());
        }
        assert_eq!(core::mem::align_of::<CoreCounters>(), 64);
    }

    #[test]
    fn latency_histogram_buckets_and_quantiles() {
        let h = LatencyHistogram::default();
        for us in [0u64, 1, 3, 3, 40, 40, 40, 40, 900, 1_000_000] {
            h.record(core::time::Duration::from_micros(us));
        }
        let c = h.counts();
        assert_eq!(c.iter().sum::<u64>(), 10);
        assert_eq!(c[0], 2, "0 and 1 µs fall in the first bucket");
        assert_eq!(c[2], 2, "3 µs is in (2, 5]");
        assert_eq!(
            c[LATENCY_BOUNDS_US.len()],
            1,
            "a second is beyond the last bound"
        );
        assert_eq!(LatencyHistogram::quantile_us(&c, 0.5), Some(50));
        assert_eq!(LatencyHistogram::quantile_us(&c, 0.9), Some(1_000));
        assert_eq!(LatencyHistogram::quantile_us(&c, 1.0), Some(u64::MAX));
        assert_eq!(LatencyHistogram::quantile_us(&[0; 3], 0.5), None);
        assert_eq!(h.sum_ns(), (1 + 3 + 3 + 160 + 900 + 1_000_000) * 1000);
    }

    #[test]
    fn busy_ratio_is_a_share() {
        let c = CoreCounters::default();
        assert_eq!(c.busy_ratio(), 0.0);
        c.total_ns.add(400);
        c.busy_ns.add(100);
        assert!((c.busy_ratio() - 0.25).abs() < 1e-12);
    }
}
