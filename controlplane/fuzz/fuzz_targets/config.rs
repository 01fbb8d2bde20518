//! Any bytes as a tutti.yaml: the config loader (YAML into `Config`, then validation)
//! answers with a value or an error, never a panic. The loader is the binary's own
//! src/config.rs, compiled here without the rest of the binary (which needs DPDK).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = config::Config::parse(text, "fuzz.yaml") {
            // What start-up asks of a valid file must not panic either.
            let _ = c.control.access();
            let _ = c.orphan.timers();
            if let Some(g) = &c.gateway {
                let _ = g.settings();
                let _ = g.mixer_access();
            }
            if let Some(s) = &c.sip {
                let _ = s.settings();
            }
            let _ = c.dataplane.udp_ports.pairs();
        }
    }
});
