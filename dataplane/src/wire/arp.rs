//! ARP for Ethernet/IPv4 (RFC 826): parse, answer in place, build requests.

use super::eth::{self, mac_at, EthHeader, MacAddr};
use core::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet (after the Ethernet header).
pub const LEN: usize = 28;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

fn ip_at(b: &[u8], off: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

impl Arp {
    /// Parse the ARP packet after the Ethernet header; `None` unless it is Ethernet
    /// (htype 1) / IPv4 (ptype 0x0800) with 6- and 4-byte addresses.
    pub fn parse(b: &[u8]) -> Option<Arp> {
        let h = b.get(..8)?;
        if h[0..2] != [0, 1] || h[2..4] != [8, 0] || h[4] != 6 || h[5] != 4 {
            return None;
        }
        Some(Arp {
            op: u16::from_be_bytes([h[6], h[7]]),
            sender_mac: mac_at(b, 8)?,
            sender_ip: ip_at(b, 14)?,
            target_mac: mac_at(b, 18)?,
            target_ip: ip_at(b, 24)?,
        })
    }

    /// Write this ARP packet (28 bytes) at the start of `b`.
    pub fn write(&self, b: &mut [u8]) -> bool {
        let Some(p) = b.get_mut(..LEN) else {
            return false;
        };
        p[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        p[6..8].copy_from_slice(&self.op.to_be_bytes());
        p[8..14].copy_from_slice(&self.sender_mac.0);
        p[14..18].copy_from_slice(&self.sender_ip.octets());
        p[18..24].copy_from_slice(&self.target_mac.0);
        p[24..28].copy_from_slice(&self.target_ip.octets());
        true
    }
}

/// Turn the request in `frame` (Ethernet + ARP) into our reply in place.
pub fn reply_in_place(frame: &mut [u8], req: &Arp, our_mac: MacAddr) -> bool {
    let reply = Arp {
        op: OP_REPLY,
        sender_mac: our_mac,
        sender_ip: req.target_ip,
        target_mac: req.sender_mac,
        target_ip: req.sender_ip,
    };
    let eh = EthHeader {
        dst: req.sender_mac,
        src: our_mac,
        ethertype: eth::ETHERTYPE_ARP,
    };
    eh.write(frame)
        && frame
            .get_mut(eth::HEADER_LEN..)
            .is_some_and(|b| reply.write(b))
}

/// Build a broadcast request "who has `target`? tell `our_ip`" into `frame`; returns the
/// frame length (42), or `None` if `frame` is too short.
pub fn write_request(
    frame: &mut [u8],
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    let eh = EthHeader {
        dst: MacAddr::BROADCAST,
        src: our_mac,
        ethertype: eth::ETHERTYPE_ARP,
    };
    let req = Arp {
        op: OP_REQUEST,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    };
    (eh.write(frame) && req.write(frame.get_mut(eth::HEADER_LEN..)?))
        .then_some(eth::HEADER_LEN + LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_then_reply() {
        let me = MacAddr([2, 0, 0, 0, 0, 1]);
        let peer = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut f = [0u8; 60];
        let n = write_request(
            &mut f,
            peer,
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
        )
        .unwrap();
        assert_eq!(n, 42);
        let req = Arp::parse(&f[14..]).unwrap();
        assert_eq!(req.op, OP_REQUEST);
        assert!(reply_in_place(&mut f, &req, me));
        let eh = EthHeader::parse(&f).unwrap();
        assert_eq!((eh.dst, eh.src), (peer, me));
        let rep = Arp::parse(&f[14..]).unwrap();
        assert_eq!(rep.op, OP_REPLY);
        assert_eq!(rep.sender_ip, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(
            (rep.target_mac, rep.target_ip),
            (peer, Ipv4Addr::new(198, 18, 0, 2))
        );
    }

    #[test]
    fn refuses_other_hardware_and_short() {
        assert!(Arp::parse(&[0u8; 27]).is_none());
        let mut b = [0u8; 28];
        Arp {
            op: 1,
            sender_mac: MacAddr::ZERO,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::UNSPECIFIED,
        }
        .write(&mut b);
        assert!(Arp::parse(&b).is_some());
        b[1] = 6; // IEEE 802 hardware type
        assert!(Arp::parse(&b).is_none());
    }
}
