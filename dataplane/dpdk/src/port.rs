//! Ethernet ports: look up by device name, configure one rx/tx queue pair per dataplane
//! core (RSS where the PMD has it), start, stop, close; link status, stats and xstats.
//! A [`PortQueue`] is one queue pair, used by exactly one lcore.

use crate::eal::{Eal, EalGuard};
use crate::mbuf::{Mbuf, Mempool};
use crate::{strerror, Error};
use std::ffi::{CStr, CString};
use std::sync::Arc;
use tutti_dataplane::io::PacketIo;
use tutti_dataplane::wire::eth::MacAddr;

/// Descriptor ring sizes asked for (the PMD may adjust them).
const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;

/// The bus virtual devices live on.
const VDEV_BUS: &CStr = c"vdev";

/// How to set a port up.
pub struct PortSetup {
    /// One pool per queue pair, each on the socket of the lcore that polls it.
    pub pools: Vec<Arc<Mempool>>,
}

/// Link state as the PMD reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Mbit/s; 0 when the PMD does not know.
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// A started Ethernet port. Stopped and closed (and a device tutti created removed)
/// once the `Port` and every [`PortQueue`] of it are dropped; it holds the EAL up.
pub struct Port(Arc<PortInner>);

struct PortInner {
    id: u16,
    name: String,
    queues: u16,
    pools: Vec<Arc<Mempool>>,
    rss: bool,
    multi_seg: bool,
    driver: String,
    /// The virtual device's name when [`Port::create`] made it.
    vdev: Option<CString>,
    _eal: EalGuard,
}

fn port_names() -> String {
    let mut names = Vec::new();
    // SAFETY: iterating valid port ids with DPDK's own iterator.
    let mut id = unsafe { dpdk_sys::rte_eth_find_next(0) };
    while u32::from(id) < dpdk_sys::RTE_MAX_ETHPORTS {
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: buf is large enough for RTE_ETH_NAME_MAX_LEN (64) and NUL-terminated on
        // success.
        if unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) } == 0 {
            // SAFETY: NUL-terminated by DPDK.
            names.push(
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        // SAFETY: as above.
        id = unsafe { dpdk_sys::rte_eth_find_next(id + 1) };
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Port {
    /// Create the virtual device `name` (a vdev driver name plus a suffix, such as
    /// `net_tap_x0`) with devargs `args` (e.g. `iface=tutti0,mac=02:..`), then start it
    /// as [`Port::start`] does. The device is removed again when the port is dropped.
    pub fn create(eal: &Eal, name: &str, args: &str, setup: PortSetup) -> Result<Port, Error> {
        let cname = CString::new(name).map_err(|_| Error::BadArgument(name.into()))?;
        let cargs = CString::new(args).map_err(|_| Error::BadArgument(args.into()))?;
        // SAFETY: valid NUL-terminated strings; the EAL is initialised (`eal`).
        let rc = unsafe {
            dpdk_sys::rte_eal_hotplug_add(VDEV_BUS.as_ptr(), cname.as_ptr(), cargs.as_ptr())
        };
        if rc != 0 {
            return Err(Error::Vdev {
                name: name.into(),
                args: args.into(),
                reason: if rc < 0 {
                    strerror(rc)
                } else {
                    format!("error {rc}")
                },
            });
        }
        match Port::start_inner(eal, name, setup, Some(cname.clone())) {
            Ok(p) => Ok(p),
            Err(e) => {
                // SAFETY: the device we just created and failed to start (start closed
                // the port if it got that far).
                unsafe { dpdk_sys::rte_eal_hotplug_remove(VDEV_BUS.as_ptr(), cname.as_ptr()) };
                Err(e)
            }
        }
    }

    /// Find the port DPDK created for device `name` (e.g. `net_tap0` or a PCI address)
    /// and start it with one queue pair per pool in `setup`.
    pub fn start(eal: &Eal, name: &str, setup: PortSetup) -> Result<Port, Error> {
        Port::start_inner(eal, name, setup, None)
    }

    fn start_inner(
        eal: &Eal,
        name: &str,
        setup: PortSetup,
        vdev: Option<CString>,
    ) -> Result<Port, Error> {
        let cname = CString::new(name).map_err(|_| Error::BadArgument(name.into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        if unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } != 0 {
            return Err(Error::NoSuchPort {
                name: name.into(),
                known: port_names(),
            });
        }
        let queues = u16::try_from(setup.pools.len()).unwrap_or(u16::MAX);
        let fail = |what: &'static str, rc: i32| Error::Port {
            port: id,
            name: name.into(),
            what,
            reason: strerror(rc),
        };

        // SAFETY: zeroed rte_eth_dev_info is a valid out-parameter.
        let mut info: dpdk_sys::rte_eth_dev_info = unsafe { core::mem::zeroed() };
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(fail("reading device info", rc));
        }
        if queues == 0 || queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(Error::Port {
                port: id,
                name: name.into(),
                what: "configuring queues",
                reason: format!(
                    "{queues} queue pairs asked for, the device has at most {} rx / {} tx",
                    info.max_rx_queues, info.max_tx_queues
                ),
            });
        }
        let driver = if info.driver_name.is_null() {
            String::from("unknown")
        } else {
            // SAFETY: the PMD's static driver name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };

        let mut conf = dpdk_sys::rte_eth_conf::default();
        let rss_hf = u64::from(dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_UDP)
            & info.flow_type_rss_offloads;
        let rss = queues > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // Chained mbufs (a private header segment in front of a shared payload) are sent
        // when the PMD can; otherwise duplicates are flat copies.
        let multi_seg =
            info.tx_offload_capa & u64::from(dpdk_sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
        if multi_seg {
            conf.txmode.offloads |= u64::from(dpdk_sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS);
        }
        // SAFETY: valid port id and configuration.
        let rc = unsafe { dpdk_sys::rte_eth_dev_configure(id, queues, queues, &conf) };
        if rc != 0 {
            return Err(fail("configure", rc));
        }
        let (mut nb_rx, mut nb_tx) = (RX_DESC, TX_DESC);
        // SAFETY: valid port id and out-pointers.
        let rc = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        if rc != 0 {
            return Err(fail("adjusting descriptor counts", rc));
        }
        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or(dpdk_sys::SOCKET_ID_ANY as u32);
        for (q, pool) in setup.pools.iter().enumerate() {
            let q = q as u16;
            // SAFETY: valid port, queue index below the configured count, live pool;
            // null conf means the PMD's defaults.
            let rc = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    nb_rx,
                    socket,
                    core::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(fail("rx queue setup", rc));
            }
            // SAFETY: as above.
            let rc = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, core::ptr::null())
            };
            if rc != 0 {
                return Err(fail("tx queue setup", rc));
            }
        }
        // SAFETY: configured port.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if rc != 0 {
            // SAFETY: close what we configured.
            unsafe { dpdk_sys::rte_eth_dev_close(id) };
            return Err(fail("start", rc));
        }
        Ok(Port(Arc::new(PortInner {
            id,
            name: name.into(),
            queues,
            pools: setup.pools,
            rss,
            multi_seg,
            driver,
            vdev,
            _eal: eal.guard(),
        })))
    }

    /// The DPDK port id.
    pub fn id(&self) -> u16 {
        self.0.id
    }

    /// The device name it was found by.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The PMD's driver name (e.g. `net_tap`, `net_virtio_user`).
    pub fn driver(&self) -> &str {
        &self.0.driver
    }

    /// Queue pairs (one per dataplane core).
    pub fn queues(&self) -> u16 {
        self.0.queues
    }

    /// Whether RSS spreads received packets over the queues.
    pub fn rss(&self) -> bool {
        self.0.rss
    }

    /// Whether the port sends chained mbufs (duplicates share their payload) rather
    /// than flat copies.
    pub fn multi_seg(&self) -> bool {
        self.0.multi_seg
    }

    /// The port's MAC address.
    pub fn mac(&self) -> MacAddr {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.0.id, &mut a) };
        MacAddr(a.addr_bytes)
    }

    /// Link state without waiting for autonegotiation.
    pub fn link(&self) -> Link {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port and out-pointer.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(self.0.id, &mut l) };
        Link {
            up: u32::from(l.link_status()) == dpdk_sys::RTE_ETH_LINK_UP,
            // RTE_ETH_SPEED_NUM_UNKNOWN (u32::MAX) for virtual devices that have no speed.
            speed_mbps: if l.link_speed == dpdk_sys::RTE_ETH_SPEED_NUM_UNKNOWN {
                0
            } else {
                l.link_speed
            },
            full_duplex: u32::from(l.link_duplex()) == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        }
    }

    /// The PMD's extended statistics as (name, value) pairs.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: a null array asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.0.id, core::ptr::null_mut(), 0) };
        let Ok(n) = usize::try_from(n) else {
            return Vec::new();
        };
        let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut vals = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: arrays of n entries each.
        let got_names =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.0.id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_vals =
            unsafe { dpdk_sys::rte_eth_xstats_get(self.0.id, vals.as_mut_ptr(), n as u32) };
        if got_names < 0 || got_vals < 0 {
            return Vec::new();
        }
        let m = (got_names as usize).min(got_vals as usize).min(n);
        vals[..m]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within the 64-byte array.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect()
    }

    /// Queue pair `q` for the lcore that will poll it.
    pub fn queue(&self, q: u16) -> Option<PortQueue> {
        (q < self.0.queues).then(|| PortQueue {
            port: self.0.clone(),
            queue: q,
            pool: self.0.pools[usize::from(q)].clone(),
            multi_seg: self.0.multi_seg,
        })
    }

    /// Buffers in use across this port's pools.
    pub fn mbufs_in_use(&self) -> u64 {
        self.0.pools.iter().map(|p| u64::from(p.in_use())).sum()
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: the Port and every PortQueue (each holds this inner Arc) are gone, so
        // no lcore polls the port any more; the EAL is up (we hold a guard). The pools
        // are dropped after this body, once the PMD has given their mbufs back.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
            if let Some(name) = &self.vdev {
                dpdk_sys::rte_eal_hotplug_remove(VDEV_BUS.as_ptr(), name.as_ptr());
            }
        }
    }
}

/// One rx/tx queue pair of a port, polled by one lcore only. It keeps the port open.
pub struct PortQueue {
    port: Arc<PortInner>,
    queue: u16,
    pool: Arc<Mempool>,
    multi_seg: bool,
}

impl PacketIo for PortQueue {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        out.reserve(max);
        let len = out.len();
        let max = max.min(out.capacity() - len).min(usize::from(u16::MAX));
        // SAFETY: `out` has room for `max` more elements; Mbuf is a transparent wrapper
        // of a non-null `*mut rte_mbuf`, and the PMD writes `n <= max` valid, non-null,
        // exclusively owned mbuf pointers there, which we then take ownership of.
        unsafe {
            let dst = out.as_mut_ptr().add(len) as *mut *mut dpdk_sys::rte_mbuf;
            let n = dpdk_sys::rte_eth_rx_burst(self.port.id, self.queue, dst, max as u16);
            out.set_len(len + usize::from(n));
            usize::from(n)
        }
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len().min(usize::from(u16::MAX));
        if len == 0 {
            return 0;
        }
        // SAFETY: the first `len` elements are valid owned mbufs laid out as
        // `*mut rte_mbuf`. The PMD takes ownership of the first `sent`; we then move the
        // unsent tail to the front without dropping anything and shorten the Vec, so the
        // sent mbufs are never freed by us.
        unsafe {
            let base = pkts.as_mut_ptr();
            let sent = usize::from(dpdk_sys::rte_eth_tx_burst(
                self.port.id,
                self.queue,
                base as *mut *mut dpdk_sys::rte_mbuf,
                len as u16,
            ));
            let total = pkts.len();
            core::ptr::copy(base.add(sent), base, total - sent);
            pkts.set_len(total - sent);
            sent
        }
    }

    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    fn duplicate(&mut self, buf: &Mbuf, split: usize) -> Option<Mbuf> {
        if self.multi_seg {
            buf.chained_copy(&self.pool, split)
        } else {
            buf.flat_copy(&self.pool)
        }
    }
}
