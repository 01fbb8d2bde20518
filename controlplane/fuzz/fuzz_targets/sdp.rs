//! Any bytes as an SDP offer: negotiate, and answer what negotiates; the answer must
//! negotiate again to the same codec. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_control_core::sip::sdp;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = sdp::negotiate(data) {
        let a = sdp::answer(&n, "198.18.0.1:20000".parse().unwrap(), 1, 1);
        if !n.hold {
            let back = sdp::negotiate(a.as_bytes()).expect("our answer reads back");
            assert_eq!(back.codec, n.codec);
        }
    }
});
