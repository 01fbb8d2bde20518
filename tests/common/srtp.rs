//! A PCMU client that speaks SRTP with libsrtp2 (the tutti-srtp wrapper): for REST
//! participants with an `srtp` key, on a mixer or through a gateway.

use super::Netns;
use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use tutti_dataplane::codec::g711::{ulaw_decode_slice, ulaw_encode_slice};
use tutti_dataplane::srtp::{Context, MAX_RTP_TRAILER};
use tutti_dataplane::wire::rtp::{RtpHeader, RtpPacket, FIXED_HEADER_LEN};

/// What the REST client heard (8 kHz PCM), and how many packets it sent.
pub struct Heard {
    pub pcm: Vec<i16>,
    pub sent: u32,
    pub unprotect_errors: u32,
    /// The SSRC and sequence number of every packet that authenticated, in order.
    pub received: Vec<(u32, u16)>,
}

/// A PCMU client at `bind` in namespace `ns`, sending `hz` to `tutti` for `secs`
/// protected with context `tx`, unprotecting what tutti sends with `rx`. At packet
/// `tamper_at` it first sends a copy with a flipped payload bit, and after the packet
/// the one before it again.
pub fn srtp_client(
    ns: &Netns,
    bind: SocketAddrV4,
    tutti: SocketAddrV4,
    hz: u32,
    secs: u64,
    (mut tx, mut rx): (Context, Context),
    tamper_at: u32,
) -> std::thread::JoinHandle<Heard> {
    let ns_file = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("namespace file");
    std::thread::spawn(move || {
        nix::sched::setns(&ns_file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let sock = UdpSocket::bind(bind).expect("client socket");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut heard = Heard {
            pcm: Vec::new(),
            sent: 0,
            unprotect_errors: 0,
            received: Vec::new(),
        };
        let (mut buf, mut last) = ([0u8; 1500], Vec::new());
        let (mut pcm, mut payload) = ([0i16; 160], [0u8; 160]);
        let start = Instant::now();
        let mut next = start;
        while start.elapsed() < Duration::from_secs(secs) {
            if Instant::now() >= next {
                let n = heard.sent;
                for (i, s) in pcm.iter_mut().enumerate() {
                    let t = f64::from(n * 160 + i as u32) / 8000.0;
                    *s = (6000.0 * (2.0 * std::f64::consts::PI * f64::from(hz) * t).sin()) as i16;
                }
                ulaw_encode_slice(&pcm, &mut payload);
                let header = RtpHeader {
                    marker: n == 0,
                    payload_type: 0,
                    sequence_number: 1000u16.wrapping_add(n as u16),
                    timestamp: 5000 + n * 160,
                    ssrc: 0x5e55_1011,
                };
                let mut pkt = [0u8; FIXED_HEADER_LEN + 160 + MAX_RTP_TRAILER];
                header.write(&mut pkt).unwrap();
                pkt[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 160].copy_from_slice(&payload);
                let len = tx.protect_rtp(&mut pkt, FIXED_HEADER_LEN + 160).unwrap();
                if n == tamper_at {
                    // First a copy with a bit flipped (its sequence number not seen yet:
                    // authentication fails), then the packet, then the one before again.
                    let mut bad = pkt;
                    bad[FIXED_HEADER_LEN + 3] ^= 0x10;
                    let _ = sock.send_to(&bad[..len], tutti);
                    let _ = sock.send_to(&pkt[..len], tutti);
                    let _ = sock.send_to(&last, tutti);
                } else {
                    let _ = sock.send_to(&pkt[..len], tutti);
                }
                last = pkt[..len].to_vec();
                heard.sent += 1;
                next += Duration::from_millis(20);
            }
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            match rx.unprotect_rtp(&mut buf[..n]) {
                Ok(m) => {
                    if let Ok(p) = RtpPacket::parse(&buf[..m]) {
                        heard.received.push((p.ssrc(), p.sequence_number()));
                        let mut frame = vec![0i16; p.payload().len()];
                        ulaw_decode_slice(p.payload(), &mut frame);
                        heard.pcm.extend_from_slice(&frame);
                    }
                }
                Err(_) => heard.unprotect_errors += 1,
            }
        }
        heard
    })
}
