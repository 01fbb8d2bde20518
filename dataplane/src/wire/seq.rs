//! Extension of wrapping RTP counters: 16-bit sequence numbers and 32-bit timestamps become
//! monotonic 64-bit values across wrap-around, with reordered packets placed correctly
//! (a value more than half the range behind the highest seen is taken as a wrap forward).

/// Extends a `BITS`-bit wrapping counter (1..=32 bits) to a signed 64-bit value. The first
/// value seen is taken as-is; values before it (reordered across a wrap) may be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WrapExtender<const BITS: u32> {
    highest: Option<i64>,
}

/// Extends 16-bit RTP sequence numbers.
pub type SeqExtender = WrapExtender<16>;
/// Extends 32-bit RTP timestamps.
pub type TimestampExtender = WrapExtender<32>;

impl<const BITS: u32> WrapExtender<BITS> {
    const MODULUS: i64 = 1 << BITS;
    const MASK: u64 = (1 << BITS) - 1;

    /// An extender that has seen nothing.
    pub const fn new() -> Self {
        WrapExtender { highest: None }
    }

    /// The extended value of `raw` (only its low `BITS` bits are used); updates the highest
    /// value seen.
    pub fn extend(&mut self, raw: u64) -> i64 {
        let raw = raw & Self::MASK;
        let ext = match self.highest {
            None => raw as i64,
            Some(h) => {
                let delta = (raw.wrapping_sub(h as u64) & Self::MASK) as i64;
                // Forward if less than half the range ahead, else behind.
                let delta = if delta >= Self::MODULUS / 2 {
                    delta - Self::MODULUS
                } else {
                    delta
                };
                h + delta
            }
        };
        match self.highest {
            Some(h) if h >= ext => {}
            _ => self.highest = Some(ext),
        }
        ext
    }

    /// The highest extended value seen.
    pub fn highest(&self) -> Option<i64> {
        self.highest
    }

    /// Number of wrap-arounds of the highest value (the RTCP "cycles" count).
    pub fn cycles(&self) -> i64 {
        self.highest.map_or(0, |h| h.div_euclid(Self::MODULUS))
    }
}

/// Whether sequence number `a` is newer than `b` (less than half the range ahead).
pub fn seq_newer(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

/// Whether timestamp `a` is newer than `b` (less than half the range ahead).
pub fn timestamp_newer(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_forward_and_handles_reordering() {
        let mut e = SeqExtender::new();
        assert_eq!(e.extend(65534), 65534);
        assert_eq!(e.extend(65535), 65535);
        assert_eq!(e.extend(0), 65536);
        assert_eq!(e.extend(65533), 65533, "late packet from before the wrap");
        assert_eq!(e.extend(2), 65538);
        assert_eq!(e.highest(), Some(65538));
        assert_eq!(e.cycles(), 1);
        for i in 0..200_000u64 {
            assert_eq!(e.extend((65539 + i) & 0xFFFF), 65539 + i as i64);
        }
        assert_eq!(e.cycles(), 4);
    }

    #[test]
    fn reordered_before_first_goes_negative() {
        let mut e = SeqExtender::new();
        assert_eq!(e.extend(1), 1);
        assert_eq!(e.extend(65535), -1);
        assert_eq!(e.highest(), Some(1));
    }

    #[test]
    fn timestamps_wrap() {
        let mut e = TimestampExtender::new();
        assert_eq!(
            e.extend(u64::from(u32::MAX - 159)),
            i64::from(u32::MAX - 159)
        );
        assert_eq!(e.extend(1), (1i64 << 32) + 1);
        assert_eq!(e.extend(u64::from(u32::MAX)), i64::from(u32::MAX));
        assert_eq!(e.cycles(), 1);
    }

    #[test]
    fn newer() {
        assert!(seq_newer(0, 65535));
        assert!(!seq_newer(65535, 0));
        assert!(!seq_newer(5, 5));
        assert!(timestamp_newer(10, u32::MAX - 10));
        assert!(!timestamp_newer(0, 0x8000_0000));
    }
}
