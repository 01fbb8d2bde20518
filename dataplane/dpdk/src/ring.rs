//! rte_ring carrying mbufs from one lcore to another (single producer, single consumer):
//! how a packet that arrived on the wrong core's queue reaches the core that owns it.

use crate::eal::{Eal, EalGuard};
use crate::mbuf::Mbuf;
use crate::{last_error, Error};
use core::ptr::NonNull;
use std::ffi::{c_void, CString};
use std::sync::Arc;
use tutti_dataplane::io::{RingRx, RingTx};

struct Ring {
    raw: NonNull<dpdk_sys::rte_ring>,
    _eal: EalGuard,
}

// SAFETY: an rte_ring is built for use from several lcores; with the SP/SC flags each
// end is used by exactly one thread (MbufRingTx / MbufRingRx are not Clone).
unsafe impl Send for Ring {}
// SAFETY: as above; the shared handle itself is only read.
unsafe impl Sync for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // Free what is still queued, then the ring. Both ends are gone (the Arc is last).
        let mut obj: *mut c_void = core::ptr::null_mut();
        // SAFETY: a valid ring whose only entries are mbufs we enqueued and own.
        while unsafe { dpdk_sys::rte_ring_sc_dequeue(self.raw.as_ptr(), &mut obj) } == 0 {
            if let Some(m) = NonNull::new(obj as *mut dpdk_sys::rte_mbuf) {
                // SAFETY: ownership travelled through the ring.
                drop(unsafe { Mbuf::from_raw(m) });
            }
        }
        // SAFETY: nobody uses the ring any more.
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) }
    }
}

/// The producer end.
pub struct MbufRingTx(Arc<Ring>);
/// The consumer end.
pub struct MbufRingRx(Arc<Ring>);

/// A ring named `name` for `capacity` mbufs (a power of two; one slot stays empty) on
/// NUMA `socket`.
pub fn mbuf_ring(
    eal: &Eal,
    name: &str,
    capacity: u32,
    socket: i32,
) -> Result<(MbufRingTx, MbufRingRx), Error> {
    let cname = CString::new(name).map_err(|_| Error::BadArgument(name.into()))?;
    let flags = dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ;
    // SAFETY: valid name; the EAL is initialised (`eal` proves it).
    let raw = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), capacity, socket, flags) };
    let ring = NonNull::new(raw).ok_or_else(|| Error::Ring {
        name: name.into(),
        reason: last_error(),
    })?;
    let ring = Arc::new(Ring {
        raw: ring,
        _eal: eal.guard(),
    });
    Ok((MbufRingTx(ring.clone()), MbufRingRx(ring)))
}

impl RingTx<Mbuf> for MbufRingTx {
    #[inline]
    fn push(&mut self, b: Mbuf) -> Result<(), Mbuf> {
        let raw = b.into_raw();
        // SAFETY: valid ring; on success the ring owns the mbuf pointer.
        let rc = unsafe {
            dpdk_sys::rte_ring_sp_enqueue(self.0.raw.as_ptr(), raw.as_ptr() as *mut c_void)
        };
        if rc == 0 {
            Ok(())
        } else {
            // SAFETY: the enqueue failed, so we still own it.
            Err(unsafe { Mbuf::from_raw(raw) })
        }
    }
}

impl RingRx<Mbuf> for MbufRingRx {
    #[inline]
    fn pop(&mut self) -> Option<Mbuf> {
        let mut obj: *mut c_void = core::ptr::null_mut();
        // SAFETY: valid ring; single consumer (this end).
        if unsafe { dpdk_sys::rte_ring_sc_dequeue(self.0.raw.as_ptr(), &mut obj) } != 0 {
            return None;
        }
        // SAFETY: every entry is an mbuf whose ownership the producer gave up.
        NonNull::new(obj as *mut dpdk_sys::rte_mbuf).map(|m| unsafe { Mbuf::from_raw(m) })
    }
}
