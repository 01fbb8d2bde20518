//! SIP calls as the control core sees them: who may call (trusted sources, INVITE rate
//! per source, concurrent calls), which conference a request URI names, what an SDP
//! offer negotiates to ([`sdp`]), the table of live calls, and the operations a dialog
//! maps onto — the same [`Control`] operations the REST API calls (join = create the
//! conference if allowed + add a participant; hold = the participant's `hold`; end =
//! delete it). The SIP transport and message handling live in the server crate.

pub mod apps;
pub mod dial;
pub mod digest;
pub mod sdp;

use crate::control::Control;
use crate::error::ControlError;
use crate::events::Event;
use crate::sessions::{NewConference, NewParticipant, ParticipantPatch, SessionError};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::MediaOp;
use tutti_dataplane::conference::{ParticipantSettings, Timing};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};

/// Participants an auto-created conference admits: the most the API allows, since a
/// trunk may put hundreds of callers into one conference and cannot say how many.
pub const AUTO_CONFERENCE_PARTICIPANTS: u16 = 1000;
/// How long a source over its INVITE rate is told to wait (Retry-After, seconds).
pub const RETRY_AFTER_SECS: u32 = 1;
/// Sources whose INVITE counts are kept at most; beyond, the oldest windows go.
const MAX_SOURCES: usize = 65_536;

/// An IPv4 network, `addr/prefix_len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Net {
    /// The network of `addr` with `prefix_len` leading bits (at most 32).
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Net {
        Net {
            addr,
            prefix_len: prefix_len.min(32),
        }
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// Whether `ip` is in the network (IPv6 never is, but for mapped IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4,
                None => return false,
            },
        };
        u32::from(v4) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

/// A refusal, as a SIP final response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: String,
    /// Seconds for a Retry-After header (503).
    pub retry_after: Option<u32>,
}

impl Refusal {
    /// Code `code` with reason phrase `reason`.
    pub fn new(code: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            retry_after: None,
        }
    }

    fn busy(reason: impl Into<String>) -> Refusal {
        Refusal {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Refusal::new(503, reason)
        }
    }
}

impl From<&ControlError> for Refusal {
    /// The core's errors as SIP answers them (once, here).
    fn from(e: &ControlError) -> Refusal {
        match e {
            ControlError::Session(SessionError::NoSuchConference(_)) => {
                Refusal::new(404, "No such conference")
            }
            ControlError::Session(SessionError::InvalidConferenceId(_)) => {
                Refusal::new(404, "Not a conference id")
            }
            ControlError::Session(
                SessionError::ConferenceFull { .. }
                | SessionError::CoreFull { .. }
                | SessionError::NoCapacity { .. },
            )
            | ControlError::Media(crate::media::MediaError::Busy(_)) => Refusal::busy("Full"),
            ControlError::Orphaned(_) => Refusal::new(480, "Conference orphaned"),
            _ => Refusal::new(500, e.to_string()),
        }
    }
}

impl From<&sdp::SdpError> for Refusal {
    /// An offer we cannot read is a bad request; one we cannot take, not acceptable.
    fn from(e: &sdp::SdpError) -> Refusal {
        match e {
            sdp::SdpError::Malformed(_) => Refusal::new(400, format!("Bad Request ({e})")),
            sdp::SdpError::NotAcceptable(_) => {
                Refusal::new(488, format!("Not Acceptable Here ({e})"))
            }
        }
    }
}

/// Admission settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Sources allowed to send requests; empty: all.
    pub trusted: Vec<Net>,
    /// Concurrent calls at most.
    pub max_calls: u32,
    /// New INVITEs per source per second at most.
    pub invite_rate: u32,
    /// Sources not in `trusted` may still call if they authenticate (`sip.auth`):
    /// they are challenged (401) instead of refused (403).
    pub authenticate_untrusted: bool,
}

/// Who may call, and how often: trusted sources, a one-second INVITE window per
/// source, and the concurrent-call limit.
#[derive(Debug)]
pub struct Admission {
    policy: Policy,
    windows: HashMap<IpAddr, (Instant, u32)>,
}

impl Admission {
    /// Admission by `policy`.
    pub fn new(policy: Policy) -> Admission {
        Admission {
            policy,
            windows: HashMap::new(),
        }
    }

    /// Whether `ip` is a trusted source (every source is when the list is empty).
    pub fn listed(&self, ip: IpAddr) -> bool {
        self.policy.trusted.is_empty() || self.policy.trusted.iter().any(|n| n.contains(ip))
    }

    /// Whether `ip` may send requests at all (403 if not): trusted, or to be
    /// authenticated.
    pub fn trusted(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.policy.authenticate_untrusted || self.listed(ip) {
            Ok(())
        } else {
            Err(Refusal::new(403, "Source not trusted"))
        }
    }

    /// Whether there is room for another call with `active` calls up.
    pub fn room(&self, active: usize) -> Result<(), Refusal> {
        if active >= self.policy.max_calls as usize {
            Err(Refusal::busy("Too many calls"))
        } else {
            Ok(())
        }
    }

    /// Count a new INVITE from `ip` at `now` with `active` calls up; refuse it over
    /// the source's rate or the call limit.
    pub fn admit_invite(&mut self, ip: IpAddr, now: Instant, active: usize) -> Result<(), Refusal> {
        self.trusted(ip)?;
        self.room(active)?;
        if self.windows.len() >= MAX_SOURCES && !self.windows.contains_key(&ip) {
            self.windows
                .retain(|_, (start, _)| now.saturating_since(*start) < Duration::from_secs(1));
            if self.windows.len() >= MAX_SOURCES {
                return Err(Refusal::busy("Too many sources"));
            }
        }
        let (start, n) = self.windows.entry(ip).or_insert((now, 0));
        if now.saturating_since(*start) >= Duration::from_secs(1) {
            (*start, *n) = (now, 0);
        }
        if *n >= self.policy.invite_rate {
            return Err(Refusal::busy("INVITE rate exceeded"));
        }
        *n += 1;
        Ok(())
    }
}

/// RFC 4028's smallest session interval (Min-SE), seconds.
pub const MIN_SE_SECS: u64 = 90;

/// The session interval of a call (RFC 4028), from the INVITE's `Session-Expires`
/// (seconds, if it has one) and whether it supports `timer`, with ours (`sip.session_expires`)
/// the most we take: `None` when the caller has no session timers; 422 when it asks for
/// less than [`MIN_SE_SECS`]. The caller refreshes (`refresher=uac`).
pub fn session_interval(
    ours: Duration,
    asked: Option<u64>,
    supported: bool,
) -> Result<Option<Duration>, Refusal> {
    if asked.is_none() && !supported {
        return Ok(None);
    }
    let ours = ours.as_secs().max(MIN_SE_SECS);
    match asked {
        Some(s) if s < MIN_SE_SECS => Err(Refusal::new(422, "Session Interval Too Small")),
        Some(s) => Ok(Some(Duration::from_secs(s.min(ours)))),
        None => Ok(Some(Duration::from_secs(ours))),
    }
}

/// When a session refreshed at `at` with `interval` is dead if no refresh came: RFC
/// 4028 section 10, the side that does not refresh ends it at `interval` less a third
/// of it or 32 s, whichever is less.
pub fn session_deadline(at: Instant, interval: Duration) -> Instant {
    at + interval - (interval / 3).min(Duration::from_secs(32))
}

/// When a call whose participant fell quiet (no RTP, no comfort-noise SID before, not
/// on hold) at `quiet_since` is dead: `orphan.rtp_timeout` after its last packet (the
/// dataplane reports quiet `quiet_after` after it).
pub fn rtp_deadline(quiet_since: Instant, orphan: &crate::orphan::OrphanConfig) -> Instant {
    quiet_since
        + orphan
            .rtp_timeout
            .saturating_sub(orphan.liveness().quiet_after)
}

/// The conference id a request URI's user part names: `conf-<id>`.
pub fn conference_of(user: Option<&str>) -> Result<&str, Refusal> {
    user.and_then(|u| u.strip_prefix("conf-"))
        .filter(|id| crate::sessions::valid_conference_id(id))
        .ok_or_else(|| Refusal::new(404, "Not a conference (call sip:conf-<id>@...)"))
}

/// An in-dialog request to remote target `target` over route set `route` (RFC 3261
/// 12.2.1.1): its Request-URI, its Route header values and the URI of its next hop.
/// A first route with `lr` is a loose router (the target stays the Request-URI); one
/// without is a strict router (it becomes the Request-URI, the target the last Route).
pub fn in_dialog_route(target: &str, route: &[String]) -> (String, Vec<String>, String) {
    let Some(first) = route.first() else {
        return (target.to_string(), Vec::new(), target.to_string());
    };
    let hop = uri_of(first);
    let loose = hop.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("lr"))
    });
    if loose {
        (target.to_string(), route.to_vec(), hop)
    } else {
        let mut rest = route[1..].to_vec();
        rest.push(format!("<{target}>"));
        (hop.clone(), rest, hop)
    }
}

/// The URI inside a name-addr (`"A" <sip:a@h>;tag=x` → `sip:a@h`).
pub fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_string(),
        _ => value.split(';').next().unwrap_or("").trim().to_string(),
    }
}

/// The SIP side of a participant: what the REST API shows of its call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CallInfo {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The caller (From URI).
    pub from: String,
    /// The callee (To URI).
    pub to: String,
}

/// Where a dial-out is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DialState {
    Calling,
    Ringing,
    Answered,
    Failed,
}

/// A dialled participant's call, as the REST API shows it (`dial`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DialStatus {
    pub state: DialState,
    /// Why it failed (`busy`, `no_answer`, `rejected`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The callee's final status code, when it failed with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

impl DialStatus {
    fn new(state: DialState) -> DialStatus {
        DialStatus {
            state,
            reason: None,
            code: None,
        }
    }

    /// Calling or ringing: not answered, not failed.
    pub fn pending(&self) -> bool {
        matches!(self.state, DialState::Calling | DialState::Ringing)
    }
}

/// How long a failed dial-out stays visible in `GET` of its participant, and how many
/// are kept at most.
pub const FAILED_DIAL_TTL: Duration = Duration::from_secs(300);
pub const FAILED_DIALS_KEPT: usize = 1024;

/// Failed dial-outs (their participant as it was, with the reason), the oldest first.
#[derive(Debug, Default)]
pub struct FailedDials {
    kept: std::collections::VecDeque<(Instant, String, crate::sessions::Participant)>,
}

impl FailedDials {
    fn expire(&mut self, now: Instant) {
        while self
            .kept
            .front()
            .is_some_and(|(at, ..)| now.saturating_since(*at) >= FAILED_DIAL_TTL)
        {
            self.kept.pop_front();
        }
    }

    fn keep(&mut self, now: Instant, conf: &str, p: crate::sessions::Participant) {
        self.expire(now);
        if self.kept.len() >= FAILED_DIALS_KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back((now, conf.to_string(), p));
    }

    /// Failed participant `pid` of conference `conf`, if kept and not expired at `now`.
    pub fn get(
        &self,
        now: Instant,
        conf: &str,
        pid: &str,
    ) -> Option<&crate::sessions::Participant> {
        self.kept
            .iter()
            .find(|(at, c, p)| {
                c == conf && p.id == pid && now.saturating_since(*at) < FAILED_DIAL_TTL
            })
            .map(|(.., p)| p)
    }

    /// Forget failed participant `pid` of conference `conf`; whether it was kept.
    pub fn forget(&mut self, now: Instant, conf: &str, pid: &str) -> bool {
        self.expire(now);
        let before = self.kept.len();
        self.kept.retain(|(_, c, p)| !(c == conf && p.id == pid));
        self.kept.len() != before
    }
}

/// A dial-out to make: the codecs to offer (at least one), telephone-event too or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialOffer {
    pub codecs: Vec<tutti_dataplane::codec::CodecKind>,
    pub telephone_event: bool,
}

/// A participant a call joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The conference id.
    pub conf: String,
    /// The participant id.
    pub pid: String,
    /// Our media address for it.
    pub local: SocketAddrV4,
    /// Our SRTP key for it (the answer's `a=crypto`), if its stream is protected.
    pub srtp: Option<crate::srtp::MasterKey>,
}

impl Control {
    fn call_event(
        &mut self,
        kind: &'static str,
        conf: &str,
        pid: Option<&str>,
        reason: Option<&'static str>,
    ) {
        let mut ev = Event::session(kind, conf, pid, self.clock.wall());
        ev.detail.reason = reason;
        self.publish(ev);
    }

    /// A call to conference `conf` is ringing (before it joins).
    pub fn sip_ringing(&mut self, conf: &str) {
        self.call_event("call_ringing", conf, None, None);
    }

    /// A ringing call to conference `conf` was cancelled before it joined.
    pub fn sip_cancelled(&mut self, conf: &str) {
        self.call_event("call_ended", conf, None, Some("cancel"));
    }

    /// Join a call to conference `conf` (created first if `auto_create`) with the
    /// media the offer negotiated and `settings` (an application's call: `echo`).
    pub fn sip_join(
        &mut self,
        conf: &str,
        auto_create: bool,
        media: &sdp::Negotiated,
        call: CallInfo,
        settings: ParticipantSettings,
    ) -> Result<Joined, ControlError> {
        if auto_create && self.sessions.conference(conf).is_err() {
            let new = NewConference {
                id: Some(conf.to_string()),
                owner: None,
                ptime: Ptime::default(),
                active_speakers: ActiveSpeakers::default(),
                max_participants: AUTO_CONFERENCE_PARTICIPANTS,
                timing: Timing::Arrival,
            };
            match self.create_conference(new) {
                Ok(_) | Err(ControlError::Session(SessionError::DuplicateConference(_))) => {}
                Err(e) => return Err(e),
            }
        }
        let part = self.add_participant(
            conf,
            NewParticipant {
                remote: media.remote,
                codec: media.codec,
                telephone_event_pt: media.telephone_event_pt,
                rtcp: true,
                settings,
                srtp: media.srtp.map(|c| crate::srtp::keys_for(c.key)),
            },
        )?;
        let conf_key = self.sessions.conference(conf)?.key;
        let p = self
            .sessions
            .set_participant_call(conf_key, part, call)
            .ok_or(ControlError::Gone)?;
        let joined = Joined {
            conf: conf.to_string(),
            pid: p.id.clone(),
            local: p.local,
            srtp: p.srtp.map(|k| k.local),
        };
        if media.hold {
            self.sip_hold(&joined.conf, &joined.pid, true)?;
        }
        self.call_event("call_answered", conf, Some(&joined.pid), None);
        Ok(joined)
    }

    /// Reserve a participant of conference `conf` for a dial-out offering `offer`: its
    /// port pair and slot, nothing on the dataplane until [`Control::dial_answered`].
    pub fn dial_reserve(
        &mut self,
        conf: &str,
        offer: &DialOffer,
        call: CallInfo,
    ) -> Result<Joined, ControlError> {
        let codec = *offer
            .codecs
            .first()
            .ok_or_else(|| ControlError::Invalid("a dial-out offers at least one codec".into()))?;
        self.admits(conf)?;
        let now = self.clock.wall();
        let p = self.sessions.add_participant(
            conf,
            NewParticipant {
                remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                codec,
                telephone_event_pt: None,
                rtcp: true,
                settings: ParticipantSettings::default(),
                srtp: None,
            },
            now,
        )?;
        let (conf_key, part) = (p.conf, p.key);
        self.sessions.set_participant_call(conf_key, part, call);
        let p = self
            .sessions
            .set_participant_dial(conf_key, part, DialStatus::new(DialState::Calling))
            .ok_or(ControlError::Gone)?;
        let joined = Joined {
            conf: conf.to_string(),
            pid: p.id.clone(),
            local: p.local,
            srtp: p.srtp.map(|k| k.local),
        };
        tracing::info!(conference = %conf, participant = %joined.pid, "dialling");
        Ok(joined)
    }

    /// A dial-out rings (180/183).
    pub fn dial_ringing(&mut self, conf: &str, pid: &str) {
        let Ok(p) = self.sessions.participant(conf, pid) else {
            return;
        };
        let (conf_key, part) = (p.conf, p.key);
        self.sessions
            .set_participant_dial(conf_key, part, DialStatus::new(DialState::Ringing));
        self.call_event("call_ringing", conf, Some(pid), None);
    }

    /// A dial-out was answered with `media` (and ACKed): its participant goes on the
    /// dataplane and is an ordinary call participant from now on. On an error (it was
    /// deleted meanwhile, the dataplane refused) the caller ends the call.
    pub fn dial_answered(
        &mut self,
        conf: &str,
        pid: &str,
        media: &sdp::Negotiated,
        call: CallInfo,
    ) -> Result<(), ControlError> {
        let (core, conf_key, part) = self.part_keys(conf, pid)?;
        if !self.sessions.participant(conf, pid)?.pending() {
            return Err(ControlError::Gone);
        }
        self.sessions.set_participant_media(
            conf_key,
            part,
            media.remote,
            media.codec,
            media.telephone_event_pt,
        );
        self.sessions.set_participant_call(conf_key, part, call);
        let p = self
            .sessions
            .set_participant_dial(conf_key, part, DialStatus::new(DialState::Answered))
            .ok_or(ControlError::Gone)?;
        let spec = p.spec(self.reclaim.config().liveness());
        if let Err(e) = self.media.apply(core, MediaOp::AddParticipant(spec)) {
            tracing::warn!(conference = %conf, participant = %pid, error = %e, "answered dial-out not added");
            self.sessions
                .set_participant_dial(conf_key, part, DialStatus::new(DialState::Calling));
            self.dial_failed(conf, pid, "media", None);
            return Err(e.into());
        }
        tracing::info!(conference = %conf, participant = %pid, remote = %spec.remote, "dial-out answered");
        self.reclaim
            .participant_added(conf_key, part, self.clock.now());
        self.session_event("participant_created", conf, Some(pid));
        if media.hold {
            self.sip_hold(conf, pid, true)?;
        }
        self.call_event("call_answered", conf, Some(pid), None);
        Ok(())
    }

    /// A dial-out failed (`reason`, the callee's `code`): its reserved port pair and
    /// slot are freed, and the participant, failed, stays visible for
    /// [`FAILED_DIAL_TTL`] (at most [`FAILED_DIALS_KEPT`] of them).
    pub fn dial_failed(&mut self, conf: &str, pid: &str, reason: &'static str, code: Option<u16>) {
        let Ok(p) = self.sessions.participant(conf, pid) else {
            return;
        };
        if !p.pending() {
            return;
        }
        let (conf_key, part) = (p.conf, p.key);
        let Some(mut p) = self.sessions.remove_participant(conf_key, part) else {
            return;
        };
        p.dial = Some(DialStatus {
            state: DialState::Failed,
            reason: Some(reason),
            code,
        });
        tracing::info!(conference = %conf, participant = %pid, reason, code, "dial-out failed");
        let now = self.clock.now();
        self.failed_dials.keep(now, conf, p);
        let mut ev = Event::session("call_failed", conf, Some(pid), self.clock.wall());
        ev.detail.reason = Some(reason);
        ev.detail.code = code;
        self.publish(ev);
    }

    /// Participant `pid` of conference `conf`, or its failed dial-out while it is kept.
    pub fn participant_or_failed(
        &self,
        conf: &str,
        pid: &str,
    ) -> Result<&crate::sessions::Participant, ControlError> {
        match self.sessions.participant(conf, pid) {
            Ok(p) => Ok(p),
            Err(e) => self
                .failed_dials
                .get(self.clock.now(), conf, pid)
                .ok_or_else(|| e.into()),
        }
    }

    /// The conference call participant `pid` of conference `conf` is in now: `conf`,
    /// or the one it moved to (the UA learns of a move by its event, which a request
    /// of the call may beat).
    fn call_conf(&self, conf: &str, pid: &str) -> String {
        match self.sessions.conference_of_participant(pid) {
            Some(c) if self.sessions.participant(conf, pid).is_err() => c.id.clone(),
            _ => conf.to_string(),
        }
    }

    /// A re-INVITE put the call on hold or took it off.
    pub fn sip_hold(&mut self, conf: &str, pid: &str, hold: bool) -> Result<(), ControlError> {
        let conf = &self.call_conf(conf, pid);
        let was = self.sessions.participant(conf, pid)?.hold;
        self.patch_participant(
            conf,
            pid,
            ParticipantPatch {
                hold: Some(hold),
                ..ParticipantPatch::default()
            },
        )?;
        if was != hold {
            let kind = if hold { "call_held" } else { "call_resumed" };
            self.call_event(kind, conf, Some(pid), None);
        }
        Ok(())
    }

    /// The call ended (`reason`: `bye`, `cancel`, `deleted`, `timeout`, ...): its
    /// participant goes, if it is still there.
    pub fn sip_end(&mut self, conf: &str, pid: &str, reason: &'static str) {
        let conf = &self.call_conf(conf, pid);
        if self.sessions.participant(conf, pid).is_ok() {
            if let Err(e) = self.delete_participant(conf, pid) {
                tracing::warn!(conference = %conf, participant = %pid, error = %e, "ended call's participant not deleted");
            }
        }
        self.call_event("call_ended", conf, Some(pid), Some(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(trusted: Vec<Net>) -> Admission {
        Admission::new(Policy {
            trusted,
            max_calls: 3,
            invite_rate: 2,
            authenticate_untrusted: false,
        })
    }

    #[test]
    fn nets_contain_their_addresses() {
        let n = Net::new(Ipv4Addr::new(198, 18, 0, 0), 15);
        assert!(n.contains("198.19.255.1".parse().unwrap()));
        let half = Net::new(Ipv4Addr::new(198, 18, 0, 0), 16);
        assert!(!half.contains("198.19.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:198.18.0.9".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(Net::new(Ipv4Addr::UNSPECIFIED, 0).contains("127.0.0.9".parse().unwrap()));
        let host = Net::new(Ipv4Addr::new(198, 18, 0, 1), 32);
        assert!(host.contains("198.18.0.1".parse().unwrap()));
        assert!(!host.contains("198.18.0.2".parse().unwrap()));
    }

    #[test]
    fn untrusted_sources_get_403() {
        let a = admission(vec![Net::new(Ipv4Addr::new(127, 0, 0, 0), 8)]);
        assert!(a.trusted("127.0.0.5".parse().unwrap()).is_ok());
        assert_eq!(
            a.trusted("198.18.0.2".parse().unwrap()).unwrap_err().code,
            403
        );
        assert!(admission(vec![])
            .trusted("198.18.0.2".parse().unwrap())
            .is_ok());
        let mut auth = admission(vec![Net::new(Ipv4Addr::new(127, 0, 0, 0), 8)]);
        auth.policy.authenticate_untrusted = true;
        assert!(auth.trusted("198.18.0.2".parse().unwrap()).is_ok());
        assert!(!auth.listed("198.18.0.2".parse().unwrap()));
        assert!(auth.listed("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn invites_over_the_rate_or_the_call_limit_get_503_with_retry_after() {
        let mut a = admission(vec![]);
        let ip: IpAddr = "198.18.0.2".parse().unwrap();
        let other: IpAddr = "198.18.0.3".parse().unwrap();
        let t0 = Instant::ZERO + Duration::from_secs(10);
        assert!(a.admit_invite(ip, t0, 0).is_ok());
        assert!(a.admit_invite(ip, t0, 1).is_ok());
        let r = a
            .admit_invite(ip, t0 + Duration::from_millis(999), 2)
            .unwrap_err();
        assert_eq!((r.code, r.retry_after), (503, Some(RETRY_AFTER_SECS)));
        assert!(
            a.admit_invite(other, t0, 2).is_ok(),
            "the rate is per source"
        );
        assert!(
            a.admit_invite(ip, t0 + Duration::from_secs(1), 2).is_ok(),
            "a new window"
        );
        let r = a
            .admit_invite(other, t0 + Duration::from_secs(5), 3)
            .unwrap_err();
        assert_eq!((r.code, r.reason.as_str()), (503, "Too many calls"));
        assert_eq!(a.room(3).unwrap_err().code, 503);
        assert!(a.room(2).is_ok());
    }

    #[test]
    fn session_intervals_are_negotiated_and_expire_in_virtual_time() {
        let ours = Duration::from_secs(1800);
        assert_eq!(session_interval(ours, None, false), Ok(None));
        assert_eq!(session_interval(ours, None, true), Ok(Some(ours)));
        assert_eq!(
            session_interval(ours, Some(120), true),
            Ok(Some(Duration::from_secs(120)))
        );
        assert_eq!(session_interval(ours, Some(7200), false), Ok(Some(ours)));
        assert_eq!(
            session_interval(ours, Some(30), true).unwrap_err().code,
            422
        );
        let t0 = Instant::ZERO + Duration::from_secs(5);
        // 90 s: a third is 30 s; 1800 s: 32 s at most.
        assert_eq!(
            session_deadline(t0, Duration::from_secs(90)),
            t0 + Duration::from_secs(60)
        );
        assert_eq!(
            session_deadline(t0, Duration::from_secs(1800)),
            t0 + Duration::from_secs(1768)
        );
    }

    #[test]
    fn a_quiet_call_is_dead_at_the_rtp_timeout_after_its_last_packet() {
        let t0 = Instant::ZERO + Duration::from_secs(3);
        let mut orphan = crate::orphan::OrphanConfig {
            rtp_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        // Quiet is reported after min(5 s, rtp_timeout, no_packet) without RTP.
        let quiet_after = orphan.liveness().quiet_after;
        assert_eq!(
            rtp_deadline(t0, &orphan),
            t0 + Duration::from_secs(10) - quiet_after
        );
        orphan.rtp_timeout = Duration::from_secs(2);
        assert_eq!(orphan.liveness().quiet_after, Duration::from_secs(2));
        assert_eq!(rtp_deadline(t0, &orphan), t0);
    }

    #[test]
    fn request_uris_name_conferences() {
        assert_eq!(conference_of(Some("conf-42")), Ok("42"));
        assert_eq!(conference_of(Some("conf-a.b_c")), Ok("a.b_c"));
        for bad in [
            None,
            Some("42"),
            Some("conf-"),
            Some("conf-a/b"),
            Some("alice"),
        ] {
            assert_eq!(conference_of(bad).unwrap_err().code, 404, "{bad:?}");
        }
    }

    #[test]
    fn core_errors_map_to_sip_codes() {
        let no = ControlError::Session(SessionError::NoSuchConference("x".into()));
        assert_eq!(Refusal::from(&no).code, 404);
        let full = ControlError::Session(SessionError::ConferenceFull {
            conf: "x".into(),
            max: 1,
        });
        assert_eq!(Refusal::from(&full).code, 503);
        assert_eq!(Refusal::from(&ControlError::Gone).code, 500);
    }
}
