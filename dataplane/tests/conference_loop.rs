//! A conference end to end on the in-memory backend, in virtual time: three participants
//! send G.711 tones as RTP over UDP/IPv4/Ethernet frames; the poll loop receives, mixes
//! and sends. Each participant must get ~50 packets/s from one SSRC with contiguous
//! sequence numbers and timestamps advancing by 160, hear the other two tones and not its
//! own; deleting everything returns the counters to zero. SRTP participants (libsrtp2 on
//! both sides) hear each other too, and tampered or replayed packets are counted drops.

mod common;
use common::*;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tutti_dataplane::clock::{Clock, Instant, VirtualClock};
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, Conference, ConferenceSpec, MediaCommand, MediaEvent, MediaEventKind, Participant,
    ParticipantSpec, SrtpKeys, Timing,
};
use tutti_dataplane::host::CoreEvent;
use tutti_dataplane::io::PacketBuf;
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::poll::Command;
use tutti_dataplane::rate::SampleRate;
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::rx::PayloadTypes;
use tutti_dataplane::srtp::{Context, Direction, MasterKey, Suite, MAX_KEY_LEN, MAX_RTP_TRAILER};
use tutti_dataplane::stats::DropReason;
use tutti_dataplane::wire::rtp::RtpPacket;
use tutti_dataplane::wire::{eth, ipv4, udp};

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const FREQS: [f64; 3] = [440.0, 1000.0, 1900.0];

fn peer(i: usize) -> (eth::MacAddr, SocketAddrV4) {
    (
        eth::MacAddr([2, 0, 0, 0, 1, i as u8]),
        SocketAddrV4::new(
            Ipv4Addr::new(198, 18, 0, 10 + i as u8),
            30000 + 2 * i as u16,
        ),
    )
}

fn rtp_frame(i: usize, seq: u16, ts: u32, payload: &[u8], dst_port: u16) -> Vec<u8> {
    let packet = rtp(0, seq, ts, 0x1000 + i as u32, payload);
    udp_frame(peer(i), (OUR_MAC, OUR_IP, dst_port), &packet)
}

/// (sequence number, timestamp, SSRC, payload) of one RTP packet a participant received.
type Received = (u16, u32, u32, Vec<u8>);

type Setup = LoopRig;

fn setup() -> Setup {
    loop_rig(OUR_MAC, OUR_IP, 20000..=20999)
}

fn add_conference(s: &mut Setup, key: ConfKey, max_participants: u16) {
    let spec = ConferenceSpec {
        key,
        ptime: Ptime::Ms20,
        rate: SampleRate::Hz8000,
        active_speakers: ActiveSpeakers::All,
        max_participants,
        timing: Timing::Arrival,
    };
    send(
        s,
        MediaCommand::AddConference(Conference::new(spec).unwrap()),
    );
}

/// Participant `i` of `conf` (local port 20000 + 2i, remote `peer(i)`), PCMU, no RTCP.
fn participant(conf: ConfKey, i: usize) -> ParticipantSpec {
    pcmu_participant(conf, i, peer(i).1)
}

fn add_participant(s: &mut Setup, now: Instant, spec: ParticipantSpec) {
    let p = Participant::new(spec, now, NtpClock::default()).unwrap();
    send(s, MediaCommand::AddParticipant(p));
}

/// Runs the loop for `ms` milliseconds of virtual time; returns the frames it sent.
fn run_ms(s: &mut Setup, clock: &VirtualClock, ms: u32) -> Vec<Vec<u8>> {
    for _ in 0..ms {
        s.lp.run_once(clock.now(), clock);
        clock.advance(Duration::from_millis(1));
    }
    let io = s.lp.io_mut(0).unwrap();
    let mut sent = Vec::new();
    while let Some(b) = io.tx.pop_front() {
        sent.push(b.data().to_vec());
        io.recycle(b);
    }
    sent
}

fn send(s: &mut Setup, cmd: MediaCommand) {
    assert!(s.commands.push(Command::Media(cmd)).is_ok());
}

#[test]
fn three_tones_each_hears_the_others_with_clean_rtp() {
    let mut s = setup();
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let conf = ConfKey(7);
    add_conference(&mut s, conf, 8);
    for i in 0..3 {
        let codec = if i == 1 {
            CodecKind::Pcma
        } else {
            CodecKind::Pcmu
        };
        let spec = ParticipantSpec {
            codec,
            payload_types: PayloadTypes::negotiated(codec, None, Some(101)),
            rtcp: true,
            ..participant(conf, i)
        };
        add_participant(&mut s, clock.now(), spec);
    }
    s.lp.run_once(clock.now(), &clock);
    assert_eq!(s.engine.conferences.get(), 1);
    assert_eq!(s.engine.participants.get(), 3);

    // 3 seconds: every 20 ms each participant sends one frame of its tone.
    let mut received: Vec<Vec<Received>> = vec![Vec::new(); 3];
    for tick in 0..150u32 {
        for (i, freq) in FREQS.iter().enumerate() {
            let codec = if i == 1 {
                CodecKind::Pcma
            } else {
                CodecKind::Pcmu
            };
            let pcm = tone(*freq, 6000.0, tick as usize * 160, 160);
            let f = rtp_frame(
                i,
                1000 + tick as u16,
                5000 + tick * 160,
                &encode(codec, &pcm),
                20000 + 2 * i as u16,
            );
            assert!(s.lp.io_mut(0).unwrap().inject(&f));
        }
        for d in run_ms(&mut s, &clock, 20) {
            let ih = ipv4::Ipv4Header::parse(&d[14..]).unwrap();
            let uh = udp::UdpHeader::parse(&d[34..]).unwrap();
            assert!(uh.checksum_ok(ih.src, ih.dst, &d[34..]));
            let Some(i) = (0..3).find(|&i| peer(i).1.port() == uh.dst_port) else {
                // RTCP to port+1.
                assert!(
                    (0..3).any(|i| peer(i).1.port() + 1 == uh.dst_port),
                    "stray datagram to {}",
                    uh.dst_port
                );
                continue;
            };
            assert_eq!(
                eth::EthHeader::parse(&d).unwrap().dst,
                peer(i).0,
                "learned MAC used"
            );
            let rtp = RtpPacket::parse(&d[42..]).unwrap();
            received[i].push((
                rtp.sequence_number(),
                rtp.timestamp(),
                rtp.ssrc(),
                rtp.payload().to_vec(),
            ));
        }
    }

    for (i, pkts) in received.iter().enumerate() {
        // ~50 packets/s for 3 s (the first tick comes 20 ms after creation).
        assert!(
            (145..=151).contains(&pkts.len()),
            "participant {i} got {} packets",
            pkts.len()
        );
        assert!(pkts.iter().all(|p| p.2 == 0xabc0 + i as u32), "one SSRC");
        for w in pkts.windows(2) {
            assert_eq!(
                w[1].0,
                w[0].0.wrapping_add(1),
                "contiguous sequence numbers"
            );
            assert_eq!(
                w[1].1,
                w[0].1.wrapping_add(160),
                "timestamps advance by 160"
            );
        }
        // Spectral check over the last second (jitter buffer settled).
        let codec = if i == 1 {
            CodecKind::Pcma
        } else {
            CodecKind::Pcmu
        };
        let pcm: Vec<i16> = pkts[pkts.len() - 50..]
            .iter()
            .flat_map(|p| decode(codec, &p.3))
            .collect();
        let own = goertzel(&pcm, FREQS[i]);
        for (j, f) in FREQS.iter().enumerate().filter(|(j, _)| *j != i) {
            let other = goertzel(&pcm, *f);
            assert!(
                db(other / own) > 40.0,
                "participant {i}: tone {j} only {:.1} dB above own",
                db(other / own)
            );
        }
    }
    assert_eq!(s.core.drops(DropReason::NoListener), 0);
    assert!(s.engine.rtp_in.get() >= 450);
    assert_eq!(s.engine.tick_overruns.get(), 0);

    // The media events came up the core's one event ring: every stream started.
    let mut active = std::collections::BTreeSet::new();
    while let Ok(e) = s.events.pop() {
        if let CoreEvent::Media(MediaEvent {
            part: Some(p),
            kind: MediaEventKind::Active,
            ..
        }) = e
        {
            active.insert(p.0);
        }
    }
    assert_eq!(active.into_iter().collect::<Vec<_>>(), [100, 101, 102]);

    // Deleting the conference frees everything, handed back to the control side.
    send(&mut s, MediaCommand::DeleteConference(conf));
    s.lp.run_once(clock.now(), &clock);
    assert_eq!(s.engine.conferences.get(), 0);
    assert_eq!(s.engine.participants.get(), 0);
    let mut back = 0;
    while s.retired.pop().is_ok() {
        back += 1;
    }
    assert_eq!(
        back, 4,
        "three participants and the conference came back to be freed"
    );
    // A packet for a deleted participant's port is now a counted drop.
    let f = rtp_frame(0, 9, 9, &[0xff; 160], 20000);
    s.lp.io_mut(0).unwrap().inject(&f);
    s.lp.run_once(clock.now(), &clock);
    assert_eq!(s.core.drops(DropReason::NoListener), 1);
    let _ = s.events.pop();
}

#[test]
fn late_ticks_catch_up_and_long_stalls_skip_with_timestamps_advanced() {
    let mut s = setup();
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let conf = ConfKey(9);
    add_conference(&mut s, conf, 2);
    add_participant(&mut s, clock.now(), participant(conf, 0));
    s.lp.run_once(clock.now(), &clock);
    // The participant must be reachable: one RTP packet from it teaches tutti its MAC.
    let f = rtp_frame(0, 1, 160, &[0xff; 160], 20000);
    s.lp.io_mut(0).unwrap().inject(&f);
    s.lp.run_once(clock.now(), &clock);

    let sent = |s: &mut Setup, advance_ms: u64| -> Vec<(u16, u32)> {
        clock.advance(Duration::from_millis(advance_ms));
        s.lp.run_once(clock.now(), &clock);
        clock.advance(Duration::from_millis(1));
        s.lp.run_once(clock.now(), &clock); // drain timer flush
        let io = s.lp.io_mut(0).unwrap();
        let mut out = Vec::new();
        while let Some(b) = io.tx.pop_front() {
            let rtp = RtpPacket::parse(&b.data()[42..]).unwrap();
            out.push((rtp.sequence_number(), rtp.timestamp()));
            io.recycle(b);
        }
        out
    };
    let first = sent(&mut s, 20);
    assert_eq!(first.len(), 1, "one tick due");
    // A 70 ms stall: the three missed ticks go out at once, consecutive in both fields.
    let caught_up = sent(&mut s, 70);
    assert_eq!(caught_up.len(), 3, "{caught_up:?}");
    let mut prev = first[0];
    for p in &caught_up {
        assert_eq!(p.0, prev.0.wrapping_add(1));
        assert_eq!(p.1, prev.1.wrapping_add(160));
        prev = *p;
    }
    assert!(s.engine.tick_overruns.get() >= 1);
    // A 400 ms stall (20 ticks): skipped, one packet, timestamp advanced by the gap.
    let skipped = sent(&mut s, 400);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, prev.0.wrapping_add(1), "no sequence gap");
    let step = skipped[0].1.wrapping_sub(prev.1);
    assert!(
        (160 * 19..=160 * 21).contains(&step),
        "timestamp jumped by {step} samples"
    );
}

/// Payload types come from the session: an L16 leg on dynamic type 97 is received and sent
/// with 97; without a negotiated type the participant cannot be built.
#[test]
fn payload_types_are_the_negotiated_ones() {
    use tutti_dataplane::conference::engine::BuildError;
    let mut s = setup();
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let conf = ConfKey(3);
    let l16 = ParticipantSpec {
        codec: CodecKind::L16,
        payload_types: PayloadTypes::negotiated(CodecKind::L16, None, None),
        ..participant(conf, 0)
    };
    assert!(matches!(
        Participant::new(l16, clock.now(), NtpClock::default()),
        Err(BuildError::NoPayloadType(CodecKind::L16))
    ));
    add_conference(&mut s, conf, 4);
    let l16 = ParticipantSpec {
        payload_types: PayloadTypes::negotiated(CodecKind::L16, Some(97), None),
        ..l16
    };
    add_participant(&mut s, clock.now(), l16);
    add_participant(&mut s, clock.now(), participant(conf, 1));
    s.lp.run_once(clock.now(), &clock);
    assert_eq!(s.engine.participants.get(), 2);
    // (payload type, payload length, tone level) per packet, by receiver.
    let mut got: Vec<Vec<(u8, usize, f64)>> = vec![Vec::new(); 2];
    for tick in 0..50u32 {
        let pcm = tone(FREQS[0], 6000.0, tick as usize * 160, 160);
        let l16_payload = encode(CodecKind::L16, &pcm);
        let ts = 5000 + tick * 160;
        let from_l16 = udp_frame(peer(0), (OUR_MAC, OUR_IP, 20000), &{
            rtp(97, 1000 + tick as u16, ts, 0x1000, &l16_payload)
        });
        assert!(s.lp.io_mut(0).unwrap().inject(&from_l16));
        // Silence from the PCMU participant (its MAC is learned from it).
        let silence = encode(CodecKind::Pcmu, &[0; 160]);
        let from_pcmu = rtp_frame(1, 1000 + tick as u16, ts, &silence, 20002);
        assert!(s.lp.io_mut(0).unwrap().inject(&from_pcmu));
        for d in run_ms(&mut s, &clock, 20) {
            let Some(uh) = udp::UdpHeader::parse(&d[34..]) else {
                continue;
            };
            let Some(i) = (0..2).find(|&i| peer(i).1.port() == uh.dst_port) else {
                continue;
            };
            let rtp = RtpPacket::parse(&d[42..]).unwrap();
            let codec = [CodecKind::L16, CodecKind::Pcmu][i];
            let level = goertzel(&decode(codec, rtp.payload()), FREQS[0]);
            got[i].push((rtp.payload_type(), rtp.payload().len(), level));
        }
    }
    assert!(got[0].len() >= 45 && got[1].len() >= 45, "{got:?}");
    assert!(got[0].iter().all(|&(pt, len, _)| pt == 97 && len == 320));
    assert!(got[1].iter().all(|&(pt, len, _)| pt == 0 && len == 160));
    // The PCMU listener hears the L16 talker's tone once the jitter buffer plays.
    assert!(
        got[1][got[1].len() - 10..].iter().all(|g| g.2 > 1e9),
        "{got:?}"
    );
}

/// A conference mixes at its rate; until resampling exists a participant whose codec
/// samples at another rate is refused (counted), one at the rate is taken.
#[test]
fn participants_must_sample_at_the_conference_rate() {
    let mut s = setup();
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let wide = ConferenceSpec {
        key: ConfKey(16),
        ptime: Ptime::Ms20,
        rate: SampleRate::Hz16000,
        active_speakers: ActiveSpeakers::All,
        max_participants: 2,
        timing: Timing::Arrival,
    };
    send(
        &mut s,
        MediaCommand::AddConference(Conference::new(wide).unwrap()),
    );
    add_conference(&mut s, ConfKey(8), 2);
    add_participant(&mut s, clock.now(), participant(ConfKey(16), 0));
    add_participant(&mut s, clock.now(), participant(ConfKey(8), 1));
    s.lp.run_once(clock.now(), &clock);
    assert_eq!(s.engine.conferences.get(), 2);
    assert_eq!(s.engine.participants.get(), 1);
    assert_eq!(s.engine.commands_rejected.get(), 1);
}

/// The keys of SRTP participant `i`: the client's (what tutti unprotects with) and
/// tutti's (what the client unprotects with), of `suite`.
fn srtp_keys(i: usize, suite: Suite) -> SrtpKeys {
    let key = |b: u8| MasterKey::from_array(suite, [b.wrapping_add(i as u8); MAX_KEY_LEN]);
    SrtpKeys {
        local: key(0x10),
        remote: key(0x80),
    }
}

#[test]
fn srtp_participants_hear_each_other_and_tampered_or_replayed_packets_are_counted() {
    let mut s = setup();
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let conf = ConfKey(9);
    add_conference(&mut s, conf, 4);
    let suites = [Suite::AesCm128HmacSha1_32, Suite::AeadAes128Gcm];
    // Each client's contexts: it protects with its key, unprotects with tutti's.
    let mut clients: Vec<(Context, Context)> = suites
        .iter()
        .enumerate()
        .map(|(i, &suite)| {
            let keys = srtp_keys(i, suite);
            add_participant(
                &mut s,
                clock.now(),
                ParticipantSpec {
                    rtcp: true,
                    srtp: Some(keys),
                    ..participant(conf, i)
                },
            );
            (
                Context::new(&keys.remote, Direction::Outbound).unwrap(),
                Context::new(&keys.local, Direction::Inbound).unwrap(),
            )
        })
        .collect();
    s.lp.run_once(clock.now(), &clock);
    assert_eq!(s.engine.participants.get(), 2);

    let mut heard: Vec<Vec<i16>> = vec![Vec::new(); 2];
    let mut srtcp = [0usize; 2];
    for tick in 0..400u32 {
        for (i, (tx, _)) in clients.iter_mut().enumerate() {
            let pcm = tone(FREQS[i], 6000.0, tick as usize * 160, 160);
            let mut pkt = rtp(
                0,
                1000 + tick as u16,
                5000 + tick * 160,
                0x1000 + i as u32,
                &encode(CodecKind::Pcmu, &pcm),
            );
            let len = pkt.len();
            pkt.resize(len + MAX_RTP_TRAILER, 0);
            let n = tx.protect_rtp(&mut pkt, len).unwrap();
            let frame = udp_frame(peer(i), (OUR_MAC, OUR_IP, 20000 + 2 * i as u16), &pkt[..n]);
            let io = s.lp.io_mut(0).unwrap();
            if tick == 50 {
                // First a copy with a flipped payload bit (its sequence number not seen
                // yet: authentication fails), then the packet, then the packet again.
                let mut bad = pkt[..n].to_vec();
                bad[12 + 5] ^= 4;
                let bad = udp_frame(peer(i), (OUR_MAC, OUR_IP, 20000 + 2 * i as u16), &bad);
                assert!(io.inject(&bad));
                assert!(io.inject(&frame));
            }
            assert!(io.inject(&frame));
        }
        for d in run_ms(&mut s, &clock, 20) {
            let uh = udp::UdpHeader::parse(&d[34..]).unwrap();
            let mut payload = d[42..].to_vec();
            if let Some(i) = (0..2).find(|&i| peer(i).1.port() == uh.dst_port) {
                let n = clients[i]
                    .1
                    .unprotect_rtp(&mut payload)
                    .expect("tutti's SRTP");
                let rtp = RtpPacket::parse(&payload[..n]).unwrap();
                heard[i].extend(decode(CodecKind::Pcmu, rtp.payload()));
            } else if let Some(i) = (0..2).find(|&i| peer(i).1.port() + 1 == uh.dst_port) {
                clients[i]
                    .1
                    .unprotect_rtcp(&mut payload)
                    .expect("tutti's SRTCP");
                srtcp[i] += 1;
            }
        }
    }
    for (i, pcm) in heard.iter().enumerate() {
        let last = &pcm[pcm.len() - 8000..];
        let (own, other) = (goertzel(last, FREQS[i]), goertzel(last, FREQS[1 - i]));
        assert!(
            db(other / own) > 40.0,
            "participant {i} hears the other {:.1} dB above itself",
            db(other / own)
        );
        assert!(srtcp[i] > 0, "participant {i} got SRTCP reports");
    }
    assert_eq!(
        s.engine.srtp_auth_failures.get(),
        2,
        "one tampered packet each"
    );
    assert_eq!(s.engine.srtp_replays.get(), 2, "one replayed packet each");

    // Plain RTP to an SRTP participant does not authenticate.
    let plain = rtp_frame(0, 2000, 90_000, &[0xff; 160], 20000);
    assert!(s.lp.io_mut(0).unwrap().inject(&plain));
    run_ms(&mut s, &clock, 1);
    assert_eq!(s.engine.srtp_auth_failures.get(), 3);
}
