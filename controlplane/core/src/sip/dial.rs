//! Dial-out, sans IO: one outgoing call (RFC 3261 UAC) from its INVITE to its end.
//!
//! [`Dial`] takes the time and the responses the driver read ([`Response`]), and gives
//! the messages to send ([`Dial::poll_transmit`]), what happened to the call
//! ([`Dial::poll_event`]) and when it next wants [`Dial::handle_timeout`]
//! ([`Dial::poll_timeout`]). It does:
//!
//! - the INVITE client transaction: timer A retransmissions over UDP (T1, doubling),
//!   timer B (64·T1 without any response), 1xx (180/183 → ringing), a non-2xx final
//!   answered by an ACK on the INVITE's branch (17.1.1.3), a 2xx by an ACK to the
//!   remote target over the route set (13.2.2.4), again for each retransmitted 2xx;
//! - the no-answer timeout: CANCEL (once a provisional response came, 9.1) with its own
//!   retransmissions; a 2xx crossing the CANCEL is ACKed and ended with BYE;
//! - the answer's SDP against our offer: no common codec → ACK, BYE, failed;
//! - after the answer, BYE on [`Dial::hangup`], and the session refresh (RFC 4028) when
//!   the answer makes us the refresher: a re-INVITE with the same SDP (version + 1) at
//!   half the interval; a refresh refused or unanswered ends the call with BYE.
//!
//! In-dialog requests from the callee (BYE, re-INVITE) are the UAS's, as for calls in.

use super::sdp::{self, Negotiated};
use super::{in_dialog_route, uri_of};
use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::Duration;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::CodecKind;

/// RFC 3261 T1 and T2 (a UAS's 2xx retransmissions use them too).
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
/// Timers B and F: how long a transaction waits for its final response (64·T1; a
/// UAS waits as long for the ACK of its 2xx).
pub const TX_TIMEOUT: Duration = Duration::from_secs(32);
/// How long a refused refresh (491) waits before it is tried again.
const REFRESH_RETRY: Duration = Duration::from_secs(2);

/// A deadline that never comes.
const NEVER: Instant = Instant::from_nanos(u64::MAX);

/// The default no-answer timeout (`timeout_ms`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the dial is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct DialSetup {
    /// The Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub local_tag: String,
    /// Who we call: the Request-URI and the To URI.
    pub to: String,
    /// Who calls: the From URI.
    pub from: String,
    /// Our Contact URI.
    pub contact: String,
    /// Our Via sent-by (`198.18.0.1:5060`) and whether its transport is reliable (TCP).
    pub via: String,
    pub reliable: bool,
    /// Our media address for the call.
    pub local_media: SocketAddrV4,
    /// The codecs we offer, in our order, and whether telephone-event/8000 too.
    pub codecs: Vec<CodecKind>,
    pub telephone_event: bool,
    /// How long it may ring before we CANCEL.
    pub timeout: Duration,
    /// The session interval we ask for (RFC 4028), if any.
    pub session_expires: Option<Duration>,
}

/// Which request a response answers (by its CSeq method).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answers {
    Invite,
    Cancel,
    Bye,
    Other,
}

/// A response, as the driver read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub code: u16,
    /// The CSeq number and method.
    pub cseq: u32,
    pub answers: Answers,
    /// The To header value (with the callee's tag, if it gave one).
    pub to: String,
    /// Its Contact URI (the remote target of a 2xx).
    pub contact: Option<String>,
    /// Its Record-Route entries, in order.
    pub record_route: Vec<String>,
    /// Session-Expires: seconds, and whether it names us (`refresher=uac`).
    pub session_expires: Option<(u64, bool)>,
    /// The body (SDP of a 2xx).
    pub body: Vec<u8>,
}

/// A message to send: to `hop` (a SIP URI: the Request-URI, the first route or the
/// remote target), `bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub hop: String,
    pub bytes: Vec<u8>,
}

/// The dialog a 2xx set up, as the UAS side keeps it for in-dialog requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Answered {
    /// What the answer negotiated.
    pub media: Negotiated,
    /// The callee's To (with its tag), as in our in-dialog requests.
    pub remote: String,
    /// Our From (with our tag).
    pub local: String,
    /// The remote target and route set (RFC 3261 12.1.2).
    pub target: String,
    pub route: Vec<String>,
    /// The session interval, when the callee refreshes (else we do, or nobody).
    pub peer_refreshes: Option<Duration>,
}

/// What happened to the call.
#[derive(Clone, Debug, PartialEq)]
pub enum DialEvent {
    /// 180 or 183 (once).
    Ringing,
    /// A 2xx whose SDP we take, acknowledged.
    Answered(Box<Answered>),
    /// The call did not come about: `reason` (`busy`, `no_answer`, `rejected`,
    /// `timeout`, `no_common_codec`, `unreachable`, `cancelled`) and the callee's code.
    Failed {
        reason: &'static str,
        code: Option<u16>,
    },
    /// An answered call ended by the dial itself (a refresh that failed), BYE sent.
    Ended { reason: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response came.
    Proceeding,
    /// We gave up (timeout, hang-up, transport): CANCEL once a provisional came, and
    /// wait for the INVITE's final response to ACK it (a 2xx gets a BYE too).
    Abandoning { provisional: bool },
    /// 2xx ACKed: the call is up.
    Confirmed,
    /// Over: only retransmissions of the last 2xx (ACKed again) and the answers to
    /// our CANCEL/BYE are left.
    Done,
}

/// A client transaction we may retransmit: its message, the next retransmission
/// (`None` over TCP or once it may not be repeated) and its deadline.
#[derive(Clone, Debug)]
struct ClientTx {
    cseq: u32,
    out: Transmit,
    resend: Option<(Instant, Duration)>,
    deadline: Instant,
    /// Non-INVITE (timer E) retransmissions cap at T2; INVITE (timer A) do not.
    capped: bool,
}

impl ClientTx {
    fn new(now: Instant, cseq: u32, out: Transmit, reliable: bool, capped: bool) -> ClientTx {
        ClientTx {
            cseq,
            out,
            resend: (!reliable).then_some((now + T1, T1)),
            deadline: now + TX_TIMEOUT,
            capped,
        }
    }

    fn timeout(&self) -> Instant {
        self.resend
            .map_or(self.deadline, |(at, _)| at.min(self.deadline))
    }

    /// Its retransmission if one is due at `now`.
    fn due(&mut self, now: Instant) -> Option<Transmit> {
        let (at, every) = self.resend?;
        if now < at {
            return None;
        }
        let next = if self.capped {
            (every * 2).min(T2)
        } else {
            every * 2
        };
        self.resend = Some((now + next, next));
        Some(self.out.clone())
    }
}

/// One outgoing call. See the module documentation.
#[derive(Debug)]
pub struct Dial {
    setup: DialSetup,
    state: State,
    /// Our From header value, with our tag.
    from: String,
    /// The callee's To: without tag until a response gives one.
    to: String,
    /// Our last CSeq number.
    cseq: u32,
    branches: u32,
    /// The INVITE (or refreshing re-INVITE) waiting for its final response.
    invite: Option<ClientTx>,
    cancel: Option<ClientTx>,
    bye: Option<ClientTx>,
    /// The ACK for the last 2xx (by CSeq), sent again for its retransmissions.
    ack: Option<(u32, Transmit)>,
    /// The branch of the first INVITE (CANCEL and a non-2xx ACK reuse it).
    invite_branch: String,
    /// When the no-answer timeout fires.
    ring_deadline: Instant,
    /// The dialog, once confirmed: remote target, route set, our SDP's version.
    target: String,
    route: Vec<String>,
    sdp_version: u64,
    /// When we refresh the session next, and its interval.
    refresh: Option<(Instant, Duration)>,
    rang: bool,
    /// Whether the call counts as failed (reason decided) before its end.
    failure: Option<(&'static str, Option<u16>)>,
    out: VecDeque<Transmit>,
    events: VecDeque<DialEvent>,
}

/// Our SDP's session id for a call whose From tag is `tag`.
fn session_id(tag: &str) -> u64 {
    tag.bytes()
        .fold(1u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        >> 1
}

/// Why a final response `code` refuses the call.
fn failure_reason(code: u16) -> &'static str {
    match code {
        486 | 600 => "busy",
        408 | 480 => "no_answer",
        _ => "rejected",
    }
}

impl Dial {
    /// Start the call at `now`: the INVITE is queued.
    pub fn new(now: Instant, setup: DialSetup) -> Dial {
        let from = format!("<{}>;tag={}", setup.from, setup.local_tag);
        let to = format!("<{}>", setup.to);
        let mut d = Dial {
            from,
            to,
            cseq: 0,
            branches: 0,
            state: State::Calling,
            invite: None,
            cancel: None,
            bye: None,
            ack: None,
            invite_branch: String::new(),
            ring_deadline: now + setup.timeout,
            target: setup.to.clone(),
            route: Vec::new(),
            sdp_version: 1,
            refresh: None,
            rang: false,
            failure: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            setup,
        };
        d.cseq = 1;
        d.invite_branch = d.branch();
        let bytes = d.invite_bytes(&d.invite_branch.clone(), 1, false);
        let out = Transmit {
            hop: d.setup.to.clone(),
            bytes,
        };
        d.invite = Some(ClientTx::new(now, 1, out.clone(), d.setup.reliable, false));
        d.out.push_back(out);
        d
    }

    /// Whether nothing is left to do: the call is over and no transaction waits.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
            && self.invite.is_none()
            && self.cancel.is_none()
            && self.bye.is_none()
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK{}.{}", self.setup.local_tag, self.branches)
    }

    fn sdp_offer(&self) -> String {
        sdp::offer(
            &self.setup.codecs,
            self.setup
                .telephone_event
                .then_some(sdp::TELEPHONE_EVENT_PT),
            self.setup.local_media,
            session_id(&self.setup.local_tag),
            self.sdp_version,
        )
    }

    /// A request: `method` to `uri` on branch `branch` with CSeq `cseq`, the Route
    /// values `routes`, `extra` header lines and `body` (SDP).
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        method: &str,
        uri: &str,
        branch: &str,
        cseq: u32,
        to: &str,
        routes: &[String],
        extra: &[String],
        body: Option<&str>,
    ) -> Vec<u8> {
        let t = if self.setup.reliable { "TCP" } else { "UDP" };
        let mut m = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
            self.setup.via
        );
        for r in routes {
            m.push_str(&format!("Route: {r}\r\n"));
        }
        m.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
            self.from, self.setup.call_id
        ));
        for e in extra {
            m.push_str(e);
            m.push_str("\r\n");
        }
        m.push_str("User-Agent: tutti\r\n");
        match body {
            Some(b) => m.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => m.push_str("Content-Length: 0\r\n\r\n"),
        }
        m.into_bytes()
    }

    /// The INVITE (or, `in_dialog`, the refreshing re-INVITE) on `branch`, CSeq `cseq`.
    fn invite_bytes(&self, branch: &str, cseq: u32, in_dialog: bool) -> Vec<u8> {
        let mut extra = vec![
            format!("Contact: <{}>", self.setup.contact),
            "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS".to_string(),
        ];
        if let Some(i) = self.session_expires() {
            let refresher = if in_dialog { ";refresher=uac" } else { "" };
            extra.push("Supported: timer".to_string());
            extra.push(format!("Session-Expires: {}{refresher}", i.as_secs()));
        }
        let body = self.sdp_offer();
        if in_dialog {
            let (uri, routes, _) = in_dialog_route(&self.target, &self.route);
            self.request(
                "INVITE",
                &uri,
                branch,
                cseq,
                &self.to,
                &routes,
                &extra,
                Some(&body),
            )
        } else {
            let to = self.setup.to.clone();
            self.request(
                "INVITE",
                &to,
                branch,
                cseq,
                &self.to,
                &[],
                &extra,
                Some(&body),
            )
        }
    }

    fn session_expires(&self) -> Option<Duration> {
        self.refresh.map(|(_, i)| i).or(self.setup.session_expires)
    }

    /// An in-dialog request (`method`, a new CSeq): its transaction, queued.
    fn in_dialog(&mut self, now: Instant, method: &str) -> ClientTx {
        self.cseq += 1;
        let branch = self.branch();
        let (uri, routes, hop) = in_dialog_route(&self.target, &self.route);
        let bytes = if method == "INVITE" {
            self.invite_bytes(&branch, self.cseq, true)
        } else {
            self.request(
                method,
                &uri,
                &branch,
                self.cseq,
                &self.to,
                &routes,
                &[],
                None,
            )
        };
        let out = Transmit { hop, bytes };
        self.out.push_back(out.clone());
        ClientTx::new(now, self.cseq, out, self.setup.reliable, method != "INVITE")
    }

    /// The ACK of a 2xx with CSeq `cseq` (a new branch, to the remote target), sent and
    /// kept for the 2xx's retransmissions.
    fn ack_2xx(&mut self, cseq: u32) {
        let branch = self.branch();
        let (uri, routes, hop) = in_dialog_route(&self.target, &self.route);
        let bytes = self.request("ACK", &uri, &branch, cseq, &self.to, &routes, &[], None);
        let out = Transmit { hop, bytes };
        self.out.push_back(out.clone());
        self.ack = Some((cseq, out));
    }

    /// The ACK of a non-2xx final response to the first INVITE (same branch, its To).
    fn ack_failure(&mut self, to: &str) {
        let (uri, branch) = (self.setup.to.clone(), self.invite_branch.clone());
        let bytes = self.request("ACK", &uri, &branch, 1, to, &[], &[], None);
        self.out.push_back(Transmit { hop: uri, bytes });
    }

    fn send_cancel(&mut self, now: Instant) {
        if self.cancel.is_some() {
            return;
        }
        let (uri, branch) = (self.setup.to.clone(), self.invite_branch.clone());
        let to = format!("<{}>", self.setup.to);
        let bytes = self.request("CANCEL", &uri, &branch, 1, &to, &[], &[], None);
        let out = Transmit { hop: uri, bytes };
        self.out.push_back(out.clone());
        self.cancel = Some(ClientTx::new(now, 1, out, self.setup.reliable, true));
    }

    fn send_bye(&mut self, now: Instant) {
        if self.bye.is_none() {
            self.bye = Some(self.in_dialog(now, "BYE"));
        }
    }

    fn fail(&mut self, reason: &'static str, code: Option<u16>) {
        if self.failure.is_none() {
            self.failure = Some((reason, code));
            self.events.push_back(DialEvent::Failed { reason, code });
        }
    }

    /// Give up a call not answered yet at `now` with `reason`: CANCEL if it rings (else
    /// when it does), and wait for the INVITE's final response.
    fn abandon(&mut self, now: Instant, reason: &'static str) {
        let provisional = self.state == State::Proceeding;
        self.state = State::Abandoning { provisional };
        self.fail(reason, None);
        if provisional {
            self.send_cancel(now);
        }
        // No more INVITE retransmissions; timer B still bounds the wait.
        if let Some(tx) = &mut self.invite {
            tx.resend = None;
        }
    }

    /// The caller hangs up at `now` (the participant was deleted): CANCEL a call not
    /// answered yet, BYE an answered one.
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            State::Calling | State::Proceeding => self.abandon(now, "cancelled"),
            State::Confirmed => {
                self.state = State::Done;
                self.refresh = None;
                self.send_bye(now);
            }
            State::Abandoning { .. } | State::Done => {}
        }
    }

    /// The transport could not reach the callee (connection refused, no route): the
    /// call fails as unreachable; an answered call is over.
    pub fn transport_error(&mut self) {
        match self.state {
            State::Confirmed => self.events.push_back(DialEvent::Ended {
                reason: "unreachable",
            }),
            State::Done => {}
            _ => self.fail("unreachable", None),
        }
        self.state = State::Done;
        self.invite = None;
        self.cancel = None;
        self.bye = None;
        self.refresh = None;
    }

    /// A response to one of our requests.
    pub fn handle_response(&mut self, now: Instant, r: &Response) {
        match r.answers {
            Answers::Invite => self.invite_response(now, r),
            Answers::Cancel => {
                if r.code >= 200 {
                    self.cancel = None;
                }
            }
            Answers::Bye => {
                if r.code >= 200 && self.bye.as_ref().is_some_and(|t| t.cseq == r.cseq) {
                    self.bye = None;
                }
            }
            Answers::Other => {}
        }
    }

    fn invite_response(&mut self, now: Instant, r: &Response) {
        let pending = self.invite.as_ref().map(|t| t.cseq);
        if r.code >= 200 && r.code < 300 {
            // A retransmitted 2xx (ours ACKed already) gets the same ACK again.
            if let Some((cseq, out)) = &self.ack {
                if *cseq == r.cseq && pending != Some(r.cseq) {
                    self.out.push_back(out.clone());
                    return;
                }
            }
        }
        if pending != Some(r.cseq) {
            return; // a stray or late response
        }
        if r.code < 200 {
            // Any provisional response stops timer A and timer B (17.1.1.2).
            if let Some(tx) = &mut self.invite {
                tx.resend = None;
                tx.deadline = NEVER;
            }
            match self.state {
                State::Calling => self.state = State::Proceeding,
                State::Abandoning { provisional: false } => {
                    self.state = State::Abandoning { provisional: true };
                    self.send_cancel(now);
                }
                _ => {}
            }
            if matches!(r.code, 180 | 183) && !self.rang && self.state == State::Proceeding {
                self.rang = true;
                self.events.push_back(DialEvent::Ringing);
            }
            if r.cseq == 1 && self.state != State::Confirmed {
                self.to = r.to.clone();
            }
            return;
        }
        self.invite = None;
        if r.code >= 300 {
            if r.cseq == 1 {
                self.ack_failure(&r.to);
                self.fail(failure_reason(r.code), Some(r.code));
                self.state = State::Done;
            } else {
                self.refresh_failed(now, r.code);
            }
            return;
        }
        // 2xx: the dialog (12.1.2) from the first one; ACK it.
        self.to = r.to.clone();
        if r.cseq == 1 {
            if let Some(c) = &r.contact {
                self.target = c.clone();
            }
            self.route = r.record_route.iter().rev().cloned().collect();
        }
        self.ack_2xx(r.cseq);
        if r.cseq != 1 {
            // A refresh taken: the next one at half the (possibly new) interval.
            let interval = r
                .session_expires
                .map(|(s, _)| Duration::from_secs(s))
                .or(self.refresh.map(|(_, i)| i));
            if let Some(i) = interval {
                self.refresh = Some((now + i / 2, i));
            }
            return;
        }
        match self.state {
            State::Abandoning { .. } => {
                // The 2xx crossed our CANCEL (or came after we gave up): end it.
                self.state = State::Done;
                self.send_bye(now);
            }
            State::Calling | State::Proceeding => self.answered(now, r),
            State::Confirmed | State::Done => {}
        }
    }

    fn answered(&mut self, now: Instant, r: &Response) {
        // We offer RTP/AVP: an RTP/SAVP answer does not answer it (RFC 3264 §6).
        let media = match sdp::negotiate_among(&r.body, &self.setup.codecs) {
            Ok(m) if m.srtp.is_none() => m,
            _ => {
                self.state = State::Done;
                self.fail("no_common_codec", Some(r.code));
                self.send_bye(now);
                return;
            }
        };
        let media = Negotiated {
            telephone_event_pt: media
                .telephone_event_pt
                .filter(|_| self.setup.telephone_event),
            ..media
        };
        let peer_refreshes = match r.session_expires {
            Some((secs, true)) => {
                let i = Duration::from_secs(secs);
                self.refresh = Some((now + i / 2, i));
                None
            }
            Some((secs, false)) => Some(Duration::from_secs(secs)),
            None => None,
        };
        self.state = State::Confirmed;
        self.events
            .push_back(DialEvent::Answered(Box::new(Answered {
                media,
                remote: self.to.clone(),
                local: self.from.clone(),
                target: uri_of(&self.target),
                route: self.route.clone(),
                peer_refreshes,
            })));
    }

    fn refresh_failed(&mut self, now: Instant, code: u16) {
        if code == 491 && self.state == State::Confirmed {
            // Glare: try again shortly.
            if let Some((_, i)) = self.refresh {
                self.refresh = Some((now + REFRESH_RETRY, i));
            }
            return;
        }
        if self.state == State::Confirmed {
            self.state = State::Done;
            self.refresh = None;
            self.events.push_back(DialEvent::Ended {
                reason: "session_expired",
            });
            self.send_bye(now);
        }
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(tx) = &mut self.invite {
            if let Some(out) = tx.due(now) {
                self.out.push_back(out);
            }
            if now >= tx.deadline {
                let cseq = tx.cseq;
                self.invite = None;
                if cseq == 1 {
                    if matches!(self.state, State::Calling | State::Proceeding) {
                        self.fail("timeout", None);
                    }
                    self.state = State::Done;
                    self.cancel = None;
                } else {
                    self.refresh_failed(now, 408);
                }
            }
        }
        if matches!(self.state, State::Calling | State::Proceeding) && now >= self.ring_deadline {
            self.abandon(now, "no_answer");
        }
        for tx in [&mut self.cancel, &mut self.bye] {
            if let Some(t) = tx {
                if let Some(out) = t.due(now) {
                    self.out.push_back(out);
                }
                if now >= t.deadline {
                    *tx = None;
                }
            }
        }
        if let Some((at, _)) = self.refresh {
            if now >= at && self.state == State::Confirmed && self.invite.is_none() {
                self.sdp_version += 1;
                self.refresh = self.refresh.map(|(_, i)| (NEVER, i));
                self.invite = Some(self.in_dialog(now, "INVITE"));
            }
        }
    }

    /// When [`Dial::handle_timeout`] is next wanted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring =
            matches!(self.state, State::Calling | State::Proceeding).then_some(self.ring_deadline);
        [&self.invite, &self.cancel, &self.bye]
            .into_iter()
            .flatten()
            .map(ClientTx::timeout)
            .chain(ring)
            .chain(self.refresh.map(|(at, _)| at))
            .filter(|t| *t != NEVER)
            .min()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next thing that happened to the call.
    pub fn poll_event(&mut self) -> Option<DialEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "198.18.0.1:20002";

    fn setup(reliable: bool) -> DialSetup {
        DialSetup {
            call_id: "d1@tutti".into(),
            local_tag: "abc".into(),
            to: "sip:alice@198.18.0.2:5070".into(),
            from: "sip:tutti@198.18.0.1".into(),
            contact: "sip:tutti@198.18.0.1:5060".into(),
            via: "198.18.0.1:5060".into(),
            reliable,
            local_media: LOCAL.parse().unwrap(),
            codecs: vec![CodecKind::Pcmu, CodecKind::Pcma],
            telephone_event: true,
            timeout: Duration::from_secs(30),
            session_expires: None,
        }
    }

    fn t0() -> Instant {
        Instant::ZERO + Duration::from_secs(100)
    }

    fn at(ms: u64) -> Instant {
        t0() + Duration::from_millis(ms)
    }

    fn sent(d: &mut Dial) -> Vec<String> {
        std::iter::from_fn(|| d.poll_transmit())
            .map(|t| String::from_utf8(t.bytes).unwrap())
            .collect()
    }

    fn first_lines(d: &mut Dial) -> Vec<String> {
        sent(d)
            .iter()
            .map(|m| m.lines().next().unwrap().to_string())
            .collect()
    }

    fn events(d: &mut Dial) -> Vec<DialEvent> {
        std::iter::from_fn(|| d.poll_event()).collect()
    }

    fn answer_sdp(pts: &str) -> Vec<u8> {
        format!(
            "v=0\r\no=- 1 1 IN IP4 198.18.0.2\r\ns=-\r\nc=IN IP4 198.18.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
        .into_bytes()
    }

    fn resp(code: u16, cseq: u32, answers: Answers) -> Response {
        Response {
            code,
            cseq,
            answers,
            to: if code == 100 {
                "<sip:alice@198.18.0.2:5070>".into()
            } else {
                "<sip:alice@198.18.0.2:5070>;tag=bob".into()
            },
            contact: Some("sip:alice@198.18.0.3:5072".into()),
            record_route: vec![],
            session_expires: None,
            body: if (200..300).contains(&code) && answers == Answers::Invite {
                answer_sdp("8 101")
            } else {
                vec![]
            },
        }
    }

    /// Run the timers at every millisecond-step the dial asks for, up to `until`.
    fn run_until(d: &mut Dial, until: Instant) -> Vec<(Instant, String)> {
        let mut out = Vec::new();
        while let Some(t) = d.poll_timeout().filter(|t| *t <= until) {
            d.handle_timeout(t);
            for m in sent(d) {
                out.push((t, m.lines().next().unwrap().to_string()));
            }
        }
        out
    }

    #[test]
    fn answered_calls_are_acked_to_the_remote_target_and_join_with_the_answers_codec() {
        let mut d = Dial::new(t0(), setup(false));
        let invite = sent(&mut d).remove(0);
        assert!(
            invite.starts_with("INVITE sip:alice@198.18.0.2:5070 SIP/2.0\r\n"),
            "{invite}"
        );
        assert!(
            invite.contains("From: <sip:tutti@198.18.0.1>;tag=abc\r\n"),
            "{invite}"
        );
        assert!(invite.contains("CSeq: 1 INVITE\r\n"), "{invite}");
        assert!(
            invite.contains("m=audio 20002 RTP/AVP 0 8 101\r\n"),
            "{invite}"
        );
        assert!(invite.contains("c=IN IP4 198.18.0.1\r\n"), "{invite}");
        d.handle_response(at(10), &resp(100, 1, Answers::Invite));
        d.handle_response(at(20), &resp(180, 1, Answers::Invite));
        d.handle_response(at(25), &resp(183, 1, Answers::Invite));
        assert_eq!(events(&mut d), vec![DialEvent::Ringing], "ringing once");
        let mut ok = resp(200, 1, Answers::Invite);
        ok.record_route = vec!["<sip:198.18.0.9;lr>".into(), "<sip:198.18.0.8;lr>".into()];
        d.handle_response(at(900), &ok);
        let ack = sent(&mut d);
        assert_eq!(ack.len(), 1);
        assert!(
            ack[0].starts_with("ACK sip:alice@198.18.0.3:5072 SIP/2.0\r\n"),
            "{}",
            ack[0]
        );
        assert!(ack[0].contains("CSeq: 1 ACK\r\n"), "{}", ack[0]);
        assert!(ack[0].contains("To: <sip:alice@198.18.0.2:5070>;tag=bob\r\n"));
        // The route set is the Record-Route reversed.
        assert!(
            ack[0].contains("Route: <sip:198.18.0.8;lr>\r\nRoute: <sip:198.18.0.9;lr>\r\n"),
            "{}",
            ack[0]
        );
        assert!(
            !ack[0].contains(&d.invite_branch),
            "the 2xx ACK is a new transaction"
        );
        match events(&mut d).as_slice() {
            [DialEvent::Answered(a)] => {
                assert_eq!(a.media.codec, CodecKind::Pcma);
                assert_eq!(a.media.telephone_event_pt, Some(101));
                assert_eq!(a.media.remote, "198.18.0.2:6000".parse().unwrap());
                assert_eq!(a.target, "sip:alice@198.18.0.3:5072");
                assert_eq!(a.remote, "<sip:alice@198.18.0.2:5070>;tag=bob");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.state, State::Confirmed);
        // A retransmitted 2xx is ACKed again, and nothing else happens.
        d.handle_response(at(1400), &ok);
        assert_eq!(sent(&mut d), ack);
        assert!(events(&mut d).is_empty());
        // No timers but none: no refresh asked.
        assert_eq!(d.poll_timeout(), None);
        // Hang-up sends BYE (CSeq 2); its 200 ends the dial.
        d.hangup(at(5000));
        let bye = sent(&mut d);
        assert!(bye[0].starts_with("BYE sip:alice@198.18.0.3:5072 SIP/2.0\r\n"));
        assert!(bye[0].contains("CSeq: 2 BYE\r\n"));
        assert!(!d.is_done());
        d.handle_response(at(5010), &resp(200, 2, Answers::Bye));
        assert!(d.is_done());
    }

    #[test]
    fn invites_are_retransmitted_on_timer_a_until_timer_b_over_udp_only() {
        let long = |reliable| DialSetup {
            timeout: Duration::from_secs(60),
            ..setup(reliable)
        };
        let mut d = Dial::new(t0(), long(false));
        sent(&mut d);
        let out = run_until(&mut d, at(40_000));
        let times: Vec<u64> = out
            .iter()
            .map(|(t, _)| t.saturating_since(t0()).as_millis() as u64)
            .collect();
        assert_eq!(times, [500, 1500, 3500, 7500, 15500, 31500]);
        assert!(out.iter().all(|(_, l)| l.starts_with("INVITE ")));
        assert_eq!(
            events(&mut d),
            vec![DialEvent::Failed {
                reason: "timeout",
                code: None
            }]
        );
        assert!(d.is_done());
        // Over TCP: no retransmission, timer B all the same.
        let mut d = Dial::new(t0(), long(true));
        sent(&mut d);
        assert!(run_until(&mut d, at(40_000)).is_empty());
        assert_eq!(events(&mut d).len(), 1);
        assert!(d.is_done());
    }

    #[test]
    fn busy_and_rejected_calls_are_acked_on_the_invites_branch() {
        for (code, reason) in [
            (486, "busy"),
            (600, "busy"),
            (404, "rejected"),
            (503, "rejected"),
            (480, "no_answer"),
        ] {
            let mut d = Dial::new(t0(), setup(false));
            sent(&mut d);
            d.handle_response(at(10), &resp(180, 1, Answers::Invite));
            d.handle_response(at(20), &resp(code, 1, Answers::Invite));
            let ack = sent(&mut d);
            assert_eq!(ack.len(), 1);
            assert!(ack[0].starts_with("ACK sip:alice@198.18.0.2:5070 SIP/2.0\r\n"));
            assert!(
                ack[0].contains(&format!("branch={};", d.invite_branch)),
                "{}",
                ack[0]
            );
            assert!(ack[0].contains(";tag=bob\r\n"));
            assert_eq!(
                events(&mut d),
                vec![
                    DialEvent::Ringing,
                    DialEvent::Failed {
                        reason,
                        code: Some(code)
                    }
                ]
            );
            assert!(d.is_done());
            assert_eq!(d.poll_timeout(), None);
        }
    }

    #[test]
    fn no_answer_is_cancelled_at_the_timeout() {
        let mut d = Dial::new(
            t0(),
            DialSetup {
                timeout: Duration::from_millis(1000),
                ..setup(false)
            },
        );
        sent(&mut d);
        d.handle_response(at(50), &resp(180, 1, Answers::Invite));
        assert_eq!(d.poll_timeout(), Some(at(1000)));
        let out = run_until(&mut d, at(1000));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, "CANCEL sip:alice@198.18.0.2:5070 SIP/2.0");
        assert_eq!(
            events(&mut d),
            vec![
                DialEvent::Ringing,
                DialEvent::Failed {
                    reason: "no_answer",
                    code: None
                }
            ]
        );
        // The CANCEL is retransmitted until answered; then the 487 is ACKed.
        let again = run_until(&mut d, at(1600));
        assert_eq!(again.len(), 1);
        assert!(again[0].1.starts_with("CANCEL "));
        d.handle_response(at(1700), &resp(200, 1, Answers::Cancel));
        assert!(run_until(&mut d, at(5000)).is_empty());
        d.handle_response(at(1710), &resp(487, 1, Answers::Invite));
        assert_eq!(
            first_lines(&mut d),
            ["ACK sip:alice@198.18.0.2:5070 SIP/2.0"]
        );
        assert!(events(&mut d).is_empty(), "failed once");
        assert!(d.is_done());
    }

    #[test]
    fn no_answer_without_a_provisional_response_cancels_when_one_comes() {
        let mut d = Dial::new(
            t0(),
            DialSetup {
                timeout: Duration::from_millis(700),
                ..setup(false)
            },
        );
        sent(&mut d);
        let out = run_until(&mut d, at(700));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].1.starts_with("INVITE "),
            "only the retransmission at 500 ms"
        );
        assert_eq!(events(&mut d).len(), 1);
        assert!(run_until(&mut d, at(5000)).is_empty(), "no more INVITEs");
        d.handle_response(at(5000), &resp(180, 1, Answers::Invite));
        assert_eq!(
            first_lines(&mut d),
            ["CANCEL sip:alice@198.18.0.2:5070 SIP/2.0"]
        );
        assert!(events(&mut d).is_empty(), "no ringing after the failure");
    }

    #[test]
    fn a_200_crossing_the_cancel_is_acked_and_ended_with_bye() {
        let mut d = Dial::new(t0(), setup(false));
        sent(&mut d);
        d.handle_response(at(10), &resp(180, 1, Answers::Invite));
        d.hangup(at(2000));
        assert_eq!(
            first_lines(&mut d),
            ["CANCEL sip:alice@198.18.0.2:5070 SIP/2.0"]
        );
        d.handle_response(at(2010), &resp(200, 1, Answers::Invite));
        d.handle_response(at(2011), &resp(481, 1, Answers::Cancel));
        let lines = first_lines(&mut d);
        assert_eq!(
            lines,
            [
                "ACK sip:alice@198.18.0.3:5072 SIP/2.0",
                "BYE sip:alice@198.18.0.3:5072 SIP/2.0"
            ]
        );
        assert_eq!(
            events(&mut d),
            vec![
                DialEvent::Ringing,
                DialEvent::Failed {
                    reason: "cancelled",
                    code: None
                }
            ]
        );
        d.handle_response(at(2020), &resp(200, 2, Answers::Bye));
        assert!(d.is_done());
    }

    #[test]
    fn deleted_while_ringing_cancels_and_acks_the_487() {
        let mut d = Dial::new(t0(), setup(true));
        sent(&mut d);
        d.handle_response(at(10), &resp(183, 1, Answers::Invite));
        d.hangup(at(300));
        d.hangup(at(301));
        assert_eq!(
            first_lines(&mut d),
            ["CANCEL sip:alice@198.18.0.2:5070 SIP/2.0"]
        );
        d.handle_response(at(310), &resp(200, 1, Answers::Cancel));
        d.handle_response(at(311), &resp(487, 1, Answers::Invite));
        assert_eq!(
            first_lines(&mut d),
            ["ACK sip:alice@198.18.0.2:5070 SIP/2.0"]
        );
        assert_eq!(
            events(&mut d).last(),
            Some(&DialEvent::Failed {
                reason: "cancelled",
                code: None
            })
        );
        assert!(d.is_done());
    }

    #[test]
    fn an_answer_without_a_common_codec_is_acked_then_ended() {
        let mut d = Dial::new(
            t0(),
            DialSetup {
                codecs: vec![CodecKind::Pcmu],
                ..setup(false)
            },
        );
        sent(&mut d);
        d.handle_response(at(10), &resp(200, 1, Answers::Invite));
        assert_eq!(
            first_lines(&mut d),
            [
                "ACK sip:alice@198.18.0.3:5072 SIP/2.0",
                "BYE sip:alice@198.18.0.3:5072 SIP/2.0"
            ]
        );
        assert_eq!(
            events(&mut d),
            vec![DialEvent::Failed {
                reason: "no_common_codec",
                code: Some(200)
            }]
        );
        // An unanswered BYE gives up after timer F.
        run_until(&mut d, at(40_000));
        assert!(d.is_done());
    }

    #[test]
    fn an_srtp_answer_to_our_rtp_offer_is_acked_then_ended() {
        let mut d = Dial::new(t0(), setup(false));
        sent(&mut d);
        let key = crate::srtp::generate_key(crate::srtp::Suite::AesCm128HmacSha1_80);
        let sdp = String::from_utf8(answer_sdp("8 101")).unwrap();
        let crypto = format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            crate::srtp::encode_key(&key)
        );
        let answer = Response {
            body: (sdp.replace("RTP/AVP", "RTP/SAVP") + &crypto).into_bytes(),
            ..resp(200, 1, Answers::Invite)
        };
        d.handle_response(at(10), &answer);
        assert_eq!(
            events(&mut d),
            vec![DialEvent::Failed {
                reason: "no_common_codec",
                code: Some(200)
            }]
        );
    }

    #[test]
    fn the_refresher_sends_the_same_sdp_again_at_half_the_interval() {
        let mut d = Dial::new(
            t0(),
            DialSetup {
                session_expires: Some(Duration::from_secs(1800)),
                ..setup(false)
            },
        );
        let invite = sent(&mut d).remove(0);
        assert!(invite.contains("Session-Expires: 1800\r\n"), "{invite}");
        let mut ok = resp(200, 1, Answers::Invite);
        ok.session_expires = Some((120, true));
        d.handle_response(at(10), &ok);
        sent(&mut d);
        assert!(
            matches!(events(&mut d).as_slice(), [DialEvent::Answered(a)] if a.peer_refreshes.is_none())
        );
        assert_eq!(d.poll_timeout(), Some(at(10 + 60_000)));
        let out = run_until(&mut d, at(60_010));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, "INVITE sip:alice@198.18.0.3:5072 SIP/2.0");
        let offer = |m: &str| {
            m.split("\r\n\r\n")
                .nth(1)
                .unwrap()
                .replace(" 1 2 IN", " 1 1 IN")
        };
        let reinvite = {
            // The refresh is the one retransmitted next.
            let again = {
                d.handle_timeout(at(60_510));
                sent(&mut d).remove(0)
            };
            assert!(again.contains("CSeq: 2 INVITE\r\n"), "{again}");
            assert!(
                again.contains("Session-Expires: 120;refresher=uac\r\n"),
                "{again}"
            );
            assert!(again.contains("To: <sip:alice@198.18.0.2:5070>;tag=bob\r\n"));
            again
        };
        let version = |m: &str| {
            m.lines()
                .find(|l| l.starts_with("o="))
                .unwrap()
                .split(' ')
                .nth(2)
                .unwrap()
                .to_string()
        };
        assert_eq!(version(&reinvite), "2");
        assert_eq!(
            offer(&reinvite).replace(" 2 IN", " 1 IN"),
            offer(&invite).replace(" 2 IN", " 1 IN")
        );
        // Its 2xx is ACKed (CSeq 2) and the next refresh is due half an interval on.
        let mut ok2 = resp(200, 2, Answers::Invite);
        ok2.session_expires = Some((120, true));
        d.handle_response(at(60_600), &ok2);
        let ack = sent(&mut d);
        assert!(ack[0].starts_with("ACK ") && ack[0].contains("CSeq: 2 ACK\r\n"));
        assert_eq!(d.poll_timeout(), Some(at(120_600)));
        assert!(events(&mut d).is_empty());
        // A refused refresh ends the call with BYE.
        run_until(&mut d, at(120_600));
        d.handle_response(at(120_700), &resp(481, 3, Answers::Invite));
        assert_eq!(
            first_lines(&mut d),
            ["BYE sip:alice@198.18.0.3:5072 SIP/2.0"]
        );
        assert_eq!(
            events(&mut d),
            vec![DialEvent::Ended {
                reason: "session_expired"
            }]
        );
    }

    #[test]
    fn a_peer_refresher_is_reported_and_unreachable_calls_fail() {
        let mut d = Dial::new(t0(), setup(false));
        sent(&mut d);
        let mut ok = resp(200, 1, Answers::Invite);
        ok.session_expires = Some((90, false));
        d.handle_response(at(10), &ok);
        assert!(matches!(events(&mut d).as_slice(),
            [DialEvent::Answered(a)] if a.peer_refreshes == Some(Duration::from_secs(90))));
        let mut d = Dial::new(t0(), setup(true));
        d.transport_error();
        assert_eq!(
            events(&mut d),
            vec![DialEvent::Failed {
                reason: "unreachable",
                code: None
            }]
        );
        assert!(d.is_done());
        // Stray responses (another CSeq) change nothing.
        let mut d = Dial::new(t0(), setup(false));
        d.handle_response(at(1), &resp(200, 7, Answers::Invite));
        assert!(events(&mut d).is_empty());
    }
}
