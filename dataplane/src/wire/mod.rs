//! Wire formats as zero-copy views over `&[u8]` / `&mut [u8]`, so the same code runs on
//! mbuf data and on test vectors. Parsers return `Option`/`Result` and never panic.

pub mod arp;
pub mod checksum;
pub mod eth;
pub mod icmp;
pub mod ipv4;
pub mod rewrite;
pub mod rtcp;
pub mod rtp;
pub mod rtp_ext;
pub mod seq;
pub mod udp;
