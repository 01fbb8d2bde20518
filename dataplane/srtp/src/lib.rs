//! Safe wrapper over libsrtp2: one [`Context`] per direction of a stream, built from
//! SDES master key material (RFC 4568), protecting and unprotecting RTP and RTCP **in
//! place** in the caller's buffer. Replay protection is libsrtp's (a 128-packet window
//! per SSRC). This is the only place with `unsafe` SRTP FFI.
//!
//! libsrtp comes from the `srtp2-sys` crate, built from its source against OpenSSL
//! (Debian's `libssl-dev`), not from Debian's libsrtp2 package: that one is built on
//! NSS, which sets a PKCS#11 context up for every packet — measured here (2 vCPUs,
//! 172-byte packets, protect + unprotect): NSS 14 us with one context and 77 us with
//! 1,000, against 2.3 and 2.8 us with OpenSSL.
//!
//! libsrtp allocates a stream the first time it sees an SSRC on a context (the
//! template is cloned); every other call works on the caller's buffer only.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

/// libsrtp's names, as the wrapper uses them (the generated bindings prefix each
/// enumerator with its type's name).
#[allow(non_upper_case_globals)]
mod sys {
    use srtp2_sys as raw;
    pub use srtp2_sys::{
        srtp_create, srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
        srtp_crypto_policy_set_aes_gcm_128_16_auth, srtp_crypto_policy_set_rtcp_default,
        srtp_crypto_policy_set_rtp_default, srtp_dealloc, srtp_err_status_t, srtp_init,
        srtp_policy_t, srtp_protect, srtp_protect_rtcp, srtp_ssrc_type_t, srtp_t, srtp_unprotect,
        srtp_unprotect_rtcp,
    };
    pub const srtp_err_status_ok: srtp_err_status_t = raw::srtp_err_status_t_srtp_err_status_ok;
    pub const srtp_err_status_auth_fail: srtp_err_status_t =
        raw::srtp_err_status_t_srtp_err_status_auth_fail;
    pub const srtp_err_status_replay_fail: srtp_err_status_t =
        raw::srtp_err_status_t_srtp_err_status_replay_fail;
    pub const srtp_err_status_replay_old: srtp_err_status_t =
        raw::srtp_err_status_t_srtp_err_status_replay_old;
    pub const ssrc_any_inbound: srtp_ssrc_type_t = raw::srtp_ssrc_type_t_ssrc_any_inbound;
    pub const ssrc_any_outbound: srtp_ssrc_type_t = raw::srtp_ssrc_type_t_ssrc_any_outbound;
}

/// Longest master key plus salt of any suite (AES-CM-128: 16 + 14).
pub const MAX_KEY_LEN: usize = 30;
/// Most bytes [`Context::protect_rtp`] adds to a packet (the GCM tag).
pub const MAX_RTP_TRAILER: usize = 16;
/// Most bytes [`Context::protect_rtcp`] adds to a packet (SRTCP index and GCM tag).
pub const MAX_RTCP_TRAILER: usize = 20;
/// SRTCP index (E flag and 31-bit index) after the payload.
const SRTCP_INDEX_LEN: usize = 4;

/// An SDES crypto suite (RFC 4568 §6.2, RFC 7714 §14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AeadAes128Gcm,
}

impl Suite {
    /// Every suite, in order of preference.
    pub const ALL: [Suite; 3] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
    ];

    /// The suite's name in SDP `a=crypto` and in the REST API.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite named `name` (exact, as SDP and the API spell it).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Master key plus master salt length: 30 (AES-CM) or 28 (GCM, 12-byte salt).
    pub const fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => 30,
            Suite::AeadAes128Gcm => 28,
        }
    }

    /// Bytes protecting an RTP packet adds: its authentication tag.
    pub const fn rtp_trailer(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
            Suite::AeadAes128Gcm => 16,
        }
    }

    /// Bytes protecting an RTCP packet adds: the SRTCP index and the tag (80 bits for
    /// both AES-CM suites, RFC 4568 §6.2.2).
    pub const fn rtcp_trailer(self) -> usize {
        SRTCP_INDEX_LEN
            + match self {
                Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => 10,
                Suite::AeadAes128Gcm => 16,
            }
    }

    fn policies(self, policy: &mut sys::srtp_policy_t) {
        // SAFETY: the setters only write the crypto policy structs they are given, which
        // are valid and exclusively borrowed here.
        unsafe {
            match self {
                // The defaults are AES_CM_128_HMAC_SHA1_80 (the header's `_80` setter is
                // a macro for them).
                Suite::AesCm128HmacSha1_80 => {
                    sys::srtp_crypto_policy_set_rtp_default(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_rtcp_default(&mut policy.rtcp);
                }
                Suite::AesCm128HmacSha1_32 => {
                    sys::srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_rtcp_default(&mut policy.rtcp);
                }
                Suite::AeadAes128Gcm => {
                    sys::srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut policy.rtcp);
                }
            }
        }
    }
}

/// A suite and its master key plus salt (the `inline:` key of `a=crypto`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    suite: Suite,
    bytes: [u8; MAX_KEY_LEN],
}

impl core::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the key itself (it ends up in logs).
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// `key` must be exactly the suite's [`Suite::key_len`] bytes.
    pub fn new(suite: Suite, key: &[u8]) -> Result<MasterKey, Error> {
        if key.len() != suite.key_len() {
            return Err(Error::KeyLength {
                suite: suite.name(),
                expected: suite.key_len(),
                got: key.len(),
            });
        }
        let mut bytes = [0; MAX_KEY_LEN];
        bytes[..key.len()].copy_from_slice(key);
        Ok(MasterKey { suite, bytes })
    }

    /// The suite's key and salt from the first [`Suite::key_len`] bytes of `bytes` (e.g.
    /// fresh random bytes; the rest are ignored).
    pub fn from_array(suite: Suite, mut bytes: [u8; MAX_KEY_LEN]) -> MasterKey {
        bytes[suite.key_len()..].fill(0);
        MasterKey { suite, bytes }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The key and salt (the suite's [`Suite::key_len`] bytes).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.suite.key_len()]
    }
}

/// Which way a context works: on what we receive, or on what we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{suite} needs a {expected}-byte master key and salt, got {got} bytes")]
    KeyLength {
        suite: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("libsrtp2 initialisation failed (status {0})")]
    Init(u32),
    #[error("libsrtp2 could not create the context (status {0})")]
    Create(u32),
    #[error("the buffer has no room for the SRTP trailer")]
    NoRoom,
    #[error("authentication failed")]
    Auth,
    #[error("replayed or too old for the replay window")]
    Replay,
    #[error("libsrtp2 refused the packet (status {0})")]
    Refused(u32),
}

fn init() -> Result<(), Error> {
    static INIT: OnceLock<u32> = OnceLock::new();
    // SAFETY: srtp_init takes no arguments; OnceLock runs it once, before any context.
    let status = *INIT.get_or_init(|| unsafe { sys::srtp_init() });
    match status {
        sys::srtp_err_status_ok => Ok(()),
        s => Err(Error::Init(s)),
    }
}

fn check(status: sys::srtp_err_status_t) -> Result<(), Error> {
    match status {
        sys::srtp_err_status_ok => Ok(()),
        sys::srtp_err_status_auth_fail => Err(Error::Auth),
        sys::srtp_err_status_replay_fail | sys::srtp_err_status_replay_old => Err(Error::Replay),
        s => Err(Error::Refused(s)),
    }
}

/// One direction's SRTP and SRTCP state for any SSRC (libsrtp's `ssrc_any_inbound` or
/// `ssrc_any_outbound` template).
pub struct Context {
    raw: sys::srtp_t,
    suite: Suite,
}

// SAFETY: a libsrtp session has no thread affinity; `Context` owns it and every call
// takes `&mut self`, so one thread uses it at a time.
unsafe impl Send for Context {}

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `direction` keyed with `key` (allocates: build it off the hot path).
    pub fn new(key: &MasterKey, direction: Direction) -> Result<Context, Error> {
        init()?;
        let mut bytes = key.bytes;
        // SAFETY: `srtp_policy_t` is a C struct of integers, pointers and nested structs
        // of the same: all zeros is a valid value (null pointers, no policy set), the
        // state libsrtp's own examples start from with memset.
        let mut policy: sys::srtp_policy_t = unsafe { core::mem::zeroed() };
        key.suite.policies(&mut policy);
        policy.ssrc.type_ = match direction {
            Direction::Inbound => sys::ssrc_any_inbound,
            Direction::Outbound => sys::ssrc_any_outbound,
        };
        policy.key = bytes.as_mut_ptr();
        policy.window_size = 128;
        policy.allow_repeat_tx = 0;
        let mut raw: sys::srtp_t = core::ptr::null_mut();
        // SAFETY: `policy` is fully initialised (zeroed, then the crypto policies, SSRC
        // type and key set) and lives across the call; `policy.key` points at
        // `MAX_KEY_LEN` bytes, at least the suite's key and salt, which libsrtp copies
        // into the session it allocates. `next` is null: one policy.
        let status = unsafe { sys::srtp_create(&mut raw, &policy) };
        bytes.fill(0);
        if status != sys::srtp_err_status_ok || raw.is_null() {
            return Err(Error::Create(status));
        }
        Ok(Context {
            raw,
            suite: key.suite,
        })
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Protects the RTP packet in `buf[..len]` in place; returns the SRTP packet's
    /// length (`len` plus [`Suite::rtp_trailer`]). `buf` must have that room.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let room = len + self.suite.rtp_trailer();
        self.apply(sys::srtp_protect, buf, len, room)
    }

    /// Unprotects (authenticates, checks for replay, decrypts) the SRTP packet `buf` in
    /// place; returns the RTP packet's length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.apply(sys::srtp_unprotect, buf, buf.len(), buf.len())
    }

    /// Protects the RTCP compound packet in `buf[..len]` in place; returns the SRTCP
    /// packet's length (`len` plus [`Suite::rtcp_trailer`]). `buf` must have that room.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let room = len + self.suite.rtcp_trailer();
        self.apply(sys::srtp_protect_rtcp, buf, len, room)
    }

    /// Unprotects the SRTCP packet `buf` in place; returns the RTCP packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.apply(sys::srtp_unprotect_rtcp, buf, buf.len(), buf.len())
    }

    /// Runs libsrtp's `op` on the packet `buf[..len]`, in place, within `buf[..room]`.
    fn apply(&mut self, op: Op, buf: &mut [u8], len: usize, room: usize) -> Result<usize, Error> {
        if buf.len() < room || room < len {
            return Err(Error::NoRoom);
        }
        let mut n = c_int::try_from(len).map_err(|_| Error::NoRoom)?;
        // SAFETY: `buf` is valid for reads and writes of `room` bytes. The protect calls
        // read the packet's `n` bytes and write the suite's trailer after them (SRTCP
        // index and tag; no MKI is configured), which `room` holds: the callers size it
        // from the suite. The unprotect calls check the length against the header and
        // tag themselves and only shorten `n`. `self.raw` is a live session, used by
        // this call only (`&mut self`).
        check(unsafe { op(self.raw, buf.as_mut_ptr().cast(), &mut n) })?;
        Ok(n as usize)
    }
}

/// The shape of libsrtp's in-place calls.
type Op = unsafe extern "C" fn(sys::srtp_t, *mut c_void, *mut c_int) -> sys::srtp_err_status_t;

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `raw` came from srtp_create and is freed once, here.
        unsafe {
            sys::srtp_dealloc(self.raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 30] = [
        0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41,
        0x39, 0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
    ];

    fn pair(suite: Suite) -> (Context, Context) {
        let key = MasterKey::new(suite, &KEY[..suite.key_len()]).unwrap();
        (
            Context::new(&key, Direction::Outbound).unwrap(),
            Context::new(&key, Direction::Inbound).unwrap(),
        )
    }

    /// A 12-byte RTP header (PT 0, SSRC 0x11223344) and a 160-byte payload.
    fn rtp(seq: u16) -> ([u8; 256], usize) {
        let mut b = [0u8; 256];
        b[0] = 0x80;
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        b[8..12].copy_from_slice(&0x1122_3344u32.to_be_bytes());
        for (i, x) in b[12..172].iter_mut().enumerate() {
            *x = i as u8;
        }
        (b, 172)
    }

    /// A receiver report of SSRC 0x11223344 with no blocks.
    fn rtcp() -> ([u8; 64], usize) {
        let mut b = [0u8; 64];
        b[..8].copy_from_slice(&[0x80, 201, 0, 1, 0x11, 0x22, 0x33, 0x44]);
        (b, 8)
    }

    #[test]
    fn rtp_round_trips_in_every_suite() {
        for suite in Suite::ALL {
            let (mut tx, mut rx) = pair(suite);
            for seq in 1..20u16 {
                let (mut b, len) = rtp(seq);
                let plain = b;
                let n = tx.protect_rtp(&mut b, len).unwrap();
                assert_eq!(n, len + suite.rtp_trailer(), "{suite:?}");
                assert_ne!(b[12..len], plain[12..len], "payload encrypted");
                let m = rx.unprotect_rtp(&mut b[..n]).unwrap();
                assert_eq!(b[..m], plain[..len], "{suite:?}");
            }
        }
    }

    #[test]
    fn rtcp_round_trips_in_every_suite() {
        for suite in Suite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let (mut b, len) = rtcp();
            let plain = b;
            let n = tx.protect_rtcp(&mut b, len).unwrap();
            assert_eq!(n, len + suite.rtcp_trailer(), "{suite:?}");
            let m = rx.unprotect_rtcp(&mut b[..n]).unwrap();
            assert_eq!(b[..m], plain[..len], "{suite:?}");
        }
    }

    #[test]
    fn tampered_packet_fails_authentication() {
        for suite in Suite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let (mut b, len) = rtp(7);
            let n = tx.protect_rtp(&mut b, len).unwrap();
            b[20] ^= 1;
            assert_eq!(rx.unprotect_rtp(&mut b[..n]), Err(Error::Auth), "{suite:?}");
            let (mut c, len) = rtcp();
            let n = tx.protect_rtcp(&mut c, len).unwrap();
            c[n - 1] ^= 0x80;
            assert_eq!(
                rx.unprotect_rtcp(&mut c[..n]),
                Err(Error::Auth),
                "{suite:?}"
            );
        }
    }

    #[test]
    fn replayed_packet_is_refused() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
        let (mut b, len) = rtp(9);
        let n = tx.protect_rtp(&mut b, len).unwrap();
        let copy = b;
        rx.unprotect_rtp(&mut b[..n]).unwrap();
        let mut again = copy;
        assert_eq!(rx.unprotect_rtp(&mut again[..n]), Err(Error::Replay));
    }

    #[test]
    fn wrong_key_fails_authentication() {
        let (mut tx, _) = pair(Suite::AesCm128HmacSha1_32);
        let mut other = KEY;
        other[0] ^= 0xff;
        let key = MasterKey::new(Suite::AesCm128HmacSha1_32, &other).unwrap();
        let mut rx = Context::new(&key, Direction::Inbound).unwrap();
        let (mut b, len) = rtp(1);
        let n = tx.protect_rtp(&mut b, len).unwrap();
        assert_eq!(rx.unprotect_rtp(&mut b[..n]), Err(Error::Auth));
    }

    #[test]
    fn short_input_is_an_error_not_a_crash() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
        let (mut b, len) = rtp(1);
        assert_eq!(tx.protect_rtp(&mut b[..len + 3], len), Err(Error::NoRoom));
        for n in 0..24 {
            assert!(rx.unprotect_rtp(&mut b[..n]).is_err(), "{n} bytes");
            assert!(rx.unprotect_rtcp(&mut b[..n]).is_err(), "{n} bytes");
        }
        assert!(MasterKey::new(Suite::AeadAes128Gcm, &KEY).is_err());
        assert_eq!(
            Suite::from_name("AES_CM_128_HMAC_SHA1_32"),
            Some(Suite::AesCm128HmacSha1_32)
        );
        assert_eq!(Suite::from_name("F8_128_HMAC_SHA1_80"), None);
    }
}
