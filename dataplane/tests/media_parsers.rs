//! Arbitrary bytes never make the media parsers, the rewrite path or the mixer input panic
//! (the fuzz targets in dataplane/fuzz/ explore the same entry points more deeply).

use proptest::prelude::*;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::mixer::{Input, Mixer, MixerConfig, ParticipantConfig};
use tutti_dataplane::wire::rewrite::{
    rewrite_ipv4_udp_rtp, rewrite_rtp, rewrite_udp_rtp, RtpRewrite,
};
use tutti_dataplane::wire::rtcp::{classify, RtcpCompound, RtcpPacket};
use tutti_dataplane::wire::rtp::{RtpPacket, RtpPacketMut};
use tutti_dataplane::wire::rtp_ext::{AudioLevel, ExtensionElements, ExtensionForm};

/// Bytes that look like RTP/RTCP often enough to reach deep code paths.
fn packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (prop::collection::vec(any::<u8>(), 0..200), 0x80u8..0xC0).prop_map(|(mut v, b0)| {
            if let Some(f) = v.first_mut() {
                *f = b0;
            }
            v
        }),
    ]
}

fn walk_rtcp(buf: &[u8]) -> usize {
    let Ok(c) = RtcpCompound::parse(buf) else {
        return 0;
    };
    let mut n = usize::from(c.starts_with_report());
    for p in c.packets() {
        n += match p {
            RtcpPacket::SenderReport(sr) => {
                sr.report_blocks().count() + sr.sender_info().packet_count as usize % 2
            }
            RtcpPacket::ReceiverReport(rr) => rr.report_blocks().count(),
            RtcpPacket::Sdes(s) => s
                .chunks()
                .map(|c| c.items().count() + c.cname().map_or(0, <[u8]>::len))
                .sum(),
            RtcpPacket::Bye(b) => b.ssrcs().count() + b.reason().map_or(0, <[u8]>::len),
            RtcpPacket::App(a) => a.data.len(),
            RtcpPacket::Other { body, .. } => body.len(),
        };
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rtp_parse_never_panics(buf in packet_bytes()) {
        if let Ok(p) = RtpPacket::parse(&buf) {
            prop_assert!(p.header_len() + p.payload().len() + p.padding_len() == buf.len());
            let _ = (p.marker(), p.payload_type(), p.sequence_number(), p.timestamp(), p.ssrc());
            prop_assert_eq!(p.csrcs().count(), usize::from(p.csrc_count()));
            for e in p.extension_elements().flatten() {
                let _ = AudioLevel::parse(e.data);
            }
        }
        let mut copy = buf.clone();
        if let Ok(mut m) = RtpPacketMut::parse(&mut copy) {
            m.set_sequence_number(1);
            m.set_ssrc(2);
            m.payload_mut().fill(0);
        }
        let _ = classify(&buf);
    }

    #[test]
    fn rtcp_parse_never_panics(buf in packet_bytes()) {
        let _ = walk_rtcp(&buf);
    }

    #[test]
    fn extension_parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..64), two in any::<bool>()) {
        let form = if two { ExtensionForm::TwoByte } else { ExtensionForm::OneByte };
        let mut total = 0;
        for e in ExtensionElements::new(form, &data) {
            match e {
                Ok(e) => total += e.data.len(),
                Err(_) => break,
            }
        }
        prop_assert!(total <= data.len());
    }

    #[test]
    fn rewrite_never_panics(buf in packet_bytes(), ssrc in any::<u32>(), seq in any::<u16>(), ts in any::<u32>(), pt in any::<u8>()) {
        let rw = RtpRewrite { ssrc: Some(ssrc), seq_delta: seq, ts_delta: ts, payload_type: Some(pt), marker: Some(true) };
        let mut a = buf.clone();
        let _ = rewrite_rtp(&mut a, &rw, 0x1234);
        let mut b = buf.clone();
        let _ = rewrite_udp_rtp(&mut b, &rw);
        let mut c = buf.clone();
        let _ = rewrite_ipv4_udp_rtp(&mut c, &rw);
        prop_assert_eq!(a.len(), buf.len());
    }

    #[test]
    fn mixer_input_never_panics(payload in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut m = Mixer::new(MixerConfig { capacity: 3, ..MixerConfig::default() }).unwrap();
        for codec in CodecKind::ALL {
            let s = m.add_participant(ParticipantConfig::new(codec)).unwrap();
            let _ = m.set_input(s, Input::Encoded(&payload));
        }
        m.tick(Instant::ZERO);
    }
}
