//! The exception path in the poll loop on the in-memory backend, in virtual time: what
//! the dataplane consumes (media, ARP and echo for its address), what goes whole to the
//! kernel (TCP, UDP to non-media ports, fragments, other ICMP, other EtherTypes, group
//! frames, copies of ARP), what comes back from the kernel and goes out unchanged, and
//! the bounds that keep a flood from touching the media.

mod common;
use common::*;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tutti_dataplane::clock::{Instant, VirtualClock};
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, Conference, ConferenceSpec, EngineCounters, Liveness, MediaCommand, PartKey,
    Participant, ParticipantSettings, ParticipantSpec, Timing,
};
use tutti_dataplane::io::{MemoryIo, PacketBuf};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::net::exception::ExceptionConfig;
use tutti_dataplane::poll::{Command, PollLoop, TX_DRAIN};
use tutti_dataplane::rate::SampleRate;
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::rx::PayloadTypes;
use tutti_dataplane::stats::{CoreCounters, DropReason, ExceptionDrop};
use tutti_dataplane::wire::{arp, checksum, eth, ipv4};

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 1, 0]);
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 30000);
/// The media port of the one participant.
const MEDIA_PORT: u16 = 20000;

struct Setup {
    lp: PollLoop<MemoryIo>,
    _commands: rtrb::Producer<Command>,
    engine: Arc<EngineCounters>,
    c: Arc<CoreCounters>,
    t: Instant,
}

/// A loop with one port (media ports 20000-20999, one conference with one participant
/// on 20000) and an exception path bounded by `cfg`.
fn setup(cfg: ExceptionConfig) -> Setup {
    let LoopRig {
        lp,
        mut commands,
        engine,
        core: c,
        ..
    } = loop_rig(OUR_MAC, OUR_IP, 20000..=20999);
    let mut lp = lp.with_exception(0, MemoryIo::new(1024, 2048), cfg);
    let t = Instant::from_nanos(1_000_000);
    let spec = ConferenceSpec {
        key: ConfKey(1),
        ptime: Ptime::Ms20,
        rate: SampleRate::Hz8000,
        active_speakers: ActiveSpeakers::All,
        max_participants: 4,
        timing: Timing::Arrival,
    };
    let part = ParticipantSpec {
        conf: ConfKey(1),
        key: PartKey(1),
        local_port: MEDIA_PORT,
        remote: PEER,
        codec: CodecKind::Pcmu,
        payload_types: PayloadTypes::negotiated(CodecKind::Pcmu, None, None),
        rtcp: false,
        ssrc: 0xabc0,
        settings: ParticipantSettings::default(),
        liveness: Liveness::default(),
        srtp: None,
    };
    let cmds = [
        MediaCommand::AddConference(Conference::new(spec).unwrap()),
        MediaCommand::AddParticipant(Participant::new(part, t, NtpClock::default()).unwrap()),
    ];
    for cmd in cmds {
        assert!(commands.push(Command::Media(cmd)).is_ok());
    }
    lp.run_once(t, &VirtualClock::new(t));
    Setup {
        lp,
        _commands: commands,
        engine,
        c,
        t,
    }
}

fn step(s: &mut Setup) {
    let t = s.t;
    s.lp.run_once(t, &VirtualClock::new(t));
}

fn nic_in(s: &mut Setup, f: &[u8]) {
    assert!(s.lp.io_mut(0).unwrap().inject(f));
}

fn kernel_in(s: &mut Setup, f: &[u8]) {
    assert!(s.lp.exception_io_mut(0).unwrap().inject(f));
}

/// What the loop sent out of the NIC and to the kernel once the kernel side was read
/// and the drain timer ran.
fn outputs(s: &mut Setup) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    step(s);
    for _ in 0..2 {
        s.t += TX_DRAIN;
        step(s);
    }
    let nic =
        s.lp.io_mut(0)
            .unwrap()
            .tx
            .iter()
            .map(|b| b.data().to_vec())
            .collect();
    let kernel =
        s.lp.exception_io_mut(0)
            .unwrap()
            .tx
            .iter()
            .map(|b| b.data().to_vec())
            .collect();
    recycle(s);
    (nic, kernel)
}

/// Give every sent buffer back to the NIC's pool (as a NIC and the kernel would free
/// them), without allocating.
fn recycle(s: &mut Setup) {
    while let Some(b) = s.lp.exception_io_mut(0).unwrap().tx.pop_front() {
        s.lp.io_mut(0).unwrap().recycle(b);
    }
    let io = s.lp.io_mut(0).unwrap();
    while let Some(b) = io.tx.pop_front() {
        io.recycle(b);
    }
}

fn ipv4_frame(dst_mac: eth::MacAddr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34 + l4.len()];
    eth::EthHeader {
        dst: dst_mac,
        src: PEER_MAC,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(&mut f);
    ipv4::write_header(&mut f[14..], *PEER.ip(), dst, proto, l4.len(), 7);
    f[34..].copy_from_slice(l4);
    f
}

/// A TCP SYN to `port` (checksum left zero: the kernel's business, not ours).
fn tcp_syn(port: u16) -> Vec<u8> {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    ipv4_frame(OUR_MAC, OUR_IP, 6, &tcp)
}

fn udp_to(port: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame((PEER_MAC, PEER), (OUR_MAC, OUR_IP, port), payload)
}

fn media(seq: u16) -> Vec<u8> {
    let packet = rtp(0, seq, u32::from(seq) * 160, 0x1000, &[0xff; 160]);
    udp_to(MEDIA_PORT, &packet)
}

fn arp_frame(op: u16, src_mac: eth::MacAddr, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    eth::EthHeader {
        dst: if op == arp::OP_REQUEST {
            eth::MacAddr::BROADCAST
        } else {
            OUR_MAC
        },
        src: src_mac,
        ethertype: eth::ETHERTYPE_ARP,
    }
    .write(&mut f);
    arp::Arp {
        op,
        sender_mac: src_mac,
        sender_ip: sender,
        target_mac: if op == arp::OP_REQUEST {
            eth::MacAddr::ZERO
        } else {
            OUR_MAC
        },
        target_ip: target,
    }
    .write(&mut f[14..]);
    f
}

#[test]
fn tcp_non_media_udp_fragments_and_others_go_to_the_kernel_whole() {
    let mut s = setup(ExceptionConfig::default());
    let syn = tcp_syn(5060);
    let sip = udp_to(5060, b"OPTIONS sip:tutti SIP/2.0\r\n\r\n");
    // The first fragment of a large UDP datagram to a media port: still the kernel's.
    let mut frag = udp_to(MEDIA_PORT, &[0x55; 100]);
    frag[20] |= 0x20; // More Fragments
    frag[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum::checksum(&frag[14..34]);
    frag[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut unreachable = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    let sum = checksum::checksum(&unreachable);
    unreachable[2..4].copy_from_slice(&sum.to_be_bytes());
    let icmp_other = ipv4_frame(OUR_MAC, OUR_IP, ipv4::PROTO_ICMP, &unreachable);
    let mut v6 = udp_to(5060, b"x");
    v6[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let bcast = ipv4_frame(
        eth::MacAddr::BROADCAST,
        Ipv4Addr::new(198, 18, 0, 255),
        ipv4::PROTO_UDP,
        &[0; 8],
    );
    let frames = [syn, sip, frag, icmp_other, v6, bcast];
    for f in &frames {
        nic_in(&mut s, f);
    }
    // Not ours at all: another host's unicast address, another MAC.
    nic_in(
        &mut s,
        &ipv4_frame(OUR_MAC, Ipv4Addr::new(198, 18, 0, 9), 6, &[0; 20]),
    );
    let mut other_mac = tcp_syn(22);
    other_mac[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    nic_in(&mut s, &other_mac);
    let (nic, kernel) = outputs(&mut s);
    assert!(nic.is_empty(), "nothing answered by the dataplane");
    assert_eq!(kernel, frames.to_vec(), "each punted whole and unchanged");
    assert_eq!(s.c.exception_punted.get(), frames.len() as u64);
    assert_eq!(s.c.drops(DropReason::NotOurIp), 1);
    assert_eq!(s.c.drops(DropReason::NotForUs), 1);
    assert_eq!(s.c.drops_total(), 2);
    assert_eq!(
        s.engine.rtp_in.get(),
        0,
        "the fragment was not taken for media"
    );
}

#[test]
fn media_ping_and_arp_are_the_dataplanes() {
    let mut s = setup(ExceptionConfig::default());
    nic_in(&mut s, &media(1));
    let mut echo = vec![8u8, 0, 0, 0, 0, 1, 0, 1, 9, 9];
    let sum = checksum::checksum(&echo);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    nic_in(
        &mut s,
        &ipv4_frame(OUR_MAC, OUR_IP, ipv4::PROTO_ICMP, &echo),
    );
    let req = arp_frame(arp::OP_REQUEST, PEER_MAC, *PEER.ip(), OUR_IP);
    nic_in(&mut s, &req);
    let reply = arp_frame(
        arp::OP_REPLY,
        eth::MacAddr([2, 0, 0, 0, 1, 7]),
        Ipv4Addr::new(198, 18, 0, 7),
        OUR_IP,
    );
    nic_in(&mut s, &reply);
    let (nic, kernel) = outputs(&mut s);
    assert_eq!(s.engine.rtp_in.get(), 1, "media consumed by the engine");
    assert_eq!(nic.len(), 2, "echo reply and ARP reply");
    assert_eq!(s.c.icmp_echo_replies.get(), 1);
    assert_eq!(s.c.arp_replies_sent.get(), 1);
    let a = arp::Arp::parse(&nic[1][14..]).unwrap();
    assert_eq!(
        (a.op, a.sender_ip, a.sender_mac),
        (arp::OP_REPLY, OUR_IP, OUR_MAC)
    );
    // The kernel learns both neighbours: a copy of the request, the reply itself.
    assert_eq!(kernel, vec![req, reply]);
    assert_eq!(s.c.drops_total(), 0);
}

#[test]
fn the_kernels_frames_go_out_unchanged_but_its_duplicate_arp_replies() {
    let mut s = setup(ExceptionConfig::default());
    let mut syn_ack = tcp_syn(40000);
    // As the kernel sends it: from our MAC and address to the peer.
    syn_ack[0..6].copy_from_slice(&PEER_MAC.0);
    syn_ack[6..12].copy_from_slice(&OUR_MAC.0);
    let kernel_request = arp_frame(arp::OP_REQUEST, OUR_MAC, OUR_IP, *PEER.ip());
    let kernel_reply = arp_frame(arp::OP_REPLY, OUR_MAC, OUR_IP, *PEER.ip());
    kernel_in(&mut s, &syn_ack);
    kernel_in(&mut s, &kernel_request);
    kernel_in(&mut s, &kernel_reply);
    let (nic, kernel) = outputs(&mut s);
    assert!(kernel.is_empty());
    assert_eq!(nic, vec![syn_ack, kernel_request]);
    assert_eq!(s.c.exception_injected.get(), 2);
    assert_eq!(s.c.exception_drops(ExceptionDrop::ArpDuplicate), 1);
}

#[test]
fn a_flood_is_rate_bounded_and_media_in_the_same_burst_is_still_processed() {
    let cfg = ExceptionConfig {
        rate_pps: 1000,
        burst: 10,
        queue: 64,
    };
    let mut s = setup(cfg);
    let mut seq = 1;
    let mut offered = 0u64;
    let clock = VirtualClock::new(s.t);
    // 1000 iterations 100 µs apart (100 ms, five mixing ticks) of 31 flood frames each,
    // and a media packet every 20 ms, last in its burst.
    for i in 0..1000u16 {
        for k in 0..31u16 {
            let f = if k % 2 == 0 {
                tcp_syn(5060)
            } else {
                udp_to(9000 + k, &[i as u8; 40])
            };
            nic_in(&mut s, &f);
            offered += 1;
        }
        if i % 200 == 0 {
            nic_in(&mut s, &media(seq));
            seq += 1;
        }
        let before = s.engine.rtp_in.get();
        s.lp.run_once(s.t, &clock);
        if i % 200 == 0 {
            assert_eq!(s.engine.rtp_in.get(), before + 1, "iteration {i}");
        }
        s.t += Duration::from_micros(100);
        clock.set(s.t);
        recycle(&mut s);
        // Frames dropped over the rate do not find their way back to a memory pool.
        s.lp.io_mut(0).unwrap().replenish(4096);
    }
    let punted = s.c.exception_punted.get();
    let rate = s.c.exception_drops(ExceptionDrop::Rate);
    // 10 saved up plus 1000 pps over 100 ms of virtual time.
    assert!((100..=111).contains(&punted), "{punted} punted");
    assert_eq!(punted + rate, offered);
    assert_eq!(s.engine.rtp_in.get(), 5);
    assert!(s.engine.ticks.get() > 0);
    assert_eq!(s.engine.tick_overruns.get(), 0);
}

#[test]
fn a_full_queue_drops_and_the_kernels_tx_refusals_are_counted() {
    let cfg = ExceptionConfig {
        rate_pps: 1_000_000,
        burst: 1000,
        queue: 8,
    };
    let mut s = setup(cfg);
    s.lp.exception_io_mut(0).unwrap().tx_capacity = 5;
    for _ in 0..20 {
        nic_in(&mut s, &tcp_syn(22));
    }
    step(&mut s);
    assert_eq!(s.c.exception_drops(ExceptionDrop::QueueFull), 12);
    assert_eq!(s.c.exception_punted.get(), 5);
    assert_eq!(s.c.exception_drops(ExceptionDrop::ExceptionTxFull), 3);
}

#[test]
fn exception_iterations_allocate_nothing() {
    let mut s = setup(ExceptionConfig {
        rate_pps: 1_000_000,
        burst: 1000,
        queue: 256,
    });
    let frames = [
        tcp_syn(5060),
        udp_to(5060, b"REGISTER"),
        arp_frame(arp::OP_REQUEST, PEER_MAC, *PEER.ip(), OUR_IP),
        media(1),
    ];
    let kernel_frame = arp_frame(arp::OP_REQUEST, OUR_MAC, OUR_IP, *PEER.ip());
    let run = |s: &mut Setup, n: u16| {
        for _ in 0..n {
            for f in &frames {
                nic_in(s, f);
            }
            kernel_in(s, &kernel_frame);
            s.t += TX_DRAIN;
            step(s);
            recycle(s);
        }
    };
    run(&mut s, 50); // warm up
    let before = allocs();
    run(&mut s, 200);
    assert_eq!(allocs() - before, 0);
    assert_eq!(s.c.exception_punted.get(), 3 * 250);
    assert_eq!(s.c.exception_injected.get(), 250);
}
