//! `ReceiveStream` in virtual time: source latching, SID memory and media-quiet events,
//! voice activity, RTCP liveness, BYE, report blocks and round-trip time.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::g711;
use tutti_dataplane::rx::rtcp::{NtpClock, RtcpConfig};
use tutti_dataplane::rx::{DropReason, Event, ReceiveConfig, ReceiveStream, RtcpDropReason, RtpIn};
use tutti_dataplane::wire::rtcp::{ReportBlock, RtcpWriter, SenderInfo};

const SRC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 5), 7000);
const OTHER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 6), 7000);
const MS: Duration = Duration::from_millis(1);

fn t(ms: u64) -> Instant {
    Instant::from_nanos(10_000_000_000 + ms * 1_000_000)
}

fn rtp(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> RtpIn<'_> {
    RtpIn {
        ssrc,
        seq,
        timestamp: ts,
        payload_type: pt,
        payload,
        audio_level: None,
    }
}

fn stream() -> ReceiveStream {
    ReceiveStream::new(ReceiveConfig::default(), t(0)).unwrap()
}

#[test]
fn latches_first_source_and_drops_others() {
    let mut s = stream();
    let mut ev = Vec::new();
    let audio = [0xffu8; 160];
    assert!(s
        .handle_rtp(t(0), SRC, rtp(1, 10, 0, 0, &audio), &mut |e| ev.push(e))
        .is_ok());
    assert_eq!(
        s.handle_rtp(t(20), OTHER, rtp(1, 11, 160, 0, &audio), &mut |e| ev
            .push(e)),
        Err(DropReason::ForeignAddress)
    );
    assert_eq!(
        s.handle_rtp(t(20), SRC, rtp(2, 500, 160, 0, &audio), &mut |e| ev.push(e)),
        Err(DropReason::ForeignSsrc)
    );
    assert_eq!(
        s.handle_rtp(t(20), SRC, rtp(1, 11, 160, 99, &audio), &mut |e| ev.push(e)),
        Err(DropReason::UnknownPayloadType)
    );
    let c = *s.counters();
    assert_eq!(
        (c.foreign_address, c.foreign_ssrc, c.unknown_payload_type),
        (1, 1, 1)
    );
    // After a long gap the latched address may change SSRC.
    assert!(s
        .handle_rtp(t(3000), SRC, rtp(2, 900, 0, 0, &audio), &mut |e| ev.push(e))
        .is_ok());
    assert_eq!(ev, [Event::SsrcChanged { old: 1, new: 2 }]);
    assert_eq!(s.latched(), Some((SRC, 2)));
    // After a BYE the switch is immediate.
    let mut buf = [0u8; 64];
    let mut w = RtcpWriter::new(&mut buf);
    w.receiver_report(2, &[]).unwrap();
    w.bye(&[2], None).unwrap();
    let pkt = w.finish().to_vec();
    s.handle_rtcp(
        t(3010),
        SocketAddrV4::new(*SRC.ip(), 7001),
        &pkt,
        &mut |e| ev.push(e),
    )
    .unwrap();
    assert!(s
        .handle_rtp(t(3020), SRC, rtp(3, 5, 0, 0, &audio), &mut |e| ev.push(e))
        .is_ok());
    assert!(
        matches!(
            ev[1..],
            [
                Event::RtcpSeen { .. },
                Event::Bye { ssrc: 2, .. },
                Event::SsrcChanged { old: 2, new: 3 }
            ]
        ),
        "{ev:?}"
    );
    // RTCP from elsewhere is dropped; garbage is counted.
    assert_eq!(
        s.handle_rtcp(t(3030), OTHER, &pkt, &mut |e| ev.push(e)),
        Err(RtcpDropReason::ForeignAddress)
    );
    assert_eq!(
        s.handle_rtcp(t(3030), SRC, &[1, 2, 3], &mut |e| ev.push(e)),
        Err(RtcpDropReason::Malformed)
    );
    assert_eq!(
        (s.counters().rtcp_foreign, s.counters().rtcp_malformed),
        (1, 1)
    );
}

/// Run a talker: `talk` ms of voiced audio, then either SID + nothing (DTX) or just
/// nothing; return the events.
fn talk_then_stop(with_sid: bool) -> (Vec<(Instant, Event)>, ReceiveStream) {
    let mut s = stream();
    let mut ev = Vec::new();
    let mut out = [0i16; 160];
    let mut seq = 0u16;
    for i in 0..400u64 {
        let now = t(i * 20);
        let mut push = |e: Event| ev.push((now, e));
        if i < 100 {
            let payload: Vec<u8> = (0..160)
                .map(|k| {
                    let x = (i * 160 + k) as f64 / 8000.0;
                    let v = 6000.0
                        * (2.0 * std::f64::consts::PI * 180.0 * x).sin()
                        * (1.0 + (x * 9.0).sin())
                        / 2.0;
                    g711::ulaw_encode(v as i16)
                })
                .collect();
            s.handle_rtp(
                now,
                SRC,
                rtp(9, seq, (i * 160) as u32, 0, &payload),
                &mut push,
            )
            .unwrap();
            seq += 1;
        } else if i == 100 && with_sid {
            s.handle_rtp(
                now,
                SRC,
                rtp(9, seq, (i * 160) as u32, 13, &[50, 120, 130]),
                &mut push,
            )
            .unwrap();
            seq += 1;
        }
        s.poll_frame(now + 10 * MS, &mut out, &mut push);
        if i >= 110 && with_sid {
            // Comfort noise is being generated at about -50 dBov (RMS 104).
            let rms = (out.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 160.0).sqrt();
            assert!(rms > 70.0 && rms < 150.0, "tick {i}: rms {rms}");
        }
        let now2 = now + 15 * MS;
        if s.poll_timeout() <= now2 {
            s.handle_timeout(now2, &mut |e| ev.push((now2, e)));
        }
    }
    (ev, s)
}

#[test]
fn sid_is_remembered_and_quiet_reports_it() {
    let (ev, s) = talk_then_stop(true);
    let kinds: Vec<_> = ev.iter().map(|(_, e)| *e).collect();
    assert!(
        kinds.contains(&Event::SidSeen {
            at: t(2000),
            level: 50
        }),
        "{kinds:?}"
    );
    let quiet = kinds.iter().find_map(|e| match e {
        Event::MediaQuiet {
            last_packet,
            sid_before,
        } => Some((*last_packet, *sid_before)),
        _ => None,
    });
    assert_eq!(quiet, Some((t(2000), true)));
    let sid = s.sid_status();
    assert_eq!(
        (sid.first, sid.last, sid.level, sid.since_last_audio),
        (Some(t(2000)), Some(t(2000)), Some(50), true)
    );
    // Quiet is reported after the configured 5 s.
    let at = ev
        .iter()
        .find(|(_, e)| matches!(e, Event::MediaQuiet { .. }))
        .unwrap()
        .0;
    assert!(at >= t(7000) && at <= t(7020), "{at:?}");
}

#[test]
fn quiet_without_sid_is_flagged_as_such() {
    let (ev, s) = talk_then_stop(false);
    assert!(ev.iter().any(|(_, e)| matches!(
        e,
        Event::MediaQuiet {
            sid_before: false,
            ..
        }
    )));
    assert!(!ev.iter().any(|(_, e)| matches!(e, Event::SidSeen { .. })));
    assert_eq!(s.sid_status().first, None);
}

#[test]
fn voice_activity_follows_talk_and_ignores_comfort_noise() {
    let (ev, s) = talk_then_stop(true);
    let starts: Vec<_> = ev
        .iter()
        .filter(|(_, e)| matches!(e, Event::TalkStart { .. }))
        .collect();
    let stops: Vec<_> = ev
        .iter()
        .filter_map(|(_, e)| match e {
            Event::TalkStop { at, started } => Some((*at, *started)),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 1, "{ev:?}");
    assert_eq!(stops.len(), 1, "{ev:?}");
    let (stop, started) = stops[0];
    // Talk began within the first 100 ms of playout and ended ~hangover after 2 s.
    assert!(started <= t(100), "{started:?}");
    assert!(stop >= t(2000) && stop <= t(2600), "{stop:?}");
    assert_eq!(s.active_since(), None);
}

#[test]
fn active_since_measures_continuous_talk() {
    let mut s = stream();
    let mut out = [0i16; 160];
    let payload: Vec<u8> = (0..160)
        .map(|k| g711::ulaw_encode((7000.0 * (k as f64 * 0.2).sin()) as i16))
        .collect();
    let mut first = None;
    for i in 0..500u64 {
        let now = t(i * 20);
        s.handle_rtp(
            now,
            SRC,
            rtp(4, i as u16, (i * 160) as u32, 0, &payload),
            &mut |_| {},
        )
        .unwrap();
        s.poll_frame(now + 10 * MS, &mut out, &mut |e| {
            if let Event::TalkStart { at } = e {
                first.get_or_insert(at);
            }
        });
    }
    let since = s.active_since().expect("still talking");
    assert_eq!(Some(since), first);
    assert!(t(499 * 20) - since >= Duration::from_secs(9));
}

#[test]
fn rtcp_report_blocks_rtt_and_timeout() {
    let ntp = NtpClock {
        ntp_at_zero: 3_800_000_000u64 << 32,
    };
    let mut s = ReceiveStream::new(
        ReceiveConfig {
            rtcp: RtcpConfig {
                ntp,
                ..Default::default()
            },
            ..Default::default()
        },
        t(0),
    )
    .unwrap();
    s.set_local_ssrc(0xabc);
    let mut ev = Vec::new();
    let audio = [0xffu8; 160];
    for i in 0..50u16 {
        if i % 10 == 3 {
            continue; // 10% loss
        }
        s.handle_rtp(
            t(u64::from(i) * 20),
            SRC,
            rtp(5, i, u32::from(i) * 160, 0, &audio),
            &mut |e| ev.push(e),
        )
        .unwrap();
        s.on_rtp_sent();
    }
    // The participant's SR at t=1000 ms, NTP 0x0001_0002_0003_0004.
    let mut buf = [0u8; 128];
    let mut w = RtcpWriter::new(&mut buf);
    let info = SenderInfo {
        ssrc: 5,
        ntp_timestamp: 0x0001_0002_0003_0004,
        rtp_timestamp: 8000,
        packet_count: 50,
        octet_count: 8000,
    };
    // Its report block about our stream: our SR left at t=500 ms, held 200 ms.
    let our_lsr = ntp.mid32(t(500));
    let block = ReportBlock {
        ssrc: 0xabc,
        last_sr: our_lsr,
        delay_since_last_sr: 65536 / 5,
        ..Default::default()
    };
    w.sender_report(&info, &[block]).unwrap();
    w.sdes_cname(5, b"phone@example").unwrap();
    let pkt = w.finish().to_vec();
    s.handle_rtcp(t(1000), SRC, &pkt, &mut |e| ev.push(e))
        .unwrap();
    let rtt = s.rtt().unwrap();
    assert!((rtt.as_secs_f64() - 0.3).abs() < 0.001, "{rtt:?}");
    assert_eq!(s.last_rtcp(), Some(t(1000)));
    // Our next report carries loss, LSR and DLSR about the participant.
    let due = s.poll_timeout();
    assert!(
        due <= t(0) + Duration::from_millis(3100),
        "initial report within 1.5 * 2.5 s / 1.218"
    );
    let mut report = None;
    let mut now = t(1000);
    while report.is_none() {
        now = now.max(s.poll_timeout());
        report = s.poll_rtcp(now);
        s.handle_timeout(now, &mut |e| ev.push(e));
    }
    let report = report.unwrap();
    assert!(report.sender_report);
    assert_eq!(report.ntp, ntp.ntp(now));
    let b = report.block.unwrap();
    assert_eq!(b.ssrc, 5);
    assert_eq!(b.extended_highest_seq, 49);
    assert_eq!(b.cumulative_lost, 5);
    assert_eq!(b.fraction_lost, (5 * 256 / 50) as u8);
    assert_eq!(b.last_sr, 0x0002_0003);
    let dlsr = (now - t(1000)).as_secs_f64() * 65536.0;
    assert!((f64::from(b.delay_since_last_sr) - dlsr).abs() <= 1.0);
    s.on_rtcp_sent(120);
    // No more RTCP: a timeout after 30 s, once.
    let mut n = 0;
    let mut now = t(1000);
    while now < t(70_000) {
        now = s.poll_timeout().max(now + MS);
        s.handle_timeout(now, &mut |e| {
            if let Event::RtcpTimeout { last_seen } = e {
                assert_eq!(last_seen, t(1000));
                n += 1;
            }
        });
        let _ = s.poll_rtcp(now);
    }
    assert_eq!(n, 1);
    assert!(ev.contains(&Event::RtcpSeen { at: t(1000) }));
}

#[test]
fn rtcp_intervals_are_within_rfc3550_bounds() {
    let mut s = stream();
    let mut sends = Vec::new();
    while sends.len() < 100 {
        let now = s.poll_timeout();
        s.on_rtp_sent();
        if s.poll_rtcp(now).is_some() {
            s.on_rtcp_sent(100);
            sends.push(now);
        }
        s.handle_timeout(now, &mut |_| {});
    }
    let comp = std::f64::consts::E - 1.5;
    let first = (sends[0] - t(0)).as_secs_f64();
    assert!(
        first >= 2.5 * 0.5 / comp - 1e-6 && first <= 2.5 * 1.5 / comp + 1e-6,
        "{first}"
    );
    for w in sends.windows(2) {
        let d = (w[1] - w[0]).as_secs_f64();
        assert!(
            d >= 5.0 * 0.5 / comp - 1e-6 && d <= 5.0 * 1.5 / comp + 1e-6,
            "{d}"
        );
    }
}
