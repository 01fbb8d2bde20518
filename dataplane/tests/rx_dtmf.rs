//! DTMF through the whole receive path: RFC 4733 events and in-band tones, all sixteen
//! keys, and no false digits in speech, music, chirps or noise.

use std::f64::consts::PI;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::g711;
use tutti_dataplane::rx::inband::FREQUENCIES;
use tutti_dataplane::rx::{
    Digit, DigitEvent, DigitSource, Event, PromptLibrary, ReceiveConfig, ReceiveStream, RtpIn,
};

const SRC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 5004);
const TICK: Duration = Duration::from_millis(20);

/// Send `pcm` as 20 ms mu-law packets over a clean network (plus extra RFC 4733
/// packets), polling a frame per tick; return all digit events.
fn through_stream(pcm: &[i16], events: &[(usize, u32, [u8; 4])]) -> Vec<DigitEvent> {
    let start = Instant::from_nanos(5_000_000_000);
    let mut s = ReceiveStream::new(ReceiveConfig::default(), start).unwrap();
    let mut got = Vec::new();
    let mut collect = |e: Event| {
        if let Event::Digit(d) = e {
            got.push(d);
        }
    };
    let frames = pcm.len().div_ceil(160) + 20;
    let mut out = [0i16; 160];
    let mut seq = 100u16;
    for i in 0..frames {
        let now = start + TICK * i as u32;
        if let Some(chunk) = pcm.get(i * 160..(i * 160 + 160).min(pcm.len())) {
            let payload: Vec<u8> = chunk.iter().map(|&v| g711::ulaw_encode(v)).collect();
            if !payload.is_empty() {
                let pkt = RtpIn {
                    ssrc: 7,
                    seq,
                    timestamp: (i * 160) as u32,
                    payload_type: 0,
                    payload: &payload,
                    audio_level: None,
                };
                s.handle_rtp(now + Duration::from_millis(3), SRC, pkt, &mut collect)
                    .unwrap();
                seq = seq.wrapping_add(1);
            }
        }
        for (_, ts, body) in events.iter().filter(|e| e.0 == i) {
            let pkt = RtpIn {
                ssrc: 7,
                seq,
                timestamp: *ts,
                payload_type: 101,
                payload: body,
                audio_level: None,
            };
            seq = seq.wrapping_add(1);
            // Duplicated end packets may be rejected by nothing but the DTMF logic.
            let _ = s.handle_rtp(now + Duration::from_millis(4), SRC, pkt, &mut collect);
        }
        s.poll_frame(now + Duration::from_millis(10), &mut out, &mut collect);
        let t = now + Duration::from_millis(15);
        if s.poll_timeout() <= t {
            s.handle_timeout(t, &mut collect);
        }
    }
    let end = start + TICK * frames as u32 + Duration::from_secs(2);
    s.handle_timeout(end, &mut collect);
    got
}

fn dual_tone(d: Digit, ms: usize, amp: f64) -> Vec<i16> {
    let (fr, fc) = (
        f64::from(FREQUENCIES[d.row()]),
        f64::from(FREQUENCIES[4 + d.column()]),
    );
    (0..ms * 8)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amp * ((2.0 * PI * fr * t).sin() + (2.0 * PI * fc * t).sin())) as i16
        })
        .collect()
}

#[test]
fn all_sixteen_keys_in_band() {
    let mut pcm = vec![0i16; 1600];
    for d in Digit::ALL {
        pcm.extend(dual_tone(d, 70, 4000.0));
        pcm.extend(vec![0i16; 480]);
    }
    let got = through_stream(&pcm, &[]);
    let keys: String = got.iter().map(|e| e.digit.as_char()).collect();
    assert_eq!(keys, "0123456789*#ABCD");
    for e in &got {
        assert_eq!(e.source, DigitSource::InBand);
        let ms = e.duration.as_millis();
        assert!((60..=100).contains(&ms), "{e:?}");
    }
}

#[test]
fn all_sixteen_keys_rfc4733_with_redundancy() {
    // Per key: start (marker) sent 3x, updates every 50 ms, 3 end packets; audio is
    // silence meanwhile. Keys 160 ms long, 40 ms apart.
    let mut events = Vec::new();
    let mut tick = 5usize;
    for d in Digit::ALL {
        let ts = (tick * 160) as u32;
        let body = |end: bool, dur: u16| {
            let [hi, lo] = dur.to_be_bytes();
            [d.event_code(), if end { 0x80 | 10 } else { 10 }, hi, lo]
        };
        for _ in 0..3 {
            events.push((tick, ts, body(false, 0)));
        }
        for k in 1..8 {
            events.push((tick + k, ts, body(false, (k * 160) as u16)));
        }
        for _ in 0..3 {
            events.push((tick + 8, ts, body(true, 1280)));
        }
        tick += 10;
    }
    let got = through_stream(&vec![0i16; tick * 160 + 800], &events);
    let keys: String = got.iter().map(|e| e.digit.as_char()).collect();
    assert_eq!(keys, "0123456789*#ABCD");
    for e in &got {
        assert_eq!(e.source, DigitSource::Rfc4733);
        assert_eq!(e.duration, Duration::from_millis(160));
        assert_eq!(e.volume, Some(10));
    }
}

#[test]
fn rfc4733_sender_with_inband_audio_reports_each_key_once() {
    // Some gateways send the tone in the audio *and* as RFC 4733: one report per key.
    let mut pcm = vec![0i16; 800];
    pcm.extend(dual_tone(Digit::D5, 120, 4000.0));
    pcm.extend(vec![0i16; 1600]);
    let ts = 800u32;
    let mut events = Vec::new();
    for k in 0..6 {
        events.push((5 + k, ts, [5, 10, 0, (k * 160) as u8]));
    }
    events.push((11, ts, [5, 0x8a, 3, 192]));
    let got = through_stream(&pcm, &events);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].source, DigitSource::Rfc4733);
}

// ---- no false digits ------------------------------------------------------------------

fn count_inband(pcm: &[i16]) -> Vec<DigitEvent> {
    through_stream(pcm, &[])
}

/// Voiced speech model: harmonics of a gliding pitch through three moving formants,
/// syllable envelopes, with unvoiced noise bursts between syllables.
fn speech_like(seed: u64, secs: f64) -> Vec<i16> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = (secs * 8000.0) as usize;
    let mut out = Vec::with_capacity(n);
    let mut phase = [0f64; 40];
    let mut syllable_left = 0usize;
    let (mut f0_start, mut f0_end, mut formants, mut syl_len, mut voiced) =
        (120.0, 140.0, [500.0, 1500.0, 2500.0], 1, true);
    for _ in 0..n {
        if syllable_left == 0 {
            syl_len = rng.gen_range(800..2400);
            syllable_left = syl_len;
            f0_start = rng.gen_range(85.0..260.0);
            f0_end = f0_start * rng.gen_range(0.75..1.3);
            formants = [
                rng.gen_range(300.0..900.0),
                rng.gen_range(900.0..2300.0),
                rng.gen_range(2300.0..3400.0),
            ];
            voiced = rng.gen_bool(0.75);
        }
        let p = 1.0 - syllable_left as f64 / syl_len as f64;
        syllable_left -= 1;
        let env = (PI * p).sin().powf(0.6);
        let f0 = f0_start + (f0_end - f0_start) * p;
        let mut v = 0.0;
        if voiced {
            for (h, ph) in phase.iter_mut().enumerate() {
                let f = f0 * (h + 1) as f64;
                if f > 3800.0 {
                    break;
                }
                *ph += 2.0 * PI * f / 8000.0;
                let gain: f64 = formants
                    .iter()
                    .enumerate()
                    .map(|(k, &fm)| {
                        let bw = 80.0 + 40.0 * k as f64;
                        1.0 / (1.0 + ((f - fm) / bw).powi(2)) / (k + 1) as f64
                    })
                    .sum();
                v += gain * ph.sin();
            }
            v *= 3000.0;
        } else {
            v = rng.gen_range(-1.0..1.0) * 2500.0;
        }
        out.push((v * env).clamp(-32000.0, 32000.0) as i16);
    }
    out
}

/// Music model: chords of 3–4 harmonic-rich notes, arpeggios, and chirps.
fn music_like(seed: u64, secs: f64) -> Vec<i16> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = (secs * 8000.0) as usize;
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let kind = rng.gen_range(0..3);
        let len = rng.gen_range(1600..6400).min(n - i);
        let root = 48 + rng.gen_range(0..24);
        let chord: Vec<f64> = [0, 4, 7, if rng.gen_bool(0.5) { 10 } else { 12 }]
            .iter()
            .map(|st| 440.0 * 2f64.powf(f64::from(root + st - 69) / 12.0))
            .collect();
        let (c0, c1) = (rng.gen_range(300.0..1800.0), rng.gen_range(300.0..1800.0));
        for k in 0..len {
            let t = k as f64 / 8000.0;
            let env = (-(t * 3.0)).exp();
            let v = match kind {
                0 => chord
                    .iter()
                    .map(|f| {
                        (1..=4)
                            .map(|h| (2.0 * PI * f * h as f64 * t).sin() / h as f64)
                            .sum::<f64>()
                    })
                    .sum::<f64>(),
                1 => {
                    let note = chord[(k / 800) % chord.len()];
                    (1..=5)
                        .map(|h| (2.0 * PI * note * h as f64 * t).sin() / h as f64)
                        .sum::<f64>()
                }
                _ => {
                    // Linear chirp from c0 to c1 over the segment.
                    let dur = len as f64 / 8000.0;
                    (2.0 * PI * (c0 * t + (c1 - c0) * t * t / (2.0 * dur))).sin() * 2.0
                }
            };
            out.push((v * 5000.0 * env.max(0.3)).clamp(-32000.0, 32000.0) as i16);
        }
        i += len;
    }
    out
}

#[test]
fn no_digits_in_speech_like_signals() {
    for seed in 0..12 {
        let got = count_inband(&speech_like(seed, 30.0));
        assert!(got.is_empty(), "seed {seed}: {got:?}");
    }
}

#[test]
fn no_digits_in_music_chirps_and_noise() {
    for seed in 0..12 {
        let got = count_inband(&music_like(seed, 30.0));
        assert!(got.is_empty(), "seed {seed}: {got:?}");
    }
    let mut rng = StdRng::seed_from_u64(9);
    let noise: Vec<i16> = (0..8000 * 20)
        .map(|i| {
            if (i / 2000) % 2 == 0 {
                rng.gen_range(-9000..9000)
            } else {
                0
            }
        })
        .collect();
    assert!(count_inband(&noise).is_empty());
}

#[test]
fn no_digits_in_the_spoken_prompts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts");
    let lib = PromptLibrary::load_dir(&dir).unwrap();
    let mut total = 0;
    for name in lib.names() {
        let pcm = lib.samples(lib.id(name).unwrap()).unwrap();
        total += pcm.len();
        let got = count_inband(pcm);
        assert!(got.is_empty(), "{name}: {got:?}");
    }
    assert!(total > 8000 * 10, "at least 10 s of speech tested");
}

/// Extra speech from espeak-ng when it is installed (skipped otherwise).
#[test]
fn no_digits_in_espeak_speech() {
    let texts = [
        (
            "en-us",
            "One two three four five six seven eight nine zero, star, pound.",
        ),
        (
            "en+f3",
            "The quick brown fox jumps over the lazy dog, while the conference continues.",
        ),
        (
            "en-gb",
            "Hello? Hello! Can you hear me? I think the line is breaking up, say again please.",
        ),
        ("de", "Guten Tag, bitte geben Sie Ihre Konferenznummer ein."),
    ];
    let dir = std::env::temp_dir().join(format!("tutti-rx-espeak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tested = 0;
    for (i, (voice, text)) in texts.iter().enumerate() {
        let raw = dir.join(format!("{i}.raw.wav"));
        let wav = dir.join(format!("{i}.wav"));
        let ok = std::process::Command::new("espeak-ng")
            .args(["-v", voice, "-w"])
            .arg(&raw)
            .arg(text)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new("sox")
                .arg(&raw)
                .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
                .arg(&wav)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("espeak-ng/sox not available: skipping {voice}");
            continue;
        }
        let pcm = tutti_dataplane::rx::wav::parse(&std::fs::read(&wav).unwrap()).unwrap();
        let got = count_inband(&pcm);
        assert!(got.is_empty(), "{voice}: {got:?}");
        tested += 1;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!("espeak phrases tested: {tested}");
}

#[test]
fn tones_survive_lossless_g711_and_realistic_levels() {
    // -20 dBm0-ish per tone, 7 dB normal twist, 1% frequency offset.
    let mut pcm = vec![0i16; 800];
    for (k, d) in [Digit::D1, Digit::Pound, Digit::D8, Digit::A]
        .iter()
        .enumerate()
    {
        let (fr, fc) = (
            f64::from(FREQUENCIES[d.row()]) * 1.01,
            f64::from(FREQUENCIES[4 + d.column()]) * 0.99,
        );
        let a = 2200.0 * (1.0 + k as f64 * 0.3);
        pcm.extend((0..400).map(|i| {
            let t = f64::from(i) / 8000.0;
            (a * (2.0 * PI * fr * t).sin() + a * 0.45 * (2.0 * PI * fc * t).sin()) as i16
        }));
        pcm.extend(vec![0i16; 400]);
    }
    let keys: String = through_stream(&pcm, &[])
        .iter()
        .map(|e| e.digit.as_char())
        .collect();
    assert_eq!(keys, "1#8A");
}
