//! RTP parsing, field access, header-extension walking and in-place field setters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::wire::rtcp::classify;
use tutti_dataplane::wire::rtp::{RtpPacket, RtpPacketMut};
use tutti_dataplane::wire::rtp_ext::AudioLevel;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    if let Ok(p) = RtpPacket::parse(data) {
        assert_eq!(
            p.header_len() + p.payload().len() + p.padding_len(),
            data.len()
        );
        assert_eq!(p.csrcs().count(), usize::from(p.csrc_count()));
        let _ = (
            p.marker(),
            p.payload_type(),
            p.sequence_number(),
            p.timestamp(),
            p.ssrc(),
        );
        for e in p.extension_elements().flatten() {
            let _ = AudioLevel::parse(e.data);
        }
    }
    let mut copy = data.to_vec();
    if let Ok(mut m) = RtpPacketMut::parse(&mut copy) {
        m.set_marker(true);
        m.set_payload_type(0xFF);
        m.set_sequence_number(0xFFFF);
        m.set_timestamp(u32::MAX);
        m.set_ssrc(1);
        m.payload_mut().fill(0);
        let p = m.as_packet();
        assert_eq!((p.payload_type(), p.ssrc()), (0x7F, 1));
    }
});
