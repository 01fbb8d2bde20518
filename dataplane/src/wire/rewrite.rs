//! In-place RTP header rewrite (SSRC, sequence number, timestamp, payload type, marker)
//! with an incremental UDP checksum update (RFC 1624, via [`super::checksum`]): what the
//! handover path uses to make mixer B's streams continue mixer A's.
//!
//! The RTP header starts at an even offset of the UDP segment, so each rewritten field
//! covers whole 16-bit words of the checksum.

use thiserror::Error;

use super::checksum::{update16, update32, update_udp16, update_udp32};
use super::eth::{EthHeader, MacAddr, ETHERTYPE_IPV4, HEADER_LEN as ETH_HEADER_LEN};
use super::ipv4::{Ipv4Header, PROTO_UDP};
use super::udp::HEADER_LEN as UDP_HEADER_LEN;
use core::net::SocketAddrV4;

/// Why a packet could not be rewritten (nothing was changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RewriteError {
    /// Too short for the headers.
    #[error("packet too short to rewrite")]
    Truncated,
    /// Not RTP version 2.
    #[error("not an RTP packet")]
    NotRtp,
    /// Not an IPv4/UDP packet (or a fragment, or a bad IPv4 header).
    #[error("not an unfragmented IPv4/UDP packet")]
    NotUdp,
    /// Payload type above 127.
    #[error("payload type {0} out of range")]
    PayloadType(u8),
}

/// The header changes to apply. Sequence numbers and timestamps are shifted (wrapping) by
/// a delta, so a stream keeps its spacing; SSRC, payload type and marker are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RtpRewrite {
    /// New SSRC.
    pub ssrc: Option<u32>,
    /// Added (wrapping) to the sequence number.
    pub seq_delta: u16,
    /// Added (wrapping) to the timestamp.
    pub ts_delta: u32,
    /// New payload type (0..=127).
    pub payload_type: Option<u8>,
    /// New marker bit.
    pub marker: Option<bool>,
}

impl RtpRewrite {
    /// The rewrite that maps a stream whose packet carries (`from_seq`, `from_ts`) onto
    /// another stream `to_ssrc` in which that packet must carry (`to_seq`, `to_ts`).
    pub fn continuing(from_seq: u16, from_ts: u32, to_ssrc: u32, to_seq: u16, to_ts: u32) -> Self {
        RtpRewrite {
            ssrc: Some(to_ssrc),
            seq_delta: to_seq.wrapping_sub(from_seq),
            ts_delta: to_ts.wrapping_sub(from_ts),
            payload_type: None,
            marker: None,
        }
    }
}

fn get16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn get32(b: &[u8], at: usize) -> Option<u32> {
    Some((u32::from(get16(b, at)?) << 16) | u32::from(get16(b, at + 2)?))
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Rewrites the RTP header at the start of `rtp` in place. `csum` is the UDP checksum
/// covering it (0 = none); returns the updated checksum.
pub fn rewrite_rtp(rtp: &mut [u8], rw: &RtpRewrite, csum: u16) -> Result<u16, RewriteError> {
    if rtp.len() < 12 {
        return Err(RewriteError::Truncated);
    }
    if rtp.first().map(|b| b >> 6) != Some(2) {
        return Err(RewriteError::NotRtp);
    }
    if let Some(pt) = rw.payload_type.filter(|&pt| pt > 127) {
        return Err(RewriteError::PayloadType(pt));
    }
    let (Some(w0), Some(seq), Some(ts), Some(ssrc)) =
        (get16(rtp, 0), get16(rtp, 2), get32(rtp, 4), get32(rtp, 8))
    else {
        return Err(RewriteError::Truncated);
    };
    let mut csum = csum;
    let mut new_w0 = w0;
    if let Some(pt) = rw.payload_type {
        new_w0 = (new_w0 & !0x007F) | u16::from(pt);
    }
    if let Some(m) = rw.marker {
        new_w0 = (new_w0 & !0x0080) | (u16::from(m) << 7);
    }
    if new_w0 != w0 {
        put(rtp, 0, &new_w0.to_be_bytes());
        csum = update_udp16(csum, w0, new_w0);
    }
    if rw.seq_delta != 0 {
        let new = seq.wrapping_add(rw.seq_delta);
        put(rtp, 2, &new.to_be_bytes());
        csum = update_udp16(csum, seq, new);
    }
    if rw.ts_delta != 0 {
        let new = ts.wrapping_add(rw.ts_delta);
        put(rtp, 4, &new.to_be_bytes());
        csum = update_udp32(csum, ts, new);
    }
    if let Some(new) = rw.ssrc.filter(|&s| s != ssrc) {
        put(rtp, 8, &new.to_be_bytes());
        csum = update_udp32(csum, ssrc, new);
    }
    Ok(csum)
}

/// Rewrites the RTP packet carried by the UDP segment `udp` (header + payload) and updates
/// the UDP checksum in place.
pub fn rewrite_udp_rtp(udp: &mut [u8], rw: &RtpRewrite) -> Result<(), RewriteError> {
    let csum = get16(udp, 6).ok_or(RewriteError::Truncated)?;
    let rtp = udp
        .get_mut(UDP_HEADER_LEN..)
        .ok_or(RewriteError::Truncated)?;
    let csum = rewrite_rtp(rtp, rw, csum)?;
    put(udp, 6, &csum.to_be_bytes());
    Ok(())
}

/// Rewrites the RTP packet in the IPv4/UDP packet `ip` (starting at the IPv4 header). The
/// IPv4 header checksum is unaffected (no IP field changes).
pub fn rewrite_ipv4_udp_rtp(ip: &mut [u8], rw: &RtpRewrite) -> Result<(), RewriteError> {
    let h = Ipv4Header::parse(ip).map_err(|_| RewriteError::NotUdp)?;
    if h.protocol != PROTO_UDP || h.is_fragment {
        return Err(RewriteError::NotUdp);
    }
    let udp = ip
        .get_mut(h.header_len..h.total_len)
        .ok_or(RewriteError::Truncated)?;
    rewrite_udp_rtp(udp, rw)
}

/// Map the sender SSRC (replaced by `rw.ssrc`) and, in a sender report, the RTP
/// timestamp (shifted by `rw.ts_delta`) of the first packet of the RTCP compound carried
/// by UDP segment `udp`, updating the UDP checksum: the reports that go with a rewritten
/// RTP stream. Anything but an SR or RR first is left alone.
pub fn rewrite_udp_rtcp_sender(udp: &mut [u8], rw: &RtpRewrite) {
    let rtcp = UDP_HEADER_LEN;
    let pt = udp.get(rtcp + 1).copied();
    if !matches!(pt, Some(200 | 201)) {
        return;
    }
    let Some(mut csum) = get16(udp, 6) else {
        return;
    };
    let mut map = |udp: &mut [u8], at: usize, f: &dyn Fn(u32) -> u32| {
        if let Some(old) = get32(udp, at) {
            let new = f(old);
            put(udp, at, &new.to_be_bytes());
            csum = update_udp32(csum, old, new);
        }
    };
    if let Some(ssrc) = rw.ssrc {
        map(udp, rtcp + 4, &|_| ssrc);
    }
    if pt == Some(200) {
        map(udp, rtcp + 16, &|ts| ts.wrapping_add(rw.ts_delta));
    }
    put(udp, 6, &csum.to_be_bytes());
}

/// Readdress the Ethernet/IPv4/UDP frame `frame` in place: new MACs, IPv4 source and
/// destination (TTL reset to 64), UDP ports, with the IPv4 header checksum and the UDP
/// checksum (pseudo-header and ports) updated incrementally (RFC 1624) — the payload is
/// not read, so it may live in another buffer segment. `frame` must hold at least the
/// Ethernet, IPv4 and UDP headers.
pub fn readdress(
    frame: &mut [u8],
    macs: (MacAddr, MacAddr),
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Result<(), RewriteError> {
    let ip_at = ETH_HEADER_LEN;
    let ihl = usize::from(frame.get(ip_at).ok_or(RewriteError::Truncated)? & 0x0f) * 4;
    let udp_at = ip_at + ihl;
    if ihl < 20 || frame.len() < udp_at + UDP_HEADER_LEN {
        return Err(RewriteError::Truncated);
    }
    if frame[ip_at + 9] != PROTO_UDP {
        return Err(RewriteError::NotUdp);
    }
    let (old_src, old_dst) = (get32(frame, ip_at + 12), get32(frame, ip_at + 16));
    let (old_sp, old_dp) = (get16(frame, udp_at), get16(frame, udp_at + 2));
    let (Some(old_src), Some(old_dst), Some(old_sp), Some(old_dp)) =
        (old_src, old_dst, old_sp, old_dp)
    else {
        return Err(RewriteError::Truncated);
    };
    let (new_src, new_dst) = (u32::from(*src.ip()), u32::from(*dst.ip()));
    // IPv4 header: TTL (shares a word with the protocol) and the two addresses.
    let old_ttl_proto = get16(frame, ip_at + 8).unwrap_or(0);
    let new_ttl_proto = (64u16 << 8) | (old_ttl_proto & 0xff);
    let mut ipc = get16(frame, ip_at + 10).unwrap_or(0);
    ipc = update16(ipc, old_ttl_proto, new_ttl_proto);
    ipc = update32(ipc, old_src, new_src);
    ipc = update32(ipc, old_dst, new_dst);
    put(frame, ip_at + 8, &new_ttl_proto.to_be_bytes());
    put(frame, ip_at + 10, &ipc.to_be_bytes());
    put(frame, ip_at + 12, &new_src.to_be_bytes());
    put(frame, ip_at + 16, &new_dst.to_be_bytes());
    // UDP: the pseudo-header addresses and the ports.
    let mut uc = get16(frame, udp_at + 6).unwrap_or(0);
    uc = update_udp32(uc, old_src, new_src);
    uc = update_udp32(uc, old_dst, new_dst);
    uc = update_udp16(uc, old_sp, src.port());
    uc = update_udp16(uc, old_dp, dst.port());
    put(frame, udp_at, &src.port().to_be_bytes());
    put(frame, udp_at + 2, &dst.port().to_be_bytes());
    put(frame, udp_at + 6, &uc.to_be_bytes());
    EthHeader {
        dst: macs.1,
        src: macs.0,
        ethertype: ETHERTYPE_IPV4,
    }
    .write(frame);
    Ok(())
}

/// The UDP payload of the Ethernet/IPv4/UDP frame `frame` (UDP header at `udp_at`) was
/// changed in place and is now `payload_len` bytes (SRTP protected or unprotected it):
/// set the UDP and IPv4 lengths, update the IPv4 checksum and compute the UDP checksum
/// over the new segment. `frame` must end where the datagram does.
pub fn resize_udp_payload(
    frame: &mut [u8],
    udp_at: usize,
    payload_len: usize,
) -> Result<(), RewriteError> {
    let ip_at = ETH_HEADER_LEN;
    let end = udp_at + UDP_HEADER_LEN + payload_len;
    if udp_at < ip_at + 20 || frame.len() != end {
        return Err(RewriteError::Truncated);
    }
    let udp_len = u16::try_from(UDP_HEADER_LEN + payload_len).map_err(|_| RewriteError::NotUdp)?;
    let total = u16::try_from(end - ip_at).map_err(|_| RewriteError::NotUdp)?;
    let old_total = get16(frame, ip_at + 2).ok_or(RewriteError::Truncated)?;
    let ipc = get16(frame, ip_at + 10).ok_or(RewriteError::Truncated)?;
    put(frame, ip_at + 2, &total.to_be_bytes());
    put(
        frame,
        ip_at + 10,
        &update16(ipc, old_total, total).to_be_bytes(),
    );
    let (src, dst) = (get32(frame, ip_at + 12), get32(frame, ip_at + 16));
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(RewriteError::Truncated);
    };
    put(frame, udp_at + 4, &udp_len.to_be_bytes());
    put(frame, udp_at + 6, &[0, 0]);
    let seg = frame.get(udp_at..end).ok_or(RewriteError::Truncated)?;
    let c = super::checksum::udp4(src.into(), dst.into(), seg);
    put(frame, udp_at + 6, &c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use crate::wire::rtp::{RtpHeader, RtpPacket};
    use std::net::Ipv4Addr;

    fn udp_rtp(src: Ipv4Addr, dst: Ipv4Addr, h: &RtpHeader) -> Vec<u8> {
        let mut seg = vec![0u8; 8 + 12 + 5];
        h.write(&mut seg[8..]).unwrap();
        seg[20..].copy_from_slice(&[1, 2, 3, 4, 5]);
        seg[0..2].copy_from_slice(&5004u16.to_be_bytes());
        seg[2..4].copy_from_slice(&40000u16.to_be_bytes());
        let len = seg.len() as u16;
        seg[4..6].copy_from_slice(&len.to_be_bytes());
        let c = checksum::udp4(src, dst, &seg);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        seg
    }

    /// An IPv4 packet (20-byte header, checksum set) carrying UDP segment `seg`.
    fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, seg: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
        ip[8] = ttl;
        ip[9] = PROTO_UDP;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(seg);
        ip
    }

    #[test]
    fn incremental_checksum_matches_recompute() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let h = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence_number: 65530,
            timestamp: u32::MAX - 100,
            ssrc: 0x1234_5678,
        };
        let mut seg = udp_rtp(src, dst, &h);
        let rw = RtpRewrite {
            ssrc: Some(0xDEAD_BEEF),
            seq_delta: 10,
            ts_delta: 1000,
            payload_type: Some(8),
            marker: Some(true),
        };
        rewrite_udp_rtp(&mut seg, &rw).unwrap();
        let p = RtpPacket::parse(&seg[8..]).unwrap();
        assert_eq!(
            (
                p.ssrc(),
                p.sequence_number(),
                p.timestamp(),
                p.payload_type(),
                p.marker()
            ),
            (0xDEAD_BEEF, 4, 899, 8, true)
        );
        let stored = u16::from_be_bytes([seg[6], seg[7]]);
        seg[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(stored, checksum::udp4(src, dst, &seg));
    }

    #[test]
    fn continuing_maps_stream_b_onto_a() {
        let rw = RtpRewrite::continuing(100, 8000, 0xAAAA, 65535, 4_294_967_000);
        let mut pkt = [0u8; 12];
        RtpHeader {
            sequence_number: 101,
            timestamp: 8160,
            ssrc: 0xBBBB,
            ..RtpHeader::default()
        }
        .write(&mut pkt)
        .unwrap();
        assert_eq!(
            rewrite_rtp(&mut pkt, &rw, 0),
            Ok(0),
            "zero UDP checksum stays zero"
        );
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(
            (p.ssrc(), p.sequence_number(), p.timestamp()),
            (0xAAAA, 0, 4_294_967_160)
        );
    }

    #[test]
    fn rejects_without_touching() {
        let mut short = [0x80u8; 11];
        assert_eq!(
            rewrite_rtp(&mut short, &RtpRewrite::default(), 1),
            Err(RewriteError::Truncated)
        );
        let mut not_rtp = [0u8; 12];
        assert_eq!(
            rewrite_rtp(&mut not_rtp, &RtpRewrite::default(), 1),
            Err(RewriteError::NotRtp)
        );
        assert_eq!(not_rtp, [0u8; 12]);
        let mut pkt = [0x80u8; 12];
        let rw = RtpRewrite {
            payload_type: Some(200),
            ..RtpRewrite::default()
        };
        assert_eq!(
            rewrite_rtp(&mut pkt, &rw, 1),
            Err(RewriteError::PayloadType(200))
        );
        assert_eq!(pkt, [0x80u8; 12]);
        assert_eq!(
            rewrite_udp_rtp(&mut [0u8; 7], &rw),
            Err(RewriteError::Truncated)
        );
        assert_eq!(
            rewrite_ipv4_udp_rtp(&mut [0u8; 30], &rw),
            Err(RewriteError::NotUdp)
        );
    }

    #[test]
    fn ipv4_wrapper_finds_udp() {
        let (src, dst) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));
        let seg = udp_rtp(
            src,
            dst,
            &RtpHeader {
                ssrc: 1,
                ..RtpHeader::default()
            },
        );
        let mut ip = ipv4_packet(src, dst, 64, &seg);
        rewrite_ipv4_udp_rtp(
            &mut ip,
            &RtpRewrite {
                ssrc: Some(2),
                ..RtpRewrite::default()
            },
        )
        .unwrap();
        assert_eq!(RtpPacket::parse(&ip[28..]).unwrap().ssrc(), 2);
        let mut seg2 = ip[20..].to_vec();
        let stored = u16::from_be_bytes([seg2[6], seg2[7]]);
        seg2[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(stored, checksum::udp4(src, dst, &seg2));
        assert!(checksum::verifies(&ip[..20]));
    }

    #[test]
    fn rtcp_sender_reports_follow_the_rtp_rewrite() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 1));
        // UDP header + SR (header, SSRC, NTP, RTP timestamp, counts).
        let mut seg = vec![0u8; 8 + 28];
        seg[4..6].copy_from_slice(&36u16.to_be_bytes());
        seg[8..12].copy_from_slice(&[0x80, 200, 0, 6]);
        seg[12..16].copy_from_slice(&0xBBBBu32.to_be_bytes());
        seg[24..28].copy_from_slice(&1000u32.to_be_bytes());
        let c = checksum::udp4(src, dst, &seg);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        let rw = RtpRewrite {
            ssrc: Some(0xAAAA),
            ts_delta: 500,
            ..RtpRewrite::default()
        };
        rewrite_udp_rtcp_sender(&mut seg, &rw);
        assert_eq!(
            (get32(&seg, 12), get32(&seg, 24)),
            (Some(0xAAAA), Some(1500))
        );
        let stored = get16(&seg, 6).unwrap();
        seg[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(stored, checksum::udp4(src, dst, &seg));
        // An RR gets the SSRC only; anything else is left alone.
        let mut rr = [0u8; 8 + 8];
        rr[8..12].copy_from_slice(&[0x80, 201, 0, 1]);
        rewrite_udp_rtcp_sender(&mut rr, &rw);
        assert_eq!(get32(&rr, 12), Some(0xAAAA));
        let mut bye = [0u8; 8 + 8];
        bye[8..12].copy_from_slice(&[0x81, 203, 0, 1]);
        rewrite_udp_rtcp_sender(&mut bye, &rw);
        assert_eq!(get32(&bye, 12), Some(0));
    }

    #[test]
    fn readdress_keeps_both_checksums_valid() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1));
        let seg = udp_rtp(src, dst, &RtpHeader::default());
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&ipv4_packet(src, dst, 61, &seg));
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 9]));
        let new_src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 30000);
        let new_dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 20002);
        readdress(&mut frame, (a, b), new_src, new_dst).unwrap();
        let e = EthHeader::parse(&frame).unwrap();
        assert_eq!((e.src, e.dst, e.ethertype), (a, b, ETHERTYPE_IPV4));
        let h = Ipv4Header::parse(&frame[14..]).expect("IPv4 checksum still valid");
        assert_eq!((h.src, h.dst, h.ttl), (*new_src.ip(), *new_dst.ip(), 64));
        let mut seg2 = frame[34..].to_vec();
        assert_eq!(get16(&seg2, 0), Some(30000));
        assert_eq!(get16(&seg2, 2), Some(20002));
        let stored = u16::from_be_bytes([seg2[6], seg2[7]]);
        seg2[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(stored, checksum::udp4(h.src, h.dst, &seg2));
        assert_eq!(
            readdress(&mut frame[..40], (a, b), new_src, new_dst),
            Err(RewriteError::Truncated)
        );
    }

    #[test]
    fn a_resized_payload_gets_valid_lengths_and_checksums() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1));
        let seg = udp_rtp(src, dst, &RtpHeader::default());
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&ipv4_packet(src, dst, 61, &seg));
        let udp_at = 34;
        let payload = frame.len() - udp_at - UDP_HEADER_LEN;
        // Grown by a 10-byte trailer, as SRTP protection does, then shrunk back.
        for (len, fill) in [(payload + 10, 0xa5u8), (payload, 0x5a)] {
            frame.resize(udp_at + UDP_HEADER_LEN + len, fill);
            if let Some(b) = frame.get_mut(udp_at + UDP_HEADER_LEN + 12) {
                *b = fill;
            }
            resize_udp_payload(&mut frame, udp_at, len).unwrap();
            let h = Ipv4Header::parse(&frame[14..]).expect("IPv4 checksum valid");
            assert_eq!(h.total_len, frame.len() - 14);
            let mut seg2 = frame[udp_at..].to_vec();
            assert_eq!(usize::from(get16(&seg2, 4).unwrap()), seg2.len());
            let stored = get16(&seg2, 6).unwrap();
            seg2[6..8].copy_from_slice(&[0, 0]);
            assert_eq!(stored, checksum::udp4(h.src, h.dst, &seg2));
        }
        let n = frame.len();
        assert_eq!(
            resize_udp_payload(&mut frame, udp_at, n),
            Err(RewriteError::Truncated)
        );
    }
}
