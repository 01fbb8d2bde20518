//! Safe wrapper over `dpdk-sys`: EAL, mempools, mbufs, ports and their queues, lcores and
//! the TSC clock. Together with dpdk-sys this is the only place with `unsafe` FFI; the
//! queues implement `tutti_dataplane::io::PacketIo` so the poll loop runs on them.

mod eal;
mod mbuf;
mod port;
mod ring;

pub use eal::{launch, Eal, EalGuard, LaunchHandle, TscClock};
pub use mbuf::{leaked_pools, Mbuf, Mempool};
pub use port::{Link, Port, PortQueue, PortSetup};
pub use ring::{mbuf_ring, MbufRingRx, MbufRingTx};

use std::ffi::CStr;

/// What went wrong in a DPDK call, with DPDK's own explanation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("EAL initialisation failed: {0}")]
    EalInit(String),
    #[error("EAL argument contains a NUL byte: {0:?}")]
    BadArgument(String),
    #[error("no DPDK port named '{name}' (known ports: {known}); check the --vdev/-a EAL arguments and the device name")]
    NoSuchPort { name: String, known: String },
    #[error("mempool '{name}' could not be created: {reason}")]
    Mempool { name: String, reason: String },
    #[error("port {port} ({name}): {what} failed: {reason}")]
    Port {
        port: u16,
        name: String,
        what: &'static str,
        reason: String,
    },
    #[error("device {name} ({args}) could not be created: {reason} (see the PMD's lines above; an exception interface needs CAP_NET_ADMIN and a free interface name)")]
    Vdev {
        name: String,
        args: String,
        reason: String,
    },
    #[error("ring '{name}' could not be created: {reason}")]
    Ring { name: String, reason: String },
    #[error("lcore {0} is not enabled in the EAL core list (-l/--lcores) or is the main lcore")]
    BadLcore(u32),
    #[error("launching work on lcore {lcore} failed: {reason}")]
    Launch { lcore: u32, reason: String },
}

/// DPDK's text for error number `errnum` (positive or negative).
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // string that stays valid until the next call on this thread; we copy it at once.
    unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errnum.abs())) }
        .to_string_lossy()
        .into_owned()
}

/// The calling thread's `rte_errno`, as text.
pub(crate) fn last_error() -> String {
    // SAFETY: reads a thread-local integer through our C shim.
    strerror(unsafe { dpdk_sys::tutti_rte_errno() })
}
