//! Arbitrary bytes never panic the receive path's parsers or state machines.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use proptest::prelude::*;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::rx::cn::Sid;
use tutti_dataplane::rx::dtmf::TelephoneEvent;
use tutti_dataplane::rx::{wav, ReceiveConfig, ReceiveStream, RtpIn};

proptest! {
    #[test]
    fn telephone_event_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..16)) {
        let r = TelephoneEvent::parse(&b);
        prop_assert_eq!(r.is_ok(), b.len() >= 4);
    }

    #[test]
    fn sid_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(s) = Sid::parse(&b) {
            prop_assert!(s.level < 128);
            prop_assert!(s.reflection.iter().all(|k| k.abs() < 1.0));
        }
    }

    #[test]
    fn wav_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = wav::parse(&b);
        // Also with a valid-looking RIFF/WAVE prefix so chunk walking is exercised.
        let mut w = b"RIFF\0\0\0\0WAVE".to_vec();
        w.extend_from_slice(&b);
        let _ = wav::parse(&w);
    }

    #[test]
    fn stream_survives_arbitrary_packets(
        pkts in proptest::collection::vec(
            (any::<u32>(), any::<u16>(), any::<u32>(), prop_oneof![Just(0u8), Just(8), Just(13), Just(101), any::<u8>()],
             proptest::collection::vec(any::<u8>(), 0..400), any::<bool>(), 0u64..100, any::<Option<(bool, u8)>>()),
            1..60),
        rtcp in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 4000);
        let mut s = ReceiveStream::new(ReceiveConfig::default(), Instant::ZERO).unwrap();
        let mut now = Instant::ZERO;
        let mut out = [0i16; 160];
        let mut events = 0usize;
        for (ssrc, seq, ts, pt, payload, same_ssrc, step, level) in pkts {
            now += Duration::from_millis(step);
            let pkt = RtpIn {
                ssrc: if same_ssrc { 1 } else { ssrc },
                seq,
                timestamp: ts,
                payload_type: pt & 0x7f,
                payload: &payload,
                audio_level: level,
            };
            let _ = s.handle_rtp(now, src, pkt, &mut |_| events += 1);
            let _ = s.handle_rtcp(now, src, &rtcp, &mut |_| events += 1);
            s.poll_frame(now, &mut out, &mut |_| events += 1);
            if s.poll_timeout() <= now {
                s.handle_timeout(now, &mut |_| events += 1);
            }
            let _ = s.poll_rtcp(now);
        }
        prop_assert!(events < 10_000);
    }
}
