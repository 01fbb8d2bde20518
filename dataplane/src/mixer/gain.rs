//! Per-participant gain as a Q12 fixed-point factor, converted from decibels with basic IEEE
//! operations only, so every build and every machine derives the same factor (two mixers
//! that must produce identical bytes agree on it).

/// Lowest gain in dB; anything below (or `-inf`) is this.
pub const MIN_GAIN_DB: f32 = -60.0;
/// Highest gain in dB. Q12 * i16 stays inside i32 up to +24 dB.
pub const MAX_GAIN_DB: f32 = 24.0;

/// Fractional bits of the fixed-point factor.
const Q: u32 = 12;

/// A gain factor in Q12 (4096 = 0 dB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gain(i32);

impl Default for Gain {
    fn default() -> Self {
        Gain::UNITY
    }
}

/// `e^x` for `|x| < 8` from `+`, `*`, `/` and exact rounding only (deterministic).
fn exp_deterministic(x: f64) -> f64 {
    let k = (x / core::f64::consts::LN_2).round();
    let r = x - k * core::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for i in 1..=24 {
        term = term * r / f64::from(i);
        sum += term;
    }
    // Scale by 2^k exactly (|k| < 12).
    let (step, count) = if k >= 0.0 { (2.0, k) } else { (0.5, -k) };
    let mut c = 0.0;
    while c < count {
        sum *= step;
        c += 1.0;
    }
    sum
}

impl Gain {
    /// 0 dB.
    pub const UNITY: Gain = Gain(1 << Q);

    /// The factor for `db` decibels, clamped to [`MIN_GAIN_DB`, `MAX_GAIN_DB`] (NaN is 0 dB).
    pub fn from_db(db: f32) -> Gain {
        if db.is_nan() {
            return Gain::UNITY;
        }
        let db = f64::from(db.clamp(MIN_GAIN_DB, MAX_GAIN_DB));
        let factor = exp_deterministic(db * (core::f64::consts::LN_10 / 20.0));
        Gain((factor * f64::from(1u32 << Q) + 0.5).floor() as i32)
    }

    /// The raw Q12 factor.
    pub const fn q12(self) -> i32 {
        self.0
    }

    /// Whether this is exactly 0 dB (no multiplication needed).
    pub const fn is_unity(self) -> bool {
        self.0 == 1 << Q
    }

    /// Applies the gain in place: `saturate((x * g + 2^11) >> 12)`.
    pub fn apply(self, pcm: &mut [i16]) {
        if self.is_unity() {
            return;
        }
        let g = self.0;
        for x in pcm {
            let v = (i32::from(*x) * g + (1 << (Q - 1))) >> Q;
            *x = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_factors() {
        assert_eq!(Gain::from_db(0.0), Gain::UNITY);
        assert_eq!(Gain::from_db(f32::NAN), Gain::UNITY);
        // 10^(6/20) * 4096 = 8172.6 ; 10^(-6/20) * 4096 = 2052.9 ; 10^(20/20) = 10.
        assert_eq!(Gain::from_db(6.0).q12(), 8173);
        assert_eq!(Gain::from_db(-6.0).q12(), 2053);
        assert_eq!(Gain::from_db(20.0).q12(), 40960);
        assert_eq!(Gain::from_db(-20.0).q12(), 410);
        assert_eq!(Gain::from_db(100.0), Gain::from_db(MAX_GAIN_DB));
        assert_eq!(Gain::from_db(f32::NEG_INFINITY).q12(), 4);
        for tenth in -600..=240 {
            let db = tenth as f32 / 10.0;
            let exact = 10f64.powf(f64::from(db) / 20.0) * 4096.0;
            assert!(
                (f64::from(Gain::from_db(db).q12()) - exact).abs() <= 0.5 + 1e-6,
                "{db}"
            );
        }
    }

    #[test]
    fn apply_rounds_and_saturates() {
        let mut pcm = [1000, -1000, 30000, -30000, 0];
        Gain::from_db(6.0).apply(&mut pcm);
        assert_eq!(pcm, [1995, -1995, 32767, -32768, 0]);
        let mut same = [123, -7];
        Gain::UNITY.apply(&mut same);
        assert_eq!(same, [123, -7]);
    }
}
