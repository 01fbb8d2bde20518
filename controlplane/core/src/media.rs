//! The boundary between the control core and the dataplane cores: what the core may
//! ask of them ([`MediaPlane`], a synchronous, non-blocking sink) and how that can fail
//! ([`MediaError`]). The binary implements it over the per-core command rings; tests
//! record the operations.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;
use tutti_dataplane::conference::MediaOp;
use tutti_dataplane::relay::RelayCommand;
use tutti_dataplane::rx::PromptId;
use tutti_dataplane::tap::{TapReader, TapSpec};

/// One dataplane core that hosts conferences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCore {
    /// The EAL lcore id (what operators see, e.g. in `/v1/status`).
    pub lcore: u32,
    /// The address participants on this core send their media to.
    pub local_ip: Ipv4Addr,
    /// The UDP ports this core owns (RTP on even ports, RTCP on the following odd port).
    /// Ranges of cores sharing one `local_ip` must not overlap.
    pub ports: RangeInclusive<u16>,
    /// Most participants the core mixes at once (a software figure from the config).
    pub capacity: u32,
}

/// The dataplane as the control plane drives it.
pub trait MediaPlane: Send + Sync + 'static {
    /// The conference-hosting cores; their order is fixed for the process's life and
    /// `core` arguments index into it.
    fn cores(&self) -> Vec<MediaCore>;
    /// The prompt called `name` in the library loaded at start-up.
    fn prompt(&self, name: &str) -> Option<PromptId>;
    /// Every prompt's name.
    fn prompt_names(&self) -> Vec<String>;
    /// How long prompt `id` plays.
    fn prompt_length(&self, id: PromptId) -> Option<Duration>;
    /// Apply one operation on dataplane core `core` (index into [`MediaPlane::cores`]).
    /// Non-blocking: the operation is queued on the core's command ring.
    fn apply(&self, core: usize, op: MediaOp) -> Result<(), MediaError>;
    /// Build audio tap `spec` (its ring) here and queue it on core `core`, which links
    /// it into its conference (or hands it straight back when the conference or the
    /// tapped participant is not there, so the reader sees it end). Removed with
    /// [`MediaOp::RemoveTap`]. Non-blocking.
    fn add_tap(&self, core: usize, spec: TapSpec) -> Result<TapReader, MediaError>;
    /// Send a relay command (gateway role) to core `core`. Non-blocking.
    fn relay(&self, core: usize, cmd: RelayCommand) -> Result<(), MediaError> {
        drop(cmd);
        Err(MediaError::Rejected(format!(
            "dataplane core {core} does not relay (no gateway configured)"
        )))
    }
}

/// Why the dataplane did not take an operation.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The core's command ring is full.
    #[error("dataplane core {0} is not accepting commands (command ring full); try again")]
    Busy(usize),
    /// The operation was refused (e.g. the core index is out of range).
    #[error("{0}")]
    Rejected(String),
}

/// How long `samples` prompt samples play.
pub fn samples_duration(samples: usize) -> Duration {
    tutti_dataplane::rx::prompt::PROMPT_RATE.duration_of(u64::try_from(samples).unwrap_or(u64::MAX))
}
