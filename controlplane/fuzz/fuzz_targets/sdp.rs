//! Any bytes as an SDP offer: negotiate, and answer what negotiates (an SRTP offer with
//! a key of its suite); the answer must negotiate again to the same codec and SRTP
//! suite. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_control_core::sip::sdp;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = sdp::negotiate(data) {
        let key = n.srtp.map(|c| c.key);
        let a = sdp::answer(&n, "198.18.0.1:20000".parse().unwrap(), key.as_ref(), 1, 1);
        if !n.hold {
            let back = sdp::negotiate(a.as_bytes()).expect("our answer reads back");
            assert_eq!(back.codec, n.codec);
            assert_eq!(back.srtp.map(|c| c.key.suite()), key.map(|k| k.suite()));
        }
    }
});
