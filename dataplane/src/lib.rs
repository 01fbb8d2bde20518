//! tutti-dataplane: sans-IO media processing and the per-core poll loop.
//!
//! Nothing in this crate touches DPDK, sockets, threads or the clock directly: time comes
//! in as [`clock::Instant`] values and packets as byte slices or [`io::PacketBuf`]s, so
//! every piece can be driven in virtual time by tests and benchmarks. The DPDK backend
//! lives in the `tutti-dpdk` crate and implements the [`io`] traits.

#![deny(unsafe_code)]

pub mod clock;
pub mod codec;
pub mod conference;
pub mod host;
pub mod io;
pub mod mixer;
pub mod neigh;
pub mod net;
pub mod poll;
pub mod rate;
pub mod relay;
/// SRTP contexts and keys (the `tutti-srtp` wrapper over libsrtp2).
pub use tutti_srtp as srtp;
pub mod rtp_send;
pub mod rx;
pub mod stats;
pub mod tap;
pub mod wire;
