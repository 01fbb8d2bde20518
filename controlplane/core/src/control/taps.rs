//! Audio taps on the control side: a consumer (a recorder, a recogniser) asks for PCM
//! frames of a conference's mix or of a participant's input or output, named by API
//! ids; the control core finds the conference's core and frame size, picks a key and
//! has the dataplane link a bounded ring in (see [`tutti_dataplane::tap`]).

use super::Control;
use crate::error::ControlError;
use tutti_dataplane::conference::MediaOp;
use tutti_dataplane::tap::{TapKey, TapReader, TapSource, TapSpec};

/// Frames a tap's ring holds: one second at 20 ms. A consumer that falls further behind
/// loses frames (counted by the tap), never the core's time.
pub const TAP_RING_FRAMES: usize = 50;

/// What to tap, with participants named by their API id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapOn<'a> {
    /// The conference's full mix.
    Mix,
    /// What participant `.0` sends.
    Input(&'a str),
    /// What participant `.0` receives.
    Output(&'a str),
}

impl Control {
    /// Tap `on` in conference `conf_id`: the tap's key (for [`Control::remove_tap`]) and
    /// the reader of its frames (the conference's rate × ptime samples each). The reader
    /// sees the tap end when it is removed, when its participant leaves, or when the
    /// conference is deleted.
    pub fn add_tap(
        &mut self,
        conf_id: &str,
        on: TapOn<'_>,
    ) -> Result<(TapKey, TapReader), ControlError> {
        let c = self.sessions.conference(conf_id)?;
        let (core, conf, frame_samples) = (c.core, c.key, c.ptime.samples(c.spec().rate));
        let source = match on {
            TapOn::Mix => TapSource::Mix,
            TapOn::Input(pid) | TapOn::Output(pid) => {
                self.answered(conf_id, pid)?;
                let part = self.sessions.participant(conf_id, pid)?.key;
                if matches!(on, TapOn::Input(_)) {
                    TapSource::Input(part)
                } else {
                    TapSource::Output(part)
                }
            }
        };
        self.next_tap = self.next_tap.wrapping_add(1);
        let key = TapKey(self.next_tap);
        let spec = TapSpec {
            conf,
            key,
            source,
            frame_samples,
            frames: TAP_RING_FRAMES,
        };
        let reader = self.media.add_tap(core, spec)?;
        tracing::info!(conference = %conf_id, tap = key.0, source = ?source, "tap added");
        Ok((key, reader))
    }

    /// Remove tap `key` of conference `conf_id` (one already gone is no error: the
    /// dataplane lets go of taps whose participant or conference went).
    pub fn remove_tap(&mut self, conf_id: &str, key: TapKey) -> Result<(), ControlError> {
        let c = self.sessions.conference(conf_id)?;
        let (core, conf) = (c.core, c.key);
        self.media
            .apply(core, MediaOp::RemoveTap { conf, tap: key })?;
        tracing::info!(conference = %conf_id, tap = key.0, "tap removed");
        Ok(())
    }
}
