//! What a received frame is: something the dataplane answers (ARP for its address, ICMP
//! echo), a UDP datagram to its address (media, or the kernel's when the port is not a
//! media port), something for the kernel behind the exception port, or a drop.

use super::{arp, icmp, PortAddr};
use crate::clock::Instant;
use crate::io::PacketBuf;
use crate::neigh::NeighTable;
use crate::stats::{CoreCounters, DropReason};
use crate::wire::{self, eth, ipv4, udp};
use core::net::SocketAddrV4;

/// What became of a received frame that was not dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It was turned into a reply in place: send it.
    Reply,
    /// An ARP request for our address, not yet answered (the kernel gets a copy first).
    ArpRequest(wire::arp::Arp),
    /// A valid UDP datagram to our address: payload at `start..end` of the frame.
    Udp {
        src: SocketAddrV4,
        dst_port: u16,
        start: usize,
        end: usize,
    },
    /// The kernel's (TCP, non-echo ICMP, fragments, other EtherTypes, group frames, ARP
    /// replies): goes whole to the exception port. Without one it is dropped for the
    /// reason given, or used up uncounted when `None` (an ARP reply learned from).
    Kernel(Option<DropReason>),
}

/// Decide what to do with one received frame: answer it in place, hand it on, or drop
/// it with a reason.
pub fn classify<B: PacketBuf>(
    buf: &mut B,
    addr: &PortAddr,
    neigh: &mut NeighTable,
    now: Instant,
    c: &CoreCounters,
) -> Result<Verdict, DropReason> {
    let frame = buf.data();
    let eh = eth::EthHeader::parse(frame).ok_or(DropReason::Malformed)?;
    // Unicast to us, broadcast or multicast (the kernel may want group frames).
    if eh.dst != addr.mac && !eh.dst.is_multicast() {
        return Err(DropReason::NotForUs);
    }
    match eh.ethertype {
        eth::ETHERTYPE_ARP => arp::classify(frame, addr, neigh, now),
        eth::ETHERTYPE_IPV4 => {
            let ip_pkt = frame.get(eth::HEADER_LEN..).ok_or(DropReason::Malformed)?;
            let ih = ipv4::Ipv4Header::parse(ip_pkt).map_err(|e| match e {
                ipv4::Ipv4Error::Malformed => DropReason::Malformed,
                ipv4::Ipv4Error::BadChecksum => DropReason::BadChecksum,
            })?;
            if ih.dst != addr.ip {
                return if addr.is_group(ih.dst) {
                    Ok(Verdict::Kernel(Some(DropReason::NotOurIp)))
                } else {
                    Err(DropReason::NotOurIp)
                };
            }
            if addr.on_link(ih.src) {
                neigh.learn(ih.src, eh.src, now);
            }
            if ih.is_fragment {
                // Media is never fragmented; the kernel reassembles the rest.
                return Ok(Verdict::Kernel(Some(DropReason::Fragment)));
            }
            let l4 = ip_pkt
                .get(ih.header_len..ih.total_len)
                .ok_or(DropReason::Malformed)?;
            match ih.protocol {
                ipv4::PROTO_ICMP => {
                    if wire::icmp::message_type(l4) == Some(wire::icmp::ECHO_REQUEST) {
                        icmp::answer_echo(buf, &ih, eh.src, addr, c)
                    } else {
                        Ok(Verdict::Kernel(Some(DropReason::UnsupportedIcmp)))
                    }
                }
                ipv4::PROTO_UDP => {
                    let uh = udp::UdpHeader::parse(l4).ok_or(DropReason::Malformed)?;
                    if !uh.checksum_ok(ih.src, ih.dst, l4) {
                        return Err(DropReason::BadChecksum);
                    }
                    let start = eth::HEADER_LEN + ih.header_len + udp::HEADER_LEN;
                    Ok(Verdict::Udp {
                        src: SocketAddrV4::new(ih.src, uh.src_port),
                        dst_port: uh.dst_port,
                        start,
                        end: eth::HEADER_LEN + ih.header_len + uh.len,
                    })
                }
                _ => Ok(Verdict::Kernel(Some(DropReason::UnsupportedProtocol))),
            }
        }
        _ => Ok(Verdict::Kernel(Some(DropReason::UnsupportedEthertype))),
    }
}

/// Cut Ethernet padding off a reply so it is sent at its real length.
pub(crate) fn trim<B: PacketBuf>(buf: &mut B, len: usize) -> Result<Verdict, DropReason> {
    if buf.set_len(len) {
        Ok(Verdict::Reply)
    } else {
        Err(DropReason::Malformed)
    }
}
