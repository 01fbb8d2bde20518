//! The neighbour (ARP) table of one port on one core: fixed capacity, no allocation after
//! creation, entries learned from ARP and from traffic, aged out, requests rate-limited.

use crate::clock::Instant;
use crate::wire::eth::MacAddr;
use core::net::Ipv4Addr;
use core::time::Duration;

/// How long a learned entry is trusted without being refreshed by traffic.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(300);
/// At most one ARP request per next hop in this interval.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    ip: Option<Ipv4Addr>,
    mac: Option<MacAddr>,
    learned: Instant,
    requested: Option<Instant>,
}

/// What [`NeighTable::resolve`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The next hop's MAC address.
    Known(MacAddr),
    /// Unknown: send an ARP request now (the table noted the time).
    SendRequest,
    /// Unknown and a request is already outstanding.
    Pending,
    /// Unknown and the table is full of fresher entries.
    TableFull,
}

/// An open-addressing table keyed by IPv4 address (capacity a power of two).
#[derive(Debug)]
pub struct NeighTable {
    slots: Box<[Entry]>,
}

impl NeighTable {
    /// A table with room for `capacity` neighbours (rounded up to a power of two).
    pub fn new(capacity: usize) -> Self {
        NeighTable {
            slots: vec![Entry::default(); capacity.max(4).next_power_of_two()].into_boxed_slice(),
        }
    }

    fn home(&self, ip: Ipv4Addr) -> usize {
        // Fibonacci hashing spreads sequential addresses across the table.
        let h = u32::from(ip).wrapping_mul(0x9e37_79b9);
        (h as usize) & (self.slots.len() - 1)
    }

    /// The slot holding `ip`, or the slot to put it in (an empty one, else an expired
    /// one), or `None` when the probe found neither.
    fn slot(&self, ip: Ipv4Addr, now: Instant) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let start = self.home(ip);
        let mut reusable = None;
        for i in 0..self.slots.len() {
            let idx = (start + i) & mask;
            let e = &self.slots[idx];
            match e.ip {
                Some(x) if x == ip => return Some(idx),
                None => return reusable.or(Some(idx)),
                Some(_) => {
                    let stale = now.saturating_since(e.learned) > ENTRY_LIFETIME
                        && e.requested
                            .is_none_or(|r| now.saturating_since(r) > REQUEST_INTERVAL);
                    if stale && reusable.is_none() {
                        reusable = Some(idx);
                    }
                }
            }
        }
        reusable
    }

    /// Record that `ip` is at `mac` (from an ARP packet or a frame it sent us).
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        if mac.is_multicast() || mac == MacAddr::ZERO || ip.is_unspecified() {
            return;
        }
        if let Some(idx) = self.slot(ip, now) {
            self.slots[idx] = Entry {
                ip: Some(ip),
                mac: Some(mac),
                learned: now,
                requested: None,
            };
        }
    }

    /// Look `ip` up; when unknown (or expired) say whether to send a request now.
    pub fn resolve(&mut self, ip: Ipv4Addr, now: Instant) -> Resolution {
        let Some(idx) = self.slot(ip, now) else {
            return Resolution::TableFull;
        };
        let e = &mut self.slots[idx];
        if e.ip == Some(ip) {
            if let Some(mac) = e.mac {
                if now.saturating_since(e.learned) <= ENTRY_LIFETIME {
                    return Resolution::Known(mac);
                }
            }
            if e.requested
                .is_some_and(|r| now.saturating_since(r) < REQUEST_INTERVAL)
            {
                return Resolution::Pending;
            }
        } else {
            *e = Entry {
                ip: Some(ip),
                mac: None,
                learned: Instant::ZERO,
                requested: None,
            };
        }
        e.requested = Some(now);
        Resolution::SendRequest
    }

    /// Number of resolved, unexpired entries.
    pub fn len(&self, now: Instant) -> usize {
        self.slots
            .iter()
            .filter(|e| e.mac.is_some() && now.saturating_since(e.learned) <= ENTRY_LIFETIME)
            .count()
    }

    /// True when no entry is resolved.
    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, n)
    }
    const M: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    #[test]
    fn request_once_then_known_then_expire() {
        let mut t = NeighTable::new(8);
        let t0 = Instant::from_nanos(1);
        assert_eq!(t.resolve(ip(2), t0), Resolution::SendRequest);
        assert_eq!(
            t.resolve(ip(2), t0 + Duration::from_millis(10)),
            Resolution::Pending
        );
        assert_eq!(
            t.resolve(ip(2), t0 + Duration::from_secs(2)),
            Resolution::SendRequest
        );
        t.learn(ip(2), M, t0 + Duration::from_secs(3));
        assert_eq!(
            t.resolve(ip(2), t0 + Duration::from_secs(4)),
            Resolution::Known(M)
        );
        assert_eq!(t.len(t0), 1);
        let late = t0 + Duration::from_secs(3) + ENTRY_LIFETIME + Duration::from_secs(1);
        assert_eq!(t.resolve(ip(2), late), Resolution::SendRequest);
        assert!(t.is_empty(late));
    }

    #[test]
    fn full_table_reuses_only_stale_slots() {
        let mut t = NeighTable::new(4);
        let t0 = Instant::from_nanos(1);
        for n in 1..=4 {
            t.learn(ip(n), M, t0);
        }
        assert_eq!(t.len(t0), 4);
        assert_eq!(t.resolve(ip(50), t0), Resolution::TableFull);
        let later = t0 + ENTRY_LIFETIME + Duration::from_secs(5);
        t.learn(ip(50), M, later);
        assert_eq!(t.resolve(ip(50), later), Resolution::Known(M));
        t.learn(ip(60), MacAddr::BROADCAST, later);
        assert_eq!(t.len(later), 1, "multicast MACs are never learned");
    }
}
