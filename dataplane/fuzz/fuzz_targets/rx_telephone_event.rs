#![no_main]
//! RFC 4733 payload parsing and the per-stream event state machine.

use libfuzzer_sys::fuzz_target;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::rx::dtmf::{Rfc4733Receiver, TelephoneEvent};

fuzz_target!(|data: &[u8]| {
    let mut rx = Rfc4733Receiver::new(8000);
    let mut now = Instant::ZERO;
    // Each 8-byte record: 4-byte RTP timestamp, then a 4-byte event payload.
    for rec in data.chunks(8) {
        let ts = rec
            .get(..4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if let Ok(ev) = TelephoneEvent::parse(rec.get(4..).unwrap_or(&[])) {
            rx.on_packet(now, ts, ev, &mut |_| {});
        }
        now += core::time::Duration::from_millis(20);
        rx.handle_timeout(now, &mut |_| {});
    }
});
