//! Any bytes through the SIP user agent's reading half (what `Ua::handle` does before
//! it touches any state): parse, check the headers an answer needs, build the 400 for
//! what cannot be read, negotiate an INVITE's SDP, and read a response as a dial-out
//! takes it (and its SDP as an answer). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_control_core::sip::sdp;
use tutti_controlplane::sip::ua::{bad_request, dial_response, parts, read, Incoming};

fuzz_target!(|data: &[u8]| {
    match read(data) {
        Incoming::Request(req) => match parts(&req) {
            Ok(_) => {
                if let Ok(n) = sdp::negotiate(req.body()) {
                    let key = n.srtp.map(|c| c.key);
                    let _ =
                        sdp::answer(&n, "198.18.0.1:20000".parse().unwrap(), key.as_ref(), 1, 1);
                }
            }
            Err(why) => {
                let _ = bad_request(data, &why);
            }
        },
        Incoming::Malformed(why) => {
            let _ = bad_request(data, &why);
        }
        Incoming::Response(r) => {
            if let Some(r) = dial_response(&r) {
                let _ = sdp::negotiate(&r.body);
            }
        }
    }
});
