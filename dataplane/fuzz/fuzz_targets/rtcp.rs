//! RTCP compound validation and every typed view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::wire::rtcp::{RtcpCompound, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = RtcpCompound::parse(data) else {
        return;
    };
    let _ = c.starts_with_report();
    for p in c.packets() {
        match p {
            RtcpPacket::SenderReport(sr) => {
                let _ = sr.sender_info();
                let _ = sr.report_blocks().count();
            }
            RtcpPacket::ReceiverReport(rr) => {
                let _ = (rr.ssrc(), rr.report_blocks().count());
            }
            RtcpPacket::Sdes(s) => {
                for chunk in s.chunks() {
                    let _ = (chunk.items().count(), chunk.cname());
                }
            }
            RtcpPacket::Bye(b) => {
                let _ = (b.ssrcs().count(), b.reason());
            }
            RtcpPacket::App(_) | RtcpPacket::Other { .. } => {}
        }
    }
});
