//! Mempools and mbufs. An [`Mbuf`] owns one packet buffer and returns it to its pool on drop.

use crate::eal::{Eal, EalGuard};
use crate::{last_error, Error};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use std::ffi::CString;
use tutti_dataplane::io::PacketBuf;

/// Pools that were dropped while some of their mbufs were still out, and were leaked.
static LEAKED_POOLS: AtomicU64 = AtomicU64::new(0);

/// How many pools have been leaked because they were dropped with mbufs still out
/// (see [`Mempool`]'s `Drop`).
pub fn leaked_pools() -> u64 {
    LEAKED_POOLS.load(Ordering::Relaxed)
}

/// A pool of packet buffers on one NUMA socket. It holds the EAL up. Dropped while
/// every mbuf is back, it is freed; dropped while mbufs are still out (an [`Mbuf`] does
/// not hold its pool), it is leaked instead, with its EAL guard, so that those mbufs
/// never point into freed memory; [`leaked_pools`] counts such pools.
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    eal: EalGuard,
}

// SAFETY: a DPDK mempool is designed to be used from several lcores at once (per-lcore
// caches plus a lock-free ring); the pointer stays valid until `Drop`.
unsafe impl Send for Mempool {}
// SAFETY: as above; the read-only counters we expose are safe to call concurrently.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a packet-mbuf pool of `n` buffers with `data_room` bytes each on `socket`.
    pub fn new(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, Error> {
        let cname = CString::new(name).map_err(|_| Error::BadArgument(name.into()))?;
        // SAFETY: valid NUL-terminated name; the EAL is initialised (`eal` proves it).
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool {
                raw,
                name: name.into(),
                eal: eal.guard(),
            })
            .ok_or_else(|| Error::Mempool {
                name: name.into(),
                reason: last_error(),
            })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Buffers currently allocated (in queues, in flight, or held by software).
    pub fn in_use(&self) -> u32 {
        // SAFETY: read-only walk over the pool's counters.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Buffers free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: read-only walk over the pool's counters.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// A fresh buffer, or `None` when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool; a null result means empty.
        NonNull::new(unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) }).map(Mbuf)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Ports hold their pools (Arc), so every queue using this one was stopped and
        // closed, and the PMD gave its descriptors' mbufs back, before we get here.
        let out = self.in_use();
        if out != 0 {
            LEAKED_POOLS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                pool = %self.name,
                mbufs_out = out,
                "mempool dropped with mbufs still out: leaked (with the EAL) instead of freed"
            );
            // The live mbufs point into this pool's memory: keep it, and the EAL, mapped.
            core::mem::forget(self.eal.clone());
            return;
        }
        // SAFETY: no mbuf of the pool is out (counted above, with the per-lcore caches as
        // available), no queue uses it, and the EAL is up (we hold a guard).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}

/// One single-segment packet buffer. Freed back to its pool on drop.
#[repr(transparent)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving it to another lcore is how
// DPDK hands packets between cores.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Give up ownership without freeing (the pointer now belongs to the caller).
    pub(crate) fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        let raw = self.0;
        core::mem::forget(self);
        raw
    }

    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else owns or frees.
    pub(crate) unsafe fn from_raw(raw: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf(raw)
    }

    fn m(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref() }
    }

    /// Segments in the chain (1 except for [`Mbuf::chained_copy`]'s).
    pub fn segments(&self) -> u16 {
        self.m().nb_segs
    }

    /// A copy for sending elsewhere: a fresh mbuf from `pool` holding this packet's first
    /// `split` bytes, chained to an indirect clone of the rest (reference counted, no
    /// payload copy). Neither packet's bytes after `split` may be written afterwards.
    pub fn chained_copy(&self, pool: &Mempool, split: usize) -> Option<Mbuf> {
        let len = self.data().len();
        let split16 = u16::try_from(split).ok().filter(|_| split < len)?;
        let mut head = pool.alloc()?;
        if !head.set_len(split) {
            return None;
        }
        head.data_mut().copy_from_slice(&self.data()[..split]);
        // SAFETY: `self` is a valid mbuf; clone returns a new indirect mbuf (or null)
        // sharing its data and raising its reference count, owned by us from here.
        let tail =
            NonNull::new(unsafe { dpdk_sys::rte_pktmbuf_clone(self.0.as_ptr(), pool.as_ptr()) })
                .map(Mbuf)?;
        // SAFETY: `tail` is ours and at least `split + 1` bytes long.
        if unsafe { dpdk_sys::rte_pktmbuf_adj(tail.0.as_ptr(), split16) }.is_null() {
            return None;
        }
        let tail = tail.into_raw();
        // SAFETY: both are ours; on success the chain owns `tail`, on failure we free it.
        let rc = unsafe { dpdk_sys::rte_pktmbuf_chain(head.0.as_ptr(), tail.as_ptr()) };
        if rc != 0 {
            // SAFETY: the chain did not take it.
            drop(unsafe { Mbuf::from_raw(tail) });
            return None;
        }
        Some(head)
    }

    /// A flat copy of the packet in a fresh mbuf from `pool`.
    pub fn flat_copy(&self, pool: &Mempool) -> Option<Mbuf> {
        let mut b = pool.alloc()?;
        let data = self.data();
        if !b.set_len(data.len()) {
            return None;
        }
        b.data_mut().copy_from_slice(data);
        Some(b)
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies within the mbuf's buffer, which
        // we own for as long as `self` lives.
        unsafe {
            core::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and we hold the only reference (`&mut self`).
        unsafe {
            let m = self.0.as_mut();
            core::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    #[inline]
    fn capacity(&self) -> usize {
        let m = self.m();
        usize::from(m.buf_len.saturating_sub(m.data_off))
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.capacity() || self.segments() != 1 {
            return false;
        }
        // SAFETY: we own the mbuf; the new length stays within its buffer.
        let m = unsafe { self.0.as_mut() };
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain) and free it exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}
