//! The network side of the poll loop, split as smoltcp splits its interface from its
//! sockets: [`classify`] decides what a received frame is, [`arp`] and [`icmp`] answer
//! what the dataplane answers itself, [`egress`] resolves next hops and queues and drains
//! transmissions, and [`exception`] carries everything else to the kernel and back.
//! Sans-IO: time comes in as [`Instant`](crate::clock::Instant)s, packets as
//! [`PacketBuf`](crate::io::PacketBuf)s of any [`PacketIo`](crate::io::PacketIo) backend.

pub mod arp;
pub mod classify;
pub mod egress;
pub mod exception;
pub mod icmp;

use crate::wire::eth;
use core::net::Ipv4Addr;

/// Addressing of one port, as the dataplane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAddr {
    pub mac: eth::MacAddr,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl PortAddr {
    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len.min(32)))
            .unwrap_or(0)
    }

    /// True when `dst` is on this port's subnet.
    pub fn on_link(&self, dst: Ipv4Addr) -> bool {
        u32::from(dst) & self.mask() == u32::from(self.ip) & self.mask()
    }

    /// True for the addresses a frame to all hosts of the link carries: the limited
    /// broadcast, this subnet's broadcast, and IPv4 multicast.
    pub fn is_group(&self, dst: Ipv4Addr) -> bool {
        let subnet_broadcast = u32::from(self.ip) | !self.mask();
        dst.is_broadcast() || dst.is_multicast() || u32::from(dst) == subnet_broadcast
    }

    /// The next hop towards `dst`: itself when on-link, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(gateway: Option<Ipv4Addr>) -> PortAddr {
        PortAddr {
            mac: eth::MacAddr([2, 0, 0, 0, 0, 1]),
            ip: Ipv4Addr::new(198, 18, 0, 1),
            prefix_len: 24,
            gateway,
        }
    }

    #[test]
    fn next_hop_uses_gateway_off_link() {
        let peer = Ipv4Addr::new(198, 18, 0, 2);
        let a = addr(Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(a.next_hop(peer), Some(peer));
        assert_eq!(
            a.next_hop(Ipv4Addr::new(198, 19, 0, 1)),
            Some(Ipv4Addr::new(198, 18, 0, 254))
        );
        assert_eq!(addr(None).next_hop(Ipv4Addr::new(198, 19, 0, 1)), None);
        let all = PortAddr {
            prefix_len: 0,
            ..addr(None)
        };
        assert!(all.on_link(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn group_addresses() {
        let a = addr(None);
        assert!(a.is_group(Ipv4Addr::BROADCAST));
        assert!(a.is_group(Ipv4Addr::new(198, 18, 0, 255)));
        assert!(a.is_group(Ipv4Addr::new(224, 0, 0, 1)));
        assert!(!a.is_group(Ipv4Addr::new(198, 18, 0, 9)));
        assert!(!a.is_group(Ipv4Addr::new(198, 18, 1, 255)));
    }
}
