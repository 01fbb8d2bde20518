#![no_main]
//! RFC 3389 comfort-noise payload parsing and noise generation.

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::rx::cn::{ComfortNoise, Sid};

fuzz_target!(|data: &[u8]| {
    if let Ok(sid) = Sid::parse(data) {
        let mut cn = ComfortNoise::new(u64::from(sid.level));
        cn.update(&sid);
        let mut out = [0i16; 160];
        cn.generate(&mut out);
    }
});
