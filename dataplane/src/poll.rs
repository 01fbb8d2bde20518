//! The per-core poll loop: the scheduling. One bounded iteration drains commands from
//! the control core, takes one rx burst per port and dispatches each frame (media to the
//! conference engine or the relay, answers and punts through [`crate::net`]), takes
//! packets handed over by other cores, runs due mixing ticks, then the exception path
//! (bounded punt and inject work), gateway resolution and the tx drain timer. Nothing
//! allocates, locks or logs after construction.

use crate::clock::{Clock, Instant};
use crate::conference::{Engine, MediaCommand};
use crate::host::Owner;
use crate::host::{CoreEvent, Uplink};
use crate::io::{PacketBuf, PacketIo, RingRx, RingTx, BURST};
use crate::net::arp;
use crate::net::classify::{classify, Verdict};
use crate::net::egress::{flush, queue_tx, refresh_gateway, try_queue_tx, Port, PortTx};
use crate::net::exception::{Exception, ExceptionConfig};
use crate::relay::{Datagram, Relay, RelayCommand};
use crate::stats::{CoreCounters, DropReason, ExceptionDrop};
use crate::wire::udp;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Arc;

pub use crate::net::egress::{GATEWAY_REFRESH, TX_DRAIN};
pub use crate::net::PortAddr;

/// Commands applied per iteration at most.
const COMMANDS_PER_ITERATION: usize = 16;

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
    up: Uplink,
}

impl<I: PacketIo> PollLoop<I> {
    /// A loop over `ports` (one queue pair of each, with its addressing), running the
    /// conferences of `engine` (their media goes out on the first port), reporting up
    /// `up`.
    pub fn new(
        ports: Vec<(I, PortAddr)>,
        counters: Arc<CoreCounters>,
        commands: rtrb::Consumer<Command>,
        idle_sleep_us: u32,
        engine: Engine,
        handoff: Handoff<I::Buf>,
        up: Uplink,
    ) -> Self {
        PollLoop {
            ports: ports
                .into_iter()
                .map(|(io, addr)| Port::new(io, addr))
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
            up,
        }
    }

    /// Relay gateway clients too (their ports come from the same range as the
    /// conferences'; relayed packets go out on the first port).
    pub fn with_relay(mut self, relay: Relay<I::Buf>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Send what port `port` does not consume to the kernel through `io` (this core's
    /// queue pair of the port's exception device), and what the kernel sends there out of
    /// the port, within `cfg`'s bounds. Ignored for a port index that does not exist.
    pub fn with_exception(mut self, port: usize, io: I, cfg: ExceptionConfig) -> Self {
        if let Some(p) = self.ports.get_mut(port) {
            p.exception = Some(Exception::new(io, cfg));
        }
        self
    }

    /// The kernel-side queue pair of port `i`'s exception path, if it has one.
    pub fn exception_io_mut(&mut self, i: usize) -> Option<&mut I> {
        self.ports
            .get_mut(i)
            .and_then(|p| p.exception.as_mut())
            .map(Exception::io_mut)
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
            worked |= exchange_with_kernel(p, &mut self.rx, c, now);
            worked |= refresh_gateway(p, c, now);
            worked |= p.drain_due(c, now);
        }
        self.send_events_up();
        worked
    }

    /// Moves the engines' queued events up, as far as the ring has room (the rest wait
    /// in the engines' queues).
    fn send_events_up(&mut self) {
        for _ in 0..self.up.events.slots() {
            let ev = match self.engine.poll_event() {
                Some(e) => CoreEvent::Media(e),
                None => match self.relay.as_mut().and_then(Relay::poll_event) {
                    Some(e) => CoreEvent::Relay(e),
                    None => break,
                },
            };
            if self.up.events.push(ev).is_err() {
                break;
            }
        }
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
                Command::Media(m) => self.engine.apply(m, now, &mut self.up.retired),
                // Relay commands are only sent to cores built with a relay.
                Command::Relay(r) => {
                    if let Some(relay) = self.relay.as_mut() {
                        relay.apply(r, now, &mut self.up.retired);
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
        Ok(Verdict::ArpRequest(a)) => {
            if let Some(x) = p.exception.as_mut() {
                x.punt_copy(buf.data(), now, c);
            }
            match arp::answer(&mut buf, &a, &p.addr, c) {
                Ok(_) => queue_tx(p, buf, c, now),
                Err(reason) => c.drop_packet(reason),
            }
        }
        Ok(Verdict::Kernel(reason)) => to_kernel(p, buf, reason, c, now),
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
                let payload = buf.data_mut().get_mut(start..end).unwrap_or(&mut []);
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
            // Not a media port: the kernel's (SIP on 5060, ...).
            Owner::Nobody if !handed_over => {
                to_kernel(p, buf, Some(DropReason::NoListener), c, now)
            }
            Owner::Core(_) | Owner::Nobody => c.drop_packet(DropReason::NoListener),
        },
        Err(reason) => c.drop_packet(reason),
    }
}

/// Hand a frame to the port's exception path; without one, drop it for `reason` (or use
/// it up uncounted when `None`).
fn to_kernel<I: PacketIo>(
    p: &mut Port<I>,
    buf: I::Buf,
    reason: Option<DropReason>,
    c: &CoreCounters,
    now: Instant,
) {
    match p.exception.as_mut() {
        Some(x) => x.punt(buf, now, c),
        None => {
            if let Some(r) = reason {
                c.drop_packet(r);
            }
        }
    }
}

/// The exception work of one iteration on one port: write queued punts to the kernel,
/// and send what the kernel wrote out of the NIC, both within their budgets. Returns
/// true if it moved anything.
fn exchange_with_kernel<I: PacketIo>(
    p: &mut Port<I>,
    rx: &mut Vec<I::Buf>,
    c: &CoreCounters,
    now: Instant,
) -> bool {
    let Some(x) = p.exception.as_mut() else {
        return false;
    };
    let punted = x.flush(c);
    let n = x.receive(rx, now);
    for buf in rx.drain(..) {
        if arp::is_kernel_duplicate(buf.data(), &p.addr) {
            c.drop_exception(ExceptionDrop::ArpDuplicate);
        } else if try_queue_tx(p, buf, c, now) {
            c.exception_injected.inc();
        } else {
            c.drop_exception(ExceptionDrop::NicTxFull);
        }
    }
    punted || n > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{MemBuf, MemoryIo};
    use crate::neigh::Resolution;
    use crate::wire::{arp, checksum, eth, icmp, ipv4, udp};
    use core::net::{Ipv4Addr, SocketAddrV4};

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
        Engine::new(crate::host::CorePorts::single(0..=0), 0, Arc::default())
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
            crate::host::uplink(4, 4).0,
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

    /// Two cores sharing one port table, as the appliance runs them.
    struct TwoCores {
        loops: Vec<(PollLoop<MemoryIo>, Arc<CoreCounters>)>,
        cmds: Vec<rtrb::Producer<Command>>,
        ups: Vec<crate::host::UplinkRx>,
        engines: Vec<Arc<crate::conference::EngineCounters>>,
    }

    const T0: Instant = Instant::from_nanos(1_000);

    impl TwoCores {
        fn new() -> TwoCores {
            let table = crate::host::PortTable::shared(20000..=21999);
            let mut mesh = Handoff::mesh(2, |_, _| -> Result<RingPair<MemBuf>, ()> {
                let (tx, rx) = rtrb::RingBuffer::new(8);
                Ok((Box::new(tx), Box::new(rx)))
            })
            .unwrap()
            .into_iter();
            let mut all = TwoCores {
                loops: Vec::new(),
                cmds: Vec::new(),
                ups: Vec::new(),
                engines: Vec::new(),
            };
            for core in 0..2 {
                let (tx, rx) = command_ring(8);
                let ec = Arc::new(crate::conference::EngineCounters::default());
                let ports = crate::host::CorePorts::new(table.clone(), core);
                let engine = Engine::new(ports, 4, ec.clone());
                let c = Arc::new(CoreCounters::default());
                let (up, up_rx) = crate::host::uplink(64, 8);
                let l = PollLoop::new(
                    vec![(MemoryIo::new(64, 2048), addr(None))],
                    c.clone(),
                    rx,
                    0,
                    engine,
                    mesh.next().unwrap(),
                    up,
                );
                all.loops.push((l, c));
                all.cmds.push(tx);
                all.ups.push(up_rx);
                all.engines.push(ec);
            }
            all
        }

        fn command(&mut self, core: usize, cmd: MediaCommand) {
            assert!(self.cmds[core].push(Command::Media(cmd)).is_ok());
            step(&mut self.loops[core].0, T0);
        }

        /// Conference `key` on `core`.
        fn conference(&mut self, core: usize, key: u32) {
            use crate::conference::{Conference, ConferenceSpec};
            let spec = ConferenceSpec {
                key: ConfKey(key),
                ptime: crate::mixer::Ptime::Ms20,
                rate: crate::rate::SampleRate::Hz8000,
                active_speakers: crate::mixer::ActiveSpeakers::All,
                max_participants: 2,
                timing: Default::default(),
            };
            self.command(
                core,
                MediaCommand::AddConference(Conference::new(spec).unwrap()),
            );
        }

        /// Participant 1 on local port 21000 in conference `conf` on `core`.
        fn participant(&mut self, core: usize, conf: u32) {
            use crate::codec::CodecKind;
            use crate::conference::{Participant, ParticipantSettings, ParticipantSpec};
            let part = ParticipantSpec {
                conf: ConfKey(conf),
                key: PartKey(1),
                local_port: 21000,
                remote: SocketAddrV4::new(PEER_IP, 4000),
                codec: CodecKind::Pcmu,
                payload_types: crate::rx::PayloadTypes::negotiated(CodecKind::Pcmu, None, None),
                rtcp: false,
                ssrc: 7,
                settings: ParticipantSettings::default(),
                liveness: Default::default(),
                srtp: None,
            };
            let p = Participant::new(part, T0, crate::rx::rtcp::NtpClock::default()).unwrap();
            self.command(core, MediaCommand::AddParticipant(p));
        }

        /// An RTP datagram for port 21000 arrives on `core`'s queue (sequence `seq`).
        fn rtp_to(&mut self, core: usize, seq: u8) {
            let mut rtp = vec![0x80u8, 0, 0, seq, 0, 0, seq, 0, 0, 0, 0, 9];
            rtp.extend_from_slice(&[0xff; 160]);
            let mut seg = vec![0u8; 8 + rtp.len()];
            seg[8..].copy_from_slice(&rtp);
            udp::write_header(&mut seg, PEER_IP, OUR_IP, 4000, 21000);
            let frame = ipv4_frame(ipv4::PROTO_UDP, &seg, OUR_IP);
            assert!(self.loops[core].0.io_mut(0).unwrap().inject(&frame));
            step(&mut self.loops[core].0, T0);
        }

        fn drops(&self) -> u64 {
            self.loops.iter().map(|(_, c)| c.drops_total()).sum()
        }
    }

    use crate::conference::{ConfKey, MediaCommand, PartKey};

    #[test]
    fn datagrams_for_another_cores_port_are_handed_over() {
        let mut two = TwoCores::new();
        two.conference(1, 1);
        two.participant(1, 1);
        two.rtp_to(0, 1);
        assert_eq!(two.loops[0].1.handoff_out.get(), 1);
        assert_eq!(two.engines[0].rtp_in.get(), 0, "core 0 does not handle it");
        step(&mut two.loops[1].0, T0);
        assert_eq!(two.loops[1].1.handoff_in.get(), 1);
        assert_eq!(two.engines[1].rtp_in.get(), 1, "the owner handled it");
        assert_eq!(two.drops(), 0);
    }

    #[test]
    fn a_moved_call_takes_its_port_to_the_new_core() {
        use crate::conference::ParticipantSettings;
        use crate::host::Retired;
        let mut two = TwoCores::new();
        two.conference(1, 1);
        two.conference(1, 3);
        two.conference(0, 2);
        two.participant(1, 1);
        two.rtp_to(1, 1);
        assert_eq!(two.engines[1].rtp_in.get(), 1);

        // On one core: conference 1 -> 3, between two iterations; its port stays.
        let settings = ParticipantSettings::default();
        let to = |to: u32| MediaCommand::MoveParticipant {
            conf: ConfKey(to / 10),
            part: PartKey(1),
            to: ConfKey(to % 10),
            settings,
        };
        two.command(1, to(13));
        assert!(two.ups[1].retired.pop().is_err(), "nothing left the core");
        two.rtp_to(1, 2);
        assert_eq!(two.engines[1].rtp_in.get(), 2);

        // To the other core: it leaves core 1 (its port is nobody's meanwhile: the
        // datagram is dropped where it arrives) ...
        two.command(1, to(32));
        let Ok(Retired::Moving(p)) = two.ups[1].retired.pop() else {
            panic!("the participant went up to be sent on");
        };
        assert_eq!((p.key(), p.conf()), (PartKey(1), ConfKey(2)));
        two.rtp_to(1, 3);
        assert_eq!((two.engines[1].rtp_in.get(), two.drops()), (2, 1));
        // ... and once core 0 links it in, core 1 hands its datagrams over.
        two.command(0, MediaCommand::AddParticipant(p));
        two.rtp_to(1, 4);
        assert_eq!(two.loops[1].1.handoff_out.get(), 1);
        step(&mut two.loops[0].0, T0);
        assert_eq!(two.engines[0].rtp_in.get(), 1, "the new core handled it");
        assert_eq!(two.engines[0].participants.get(), 1);
        assert_eq!(two.engines[1].participants.get(), 0);

        // Moving a participant that is not there is refused, and nothing moves.
        two.command(1, to(32));
        assert_eq!(two.engines[1].commands_rejected.get(), 1);
        assert!(two.ups[1].retired.pop().is_err());
    }
}
