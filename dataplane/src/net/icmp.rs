//! ICMP the dataplane answers itself: echo requests to the port's address.

use super::classify::{trim, Verdict};
use super::PortAddr;
use crate::io::PacketBuf;
use crate::stats::{CoreCounters, DropReason};
use crate::wire::{eth, icmp, ipv4};

/// Turn the echo request in `buf` (IPv4 header `ih`, sent from `peer`) into the echo
/// reply in place.
pub fn answer_echo<B: PacketBuf>(
    buf: &mut B,
    ih: &ipv4::Ipv4Header,
    peer: eth::MacAddr,
    addr: &PortAddr,
    c: &CoreCounters,
) -> Result<Verdict, DropReason> {
    let frame = buf.data_mut();
    let (head, ip_pkt) = frame.split_at_mut(eth::HEADER_LEN);
    let l4 = ip_pkt
        .get_mut(ih.header_len..ih.total_len)
        .ok_or(DropReason::Malformed)?;
    icmp::echo_reply_in_place(l4);
    ipv4::reply_in_place(ip_pkt);
    eth::EthHeader {
        dst: peer,
        src: addr.mac,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(head);
    c.icmp_echo_replies.inc();
    trim(buf, eth::HEADER_LEN + ih.total_len)
}
