//! The way out of a port: next hops resolved by ARP through the port's neighbour table,
//! frames queued per port and drained in bursts (when a burst is full or [`TX_DRAIN`]
//! after the first was queued), and the in-place UDP builder the conference engine and
//! the relay send through.

use super::exception::Exception;
use super::PortAddr;
use crate::clock::Instant;
use crate::conference::Transmit;
use crate::io::{PacketBuf, PacketIo, BURST};
use crate::neigh::{NeighTable, Resolution};
use crate::relay::RelayPort;
use crate::stats::{CoreCounters, DropReason};
use crate::wire::{arp, eth, ipv4, udp};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

/// Pending tx packets are flushed at the latest this long after the first was queued.
pub const TX_DRAIN: Duration = Duration::from_micros(100);
/// The loop re-resolves its gateway this often, so the first packet routed through it
/// does not wait for ARP.
pub const GATEWAY_REFRESH: Duration = Duration::from_secs(30);
/// Pending tx packets at most; beyond this the newest are dropped as `tx_full`.
const TX_PENDING_MAX: usize = 4 * BURST;

/// One port as one core sees it: its queue pair, addressing, neighbours, pending tx
/// frames, and its exception port if it has one.
pub(crate) struct Port<I: PacketIo> {
    pub(crate) io: I,
    pub(crate) addr: PortAddr,
    pub(crate) neigh: NeighTable,
    tx: Vec<I::Buf>,
    tx_since: Option<Instant>,
    gateway_checked: Option<Instant>,
    ip_ident: u16,
    pub(crate) exception: Option<Exception<I>>,
}

impl<I: PacketIo> Port<I> {
    pub(crate) fn new(io: I, addr: PortAddr) -> Self {
        Port {
            io,
            addr,
            neigh: NeighTable::new(1024),
            tx: Vec::with_capacity(TX_PENDING_MAX),
            tx_since: None,
            gateway_checked: None,
            ip_ident: 0,
            exception: None,
        }
    }

    /// Flush when a burst is full or the oldest pending frame waited [`TX_DRAIN`];
    /// returns true if it flushed.
    pub(crate) fn drain_due(&mut self, c: &CoreCounters, now: Instant) -> bool {
        if !self.tx.is_empty()
            && (self.tx.len() >= BURST || self.tx_since.is_some_and(|t| now - t >= TX_DRAIN))
        {
            flush(self, c);
            return true;
        }
        false
    }
}

/// The engine's way out: UDP datagrams built in place in a fresh buffer and queued on the
/// first port, next hop resolved by ARP.
pub(crate) struct PortTx<'a, I: PacketIo> {
    pub(crate) port: &'a mut Port<I>,
    pub(crate) counters: &'a CoreCounters,
    pub(crate) now: Instant,
}

/// Ethernet + IPv4 + UDP header bytes in front of a datagram's payload.
const UDP_HEADERS: usize = eth::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;
/// Largest frame we build (Ethernet MTU 1500).
const MAX_FRAME: usize = eth::HEADER_LEN + 1500;

impl<I: PacketIo> RelayPort<I::Buf> for PortTx<'_, I> {
    fn ip(&self) -> Ipv4Addr {
        self.port.addr.ip
    }

    fn macs(&mut self, dst: Ipv4Addr) -> Option<(eth::MacAddr, eth::MacAddr)> {
        let mac = route(self.port, dst, self.counters, self.now);
        if mac.is_none() {
            self.counters.drop_packet(DropReason::ArpUnresolved);
        }
        Some((self.port.addr.mac, mac?))
    }

    fn duplicate(&mut self, b: &I::Buf, split: usize) -> Option<I::Buf> {
        let dup = self.port.io.duplicate(b, split);
        if dup.is_none() {
            self.counters.drop_packet(DropReason::PoolExhausted);
        }
        dup
    }

    fn send(&mut self, b: I::Buf) {
        queue_tx(self.port, b, self.counters, self.now);
    }
}

impl<I: PacketIo> Transmit for PortTx<'_, I> {
    fn send(
        &mut self,
        src_port: u16,
        dst: SocketAddrV4,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> bool {
        let c = self.counters;
        let Some(mac) = route(self.port, *dst.ip(), c, self.now) else {
            c.drop_packet(DropReason::ArpUnresolved);
            return false;
        };
        let Some(mut b) = self.port.io.alloc() else {
            c.drop_packet(DropReason::PoolExhausted);
            return false;
        };
        let room = b.capacity().min(MAX_FRAME);
        if room <= UDP_HEADERS || !b.set_len(room) {
            return false;
        }
        let data = b.data_mut();
        let n = fill(&mut data[UDP_HEADERS..room]);
        if n == 0 {
            return false;
        }
        let our_ip = self.port.addr.ip;
        udp::write_header(
            &mut data[eth::HEADER_LEN + ipv4::MIN_HEADER_LEN..UDP_HEADERS + n],
            our_ip,
            *dst.ip(),
            src_port,
            dst.port(),
        );
        self.port.ip_ident = self.port.ip_ident.wrapping_add(1);
        ipv4::write_header(
            &mut data[eth::HEADER_LEN..],
            our_ip,
            *dst.ip(),
            ipv4::PROTO_UDP,
            udp::HEADER_LEN + n,
            self.port.ip_ident,
        );
        eth::EthHeader {
            dst: mac,
            src: self.port.addr.mac,
            ethertype: eth::ETHERTYPE_IPV4,
        }
        .write(data);
        b.set_len(UDP_HEADERS + n);
        queue_tx(self.port, b, c, self.now);
        true
    }
}

/// Queue `buf` for sending on `p`, counting `tx_full` when the queue stays full after
/// a flush.
pub(crate) fn queue_tx<I: PacketIo>(p: &mut Port<I>, buf: I::Buf, c: &CoreCounters, now: Instant) {
    if !try_queue_tx(p, buf, c, now) {
        c.drop_packet(DropReason::TxFull);
    }
}

/// Queue `buf` for sending on `p`; false (the frame dropped) when the queue stays full
/// after a flush.
pub(crate) fn try_queue_tx<I: PacketIo>(
    p: &mut Port<I>,
    buf: I::Buf,
    c: &CoreCounters,
    now: Instant,
) -> bool {
    if p.tx.len() >= TX_PENDING_MAX {
        flush(p, c);
        if p.tx.len() >= TX_PENDING_MAX {
            return false;
        }
    }
    if p.tx.is_empty() {
        p.tx_since = Some(now);
    }
    p.tx.push(buf);
    true
}

pub(crate) fn flush<I: PacketIo>(p: &mut Port<I>, c: &CoreCounters) {
    let bytes: usize = p.tx.iter().map(|b| b.data().len()).sum();
    let before = p.tx.len();
    let sent = p.io.tx_burst(&mut p.tx);
    let left: usize = p.tx.iter().map(|b| b.data().len()).sum();
    c.tx_packets.add(sent as u64);
    c.tx_bytes.add((bytes - left) as u64);
    debug_assert_eq!(before - sent, p.tx.len());
    if p.tx.is_empty() {
        p.tx_since = None;
    }
}

/// Make sure the gateway's MAC is known: send an ARP request for it when it is unknown
/// (rate-limited by the table) and check again every [`GATEWAY_REFRESH`].
pub(crate) fn refresh_gateway<I: PacketIo>(
    p: &mut Port<I>,
    c: &CoreCounters,
    now: Instant,
) -> bool {
    let Some(gw) = p.addr.gateway else {
        return false;
    };
    if p.gateway_checked.is_some_and(|t| now - t < GATEWAY_REFRESH) {
        return false;
    }
    match route(p, gw, c, now) {
        Some(_) => {
            p.gateway_checked = Some(now);
            false
        }
        None => true,
    }
}

/// The MAC to send to for `dst` on this port; when unknown, an ARP request is queued
/// (at most one per second per next hop) and `None` returned.
pub(crate) fn route<I: PacketIo>(
    p: &mut Port<I>,
    dst: Ipv4Addr,
    c: &CoreCounters,
    now: Instant,
) -> Option<eth::MacAddr> {
    let hop = p.addr.next_hop(dst)?;
    match p.neigh.resolve(hop, now) {
        Resolution::Known(mac) => Some(mac),
        Resolution::SendRequest => {
            match p.io.alloc() {
                Some(mut b) => {
                    let room = b.capacity();
                    if b.set_len(room.min(64)) {
                        if let Some(len) =
                            arp::write_request(b.data_mut(), p.addr.mac, p.addr.ip, hop)
                        {
                            b.set_len(len);
                            c.arp_requests_sent.inc();
                            queue_tx(p, b, c, now);
                        }
                    }
                }
                None => c.drop_packet(DropReason::PoolExhausted),
            }
            None
        }
        Resolution::Pending | Resolution::TableFull => None,
    }
}
