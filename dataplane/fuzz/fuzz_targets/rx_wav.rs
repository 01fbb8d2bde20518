#![no_main]
//! WAV (RIFF) prompt file parsing.

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::rx::wav;

fuzz_target!(|data: &[u8]| {
    let _ = wav::parse(data);
});
