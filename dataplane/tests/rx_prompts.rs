//! The shipped spoken prompts load, are 8 kHz speech of plausible length, and play to
//! completion through the prompt player.

use std::path::Path;

use tutti_dataplane::rx::vad::level_dbov;
use tutti_dataplane::rx::{Event, PlayMode, PromptLibrary, PromptPlayer};

const PROMPTS: [&str; 6] = [
    "stay",
    "goodbye",
    "disconnect",
    "enter-code",
    "invalid-code",
    "joining",
];

#[test]
fn shipped_prompts_load_and_play() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts");
    let lib = PromptLibrary::load_dir(&dir).unwrap();
    for name in PROMPTS {
        let id = lib.id(name).unwrap_or_else(|| panic!("{name}.wav missing"));
        let samples = lib.samples(id).unwrap();
        let secs = samples.len() as f64 / 8000.0;
        assert!((1.0..8.0).contains(&secs), "{name}: {secs} s");
        // Speech, not silence: loud overall, with quiet gaps between words.
        let frames: Vec<f32> = samples.chunks(160).map(level_dbov).collect();
        let loud = frames.iter().filter(|&&l| l > -30.0).count();
        assert!(
            loud * 3 > frames.len(),
            "{name}: only {loud} of {} frames loud",
            frames.len()
        );
        // Play it alone, tick by tick, to completion.
        let mut player = PromptPlayer::new();
        let mut done = Vec::new();
        player.start(samples, PlayMode::Alone, 77, &mut |e| done.push(e));
        let mut ticks = 0;
        let mut out = [0i16; 160];
        while player.playing().is_some() {
            player.render(&mut out, &mut |e| done.push(e));
            ticks += 1;
        }
        assert_eq!(ticks, samples.len().div_ceil(160));
        assert_eq!(
            done,
            [Event::PromptDone {
                playback: 77,
                completed: true
            }]
        );
    }
}
