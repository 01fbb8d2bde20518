//! The N-1 conference mixer: one [`Mixer`] per conference, one [`Mixer::tick`] per
//! packetisation interval.
//!
//! Per tick the frames of the active talkers are summed in `i32`. What each slot hears is
//! named by its [`Contributors`], which follow from its [`Role`]: a local participant
//! that contributed receives `saturate(sum - own)` (N-1), encoded in its codec; a trunk to
//! another server receives the sum of the local contributors only (never what other
//! trunks brought in); every other listener (a participant that did not contribute, a
//! tap) receives the shared `saturate(sum)`. Shared mixes are encoded once per
//! (contributor set, codec) and reused by every listener of that set. Muted
//! participants contribute nothing, deaf ones receive nothing, and each participant's
//! contribution can be scaled by a fixed-point [`Gain`].
//!
//! Active talkers are the loudest `active_speakers` participants with hysteresis (a talker
//! keeps the floor until it falls quiet or a louder participant beats it by a margin), or
//! every participant with [`ActiveSpeakers::All`]. Everything runs in integer arithmetic:
//! the same input frames give the same output bytes on every mixer, which is what seamless
//! handover compares.
//!
//! The mixer is sans-IO and preallocated: [`Mixer::new`] allocates every buffer for
//! `capacity` participants; adding participants, setting inputs and ticking allocate
//! nothing.
//!
//! Usage per tick: [`Mixer::set_input`] for each participant that has a frame, then
//! [`Mixer::tick`], then [`Mixer::output`] for each participant.

pub mod gain;
// The SIMD kernels are the one place in this crate allowed `unsafe` (intrinsics behind
// run-time feature detection, each block with its `// SAFETY:` note).
#[allow(unsafe_code)]
pub mod kernel;

use core::time::Duration;

use thiserror::Error;

use crate::clock::Instant;
use crate::codec::CodecKind;
use crate::rate::SampleRate;
pub use gain::Gain;
use kernel::{Kernel, KernelKind};

/// Most participants one mixer can hold: `MAX_CAPACITY * 32768` still fits in an `i32` sum.
pub const MAX_CAPACITY: usize = 60_000;
/// Most talkers [`ActiveSpeakers::Loudest`] can select.
pub const MAX_LOUDEST: u8 = 32;

/// Packetisation interval of a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ptime {
    /// 10 ms, 80 samples.
    Ms10,
    /// 20 ms, 160 samples (the default).
    #[default]
    Ms20,
    /// 30 ms, 240 samples.
    Ms30,
    /// 40 ms, 320 samples.
    Ms40,
}

impl Ptime {
    /// The longest interval.
    pub const MAX: Ptime = Ptime::Ms40;

    /// The interval in milliseconds.
    pub const fn millis(self) -> u32 {
        match self {
            Ptime::Ms10 => 10,
            Ptime::Ms20 => 20,
            Ptime::Ms30 => 30,
            Ptime::Ms40 => 40,
        }
    }

    /// Samples per frame at `rate`.
    pub const fn samples(self, rate: SampleRate) -> usize {
        rate.samples_in_ms(self.millis())
    }

    /// The interval as a duration.
    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.millis() as u64)
    }

    /// The ptime for `ms` milliseconds, if allowed.
    pub const fn from_millis(ms: u32) -> Option<Ptime> {
        match ms {
            10 => Some(Ptime::Ms10),
            20 => Some(Ptime::Ms20),
            30 => Some(Ptime::Ms30),
            40 => Some(Ptime::Ms40),
            _ => None,
        }
    }
}

/// How many participants are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActiveSpeakers {
    /// The loudest `n` (1..=[`MAX_LOUDEST`]) participants above the talk threshold.
    Loudest(u8),
    /// Every unmuted participant that sent a frame this tick.
    All,
}

impl Default for ActiveSpeakers {
    fn default() -> Self {
        ActiveSpeakers::Loudest(3)
    }
}

/// Mixer settings, fixed for the mixer's life.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerConfig {
    /// Packetisation interval.
    pub ptime: Ptime,
    /// The rate frames are mixed at (every input and output frame is at it).
    pub rate: SampleRate,
    /// Talker selection.
    pub active_speakers: ActiveSpeakers,
    /// Participants to preallocate for (at most [`MAX_CAPACITY`]).
    pub capacity: usize,
    /// Force a kernel (tests, benchmarks); `None` picks the fastest this CPU supports.
    pub kernel: Option<KernelKind>,
    /// A participant becomes eligible to talk when its smoothed level reaches this many dB
    /// below full scale (dBov, negative); a talker keeps the floor down to 6 dB below it.
    pub talk_threshold_dbov: i8,
    /// A louder participant replaces the quietest talker only if it is this many dB louder.
    pub switch_margin_db: u8,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            ptime: Ptime::Ms20,
            rate: SampleRate::Hz8000,
            active_speakers: ActiveSpeakers::default(),
            capacity: 64,
            kernel: None,
            talk_threshold_dbov: -50,
            switch_margin_db: 3,
        }
    }
}

/// Mixer errors (configuration and API misuse; the tick itself cannot fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MixerError {
    /// `capacity` is 0 or above [`MAX_CAPACITY`].
    #[error("capacity {0} out of range 1..={MAX_CAPACITY}")]
    Capacity(usize),
    /// `Loudest(n)` with `n` of 0 or above [`MAX_LOUDEST`].
    #[error("active speakers {0} out of range 1..={MAX_LOUDEST}")]
    ActiveSpeakers(u8),
    /// The forced kernel can't run on this CPU.
    #[error("kernel {0} not supported by this CPU")]
    KernelUnsupported(&'static str),
    /// All slots are taken.
    #[error("mixer full")]
    Full,
    /// No participant in this slot.
    #[error("no participant in slot {0}")]
    NoSuchSlot(u32),
    /// The input frame does not hold exactly one ptime of audio.
    #[error("frame of {got} samples, expected {expected}")]
    FrameLength {
        /// Samples per frame for this mixer.
        expected: usize,
        /// Samples the input carried (or bytes, if the length was invalid for the codec).
        got: usize,
    },
}

/// A participant's slot index in its mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u32);

impl Slot {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a slot is in its conference's mix: whether it contributes, and which sum it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// A participant on this server: contributes; hears everyone but itself (N-1),
    /// trunks included.
    #[default]
    Local,
    /// A trunk to another server of a cascaded conference: contributes that server's
    /// participants; hears the sum of the local participants only.
    Trunk,
    /// An audio tap (recorder, recogniser): contributes nothing; hears the full sum.
    Tap,
    /// A line test (the `echo` application): contributes, and hears the full sum, its
    /// own input included.
    Echo,
}

/// Whose audio a mix output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contributors {
    /// Every contributor but this slot (a local participant that contributed).
    AllBut(Slot),
    /// Every contributor that is not a trunk (what trunks hear).
    Local,
    /// Every contributor (listeners that did not contribute, taps).
    All,
}

/// How a participant is set up when added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParticipantConfig {
    /// What the slot is in the mix.
    pub role: Role,
    /// Codec of its input payloads and of the output it receives.
    pub codec: CodecKind,
    /// Contributes nothing.
    pub muted: bool,
    /// Receives nothing.
    pub deaf: bool,
    /// Gain applied to its contribution.
    pub gain: Gain,
}

impl ParticipantConfig {
    /// An unmuted, hearing participant at 0 dB using `codec`.
    pub const fn new(codec: CodecKind) -> Self {
        ParticipantConfig {
            role: Role::Local,
            codec,
            muted: false,
            deaf: false,
            gain: Gain::UNITY,
        }
    }
}

/// One participant's input for the current tick.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// An encoded payload in the participant's codec.
    Encoded(&'a [u8]),
    /// Already decoded 16-bit linear PCM at the mixer's rate (e.g. from loss concealment).
    Pcm(&'a [i16]),
}

/// What a participant receives this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output<'a> {
    /// The encoded payload (shared between listeners of the same codec).
    pub payload: &'a [u8],
    /// The participant's codec.
    pub codec: CodecKind,
    /// Whether the mix carries speech from someone else (for the RTP marker bit and DTX).
    pub voiced: bool,
    /// Whether this is the participant's own `sum - own` mix (it is a contributing talker).
    pub own_mix: bool,
    /// Whose audio it holds.
    pub mix: Contributors,
}

/// Summary of one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    /// Talkers whose frames were summed.
    pub contributors: usize,
    /// Whether the set of active talkers changed this tick.
    pub talkers_changed: bool,
    /// Whether this tick ran more than one ptime after it was due.
    pub late: bool,
    /// When the next tick is due.
    pub next_due: Instant,
}

/// Counters, read by the control core at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MixerStats {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that ran more than one ptime late (the schedule was reset).
    pub late_ticks: u64,
    /// Inputs rejected for a wrong frame length.
    pub bad_inputs: u64,
    /// Shared-mix encodes (one per codec in use per tick).
    pub shared_encodes: u64,
    /// Talker-specific `sum - own` encodes.
    pub own_encodes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Participant {
    in_use: bool,
    role: Role,
    codec: CodecKind,
    muted: bool,
    deaf: bool,
    gain: Gain,
    /// A frame was set for the current tick.
    has_input: bool,
    /// Energy of the current tick's frame.
    energy: u64,
    /// Smoothed per-tick energy for talker selection.
    level: u64,
    /// Currently an active talker.
    talker: bool,
    /// Contributed to the current tick's sum.
    contributed: bool,
    /// Level at or above the talk threshold.
    speaking: bool,
    /// The last tick produced an output for it.
    has_output: bool,
}

impl Participant {
    const EMPTY: Participant = Participant {
        in_use: false,
        role: Role::Local,
        codec: CodecKind::Pcmu,
        muted: false,
        deaf: false,
        gain: Gain::UNITY,
        has_input: false,
        energy: 0,
        level: 0,
        talker: false,
        contributed: false,
        speaking: false,
        has_output: false,
    };

    /// Whether its frames may be mixed now.
    fn may_talk(&self) -> bool {
        self.in_use && !self.muted && self.role != Role::Tap
    }

    /// Whose audio it hears after the last tick.
    fn contributors(&self, slot: Slot, trunk_contributed: bool) -> Contributors {
        match self.role {
            Role::Local if self.contributed => Contributors::AllBut(slot),
            Role::Trunk if trunk_contributed => Contributors::Local,
            // With no trunk in the sum, the local sum is the full one (shared with it).
            Role::Local | Role::Trunk | Role::Tap | Role::Echo => Contributors::All,
        }
    }
}

/// Energy of a frame of `samples` whose RMS is `dbov` dB below full scale, in the units of
/// [`kernel::scalar::energy`] (13-bit samples), computed deterministically.
fn energy_at_dbov(dbov: i32, samples: usize) -> u64 {
    // Full-scale 13-bit RMS is 4096; energy per sample is RMS^2.
    let gain = Gain::from_db(dbov as f32);
    let rms = (4096 * i64::from(gain.q12())) >> 12;
    (rms * rms) as u64 * samples as u64
}

/// Integer power ratio `10^(db/10)` in Q8, deterministic.
fn power_ratio_q8(db: u8) -> u64 {
    let amplitude = Gain::from_db(f32::from(db)).q12() as u64; // Q12 of 10^(db/20)
    (amplitude * amplitude) >> 16
}

/// The N-1 mixer of one conference.
#[derive(Debug)]
pub struct Mixer {
    kernel: Kernel,
    ptime: Ptime,
    frame: usize,
    loudest: Option<usize>,
    enter_level: u64,
    keep_level: u64,
    switch_q8: u64,
    participants: Vec<Participant>,
    free: Vec<u32>,
    talkers: Vec<u32>,
    /// `capacity * frame` decoded (then gained) input samples.
    pcm: Vec<i16>,
    /// `capacity * frame * 2` bytes of talker-specific encoded output.
    own_out: Vec<u8>,
    /// Shared `saturate(sum)` per codec, `frame * 2` bytes each.
    shared: [Vec<u8>; 3],
    /// Shared `saturate(local_sum)` per codec (for trunks), `frame * 2` bytes each.
    shared_local: [Vec<u8>; 3],
    /// Every contributor's frames.
    sum: Vec<i32>,
    /// The local (non-trunk) contributors' frames; valid when `trunk_contributed`.
    local_sum: Vec<i32>,
    /// A trunk contributed to the last tick's `sum`.
    trunk_contributed: bool,
    speaking_contributors: usize,
    speaking_local: usize,
    next_due: Option<Instant>,
    stats: MixerStats,
}

impl Mixer {
    /// Creates a mixer and allocates all its buffers.
    pub fn new(config: MixerConfig) -> Result<Mixer, MixerError> {
        if config.capacity == 0 || config.capacity > MAX_CAPACITY {
            return Err(MixerError::Capacity(config.capacity));
        }
        let loudest = match config.active_speakers {
            ActiveSpeakers::Loudest(n) if n == 0 || n > MAX_LOUDEST => {
                return Err(MixerError::ActiveSpeakers(n));
            }
            ActiveSpeakers::Loudest(n) => Some(usize::from(n)),
            ActiveSpeakers::All => None,
        };
        let kernel = match config.kernel {
            Some(kind) => Kernel::new(kind).ok_or(MixerError::KernelUnsupported(kind.name()))?,
            None => Kernel::best(),
        };
        let frame = config.ptime.samples(config.rate);
        let cap = config.capacity;
        let threshold = i32::from(config.talk_threshold_dbov.min(0));
        Ok(Mixer {
            kernel,
            ptime: config.ptime,
            frame,
            loudest,
            enter_level: energy_at_dbov(threshold, frame),
            keep_level: energy_at_dbov(threshold - 6, frame),
            switch_q8: power_ratio_q8(config.switch_margin_db),
            participants: vec![Participant::EMPTY; cap],
            free: (0..cap as u32).rev().collect(),
            talkers: Vec::with_capacity(cap),
            pcm: vec![0; cap * frame],
            own_out: vec![0; cap * frame * 2],
            shared: [vec![0; frame * 2], vec![0; frame * 2], vec![0; frame * 2]],
            shared_local: [vec![0; frame * 2], vec![0; frame * 2], vec![0; frame * 2]],
            sum: vec![0; frame],
            local_sum: vec![0; frame],
            trunk_contributed: false,
            speaking_contributors: 0,
            speaking_local: 0,
            next_due: None,
            stats: MixerStats::default(),
        })
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The packetisation interval.
    pub fn ptime(&self) -> Ptime {
        self.ptime
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Counters.
    pub fn stats(&self) -> MixerStats {
        self.stats
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.participants.len() - self.free.len()
    }

    /// Whether the mixer has no participants.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a participant; returns its slot. Allocates nothing.
    pub fn add_participant(&mut self, config: ParticipantConfig) -> Result<Slot, MixerError> {
        let idx = self.free.pop().ok_or(MixerError::Full)?;
        if let Some(p) = self.participants.get_mut(idx as usize) {
            *p = Participant {
                in_use: true,
                role: config.role,
                codec: config.codec,
                muted: config.muted,
                deaf: config.deaf,
                gain: config.gain,
                ..Participant::EMPTY
            };
        }
        Ok(Slot(idx))
    }

    /// Removes a participant; its slot may be reused by a later add.
    pub fn remove_participant(&mut self, slot: Slot) -> Result<(), MixerError> {
        self.participant_mut(slot)?;
        if let Some(p) = self.participants.get_mut(slot.index()) {
            *p = Participant::EMPTY;
        }
        self.talkers.retain(|&t| t != slot.0);
        self.free.push(slot.0);
        Ok(())
    }

    fn participant_mut(&mut self, slot: Slot) -> Result<&mut Participant, MixerError> {
        match self.participants.get_mut(slot.index()) {
            Some(p) if p.in_use => Ok(p),
            _ => Err(MixerError::NoSuchSlot(slot.0)),
        }
    }

    fn participant(&self, slot: Slot) -> Option<&Participant> {
        self.participants.get(slot.index()).filter(|p| p.in_use)
    }

    /// Mutes or unmutes a participant (a muted participant stops being a talker at once).
    pub fn set_muted(&mut self, slot: Slot, muted: bool) -> Result<(), MixerError> {
        self.participant_mut(slot)?.muted = muted;
        Ok(())
    }

    /// Makes a participant deaf (receives nothing) or hearing.
    pub fn set_deaf(&mut self, slot: Slot, deaf: bool) -> Result<(), MixerError> {
        self.participant_mut(slot)?.deaf = deaf;
        Ok(())
    }

    /// Sets the gain applied to a participant's contribution.
    pub fn set_gain(&mut self, slot: Slot, gain: Gain) -> Result<(), MixerError> {
        self.participant_mut(slot)?.gain = gain;
        Ok(())
    }

    /// Changes a participant's codec (input and output).
    pub fn set_codec(&mut self, slot: Slot, codec: CodecKind) -> Result<(), MixerError> {
        let p = self.participant_mut(slot)?;
        p.codec = codec;
        p.has_output = false;
        Ok(())
    }

    /// Whether the participant is currently an active talker.
    pub fn is_talker(&self, slot: Slot) -> bool {
        self.participant(slot).is_some_and(|p| p.talker)
    }

    /// The active talkers, in the order they got the floor.
    pub fn talkers(&self) -> impl Iterator<Item = Slot> + '_ {
        self.talkers.iter().map(|&t| Slot(t))
    }

    /// Gives a participant its frame for the next tick (decoding it now). A second call
    /// before the tick replaces the first. The frame must hold exactly one ptime of audio.
    pub fn set_input(&mut self, slot: Slot, input: Input<'_>) -> Result<(), MixerError> {
        let frame = self.frame;
        let kernel = self.kernel;
        let codec = self.participant_mut(slot)?.codec;
        let got = match input {
            Input::Encoded(payload) => codec.samples_in(payload.len()).unwrap_or(payload.len()),
            Input::Pcm(pcm) => pcm.len(),
        };
        let start = slot.index() * frame;
        let dst = self.pcm.get_mut(start..start + frame);
        let Some(dst) = dst.filter(|_| got == frame) else {
            self.stats.bad_inputs += 1;
            return Err(MixerError::FrameLength {
                expected: frame,
                got,
            });
        };
        let energy = match input {
            Input::Encoded(payload) => kernel.decode_energy(codec, payload, dst).1,
            Input::Pcm(pcm) => {
                dst.copy_from_slice(pcm);
                kernel.energy(dst)
            }
        };
        let p = self.participant_mut(slot)?;
        p.has_input = true;
        p.energy = energy;
        Ok(())
    }

    /// When the next tick is due (`None` before the first tick).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due
    }

    /// Runs one mixing tick over the inputs set since the last tick. Allocates nothing.
    pub fn tick(&mut self, now: Instant) -> TickReport {
        let late = self.advance_schedule(now);
        self.update_levels();
        let talkers_changed = self.select_talkers();
        let contributors = self.sum_contributors();
        self.encode_outputs();
        self.stats.ticks += 1;
        TickReport {
            contributors,
            talkers_changed,
            late,
            next_due: self.next_due.unwrap_or(now),
        }
    }

    /// Moves the tick schedule on by one ptime; resets it if `now` is more than one ptime
    /// past the due time. Returns whether the tick was late.
    fn advance_schedule(&mut self, now: Instant) -> bool {
        let step = self.ptime.duration();
        let (next, late) = match self.next_due {
            Some(due) if now < due + step => (due + step, false),
            Some(_) => (now + step, true),
            None => (now + step, false),
        };
        self.next_due = Some(next);
        if late {
            self.stats.late_ticks += 1;
        }
        late
    }

    fn update_levels(&mut self) {
        for p in self.participants.iter_mut().filter(|p| p.in_use) {
            let e = if p.has_input && p.may_talk() {
                p.energy
            } else {
                0
            };
            // Exponential smoothing over ~4 ticks, in integers.
            p.level = (p.level * 3 + e) / 4;
            p.speaking = p.level >= self.enter_level;
        }
    }

    /// Updates the talker set; returns whether it changed.
    fn select_talkers(&mut self) -> bool {
        let Some(limit) = self.loudest else {
            return self.select_all();
        };
        let mut changed = false;
        // Drop talkers that left, were muted or fell quiet.
        let parts = &mut self.participants;
        let keep_level = self.keep_level;
        self.talkers.retain(|&t| match parts.get_mut(t as usize) {
            Some(p) if p.may_talk() && p.level >= keep_level => true,
            Some(p) => {
                p.talker = false;
                changed = true;
                false
            }
            None => false,
        });
        // The loudest eligible non-talkers, loudest first (ties: lower slot first).
        let mut cand = [(0u64, 0u32); MAX_LOUDEST as usize];
        let mut n = 0usize;
        for (i, p) in self.participants.iter().enumerate() {
            if !p.may_talk() || p.talker || p.level < self.enter_level {
                continue;
            }
            // Insertion into the sorted list of at most `limit` (n <= limit <= 32).
            let entry = (p.level, i as u32);
            let mut pos = n;
            while pos > 0 && cand.get(pos - 1).is_some_and(|c| c.0 < entry.0) {
                pos -= 1;
            }
            if pos < limit {
                cand.copy_within(pos..n.min(limit - 1), pos + 1);
                if let Some(c) = cand.get_mut(pos) {
                    *c = entry;
                }
                n = (n + 1).min(limit);
            }
        }
        for &(level, idx) in cand.iter().take(n) {
            if self.talkers.len() < limit {
                self.talkers.push(idx);
            } else {
                // Replace the quietest talker if the candidate beats it by the margin.
                let weakest = self
                    .talkers
                    .iter()
                    .enumerate()
                    .filter_map(|(pos, &t)| {
                        self.participants.get(t as usize).map(|p| (p.level, pos))
                    })
                    .min_by_key(|&(l, pos)| (l, core::cmp::Reverse(pos)));
                let Some((weak_level, pos)) = weakest else {
                    break;
                };
                if level.saturating_mul(256) <= weak_level.saturating_mul(self.switch_q8) {
                    break;
                }
                if let Some(old) = self.talkers.get(pos).copied() {
                    if let Some(p) = self.participants.get_mut(old as usize) {
                        p.talker = false;
                    }
                    self.talkers.remove(pos);
                    self.talkers.push(idx);
                }
            }
            if let Some(p) = self.participants.get_mut(idx as usize) {
                p.talker = true;
            }
            changed = true;
        }
        changed
    }

    /// `All` mode: every unmuted participant with a frame talks.
    fn select_all(&mut self) -> bool {
        let mut changed = false;
        self.talkers.clear();
        for (i, p) in self.participants.iter_mut().enumerate() {
            let talk = p.may_talk() && p.has_input;
            changed |= talk != p.talker;
            p.talker = talk;
            if talk {
                self.talkers.push(i as u32);
            }
        }
        changed
    }

    /// Sums the talkers that sent a frame, local ones first (and keeps their sum aside
    /// when a trunk adds to it); returns how many did.
    fn sum_contributors(&mut self) -> usize {
        self.sum.fill(0);
        self.speaking_contributors = 0;
        self.trunk_contributed = false;
        for p in self.participants.iter_mut() {
            p.contributed = false;
        }
        let mut count = self.add_talkers(false);
        self.speaking_local = self.speaking_contributors;
        let locals = count;
        if self.talkers.iter().any(|&t| {
            self.participants
                .get(t as usize)
                .is_some_and(|p| p.role == Role::Trunk && p.has_input)
        }) {
            self.local_sum.copy_from_slice(&self.sum);
            count += self.add_talkers(true);
            self.trunk_contributed = count > locals;
        }
        count
    }

    /// Adds the trunk (or the other) talkers that sent a frame to `sum`; returns how many.
    fn add_talkers(&mut self, trunks: bool) -> usize {
        let frame = self.frame;
        let mut count = 0;
        for &t in &self.talkers {
            let Some(p) = self.participants.get_mut(t as usize) else {
                continue;
            };
            if !p.has_input || (p.role == Role::Trunk) != trunks {
                continue;
            }
            let start = t as usize * frame;
            let Some(pcm) = self.pcm.get_mut(start..start + frame) else {
                continue;
            };
            p.gain.apply(pcm);
            self.kernel.accumulate(&mut self.sum, pcm);
            p.contributed = true;
            self.speaking_contributors += usize::from(p.speaking);
            count += 1;
        }
        count
    }

    /// Encodes every contributor's own mix and each shared mix (per contributor set and
    /// codec) that a listener uses.
    fn encode_outputs(&mut self) {
        let frame = self.frame;
        let mut needed = [false; 3];
        let mut needed_local = [false; 3];
        for (i, p) in self.participants.iter_mut().enumerate() {
            if !p.in_use {
                continue;
            }
            p.has_input = false;
            p.has_output = !p.deaf;
            if p.deaf {
                continue;
            }
            let set = match p.contributors(Slot(i as u32), self.trunk_contributed) {
                Contributors::All => &mut needed,
                Contributors::Local => &mut needed_local,
                Contributors::AllBut(_) => {
                    let own = self.pcm.get(i * frame..(i + 1) * frame).unwrap_or(&[]);
                    let out = self
                        .own_out
                        .get_mut(i * frame * 2..(i + 1) * frame * 2)
                        .unwrap_or(&mut []);
                    self.kernel.encode_minus(p.codec, &self.sum, own, out);
                    self.stats.own_encodes += 1;
                    continue;
                }
            };
            if let Some(n) = set.get_mut(p.codec.index()) {
                *n = true;
            }
        }
        let shared = [
            (&needed, &self.sum, &mut self.shared),
            (&needed_local, &self.local_sum, &mut self.shared_local),
        ];
        for (needed, sum, bufs) in shared {
            for (codec, buf) in CodecKind::ALL.into_iter().zip(bufs.iter_mut()) {
                if needed.get(codec.index()).copied().unwrap_or(false) {
                    self.kernel.encode_sum(codec, sum, buf);
                    self.stats.shared_encodes += 1;
                }
            }
        }
    }

    /// What `slot` receives from the last tick: `None` if the slot is empty, the participant
    /// is deaf, or no tick has run since it joined (or changed codec).
    pub fn output(&self, slot: Slot) -> Option<Output<'_>> {
        let p = self.participant(slot)?;
        if p.deaf || !p.has_output {
            return None;
        }
        let len = p.codec.encoded_len(self.frame);
        let i = slot.index();
        let mix = p.contributors(slot, self.trunk_contributed);
        let (payload, voiced) = match mix {
            Contributors::AllBut(_) => (
                self.own_out.get(i * self.frame * 2..)?.get(..len)?,
                self.speaking_contributors > usize::from(p.speaking),
            ),
            Contributors::Local => (
                self.shared_local.get(p.codec.index())?.get(..len)?,
                self.speaking_local > 0,
            ),
            Contributors::All => (
                self.shared.get(p.codec.index())?.get(..len)?,
                self.speaking_contributors > 0,
            ),
        };
        Some(Output {
            payload,
            codec: p.codec,
            voiced,
            own_mix: matches!(mix, Contributors::AllBut(_)),
            mix,
        })
    }
}
