//! Orphaned-conference reclamation: one sans-IO state machine per conference
//! ([`ConferenceWatch`]). It follows each participant's stream from the dataplane's
//! events all the time (RTP flowing or quiet, SID, RTCP, voice activity, digits), and
//! while the conference is orphaned (its call manager's lease lapsed) it decides, from
//! `now` and those events alone, whom to prompt, whom to delete and when to release the
//! conference. It returns [`Action`]s; the caller plays the prompts and deletes through
//! the ordinary session code. Nothing here reads a clock or does I/O, so hours of
//! orphan timers run in microseconds in tests.
//!
//! The rules, while orphaned (every timer starts at the orphaning and restarts after a
//! reply):
//! - participants on remote hold are deleted first;
//! - whenever one participant remains it hears "goodbye", is deleted and the conference
//!   is released (none left: released at once);
//! - an endpoint that sends RTCP and stopped for `rtcp_timeout`, or one with neither
//!   RTCP nor SID that sent no RTP for `rtp_timeout`, hears "disconnect" and is deleted;
//! - a participant without voice activity (or key press) for `no_packet` — a quiet SID
//!   endpoint, an endpoint that streams without VAD — is asked to stay and deleted
//!   when it does not reply; when that is everyone at once the whole conference is
//!   asked, and nobody replying releases it;
//! - one participant talking continuously for `single_talker`, or two or more at once
//!   for `multi_talker`, asks the conference; nobody replying releases it.
//!
//! A reply is a key press, or voice activity that starts in the reply window (from the
//! prompt's start to `reply_window` after its end) from a participant that was not
//! already talking when the prompt began.

use std::collections::BTreeMap;
use std::time::Duration;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{Liveness, MediaEventKind, PartKey};
use tutti_dataplane::rx::PromptId;

/// The RTCP report interval of our sessions (the RFC 3550 minimum; the dataplane
/// randomises around it).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest default RTCP timeout.
pub const MIN_RTCP_TIMEOUT: Duration = Duration::from_secs(15);
/// How much longer than its length a prompt may take before its end is assumed when
/// the dataplane's "prompt done" event does not come.
pub const PROMPT_SLACK: Duration = Duration::from_secs(1);
/// Steps one [`ConferenceWatch::handle_timeout`] call takes at most per participant
/// (every step changes the state; the bound only guards against a logic error).
const STEPS_PER_PARTICIPANT: usize = 8;

/// The reclamation timers (YAML section `orphan:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrphanConfig {
    /// Heartbeat intervals a call manager may miss before its lease lapses.
    pub lease_misses: u32,
    /// No packet from anyone (or no voice from a participant) for this long: ask.
    pub no_packet: Duration,
    /// One participant talking continuously this long: ask the conference.
    pub single_talker: Duration,
    /// Two or more participants talking continuously at once this long: ask.
    pub multi_talker: Duration,
    /// An RTCP-sending endpoint without RTCP this long is dead.
    pub rtcp_timeout: Duration,
    /// An endpoint with neither RTCP nor SID and no RTP this long is dead.
    pub rtp_timeout: Duration,
    /// How long after a prompt ends a reply still counts.
    pub reply_window: Duration,
}

impl Default for OrphanConfig {
    fn default() -> Self {
        OrphanConfig {
            lease_misses: 3,
            no_packet: Duration::from_secs(180),
            single_talker: Duration::from_secs(150 * 60),
            multi_talker: Duration::from_secs(10 * 60),
            rtcp_timeout: (RTCP_INTERVAL * 3).max(MIN_RTCP_TIMEOUT),
            rtp_timeout: Duration::from_secs(10),
            reply_window: Duration::from_secs(5),
        }
    }
}

impl OrphanConfig {
    /// The receive-stream timers participants need for these rules: RTCP timeout as
    /// configured, and "quiet" reported no later than `rtp_timeout` or `no_packet`
    /// (so a dead stream's last packet is known in time).
    pub fn liveness(&self) -> Liveness {
        let default = Liveness::default();
        Liveness {
            quiet_after: default
                .quiet_after
                .min(self.rtp_timeout)
                .min(self.no_packet),
            rtcp_timeout: self.rtcp_timeout,
        }
    }
}

/// The prompts reclamation plays (by their names in the prompt library).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// "Please say yes, or press any key, to stay in this conference."
    Stay,
    /// "This conference is ending. Goodbye."
    Goodbye,
    /// "Your line is being disconnected."
    Disconnect,
}

impl Prompt {
    /// Every prompt.
    pub const ALL: [Prompt; 3] = [Prompt::Stay, Prompt::Goodbye, Prompt::Disconnect];

    /// Its name in the prompt library.
    pub fn name(self) -> &'static str {
        match self {
            Prompt::Stay => "stay",
            Prompt::Goodbye => "goodbye",
            Prompt::Disconnect => "disconnect",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The reclamation prompts as loaded: id and length of each, `None` when the library
/// lacks it (reclamation then acts without it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PromptTable([Option<(PromptId, Duration)>; 3]);

impl PromptTable {
    /// The table from a lookup of each prompt's id and length.
    pub fn new(mut lookup: impl FnMut(Prompt) -> Option<(PromptId, Duration)>) -> Self {
        PromptTable(Prompt::ALL.map(&mut lookup))
    }

    /// The id and length of `p`, if loaded.
    pub fn get(&self, p: Prompt) -> Option<(PromptId, Duration)> {
        self.0[p.index()]
    }

    /// Which reclamation prompt `id` is.
    pub fn which(&self, id: PromptId) -> Option<Prompt> {
        Prompt::ALL
            .into_iter()
            .find(|p| self.get(*p).is_some_and(|(i, _)| i == id))
    }
}

/// Why a prompt plays, a participant goes or a conference is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The participant was on remote hold when the conference was orphaned.
    RemoteHold,
    /// The endpoint sent RTCP and stopped.
    RtcpTimeout,
    /// The endpoint (no RTCP, no SID) stopped sending RTP.
    RtpTimeout,
    /// The endpoint sent RTCP BYE: it hung up.
    Bye,
    /// It was asked to stay and did not reply.
    NoReply,
    /// It was the only participant left.
    LastParticipant,
    /// No participant was left.
    NoParticipants,
    /// No packet from any participant for `no_packet` (and nobody replied).
    NoPacket,
    /// Nobody spoke for `no_packet` (and nobody replied).
    EveryoneSilent,
    /// One participant talked continuously for `single_talker` (and nobody replied).
    SingleTalker,
    /// Several talked at once for `multi_talker` (and nobody replied).
    MultiTalker,
    /// The participant said nothing for `no_packet`.
    Silent,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 12] = [
        Reason::RemoteHold,
        Reason::RtcpTimeout,
        Reason::RtpTimeout,
        Reason::Bye,
        Reason::NoReply,
        Reason::LastParticipant,
        Reason::NoParticipants,
        Reason::NoPacket,
        Reason::EveryoneSilent,
        Reason::SingleTalker,
        Reason::MultiTalker,
        Reason::Silent,
    ];

    /// Its name in events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RemoteHold => "remote_hold",
            Reason::RtcpTimeout => "rtcp_timeout",
            Reason::RtpTimeout => "rtp_timeout",
            Reason::Bye => "bye",
            Reason::NoReply => "no_reply",
            Reason::LastParticipant => "last_participant",
            Reason::NoParticipants => "no_participants",
            Reason::NoPacket => "no_packet",
            Reason::EveryoneSilent => "everyone_silent",
            Reason::SingleTalker => "single_talker",
            Reason::MultiTalker => "multi_talker",
            Reason::Silent => "silent",
        }
    }
}

/// Who hears a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The whole conference.
    All,
    /// One participant.
    Part(PartKey),
}

/// How a participant replied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// Voice activity that started in the reply window.
    Voice,
    /// A key press.
    Digit,
}

impl ReplyKind {
    /// Its name in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Voice => "voice",
            ReplyKind::Digit => "digit",
        }
    }
}

/// What the caller is to do (in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Play `prompt` to `target`; `available` is false when the library lacks it (the
    /// procedure goes on without it).
    PlayPrompt {
        /// Who hears it.
        target: Target,
        /// Which prompt.
        prompt: Prompt,
        /// Why.
        reason: Reason,
        /// Whether the library has it.
        available: bool,
    },
    /// A participant replied to a stay prompt.
    ReplyHeard {
        /// Who.
        part: PartKey,
        /// How.
        by: ReplyKind,
    },
    /// Delete the participant (the watch has forgotten it already).
    DeleteParticipant {
        /// Who.
        part: PartKey,
        /// Why.
        reason: Reason,
    },
    /// Delete the conference with whoever is left; the watch is done.
    Release {
        /// Why.
        reason: Reason,
    },
}

/// What is known of a participant's RTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rtp {
    /// Nothing yet, since it was added at this time.
    Never(Instant),
    /// Packets arrive.
    Flowing,
    /// Quiet; the last packet arrived at this time.
    Quiet(Instant),
}

/// A prompt that is playing: when it started and when it ended (or must have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Playing {
    target: Target,
    prompt: Prompt,
    ended: Option<Instant>,
    bound: Instant,
}

impl Playing {
    /// The time it ends at the latest.
    fn end_by(&self) -> Instant {
        self.ended.unwrap_or(self.bound)
    }

    /// Note a "prompt done" for `target` and `prompt` at `at`.
    fn done(&mut self, target: Target, prompt: Prompt, at: Instant) {
        if self.target == target && self.prompt == prompt && self.ended.is_none() {
            self.ended = Some(at);
        }
    }
}

/// A participant being asked to stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ask {
    started: Instant,
    /// Its own prompt; `None` when it is part of the conference's round.
    own: Option<Playing>,
    /// Talking when the prompt began: only a key press counts.
    talking_at_start: bool,
    /// Deleted if it does not reply.
    suspect: bool,
    replied: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Part {
    added: Instant,
    rtp: Rtp,
    /// RTCP arrives (or arrived until `rtcp_stopped`).
    rtcp_seen: bool,
    rtcp_stopped: Option<Instant>,
    uses_sid: bool,
    talking: Option<Instant>,
    /// End of its last talk spurt or its last key press.
    last_voice: Option<Instant>,
    hold: bool,
    bye: bool,
    /// Its last reply while orphaned.
    replied: Option<Instant>,
    ask: Option<Ask>,
    /// Being deleted once this prompt has played.
    leaving: Option<(Reason, Playing)>,
}

impl Part {
    fn new(now: Instant) -> Part {
        Part {
            added: now,
            rtp: Rtp::Never(now),
            rtcp_seen: false,
            rtcp_stopped: None,
            uses_sid: false,
            talking: None,
            last_voice: None,
            hold: false,
            bye: false,
            replied: None,
            ask: None,
            leaving: None,
        }
    }
}

/// The conference-wide stay prompt and its replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Round {
    trigger: Reason,
    playing: Playing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Orphaned {
    since: Instant,
    /// Conference timers count from here: the orphaning or the last reply to a
    /// conference-wide prompt.
    epoch: Instant,
    round: Option<Round>,
    /// Goodbye playing, then release.
    ending: Option<(Reason, Option<PartKey>, Playing)>,
    released: bool,
}

/// One step that is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    // In the order they are taken when several are due.
    Hold(PartKey),
    Bye(PartKey),
    Left(PartKey),
    EndingDone,
    Dead(PartKey, ReasonOrd),
    AskClosed(PartKey),
    RoundClosed,
    Remaining,
    MultiTalker,
    SingleTalker,
    Silent(PartKey),
}

/// [`Reason`] for a [`Due`] (ordered by the two dead-endpoint reasons only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ReasonOrd {
    Rtcp,
    Rtp,
}

/// The reclamation state machine of one conference. See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct ConferenceWatch {
    config: OrphanConfig,
    prompts: PromptTable,
    parts: BTreeMap<PartKey, Part>,
    orphan: Option<Orphaned>,
}

impl ConferenceWatch {
    /// A watch for a new conference (not orphaned).
    pub fn new(config: OrphanConfig, prompts: PromptTable) -> Self {
        ConferenceWatch {
            config,
            prompts,
            parts: BTreeMap::new(),
            orphan: None,
        }
    }

    /// Whether the conference is orphaned (and not yet released).
    pub fn is_orphaned(&self) -> bool {
        self.orphan.is_some_and(|o| !o.released)
    }

    /// Whether the procedure has released the conference.
    pub fn is_released(&self) -> bool {
        self.orphan.is_some_and(|o| o.released)
    }

    /// A participant joined at `now`.
    pub fn add_participant(&mut self, part: PartKey, now: Instant) {
        self.parts.entry(part).or_insert_with(|| Part::new(now));
    }

    /// A participant was deleted by someone else (the API).
    pub fn remove_participant(&mut self, part: PartKey) {
        self.parts.remove(&part);
    }

    /// The call manager says the participant is (or is no longer) on remote hold.
    pub fn set_hold(&mut self, part: PartKey, hold: bool) {
        if let Some(p) = self.parts.get_mut(&part) {
            p.hold = hold;
        }
    }

    /// The conference's call manager is gone: start the procedure (no-op if it runs).
    /// Returns whether it started.
    pub fn orphan(&mut self, now: Instant) -> bool {
        if self.orphan.is_some() {
            return false;
        }
        for p in self.parts.values_mut() {
            p.replied = None;
            p.ask = None;
            p.leaving = None;
            p.bye = false;
        }
        self.orphan = Some(Orphaned {
            since: now,
            epoch: now,
            round: None,
            ending: None,
            released: false,
        });
        true
    }

    /// A call manager took the conference back: the procedure ends (participants it
    /// was about to delete stay). Returns whether it was orphaned.
    pub fn adopt(&mut self) -> bool {
        let was = self.is_orphaned();
        if !self.is_released() {
            self.orphan = None;
            for p in self.parts.values_mut() {
                p.ask = None;
                p.leaving = None;
            }
        }
        was
    }

    /// An event from the dataplane about participant `part` (or the conference),
    /// which happened at `at` (its [`MediaEvent::at`](tutti_dataplane::conference::MediaEvent)).
    pub fn handle_event(
        &mut self,
        part: Option<PartKey>,
        at: Instant,
        kind: MediaEventKind,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(key) = part else {
            if let MediaEventKind::PromptDone { prompt, .. } = kind {
                self.prompt_done(Target::All, prompt, at);
            }
            return out;
        };
        let orphaned = self.is_orphaned();
        let Some(p) = self.parts.get_mut(&key) else {
            return out;
        };
        let reply = match kind {
            MediaEventKind::TalkStart => {
                p.talking = Some(at);
                Some(ReplyKind::Voice)
            }
            MediaEventKind::TalkStop => {
                p.talking = None;
                p.last_voice = p.last_voice.max(Some(at));
                None
            }
            MediaEventKind::Digit { .. } => {
                p.last_voice = p.last_voice.max(Some(at));
                Some(ReplyKind::Digit)
            }
            MediaEventKind::Quiet { sid_before } => {
                p.rtp = Rtp::Quiet(at);
                p.uses_sid |= sid_before;
                if p.talking.take().is_some() {
                    p.last_voice = p.last_voice.max(Some(at));
                }
                None
            }
            MediaEventKind::Active => {
                p.rtp = Rtp::Flowing;
                None
            }
            MediaEventKind::SidSeen => {
                p.uses_sid = true;
                None
            }
            MediaEventKind::RtcpSeen => {
                p.rtcp_seen = true;
                p.rtcp_stopped = None;
                None
            }
            MediaEventKind::RtcpTimeout => {
                p.rtcp_stopped = Some(at);
                None
            }
            MediaEventKind::Bye => {
                p.bye = orphaned;
                None
            }
            MediaEventKind::PromptDone { prompt, .. } => {
                self.prompt_done(Target::Part(key), prompt, at);
                None
            }
            MediaEventKind::TickOverrun => None,
        };
        if let (Some(by), true) = (reply, orphaned) {
            if self.take_reply(key, at, by) {
                out.push(Action::ReplyHeard { part: key, by });
            }
        }
        out
    }

    /// Record a reply by `key` at `at` if it is being asked and the reply counts.
    fn take_reply(&mut self, key: PartKey, at: Instant, by: ReplyKind) -> bool {
        let window = self.config.reply_window;
        let round_end = self
            .orphan
            .and_then(|o| o.round)
            .map(|r| r.playing.end_by());
        let Some(ask) = self.parts.get_mut(&key).and_then(|p| p.ask.as_mut()) else {
            return false;
        };
        let prompt_end = match &ask.own {
            Some(own) => own.end_by(),
            None => match round_end {
                Some(e) => e,
                None => return false,
            },
        };
        let counts = ask.replied.is_none()
            && at >= ask.started
            && at <= prompt_end + window
            && (by == ReplyKind::Digit || !ask.talking_at_start);
        if counts {
            ask.replied = Some(at);
        }
        counts
    }

    fn prompt_done(&mut self, target: Target, id: PromptId, at: Instant) {
        let Some(prompt) = self.prompts.which(id) else {
            return;
        };
        if let Some(o) = self.orphan.as_mut() {
            if let Some(r) = o.round.as_mut() {
                r.playing.done(target, prompt, at);
            }
            if let Some((_, _, playing)) = o.ending.as_mut() {
                playing.done(target, prompt, at);
            }
        }
        if let Target::Part(k) = target {
            if let Some(p) = self.parts.get_mut(&k) {
                if let Some(own) = p.ask.as_mut().and_then(|a| a.own.as_mut()) {
                    own.done(target, prompt, at);
                }
                if let Some((_, playing)) = p.leaving.as_mut() {
                    playing.done(target, prompt, at);
                }
            }
        }
    }

    /// When [`ConferenceWatch::handle_timeout`] next has something to do (`None`: not
    /// orphaned, or released). A time in the past means now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dues().into_iter().map(|(t, _)| t).min()
    }

    /// Take every step due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let bound = STEPS_PER_PARTICIPANT * (self.parts.len() + 2);
        for _ in 0..bound {
            let next = self
                .dues()
                .into_iter()
                .filter(|(t, _)| *t <= now)
                .map(|(_, d)| d)
                .min();
            match next {
                Some(due) => self.step(now, due, &mut out),
                None => break,
            }
        }
        out
    }

    /// Every pending step and when it is due.
    fn dues(&self) -> Vec<(Instant, Due)> {
        let mut dues = Vec::new();
        let Some(o) = self.orphan.filter(|o| !o.released) else {
            return dues;
        };
        if let Some((_, _, playing)) = o.ending {
            dues.push((playing.end_by(), Due::EndingDone));
            return dues;
        }
        let cfg = &self.config;
        let mut leaving = false;
        let mut remaining = 0usize;
        let mut talkers = Vec::new();
        let mut silent = Vec::new();
        for (&k, p) in &self.parts {
            if p.hold {
                dues.push((Instant::ZERO, Due::Hold(k)));
                continue;
            }
            if p.bye {
                dues.push((Instant::ZERO, Due::Bye(k)));
                continue;
            }
            if let Some((_, playing)) = p.leaving {
                leaving = true;
                dues.push((playing.end_by(), Due::Left(k)));
                continue;
            }
            remaining += 1;
            dues.extend(self.dead_due(k, p, o.since));
            if let Some(ask) = &p.ask {
                if let Some(own) = &ask.own {
                    let close = match ask.replied {
                        Some(_) => Instant::ZERO,
                        None => own.end_by() + cfg.reply_window,
                    };
                    dues.push((close, Due::AskClosed(k)));
                }
                continue;
            }
            match p.talking {
                Some(since) => talkers.push(since.max(o.epoch)),
                None => silent.extend(self.silent_due(p, &o).map(|t| (t, Due::Silent(k)))),
            }
        }
        if !leaving && remaining <= 1 {
            dues.push((Instant::ZERO, Due::Remaining));
        }
        if let Some(r) = o.round {
            let all_replied = self
                .parts
                .values()
                .filter_map(|p| p.ask.filter(|a| a.own.is_none()))
                .all(|a| a.replied.is_some());
            let close = if all_replied {
                Instant::ZERO
            } else {
                r.playing.end_by() + cfg.reply_window
            };
            dues.push((close, Due::RoundClosed));
            return dues;
        }
        talkers.sort();
        match talkers.as_slice() {
            [one] => dues.push((*one + cfg.single_talker, Due::SingleTalker)),
            [_, second, ..] => dues.push((*second + cfg.multi_talker, Due::MultiTalker)),
            [] => {}
        }
        dues.extend(silent);
        dues
    }

    /// When participant `k` counts as dead, if it can: it sent RTCP that stopped, or
    /// it has neither RTCP nor SID and its RTP stopped (or never came).
    fn dead_due(&self, k: PartKey, p: &Part, since: Instant) -> Option<(Instant, Due)> {
        if p.rtcp_seen {
            let stopped = p.rtcp_stopped?;
            let t = stopped.max(since + self.config.rtcp_timeout);
            return Some((t, Due::Dead(k, ReasonOrd::Rtcp)));
        }
        if p.uses_sid {
            return None;
        }
        match p.rtp {
            Rtp::Flowing => None,
            Rtp::Never(t) | Rtp::Quiet(t) => Some((
                t.max(since) + self.config.rtp_timeout,
                Due::Dead(k, ReasonOrd::Rtp),
            )),
        }
    }

    /// When a participant that is not talking has been silent (no voice, no key) for
    /// `no_packet`, counting from the orphaning or its last reply at the earliest.
    fn silent_due(&self, p: &Part, o: &Orphaned) -> Option<Instant> {
        if p.talking.is_some() {
            return None;
        }
        let from = p
            .last_voice
            .unwrap_or(p.added)
            .max(o.epoch)
            .max(p.replied.unwrap_or(o.since));
        Some(from + self.config.no_packet)
    }

    /// Start playing `prompt` to `target` at `now`.
    fn play(
        &self,
        now: Instant,
        target: Target,
        prompt: Prompt,
        reason: Reason,
    ) -> (Playing, Action) {
        let loaded = self.prompts.get(prompt);
        let playing = Playing {
            target,
            prompt,
            ended: loaded.is_none().then_some(now),
            bound: now + loaded.map_or(Duration::ZERO, |(_, len)| len + PROMPT_SLACK),
        };
        let action = Action::PlayPrompt {
            target,
            prompt,
            reason,
            available: loaded.is_some(),
        };
        (playing, action)
    }

    /// Forget participant `k` and have it deleted.
    fn delete(&mut self, k: PartKey, reason: Reason, out: &mut Vec<Action>) {
        if self.parts.remove(&k).is_some() {
            out.push(Action::DeleteParticipant { part: k, reason });
        }
    }

    /// Goodbye to `last` (or everyone), then release for `reason`.
    fn end(&mut self, now: Instant, reason: Reason, last: Option<PartKey>, out: &mut Vec<Action>) {
        let target = last.map_or(Target::All, Target::Part);
        let (playing, action) = self.play(now, target, Prompt::Goodbye, reason);
        out.push(action);
        for p in self.parts.values_mut() {
            p.ask = None;
        }
        if let Some(o) = self.orphan.as_mut() {
            o.round = None;
            o.ending = Some((reason, last, playing));
        }
    }

    /// Ask the whole conference to stay.
    fn start_round(&mut self, now: Instant, trigger: Reason, out: &mut Vec<Action>) {
        let Some(o) = self.orphan else {
            return;
        };
        let (playing, action) = self.play(now, Target::All, Prompt::Stay, trigger);
        out.push(action);
        let suspects: Vec<bool> = self
            .parts
            .values()
            .map(|p| {
                p.ask.is_some_and(|a| a.suspect) || self.silent_due(p, &o).is_some_and(|t| t <= now)
            })
            .collect();
        for (p, suspect) in self.parts.values_mut().zip(suspects) {
            if p.leaving.is_none() {
                p.ask = Some(Ask {
                    started: now,
                    own: None,
                    talking_at_start: p.talking.is_some(),
                    suspect,
                    replied: None,
                });
            }
        }
        if let Some(o) = self.orphan.as_mut() {
            o.round = Some(Round { trigger, playing });
        }
    }

    /// Take one due step.
    fn step(&mut self, now: Instant, due: Due, out: &mut Vec<Action>) {
        let Some(o) = self.orphan else {
            return;
        };
        match due {
            Due::Hold(k) => self.delete(k, Reason::RemoteHold, out),
            Due::Bye(k) => self.delete(k, Reason::Bye, out),
            Due::Left(k) => {
                let reason = self.parts.get(&k).and_then(|p| p.leaving).map(|l| l.0);
                self.delete(k, reason.unwrap_or(Reason::NoReply), out);
            }
            Due::EndingDone => {
                if let Some((reason, last, _)) = o.ending {
                    if let Some(k) = last {
                        self.delete(k, Reason::LastParticipant, out);
                    }
                    out.push(Action::Release { reason });
                }
                if let Some(o) = self.orphan.as_mut() {
                    o.released = true;
                    o.ending = None;
                }
            }
            Due::Dead(k, r) => {
                let reason = match r {
                    ReasonOrd::Rtcp => Reason::RtcpTimeout,
                    ReasonOrd::Rtp => Reason::RtpTimeout,
                };
                let (playing, action) = self.play(now, Target::Part(k), Prompt::Disconnect, reason);
                if let Some(p) = self.parts.get_mut(&k) {
                    out.push(action);
                    p.ask = None;
                    p.leaving = Some((reason, playing));
                }
            }
            Due::AskClosed(k) => {
                let ask = self.parts.get_mut(&k).and_then(|p| p.ask.take());
                match ask.and_then(|a| a.replied) {
                    Some(at) => {
                        if let Some(p) = self.parts.get_mut(&k) {
                            p.replied = Some(at);
                        }
                    }
                    None => self.delete(k, Reason::NoReply, out),
                }
            }
            Due::RoundClosed => {
                let Some(round) = o.round else {
                    return;
                };
                let asked: Vec<(PartKey, Ask)> = self
                    .parts
                    .iter()
                    .filter_map(|(k, p)| p.ask.filter(|a| a.own.is_none()).map(|a| (*k, a)))
                    .collect();
                // The conference's timers restart at the last reply.
                let Some(last_reply) = asked.iter().filter_map(|(_, a)| a.replied).max() else {
                    self.end(now, round.trigger, None, out);
                    return;
                };
                if let Some(o) = self.orphan.as_mut() {
                    o.round = None;
                    o.epoch = last_reply;
                }
                for (k, ask) in asked {
                    match ask.replied {
                        Some(at) => {
                            if let Some(p) = self.parts.get_mut(&k) {
                                p.ask = None;
                                p.replied = Some(at);
                            }
                        }
                        None if ask.suspect => self.delete(k, Reason::NoReply, out),
                        None => {
                            if let Some(p) = self.parts.get_mut(&k) {
                                p.ask = None;
                            }
                        }
                    }
                }
            }
            Due::Remaining => {
                let left: Vec<PartKey> = self
                    .parts
                    .iter()
                    .filter(|(_, p)| p.leaving.is_none() && !p.hold && !p.bye)
                    .map(|(k, _)| *k)
                    .collect();
                match left.as_slice() {
                    [] => {
                        out.push(Action::Release {
                            reason: Reason::NoParticipants,
                        });
                        if let Some(o) = self.orphan.as_mut() {
                            o.released = true;
                        }
                    }
                    [last] => self.end(now, Reason::LastParticipant, Some(*last), out),
                    _ => {}
                }
            }
            Due::MultiTalker => self.start_round(now, Reason::MultiTalker, out),
            Due::SingleTalker => self.start_round(now, Reason::SingleTalker, out),
            Due::Silent(k) => {
                // Everyone silent (and nobody being asked): ask the conference.
                let everyone = self.parts.values().all(|p| {
                    p.leaving.is_some()
                        || (p.ask.is_none() && self.silent_due(p, &o).is_some_and(|t| t <= now))
                });
                if everyone {
                    let no_packets = self
                        .parts
                        .values()
                        .all(|p| p.leaving.is_some() || p.rtp != Rtp::Flowing);
                    let trigger = if no_packets {
                        Reason::NoPacket
                    } else {
                        Reason::EveryoneSilent
                    };
                    self.start_round(now, trigger, out);
                    return;
                }
                let (playing, action) =
                    self.play(now, Target::Part(k), Prompt::Stay, Reason::Silent);
                if let Some(p) = self.parts.get_mut(&k) {
                    out.push(action);
                    p.ask = Some(Ask {
                        started: now,
                        own: Some(playing),
                        talking_at_start: false,
                        suspect: true,
                        replied: None,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_dataplane::rx::{Digit, DigitSource};

    const S: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);
    const H: Duration = Duration::from_secs(3600);
    /// Prompt lengths in the tests: stay 4 s, goodbye 3 s, disconnect 2 s.
    const LENGTHS: [u32; 3] = [4, 3, 2];

    fn table() -> PromptTable {
        PromptTable::new(|p| {
            let i = p.index();
            Some((PromptId::from_index(i as u16), S * LENGTHS[i]))
        })
    }

    fn k(n: u32) -> PartKey {
        PartKey(n)
    }

    /// A watch driven in virtual time, with a dataplane that reports each prompt done
    /// when it has played (unless `deaf_prompts`).
    struct Sim {
        w: ConferenceWatch,
        now: Instant,
        log: Vec<(Instant, Action)>,
        playing: Vec<(Instant, Target, Prompt)>,
        deaf_prompts: bool,
    }

    impl Sim {
        fn new(config: OrphanConfig, prompts: PromptTable, parts: u32) -> Sim {
            let now = Instant::ZERO + H;
            let mut w = ConferenceWatch::new(config, prompts);
            for n in 1..=parts {
                w.add_participant(k(n), now);
            }
            Sim {
                w,
                now,
                log: Vec::new(),
                playing: Vec::new(),
                deaf_prompts: false,
            }
        }

        fn std(parts: u32) -> Sim {
            Sim::new(OrphanConfig::default(), table(), parts)
        }

        fn record(&mut self, actions: Vec<Action>) {
            for a in actions {
                if let Action::PlayPrompt {
                    target,
                    prompt,
                    available: true,
                    ..
                } = a
                {
                    let len = self.w.prompts.get(prompt).map(|(_, l)| l).unwrap();
                    self.playing.push((self.now + len, target, prompt));
                }
                self.log.push((self.now, a));
            }
        }

        fn ev(&mut self, n: u32, kind: MediaEventKind) {
            let a = self.w.handle_event(Some(k(n)), self.now, kind);
            self.record(a);
        }

        fn all_flowing(&mut self, parts: u32) {
            for n in 1..=parts {
                self.ev(n, MediaEventKind::Active);
            }
        }

        fn orphan(&mut self) {
            assert!(self.w.orphan(self.now));
            assert!(self.w.is_orphaned());
        }

        /// Run events and timers up to `t`.
        fn run_until(&mut self, t: Instant) {
            for _ in 0..100_000 {
                let done = self
                    .playing
                    .iter()
                    .map(|(at, ..)| *at)
                    .min()
                    .filter(|_| !self.deaf_prompts);
                let timer = self.w.poll_timeout();
                let next = match (done, timer) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let Some(next) = next.filter(|n| *n <= t) else {
                    break;
                };
                self.now = self.now.max(next);
                if let Some(i) = self
                    .playing
                    .iter()
                    .position(|(at, ..)| *at <= self.now)
                    .filter(|_| !self.deaf_prompts)
                {
                    let (_, target, prompt) = self.playing.remove(i);
                    let part = match target {
                        Target::All => None,
                        Target::Part(p) => Some(p),
                    };
                    let id = self.w.prompts.get(prompt).unwrap().0;
                    let kind = MediaEventKind::PromptDone {
                        prompt: id,
                        completed: true,
                    };
                    let a = self.w.handle_event(part, self.now, kind);
                    self.record(a);
                    continue;
                }
                let a = self.w.handle_timeout(self.now);
                self.record(a);
            }
            self.now = self.now.max(t);
        }

        fn advance(&mut self, d: Duration) {
            self.run_until(self.now + d);
        }

        /// The actions since index `from`, with their times relative to `t0`.
        fn since(&self, from: usize, t0: Instant) -> Vec<(Duration, Action)> {
            self.log[from..]
                .iter()
                .map(|(t, a)| (*t - t0, *a))
                .collect()
        }

        fn deleted(&self) -> Vec<(PartKey, Reason)> {
            self.log
                .iter()
                .filter_map(|(_, a)| match a {
                    Action::DeleteParticipant { part, reason } => Some((*part, *reason)),
                    _ => None,
                })
                .collect()
        }

        fn released(&self) -> Option<(Instant, Reason)> {
            self.log.iter().find_map(|(t, a)| match a {
                Action::Release { reason } => Some((*t, *reason)),
                _ => None,
            })
        }
    }

    fn play(target: Target, prompt: Prompt, reason: Reason) -> Action {
        Action::PlayPrompt {
            target,
            prompt,
            reason,
            available: true,
        }
    }

    fn digit() -> MediaEventKind {
        MediaEventKind::Digit {
            digit: Digit::D1,
            source: DigitSource::Rfc4733,
        }
    }

    #[test]
    fn nothing_happens_while_the_call_manager_lives() {
        let mut sim = Sim::std(2);
        sim.ev(1, MediaEventKind::Quiet { sid_before: false });
        sim.advance(10 * H);
        assert!(sim.log.is_empty());
        assert_eq!(sim.w.poll_timeout(), None);
    }

    #[test]
    fn one_participant_left_hears_goodbye_and_the_conference_is_freed() {
        let mut sim = Sim::std(1);
        sim.all_flowing(1);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(10 * S);
        assert_eq!(
            sim.since(0, t0),
            vec![
                (
                    Duration::ZERO,
                    play(Target::Part(k(1)), Prompt::Goodbye, Reason::LastParticipant)
                ),
                (
                    3 * S,
                    Action::DeleteParticipant {
                        part: k(1),
                        reason: Reason::LastParticipant
                    }
                ),
                (
                    3 * S,
                    Action::Release {
                        reason: Reason::LastParticipant
                    }
                ),
            ]
        );
        assert!(sim.w.is_released() && !sim.w.is_orphaned());
        assert_eq!(sim.w.poll_timeout(), None);

        // An empty orphaned conference is freed at once; a participant deleted through
        // the API leaves one, who hears goodbye.
        let mut empty = Sim::std(0);
        empty.orphan();
        empty.advance(S);
        assert_eq!(
            empty.released(),
            Some((empty.now - S, Reason::NoParticipants))
        );
        let mut two = Sim::std(2);
        two.all_flowing(2);
        two.orphan();
        two.advance(S);
        assert!(two.log.is_empty());
        two.w.remove_participant(k(2));
        two.advance(5 * S);
        assert_eq!(two.deleted(), vec![(k(1), Reason::LastParticipant)]);
        assert_eq!(two.released().map(|r| r.1), Some(Reason::LastParticipant));
    }

    #[test]
    fn remote_hold_participants_are_deleted_first() {
        let mut sim = Sim::std(3);
        sim.all_flowing(3);
        sim.w.set_hold(k(2), true);
        sim.advance(H);
        assert!(sim.log.is_empty(), "hold alone does nothing");
        sim.orphan();
        sim.advance(S);
        assert_eq!(
            sim.log.first().map(|(_, a)| *a),
            Some(Action::DeleteParticipant {
                part: k(2),
                reason: Reason::RemoteHold
            })
        );
        assert_eq!(sim.log.len(), 1, "the other two stay: {:?}", sim.log);
        // Put on hold while orphaned: deleted too, then the last one hears goodbye.
        sim.w.set_hold(k(3), true);
        sim.advance(5 * S);
        assert_eq!(
            sim.deleted(),
            vec![
                (k(2), Reason::RemoteHold),
                (k(3), Reason::RemoteHold),
                (k(1), Reason::LastParticipant)
            ]
        );
    }

    #[test]
    fn an_endpoint_without_rtcp_or_sid_that_stops_rtp_is_disconnected() {
        let mut sim = Sim::std(3);
        sim.all_flowing(3);
        sim.advance(MIN);
        // Participant 3 stopped before the orphaning: its timer starts at the orphaning.
        sim.ev(3, MediaEventKind::Quiet { sid_before: false });
        sim.advance(MIN);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(9 * S);
        assert!(sim.log.is_empty());
        sim.advance(S);
        assert_eq!(
            sim.since(0, t0),
            vec![(
                10 * S,
                play(Target::Part(k(3)), Prompt::Disconnect, Reason::RtpTimeout)
            )]
        );
        sim.advance(5 * S);
        assert_eq!(
            sim.since(1, t0),
            vec![(
                12 * S,
                Action::DeleteParticipant {
                    part: k(3),
                    reason: Reason::RtpTimeout
                }
            )]
        );
        assert!(sim.w.is_orphaned(), "two remain");
    }

    #[test]
    fn a_stream_that_never_started_or_stopped_after_the_orphaning_is_dead() {
        let mut sim = Sim::std(3);
        // 1 talks (flowing); 2 never sent anything; 3 stops 4 s after the orphaning.
        sim.ev(1, MediaEventKind::Active);
        sim.ev(3, MediaEventKind::Active);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(4 * S);
        sim.ev(3, MediaEventKind::Quiet { sid_before: false });
        sim.advance(30 * S);
        let dead: Vec<_> = sim
            .log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::DeleteParticipant { part, reason } => Some((*t - t0, *part, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            dead,
            vec![
                (12 * S, k(2), Reason::RtpTimeout),
                (16 * S, k(3), Reason::RtpTimeout),
                (19 * S, k(1), Reason::LastParticipant)
            ],
            "after every deletion the one-remaining rule: {:?}",
            sim.log
        );
        assert_eq!(sim.released(), Some((t0 + 19 * S, Reason::LastParticipant)));
    }

    #[test]
    fn an_rtcp_endpoint_is_dead_when_its_rtcp_stops_not_when_its_rtp_does() {
        let cfg = OrphanConfig {
            rtcp_timeout: 15 * S,
            ..OrphanConfig::default()
        };
        let mut sim = Sim::new(cfg, table(), 3);
        sim.all_flowing(3);
        for n in 1..=3 {
            sim.ev(n, MediaEventKind::RtcpSeen);
        }
        let t0 = sim.now;
        sim.orphan();
        // 2 stops RTP but keeps RTCP (alive); 3's RTCP times out at +20 s (the dataplane
        // reports it `rtcp_timeout` after the last report).
        sim.ev(2, MediaEventKind::Quiet { sid_before: false });
        sim.advance(20 * S);
        assert!(sim.log.is_empty(), "{:?}", sim.log);
        sim.ev(3, MediaEventKind::RtcpTimeout);
        sim.advance(10 * S);
        assert_eq!(
            sim.since(0, t0),
            vec![
                (
                    20 * S,
                    play(Target::Part(k(3)), Prompt::Disconnect, Reason::RtcpTimeout)
                ),
                (
                    22 * S,
                    Action::DeleteParticipant {
                        part: k(3),
                        reason: Reason::RtcpTimeout
                    }
                )
            ]
        );
        // RTCP that stopped before the orphaning counts from the orphaning; RTCP that
        // comes back saves the endpoint.
        let mut sim = Sim::new(cfg, table(), 3);
        sim.all_flowing(3);
        sim.ev(1, MediaEventKind::RtcpSeen);
        sim.ev(1, MediaEventKind::RtcpTimeout);
        sim.ev(2, MediaEventKind::RtcpSeen);
        sim.advance(MIN);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(5 * S);
        sim.ev(2, MediaEventKind::RtcpTimeout);
        sim.advance(5 * S);
        sim.ev(2, MediaEventKind::RtcpSeen);
        sim.advance(10 * S);
        assert_eq!(
            sim.since(0, t0).first(),
            Some(&(
                15 * S,
                play(Target::Part(k(1)), Prompt::Disconnect, Reason::RtcpTimeout)
            ))
        );
        assert_eq!(sim.deleted(), vec![(k(1), Reason::RtcpTimeout)]);
    }

    /// Participant 1 plays music on hold (talking throughout); the rest as set up.
    fn with_music(parts: u32) -> Sim {
        let mut sim = Sim::std(parts);
        sim.all_flowing(parts);
        sim.ev(1, MediaEventKind::TalkStart);
        sim
    }

    #[test]
    fn a_quiet_sid_endpoint_is_asked_to_speak_and_kept_when_it_does() {
        let mut sim = with_music(3);
        for n in [2, 3] {
            sim.ev(n, MediaEventKind::SidSeen);
            sim.ev(n, MediaEventKind::Quiet { sid_before: true });
        }
        let t0 = sim.now;
        sim.orphan();
        sim.advance(3 * MIN - S);
        assert!(
            sim.log.is_empty(),
            "SID endpoints are not dead: {:?}",
            sim.log
        );
        sim.advance(S);
        assert_eq!(
            sim.since(0, t0),
            vec![
                (
                    3 * MIN,
                    play(Target::Part(k(2)), Prompt::Stay, Reason::Silent)
                ),
                (
                    3 * MIN,
                    play(Target::Part(k(3)), Prompt::Stay, Reason::Silent)
                ),
            ]
        );
        // 2 speaks during the window (prompt 4 s, window 5 s after it); 3 never does.
        sim.advance(6 * S);
        sim.ev(2, MediaEventKind::Active);
        sim.ev(2, MediaEventKind::TalkStart);
        sim.advance(10 * S);
        assert_eq!(
            sim.since(2, t0),
            vec![
                (
                    3 * MIN + 6 * S,
                    Action::ReplyHeard {
                        part: k(2),
                        by: ReplyKind::Voice
                    }
                ),
                (
                    3 * MIN + 9 * S,
                    Action::DeleteParticipant {
                        part: k(3),
                        reason: Reason::NoReply
                    }
                ),
            ]
        );
        assert!(sim.w.is_orphaned());
    }

    #[test]
    fn an_endpoint_without_vad_is_judged_by_voice_and_may_answer_with_a_key() {
        let mut sim = with_music(3);
        // 2 and 3 stream silence (packets flow, no voice activity).
        let t0 = sim.now;
        sim.orphan();
        sim.advance(3 * MIN);
        let asked: Vec<_> = sim.since(0, t0);
        assert_eq!(asked.len(), 2, "{asked:?}");
        // 3 presses a key while the prompt plays: a reply. 2 says nothing.
        sim.advance(2 * S);
        sim.ev(3, digit());
        sim.advance(20 * S);
        assert_eq!(sim.deleted(), vec![(k(2), Reason::NoReply)]);
        assert!(sim.log.iter().any(|(_, a)| *a
            == Action::ReplyHeard {
                part: k(3),
                by: ReplyKind::Digit
            }));
        // Its timer restarted at the reply: asked again 3 min after the key press.
        let n = sim.log.len();
        let key_at = t0 + 3 * MIN + 2 * S;
        sim.run_until(key_at + 3 * MIN - S);
        assert_eq!(sim.log.len(), n);
        sim.run_until(key_at + 3 * MIN);
        assert_eq!(
            sim.since(n, key_at),
            vec![(
                3 * MIN,
                play(Target::Part(k(3)), Prompt::Stay, Reason::Silent)
            )]
        );
    }

    #[test]
    fn everyone_silent_asks_the_conference_and_no_reply_releases_it() {
        let mut sim = Sim::std(3);
        sim.all_flowing(3);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(3 * MIN + 20 * S);
        // Stay 4 s, window 5 s, goodbye 3 s.
        assert_eq!(
            sim.since(0, t0),
            vec![
                (
                    3 * MIN,
                    play(Target::All, Prompt::Stay, Reason::EveryoneSilent)
                ),
                (
                    3 * MIN + 9 * S,
                    play(Target::All, Prompt::Goodbye, Reason::EveryoneSilent)
                ),
                (
                    3 * MIN + 12 * S,
                    Action::Release {
                        reason: Reason::EveryoneSilent
                    }
                ),
            ]
        );
    }

    #[test]
    fn no_packets_from_anyone_asks_and_the_replies_are_kept() {
        let mut sim = Sim::std(4);
        for n in 1..=4 {
            sim.ev(n, MediaEventKind::SidSeen);
            sim.ev(n, MediaEventKind::Quiet { sid_before: true });
        }
        let t0 = sim.now;
        sim.orphan();
        sim.advance(3 * MIN);
        assert_eq!(
            sim.since(0, t0),
            vec![(3 * MIN, play(Target::All, Prompt::Stay, Reason::NoPacket))]
        );
        // 1 answers by speaking, 2 with a key during the prompt, 3 speaks too late.
        sim.advance(S);
        sim.ev(2, digit());
        sim.advance(4 * S);
        sim.ev(1, MediaEventKind::Active);
        sim.ev(1, MediaEventKind::TalkStart);
        sim.advance(5 * S);
        sim.ev(3, MediaEventKind::Active);
        sim.ev(3, MediaEventKind::TalkStart);
        sim.advance(S);
        assert_eq!(
            sim.deleted(),
            vec![(k(3), Reason::NoReply), (k(4), Reason::NoReply)]
        );
        assert!(sim.w.is_orphaned() && sim.released().is_none());
    }

    #[test]
    fn one_long_talker_asks_the_conference_and_music_is_no_reply() {
        let cfg = OrphanConfig {
            no_packet: 10 * H,
            ..OrphanConfig::default()
        };
        let mut sim = Sim::new(cfg, table(), 2);
        sim.all_flowing(2);
        sim.ev(1, MediaEventKind::TalkStart);
        sim.advance(H);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(150 * MIN - S);
        assert!(sim.log.is_empty());
        sim.advance(S);
        assert_eq!(
            sim.since(0, t0),
            vec![(
                150 * MIN,
                play(Target::All, Prompt::Stay, Reason::SingleTalker)
            )]
        );
        // The music pauses and resumes during the prompt: not a reply.
        sim.ev(1, MediaEventKind::TalkStop);
        sim.advance(S);
        sim.ev(1, MediaEventKind::TalkStart);
        sim.advance(20 * S);
        assert_eq!(
            sim.released(),
            Some((t0 + 150 * MIN + 12 * S, Reason::SingleTalker))
        );

        // A key from the listener resets the timer instead.
        let mut sim = Sim::new(cfg, table(), 2);
        sim.all_flowing(2);
        sim.ev(1, MediaEventKind::TalkStart);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(150 * MIN + 2 * S);
        sim.ev(2, digit());
        sim.advance(10 * S);
        assert_eq!(sim.released(), None);
        let n = sim.log.len();
        let closed = t0 + 150 * MIN + 2 * S;
        sim.run_until(closed + 150 * MIN);
        assert_eq!(
            sim.since(n, closed),
            vec![(
                150 * MIN,
                play(Target::All, Prompt::Stay, Reason::SingleTalker)
            )]
        );
    }

    #[test]
    fn two_music_streams_ask_after_the_multi_talker_time_and_a_key_keeps_them() {
        let cfg = OrphanConfig {
            no_packet: 10 * H,
            ..OrphanConfig::default()
        };
        let mut sim = Sim::new(cfg, table(), 2);
        sim.all_flowing(2);
        sim.ev(1, MediaEventKind::TalkStart);
        sim.advance(MIN);
        sim.ev(2, MediaEventKind::TalkStart);
        let t0 = sim.now;
        sim.orphan();
        sim.advance(10 * MIN + 20 * S);
        assert_eq!(
            sim.since(0, t0),
            vec![
                (
                    10 * MIN,
                    play(Target::All, Prompt::Stay, Reason::MultiTalker)
                ),
                (
                    10 * MIN + 9 * S,
                    play(Target::All, Prompt::Goodbye, Reason::MultiTalker)
                ),
                (
                    10 * MIN + 12 * S,
                    Action::Release {
                        reason: Reason::MultiTalker
                    }
                ),
            ]
        );
        // Music on hold keeps playing through the prompt, but a key press is a reply.
        let mut sim = Sim::new(cfg, table(), 2);
        sim.all_flowing(2);
        sim.ev(1, MediaEventKind::TalkStart);
        sim.ev(2, MediaEventKind::TalkStart);
        sim.orphan();
        sim.advance(10 * MIN + 8 * S);
        sim.ev(2, digit());
        sim.advance(MIN);
        assert_eq!(sim.released(), None);
        assert!(sim.deleted().is_empty(), "talkers are not suspects");
    }

    #[test]
    fn the_reply_window_opens_with_the_prompt_and_closes_after_it() {
        // Participant 1 talks (keeps the conference from being all-silent); 2 is
        // silent and asked at +3 min, its prompt ends at +3 min 4 s.
        for (offset, counts) in [
            (Duration::ZERO, true),
            (9 * S, true),
            (9 * S + Duration::from_millis(1), false),
        ] {
            let mut sim = with_music(2);
            sim.orphan();
            let asked = sim.now + 3 * MIN;
            // Up to the prompt's end (its "done" arrives at +4 s); the key's time
            // decides, whenever its event arrives.
            sim.run_until(asked + 4 * S);
            let stray = sim.w.handle_event(Some(k(2)), asked + offset, digit());
            assert_eq!(!stray.is_empty(), counts, "a key at +{offset:?}");
            // A key pressed just before the prompt began does not count.
            let early = sim.w.handle_event(Some(k(2)), asked - S, digit());
            assert!(early.is_empty());
        }
    }

    #[test]
    fn adoption_ends_the_procedure_and_a_new_orphaning_starts_it_again() {
        let mut sim = Sim::std(3);
        sim.all_flowing(3);
        sim.orphan();
        sim.advance(3 * MIN + S);
        assert_eq!(sim.log.len(), 1, "asked: {:?}", sim.log);
        assert!(sim.w.adopt());
        assert!(!sim.w.is_orphaned());
        assert_eq!(sim.w.poll_timeout(), None);
        sim.advance(10 * H);
        assert_eq!(sim.log.len(), 1, "nothing after the adoption");
        assert!(!sim.w.adopt(), "not orphaned any more");
        let t1 = sim.now;
        sim.orphan();
        sim.advance(3 * MIN);
        assert_eq!(
            sim.since(1, t1),
            vec![(
                3 * MIN,
                play(Target::All, Prompt::Stay, Reason::EveryoneSilent)
            )],
            "timers start again at the new orphaning"
        );
    }

    #[test]
    fn missing_prompts_are_skipped_and_a_lost_prompt_done_is_bounded() {
        let mut sim = Sim::new(OrphanConfig::default(), PromptTable::default(), 1);
        sim.orphan();
        sim.advance(S);
        assert_eq!(
            sim.log.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
            vec![
                Action::PlayPrompt {
                    target: Target::Part(k(1)),
                    prompt: Prompt::Goodbye,
                    reason: Reason::LastParticipant,
                    available: false
                },
                Action::DeleteParticipant {
                    part: k(1),
                    reason: Reason::LastParticipant
                },
                Action::Release {
                    reason: Reason::LastParticipant
                }
            ]
        );
        assert!(sim.log.iter().all(|(t, _)| *t == sim.log[0].0), "at once");

        let mut sim = Sim::std(1);
        sim.deaf_prompts = true;
        let t0 = sim.now;
        sim.orphan();
        sim.advance(10 * S);
        assert_eq!(
            sim.released(),
            Some((t0 + 3 * S + PROMPT_SLACK, Reason::LastParticipant))
        );
    }

    #[test]
    fn a_bye_while_orphaned_deletes_the_participant() {
        let mut sim = with_music(3);
        sim.ev(3, MediaEventKind::Bye);
        sim.advance(S);
        assert!(
            sim.log.is_empty(),
            "not orphaned: the call manager handles BYE"
        );
        sim.orphan();
        sim.ev(2, MediaEventKind::Bye);
        sim.advance(S);
        assert_eq!(sim.deleted(), vec![(k(2), Reason::Bye)]);
    }

    #[test]
    fn liveness_reports_quiet_in_time_for_the_rtp_timeout() {
        let cfg = OrphanConfig {
            rtp_timeout: 2 * S,
            rtcp_timeout: 4 * S,
            ..OrphanConfig::default()
        };
        assert_eq!(
            cfg.liveness(),
            Liveness {
                quiet_after: 2 * S,
                rtcp_timeout: 4 * S
            }
        );
        let d = OrphanConfig::default();
        assert_eq!(d.rtcp_timeout, 15 * S);
        assert_eq!(d.liveness().quiet_after, Liveness::default().quiet_after);
        assert_eq!(
            table().which(PromptId::from_index(2)),
            Some(Prompt::Disconnect)
        );
        assert_eq!(table().which(PromptId::from_index(9)), None);
    }
}
