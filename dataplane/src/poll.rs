//! The per-core poll loop: rx burst, classify, answer ARP and ICMP echo, count and drop
//! everything else, tx burst with a drain timer, drain commands from the control core.
//! Bounded work per iteration; nothing allocates, locks or logs after construction.

use crate::clock::{Clock, Instant};
use crate::conference::{Engine, MediaCommand, Owner, Transmit};
use crate::io::{PacketBuf, PacketIo, RingRx, RingTx, BURST};
use crate::neigh::{NeighTable, Resolution};
use crate::relay::{Datagram, Relay, RelayCommand, RelayPort};
use crate::stats::{CoreCounters, DropReason};
use crate::wire::{arp, eth, icmp, ipv4, udp};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Arc;

/// Pending tx packets are flushed at the latest this long after the first was queued.
pub const TX_DRAIN: Duration = Duration::from_micros(100);
/// The loop re-resolves its gateway this often, so the first packet routed through it
/// does not wait for ARP.
pub const GATEWAY_REFRESH: Duration = Duration::from_secs(30);
/// Commands applied per iteration at most.
const COMMANDS_PER_ITERATION: usize = 16;
/// Pending tx packets at most; beyond this the newest are dropped as `tx_full`.
const TX_PENDING_MAX: usize = 4 * BURST;

/// Addressing of one port, as the dataplane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAddr {
    pub mac: eth::MacAddr,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl PortAddr {
    /// True when `dst` is on this port's subnet.
    pub fn on_link(&self, dst: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len.min(32)))
            .unwrap_or(0);
        u32::from(dst) & mask == u32::from(self.ip) & mask
    }

    /// The next hop towards `dst`: itself when on-link, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

/// What the control core can tell a dataplane core.
pub enum Command {
    /// Finish the current iteration, flush, and return from [`PollLoop::run`].
    Stop,
    /// Change the idle back-off (microseconds; 0 = pure polling).
    SetIdleSleep(u32),
    /// A conference operation, its state already built on the control core.
    Media(MediaCommand),
    /// A gateway relay operation, its state already built on the control core.
    Relay(RelayCommand),
}

/// The rings that hand packets between cores: a datagram that arrived on this core's
/// queue for a UDP port another core owns goes to that core (RSS cannot know which
/// conference a port belongs to). DPDK rte_rings in production, rtrb rings in tests.
pub struct Handoff<B> {
    /// To each other core (`None` at our own index).
    pub to: Vec<Option<Box<dyn RingTx<B>>>>,
    /// From each other core.
    pub from: Vec<Box<dyn RingRx<B>>>,
}

/// Both ends of one ring, from core `from` to core `to`.
pub type RingPair<B> = (Box<dyn RingTx<B>>, Box<dyn RingRx<B>>);

impl<B> Handoff<B> {
    /// No other cores.
    pub fn none() -> Handoff<B> {
        Handoff {
            to: Vec::new(),
            from: Vec::new(),
        }
    }

    /// A full mesh for `cores` cores, each ring made by `make(from, to)`; element `i` is
    /// core i's.
    pub fn mesh<E>(
        cores: usize,
        mut make: impl FnMut(usize, usize) -> Result<RingPair<B>, E>,
    ) -> Result<Vec<Handoff<B>>, E> {
        let mut all: Vec<Handoff<B>> = (0..cores)
            .map(|_| Handoff {
                to: (0..cores).map(|_| None).collect(),
                from: Vec::with_capacity(cores.saturating_sub(1)),
            })
            .collect();
        for from in 0..cores {
            for to in 0..cores {
                if from != to {
                    let (tx, rx) = make(from, to)?;
                    all[from].to[to] = Some(tx);
                    all[to].from.push(rx);
                }
            }
        }
        Ok(all)
    }
}

/// Make the command ring between the control core and one dataplane core.
pub fn command_ring(capacity: usize) -> (rtrb::Producer<Command>, rtrb::Consumer<Command>) {
    rtrb::RingBuffer::new(capacity)
}

struct Port<I: PacketIo> {
    io: I,
    addr: PortAddr,
    neigh: NeighTable,
    tx: Vec<I::Buf>,
    tx_since: Option<Instant>,
    gateway_checked: Option<Instant>,
    ip_ident: u16,
}

/// One dataplane core's loop over its queue pair on each port.
pub struct PollLoop<I: PacketIo> {
    ports: Vec<Port<I>>,
    counters: Arc<CoreCounters>,
    commands: rtrb::Consumer<Command>,
    rx: Vec<I::Buf>,
    idle_sleep: Duration,
    stopping: bool,
    last_end: Option<Instant>,
    engine: Engine,
    relay: Option<Relay<I::Buf>>,
    handoff: Handoff<I::Buf>,
}

impl<I: PacketIo> PollLoop<I> {
    /// A loop over `ports` (one queue pair of each, with its addressing), running the
    /// conferences of `engine` (their media goes out on the first port).
    pub fn new(
        ports: Vec<(I, PortAddr)>,
        counters: Arc<CoreCounters>,
        commands: rtrb::Consumer<Command>,
        idle_sleep_us: u32,
        engine: Engine,
        handoff: Handoff<I::Buf>,
    ) -> Self {
        PollLoop {
            ports: ports
                .into_iter()
                .map(|(io, addr)| Port {
                    io,
                    addr,
                    neigh: NeighTable::new(1024),
                    tx: Vec::with_capacity(TX_PENDING_MAX),
                    tx_since: None,
                    gateway_checked: None,
                    ip_ident: 0,
                })
                .collect(),
            counters,
            commands,
            rx: Vec::with_capacity(BURST),
            idle_sleep: Duration::from_micros(u64::from(idle_sleep_us)),
            stopping: false,
            last_end: None,
            engine,
            relay: None,
            handoff,
        }
    }

    /// Relay gateway clients too (their ports come from the same range as the
    /// conferences'; relayed packets go out on the first port).
    pub fn with_relay(mut self, relay: Relay<I::Buf>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// The queue pair of port `i` (tests and benchmarks inspect the memory backend).
    pub fn io_mut(&mut self, i: usize) -> Option<&mut I> {
        self.ports.get_mut(i).map(|p| &mut p.io)
    }

    /// Run until a [`Command::Stop`] arrives or `stop` is set; flushes before returning.
    pub fn run(&mut self, clock: &impl Clock, stop: &AtomicBool) {
        while !self.stopping && !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            let worked = self.run_once(now, clock);
            let end = clock.now();
            self.account(now, end, worked);
            if !worked && !self.idle_sleep.is_zero() {
                std::thread::sleep(self.idle_sleep);
            }
        }
        for p in &mut self.ports {
            flush(p, &self.counters);
        }
    }

    fn account(&mut self, start: Instant, end: Instant, worked: bool) {
        let c = &self.counters;
        c.iterations.inc();
        if worked {
            c.busy_ns.add((end - start).as_nanos() as u64);
        }
        let since = self.last_end.unwrap_or(start);
        c.total_ns.add((end - since).as_nanos() as u64);
        self.last_end = Some(end);
    }

    /// One bounded iteration at time `now`: commands, one rx burst per port, packets
    /// handed over by other cores, due conference ticks, timers, tx. `clock` measures how
    /// long ticks take. Returns true if it moved any packet or command.
    pub fn run_once(&mut self, now: Instant, clock: &impl Clock) -> bool {
        let mut worked = self.drain_commands(now);
        let c = &self.counters;
        for p in &mut self.ports {
            let n = p.io.rx_burst(&mut self.rx, BURST);
            worked |= n > 0;
            for buf in self.rx.drain(..) {
                c.rx_packets.inc();
                c.rx_bytes.add(buf.data().len() as u64);
                let hosts = Hosts {
                    engine: &mut self.engine,
                    relay: self.relay.as_mut(),
                };
                process(buf, p, hosts, &mut self.handoff.to, c, now, false);
            }
        }
        if let Some(p) = self.ports.first_mut() {
            for ring in &mut self.handoff.from {
                for _ in 0..BURST {
                    let Some(buf) = ring.pop() else { break };
                    worked = true;
                    c.handoff_in.inc();
                    let hosts = Hosts {
                        engine: &mut self.engine,
                        relay: self.relay.as_mut(),
                    };
                    process(buf, p, hosts, &mut self.handoff.to, c, now, true);
                }
            }
            if let Some(relay) = self.relay.as_mut() {
                if relay.poll_timeout().is_some_and(|t| t <= now) {
                    relay.poll(
                        now,
                        &mut PortTx {
                            port: p,
                            counters: c,
                            now,
                        },
                    );
                    worked = true;
                }
            }
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                let mut tx = PortTx {
                    port: p,
                    counters: c,
                    now,
                };
                self.engine.poll(now, &mut tx, &|| clock.now());
                worked = true;
            }
        }
        for p in &mut self.ports {
            worked |= refresh_gateway(p, c, now);
            if !p.tx.is_empty()
                && (p.tx.len() >= BURST || p.tx_since.is_some_and(|t| now - t >= TX_DRAIN))
            {
                flush(p, c);
                worked = true;
            }
        }
        worked
    }

    /// True once a [`Command::Stop`] was applied.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    fn drain_commands(&mut self, now: Instant) -> bool {
        let mut any = false;
        for _ in 0..COMMANDS_PER_ITERATION {
            let Ok(cmd) = self.commands.pop() else {
                break;
            };
            any = true;
            match cmd {
                Command::Stop => self.stopping = true,
                Command::SetIdleSleep(us) => {
                    self.idle_sleep = Duration::from_micros(u64::from(us));
                }
                Command::Media(m) => self.engine.apply(m, now),
                // Relay commands are only sent to cores built with a relay.
                Command::Relay(r) => {
                    if let Some(relay) = self.relay.as_mut() {
                        relay.apply(r, now);
                    }
                }
            }
        }
        any
    }
}

/// What a core hosts: conferences, and gateway clients when it relays.
struct Hosts<'a, B> {
    engine: &'a mut Engine,
    relay: Option<&'a mut Relay<B>>,
}

/// Handle one received (or handed-over) frame.
fn process<I: PacketIo>(
    mut buf: I::Buf,
    p: &mut Port<I>,
    hosts: Hosts<'_, I::Buf>,
    handoff: &mut [Option<Box<dyn RingTx<I::Buf>>>],
    c: &CoreCounters,
    now: Instant,
    handed_over: bool,
) {
    match classify(&mut buf, &p.addr, &mut p.neigh, now, c) {
        Ok(Verdict::Reply) => queue_tx(p, buf, c, now),
        Ok(Verdict::Consumed) => {}
        Ok(Verdict::Udp {
            src,
            dst_port,
            start,
            end,
        }) => match hosts.engine.owner(dst_port) {
            Owner::Local if hosts.relay.as_ref().is_some_and(|r| r.owns(dst_port)) => {
                if let Some(relay) = hosts.relay {
                    let d = Datagram {
                        src,
                        dst_port,
                        udp_at: start - udp::HEADER_LEN,
                        end,
                    };
                    relay.handle(
                        now,
                        buf,
                        d,
                        &mut PortTx {
                            port: p,
                            counters: c,
                            now,
                        },
                    );
                }
            }
            Owner::Local => {
                let engine = hosts.engine;
                let payload = buf.data().get(start..end).unwrap_or(&[]);
                if !engine.handle_udp(now, src, dst_port, payload) {
                    c.drop_packet(DropReason::NoListener);
                }
            }
            Owner::Core(k) if !handed_over => match handoff.get_mut(k).and_then(Option::as_mut) {
                Some(ring) => {
                    if ring.push(buf).is_err() {
                        c.drop_packet(DropReason::HandoffFull);
                    } else {
                        c.handoff_out.inc();
                    }
                }
                None => c.drop_packet(DropReason::NoListener),
            },
            Owner::Core(_) | Owner::Nobody => c.drop_packet(DropReason::NoListener),
        },
        Err(reason) => c.drop_packet(reason),
    }
}

/// The engine's way out: UDP datagrams built in place in a fresh buffer and queued on the
/// first port, next hop resolved by ARP.
struct PortTx<'a, I: PacketIo> {
    port: &'a mut Port<I>,
    counters: &'a CoreCounters,
    now: Instant,
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

fn queue_tx<I: PacketIo>(p: &mut Port<I>, buf: I::Buf, c: &CoreCounters, now: Instant) {
    if p.tx.len() >= TX_PENDING_MAX {
        flush(p, c);
        if p.tx.len() >= TX_PENDING_MAX {
            c.drop_packet(DropReason::TxFull);
            return;
        }
    }
    if p.tx.is_empty() {
        p.tx_since = Some(now);
    }
    p.tx.push(buf);
}

fn flush<I: PacketIo>(p: &mut Port<I>, c: &CoreCounters) {
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
fn refresh_gateway<I: PacketIo>(p: &mut Port<I>, c: &CoreCounters, now: Instant) -> bool {
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
fn route<I: PacketIo>(
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

/// What became of a received frame that was not dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// It was turned into a reply in place: send it.
    Reply,
    /// It was used up (an ARP reply we learned from).
    Consumed,
    /// A valid UDP datagram to our address: payload at `start..end` of the frame.
    Udp {
        src: SocketAddrV4,
        dst_port: u16,
        start: usize,
        end: usize,
    },
}

/// Decide what to do with one received frame: answer it in place, use it up, or drop it
/// with a reason.
fn classify<B: PacketBuf>(
    buf: &mut B,
    addr: &PortAddr,
    neigh: &mut NeighTable,
    now: Instant,
    c: &CoreCounters,
) -> Result<Verdict, DropReason> {
    let frame = buf.data_mut();
    let eh = eth::EthHeader::parse(frame).ok_or(DropReason::Malformed)?;
    if eh.dst != addr.mac && eh.dst != eth::MacAddr::BROADCAST {
        return Err(DropReason::NotForUs);
    }
    match eh.ethertype {
        eth::ETHERTYPE_ARP => {
            let body = frame.get(eth::HEADER_LEN..).ok_or(DropReason::Malformed)?;
            let a = arp::Arp::parse(body).ok_or(DropReason::UnsupportedArp)?;
            if a.target_ip != addr.ip {
                return Err(DropReason::UnsupportedArp);
            }
            // RFC 826: update or add the sender's mapping when the packet is for us.
            neigh.learn(a.sender_ip, a.sender_mac, now);
            match a.op {
                arp::OP_REQUEST => {
                    arp::reply_in_place(frame, &a, addr.mac);
                    c.arp_replies_sent.inc();
                    trim(buf, eth::HEADER_LEN + arp::LEN)
                }
                // A reply has been learned from; nothing to send.
                arp::OP_REPLY => Ok(Verdict::Consumed),
                _ => Err(DropReason::UnsupportedArp),
            }
        }
        eth::ETHERTYPE_IPV4 => {
            let ip_pkt = frame
                .get_mut(eth::HEADER_LEN..)
                .ok_or(DropReason::Malformed)?;
            let ih = ipv4::Ipv4Header::parse(ip_pkt).map_err(|e| match e {
                ipv4::Ipv4Error::Malformed => DropReason::Malformed,
                ipv4::Ipv4Error::BadChecksum => DropReason::BadChecksum,
            })?;
            if ih.dst != addr.ip {
                return Err(DropReason::NotOurIp);
            }
            if addr.on_link(ih.src) {
                neigh.learn(ih.src, eh.src, now);
            }
            if ih.is_fragment {
                return Err(DropReason::Fragment);
            }
            let l4 = ip_pkt
                .get_mut(ih.header_len..ih.total_len)
                .ok_or(DropReason::Malformed)?;
            match ih.protocol {
                ipv4::PROTO_ICMP => {
                    if icmp::message_type(l4) != Some(icmp::ECHO_REQUEST) {
                        return Err(DropReason::UnsupportedIcmp);
                    }
                    icmp::echo_reply_in_place(l4);
                    ipv4::reply_in_place(ip_pkt);
                    let e = eth::EthHeader {
                        dst: eh.src,
                        src: addr.mac,
                        ethertype: eth::ETHERTYPE_IPV4,
                    };
                    e.write(frame);
                    c.icmp_echo_replies.inc();
                    trim(buf, eth::HEADER_LEN + ih.total_len)
                }
                ipv4::PROTO_UDP => {
                    let uh = udp::UdpHeader::parse(l4).ok_or(DropReason::Malformed)?;
                    if !uh.checksum_ok(ih.src, ih.dst, l4) {
                        return Err(DropReason::BadChecksum);
                    }
                    let start = eth::HEADER_LEN + ih.header_len + udp::HEADER_LEN;
                    Ok(Verdict::Udp {
                        src: SocketAddrV4::new(ih.src, uh.src_port),
                        dst_port: uh.dst_port,
                        start,
                        end: eth::HEADER_LEN + ih.header_len + uh.len,
                    })
                }
                _ => Err(DropReason::UnsupportedProtocol),
            }
        }
        _ => Err(DropReason::UnsupportedEthertype),
    }
}

/// Cut Ethernet padding off a reply so it is sent at its real length.
fn trim<B: PacketBuf>(buf: &mut B, len: usize) -> Result<Verdict, DropReason> {
    if buf.set_len(len) {
        Ok(Verdict::Reply)
    } else {
        Err(DropReason::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{MemBuf, MemoryIo};
    use crate::wire::checksum;

    const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
    const PEER_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 2]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn addr(gateway: Option<Ipv4Addr>) -> PortAddr {
        PortAddr {
            mac: OUR_MAC,
            ip: OUR_IP,
            prefix_len: 24,
            gateway,
        }
    }

    fn step(l: &mut PollLoop<MemoryIo>, t: Instant) -> bool {
        l.run_once(t, &crate::clock::VirtualClock::new(t))
    }

    /// An engine with no conferences and no ports of its own.
    fn no_conferences() -> Engine {
        let (events, _) = rtrb::RingBuffer::new(4);
        let (retired, _) = rtrb::RingBuffer::new(4);
        Engine::new(0, Vec::new(), 0, events, retired, Arc::default())
    }

    fn lp(
        gateway: Option<Ipv4Addr>,
    ) -> (
        PollLoop<MemoryIo>,
        rtrb::Producer<Command>,
        Arc<CoreCounters>,
    ) {
        let (tx, rx) = command_ring(8);
        let c = Arc::new(CoreCounters::default());
        let l = PollLoop::new(
            vec![(MemoryIo::new(64, 2048), addr(gateway))],
            c.clone(),
            rx,
            0,
            no_conferences(),
            Handoff::none(),
        );
        (l, tx, c)
    }

    fn ipv4_frame(proto: u8, l4: &[u8], dst_ip: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + l4.len()];
        eth::EthHeader {
            dst: OUR_MAC,
            src: PEER_MAC,
            ethertype: eth::ETHERTYPE_IPV4,
        }
        .write(&mut f);
        ipv4::write_header(&mut f[14..], PEER_IP, dst_ip, proto, l4.len(), 1);
        f[34..].copy_from_slice(l4);
        f
    }

    fn echo_request() -> Vec<u8> {
        let mut m = vec![8u8, 0, 0, 0, 0xab, 0xcd, 0, 7, 1, 2, 3, 4, 5];
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    fn sent(l: &mut PollLoop<MemoryIo>) -> Vec<Vec<u8>> {
        l.io_mut(0)
            .unwrap()
            .tx
            .drain(..)
            .map(|b| b.data().to_vec())
            .collect()
    }

    #[test]
    fn answers_arp_request_and_learns_sender() {
        let (mut l, _tx, c) = lp(None);
        let mut f = vec![0u8; 60]; // padded to the Ethernet minimum
        arp::write_request(&mut f, PEER_MAC, PEER_IP, OUR_IP).unwrap();
        assert!(l.io_mut(0).unwrap().inject(&f));
        let t = Instant::from_nanos(1_000);
        assert!(step(&mut l, t));
        assert!(
            l.io_mut(0).unwrap().tx.is_empty(),
            "held until the drain timer"
        );
        step(&mut l, t + TX_DRAIN);
        let out = sent(&mut l);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 42);
        let a = arp::Arp::parse(&out[0][14..]).unwrap();
        assert_eq!(
            (a.op, a.sender_mac, a.sender_ip),
            (arp::OP_REPLY, OUR_MAC, OUR_IP)
        );
        assert_eq!(c.arp_replies_sent.get(), 1);
        assert_eq!(c.tx_packets.get(), 1);
        assert_eq!(c.tx_bytes.get(), 42);
        assert_eq!(
            l.ports[0].neigh.resolve(PEER_IP, t),
            Resolution::Known(PEER_MAC)
        );
    }

    #[test]
    fn answers_ping_with_valid_reply() {
        let (mut l, _tx, c) = lp(None);
        let req = echo_request();
        l.io_mut(0)
            .unwrap()
            .inject(&ipv4_frame(ipv4::PROTO_ICMP, &req, OUR_IP));
        step(&mut l, Instant::from_nanos(1));
        step(&mut l, Instant::from_nanos(1) + TX_DRAIN);
        let out = sent(&mut l);
        assert_eq!(out.len(), 1);
        let eh = eth::EthHeader::parse(&out[0]).unwrap();
        assert_eq!((eh.dst, eh.src), (PEER_MAC, OUR_MAC));
        let ih = ipv4::Ipv4Header::parse(&out[0][14..]).unwrap();
        assert_eq!((ih.src, ih.dst), (OUR_IP, PEER_IP));
        let icmp_msg = &out[0][34..];
        assert_eq!(icmp::message_type(icmp_msg), Some(icmp::ECHO_REPLY));
        assert_eq!(&icmp_msg[4..], &req[4..]);
        assert_eq!(c.icmp_echo_replies.get(), 1);
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let (mut l, _tx, c) = lp(None);
        let mut udp_seg = vec![0u8; 8 + 4];
        udp::write_header(&mut udp_seg, PEER_IP, OUR_IP, 4000, 9999);
        let io = l.io_mut(0).unwrap();
        io.inject(&ipv4_frame(ipv4::PROTO_UDP, &udp_seg, OUR_IP));
        io.inject(&ipv4_frame(
            ipv4::PROTO_ICMP,
            &echo_request(),
            Ipv4Addr::new(198, 18, 0, 9),
        ));
        io.inject(&ipv4_frame(6, &[0; 20], OUR_IP));
        let mut bad = ipv4_frame(ipv4::PROTO_ICMP, &echo_request(), OUR_IP);
        bad[20] ^= 0xff; // corrupt the IP header
        io.inject(&bad);
        io.inject(&[0u8; 10]);
        let mut v6 = ipv4_frame(ipv4::PROTO_UDP, &udp_seg, OUR_IP);
        v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        io.inject(&v6);
        let mut other = ipv4_frame(ipv4::PROTO_UDP, &udp_seg, OUR_IP);
        other[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
        io.inject(&other);
        step(&mut l, Instant::from_nanos(5));
        assert_eq!(c.drops(DropReason::NoListener), 1);
        assert_eq!(c.drops(DropReason::NotOurIp), 1);
        assert_eq!(c.drops(DropReason::UnsupportedProtocol), 1);
        assert_eq!(c.drops(DropReason::BadChecksum), 1);
        assert_eq!(c.drops(DropReason::Malformed), 1);
        assert_eq!(c.drops(DropReason::UnsupportedEthertype), 1);
        assert_eq!(c.drops(DropReason::NotForUs), 1);
        assert_eq!(c.rx_packets.get(), 7);
        assert_eq!(c.drops_total(), 7);
    }

    #[test]
    fn resolves_gateway_by_arp_and_learns_the_reply() {
        let gw = Ipv4Addr::new(198, 18, 0, 254);
        let (mut l, _tx, c) = lp(Some(gw));
        let t = Instant::from_nanos(10);
        step(&mut l, t);
        step(&mut l, t + TX_DRAIN);
        let out = sent(&mut l);
        assert_eq!(out.len(), 1);
        let a = arp::Arp::parse(&out[0][14..]).unwrap();
        assert_eq!((a.op, a.target_ip), (arp::OP_REQUEST, gw));
        assert_eq!(c.arp_requests_sent.get(), 1);
        // No second request within the rate limit.
        step(&mut l, t + Duration::from_millis(500));
        assert!(sent(&mut l).is_empty());
        // The gateway answers; the entry is learned and requests stop.
        let gw_mac = eth::MacAddr([2, 0, 0, 0, 0, 0xfe]);
        let mut rep = vec![0u8; 42];
        eth::EthHeader {
            dst: OUR_MAC,
            src: gw_mac,
            ethertype: eth::ETHERTYPE_ARP,
        }
        .write(&mut rep);
        arp::Arp {
            op: arp::OP_REPLY,
            sender_mac: gw_mac,
            sender_ip: gw,
            target_mac: OUR_MAC,
            target_ip: OUR_IP,
        }
        .write(&mut rep[14..]);
        l.io_mut(0).unwrap().inject(&rep);
        step(&mut l, t + Duration::from_secs(2));
        step(&mut l, t + Duration::from_secs(3));
        assert!(sent(&mut l).is_empty());
        assert_eq!(
            l.ports[0].neigh.resolve(gw, t + Duration::from_secs(3)),
            Resolution::Known(gw_mac)
        );
        assert_eq!(c.arp_requests_sent.get(), 1);
    }

    #[test]
    fn stop_command_ends_run_and_flushes() {
        let (mut l, mut tx, c) = lp(None);
        l.io_mut(0)
            .unwrap()
            .inject(&ipv4_frame(ipv4::PROTO_ICMP, &echo_request(), OUR_IP));
        assert!(tx.push(Command::SetIdleSleep(0)).is_ok());
        assert!(tx.push(Command::Stop).is_ok());
        let clock = crate::clock::VirtualClock::new(Instant::from_nanos(1));
        l.run(&clock, &AtomicBool::new(false));
        assert!(l.stopping());
        assert_eq!(
            c.tx_packets.get(),
            1,
            "the pending reply was flushed on stop"
        );
        assert_eq!(c.iterations.get(), 1);
    }

    #[test]
    fn datagrams_for_another_cores_port_are_handed_over() {
        use crate::codec::CodecKind;
        use crate::conference::{
            ConfKey, Conference, ConferenceSpec, EngineCounters, MediaCommand, PartKey,
            Participant, ParticipantSettings, ParticipantSpec,
        };
        use crate::mixer::{ActiveSpeakers, Ptime};
        use crate::rx::rtcp::NtpClock;

        let ranges = vec![20000..=20999, 21000..=21999];
        let mut mesh = Handoff::mesh(2, |_, _| -> Result<RingPair<MemBuf>, ()> {
            let (tx, rx) = rtrb::RingBuffer::new(8);
            Ok((Box::new(tx), Box::new(rx)))
        })
        .unwrap()
        .into_iter();
        let mut loops = Vec::new();
        let mut cmds = Vec::new();
        let mut engines = Vec::new();
        for core in 0..2 {
            let (tx, rx) = command_ring(8);
            let (events, _) = rtrb::RingBuffer::new(64);
            let (retired, _) = rtrb::RingBuffer::new(8);
            let ec = Arc::new(EngineCounters::default());
            let engine = Engine::new(core, ranges.clone(), 4, events, retired, ec.clone());
            let c = Arc::new(CoreCounters::default());
            let l = PollLoop::new(
                vec![(MemoryIo::new(64, 2048), addr(None))],
                c.clone(),
                rx,
                0,
                engine,
                mesh.next().unwrap(),
            );
            loops.push((l, c));
            cmds.push(tx);
            engines.push(ec);
        }
        let t = Instant::from_nanos(1_000);
        let spec = ConferenceSpec {
            key: ConfKey(1),
            ptime: Ptime::Ms20,
            active_speakers: ActiveSpeakers::All,
            max_participants: 2,
            timing: Default::default(),
        };
        let part = ParticipantSpec {
            conf: ConfKey(1),
            key: PartKey(1),
            local_port: 21000,
            remote: SocketAddrV4::new(PEER_IP, 4000),
            codec: CodecKind::Pcmu,
            telephone_event_pt: None,
            rtcp: false,
            ssrc: 7,
            settings: ParticipantSettings::default(),
            liveness: Default::default(),
        };
        let conf = Conference::new(spec).unwrap();
        let p = Participant::new(part, t, NtpClock::default()).unwrap();
        assert!(cmds[1]
            .push(Command::Media(MediaCommand::AddConference(conf)))
            .is_ok());
        assert!(cmds[1]
            .push(Command::Media(MediaCommand::AddParticipant(p)))
            .is_ok());
        step(&mut loops[1].0, t);

        // An RTP datagram for core 1's port arrives on core 0's queue.
        let mut rtp = vec![0x80u8, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        rtp.extend_from_slice(&[0xff; 160]);
        let mut seg = vec![0u8; 8 + rtp.len()];
        seg[8..].copy_from_slice(&rtp);
        udp::write_header(&mut seg, PEER_IP, OUR_IP, 4000, 21000);
        assert!(loops[0]
            .0
            .io_mut(0)
            .unwrap()
            .inject(&ipv4_frame(ipv4::PROTO_UDP, &seg, OUR_IP)));
        step(&mut loops[0].0, t);
        assert_eq!(loops[0].1.handoff_out.get(), 1);
        assert_eq!(engines[0].rtp_in.get(), 0, "core 0 does not handle it");
        step(&mut loops[1].0, t);
        assert_eq!(loops[1].1.handoff_in.get(), 1);
        assert_eq!(engines[1].rtp_in.get(), 1, "the owner handled it");
        assert_eq!(loops[1].1.drops_total() + loops[0].1.drops_total(), 0);
    }

    #[test]
    fn next_hop_uses_gateway_off_link() {
        let a = addr(Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(a.next_hop(PEER_IP), Some(PEER_IP));
        assert_eq!(
            a.next_hop(Ipv4Addr::new(198, 19, 0, 1)),
            Some(Ipv4Addr::new(198, 18, 0, 254))
        );
        assert_eq!(addr(None).next_hop(Ipv4Addr::new(198, 19, 0, 1)), None);
        let all = PortAddr {
            prefix_len: 0,
            ..addr(None)
        };
        assert!(all.on_link(Ipv4Addr::new(1, 2, 3, 4)));
    }
}
