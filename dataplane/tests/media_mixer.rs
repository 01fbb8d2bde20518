//! Mixer behaviour: N-1 tone separation (Goertzel), mute/deaf/gain, talker selection with
//! hysteresis, encode-once sharing, determinism across kernels, API errors.

mod common;
use common::{db, decode, encode, goertzel, tone};

use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::mixer::kernel::{Kernel, KernelKind};
use tutti_dataplane::mixer::{
    ActiveSpeakers, Contributors, Gain, Input, Mixer, MixerConfig, MixerError, ParticipantConfig,
    Ptime, Role, Slot,
};
use tutti_dataplane::rate::SampleRate;

struct Conference {
    mixer: Mixer,
    slots: Vec<Slot>,
    now: Instant,
}

impl Conference {
    fn new(config: MixerConfig, codecs: &[CodecKind]) -> Self {
        let mut mixer = Mixer::new(config).unwrap();
        let slots = codecs
            .iter()
            .map(|&c| mixer.add_participant(ParticipantConfig::new(c)).unwrap())
            .collect();
        Conference {
            mixer,
            slots,
            now: Instant::from_nanos(1_000_000),
        }
    }

    /// Runs one tick with the given per-participant frames; returns each participant's
    /// output payload (None if deaf).
    fn tick(&mut self, frames: &[Option<Vec<u8>>]) -> Vec<Option<Vec<u8>>> {
        for (slot, f) in self.slots.iter().zip(frames) {
            if let Some(f) = f {
                self.mixer.set_input(*slot, Input::Encoded(f)).unwrap();
            }
        }
        self.mixer.tick(self.now);
        self.now += self.mixer.ptime().duration();
        self.slots
            .iter()
            .map(|&s| self.mixer.output(s).map(|o| o.payload.to_vec()))
            .collect()
    }
}

/// N tone generators: everyone hears every other tone within 1 dB of its level and its own
/// at least 40 dB down.
fn tone_conference(codecs: &[CodecKind], active: ActiveSpeakers, kernel: KernelKind) {
    let n = codecs.len();
    let freqs: Vec<f64> = (0..n).map(|i| 350.0 + 275.0 * i as f64).collect();
    let amplitude = 24000.0 / n as f64;
    let config = MixerConfig {
        active_speakers: active,
        kernel: Some(kernel),
        capacity: n,
        ..MixerConfig::default()
    };
    let mut conf = Conference::new(config, codecs);
    let frame = conf.mixer.frame_samples();
    let (warmup, ticks) = (2, 12);
    let mut heard: Vec<Vec<i16>> = vec![Vec::new(); n];
    let mut sent: Vec<Vec<i16>> = vec![Vec::new(); n];
    for t in 0..warmup + ticks {
        let frames: Vec<Option<Vec<u8>>> = (0..n)
            .map(|i| {
                Some(encode(
                    codecs[i],
                    &tone(freqs[i], amplitude, t * frame, frame),
                ))
            })
            .collect();
        let outs = conf.tick(&frames);
        if t >= warmup {
            for i in 0..n {
                sent[i].extend(decode(codecs[i], frames[i].as_ref().unwrap()));
                heard[i].extend(decode(codecs[i], outs[i].as_ref().unwrap()));
            }
        }
    }
    for (i, h) in heard.iter().enumerate() {
        for (j, &f) in freqs.iter().enumerate() {
            let level = db(goertzel(h, f) / goertzel(&sent[j], f));
            if i == j {
                assert!(
                    level < -40.0,
                    "participant {i} hears itself at {level:.1} dB ({kernel:?})"
                );
            } else {
                assert!(
                    level.abs() < 1.0,
                    "participant {i} hears {j} at {level:.2} dB ({kernel:?})"
                );
            }
        }
    }
}

#[test]
fn three_tones_default_config_every_kernel() {
    for k in Kernel::available() {
        tone_conference(&[CodecKind::Pcmu; 3], ActiveSpeakers::default(), k.kind());
        tone_conference(
            &[CodecKind::Pcma, CodecKind::L16, CodecKind::Pcmu],
            ActiveSpeakers::default(),
            k.kind(),
        );
    }
}

#[test]
fn six_tones_all_speakers_mixed_codecs() {
    let codecs = [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::L16,
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::Pcmu,
    ];
    tone_conference(&codecs, ActiveSpeakers::All, Kernel::best().kind());
    tone_conference(&codecs, ActiveSpeakers::Loudest(6), KernelKind::Scalar);
}

#[test]
fn all_ptimes_mix() {
    for ptime in [Ptime::Ms10, Ptime::Ms20, Ptime::Ms30, Ptime::Ms40] {
        let config = MixerConfig {
            ptime,
            ..MixerConfig::default()
        };
        let mut conf = Conference::new(config, &[CodecKind::Pcmu; 2]);
        let frame = ptime.samples(SampleRate::Hz8000);
        assert_eq!(conf.mixer.frame_samples(), frame);
        let a = encode(CodecKind::Pcmu, &tone(1000.0, 8000.0, 0, frame));
        let outs = conf.tick(&[Some(a.clone()), None]);
        // B hears A exactly (one talker, G.711 round trip is the identity on decoded codes).
        assert_eq!(outs[1].as_deref(), Some(&a[..]));
        // A hears silence.
        assert_eq!(outs[0].as_deref(), Some(&vec![0xFF; frame][..]));
    }
}

/// Frame sizes follow the mixer's rate: at 16 and 48 kHz a frame holds 2 and 6 times the
/// samples of 8 kHz, and one talker's PCM comes through exactly (L16 out).
#[test]
fn every_rate_mixes_frames_of_its_size() {
    for rate in SampleRate::ALL {
        for ptime in [Ptime::Ms10, Ptime::Ms20, Ptime::Ms40] {
            let config = MixerConfig {
                ptime,
                rate,
                capacity: 2,
                ..MixerConfig::default()
            };
            let mut conf = Conference::new(config, &[CodecKind::L16; 2]);
            let frame = conf.mixer.frame_samples();
            assert_eq!(frame, ptime.millis() as usize * rate.hz() as usize / 1000);
            let pcm = tone(1000.0, 8000.0, 0, frame);
            let short = &pcm[..frame / 2];
            assert_eq!(
                conf.mixer.set_input(conf.slots[0], Input::Pcm(short)),
                Err(MixerError::FrameLength {
                    expected: frame,
                    got: frame / 2
                })
            );
            conf.mixer
                .set_input(conf.slots[0], Input::Pcm(&pcm))
                .unwrap();
            conf.mixer.tick(conf.now);
            let heard = conf.mixer.output(conf.slots[1]).unwrap().payload;
            assert_eq!(decode(CodecKind::L16, heard), pcm, "{rate:?} {ptime:?}");
        }
    }
}

#[test]
fn mute_deaf_and_gain() {
    let mut conf = Conference::new(MixerConfig::default(), &[CodecKind::L16; 3]);
    let [a, b, c] = [conf.slots[0], conf.slots[1], conf.slots[2]];
    conf.mixer.set_muted(a, true).unwrap();
    conf.mixer.set_deaf(b, true).unwrap();
    conf.mixer.set_gain(c, Gain::from_db(-6.0)).unwrap();
    let frame = conf.mixer.frame_samples();
    let ta = tone(500.0, 8000.0, 0, frame);
    let tc = tone(1500.0, 8000.0, 0, frame);
    let frames = [
        Some(encode(CodecKind::L16, &ta)),
        Some(encode(CodecKind::L16, &tone(900.0, 8000.0, 0, frame))),
        Some(encode(CodecKind::L16, &tc)),
    ];
    let outs = conf.tick(&frames);
    assert!(outs[1].is_none(), "deaf participant receives nothing");
    let heard_by_a = decode(CodecKind::L16, outs[0].as_ref().unwrap());
    assert!(
        db(goertzel(&heard_by_a, 500.0) / goertzel(&ta, 500.0)) < -60.0,
        "muted A is not mixed"
    );
    let c_level = db(goertzel(&heard_by_a, 1500.0) / goertzel(&tc, 1500.0));
    assert!((c_level + 6.0).abs() < 0.1, "C at -6 dB, got {c_level:.2}");
    assert!(!conf.mixer.is_talker(a));
    // A muted participant still hears; B (deaf) still talks.
    let heard_by_c = decode(CodecKind::L16, outs[2].as_ref().unwrap());
    assert!(goertzel(&heard_by_c, 900.0) > 1e9);
    // Unmute A: after smoothing A is mixed again.
    conf.mixer.set_muted(a, false).unwrap();
    let outs = conf.tick(&frames);
    let heard_by_c = decode(CodecKind::L16, outs[2].as_ref().unwrap());
    assert!(db(goertzel(&heard_by_c, 500.0) / goertzel(&ta, 500.0)).abs() < 0.1);
}

fn level_frame(amplitude: f64, freq: f64, t: usize) -> Option<Vec<u8>> {
    Some(encode(CodecKind::L16, &tone(freq, amplitude, t * 160, 160)))
}

#[test]
fn loudest_talkers_with_hysteresis() {
    let mut conf = Conference::new(MixerConfig::default(), &[CodecKind::L16; 5]);
    let s = conf.slots.clone();
    let talkers = |c: &Conference| {
        let mut v: Vec<u32> = c.mixer.talkers().map(|s| s.0).collect();
        v.sort();
        v
    };
    // Levels: 0 and 1 loud, 2 medium, 3 slightly quieter than 2, 4 silent.
    let amps = [10000.0, 9000.0, 3000.0, 2700.0, 0.0];
    for t in 0..10 {
        let frames: Vec<_> = amps
            .iter()
            .enumerate()
            .map(|(i, &a)| level_frame(a, 300.0 + 100.0 * i as f64, t))
            .collect();
        conf.tick(&frames);
    }
    assert_eq!(talkers(&conf), vec![s[0].0, s[1].0, s[2].0]);
    // 3 becomes 1 dB louder than 2: not enough to switch (3 dB margin).
    let amps = [10000.0, 9000.0, 3000.0, 3400.0, 0.0];
    for t in 10..30 {
        let frames: Vec<_> = amps
            .iter()
            .enumerate()
            .map(|(i, &a)| level_frame(a, 300.0 + 100.0 * i as f64, t))
            .collect();
        let report_talkers = talkers(&conf);
        conf.tick(&frames);
        assert_eq!(report_talkers, talkers(&conf), "no flapping at tick {t}");
    }
    assert_eq!(talkers(&conf), vec![s[0].0, s[1].0, s[2].0]);
    // 3 becomes 10 dB louder than 2: it takes 2's place.
    let amps = [10000.0, 9000.0, 3000.0, 9500.0, 0.0];
    for t in 30..40 {
        let frames: Vec<_> = amps
            .iter()
            .enumerate()
            .map(|(i, &a)| level_frame(a, 300.0 + 100.0 * i as f64, t))
            .collect();
        conf.tick(&frames);
    }
    assert_eq!(talkers(&conf), vec![s[0].0, s[1].0, s[3].0]);
    // Everyone stops: talkers leave once their smoothed level falls below the keep level.
    for _ in 0..40 {
        conf.tick(&[None, None, None, None, None]);
    }
    assert!(talkers(&conf).is_empty());
    let out = conf.mixer.output(s[4]).unwrap();
    assert!(!out.voiced && !out.own_mix);
    assert!(out.payload.iter().all(|&b| b == 0));
}

#[test]
fn shared_mix_is_encoded_once_per_codec() {
    let mut codecs = vec![CodecKind::Pcmu; 50];
    codecs.extend([CodecKind::Pcma; 30]);
    let config = MixerConfig {
        capacity: 100,
        ..MixerConfig::default()
    };
    let mut conf = Conference::new(config, &codecs);
    let mut frames: Vec<Option<Vec<u8>>> = vec![None; 80];
    frames[0] = Some(encode(CodecKind::Pcmu, &tone(440.0, 9000.0, 0, 160)));
    frames[60] = Some(encode(CodecKind::Pcma, &tone(660.0, 9000.0, 0, 160)));
    let outs = conf.tick(&frames);
    let st = conf.mixer.stats();
    assert_eq!((st.shared_encodes, st.own_encodes), (2, 2));
    // All mu-law listeners share one buffer (same bytes, same address).
    let p1 = conf.mixer.output(conf.slots[1]).unwrap();
    let p2 = conf.mixer.output(conf.slots[2]).unwrap();
    assert!(std::ptr::eq(p1.payload, p2.payload));
    assert!(p1.voiced && !p1.own_mix);
    let talker = conf.mixer.output(conf.slots[0]).unwrap();
    assert!(talker.own_mix && talker.voiced);
    assert_ne!(outs[0], outs[1]);
    assert_eq!(outs[61], outs[79]);
}

/// One participant's output of one tick, owned.
type PayloadAndVoiced = Option<(Vec<u8>, bool, Contributors)>;

#[test]
fn kernels_produce_identical_bytes() {
    use rand::{Rng, SeedableRng};
    let mut mixers: Vec<(Mixer, Vec<Slot>)> = Kernel::available()
        .map(|k| {
            let config = MixerConfig {
                capacity: 12,
                kernel: Some(k.kind()),
                active_speakers: ActiveSpeakers::Loudest(4),
                ..MixerConfig::default()
            };
            (Mixer::new(config).unwrap(), Vec::new())
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let codecs = CodecKind::ALL;
    for t in 0..300u64 {
        // Random joins, leaves, mutes, gains and frames, the same for every mixer.
        let action: u32 = rng.gen_range(0..20);
        let pick: usize = rng.gen_range(0..12);
        let codec = codecs[rng.gen_range(0..3)];
        let gain = Gain::from_db(rng.gen_range(-20.0..12.0));
        // Mostly local participants, some trunks and taps: every contributor set.
        let role = [
            Role::Local,
            Role::Local,
            Role::Local,
            Role::Trunk,
            Role::Tap,
        ][rng.gen_range(0..5)];
        let frames: Vec<(bool, Vec<i16>)> = (0..12)
            .map(|_| {
                let amp: i32 = if rng.gen_bool(0.3) {
                    30000
                } else {
                    rng.gen_range(0..4000)
                };
                (
                    rng.gen_bool(0.8),
                    (0..160).map(|_| rng.gen_range(-amp..=amp) as i16).collect(),
                )
            })
            .collect();
        let mut outputs: Vec<Vec<PayloadAndVoiced>> = Vec::new();
        for (m, slots) in mixers.iter_mut() {
            match action {
                0 | 1 if slots.len() < 12 => slots.push(
                    m.add_participant(ParticipantConfig {
                        gain,
                        role,
                        ..ParticipantConfig::new(codec)
                    })
                    .unwrap(),
                ),
                2 if !slots.is_empty() => m
                    .remove_participant(slots.remove(pick % slots.len()))
                    .unwrap(),
                3 if !slots.is_empty() => {
                    m.set_muted(slots[pick % slots.len()], t % 2 == 0).unwrap()
                }
                4 if !slots.is_empty() => m.set_gain(slots[pick % slots.len()], gain).unwrap(),
                5 if !slots.is_empty() => {
                    m.set_deaf(slots[pick % slots.len()], t % 3 == 0).unwrap()
                }
                _ => {}
            }
            for (slot, (present, pcm)) in slots.iter().zip(&frames) {
                if *present {
                    m.set_input(*slot, Input::Pcm(pcm)).unwrap();
                }
            }
            m.tick(Instant::from_nanos(t * 20_000_000));
            outputs.push(
                slots
                    .iter()
                    .map(|s| m.output(*s).map(|o| (o.payload.to_vec(), o.voiced, o.mix)))
                    .collect(),
            );
        }
        for o in &outputs[1..] {
            assert_eq!(o, &outputs[0], "tick {t}");
        }
    }
}

#[test]
fn api_errors_and_schedule() {
    let config = MixerConfig {
        capacity: 2,
        ..MixerConfig::default()
    };
    let mut m = Mixer::new(config).unwrap();
    assert!(m.is_empty());
    let a = m
        .add_participant(ParticipantConfig::new(CodecKind::L16))
        .unwrap();
    let b = m
        .add_participant(ParticipantConfig::new(CodecKind::Pcmu))
        .unwrap();
    assert_eq!(
        m.add_participant(ParticipantConfig::new(CodecKind::Pcmu)),
        Err(MixerError::Full)
    );
    assert_eq!(m.len(), 2);
    assert_eq!(
        m.set_input(a, Input::Encoded(&[0; 319])),
        Err(MixerError::FrameLength {
            expected: 160,
            got: 319
        })
    );
    assert_eq!(
        m.set_input(b, Input::Encoded(&[0; 80])),
        Err(MixerError::FrameLength {
            expected: 160,
            got: 80
        })
    );
    assert_eq!(
        m.set_input(b, Input::Pcm(&[0; 161])),
        Err(MixerError::FrameLength {
            expected: 160,
            got: 161
        })
    );
    assert_eq!(m.stats().bad_inputs, 3);
    assert!(m.output(a).is_none(), "no output before the first tick");
    m.remove_participant(a).unwrap();
    assert_eq!(m.remove_participant(a), Err(MixerError::NoSuchSlot(a.0)));
    assert_eq!(m.set_muted(Slot(99), true), Err(MixerError::NoSuchSlot(99)));
    assert!(m.output(Slot(99)).is_none());

    assert_eq!(m.poll_timeout(), None);
    let t0 = Instant::from_nanos(5_000_000);
    let r = m.tick(t0);
    assert_eq!(r.next_due, t0 + Ptime::Ms20.duration());
    assert!(!r.late);
    let r = m.tick(r.next_due + std::time::Duration::from_millis(3));
    assert_eq!(
        r.next_due.as_nanos(),
        45_000_000,
        "schedule keeps its phase"
    );
    let r = m.tick(Instant::from_nanos(200_000_000));
    assert!(r.late);
    assert_eq!(r.next_due.as_nanos(), 220_000_000);
    assert_eq!(m.stats().late_ticks, 1);
    assert_eq!(m.poll_timeout(), Some(r.next_due));

    for bad in [0, 60_001] {
        let c = MixerConfig {
            capacity: bad,
            ..MixerConfig::default()
        };
        assert_eq!(Mixer::new(c).unwrap_err(), MixerError::Capacity(bad));
    }
    for bad in [0, 33] {
        let c = MixerConfig {
            active_speakers: ActiveSpeakers::Loudest(bad),
            ..MixerConfig::default()
        };
        assert_eq!(Mixer::new(c).unwrap_err(), MixerError::ActiveSpeakers(bad));
    }
    assert_eq!(Ptime::from_millis(30), Some(Ptime::Ms30));
    assert_eq!(Ptime::from_millis(25), None);
}

/// Contributor sets, exactly (L16, no saturation): a local talker hears everyone but
/// itself, trunks included; a trunk hears the local talkers only (not itself, not the
/// other trunk); a tap and a silent local listener hear the full sum, from one shared
/// encode; a tap's own frames are never mixed. Every kernel, the same bytes.
#[test]
fn contributor_sets_trunks_and_taps() {
    use rand::{Rng, SeedableRng};
    let roles = [
        Role::Local,
        Role::Local,
        Role::Trunk,
        Role::Trunk,
        Role::Tap,
        Role::Local,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let frames: Vec<Vec<i16>> = (0..5)
        .map(|_| (0..160).map(|_| rng.gen_range(-3000..=3000)).collect())
        .collect();
    let at = |i: usize, k: usize| i32::from(frames[i][k]);
    let mut reference: Option<Vec<Vec<u8>>> = None;
    for kernel in Kernel::available() {
        let config = MixerConfig {
            capacity: roles.len(),
            kernel: Some(kernel.kind()),
            active_speakers: ActiveSpeakers::All,
            ..MixerConfig::default()
        };
        let mut m = Mixer::new(config).unwrap();
        let slots: Vec<Slot> = roles
            .iter()
            .map(|&role| {
                m.add_participant(ParticipantConfig {
                    role,
                    ..ParticipantConfig::new(CodecKind::L16)
                })
                .unwrap()
            })
            .collect();
        // Participants 0-4 send (the tap's frame must be ignored); 5 only listens.
        for (slot, pcm) in slots.iter().zip(&frames) {
            m.set_input(*slot, Input::Pcm(pcm)).unwrap();
        }
        let before = m.stats();
        m.tick(Instant::from_nanos(20_000_000));
        let after = m.stats();
        let out = |i: usize| m.output(slots[i]).unwrap();
        let heard = |i: usize| decode(CodecKind::L16, out(i).payload);
        for k in 0..160 {
            let local = at(0, k) + at(1, k);
            let all = local + at(2, k) + at(3, k);
            assert_eq!(
                i32::from(heard(0)[k]),
                all - at(0, k),
                "local 0, sample {k}"
            );
            assert_eq!(
                i32::from(heard(1)[k]),
                all - at(1, k),
                "local 1, sample {k}"
            );
            assert_eq!(i32::from(heard(2)[k]), local, "trunk 2, sample {k}");
            assert_eq!(i32::from(heard(3)[k]), local, "trunk 3, sample {k}");
            assert_eq!(i32::from(heard(4)[k]), all, "tap, sample {k}");
            assert_eq!(i32::from(heard(5)[k]), all, "silent local, sample {k}");
        }
        assert_eq!(out(0).mix, Contributors::AllBut(slots[0]));
        assert_eq!(out(2).mix, Contributors::Local);
        assert_eq!(
            (out(4).mix, out(5).mix),
            (Contributors::All, Contributors::All)
        );
        assert!(out(0).own_mix && !out(2).own_mix && !out(4).own_mix);
        // Two own mixes (the local talkers); one shared encode per set: full, local.
        assert_eq!(after.own_encodes - before.own_encodes, 2);
        assert_eq!(after.shared_encodes - before.shared_encodes, 2);
        assert_eq!(out(2).payload.as_ptr(), out(3).payload.as_ptr());
        assert_eq!(out(4).payload.as_ptr(), out(5).payload.as_ptr());
        let bytes: Vec<Vec<u8>> = (0..6).map(|i| out(i).payload.to_vec()).collect();
        match &reference {
            None => reference = Some(bytes),
            Some(r) => assert_eq!(&bytes, r, "{} vs the first kernel", kernel.name()),
        }

        // A tick without trunk audio: the local sum is the full one, and trunks share
        // the full sum's encode.
        for i in [0, 1] {
            m.set_input(slots[i], Input::Pcm(&frames[i])).unwrap();
        }
        m.tick(Instant::from_nanos(40_000_000));
        let out = |i: usize| m.output(slots[i]).unwrap();
        assert_eq!(out(2).mix, Contributors::All);
        assert_eq!(out(2).payload.as_ptr(), out(4).payload.as_ptr());
        let local: Vec<i16> = (0..160).map(|k| (at(0, k) + at(1, k)) as i16).collect();
        assert_eq!(decode(CodecKind::L16, out(2).payload), local);
        assert_eq!(decode(CodecKind::L16, out(0).payload), frames[1]);
    }
}

/// An echo slot (the `echo` application) hears the full sum, its own input included; a
/// lone echo participant hears exactly itself, and the others still hear N-1.
#[test]
fn an_echo_slot_hears_itself() {
    let frame = |amp: i16| -> Vec<i16> { (0..160).map(|k| (k as i16 - 80) * amp).collect() };
    let (mine, theirs) = (frame(30), frame(-11));
    for kernel in Kernel::available() {
        let config = MixerConfig {
            capacity: 2,
            kernel: Some(kernel.kind()),
            active_speakers: ActiveSpeakers::All,
            ..MixerConfig::default()
        };
        let mut m = Mixer::new(config).unwrap();
        let echo = m
            .add_participant(ParticipantConfig {
                role: Role::Echo,
                ..ParticipantConfig::new(CodecKind::L16)
            })
            .unwrap();
        m.set_input(echo, Input::Pcm(&mine)).unwrap();
        m.tick(Instant::from_nanos(20_000_000));
        let out = m.output(echo).unwrap();
        assert_eq!(out.mix, Contributors::All);
        assert!(!out.own_mix);
        assert_eq!(
            decode(CodecKind::L16, out.payload),
            mine,
            "{}",
            kernel.name()
        );

        let other = m
            .add_participant(ParticipantConfig::new(CodecKind::L16))
            .unwrap();
        m.set_input(echo, Input::Pcm(&mine)).unwrap();
        m.set_input(other, Input::Pcm(&theirs)).unwrap();
        m.tick(Instant::from_nanos(40_000_000));
        let sum: Vec<i16> = mine.iter().zip(&theirs).map(|(a, b)| a + b).collect();
        assert_eq!(decode(CodecKind::L16, m.output(echo).unwrap().payload), sum);
        assert_eq!(
            decode(CodecKind::L16, m.output(other).unwrap().payload),
            mine
        );
    }
}
