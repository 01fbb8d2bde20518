#![no_main]
//! A whole receive stream fed arbitrary RTP fields, payloads and RTCP.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::rx::{ReceiveConfig, ReceiveStream, RtpIn};

fuzz_target!(|data: &[u8]| {
    let src = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4000);
    let Ok(mut s) = ReceiveStream::new(ReceiveConfig::default(), Instant::ZERO) else {
        return;
    };
    let mut now = Instant::ZERO;
    let mut out = [0i16; 160];
    let mut rest = data;
    // Records: [len, step_ms, pt, seq_hi, seq_lo, ts(4), flags] + len payload bytes.
    while let Some((head, tail)) = rest.split_first_chunk::<10>() {
        let len = usize::from(head[0]);
        let payload = tail.get(..len).unwrap_or(tail);
        rest = tail.get(len..).unwrap_or(&[]);
        now += Duration::from_millis(u64::from(head[1]));
        let pkt = RtpIn {
            ssrc: u32::from(head[9] & 1),
            seq: u16::from_be_bytes([head[3], head[4]]),
            timestamp: u32::from_be_bytes([head[5], head[6], head[7], head[8]]),
            payload_type: head[2] & 0x7f,
            payload,
            audio_level: (head[9] & 2 != 0).then_some((head[9] & 4 != 0, head[9] >> 1)),
        };
        if head[9] & 8 != 0 {
            let _ = s.handle_rtcp(now, src, payload, &mut |_| {});
        } else {
            let _ = s.handle_rtp(now, src, pkt, &mut |_| {});
        }
        s.poll_frame(now, &mut out, &mut |_| {});
        if s.poll_timeout() <= now {
            s.handle_timeout(now, &mut |_| {});
        }
        let _ = s.poll_rtcp(now);
    }
});
