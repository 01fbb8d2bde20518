//! In-place RTP rewrite on arbitrary RTP, UDP and IPv4 buffers; when it succeeds on a UDP
//! segment the checksum must still be consistent with a full recomputation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::wire::checksum;
use tutti_dataplane::wire::rewrite::{
    rewrite_ipv4_udp_rtp, rewrite_rtp, rewrite_udp_rtp, RtpRewrite,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let (params, packet) = data.split_at(12);
    let rw = RtpRewrite {
        ssrc: (params[0] & 1 != 0)
            .then(|| u32::from_be_bytes([params[1], params[2], params[3], params[4]])),
        seq_delta: u16::from_be_bytes([params[5], params[6]]),
        ts_delta: u32::from_be_bytes([params[7], params[8], params[9], params[10]]),
        payload_type: (params[0] & 2 != 0).then_some(params[11]),
        marker: (params[0] & 4 != 0).then_some(params[0] & 8 != 0),
    };
    let mut a = packet.to_vec();
    let _ = rewrite_rtp(&mut a, &rw, 0xABCD);

    // A UDP segment whose checksum covers a fixed pseudo-header: compare incremental and
    // full recomputation.
    let src = core::net::Ipv4Addr::new(198, 18, 0, 1);
    let dst = core::net::Ipv4Addr::new(198, 18, 0, 2);
    let mut seg = packet.to_vec();
    if seg.len() >= 8 {
        seg[6] = 0;
        seg[7] = 0;
        let full = checksum::udp4(src, dst, &seg);
        seg[6..8].copy_from_slice(&full.to_be_bytes());
        if rewrite_udp_rtp(&mut seg, &rw).is_ok() {
            let stored = u16::from_be_bytes([seg[6], seg[7]]);
            seg[6] = 0;
            seg[7] = 0;
            assert_eq!(stored, checksum::udp4(src, dst, &seg));
        }
    }
    let mut ip = packet.to_vec();
    let _ = rewrite_ipv4_udp_rtp(&mut ip, &rw);
});
