//! ARP on a port shared with the kernel. The dataplane answers requests for the port's
//! address and keeps its own neighbour table; the kernel behind the exception port
//! carries the same address and MAC and must resolve neighbours too. So:
//! - a request for our address is answered by the dataplane, and (with an exception
//!   port) a copy of the request goes to the kernel so that it learns the asker;
//! - a reply to us is learned from, and goes on to the kernel (it may have asked);
//! - the kernel's own replies for our address (to those copies) are dropped on their way
//!   out ([`is_kernel_duplicate`]): the dataplane has already answered, and one answer per
//!   request keeps the neighbours' caches quiet. The kernel's requests and anything else
//!   it sends go out unchanged.

use super::classify::{trim, Verdict};
use super::PortAddr;
use crate::clock::Instant;
use crate::io::PacketBuf;
use crate::neigh::NeighTable;
use crate::stats::{CoreCounters, DropReason};
use crate::wire::{arp, eth};

/// Classify the ARP packet in `frame` (Ethernet header included).
pub fn classify(
    frame: &[u8],
    addr: &PortAddr,
    neigh: &mut NeighTable,
    now: Instant,
) -> Result<Verdict, DropReason> {
    let body = frame.get(eth::HEADER_LEN..).ok_or(DropReason::Malformed)?;
    let a = arp::Arp::parse(body).ok_or(DropReason::UnsupportedArp)?;
    if a.target_ip != addr.ip {
        return Err(DropReason::UnsupportedArp);
    }
    // RFC 826: update or add the sender's mapping when the packet is for us.
    neigh.learn(a.sender_ip, a.sender_mac, now);
    match a.op {
        arp::OP_REQUEST => Ok(Verdict::ArpRequest(a)),
        // Learned from; the kernel may be waiting for it too.
        arp::OP_REPLY => Ok(Verdict::Kernel(None)),
        _ => Err(DropReason::UnsupportedArp),
    }
}

/// Answer the request `a` in `buf` in place.
pub fn answer<B: PacketBuf>(
    buf: &mut B,
    a: &arp::Arp,
    addr: &PortAddr,
    c: &CoreCounters,
) -> Result<Verdict, DropReason> {
    arp::reply_in_place(buf.data_mut(), a, addr.mac);
    c.arp_replies_sent.inc();
    trim(buf, eth::HEADER_LEN + arp::LEN)
}

/// True for a frame from the kernel that is an ARP reply for the port's own address:
/// the dataplane answered that request already.
pub fn is_kernel_duplicate(frame: &[u8], addr: &PortAddr) -> bool {
    eth::EthHeader::parse(frame).is_some_and(|eh| eh.ethertype == eth::ETHERTYPE_ARP)
        && frame
            .get(eth::HEADER_LEN..)
            .and_then(arp::Arp::parse)
            .is_some_and(|a| a.op == arp::OP_REPLY && a.sender_ip == addr.ip)
}
