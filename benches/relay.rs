//! The gateway relay's cost per packet: the real `PollLoop` with a relay on the
//! in-memory backend, 1,000 relayed clients, bursts of 32 frames, timed with the
//! monotonic clock (the cost of injecting and recycling frames, measured alone, is
//! subtracted). Cases:
//!
//! * `client_to_mixer`: a client's RTP, timestamp mapped onto the timeline and
//!   readdressed to its mixer;
//! * `mixer_to_client`: a mixer's RTP readdressed to the client;
//! * `client_to_both`: during a handover, a client's RTP to both mixers (one copy);
//! * `splice`: during a handover, both mixers' streams through each client's splice
//!   (pairing, payload comparison, rewrite, delay): the cost per packet received, half
//!   of which (the new mixer's, until the cut-over) are compared and dropped.
//!
//! Prints one line per case: `relay case=<case> ns_per_packet=... packets=...`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};
use tutti_dataplane::clock::{Clock, Instant, VirtualClock};
use tutti_dataplane::conference::{ConfKey, Engine, PartKey};
use tutti_dataplane::host::CorePorts;
use tutti_dataplane::io::{MemoryIo, PacketIo, BURST};
use tutti_dataplane::mixer::Ptime;
use tutti_dataplane::poll::{command_ring, Command, Handoff, PollLoop, PortAddr};
use tutti_dataplane::relay::splice::{Splice, SpliceConfig};
use tutti_dataplane::relay::{
    Relay, RelayCommand, RelayCounters, RelaySession, RelaySpec, Timeline,
};
use tutti_dataplane::stats::CoreCounters;
use tutti_dataplane::wire::rewrite::RtpRewrite;
use tutti_dataplane::wire::{eth, ipv4, udp};

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 2]);
const CLIENTS: u16 = 1000;
const BURSTS: usize = 20_000;

fn client(i: u16) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(198, 18, 1 + (i / 250) as u8, 1 + (i % 250) as u8),
        4000,
    )
}
fn mixer_a(i: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 30000 + 2 * i)
}
fn mixer_b(i: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 12), 30000 + 2 * i)
}
fn client_port(i: u16) -> u16 {
    20000 + 4 * i
}

fn frame(src: SocketAddrV4, dst_port: u16, ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    let mut rtp = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rtp[2..4].copy_from_slice(&seq.to_be_bytes());
    rtp[4..8].copy_from_slice(&ts.to_be_bytes());
    rtp[8..12].copy_from_slice(&ssrc.to_be_bytes());
    rtp.extend((0..160u32).map(|k| (k as u8) ^ (ts as u8)));
    let mut f = vec![0u8; 42 + rtp.len()];
    f[42..].copy_from_slice(&rtp);
    udp::write_header(&mut f[34..], *src.ip(), OUR_IP, src.port(), dst_port);
    ipv4::write_header(
        &mut f[14..],
        *src.ip(),
        OUR_IP,
        ipv4::PROTO_UDP,
        8 + rtp.len(),
        1,
    );
    eth::EthHeader {
        dst: OUR_MAC,
        src: PEER_MAC,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(&mut f);
    f
}

struct Bench {
    lp: PollLoop<MemoryIo>,
    commands: rtrb::Producer<Command>,
    clock: VirtualClock,
    counters: Arc<RelayCounters>,
    _rings: tutti_dataplane::host::UplinkRx,
}

impl Bench {
    fn new() -> Bench {
        let (commands, rx) = command_ring(4096);
        let range = 20000..=29999;
        let ports = CorePorts::single(range);
        let engine = Engine::new(ports.clone(), 0, Arc::default());
        let (up, up_rx) = tutti_dataplane::host::uplink(1 << 20, 4096);
        let counters = Arc::new(RelayCounters::default());
        let relay = Relay::new(ports, usize::from(CLIENTS), counters.clone());
        let addr = PortAddr {
            mac: OUR_MAC,
            ip: OUR_IP,
            prefix_len: 16,
            gateway: None,
        };
        let lp = PollLoop::new(
            vec![(MemoryIo::new(4096, 2048), addr)],
            Arc::new(CoreCounters::default()),
            rx,
            0,
            engine,
            Handoff::none(),
            up,
        )
        .with_relay(relay);
        Bench {
            lp,
            commands,
            clock: VirtualClock::new(Instant::from_nanos(1_000_000_000)),
            counters,
            _rings: up_rx,
        }
    }

    fn command(&mut self, c: RelayCommand) {
        assert!(self.commands.push(Command::Relay(c)).is_ok());
        for _ in 0..64 {
            let now = self.clock.now();
            self.lp.run_once(now, &self.clock);
        }
    }

    /// Run `frames` through the loop in bursts; wall nanoseconds spent in the loop.
    fn run(&mut self, frames: &[Vec<u8>]) -> Duration {
        let mut spent = Duration::ZERO;
        for chunk in frames.chunks(BURST) {
            let io = self.lp.io_mut(0).expect("port");
            for f in chunk {
                io.inject(f);
            }
            let t0 = WallInstant::now();
            let now = self.clock.now();
            self.lp.run_once(now, &self.clock);
            self.clock.advance(Duration::from_micros(200));
            let now = self.clock.now();
            self.lp.run_once(now, &self.clock);
            spent += t0.elapsed();
            let io = self.lp.io_mut(0).expect("port");
            while let Some(b) = io.tx.pop_front() {
                io.recycle(b);
            }
            // Frames the relay dropped by design (a mixer's copy of a frame the other
            // mixer's copy was sent for) do not come back by themselves.
            io.replenish(4096);
        }
        spent
    }
}

/// What injecting and recycling `frames` costs alone.
fn baseline(frames: &[Vec<u8>]) -> Duration {
    let mut io = MemoryIo::new(8 * BURST, 2048);
    let mut scratch = Vec::with_capacity(BURST);
    let t0 = WallInstant::now();
    for chunk in frames.chunks(BURST) {
        for f in chunk {
            io.inject(f);
        }
        io.rx_burst(&mut scratch, BURST);
        for b in scratch.drain(..) {
            io.recycle(b);
        }
    }
    t0.elapsed()
}

fn report(case: &str, spent: Duration, base: Duration, packets: usize, out: u64) {
    let ns = spent.saturating_sub(base).as_nanos() as f64 / packets as f64;
    println!(
        "relay case={case} ns_per_packet={ns:.1} packets={packets} sent={out} clients={CLIENTS}"
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let mut b = Bench::new();
    let timeline = Timeline {
        base: 0,
        origin: b.clock.now(),
        ptime: Ptime::Ms20,
    };
    for i in 0..CLIENTS {
        let spec = RelaySpec {
            conf: ConfKey(1),
            part: PartKey(u32::from(i)),
            client: client(i),
            client_port: client_port(i),
            mixer_port: client_port(i) + 2,
            mixer: mixer_a(i),
            timeline,
        };
        b.command(RelayCommand::Add(RelaySession::new(spec)));
    }
    // Every peer's MAC is learned from its first packet (all on-link).
    let rounds = BURSTS * BURST / usize::from(CLIENTS);
    let inbound: Vec<Vec<u8>> = (0..rounds)
        .flat_map(|r| {
            (0..CLIENTS).map(move |i| {
                frame(
                    client(i),
                    client_port(i),
                    0xC000 + u32::from(i),
                    r as u16,
                    160 * r as u32,
                )
            })
        })
        .collect();
    let from_a = |rounds: usize| -> Vec<Vec<u8>> {
        (0..rounds)
            .flat_map(|r| {
                (0..CLIENTS).map(move |i| {
                    frame(
                        mixer_a(i),
                        client_port(i) + 2,
                        0xA000 + u32::from(i),
                        r as u16,
                        160 * r as u32,
                    )
                })
            })
            .collect()
    };
    // Warm up: learn every peer's MAC from its packets (the first ones are dropped, not
    // routable yet).
    b.run(&from_a(1));
    b.run(&[frame(mixer_b(0), 20001, 1, 1, 1)]);
    b.run(&inbound[..usize::from(CLIENTS)]);
    let base = baseline(&inbound);
    let before = b.counters.to_mixers.get();
    let spent = b.run(&inbound);
    report(
        "client_to_mixer",
        spent,
        base,
        inbound.len(),
        b.counters.to_mixers.get() - before,
    );
    let outbound = from_a(rounds);
    let before = b.counters.to_clients.get();
    let spent = b.run(&outbound);
    report(
        "mixer_to_client",
        spent,
        base,
        outbound.len(),
        b.counters.to_clients.get() - before,
    );

    // A handover for every client.
    for i in 0..CLIENTS {
        let splice = Splice::new(
            SpliceConfig::default(),
            RtpRewrite::default(),
            Duration::ZERO,
            0,
        );
        b.command(RelayCommand::StartHandover {
            part: PartKey(u32::from(i)),
            candidate: mixer_b(i),
            splice: Box::new(splice),
            instruct: false,
        });
    }
    let before = b.counters.duplicated.get();
    let spent = b.run(&inbound);
    report(
        "client_to_both",
        spent,
        base,
        inbound.len(),
        b.counters.duplicated.get() - before,
    );
    let spliced: Vec<Vec<u8>> = (0..rounds / 2)
        .flat_map(|r| {
            (0..CLIENTS).flat_map(move |i| {
                let ts = 160 * (r + 1000) as u32;
                [
                    frame(
                        mixer_a(i),
                        client_port(i) + 2,
                        0xA000 + u32::from(i),
                        r as u16,
                        ts,
                    ),
                    frame(
                        mixer_b(i),
                        client_port(i) + 2,
                        0xB000 + u32::from(i),
                        9 + r as u16,
                        ts,
                    ),
                ]
            })
        })
        .collect();
    let base2 = baseline(&spliced);
    let before = b.counters.to_clients.get();
    let spent = b.run(&spliced);
    report(
        "splice",
        spent,
        base2,
        spliced.len(),
        b.counters.to_clients.get() - before,
    );
}
