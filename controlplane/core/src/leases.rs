//! Call-manager leases: each call manager proves it is alive with heartbeats
//! (`POST /v1/call-managers/{cm}/heartbeat {interval_ms}`); its lease lapses after
//! `lease_misses` intervals without one. Pure logic: callers pass the time.

use std::collections::BTreeMap;
use std::time::Duration;
use tutti_dataplane::clock::Instant;

/// Most call managers with a lease at once.
pub const MAX_LEASES: usize = 4096;
/// Shortest heartbeat interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest heartbeat interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Why a heartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The interval is out of range.
    #[error("interval_ms must be from {min} to {max}, not {0}", min = MIN_INTERVAL.as_millis(), max = MAX_INTERVAL.as_millis())]
    Interval(u64),
    /// The table is full.
    #[error("too many call managers ({MAX_LEASES}) hold leases")]
    Full,
}

/// One call manager's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The heartbeat interval it announced.
    pub interval: Duration,
    /// When its last heartbeat arrived.
    pub last: Instant,
    /// Whether it lapsed (and has not sent a heartbeat since).
    pub lapsed: bool,
}

/// What a heartbeat did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The call manager had no lease: it has one now.
    Created,
    /// Its live lease was renewed.
    Renewed,
    /// Its lapsed lease is live again.
    Restored,
}

/// The lease table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leases {
    misses: u32,
    table: BTreeMap<String, Lease>,
}

impl Leases {
    /// An empty table whose leases lapse after `misses` missed heartbeats.
    pub fn new(misses: u32) -> Self {
        Leases {
            misses: misses.max(1),
            table: BTreeMap::new(),
        }
    }

    /// When `lease` lapses.
    pub fn expiry(&self, lease: &Lease) -> Instant {
        lease.last + lease.interval * self.misses
    }

    /// Missed heartbeats after which a lease lapses.
    pub fn misses(&self) -> u32 {
        self.misses
    }

    /// A heartbeat from `cm` at `now` announcing `interval_ms`.
    pub fn heartbeat(
        &mut self,
        cm: &str,
        interval_ms: u64,
        now: Instant,
    ) -> Result<Renewal, LeaseError> {
        let interval = Duration::from_millis(interval_ms);
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(LeaseError::Interval(interval_ms));
        }
        let lease = Lease {
            interval,
            last: now,
            lapsed: false,
        };
        let full = self.table.len() >= MAX_LEASES;
        match self.table.get_mut(cm) {
            Some(l) => {
                let was = l.lapsed;
                *l = lease;
                Ok(if was {
                    Renewal::Restored
                } else {
                    Renewal::Renewed
                })
            }
            None if full => Err(LeaseError::Full),
            None => {
                self.table.insert(cm.to_string(), lease);
                Ok(Renewal::Created)
            }
        }
    }

    /// Mark the leases that lapsed by `now`; their call managers, in name order.
    pub fn poll(&mut self, now: Instant) -> Vec<String> {
        let misses = self.misses;
        let mut lapsed = Vec::new();
        for (cm, l) in &mut self.table {
            if !l.lapsed && now >= l.last + l.interval * misses {
                l.lapsed = true;
                lapsed.push(cm.clone());
            }
        }
        lapsed
    }

    /// When the next live lease lapses.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table
            .values()
            .filter(|l| !l.lapsed)
            .map(|l| self.expiry(l))
            .min()
    }

    /// Whether `cm` holds a lease, live or lapsed.
    pub fn holds(&self, cm: &str) -> bool {
        self.table.contains_key(cm)
    }

    /// Whether `cm` holds a lease that has lapsed (no lease: not lapsed).
    pub fn is_lapsed(&self, cm: &str) -> bool {
        self.table.get(cm).is_some_and(|l| l.lapsed)
    }

    /// Every lease, by call manager name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Lease)> {
        self.table.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A call manager's lease and what it owns, at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallManagerStatus {
    pub id: String,
    /// The heartbeat interval it announced.
    pub interval: Duration,
    /// Missed intervals after which a lease lapses.
    pub lease_misses: u32,
    /// The lease is live.
    pub up: bool,
    pub since_last_heartbeat: Duration,
    /// Until the lease lapses (zero once it has).
    pub expires_in: Duration,
    /// Conferences it owns.
    pub conferences: usize,
    /// Of those, the orphaned ones.
    pub orphaned_conferences: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lease_lapses_after_the_missed_intervals_and_comes_back() {
        let t0 = Instant::from_nanos(1_000);
        let mut l = Leases::new(3);
        assert_eq!(l.heartbeat("cm1", 300, t0), Ok(Renewal::Created));
        assert_eq!(l.poll_timeout(), Some(t0 + 900 * MS));
        assert!(l.poll(t0 + 899 * MS).is_empty());
        assert!(!l.is_lapsed("cm1"));
        assert_eq!(l.heartbeat("cm1", 300, t0 + 800 * MS), Ok(Renewal::Renewed));
        assert!(l.poll(t0 + 1699 * MS).is_empty());
        assert_eq!(l.poll(t0 + 1700 * MS), vec!["cm1".to_string()]);
        assert!(l.is_lapsed("cm1"));
        assert!(l.poll(t0 + 5000 * MS).is_empty(), "reported once");
        assert_eq!(l.poll_timeout(), None);
        assert_eq!(
            l.heartbeat("cm1", 1000, t0 + 6000 * MS),
            Ok(Renewal::Restored)
        );
        assert_eq!(l.poll_timeout(), Some(t0 + 9000 * MS));
        assert!(!l.is_lapsed("never-seen"));
    }

    #[test]
    fn bad_intervals_and_a_full_table_are_refused() {
        let mut l = Leases::new(0);
        assert_eq!(l.misses(), 1, "at least one interval");
        for bad in [0, 9, 3_600_001, u64::MAX] {
            assert_eq!(
                l.heartbeat("a", bad, Instant::ZERO),
                Err(LeaseError::Interval(bad))
            );
        }
        for i in 0..MAX_LEASES {
            l.heartbeat(&format!("cm{i}"), 10, Instant::ZERO).unwrap();
        }
        assert_eq!(
            l.heartbeat("one-more", 10, Instant::ZERO),
            Err(LeaseError::Full)
        );
        assert_eq!(
            l.heartbeat("cm7", 10, Instant::ZERO),
            Ok(Renewal::Renewed),
            "existing leases still renew"
        );
        assert_eq!(l.iter().count(), MAX_LEASES);
    }
}
