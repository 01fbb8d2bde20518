//! RFC 3389 comfort noise: the SID payload (noise level + optional reflection
//! coefficients) and a generator that synthesises matching noise.

/// Highest model order the generator uses; higher-order coefficients are ignored, as
/// RFC 3389 section 3 allows.
pub const MAX_CN_ORDER: usize = 12;

/// A parsed SID payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sid {
    /// Noise level in -dBov (0–127).
    pub level: u8,
    /// Number of reflection coefficients used (at most [`MAX_CN_ORDER`]).
    pub order: usize,
    /// Reflection coefficients k1.. in (-1, 1).
    pub reflection: [f32; MAX_CN_ORDER],
}

/// Why a SID payload was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SidError {
    /// The payload is empty: the level byte is mandatory.
    #[error("comfort noise payload is empty")]
    Empty,
    /// The level byte's most significant bit must be zero.
    #[error("comfort noise level byte {0:#04x} has its reserved top bit set")]
    ReservedBit(u8),
}

impl Sid {
    /// Parse a CN payload: byte 0 is the level, each further byte a reflection
    /// coefficient quantised linearly as `(n - 127) / 128`.
    pub fn parse(payload: &[u8]) -> Result<Sid, SidError> {
        let (&level, coeffs) = payload.split_first().ok_or(SidError::Empty)?;
        if level & 0x80 != 0 {
            return Err(SidError::ReservedBit(level));
        }
        let mut reflection = [0f32; MAX_CN_ORDER];
        let order = coeffs.len().min(MAX_CN_ORDER);
        for (k, &n) in reflection.iter_mut().zip(coeffs) {
            // Keep the synthesis filter strictly stable.
            *k = ((f32::from(n) - 127.0) / 128.0).clamp(-0.98, 0.98);
        }
        Ok(Sid {
            level,
            order,
            reflection,
        })
    }

    /// The noise RMS in 16-bit linear units (0 dBov = full-scale square wave).
    pub fn rms(&self) -> f32 {
        32767.0 * 10f32.powf(-f32::from(self.level) / 20.0)
    }
}

/// Small deterministic PRNG (xorshift64*), seeded per stream.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        // splitmix64 step so that nearby seeds give unrelated sequences, never 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Prng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Generates comfort noise matching the last SID received.
#[derive(Clone, Debug)]
pub struct ComfortNoise {
    rng: Prng,
    /// Current and target excitation gain; the current one glides to the target so
    /// level changes do not click.
    gain: f32,
    target_gain: f32,
    order: usize,
    k: [f32; MAX_CN_ORDER],
    /// Lattice backward state, b[0..=order].
    b: [f32; MAX_CN_ORDER + 1],
    active: bool,
}

impl ComfortNoise {
    /// A silent generator whose noise sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        ComfortNoise {
            rng: Prng::new(seed),
            gain: 0.0,
            target_gain: 0.0,
            order: 0,
            k: [0.0; MAX_CN_ORDER],
            b: [0.0; MAX_CN_ORDER + 1],
            active: false,
        }
    }

    /// Take new parameters from a SID frame.
    pub fn update(&mut self, sid: &Sid) {
        let mut residual = 1.0f32;
        for k in &sid.reflection[..sid.order] {
            residual *= 1.0 - k * k;
        }
        // Uniform noise in [-1, 1) has variance 1/3: scale to unit variance, then to the
        // prediction-error power that makes the all-pole output hit the SID level.
        self.target_gain = sid.rms() * residual.sqrt() * 3f32.sqrt();
        if !self.active
            || sid.order != self.order
            || self.k[..self.order] != sid.reflection[..sid.order]
        {
            self.b = [0.0; MAX_CN_ORDER + 1];
        }
        if !self.active {
            self.gain = self.target_gain;
        }
        self.order = sid.order;
        self.k = sid.reflection;
        self.active = true;
    }

    /// Whether a SID has configured the generator.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Fill `out` with noise (silence before the first SID).
    pub fn generate(&mut self, out: &mut [i16]) {
        if !self.active {
            out.fill(0);
            return;
        }
        let k = &self.k[..self.order];
        for s in out.iter_mut() {
            self.gain += (self.target_gain - self.gain) * 0.01;
            let f = lattice(
                k,
                &mut self.b,
                (self.rng.next_f32() * 2.0 - 1.0) * self.gain,
            );
            *s = f.clamp(-32768.0, 32767.0) as i16;
        }
    }

    /// Fill `out` with the noise of samples `timestamp..timestamp + out.len()` of the
    /// inbound stream `ssrc` (silence before the first SID), as a function of those
    /// values and the latest SID alone, so that every mixer that received the same SID
    /// produces the same samples whatever it played before:
    ///
    /// - each sample's excitation is drawn from a generator seeded with
    ///   `(ssrc, its timestamp)`, not from the stream's running generator;
    /// - the synthesis filter starts from rest [`KEYED_WARM_UP`] samples earlier and runs
    ///   over those samples' excitation, so consecutive calls join up (to within the
    ///   filter's response that long ago) without carrying state;
    /// - the level is the SID's at once (no glide from the previous level).
    pub fn generate_keyed(&self, out: &mut [i16], ssrc: u32, timestamp: u32) {
        if !self.active {
            out.fill(0);
            return;
        }
        let k = &self.k[..self.order];
        let excitation = |ts: u32| {
            let mut rng = Prng::new(u64::from(ssrc) << 32 | u64::from(ts));
            (rng.next_f32() * 2.0 - 1.0) * self.target_gain
        };
        let mut b = [0.0; MAX_CN_ORDER + 1];
        if !k.is_empty() {
            let start = timestamp.wrapping_sub(KEYED_WARM_UP);
            for i in 0..KEYED_WARM_UP {
                lattice(k, &mut b, excitation(start.wrapping_add(i)));
            }
        }
        for (i, s) in (0u32..).zip(out.iter_mut()) {
            let f = lattice(k, &mut b, excitation(timestamp.wrapping_add(i)));
            *s = f.clamp(-32768.0, 32767.0) as i16;
        }
    }
}

/// Samples the synthesis filter runs before the first sample [`ComfortNoise::generate_keyed`]
/// returns (30 ms at 8 kHz: with the reflection coefficients clamped to ±0.98, what came
/// before has faded far below the noise by then).
pub const KEYED_WARM_UP: u32 = 240;

/// One step of the all-pole lattice synthesis filter with reflection coefficients `k`
/// and backward state `b`: excitation in, output sample out.
fn lattice(k: &[f32], b: &mut [f32; MAX_CN_ORDER + 1], excitation: f32) -> f32 {
    let mut f = excitation;
    for i in (0..k.len()).rev() {
        f -= k[i] * b[i];
        b[i + 1] = b[i] + k[i] * f;
    }
    b[0] = f;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn parse_level_and_coefficients() {
        assert_eq!(Sid::parse(&[]), Err(SidError::Empty));
        assert_eq!(Sid::parse(&[0x80]), Err(SidError::ReservedBit(0x80)));
        let s = Sid::parse(&[40]).unwrap();
        assert_eq!((s.level, s.order), (40, 0));
        let s = Sid::parse(&[40, 127, 255, 0]).unwrap();
        assert_eq!(s.order, 3);
        assert_eq!(s.reflection[0], 0.0);
        assert!((s.reflection[1] - 0.98).abs() < 1e-6);
        assert!((s.reflection[2] + 0.98).abs() < 1e-6);
        let long = [30u8; 40];
        assert_eq!(Sid::parse(&long).unwrap().order, MAX_CN_ORDER);
    }

    #[test]
    fn generated_noise_matches_the_sid_level() {
        for payload in [&[30u8][..], &[50], &[30, 200, 90, 140, 110], &[45, 20, 230]] {
            let sid = Sid::parse(payload).unwrap();
            let mut cn = ComfortNoise::new(7);
            cn.update(&sid);
            let mut out = vec![0i16; 80_000];
            cn.generate(&mut out);
            let got_db = 20.0 * (rms(&out[8000..]) / 32767.0).log10();
            let want_db = -f64::from(sid.level);
            assert!(
                (got_db - want_db).abs() < 1.5,
                "{payload:?}: {got_db:.1} dBov vs {want_db}"
            );
        }
    }

    #[test]
    fn noise_is_deterministic_per_seed() {
        let sid = Sid::parse(&[40]).unwrap();
        let mut a = ComfortNoise::new(1);
        let mut b = ComfortNoise::new(1);
        let mut c = ComfortNoise::new(2);
        for g in [&mut a, &mut b, &mut c] {
            g.update(&sid);
        }
        let (mut x, mut y, mut z) = ([0i16; 160], [0i16; 160], [0i16; 160]);
        a.generate(&mut x);
        b.generate(&mut y);
        c.generate(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn keyed_noise_depends_on_stream_timestamps_and_sid_only() {
        let sid = Sid::parse(&[40, 90, 160, 127]).unwrap();
        // Two generators with different seeds and different pasts.
        let mut a = ComfortNoise::new(1);
        let mut b = ComfortNoise::new(2);
        a.update(&Sid::parse(&[20]).unwrap());
        let mut scratch = [0i16; 500];
        a.generate(&mut scratch);
        a.update(&sid);
        b.update(&sid);
        let (mut x, mut y) = ([0i16; 160], [0i16; 160]);
        a.generate_keyed(&mut x, 0x1234, u32::MAX - 100);
        b.generate_keyed(&mut y, 0x1234, u32::MAX - 100);
        assert_eq!(x, y);
        assert!(x.iter().any(|&v| v != 0));
        // Split into two calls: the same samples (the excitation is keyed per sample;
        // the filter state is rebuilt from the warm-up, so only tiny differences).
        let (mut p, mut q) = ([0i16; 60], [0i16; 100]);
        b.generate_keyed(&mut p, 0x1234, u32::MAX - 100);
        b.generate_keyed(&mut q, 0x1234, (u32::MAX - 100).wrapping_add(60));
        assert_eq!(p[..], x[..60]);
        let joined: i32 = q
            .iter()
            .zip(&x[60..])
            .map(|(&u, &v)| (i32::from(u) - i32::from(v)).abs())
            .max()
            .unwrap();
        assert!(joined <= 2, "segments join up: {joined}");
        // Another stream or other timestamps give other noise, at the SID's level.
        b.generate_keyed(&mut y, 0x1235, u32::MAX - 100);
        assert_ne!(x, y);
        let mut long = vec![0i16; 8000];
        b.generate_keyed(&mut long, 7, 0);
        let got_db = 20.0 * (rms(&long) / 32767.0).log10();
        assert!((got_db + 40.0).abs() < 1.5, "{got_db:.1} dBov");
        let silent = ComfortNoise::new(3);
        silent.generate_keyed(&mut y, 1, 2);
        assert!(y.iter().all(|&v| v == 0));
    }

    #[test]
    fn silent_before_first_sid() {
        let mut cn = ComfortNoise::new(3);
        let mut out = [5i16; 40];
        cn.generate(&mut out);
        assert!(out.iter().all(|&v| v == 0));
        assert!(!cn.is_active());
    }
}
