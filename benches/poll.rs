//! The bare poll-loop cost, two ways:
//!
//! * `io=memory`: the real `PollLoop` on the in-memory backend, 32 frames per burst:
//!   cycles per packet for rx -> classify -> tx answering ICMP echo requests
//!   (`case=icmp_echo`), and for rx -> classify -> exception queue -> exception tx
//!   punting TCP SYNs to the kernel side (`case=punt_tcp`). The cost of injecting and
//!   recycling frames, measured alone, is subtracted.
//! * `io=virtio`: the real `tutti` binary on `virtio_user` polling one core, fed by a
//!   generator in this process on the other core through `net_vhost`: ICMP echo requests
//!   out, replies counted back, for a bounded time. Reports packets per second answered.
//!
//! Needs root and hugepages (scripts/test sets them up). Prints one line per case:
//! `poll io=<memory|virtio> ...`.

mod common;
use common::{bench_eal, metric, VirtioRig, GEN_MAC, TUTTI_MAC};

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};
use tutti_dataplane::clock::Clock;
use tutti_dataplane::conference::Engine;
use tutti_dataplane::host::CorePorts;
use tutti_dataplane::io::{MemoryIo, PacketBuf, PacketIo, BURST};
use tutti_dataplane::net::exception::ExceptionConfig;
use tutti_dataplane::poll::{command_ring, Handoff, PollLoop, PortAddr};
use tutti_dataplane::stats::CoreCounters;
use tutti_dataplane::wire::{checksum, eth, ipv4};
use tutti_dpdk::{Eal, TscClock};

const TUTTI_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// An Ethernet + IPv4 + ICMP echo request with 56 bytes of data (as ping sends).
fn echo_request(seq: u16) -> Vec<u8> {
    let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend((0..56u8).map(|i| i.wrapping_mul(7)));
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0u8; 14 + 20 + icmp.len()];
    eth::EthHeader {
        dst: TUTTI_MAC,
        src: GEN_MAC,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(&mut f);
    ipv4::write_header(
        &mut f[14..],
        GEN_IP,
        TUTTI_IP,
        ipv4::PROTO_ICMP,
        icmp.len(),
        seq,
    );
    f[34..].copy_from_slice(&icmp);
    f
}

/// An Ethernet + IPv4 + TCP SYN to port 5060 (the kernel's business).
fn tcp_syn() -> Vec<u8> {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5060u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    let mut f = vec![0u8; 14 + 20 + tcp.len()];
    eth::EthHeader {
        dst: TUTTI_MAC,
        src: GEN_MAC,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(&mut f);
    ipv4::write_header(&mut f[14..], GEN_IP, TUTTI_IP, 6, tcp.len(), 1);
    f[34..].copy_from_slice(&tcp);
    f
}

/// What one memory case feeds the loop and where the frames come out.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// Echo requests, answered on the port.
    IcmpEcho,
    /// TCP SYNs, punted to the exception port (bounds wide open: every one goes).
    PuntTcp,
}

fn memory_case(tsc: &TscClock, case: Case) {
    let bursts = 200_000u64;
    let frame = match case {
        Case::IcmpEcho => echo_request(1),
        Case::PuntTcp => tcp_syn(),
    };
    let (_tx, rx) = command_ring(4);
    let counters = Arc::new(CoreCounters::default());
    let addr = PortAddr {
        mac: TUTTI_MAC,
        ip: TUTTI_IP,
        prefix_len: 24,
        gateway: None,
    };
    let engine = Engine::new(CorePorts::single(0..=0), 0, Arc::default());
    let mut lp = PollLoop::new(
        vec![(MemoryIo::new(4 * BURST, 2048), addr)],
        counters.clone(),
        rx,
        0,
        engine,
        Handoff::none(),
        tutti_dataplane::host::uplink(4, 4).0,
    );
    if case == Case::PuntTcp {
        let open = ExceptionConfig {
            rate_pps: u32::MAX,
            burst: 1_000_000,
            queue: 4 * BURST,
        };
        lp = lp.with_exception(0, MemoryIo::new(4 * BURST, 2048), open);
    }

    // Baseline: inject and recycle only.
    let mut base = MemoryIo::new(4 * BURST, 2048);
    let mut scratch = Vec::with_capacity(BURST);
    let c0 = tsc.cycles();
    for _ in 0..bursts {
        for _ in 0..BURST {
            base.inject(&frame);
        }
        base.rx_burst(&mut scratch, BURST);
        for b in scratch.drain(..) {
            base.recycle(b);
        }
    }
    let base_cycles = tsc.cycles() - c0;

    let c0 = tsc.cycles();
    for _ in 0..bursts {
        let io = lp.io_mut(0).expect("port 0");
        for _ in 0..BURST {
            io.inject(&frame);
        }
        // A full burst flushes at once (no drain-timer wait).
        lp.run_once(tsc.now(), tsc);
        if let Some(kernel) = lp.exception_io_mut(0) {
            while let Some(b) = kernel.tx.pop_front() {
                scratch.push(b);
            }
        }
        let io = lp.io_mut(0).expect("port 0");
        while let Some(b) = io.tx.pop_front() {
            io.recycle(b);
        }
        for b in scratch.drain(..) {
            io.recycle(b);
        }
    }
    let loop_cycles = tsc.cycles() - c0;
    let packets = bursts * BURST as u64;
    let (name, done) = match case {
        Case::IcmpEcho => ("icmp_echo", counters.icmp_echo_replies.get()),
        Case::PuntTcp => ("punt_tcp", counters.exception_punted.get()),
    };
    assert_eq!(done, packets, "every frame answered or punted");
    let per_packet = loop_cycles.saturating_sub(base_cycles) as f64 / packets as f64;
    let ns = per_packet * 1e9 / tsc.hz() as f64;
    println!(
        "poll io=memory case={name} burst={BURST} cycles_per_packet={per_packet:.1} ns_per_packet={ns:.1} packets={packets} tsc_hz={}",
        tsc.hz()
    );
}

fn virtio_case(eal: &Eal, tsc: &TscClock, sock: &str) {
    let mut rig = VirtioRig::start(eal, sock, "");
    let frame = echo_request(7);
    let run_for = Duration::from_secs(5);
    let max_in_flight = 1024u64;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut rx = Vec::with_capacity(BURST);
    let mut tx = Vec::with_capacity(BURST);
    let t0 = WallInstant::now();
    let c0 = tsc.cycles();
    while t0.elapsed() < run_for {
        if sent - received < max_in_flight {
            while tx.len() < BURST {
                let Some(mut m) = rig.queue.alloc() else {
                    break;
                };
                if m.set_len(frame.len()) {
                    m.data_mut().copy_from_slice(&frame);
                    tx.push(m);
                }
            }
            sent += rig.queue.tx_burst(&mut tx) as u64;
        }
        rig.queue.rx_burst(&mut rx, BURST);
        received += rx
            .drain(..)
            .filter(|m| m.data().get(34) == Some(&0) && m.data().get(23) == Some(&ipv4::PROTO_ICMP))
            .count() as u64;
    }
    let secs = (tsc.cycles() - c0) as f64 / tsc.hz() as f64;
    let text = rig.metrics();
    println!(
        "poll io=virtio case=icmp_echo replies_per_sec={:.0} sent={sent} replies={received} tutti_rx={} tutti_tx={} tutti_busy_ratio={:.3} seconds={secs:.2}",
        received as f64 / secs,
        metric(&text, "tutti_rx_packets_total{core=\"1\"}"),
        metric(&text, "tutti_tx_packets_total{core=\"1\"}"),
        metric(&text, "tutti_core_busy_ratio{core=\"1\"}"),
    );
}

fn main() {
    // `cargo test --benches` and `cargo bench -- --list` pass flags; only run for real
    // when invoked by `cargo bench`.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let (eal, sock) = bench_eal("poll");
    let tsc = TscClock::new(&eal);
    memory_case(&tsc, Case::IcmpEcho);
    memory_case(&tsc, Case::PuntTcp);
    virtio_case(&eal, &tsc, &sock);
    drop(eal);
}
