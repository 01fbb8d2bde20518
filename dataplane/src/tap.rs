//! Audio taps: PCM frames copied off a dataplane core to a consumer thread (a recorder, a
//! recogniser) through a bounded lock-free single-producer single-consumer ring.
//!
//! A tap is built on the control side ([`Tap::new`]: the ring and its frame scratch are
//! allocated there), sent down to the conference's core in a command, and linked into
//! the conference; the [`TapReader`] goes to the consumer. Each tick the core copies one
//! frame (the conference's rate × ptime samples) of the tapped audio into the ring; when
//! the ring has no room for a whole frame the frame is lost and counted, and the core
//! never waits. When the core unlinks the tap (removed, or its conference deleted) the
//! tap goes back up the retired ring and is dropped on the control core: the reader then
//! sees the ring abandoned once it has drained it.

use crate::conference::{ConfKey, PartKey};
use crate::stats::Counter;
use std::sync::Arc;

/// A tap's key (chosen by the control plane, unique per appliance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapKey(pub u32);

/// What a tap copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TapSource {
    /// What a participant sends (its heard leg, after jitter buffer and concealment).
    Input(PartKey),
    /// What a participant receives (its mix, with prompts).
    Output(PartKey),
    /// The conference's full mix (every contributor): a mixer slot in the tap role.
    Mix,
}

impl TapSource {
    /// The participant tapped, if it is one.
    pub const fn part(self) -> Option<PartKey> {
        match self {
            TapSource::Input(p) | TapSource::Output(p) => Some(p),
            TapSource::Mix => None,
        }
    }
}

/// A tap to add to a conference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapSpec {
    pub conf: ConfKey,
    pub key: TapKey,
    pub source: TapSource,
    /// Samples per frame: the conference's rate × ptime.
    pub frame_samples: usize,
    /// Frames the ring holds (at least 1).
    pub frames: usize,
}

/// A tap's counters (single writer: the conference's core).
#[derive(Debug, Default)]
pub struct TapCounters {
    /// Frames copied into the ring.
    pub frames: Counter,
    /// Frames lost because the ring was full.
    pub lost: Counter,
}

/// The core's end of a tap.
pub struct Tap {
    spec: TapSpec,
    ring: rtrb::Producer<i16>,
    counters: Arc<TapCounters>,
    /// A frame of scratch (the mix is decoded into it).
    pcm: Box<[i16]>,
    /// [`TapSource::Mix`]: its mixer slot, once linked in.
    pub(crate) slot: Option<crate::mixer::Slot>,
}

/// Copies `frame` into `ring` whole, or counts it lost.
fn push_frame(ring: &mut rtrb::Producer<i16>, counters: &TapCounters, len: usize, frame: &[i16]) {
    if frame.len() == len && ring.push_entire_slice(frame).is_ok() {
        counters.frames.inc();
    } else {
        counters.lost.inc();
    }
}

/// The consumer's end of a tap.
pub struct TapReader {
    spec: TapSpec,
    ring: rtrb::Consumer<i16>,
    counters: Arc<TapCounters>,
}

/// What [`TapReader::read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapRead {
    /// A frame was copied out.
    Frame,
    /// No whole frame is queued yet.
    Empty,
    /// The core let the tap go and every frame was read.
    Ended,
}

impl Tap {
    /// A tap and its reader (on the control side: this allocates the ring).
    pub fn new(spec: TapSpec) -> (Box<Tap>, TapReader) {
        let frame = spec.frame_samples.max(1);
        let spec = TapSpec {
            frame_samples: frame,
            frames: spec.frames.max(1),
            ..spec
        };
        let (tx, rx) = rtrb::RingBuffer::new(frame * spec.frames);
        let counters = Arc::new(TapCounters::default());
        let tap = Box::new(Tap {
            spec,
            ring: tx,
            counters: counters.clone(),
            pcm: vec![0; frame].into_boxed_slice(),
            slot: None,
        });
        let reader = TapReader {
            spec,
            ring: rx,
            counters,
        };
        (tap, reader)
    }

    /// What it was built from.
    pub fn spec(&self) -> &TapSpec {
        &self.spec
    }

    /// Copies one frame into the ring, or counts it lost if the ring has no room for all
    /// of it (a frame of another length is lost too). Allocates nothing, never waits.
    pub fn push(&mut self, frame: &[i16]) {
        push_frame(
            &mut self.ring,
            &self.counters,
            self.spec.frame_samples,
            frame,
        );
    }

    /// A frame of silence (the tapped audio had none this tick).
    pub fn push_silence(&mut self) {
        self.pcm.fill(0);
        self.push_scratch();
    }

    /// The frame of scratch, to decode into before [`Tap::push_scratch`].
    pub fn scratch(&mut self) -> &mut [i16] {
        &mut self.pcm
    }

    /// Copies the scratch frame into the ring (see [`Tap::push`]).
    pub fn push_scratch(&mut self) {
        push_frame(
            &mut self.ring,
            &self.counters,
            self.spec.frame_samples,
            &self.pcm,
        );
    }
}

impl TapReader {
    /// What the tap was built from.
    pub fn spec(&self) -> &TapSpec {
        &self.spec
    }

    /// The tap's counters.
    pub fn counters(&self) -> &TapCounters {
        &self.counters
    }

    /// Copies the oldest queued frame into `frame` (of the tap's frame length).
    pub fn read(&mut self, frame: &mut [i16]) -> TapRead {
        // Read whether the core let go before looking at the ring, so that a frame it
        // pushed just before is not missed.
        let abandoned = self.ring.is_abandoned();
        if frame.len() == self.spec.frame_samples && self.ring.pop_entire_slice(frame).is_ok() {
            return TapRead::Frame;
        }
        if abandoned {
            TapRead::Ended
        } else {
            TapRead::Empty
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(frames: usize) -> TapSpec {
        TapSpec {
            conf: ConfKey(1),
            key: TapKey(2),
            source: TapSource::Mix,
            frame_samples: 4,
            frames,
        }
    }

    #[test]
    fn frames_pass_in_order_and_a_full_ring_loses_and_counts() {
        let (mut tap, mut reader) = Tap::new(spec(2));
        tap.push(&[1, 2, 3, 4]);
        tap.push(&[5, 6, 7, 8]);
        // Full: the third frame is lost, not partly written.
        tap.push(&[9, 9, 9, 9]);
        assert_eq!(
            (reader.counters().frames.get(), reader.counters().lost.get()),
            (2, 1)
        );
        let mut f = [0; 4];
        assert_eq!(reader.read(&mut f), TapRead::Frame);
        assert_eq!(f, [1, 2, 3, 4]);
        // Room for one again.
        tap.scratch().copy_from_slice(&[10, 11, 12, 13]);
        tap.push_scratch();
        assert_eq!(reader.read(&mut f), TapRead::Frame);
        assert_eq!(f, [5, 6, 7, 8]);
        assert_eq!(reader.read(&mut f), TapRead::Frame);
        assert_eq!(f, [10, 11, 12, 13]);
        assert_eq!(reader.read(&mut f), TapRead::Empty);
        assert_eq!(reader.counters().frames.get(), 3);
    }

    #[test]
    fn a_wrong_length_is_lost_and_a_dropped_tap_ends_after_draining() {
        let (mut tap, mut reader) = Tap::new(spec(3));
        tap.push(&[1, 2, 3]);
        tap.push_silence();
        assert_eq!(reader.counters().lost.get(), 1);
        drop(tap);
        let mut f = [7; 4];
        assert_eq!(reader.read(&mut f), TapRead::Frame);
        assert_eq!(f, [0; 4]);
        assert_eq!(reader.read(&mut f), TapRead::Ended);
        let mut short = [0; 3];
        assert_eq!(reader.read(&mut short), TapRead::Ended);
    }
}
