//! The media plane as the control API sees it: conference and participant state is built
//! here, on the control core, and sent down the owning dataplane core's command ring;
//! each core's event ring is drained into the API's event stream and its retired ring
//! (state it unlinked) is freed here — but for participants moving to a conference on
//! another core, which are sent on to it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tutti_controlplane::media::{MediaCore, MediaError, MediaPlane};
use tutti_controlplane::ControlState;
use tutti_dataplane::clock::Clock;
use tutti_dataplane::conference::{Conference, MediaCommand, MediaOp, Participant};
use tutti_dataplane::host::{CoreEvent, Retired, UplinkRx};
use tutti_dataplane::poll::Command;
use tutti_dataplane::relay::RelayCommand;
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::rx::{PromptId, PromptLibrary};
use tutti_dataplane::tap::{Tap, TapReader, TapSpec};
use tutti_dpdk::TscClock;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The NTP time (32.32) at the dataplane clock's origin, for RTCP sender reports.
pub fn ntp_at_origin(clock: &TscClock) -> NtpClock {
    let since_origin = clock.now().as_nanos();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let wall_ns = wall.as_nanos() as u64;
    let origin_ns = wall_ns.saturating_sub(since_origin);
    let secs = origin_ns / 1_000_000_000 + NTP_UNIX_OFFSET;
    let frac = ((origin_ns % 1_000_000_000) << 32) / 1_000_000_000;
    NtpClock {
        ntp_at_zero: (secs << 32) | frac,
    }
}

/// Commands to the dataplane cores.
pub struct DpdkMedia {
    cores: Vec<MediaCore>,
    rings: Vec<Mutex<rtrb::Producer<Command>>>,
    prompts: PromptLibrary,
    clock: TscClock,
    ntp: NtpClock,
    /// Whether the cores were built with a gateway relay.
    relays: bool,
}

impl DpdkMedia {
    pub fn new(
        cores: Vec<MediaCore>,
        rings: Vec<rtrb::Producer<Command>>,
        prompts: PromptLibrary,
        clock: TscClock,
        relays: bool,
    ) -> DpdkMedia {
        DpdkMedia {
            relays,
            ntp: ntp_at_origin(&clock),
            cores,
            rings: rings.into_iter().map(Mutex::new).collect(),
            prompts,
            clock,
        }
    }

    fn push(&self, core: usize, cmd: Command) -> Result<(), MediaError> {
        self.push_back(core, cmd)
            .map_err(|_| match self.rings.get(core) {
                Some(_) => MediaError::Busy(core),
                None => MediaError::Rejected(format!("no dataplane core {core}")),
            })
    }

    /// Queue `cmd` on core `core`'s ring, or give it back (no such core, ring full).
    fn push_back(&self, core: usize, cmd: Command) -> Result<(), Command> {
        let Some(ring) = self.rings.get(core) else {
            return Err(cmd);
        };
        let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.push(cmd).map_err(|rtrb::PushError::Full(cmd)| cmd)
    }

    /// Tell every core to stop (a full ring is fine: the stop flag ends the loop too).
    pub fn stop_all(&self) {
        for core in 0..self.rings.len() {
            let _ = self.push(core, Command::Stop);
        }
    }
}

impl MediaPlane for DpdkMedia {
    fn cores(&self) -> Vec<MediaCore> {
        self.cores.clone()
    }

    fn prompt(&self, name: &str) -> Option<PromptId> {
        self.prompts.id(name)
    }

    fn prompt_names(&self) -> Vec<String> {
        self.prompts.names().map(str::to_string).collect()
    }

    fn prompt_length(&self, id: PromptId) -> Option<std::time::Duration> {
        self.prompts
            .samples(id)
            .map(|s| tutti_controlplane::media::samples_duration(s.len()))
    }

    fn apply(&self, core: usize, op: MediaOp) -> Result<(), MediaError> {
        let rejected = |e: &dyn std::fmt::Display| MediaError::Rejected(e.to_string());
        let cmd = match op {
            MediaOp::CreateConference(spec) => {
                MediaCommand::AddConference(Conference::new(spec).map_err(|e| rejected(&e))?)
            }
            MediaOp::DeleteConference(key) => MediaCommand::DeleteConference(key),
            MediaOp::AddParticipant(spec) => MediaCommand::AddParticipant(
                Participant::new(spec, self.clock.now(), self.ntp).map_err(|e| rejected(&e))?,
            ),
            MediaOp::UpdateParticipant {
                conf,
                part,
                settings,
            } => MediaCommand::UpdateParticipant {
                conf,
                part,
                settings,
            },
            MediaOp::RemoveParticipant { conf, part } => {
                MediaCommand::RemoveParticipant { conf, part }
            }
            MediaOp::PlayPrompt(p) => MediaCommand::PlayPrompt {
                conf: p.conf,
                part: p.part,
                prompt: p.prompt,
                samples: self
                    .prompts
                    .samples(p.prompt)
                    .cloned()
                    .ok_or_else(|| MediaError::Rejected("unknown prompt".into()))?,
            },
            MediaOp::SetRtpBasis { conf, part, basis } => {
                MediaCommand::SetRtpBasis { conf, part, basis }
            }
            MediaOp::MoveParticipant {
                conf,
                part,
                to,
                settings,
            } => MediaCommand::MoveParticipant {
                conf,
                part,
                to,
                settings,
            },
            MediaOp::RemoveTap { conf, tap } => MediaCommand::RemoveTap { conf, tap },
        };
        self.push(core, Command::Media(cmd))
    }

    fn add_tap(&self, core: usize, spec: TapSpec) -> Result<TapReader, MediaError> {
        let (tap, reader) = Tap::new(spec);
        self.push(core, Command::Media(MediaCommand::AddTap(tap)))?;
        Ok(reader)
    }

    fn relay(&self, core: usize, cmd: RelayCommand) -> Result<(), MediaError> {
        if !self.relays {
            return Err(MediaError::Rejected(
                "the dataplane cores do not relay (no gateway configured)".into(),
            ));
        }
        self.push(core, Command::Relay(cmd))
    }
}

/// The control core's ends of the cores' uplinks (events and retired state), in core
/// order, and the participants on their way from one core to another.
pub struct MediaPump {
    uplinks: Vec<UplinkRx>,
    media: Arc<DpdkMedia>,
    /// Moving participants whose core's command ring was full: sent on the next turn.
    moving: VecDeque<(usize, Box<Participant>)>,
}

impl MediaPump {
    /// A pump over `uplinks` (in core order) that sends moving participants on by `media`.
    pub fn new(uplinks: Vec<UplinkRx>, media: Arc<DpdkMedia>) -> MediaPump {
        MediaPump {
            uplinks,
            media,
            moving: VecDeque::new(),
        }
    }

    /// Forward every pending event to the API, free every retired object, and send each
    /// moving participant to the core of the conference the control core has it in now
    /// (it may have moved again, or be gone: then it is freed).
    pub fn drain(&mut self, state: &ControlState) {
        for (core, up) in self.uplinks.iter_mut().enumerate() {
            while let Ok(ev) = up.events.pop() {
                match ev {
                    CoreEvent::Media(ev) => state.media_event(core, ev),
                    CoreEvent::Relay(ev) => state.relay_event(ev),
                }
            }
            while let Ok(r) = up.retired.pop() {
                if let Retired::Moving(part) = r {
                    let home = state.control().participant_home(part.key());
                    if let Some(home) = home {
                        let mut part = part;
                        part.rehome(home.conf, home.settings);
                        self.moving.push_back((home.core, part));
                    }
                }
            }
        }
        for _ in 0..self.moving.len() {
            let Some((core, part)) = self.moving.pop_front() else {
                break;
            };
            let cmd = Command::Media(MediaCommand::AddParticipant(part));
            if let Err(Command::Media(MediaCommand::AddParticipant(part))) =
                self.media.push_back(core, cmd)
            {
                self.moving.push_back((core, part));
            }
        }
    }
}
