//! Events the receive path reports to the control plane: plain `Copy` values, no heap.

use core::time::Duration;

use crate::clock::Instant;

/// A DTMF key: the sixteen keys of the 4x4 keypad (RFC 4733 events 0–15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Digit {
    /// Key `0`.
    D0,
    /// Key `1`.
    D1,
    /// Key `2`.
    D2,
    /// Key `3`.
    D3,
    /// Key `4`.
    D4,
    /// Key `5`.
    D5,
    /// Key `6`.
    D6,
    /// Key `7`.
    D7,
    /// Key `8`.
    D8,
    /// Key `9`.
    D9,
    /// Key `*`.
    Star,
    /// Key `#` (pound).
    Pound,
    /// Key `A`.
    A,
    /// Key `B`.
    B,
    /// Key `C`.
    C,
    /// Key `D`.
    D,
}

impl Digit {
    /// All sixteen keys in RFC 4733 event-code order.
    pub const ALL: [Digit; 16] = [
        Digit::D0,
        Digit::D1,
        Digit::D2,
        Digit::D3,
        Digit::D4,
        Digit::D5,
        Digit::D6,
        Digit::D7,
        Digit::D8,
        Digit::D9,
        Digit::Star,
        Digit::Pound,
        Digit::A,
        Digit::B,
        Digit::C,
        Digit::D,
    ];

    /// The key for an RFC 4733 event code (0–15), `None` for other events.
    pub fn from_event_code(code: u8) -> Option<Digit> {
        Digit::ALL.get(usize::from(code)).copied()
    }

    /// The RFC 4733 event code of this key.
    pub fn event_code(self) -> u8 {
        self as u8
    }

    /// The key's printed character: `0`–`9`, `*`, `#`, `A`–`D`.
    pub fn as_char(self) -> char {
        match self {
            Digit::Star => '*',
            Digit::Pound => '#',
            Digit::A => 'A',
            Digit::B => 'B',
            Digit::C => 'C',
            Digit::D => 'D',
            d => char::from(b'0' + d as u8),
        }
    }

    /// The key printed as `c` (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
    pub fn from_char(c: char) -> Option<Digit> {
        Digit::ALL
            .iter()
            .copied()
            .find(|d| d.as_char() == c.to_ascii_uppercase())
    }

    /// Index of the low-group (row) frequency: 697, 770, 852, 941 Hz.
    pub fn row(self) -> usize {
        match self {
            Digit::D1 | Digit::D2 | Digit::D3 | Digit::A => 0,
            Digit::D4 | Digit::D5 | Digit::D6 | Digit::B => 1,
            Digit::D7 | Digit::D8 | Digit::D9 | Digit::C => 2,
            Digit::Star | Digit::D0 | Digit::Pound | Digit::D => 3,
        }
    }

    /// Index of the high-group (column) frequency: 1209, 1336, 1477, 1633 Hz.
    pub fn column(self) -> usize {
        match self {
            Digit::D1 | Digit::D4 | Digit::D7 | Digit::Star => 0,
            Digit::D2 | Digit::D5 | Digit::D8 | Digit::D0 => 1,
            Digit::D3 | Digit::D6 | Digit::D9 | Digit::Pound => 2,
            Digit::A | Digit::B | Digit::C | Digit::D => 3,
        }
    }

    /// The key at keypad position (`row`, `column`), both 0–3.
    pub fn from_position(row: usize, column: usize) -> Option<Digit> {
        Digit::ALL
            .iter()
            .copied()
            .find(|d| d.row() == row && d.column() == column)
    }
}

/// How a digit reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigitSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// Dual tones detected in the decoded audio.
    InBand,
}

/// One key press, reported once when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigitEvent {
    /// The key.
    pub digit: Digit,
    /// Where it was heard.
    pub source: DigitSource,
    /// How long the key was held.
    pub duration: Duration,
    /// Power level in -dBov (RFC 4733 volume, 0–63) when the sender gave it.
    pub volume: Option<u8>,
    /// When the key press was first heard.
    pub started: Instant,
}

/// Something the control plane wants to know about a received stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A key was pressed (RFC 4733 or in-band).
    Digit(DigitEvent),
    /// Voice activity began (after the onset check).
    TalkStart {
        /// When the first active frame was played out.
        at: Instant,
    },
    /// Voice activity ended (after the hangover).
    TalkStop {
        /// When the stream turned inactive.
        at: Instant,
        /// When the talk spurt began.
        started: Instant,
    },
    /// A comfort-noise SID frame arrived after speech or after a quiet spell: the sender
    /// uses silence suppression and is alive. Reported once per silence period.
    SidSeen {
        /// Arrival time of the SID packet.
        at: Instant,
        /// Noise level in -dBov (0–127).
        level: u8,
    },
    /// No RTP has arrived for the configured quiet period.
    MediaQuiet {
        /// Arrival time of the last accepted RTP packet.
        last_packet: Instant,
        /// Whether a SID frame arrived after the last speech packet, i.e. the sender
        /// announced its silence (DTX) rather than just stopping.
        sid_before: bool,
    },
    /// RTP arrives again after a [`Event::MediaQuiet`].
    MediaResumed {
        /// Arrival time of the packet that ended the quiet period.
        at: Instant,
    },
    /// First RTCP packet from this participant, or the first after a timeout.
    RtcpSeen {
        /// Arrival time.
        at: Instant,
    },
    /// RTCP that used to arrive has stopped for the configured timeout.
    RtcpTimeout {
        /// Arrival time of the last RTCP packet.
        last_seen: Instant,
    },
    /// The participant sent an RTCP BYE for its latched SSRC.
    Bye {
        /// The SSRC that left.
        ssrc: u32,
        /// Arrival time.
        at: Instant,
    },
    /// The latched source changed SSRC (after a BYE or a long gap).
    SsrcChanged {
        /// The SSRC heard before.
        old: u32,
        /// The SSRC heard from now on.
        new: u32,
    },
    /// A prompt playback ran to its end or was stopped.
    PromptDone {
        /// The caller's tag for the playback.
        playback: u32,
        /// `true` if it played to the end, `false` if stopped early.
        completed: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_codes_chars_and_positions_round_trip() {
        for (code, d) in Digit::ALL.iter().enumerate() {
            assert_eq!(d.event_code() as usize, code);
            assert_eq!(Digit::from_event_code(code as u8), Some(*d));
            assert_eq!(Digit::from_char(d.as_char()), Some(*d));
            assert_eq!(Digit::from_position(d.row(), d.column()), Some(*d));
        }
        assert_eq!(Digit::from_event_code(16), None);
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(Digit::from_char('a'), Some(Digit::A));
        let s: String = Digit::ALL.iter().map(|d| d.as_char()).collect();
        assert_eq!(s, "0123456789*#ABCD");
    }
}
