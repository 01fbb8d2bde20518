//! The gateway relay inside the real poll loop, on the in-memory backend, in virtual
//! time: a client's RTP goes to its mixer with the timestamps mapped onto the
//! conference timeline and the addresses rewritten (checksums still valid); the mixer's
//! stream comes back to the client; during a handover the client's packets go to both
//! mixers, the new mixer's stream is spliced in between two packets and the client sees
//! one unbroken stream; after the handover only the new mixer is used.

mod common;
use common::{rtp, udp_frame};

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tutti_dataplane::clock::{Clock, Instant, VirtualClock};
use tutti_dataplane::conference::{ConfKey, Engine, EngineCounters, PartKey};
use tutti_dataplane::host::{uplink, CoreEvent, CorePorts, Retired, UplinkRx};
use tutti_dataplane::io::{MemoryIo, PacketBuf};
use tutti_dataplane::mixer::Ptime;
use tutti_dataplane::poll::{command_ring, Command, Handoff, PollLoop, PortAddr};
use tutti_dataplane::relay::splice::{Splice, SpliceConfig, SpliceEvent};
use tutti_dataplane::relay::{
    Relay, RelayCommand, RelayCounters, RelayEventKind, RelaySession, RelaySpec, Timeline,
};
use tutti_dataplane::stats::CoreCounters;
use tutti_dataplane::wire::rewrite::RtpRewrite;
use tutti_dataplane::wire::rtp::RtpPacket;
use tutti_dataplane::wire::{checksum, eth, ipv4, udp};

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: (eth::MacAddr, SocketAddrV4) = (
    eth::MacAddr([2, 0, 0, 0, 0, 2]),
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 4000),
);
const MIXER_A: (eth::MacAddr, SocketAddrV4) = (
    eth::MacAddr([2, 0, 0, 0, 0, 11]),
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 30000),
);
const MIXER_B: (eth::MacAddr, SocketAddrV4) = (
    eth::MacAddr([2, 0, 0, 0, 0, 12]),
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 12), 31000),
);
const CLIENT_PORT: u16 = 20002;
const MIXER_PORT: u16 = 20004;
const FRAME: Duration = Duration::from_millis(20);

/// A frame from `from` to our port `dst_port`.
fn to_us(from: (eth::MacAddr, SocketAddrV4), dst_port: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(from, (OUR_MAC, OUR_IP, dst_port), payload)
}

/// A PCMU RTP packet.
fn pcmu(ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    rtp(0, seq, ts, ssrc, payload)
}

/// An ARP reply from `who` to us, so the loop knows its MAC.
fn arp_reply(who: (eth::MacAddr, SocketAddrV4)) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    eth::EthHeader {
        dst: OUR_MAC,
        src: who.0,
        ethertype: eth::ETHERTYPE_ARP,
    }
    .write(&mut f);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f[22..28].copy_from_slice(&who.0 .0);
    f[28..32].copy_from_slice(&who.1.ip().octets());
    f[32..38].copy_from_slice(&OUR_MAC.0);
    f[38..42].copy_from_slice(&OUR_IP.octets());
    f
}

/// A frame the loop sent, checked: valid IPv4 and UDP checksums, from our MAC/IP.
#[derive(Debug)]
struct Sent {
    dst_mac: eth::MacAddr,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: Vec<u8>,
}

fn check(frame: &[u8]) -> Sent {
    let e = eth::EthHeader::parse(frame).unwrap();
    assert_eq!(e.src, OUR_MAC);
    let ih = ipv4::Ipv4Header::parse(&frame[14..]).expect("valid IPv4 header and checksum");
    let seg = &frame[14 + ih.header_len..14 + ih.total_len];
    let uh = udp::UdpHeader::parse(seg).unwrap();
    let mut zeroed = seg.to_vec();
    zeroed[6..8].copy_from_slice(&[0, 0]);
    assert_eq!(
        u16::from_be_bytes([seg[6], seg[7]]),
        checksum::udp4(ih.src, ih.dst, &zeroed),
        "UDP checksum"
    );
    Sent {
        dst_mac: e.dst,
        src: SocketAddrV4::new(ih.src, uh.src_port),
        dst: SocketAddrV4::new(ih.dst, uh.dst_port),
        payload: seg[8..uh.len].to_vec(),
    }
}

struct Rig {
    lp: PollLoop<MemoryIo>,
    commands: rtrb::Producer<Command>,
    events: rtrb::Consumer<CoreEvent>,
    _retired: rtrb::Consumer<Retired>,
    relay: Arc<RelayCounters>,
    clock: VirtualClock,
    timeline: Timeline,
}

impl Rig {
    fn new() -> Rig {
        let (commands, rx) = command_ring(64);
        let range = 20000..=20999;
        let ports = CorePorts::single(range);
        let engine = Engine::new(ports.clone(), 4, Arc::new(EngineCounters::default()));
        let (up, UplinkRx { events, retired }) = uplink(256, 64);
        let relay = Arc::new(RelayCounters::default());
        let addr = PortAddr {
            mac: OUR_MAC,
            ip: OUR_IP,
            prefix_len: 24,
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
        .with_relay(Relay::new(ports, 16, relay.clone()));
        let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
        let timeline = Timeline {
            base: 4_294_960_000, // wraps during the test
            origin: clock.now(),
            ptime: Ptime::Ms20,
        };
        let mut rig = Rig {
            lp,
            commands,
            events,
            _retired: retired,
            relay,
            clock,
            timeline,
        };
        for who in [CLIENT, MIXER_A, MIXER_B] {
            rig.inject(&arp_reply(who));
        }
        rig.step();
        rig
    }

    fn inject(&mut self, frame: &[u8]) {
        assert!(self.lp.io_mut(0).unwrap().inject(frame));
    }

    fn step(&mut self) {
        let now = self.clock.now();
        self.lp.run_once(now, &self.clock);
        // The drain timer: run again after it so everything queued goes out.
        self.clock.advance(Duration::from_micros(150));
        let now = self.clock.now();
        self.lp.run_once(now, &self.clock);
    }

    fn command(&mut self, cmd: RelayCommand) {
        assert!(self.commands.push(Command::Relay(cmd)).is_ok());
        self.step();
    }

    fn sent(&mut self) -> Vec<Sent> {
        let io = self.lp.io_mut(0).unwrap();
        let frames: Vec<_> = io.tx.drain(..).collect();
        let out = frames.iter().map(|b| check(b.data())).collect();
        for b in frames {
            io.recycle(b);
        }
        out
    }

    fn events(&mut self) -> Vec<RelayEventKind> {
        let mut v = Vec::new();
        while let Ok(e) = self.events.pop() {
            if let CoreEvent::Relay(e) = e {
                v.push(e.kind);
            }
        }
        v
    }
}

fn spec(timeline: Timeline) -> RelaySpec {
    RelaySpec {
        conf: ConfKey(1),
        part: PartKey(7),
        client: CLIENT.1,
        client_port: CLIENT_PORT,
        mixer_port: MIXER_PORT,
        mixer: MIXER_A.1,
        timeline,
    }
}

/// What the client got: (SSRC, sequence number, timestamp, payload).
fn client_rtp(sent: &[Sent]) -> Vec<(u32, u16, u32, Vec<u8>)> {
    sent.iter()
        .filter(|s| s.dst == CLIENT.1)
        .map(|s| {
            assert_eq!(s.src, SocketAddrV4::new(OUR_IP, CLIENT_PORT));
            assert_eq!(s.dst_mac, CLIENT.0);
            let p = RtpPacket::parse(&s.payload).unwrap();
            (
                p.ssrc(),
                p.sequence_number(),
                p.timestamp(),
                p.payload().to_vec(),
            )
        })
        .collect()
}

#[test]
fn relays_both_ways_with_timeline_timestamps_and_valid_checksums() {
    let mut r = Rig::new();
    let tl = r.timeline;
    r.command(RelayCommand::Add(RelaySession::new(spec(tl))));
    r.clock.advance(Duration::from_millis(45));
    let grid = tl.frame_at(r.clock.now());
    assert_eq!(grid, tl.base.wrapping_add(2 * 160));
    r.inject(&to_us(CLIENT, CLIENT_PORT, &pcmu(0xC1, 9, 5555, &[1; 160])));
    r.step();
    let sent = r.sent();
    assert_eq!(sent.len(), 1);
    let s = &sent[0];
    assert_eq!(
        (s.dst_mac, s.src, s.dst),
        (MIXER_A.0, SocketAddrV4::new(OUR_IP, MIXER_PORT), MIXER_A.1)
    );
    let p = RtpPacket::parse(&s.payload).unwrap();
    assert_eq!(
        (p.ssrc(), p.sequence_number(), p.timestamp()),
        (0xC1, 9, grid)
    );
    // The next packet keeps the client's spacing on the timeline.
    r.clock.advance(FRAME);
    r.inject(&to_us(
        CLIENT,
        CLIENT_PORT,
        &pcmu(0xC1, 10, 5555 + 160, &[2; 160]),
    ));
    r.step();
    let p2 = r.sent().remove(0);
    assert_eq!(
        RtpPacket::parse(&p2.payload).unwrap().timestamp(),
        grid.wrapping_add(160)
    );

    // The mixer's stream goes to the client untouched but for the addresses.
    r.inject(&to_us(
        MIXER_A,
        MIXER_PORT,
        &pcmu(0xAA, 500, grid, &[3; 160]),
    ));
    r.step();
    assert_eq!(client_rtp(&r.sent()), vec![(0xAA, 500, grid, vec![3; 160])]);

    // Strangers are dropped and counted, on both sides.
    let stranger = (
        eth::MacAddr([2, 0, 0, 0, 0, 99]),
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 99), 4000),
    );
    r.inject(&to_us(stranger, CLIENT_PORT, &pcmu(0xC1, 11, 0, &[0; 160])));
    r.inject(&to_us(stranger, MIXER_PORT, &pcmu(0xAA, 501, 0, &[0; 160])));
    r.step();
    assert!(r.sent().is_empty());
    assert_eq!(r.relay.foreign.get(), 2);
    // A malformed RTP packet from the client is counted, nothing is sent.
    r.inject(&to_us(CLIENT, CLIENT_PORT, &[0x80, 0, 1]));
    r.step();
    assert!(r.sent().is_empty());
    assert_eq!(r.relay.malformed.get(), 1);

    r.command(RelayCommand::Remove(PartKey(7)));
    r.inject(&to_us(
        CLIENT,
        CLIENT_PORT,
        &pcmu(0xC1, 12, 5555 + 480, &[2; 160]),
    ));
    r.step();
    assert!(r.sent().is_empty(), "nothing relayed after removal");
    assert_eq!(r.relay.sessions.get(), 0);
}

/// Mixer outputs for frame `k`: the same payload on both mixers, their own headers.
fn mixed(k: u32) -> Vec<u8> {
    (0..160)
        .map(|i| (k as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

#[test]
fn handover_duplicates_inbound_and_splices_the_new_mixer_in_seamlessly() {
    let mut r = Rig::new();
    let tl = r.timeline;
    r.command(RelayCommand::Add(RelaySession::new(spec(tl))));
    let mut got = Vec::new();
    let (a_seq0, b_seq0) = (65_500u16, 7u16);
    let mut handover_at = None;
    let mut finished = false;
    let mut cut = None;
    for k in 0u32..120 {
        let ts = tl.base.wrapping_add(160 * k);
        // The client's packet.
        r.inject(&to_us(
            CLIENT,
            CLIENT_PORT,
            &pcmu(0xC1, k as u16, 900 + 160 * k, &[k as u8; 160]),
        ));
        r.step();
        let sent = r.sent();
        let to_a = sent.iter().filter(|s| s.dst == MIXER_A.1).count();
        let to_b = sent.iter().filter(|s| s.dst == MIXER_B.1).count();
        match (handover_at, finished) {
            (None, _) => assert_eq!((to_a, to_b), (1, 0), "frame {k}"),
            (Some(_), false) => {
                assert_eq!((to_a, to_b), (1, 1), "frame {k}: duplicated");
                let a = sent.iter().find(|s| s.dst == MIXER_A.1).unwrap();
                let b = sent.iter().find(|s| s.dst == MIXER_B.1).unwrap();
                assert_eq!(a.payload, b.payload, "both mixers get the same RTP");
                assert_eq!(b.dst_mac, MIXER_B.0);
            }
            (Some(_), true) => assert_eq!((to_a, to_b), (0, 1), "frame {k}: only B"),
        }
        // Mixer A's output for this frame now, B's 7 ms later (while A is live).
        if !finished {
            r.inject(&to_us(
                MIXER_A,
                MIXER_PORT,
                &pcmu(0xAA, a_seq0.wrapping_add(k as u16), ts, &mixed(k)),
            ));
            r.step();
            got.extend(client_rtp(&r.sent()));
        }
        r.clock.advance(Duration::from_millis(7));
        if handover_at.is_some() {
            r.inject(&to_us(
                MIXER_B,
                MIXER_PORT,
                &pcmu(0xBB, b_seq0.wrapping_add(k as u16), ts, &mixed(k)),
            ));
        }
        r.step();
        got.extend(client_rtp(&r.sent()));
        // The rest of the frame interval, in small steps so held packets go out on time.
        for _ in 0..13 {
            r.clock.advance(Duration::from_millis(1));
            r.step();
            got.extend(client_rtp(&r.sent()));
        }
        for e in r.events() {
            if let RelayEventKind::Splice(SpliceEvent::CutOver { seq, .. }) = e {
                cut = Some(seq);
            }
            if let RelayEventKind::Started { last } = e {
                let (head, leg_ts) = last.expect("A's stream was relayed before");
                assert_eq!(head.ssrc, 0xAA);
                assert_eq!(leg_ts, head.ts, "identity before the first handover");
            }
        }
        if k == 10 {
            let splice = Splice::new(
                SpliceConfig::default(),
                RtpRewrite::default(),
                Duration::ZERO,
                0,
            );
            r.command(RelayCommand::StartHandover {
                part: PartKey(7),
                candidate: MIXER_B.1,
                splice: Box::new(splice),
                instruct: false,
            });
            handover_at = Some(k);
        }
        if cut.is_some() && !finished && k > 60 {
            r.command(RelayCommand::End(PartKey(7)));
            finished = true;
        }
    }
    assert!(cut.is_some(), "the splice cut over");
    assert!(finished);
    // The client saw one stream: A's SSRC, contiguous sequence numbers across the
    // 65535 wrap and the cut, timestamps +160, each frame's payload exactly once.
    assert!(got.len() >= 115, "{} packets", got.len());
    for w in got.windows(2) {
        assert_eq!(w[0].0, 0xAA);
        assert_eq!(w[1].0, 0xAA, "one SSRC");
        assert_eq!(
            w[1].1,
            w[0].1.wrapping_add(1),
            "contiguous sequence numbers"
        );
        assert_eq!(w[1].2, w[0].2.wrapping_add(160), "timestamps by the frame");
    }
    let first = got[0].1;
    for (i, g) in got.iter().enumerate() {
        let k = g.1.wrapping_sub(first) as u32;
        assert_eq!(g.3, mixed(k), "packet {i} carries frame {k}");
    }
    assert!(r.relay.held.get() > 0, "A's stream was delayed to meet B's");
    assert!(
        r.relay.superseded.get() > 0,
        "copies of frames were not sent twice"
    );
}

#[test]
fn an_srtp_client_is_unprotected_for_the_mixers_and_protected_for_itself() {
    use tutti_dataplane::conference::SrtpKeys;
    use tutti_dataplane::srtp::{Context, Direction, MasterKey, Suite};
    let suite = Suite::AesCm128HmacSha1_80;
    let key = |b: u8| MasterKey::new(suite, &[b; 30]).unwrap();
    let (client_key, our_key) = (key(0x11), key(0x22));
    let keys = SrtpKeys {
        local: our_key,
        remote: client_key,
    };
    let mut client_tx = Context::new(&client_key, Direction::Outbound).unwrap();
    let mut client_rx = Context::new(&our_key, Direction::Inbound).unwrap();
    let protect = |ctx: &mut Context, pkt: Vec<u8>| {
        let len = pkt.len();
        let mut buf = pkt;
        buf.resize(len + tutti_dataplane::srtp::MAX_RTP_TRAILER, 0);
        let n = ctx.protect_rtp(&mut buf, len).unwrap();
        buf.truncate(n);
        buf
    };

    let mut r = Rig::new();
    let tl = r.timeline;
    let session = RelaySession::secured(spec(tl), &keys).unwrap();
    r.command(RelayCommand::Add(session));
    r.clock.advance(Duration::from_millis(45));
    let grid = tl.frame_at(r.clock.now());

    // The client's SRTP reaches the mixer as plain RTP (lengths and checksums right).
    let first = protect(&mut client_tx, pcmu(0xC1, 9, 5555, &[1; 160]));
    assert_eq!(first.len(), 12 + 160 + 10);
    r.inject(&to_us(CLIENT, CLIENT_PORT, &first));
    r.step();
    let sent = r.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].dst, MIXER_A.1);
    let p = RtpPacket::parse(&sent[0].payload).unwrap();
    assert_eq!(sent[0].payload.len(), 12 + 160);
    assert_eq!(
        (p.ssrc(), p.sequence_number(), p.timestamp(), p.payload()),
        (0xC1, 9, grid, &[1u8; 160][..])
    );

    // Tampered: authentication fails; the first one again: the replay window refuses it.
    let mut bad = protect(&mut client_tx, pcmu(0xC1, 10, 5555 + 160, &[2; 160]));
    bad[12 + 5] ^= 0x40;
    r.inject(&to_us(CLIENT, CLIENT_PORT, &bad));
    r.inject(&to_us(CLIENT, CLIENT_PORT, &first));
    r.step();
    assert!(r.sent().is_empty(), "nothing relayed for a bad packet");
    assert_eq!(r.relay.srtp_auth_failures.get(), 1);
    assert_eq!(r.relay.srtp_replays.get(), 1);

    // The mixer's plain stream is protected with our key for the client, after its
    // header was rewritten.
    for k in 0..3u16 {
        r.inject(&to_us(
            MIXER_A,
            MIXER_PORT,
            &pcmu(
                0xAA,
                500 + k,
                grid.wrapping_add(160 * u32::from(k)),
                &[3; 160],
            ),
        ));
        r.step();
        let sent = r.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].dst, CLIENT.1);
        let mut pkt = sent[0].payload.clone();
        assert_eq!(pkt.len(), 12 + 160 + 10, "protected with its tag");
        let n = client_rx
            .unprotect_rtp(&mut pkt)
            .expect("the client authenticates it");
        let p = RtpPacket::parse(&pkt[..n]).unwrap();
        assert_eq!(
            (p.ssrc(), p.sequence_number(), p.payload()),
            (0xAA, 500 + k, &[3u8; 160][..])
        );
    }
    assert_eq!(r.relay.srtp_failures.get(), 0);
}
