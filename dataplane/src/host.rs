//! How a dataplane core hosts state: a [`Slab`] of boxed objects by key (conferences,
//! relay sessions), the appliance's one [`PortTable`] saying which core receives on each
//! media port, a [`PortMap`] per engine from local UDP port to what receives on it, an
//! [`EventQueue`] per engine, and one [`Uplink`] to the control core: one ring of
//! [`CoreEvent`]s and one of [`Retired`] state. All are allocated in full when built
//! (on the control core) and allocate nothing after.

use crate::conference::{Conference, MediaEvent, Participant};
use crate::relay::splice::Splice;
use crate::relay::{RelayEvent, RelaySession};
use core::hash::Hash;
use core::ops::RangeInclusive;
use core::sync::atomic::{AtomicU8, Ordering};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What a core reports to the control core.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CoreEvent {
    /// From a conference.
    Media(MediaEvent),
    /// From the gateway relay.
    Relay(RelayEvent),
}

/// State a core unlinked, handed back to the control core: to be freed there, or (a
/// participant moving to a conference on another core) to be sent on.
pub enum Retired {
    Conference(Box<Conference>),
    Participant(Box<Participant>),
    RelaySession(Box<RelaySession>),
    Splice(Box<Splice>),
    /// A participant on its way to a conference that is not on this core: the control
    /// core sends it to the core of the conference it has it in (its ports stay
    /// unclaimed until that core links it in).
    Moving(Box<Participant>),
    Tap(Box<crate::tap::Tap>),
}

/// Hands `r` back up `ring`. The ring is sized for everything the core can hold; if it
/// is full anyway, freeing on the core is the lesser evil.
pub fn retire(ring: &mut rtrb::Producer<Retired>, r: Retired) {
    if let Err(rtrb::PushError::Full(r)) = ring.push(r) {
        drop(r);
    }
}

/// A core's rings to the control core.
pub struct Uplink {
    pub events: rtrb::Producer<CoreEvent>,
    pub retired: rtrb::Producer<Retired>,
}

/// The control core's ends of an [`Uplink`].
pub struct UplinkRx {
    pub events: rtrb::Consumer<CoreEvent>,
    pub retired: rtrb::Consumer<Retired>,
}

/// An uplink holding `events` events and `retired` objects.
pub fn uplink(events: usize, retired: usize) -> (Uplink, UplinkRx) {
    let (ev_tx, ev_rx) = rtrb::RingBuffer::new(events);
    let (ret_tx, ret_rx) = rtrb::RingBuffer::new(retired);
    (
        Uplink {
            events: ev_tx,
            retired: ret_tx,
        },
        UplinkRx {
            events: ev_rx,
            retired: ret_rx,
        },
    )
}

/// Events an engine queued for the poll loop to send up (see `poll_event`).
pub struct EventQueue<T> {
    queue: VecDeque<T>,
    capacity: usize,
}

impl<T> EventQueue<T> {
    /// A queue of at most `capacity` events (this allocates).
    pub fn new(capacity: usize) -> EventQueue<T> {
        EventQueue {
            queue: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Queues `event`, or gives it back when the queue is full (the caller counts it).
    pub fn push(&mut self, event: T) -> Result<(), T> {
        if self.queue.len() >= self.capacity {
            return Err(event);
        }
        self.queue.push_back(event);
        Ok(())
    }

    /// The oldest queued event.
    pub fn pop(&mut self) -> Option<T> {
        self.queue.pop_front()
    }
}

/// At most `capacity` boxed objects, each under a unique key, at stable indices (what a
/// [`PortMap`] or a timer heap refers to).
pub struct Slab<K, T> {
    slots: Vec<Option<Box<T>>>,
    free: Vec<u32>,
    by_key: HashMap<K, u32>,
}

impl<K: Copy + Eq + Hash, T> Slab<K, T> {
    /// An empty slab with room for `capacity` objects (this allocates).
    pub fn new(capacity: usize) -> Slab<K, T> {
        Slab {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity as u32).rev().collect(),
            by_key: HashMap::with_capacity(capacity),
        }
    }

    /// Links `value` in under `key`; returns its index, or gives it back if the key is
    /// taken or the slab is full.
    pub fn insert(&mut self, key: K, value: Box<T>) -> Result<u32, Box<T>> {
        if self.by_key.contains_key(&key) {
            return Err(value);
        }
        let Some(idx) = self.free.pop() else {
            return Err(value);
        };
        self.by_key.insert(key, idx);
        if let Some(slot) = self.slots.get_mut(idx as usize) {
            *slot = Some(value);
        }
        Ok(idx)
    }

    /// Unlinks the object under `key`, with the index it had.
    pub fn remove(&mut self, key: &K) -> Option<(u32, Box<T>)> {
        let idx = self.by_key.remove(key)?;
        self.free.push(idx);
        let value = self.slots.get_mut(idx as usize)?.take()?;
        Some((idx, value))
    }

    /// The index of the object under `key`.
    pub fn index(&self, key: &K) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// Whether an object is under `key`.
    pub fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// The object at `idx`.
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut T> {
        self.slots.get_mut(idx as usize)?.as_deref_mut()
    }

    /// The object under `key`.
    pub fn by_key_mut(&mut self, key: &K) -> Option<&mut T> {
        let idx = self.index(key)?;
        self.get_mut(idx)
    }
}

/// Where a datagram to a local UDP port is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// By this core (a media port it holds, or one nobody holds: it counts the drop).
    Local,
    /// By another core (index into the core list).
    Core(usize),
    /// By no core: not a media port (the kernel's, through the exception path).
    Nobody,
}

/// Which dataplane core receives on each media port pair of the appliance: one table,
/// shared by every core. A core claims the pairs of what it links in (a participant's
/// legs, a relayed client) and gives them back when it unlinks it, so a port follows
/// its call from core to core; every core looks a received datagram's port up here to
/// know whether to handle it or hand it to the core that holds it. Lock-free: one
/// atomic byte per pair.
pub struct PortTable {
    /// The first (even) port of the media range.
    first: u16,
    /// Per pair from `first`: 0 when no core holds it, else the core's index + 1.
    owners: Box<[AtomicU8]>,
}

/// Most cores a [`PortTable`] can name.
pub const MAX_CORES: usize = u8::MAX as usize - 1;

impl PortTable {
    /// A table for the media ports `range` (from its first even port to its last
    /// complete pair), held by no core yet. This allocates.
    pub fn new(range: RangeInclusive<u16>) -> PortTable {
        let first = range.start().saturating_add(range.start() % 2);
        let pairs = (u32::from(*range.end()) + 1).saturating_sub(u32::from(first)) / 2;
        PortTable {
            first,
            owners: (0..pairs).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    /// [`PortTable::new`], shared.
    pub fn shared(range: RangeInclusive<u16>) -> Arc<PortTable> {
        Arc::new(PortTable::new(range))
    }

    /// The media ports, whole pairs (empty when the range holds none).
    pub fn range(&self) -> Option<RangeInclusive<u16>> {
        let pairs = u16::try_from(self.owners.len()).ok().filter(|&n| n > 0)?;
        Some(self.first..=self.first + (pairs * 2 - 1))
    }

    fn entry(&self, port: u16) -> Option<&AtomicU8> {
        let offset = port.checked_sub(self.first)?;
        self.owners.get(usize::from(offset / 2))
    }

    /// Who handles a datagram to `port`, as seen by core `me`.
    pub fn owner(&self, port: u16, me: usize) -> Owner {
        match self.entry(port).map(|e| e.load(Ordering::Acquire)) {
            None => Owner::Nobody,
            Some(0) => Owner::Local,
            Some(k) if usize::from(k - 1) == me => Owner::Local,
            Some(k) => Owner::Core(usize::from(k - 1)),
        }
    }

    /// Core `core` holds the pair of `port` from now on (whoever held it before).
    pub fn claim(&self, port: u16, core: usize) {
        if let (Some(e), Ok(k)) = (self.entry(port), u8::try_from(core + 1)) {
            e.store(k, Ordering::Release);
        }
    }

    /// Core `core` gives the pair of `port` back, unless another core claimed it since.
    pub fn release(&self, port: u16, core: usize) {
        if let (Some(e), Ok(k)) = (self.entry(port), u8::try_from(core + 1)) {
            let _ = e.compare_exchange(k, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

/// A core's view of the [`PortTable`]: the table and which core it is.
#[derive(Clone)]
pub struct CorePorts {
    table: Arc<PortTable>,
    core: usize,
}

impl CorePorts {
    /// Core `core`'s view of `table`.
    pub fn new(table: Arc<PortTable>, core: usize) -> CorePorts {
        CorePorts { table, core }
    }

    /// The one core of `range` (tests and benchmarks).
    pub fn single(range: RangeInclusive<u16>) -> CorePorts {
        CorePorts::new(PortTable::shared(range), 0)
    }

    /// Who handles a datagram to `port`.
    pub fn owner(&self, port: u16) -> Owner {
        self.table.owner(port, self.core)
    }

    /// Whether `port` is a media port.
    pub fn covers(&self, port: u16) -> bool {
        self.table.entry(port).is_some()
    }

    /// This core holds the pair of `port`.
    pub fn claim(&self, port: u16) {
        self.table.claim(port, self.core);
    }

    /// This core gives the pair of `port` back.
    pub fn release(&self, port: u16) {
        self.table.release(port, self.core);
    }

    /// A map over the media ports, for what this core links in.
    pub fn map<V: Copy>(&self) -> PortMap<V> {
        PortMap::new(self.table.range())
    }
}

/// What receives on each local UDP port of a range.
pub struct PortMap<V> {
    range: Option<RangeInclusive<u16>>,
    owners: Box<[Option<V>]>,
}

impl<V: Copy> PortMap<V> {
    /// Nothing on any port of `range` yet (`None`: no ports at all). This allocates.
    pub fn new(range: Option<RangeInclusive<u16>>) -> PortMap<V> {
        let span = range.as_ref().map_or(0, |r| r.clone().count());
        PortMap {
            range,
            owners: vec![None; span].into_boxed_slice(),
        }
    }

    fn offset(&self, port: u16) -> Option<usize> {
        let r = self.range.as_ref()?;
        r.contains(&port).then(|| usize::from(port - r.start()))
    }

    /// Whether `port` is one of the map's.
    pub fn covers(&self, port: u16) -> bool {
        self.offset(port).is_some()
    }

    /// What receives on `port`.
    pub fn get(&self, port: u16) -> Option<V> {
        self.owners.get(self.offset(port)?).copied().flatten()
    }

    /// Sets (or with `None` clears) what receives on `port`; ignored outside the range.
    pub fn set(&mut self, port: u16, v: Option<V>) {
        if let Some(o) = self.offset(port).and_then(|i| self.owners.get_mut(i)) {
            *o = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_links_unlinks_and_reuses() {
        let mut s: Slab<u32, &str> = Slab::new(2);
        let a = s.insert(7, Box::new("a")).unwrap();
        assert_eq!(s.insert(7, Box::new("again")).map_err(|b| *b), Err("again"));
        let b = s.insert(8, Box::new("b")).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.insert(9, Box::new("full")).map_err(|b| *b), Err("full"));
        assert_eq!(s.index(&8), Some(b));
        assert_eq!(s.get_mut(a).map(|v| *v), Some("a"));
        assert_eq!(s.remove(&7).map(|(i, v)| (i, *v)), Some((a, "a")));
        assert!(!s.contains(&7) && s.get_mut(a).is_none() && s.remove(&7).is_none());
        assert_eq!(s.insert(9, Box::new("c")), Ok(a));
        assert_eq!(s.by_key_mut(&9).map(|v| *v), Some("c"));
    }

    #[test]
    fn event_queue_is_bounded_fifo() {
        let mut q = EventQueue::new(2);
        assert_eq!((q.push(1), q.push(2), q.push(3)), (Ok(()), Ok(()), Err(3)));
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(1), Some(2), None));
        assert_eq!(q.push(4), Ok(()));
    }

    #[test]
    fn port_map_covers_its_range_only() {
        let mut m: PortMap<u8> = PortMap::new(Some(100..=103));
        assert!(m.covers(100) && m.covers(103) && !m.covers(99) && !m.covers(104));
        m.set(101, Some(4));
        m.set(104, Some(5));
        assert_eq!((m.get(101), m.get(102), m.get(104)), (Some(4), None, None));
        m.set(101, None);
        assert_eq!(m.get(101), None);
        let none: PortMap<u8> = PortMap::new(None);
        assert!(!none.covers(100));
    }

    #[test]
    fn port_table_follows_claims_by_pair() {
        let t = PortTable::shared(101..=106);
        assert_eq!(t.range(), Some(102..=105));
        let (a, b) = (CorePorts::new(t.clone(), 0), CorePorts::new(t.clone(), 1));
        // Outside the media ports: the kernel's; inside, unheld: the receiving core drops.
        assert_eq!(
            (a.owner(101), a.owner(106), a.owner(102)),
            (Owner::Nobody, Owner::Nobody, Owner::Local)
        );
        a.claim(104);
        assert_eq!(
            (a.owner(104), a.owner(105), b.owner(105)),
            (Owner::Local, Owner::Local, Owner::Core(0))
        );
        // The call moves: b claims, a's late release does not take it back.
        b.claim(104);
        a.release(104);
        assert_eq!((a.owner(104), b.owner(104)), (Owner::Core(1), Owner::Local));
        b.release(105);
        assert_eq!(a.owner(104), Owner::Local);
        assert!(a.covers(102) && !a.covers(106));
        assert_eq!(PortTable::new(7..=7).range(), None);
        let m: PortMap<u8> = a.map();
        assert!(m.covers(102) && m.covers(105) && !m.covers(106));
    }
}
