//! Prompts: WAV files loaded once at start-up into shared sample buffers, and a player
//! per target (one participant, or a whole conference's mix) that walks a cursor
//! through a buffer each tick, mixed with the conference audio or alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::event::Event;
use crate::rate::SampleRate;

/// The rate prompts are stored and played at.
pub const PROMPT_RATE: SampleRate = SampleRate::Hz8000;
use super::wav::{self, WavError};

/// Why the prompt library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The directory or a file could not be read.
    #[error("cannot read prompt {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a usable WAV.
    #[error("bad prompt file {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: WavError,
    },
    /// More prompts than a [`PromptId`] can number.
    #[error("too many prompt files in {0}")]
    TooMany(PathBuf),
}

/// Index of a prompt in a [`PromptLibrary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PromptId(u16);

impl PromptId {
    /// The prompt's position in its library (also the tag of its playbacks).
    pub fn index(self) -> u16 {
        self.0
    }

    /// The id of the prompt at position `index` (ids only make sense for the library
    /// they came from).
    pub fn from_index(index: u16) -> PromptId {
        PromptId(index)
    }
}

/// All prompts, decoded to 8 kHz 16-bit PCM.
#[derive(Clone, Debug, Default)]
pub struct PromptLibrary {
    prompts: Vec<(String, Arc<[i16]>)>,
}

impl PromptLibrary {
    /// An empty library.
    pub fn new() -> Self {
        Self::default()
    }

    /// Load every `*.wav` file in `dir`; each prompt is named by its file stem
    /// (`stay.wav` → `stay`). Any unreadable or malformed file fails the load, naming it.
    pub fn load_dir(dir: &Path) -> Result<Self, PromptError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PromptError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
            {
                files.push(path);
            }
        }
        files.sort();
        let mut lib = PromptLibrary::new();
        for path in files {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            lib.add_wav(&name, &bytes).map_err(|e| match e {
                PromptError::Wav { source, .. } => PromptError::Wav {
                    path: path.clone(),
                    source,
                },
                other => other,
            })?;
        }
        Ok(lib)
    }

    /// Add (or replace) a prompt from WAV bytes.
    pub fn add_wav(&mut self, name: &str, bytes: &[u8]) -> Result<PromptId, PromptError> {
        let samples = wav::parse(bytes).map_err(|source| PromptError::Wav {
            path: PathBuf::from(name),
            source,
        })?;
        self.add_samples(name, samples.into())
    }

    /// Add (or replace) a prompt from samples.
    pub fn add_samples(
        &mut self,
        name: &str,
        samples: Arc<[i16]>,
    ) -> Result<PromptId, PromptError> {
        if let Some(id) = self.id(name) {
            if let Some(slot) = self.prompts.get_mut(usize::from(id.0)) {
                slot.1 = samples;
            }
            return Ok(id);
        }
        let id = u16::try_from(self.prompts.len())
            .map_err(|_| PromptError::TooMany(PathBuf::from(name)))?;
        self.prompts.push((name.to_owned(), samples));
        Ok(PromptId(id))
    }

    /// The prompt called `name`.
    pub fn id(&self, name: &str) -> Option<PromptId> {
        let i = self.prompts.iter().position(|(n, _)| n == name)?;
        u16::try_from(i).ok().map(PromptId)
    }

    /// The samples of prompt `id`.
    pub fn samples(&self, id: PromptId) -> Option<&Arc<[i16]>> {
        self.prompts.get(usize::from(id.0)).map(|(_, s)| s)
    }

    /// Prompt names, in id order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.iter().map(|(n, _)| n.as_str())
    }
}

/// How a prompt combines with the conference audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayMode {
    /// Added to the conference audio (saturating).
    Mix,
    /// Replaces the conference audio while it plays.
    Alone,
}

#[derive(Clone, Debug)]
struct Playback {
    samples: Arc<[i16]>,
    pos: usize,
    mode: PlayMode,
    tag: u32,
}

/// Plays one prompt at a time into a target's audio.
#[derive(Clone, Debug, Default)]
pub struct PromptPlayer {
    current: Option<Playback>,
}

impl PromptPlayer {
    /// An idle player.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start playing `samples` (from [`PromptLibrary::samples`]); `tag` comes back in
    /// [`Event::PromptDone`]. A playback already running is stopped first.
    pub fn start(
        &mut self,
        samples: &Arc<[i16]>,
        mode: PlayMode,
        tag: u32,
        emit: &mut impl FnMut(Event),
    ) {
        self.stop(emit);
        self.current = Some(Playback {
            samples: Arc::clone(samples),
            pos: 0,
            mode,
            tag,
        });
    }

    /// Stop the running playback, reporting it as not completed.
    pub fn stop(&mut self, emit: &mut impl FnMut(Event)) {
        if let Some(p) = self.current.take() {
            emit(Event::PromptDone {
                playback: p.tag,
                completed: false,
            });
        }
    }

    /// The tag of the running playback.
    pub fn playing(&self) -> Option<u32> {
        self.current.as_ref().map(|p| p.tag)
    }

    /// Apply the next `out.len()` samples of the prompt to `out` (the target's audio
    /// for this tick). Reports completion on the tick the prompt ends.
    pub fn render(&mut self, out: &mut [i16], emit: &mut impl FnMut(Event)) {
        let Some(p) = self.current.as_mut() else {
            return;
        };
        let rest = p.samples.get(p.pos..).unwrap_or(&[]);
        let k = rest.len().min(out.len());
        let (head, tail) = out.split_at_mut(k);
        match p.mode {
            PlayMode::Mix => {
                for (o, &s) in head.iter_mut().zip(rest) {
                    *o = o.saturating_add(s);
                }
            }
            PlayMode::Alone => {
                head.copy_from_slice(&rest[..k]);
                tail.fill(0);
            }
        }
        p.pos += k;
        if p.pos >= p.samples.len() {
            let tag = p.tag;
            self.current = None;
            emit(Event::PromptDone {
                playback: tag,
                completed: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_alone_then_reports_done() {
        let mut lib = PromptLibrary::new();
        let id = lib
            .add_samples("beep", (1..=250).collect::<Vec<i16>>().into())
            .unwrap();
        assert_eq!(lib.id("beep"), Some(id));
        let mut player = PromptPlayer::new();
        let mut ev = Vec::new();
        player.start(lib.samples(id).unwrap(), PlayMode::Alone, 9, &mut |e| {
            ev.push(e)
        });
        let mut out = [100i16; 160];
        player.render(&mut out, &mut |e| ev.push(e));
        assert_eq!(out[0], 1);
        assert_eq!(out[159], 160);
        assert!(ev.is_empty());
        let mut out = [100i16; 160];
        player.render(&mut out, &mut |e| ev.push(e));
        assert_eq!(out[89], 250);
        assert_eq!(out[90], 0);
        assert_eq!(
            ev,
            [Event::PromptDone {
                playback: 9,
                completed: true
            }]
        );
        assert_eq!(player.playing(), None);
        // Idle player leaves audio alone.
        let mut out = [100i16; 10];
        player.render(&mut out, &mut |e| ev.push(e));
        assert_eq!(out, [100; 10]);
    }

    #[test]
    fn mixes_saturating_and_restart_stops_previous() {
        let samples: Arc<[i16]> = vec![30000i16; 400].into();
        let mut player = PromptPlayer::new();
        let mut ev = Vec::new();
        player.start(&samples, PlayMode::Mix, 1, &mut |e| ev.push(e));
        let mut out = [10000i16; 160];
        player.render(&mut out, &mut |e| ev.push(e));
        assert!(out.iter().all(|&v| v == i16::MAX));
        player.start(&samples, PlayMode::Mix, 2, &mut |e| ev.push(e));
        assert_eq!(
            ev,
            [Event::PromptDone {
                playback: 1,
                completed: false
            }]
        );
        assert_eq!(player.playing(), Some(2));
    }

    #[test]
    fn load_dir_names_the_bad_file() {
        let dir = std::env::temp_dir().join(format!("tutti-prompt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("good.wav"), wav::write_pcm16(&[1, 2, 3])).unwrap();
        std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
        let lib = PromptLibrary::load_dir(&dir).unwrap();
        assert_eq!(lib.names().collect::<Vec<_>>(), ["good"]);
        assert_eq!(
            &lib.samples(lib.id("good").unwrap()).unwrap()[..],
            [1, 2, 3]
        );
        std::fs::write(dir.join("bad.wav"), b"RIFF\x04\0\0\0WAVE").unwrap();
        let err = PromptLibrary::load_dir(&dir).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("bad.wav") && msg.contains("no data chunk"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            PromptLibrary::load_dir(&dir),
            Err(PromptError::Io { .. })
        ));
    }
}
