//! Ethernet II frames.

use core::fmt;

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A 48-bit MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group (multicast or broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

pub(crate) fn mac_at(b: &[u8], off: usize) -> Option<MacAddr> {
    b.get(off..off + 6)?.try_into().ok().map(MacAddr)
}

/// A parsed Ethernet II header (the payload starts at [`HEADER_LEN`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

impl EthHeader {
    /// Parse the header at the start of `frame`; `None` if it is too short.
    pub fn parse(frame: &[u8]) -> Option<EthHeader> {
        let et = frame.get(12..14)?;
        Some(EthHeader {
            dst: mac_at(frame, 0)?,
            src: mac_at(frame, 6)?,
            ethertype: u16::from_be_bytes([et[0], et[1]]),
        })
    }

    /// Write this header at the start of `frame`; false if `frame` is too short.
    pub fn write(&self, frame: &mut [u8]) -> bool {
        let Some(h) = frame.get_mut(..HEADER_LEN) else {
            return false;
        };
        h[0..6].copy_from_slice(&self.dst.0);
        h[6..12].copy_from_slice(&self.src.0);
        h[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_input() {
        let h = EthHeader {
            dst: MacAddr::BROADCAST,
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: ETHERTYPE_ARP,
        };
        let mut f = [0u8; 20];
        assert!(h.write(&mut f));
        assert_eq!(EthHeader::parse(&f), Some(h));
        assert_eq!(EthHeader::parse(&f[..13]), None);
        assert!(!h.write(&mut [0u8; 13]));
        assert_eq!(h.src.to_string(), "02:00:00:00:00:01");
        assert!(h.dst.is_multicast() && !h.src.is_multicast());
    }
}
