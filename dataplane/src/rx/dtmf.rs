//! RFC 4733 telephone-event receive: one [`DigitEvent`] per key press, however many
//! start retransmissions, updates and redundant end packets the sender uses.

use core::time::Duration;

use crate::clock::Instant;

use super::event::{Digit, DigitEvent, DigitSource, Event};

/// An event that stops updating without an end packet is closed after this long.
pub const EVENT_TIMEOUT: Duration = Duration::from_millis(800);

/// A parsed RFC 4733 payload (section 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are the DTMF keys).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

/// Why a telephone-event payload was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TelephoneEventError {
    /// The payload is shorter than the 4-byte event block.
    #[error("telephone-event payload of {0} bytes is shorter than 4")]
    Short(usize),
}

impl TelephoneEvent {
    /// Parse the first event block of a telephone-event payload; trailing bytes (further
    /// blocks or padding) are ignored.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, TelephoneEventError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3f,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(TelephoneEventError::Short(payload.len())),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Current {
    ts: u32,
    digit: Digit,
    started: Instant,
    last_update: Instant,
    duration: u16,
    volume: u8,
}

/// Per-stream RFC 4733 receiver state.
#[derive(Clone, Debug)]
pub struct Rfc4733Receiver {
    clock_rate: u32,
    current: Option<Current>,
    /// RTP timestamp of the last event reported (its late packets are ignored).
    reported_ts: Option<u32>,
    last_packet: Option<Instant>,
    /// Telephone-event packets with codes other than the 16 keys.
    pub other_events: u64,
}

impl Rfc4733Receiver {
    /// A receiver for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Rfc4733Receiver {
            clock_rate: clock_rate.max(1),
            current: None,
            reported_ts: None,
            last_packet: None,
            other_events: 0,
        }
    }

    /// Arrival time of the last telephone-event packet.
    pub fn last_packet(&self) -> Option<Instant> {
        self.last_packet
    }

    fn duration(&self, units: u16) -> Duration {
        Duration::from_nanos(u64::from(units) * 1_000_000_000 / u64::from(self.clock_rate))
    }

    fn report(&mut self, c: Current, emit: &mut impl FnMut(Event)) {
        self.reported_ts = Some(c.ts);
        emit(Event::Digit(DigitEvent {
            digit: c.digit,
            source: DigitSource::Rfc4733,
            duration: self.duration(c.duration),
            volume: Some(c.volume),
            started: c.started,
        }));
    }

    /// Feed one telephone-event packet with RTP timestamp `ts`.
    pub fn on_packet(
        &mut self,
        now: Instant,
        ts: u32,
        ev: TelephoneEvent,
        emit: &mut impl FnMut(Event),
    ) {
        self.last_packet = Some(now);
        if self.reported_ts == Some(ts) {
            return; // redundant end packet or late retransmission of a reported event
        }
        if let Some(cur) = self.current {
            if cur.ts == ts {
                let mut cur = cur;
                cur.duration = cur.duration.max(ev.duration);
                cur.volume = ev.volume;
                cur.last_update = now;
                if ev.end {
                    self.current = None;
                    self.report(cur, emit);
                } else {
                    self.current = Some(cur);
                }
                return;
            }
            if (ts.wrapping_sub(cur.ts) as i32) < 0 {
                return; // a straggler from an older event
            }
            // A new event began before the old one's end packets arrived.
            self.current = None;
            self.report(cur, emit);
        }
        let Some(digit) = Digit::from_event_code(ev.event) else {
            self.other_events += 1;
            return;
        };
        let cur = Current {
            ts,
            digit,
            started: now,
            last_update: now,
            duration: ev.duration,
            volume: ev.volume,
        };
        if ev.end {
            self.report(cur, emit);
        } else {
            self.current = Some(cur);
        }
    }

    /// When an unfinished event should be closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_update + EVENT_TIMEOUT)
    }

    /// Close an event whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant, emit: &mut impl FnMut(Event)) {
        if let Some(cur) = self.current {
            if now >= cur.last_update + EVENT_TIMEOUT {
                self.current = None;
                self.report(cur, emit);
            }
        }
    }

    /// Forget the event in progress (new source).
    pub fn reset(&mut self) {
        self.current = None;
        self.reported_ts = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn parses_fields() {
        let e = TelephoneEvent::parse(&[5, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        let e = TelephoneEvent::parse(&[11, 0x4a, 0, 160, 9, 9]).unwrap();
        assert!(!e.end);
        assert_eq!(e.volume, 10);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(TelephoneEventError::Short(3))
        );
    }

    #[test]
    fn one_event_per_press_despite_retransmissions() {
        let mut rx = Rfc4733Receiver::new(8000);
        let mut got = Vec::new();
        let mut t = Instant::ZERO;
        let ms = Duration::from_millis;
        // Start sent three times, updates, three end packets, then a late retransmit.
        for d in [0u16, 0, 0, 400, 800, 1200] {
            rx.on_packet(t, 1000, pkt(7, false, d), &mut |e| got.push(e));
            t += ms(50);
        }
        for _ in 0..3 {
            rx.on_packet(t, 1000, pkt(7, true, 1280), &mut |e| got.push(e));
        }
        rx.on_packet(t + ms(20), 1000, pkt(7, false, 400), &mut |e| got.push(e));
        assert_eq!(got.len(), 1);
        let Event::Digit(d) = got[0] else { panic!() };
        assert_eq!(d.digit, Digit::D7);
        assert_eq!(d.source, DigitSource::Rfc4733);
        assert_eq!(d.duration, ms(160));
        assert_eq!(d.volume, Some(10));
        assert_eq!(d.started, Instant::ZERO);
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn lost_end_packets_close_on_next_event_or_timeout() {
        let mut rx = Rfc4733Receiver::new(8000);
        let mut got = Vec::new();
        let t0 = Instant::ZERO;
        rx.on_packet(t0, 100, pkt(1, false, 160), &mut |e| got.push(e));
        rx.on_packet(t0, 2000, pkt(2, false, 160), &mut |e| got.push(e));
        assert_eq!(got.len(), 1);
        // Straggler from the first event is ignored.
        rx.on_packet(t0, 100, pkt(1, false, 320), &mut |e| got.push(e));
        assert_eq!(got.len(), 1);
        let deadline = rx.poll_timeout().unwrap();
        rx.handle_timeout(deadline - Duration::from_millis(1), &mut |e| got.push(e));
        assert_eq!(got.len(), 1);
        rx.handle_timeout(deadline, &mut |e| got.push(e));
        assert_eq!(got.len(), 2);
        let digits: Vec<_> = got
            .iter()
            .map(|e| match e {
                Event::Digit(d) => d.digit,
                _ => panic!(),
            })
            .collect();
        assert_eq!(digits, [Digit::D1, Digit::D2]);
    }

    #[test]
    fn non_key_events_are_counted_not_reported() {
        let mut rx = Rfc4733Receiver::new(8000);
        let mut got = Vec::new();
        rx.on_packet(Instant::ZERO, 5, pkt(16, true, 800), &mut |e| got.push(e));
        assert!(got.is_empty());
        assert_eq!(rx.other_events, 1);
    }
}
