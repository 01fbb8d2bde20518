//! The user agent (UAS side): every request in, its answer out. Decisions about who may
//! call, what an offer negotiates to and what a dialog does to the conference are the
//! control core's ([`tutti_control_core::sip`]); this module speaks SIP around them:
//! parse (rsipstack), check, answer, keep the dialogs, absorb retransmissions, resend
//! a 2xx over UDP until its ACK, and send BYE (to the caller's Contact) when a
//! participant is deleted elsewhere (API, orphan reclamation, conference deletion).
//! Dial-outs ([`Ua::dial`]) are the core's sans-IO [`Dial`]s: this module sends what
//! they queue, feeds them the responses and runs their timers ([`Ua::drive_dials`]);
//! once answered, a dialled call is one of the dialogs above.

use super::{SipConfig, SipMetrics, Transport};
use crate::events::Delivery;
use crate::ControlState;
use futures_util::StreamExt;
use rsipstack::sip::{Headers, HeadersExt, Method, Request, SipMessage};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tutti_control_core::sip::apps::{App, AppAction, AppCall, Route};
use tutti_control_core::sip::dial::{
    self, Dial, DialEvent, DialSetup, T1, T2, TX_TIMEOUT as ACK_WAIT,
};
use tutti_control_core::sip::digest::{Digest, Verdict};
use tutti_control_core::sip::sdp;
use tutti_control_core::sip::{
    in_dialog_route, rtp_deadline, session_deadline, session_interval, uri_of, Admission, CallInfo,
    DialOffer, Policy, Refusal, MIN_SE_SECS,
};
use tutti_dataplane::clock::Instant;

/// What we allow, accept and support (OPTIONS, 405).
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS";
/// Answers kept for retransmitted requests at most, and for how long.
const ANSWERS_KEPT: usize = 16_384;
const ANSWER_TTL: Duration = Duration::from_secs(32);
/// How long a dial-out over TCP may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call rings (180) before it is answered: the window in which a CANCEL
/// ends it with 487 before it touches the conference.
pub const RING: Duration = Duration::from_millis(200);

/// Where a message came from, and how to answer it.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A datagram source on one of our UDP sockets.
    Udp {
        socket: Arc<UdpSocket>,
        addr: SocketAddr,
    },
    /// A TCP connection (its writer task takes whole messages).
    Tcp {
        tx: mpsc::UnboundedSender<Vec<u8>>,
        addr: SocketAddr,
        local: SocketAddr,
    },
}

impl Peer {
    fn addr(&self) -> SocketAddr {
        match self {
            Peer::Udp { addr, .. } | Peer::Tcp { addr, .. } => *addr,
        }
    }

    fn local(&self) -> Option<SocketAddr> {
        match self {
            Peer::Udp { socket, .. } => socket.local_addr().ok(),
            Peer::Tcp { local, .. } => Some(*local),
        }
    }

    fn transport(&self) -> Transport {
        match self {
            Peer::Udp { .. } => Transport::Udp,
            Peer::Tcp { .. } => Transport::Tcp,
        }
    }

    /// Send an in-dialog request to `hop` (a SIP URI: the dialog's first route, else its
    /// remote target, see [`in_dialog_route`]): over UDP from the dialog's socket to its
    /// address (a name is resolved first), not to where the dialog's requests came from;
    /// over TCP through the dialog's connection (RFC 5923 reuse: a client behind NAT is
    /// reachable only there).
    fn send_request(&self, hop: &str, bytes: Vec<u8>) {
        let Peer::Udp { socket, .. } = self else {
            return self.send(bytes);
        };
        let Some((host, port)) = next_hop(hop) else {
            tracing::warn!(
                hop,
                "in-dialog request not sent: its next hop is no SIP URI"
            );
            return;
        };
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Peer::Udp {
                socket: socket.clone(),
                addr: SocketAddr::new(ip, port),
            }
            .send(bytes);
        }
        let socket = socket.clone();
        tokio::spawn(async move {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(mut addrs) => match addrs.next() {
                    Some(addr) => Peer::Udp { socket, addr }.send(bytes),
                    None => tracing::warn!(host, "in-dialog request not sent: no address"),
                },
                Err(e) => {
                    tracing::warn!(host, error = %e, "in-dialog request not sent: not resolved")
                }
            }
        });
    }

    /// Send one message; a full socket buffer or a closed connection loses it (SIP
    /// retransmits over UDP; a TCP peer that went away has no dialog to answer).
    fn send(&self, bytes: Vec<u8>) {
        let sent = match self {
            Peer::Udp { socket, addr } => socket.try_send_to(&bytes, *addr).is_ok(),
            Peer::Tcp { tx, .. } => tx.send(bytes).is_ok(),
        };
        if !sent {
            tracing::debug!(peer = %self.addr(), "SIP message not sent");
        }
    }
}

/// One dialog.
#[derive(Debug)]
struct Call {
    conf: String,
    pid: String,
    call_id: String,
    /// Our tag (To of the INVITE).
    local_tag: String,
    /// The From and To header values of the INVITE, To with our tag.
    from: String,
    to: String,
    /// The remote target (the caller's Contact, else its From URI) and the route set
    /// (the INVITE's Record-Route entries, in order): where in-dialog requests go.
    target: String,
    route: Vec<String>,
    peer: Peer,
    acked: Arc<AtomicBool>,
    /// Our SDP's session id and version (a re-INVITE answer bumps it).
    sdp: (u64, u64),
    local_media: SocketAddrV4,
    /// Our next CSeq for requests we send in the dialog.
    cseq: u32,
    /// RFC 4028: the session interval and the last refresh (the caller refreshes).
    timer: Option<(Duration, Instant)>,
    /// When its participant fell quiet (no RTP, no SID before, not on hold).
    quiet_since: Option<Instant>,
    /// The application it runs (its conference is its own), if it was not a join.
    app: Option<AppCall>,
}

/// A request as retransmissions repeat it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct TxKey {
    call_id: String,
    cseq: u32,
    method: String,
    branch: String,
}

/// A call ringing, not answered yet.
#[derive(Debug)]
struct Ringing {
    req: Request,
    key: TxKey,
    tag: String,
    conf: String,
    /// The application it will run (`conf` is then `app-<tag>`, created for it).
    app: Option<App>,
    media: sdp::Negotiated,
    /// The session interval (RFC 4028), if the caller has timers.
    interval: Option<Duration>,
    peer: Peer,
}

#[derive(Debug)]
struct Inner {
    admission: Admission,
    calls: HashMap<String, Call>,
    ringing: HashMap<String, Ringing>,
    by_participant: HashMap<(String, String), String>,
    answers: HashMap<TxKey, (Instant, Vec<u8>)>,
    next_tag: u64,
    /// Dial-outs by Call-ID: calling, ringing, or answered (then also in `calls`).
    dials: HashMap<String, Dialing>,
    /// Our UDP sockets (dial-outs are sent from the first).
    udp: Vec<Arc<UdpSocket>>,
    /// Digest authentication of new calls (`sip.auth`).
    digest: Option<Digest>,
}

impl Inner {
    /// Calls up or on their way: answered, ringing in, dialled out and not answered.
    fn active(&self) -> usize {
        let pending_dials = self
            .dials
            .keys()
            .filter(|id| !self.calls.contains_key(*id))
            .count();
        self.calls.len() + self.ringing.len() + pending_dials
    }
}

/// A dial-out and what it is for.
#[derive(Debug)]
struct Dialing {
    dial: Dial,
    conf: String,
    pid: String,
    info: CallInfo,
    /// Where its requests go: our UDP socket (each to its next hop), or its TCP
    /// connection (`None` while it is being opened).
    peer: Option<Peer>,
    local_media: SocketAddrV4,
    /// Whether its participant is still ours to report on (not deleted).
    live: bool,
}

/// A dial-out request (`POST /v1/conferences/{id}/dial`), validated.
#[derive(Clone, Debug, PartialEq)]
pub struct DialRequest {
    /// The callee's SIP URI.
    pub to: String,
    /// Our From URI (else `sip:tutti@<our address>`).
    pub from: Option<String>,
    pub offer: DialOffer,
    /// How long it may ring.
    pub timeout: Duration,
}

/// Why a dial-out was not started.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The request names something we cannot call (422).
    #[error("{0}")]
    Invalid(String),
    /// No room for another call, or no transport to call on (503).
    #[error("{0}")]
    Unavailable(String),
    /// The control core refused (its mapping).
    #[error(transparent)]
    Control(#[from] tutti_control_core::ControlError),
}

/// The user agent.
pub struct Ua {
    state: ControlState,
    cfg: SipConfig,
    metrics: Arc<SipMetrics>,
    inner: Mutex<Inner>,
    /// Wakes [`Ua::drive_dials`] when a dial's next timeout may have moved.
    dial_timer: tokio::sync::Notify,
}

/// The request's headers we answer with, and what we need of them.
pub struct Parts<'a> {
    req: &'a Request,
    call_id: String,
    cseq: u32,
    to_tag: Option<String>,
    branch: String,
}

fn header_line(h: &impl std::fmt::Display) -> String {
    h.to_string()
}

/// The value of the first of `headers` named `name` or its compact form `short`.
fn header_value(headers: &Headers, name: &str, short: &str) -> Option<String> {
    headers.iter().find_map(|h| {
        let line = header_line(h);
        let (n, v) = line.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(short))
            .then(|| v.trim().to_string())
    })
}

/// What the request says of RFC 4028 timers: its Session-Expires (seconds) and
/// whether it supports `timer`.
fn timer_request(req: &Request) -> (Option<u64>, bool) {
    let asked = header_value(&req.headers, "Session-Expires", "x")
        .and_then(|v| v.split(';').next().and_then(|n| n.trim().parse().ok()));
    let supported = header_value(&req.headers, "Supported", "k")
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")));
    (asked, supported)
}

/// The Session-Expires and Require lines of a 2xx for `interval`.
fn timer_headers(interval: Option<Duration>) -> Vec<String> {
    interval.map_or_else(Vec::new, |i| {
        vec![
            format!("Session-Expires: {};refresher=uac", i.as_secs()),
            "Require: timer".to_string(),
        ]
    })
}

/// The entries of a comma-separated header value (commas inside `<>` or quotes do not
/// separate).
fn split_list(value: &str) -> Vec<String> {
    let (mut out, mut cur, mut angle, mut quoted) = (Vec::new(), String::new(), false, false);
    for c in value.chars() {
        match c {
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !angle && !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

/// The Record-Route entries of `headers`, in order: the route set of a dialog we
/// answer (RFC 3261 12.1.1), reversed of one we set up (12.1.2).
fn route_set(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let line = header_line(h);
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("Record-Route")
                .then(|| split_list(v))
        })
        .flatten()
        .collect()
}

/// The host and port a request to SIP URI `target` goes to (the port 5060, or 5061
/// for `sips:`, if it names none); `None` if it is not a SIP URI.
fn next_hop(target: &str) -> Option<(String, u16)> {
    use rsipstack::sip::{Host, Scheme};
    let uri = rsipstack::sip::Uri::try_from(target).ok()?;
    let default = match uri.scheme {
        Some(Scheme::Sip) => 5060,
        Some(Scheme::Sips) => 5061,
        _ => return None,
    };
    let port = uri.host_with_port.port.map_or(default, |p| p.value());
    let host = match uri.host_with_port.host {
        Host::IpAddr(ip) => ip.to_string(),
        Host::Domain(d) => d.0,
    };
    Some((host, port))
}

/// What a received message is, before any state is touched: the reading half of
/// [`Ua::handle`] (which the `sip` fuzz target drives).
#[derive(Debug)]
pub enum Incoming {
    /// A request (its headers still to be checked by [`parts`]).
    Request(Box<Request>),
    /// A response (to a request we sent).
    Response(Box<rsipstack::sip::Response>),
    /// Not SIP, with why.
    Malformed(String),
}

/// Read one message.
pub fn read(raw: &[u8]) -> Incoming {
    match SipMessage::try_from(raw) {
        Ok(SipMessage::Request(r)) => Incoming::Request(Box::new(r)),
        Ok(SipMessage::Response(r)) => Incoming::Response(Box::new(r)),
        Err(e) => Incoming::Malformed(e.to_string()),
    }
}

/// The 400 for a request we could not read, built from its raw text (copying Via,
/// From, To, Call-ID and CSeq as they are); `None` without a Via to answer along.
pub fn bad_request(raw: &[u8], why: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let wanted = ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"];
    let copied: Vec<(String, &str)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| {
            let (name, _) = line.split_once(':')?;
            let name = name.trim().to_ascii_lowercase();
            wanted.contains(&name.as_str()).then_some((name, line))
        })
        .collect();
    if !copied.iter().any(|(n, _)| n == "via" || n == "v") {
        return None;
    }
    let reason: String = why.chars().filter(|c| !c.is_control()).take(120).collect();
    let mut out = format!("SIP/2.0 400 Bad Request ({reason})\r\n");
    for (_, l) in copied {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Server: tutti\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// What we need of a request; a reason if it lacks it.
pub fn parts<'a>(req: &'a Request) -> Result<Parts<'a>, String> {
    let call_id = req
        .call_id_header()
        .map_err(|_| "Missing Call-ID header".to_string())?
        .value()
        .to_string();
    let cseq = req
        .cseq_header()
        .map_err(|_| "Missing CSeq header".to_string())?;
    let seq = cseq
        .seq()
        .map_err(|_| "Malformed CSeq header".to_string())?;
    let cseq_method = cseq
        .method()
        .map_err(|_| "Malformed CSeq header".to_string())?;
    if cseq_method != *req.method() {
        return Err("CSeq method differs from the request's".into());
    }
    let from = req
        .from_header()
        .map_err(|_| "Missing From header".to_string())?;
    from.tag()
        .map_err(|_| "Malformed From header".to_string())?;
    let to = req
        .to_header()
        .map_err(|_| "Missing To header".to_string())?;
    let to_tag = to
        .tag()
        .map_err(|_| "Malformed To header".to_string())?
        .map(|t| t.value().to_string());
    let via = req
        .via_header()
        .map_err(|_| "Missing Via header".to_string())?;
    let branch = via
        .value()
        .split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))
        .unwrap_or("")
        .to_string();
    Ok(Parts {
        req,
        call_id,
        cseq: seq,
        to_tag,
        branch,
    })
}

impl Ua {
    /// A user agent for `state`'s control core with settings `cfg`; its counters go
    /// to `metrics` (the same as `state.sip`).
    pub fn new(state: ControlState, cfg: SipConfig, metrics: Arc<SipMetrics>) -> Arc<Ua> {
        let admission = Admission::new(Policy {
            trusted: cfg.trusted.clone(),
            max_calls: cfg.max_calls,
            invite_rate: cfg.invite_rate,
            authenticate_untrusted: cfg.auth.is_some(),
        });
        let digest = cfg.auth.clone().map(Digest::new);
        let seed = state.clock.now().saturating_since(Instant::ZERO).as_nanos() as u64;
        Arc::new(Ua {
            state,
            cfg,
            metrics,
            inner: Mutex::new(Inner {
                admission,
                calls: HashMap::new(),
                ringing: HashMap::new(),
                by_participant: HashMap::new(),
                answers: HashMap::new(),
                next_tag: seed | 1,
                dials: HashMap::new(),
                udp: Vec::new(),
                digest,
            }),
            dial_timer: tokio::sync::Notify::new(),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Handle one message from `peer`.
    pub fn handle(self: &Arc<Self>, raw: &[u8], peer: &Peer) {
        let req = match read(raw) {
            Incoming::Request(r) => r,
            Incoming::Response(r) => return self.response_in(&r),
            Incoming::Malformed(why) => return self.malformed(raw, &why, peer),
        };
        let parts = match parts(&req) {
            Ok(p) => p,
            Err(reason) => {
                let method = req.method().to_string();
                return self.malformed_request(raw, &method, &reason, peer);
            }
        };
        let method = req.method().to_string();
        if *req.method() == Method::Ack {
            return self.ack(&parts);
        }
        let trusted = self.inner().admission.trusted(peer.addr().ip());
        if let Err(r) = trusted {
            return self.refuse(&parts, &r, peer);
        }
        let key = TxKey {
            call_id: parts.call_id.clone(),
            cseq: parts.cseq,
            method: method.clone(),
            branch: parts.branch.clone(),
        };
        if let Some((_, bytes)) = self.inner().answers.get(&key) {
            // A retransmission: the same answer again, not counted twice.
            return peer.send(bytes.clone());
        }
        let (code, bytes) = match req.method() {
            Method::Invite if parts.to_tag.is_none() => self.invite(&parts, key.clone(), peer),
            Method::Invite => self.reinvite(&parts),
            Method::Bye => self.bye(&parts),
            Method::Cancel => return self.cancel(&parts, key, peer),
            Method::Options => self.options(&parts),
            _ => {
                let r = Refusal::new(405, "Method Not Allowed");
                (
                    405,
                    self.response(&parts, &r, None, &[format!("Allow: {ALLOW}")], None),
                )
            }
        };
        if code >= 200 {
            self.metrics.answered(&method, code);
        }
        self.remember(key, &bytes);
        peer.send(bytes);
    }

    /// Keep `bytes` as the answer to retransmissions of `key` (for a while, and a
    /// bounded number of them).
    fn remember(&self, key: TxKey, bytes: &[u8]) {
        let now = self.state.clock.now();
        let mut inner = self.inner();
        if inner.answers.len() >= ANSWERS_KEPT {
            inner
                .answers
                .retain(|_, (at, _)| now.saturating_since(*at) < ANSWER_TTL);
        }
        if inner.answers.len() < ANSWERS_KEPT || inner.answers.contains_key(&key) {
            inner.answers.insert(key, (now, bytes.to_vec()));
        }
        self.metrics.dialogs.set(inner.calls.len() as i64);
    }

    /// A response to `p` with `r`'s code and reason, our tag added to To when given.
    fn response(
        &self,
        p: &Parts<'_>,
        r: &Refusal,
        tag: Option<&str>,
        extra: &[String],
        sdp: Option<&str>,
    ) -> Vec<u8> {
        let mut out = format!(
            "SIP/2.0 {} {}\r\n",
            r.code,
            r.reason.replace(['\r', '\n'], " ")
        );
        for h in p.req.headers.iter() {
            use rsipstack::sip::Header;
            match h {
                Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                    out.push_str(&header_line(h));
                    out.push_str("\r\n");
                }
                // A response that makes a dialog carries the request's Record-Route, in
                // order, so the caller's in-dialog requests take the same proxies
                // (RFC 3261 12.1.1).
                Header::RecordRoute(_) if (101..300).contains(&r.code) => {
                    out.push_str(&header_line(h));
                    out.push_str("\r\n");
                }
                Header::To(_) => {
                    out.push_str(&header_line(h));
                    if let (None, Some(tag)) = (&p.to_tag, tag) {
                        out.push_str(&format!(";tag={tag}"));
                    }
                    out.push_str("\r\n");
                }
                _ => {}
            }
        }
        if let Some(s) = r.retry_after {
            out.push_str(&format!("Retry-After: {s}\r\n"));
        }
        for e in extra {
            out.push_str(e);
            out.push_str("\r\n");
        }
        out.push_str("Server: tutti\r\n");
        match sdp {
            Some(body) => out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out.into_bytes()
    }

    fn refuse(&self, p: &Parts<'_>, r: &Refusal, peer: &Peer) {
        self.metrics.answered(&p.req.method().to_string(), r.code);
        let tag = self.tag();
        peer.send(self.response(p, r, Some(&tag), &[], None));
    }

    fn tag(&self) -> String {
        let mut inner = self.inner();
        // xorshift: unique enough per dialog, and never from an unseeded source.
        let mut x = inner.next_tag;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        inner.next_tag = x;
        format!("{x:016x}")
    }

    fn contact(&self, peer: &Peer) -> String {
        let local = peer
            .local()
            .map_or_else(|| "0.0.0.0:5060".to_string(), |a| a.to_string());
        let t = match peer.transport() {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("Contact: <sip:tutti@{local}{t}>")
    }

    /// A message rsipstack cannot parse: 400 if it looks like a request with the
    /// headers an answer needs, else dropped; counted either way.
    pub(crate) fn malformed(&self, raw: &[u8], why: &str, peer: &Peer) {
        let text = String::from_utf8_lossy(raw);
        let first = text.lines().next().unwrap_or("");
        if first.starts_with("SIP/") {
            return; // a broken response: nobody to answer.
        }
        let method = first.split(' ').next().unwrap_or("").to_string();
        self.malformed_request(raw, &method, why, peer);
    }

    /// 400 with `why`, built from the raw text (the parser did not give us headers).
    fn malformed_request(&self, raw: &[u8], method: &str, why: &str, peer: &Peer) {
        self.metrics.answered(method, 400);
        match bad_request(raw, why) {
            Some(bytes) => peer.send(bytes),
            None => {
                tracing::debug!(peer = %peer.addr(), why, "malformed SIP without a Via: dropped")
            }
        }
    }

    /// A new INVITE: refused at once, or ringing (180) until [`RING`] has passed, then
    /// answered ([`Ua::answer`]).
    fn invite(self: &Arc<Self>, p: &Parts<'_>, key: TxKey, peer: &Peer) -> (u16, Vec<u8>) {
        let tag = self.tag();
        let refuse = |r: Refusal| (r.code, self.response(p, &r, Some(&tag), &[], None));
        let now = self.state.clock.now();
        {
            let mut inner = self.inner();
            if inner.calls.contains_key(&p.call_id) || inner.ringing.contains_key(&p.call_id) {
                return refuse(Refusal::new(482, "Loop Detected"));
            }
            let active = inner.active();
            if let Err(r) = inner.admission.admit_invite(peer.addr().ip(), now, active) {
                return refuse(r);
            }
            let listed = inner.admission.listed(peer.addr().ip());
            if let Some(d) = inner.digest.as_mut() {
                if !(listed && d.config().untrusted_only) {
                    let auth = header_value(&p.req.headers, "Authorization", "Authorization");
                    match d.verify(now, "INVITE", auth.as_deref()) {
                        Verdict::Accepted(user) => {
                            tracing::info!(call_id = %p.call_id, user, "SIP caller authenticated")
                        }
                        Verdict::Challenge { stale } => {
                            let extra: Vec<String> = d
                                .challenge(now, stale)
                                .into_iter()
                                .map(|c| format!("WWW-Authenticate: {c}"))
                                .collect();
                            let r = Refusal::new(401, "Unauthorized");
                            return (401, self.response(p, &r, Some(&tag), &extra, None));
                        }
                    }
                }
            }
        }
        let uri = p.req.uri();
        if let Some(domain) = &self.cfg.domain {
            let host = uri.host_with_port.host.to_string();
            let ours = self
                .cfg
                .listen
                .iter()
                .any(|l| l.addr.ip().to_string() == host);
            if !host.eq_ignore_ascii_case(domain) && !ours {
                return refuse(Refusal::new(404, "Not our domain"));
            }
        }
        let to_user = p
            .req
            .to_header()
            .ok()
            .and_then(|t| t.uri().ok())
            .and_then(|u| u.auth.map(|a| a.user));
        let route = self.cfg.applications.route(
            uri.auth.as_ref().map(|a| a.user.as_str()),
            to_user.as_deref(),
        );
        let (conf, app) = match route {
            Ok(Route::Join(c)) => (c, None),
            Ok(Route::App(app)) => (format!("app-{tag}"), Some(app)),
            Err(r) => return refuse(r),
        };
        if app == Some(App::Conference) {
            // The seam: the IVR (controlplane/core/src/ivr.rs) is not wired to calls yet.
            return refuse(Refusal::new(501, "Conference IVR not available yet"));
        }
        let media = match sdp::negotiate(p.req.body()) {
            Ok(m) => m,
            Err(e) => return refuse(Refusal::from(&e)),
        };
        let (asked, supported) = timer_request(p.req);
        let interval = match session_interval(self.cfg.session_expires, asked, supported) {
            Ok(i) => i,
            Err(r) => {
                let min_se = format!("Min-SE: {MIN_SE_SECS}");
                return (r.code, self.response(p, &r, Some(&tag), &[min_se], None));
            }
        };
        {
            let mut control = self.state.control();
            if app.is_none()
                && !self.cfg.auto_create
                && control.sessions().conference(&conf).is_err()
            {
                return refuse(Refusal::new(404, "No such conference"));
            }
            control.sip_ringing(&conf);
        }
        // 100 Trying stops a UAC's retransmissions over UDP; 180 says it rings.
        peer.send(self.response(p, &Refusal::new(100, "Trying"), None, &[], None));
        let call_id = p.call_id.clone();
        self.inner().ringing.insert(
            call_id.clone(),
            Ringing {
                req: p.req.clone(),
                key,
                tag: tag.clone(),
                conf,
                app,
                media,
                interval,
                peer: peer.clone(),
            },
        );
        let ua = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RING).await;
            ua.answer(&call_id);
        });
        let ringing = Refusal::new(180, "Ringing");
        (
            180,
            self.response(p, &ringing, Some(&tag), &[self.contact(peer)], None),
        )
    }

    /// Answer call `call_id` if it still rings: join its conference, 200 with our SDP.
    fn answer(self: &Arc<Self>, call_id: &str) {
        let Some(r) = self.inner().ringing.remove(call_id) else {
            return; // cancelled
        };
        let Ok(p) = parts(&r.req) else {
            return;
        };
        let (code, bytes) = self.accept(&p, &r);
        self.metrics.answered("INVITE", code);
        self.remember(r.key, &bytes);
        r.peer.send(bytes);
    }

    /// Join call `r`, which rang, to its conference; the final response.
    fn accept(self: &Arc<Self>, p: &Parts<'_>, r: &Ringing) -> (u16, Vec<u8>) {
        let (tag, conf, media, peer, interval) = (&r.tag, &r.conf, &r.media, &r.peer, r.interval);
        let refuse = |r: Refusal| (r.code, self.response(p, &r, Some(tag), &[], None));
        let header =
            |name: &str| header_value(&p.req.headers, name, name).map(|v| format!("{name}: {v}"));
        let from = header("From").unwrap_or_default();
        let to = format!("{};tag={tag}", header("To").unwrap_or_default());
        let info = CallInfo {
            call_id: p.call_id.clone(),
            from: uri_of(from.trim_start_matches("From:")),
            to: uri_of(to.trim_start_matches("To:")),
        };
        let settings = tutti_dataplane::conference::ParticipantSettings {
            echo: r.app == Some(App::Echo),
            ..Default::default()
        };
        let create = self.cfg.auto_create || r.app.is_some();
        let joined = self
            .state
            .control()
            .sip_join(conf, create, media, info, settings);
        let joined = match joined {
            Ok(j) => j,
            Err(e) => return refuse(Refusal::from(&e)),
        };
        let session = u64::from_str_radix(&tag[..12], 16).unwrap_or(1);
        let body = sdp::answer(media, joined.local, joined.srtp.as_ref(), session, 1);
        let target = p
            .req
            .contact_header()
            .map(|c| uri_of(c.value()))
            .unwrap_or_else(|_| uri_of(from.trim_start_matches("From:")));
        let acked = Arc::new(AtomicBool::new(false));
        let call = Call {
            call_id: p.call_id.clone(),
            conf: joined.conf.clone(),
            pid: joined.pid.clone(),
            local_tag: tag.to_string(),
            from,
            to,
            target,
            route: route_set(&p.req.headers),
            peer: peer.clone(),
            acked: acked.clone(),
            sdp: (session, 1),
            local_media: joined.local,
            cseq: 1,
            timer: interval.map(|i| (i, self.state.clock.now())),
            quiet_since: None,
            app: None,
        };
        tracing::info!(call_id = %p.call_id, conference = %joined.conf, participant = %joined.pid, "SIP call answered");
        {
            let mut inner = self.inner();
            inner
                .by_participant
                .insert((joined.conf.clone(), joined.pid.clone()), p.call_id.clone());
            inner.calls.insert(p.call_id.clone(), call);
        }
        if let Some(app) = r.app.clone() {
            let (call, first) = AppCall::start(app);
            tracing::info!(call_id = %p.call_id, app = call.app().name(), "SIP call runs an application");
            if let Some(c) = self.inner().calls.get_mut(&p.call_id) {
                c.app = Some(call);
            }
            if let Some(action) = first {
                self.app_action(&p.call_id, action);
            }
        }
        let ok = Refusal::new(200, "OK");
        let bytes = self.response(
            p,
            &ok,
            Some(tag),
            &[
                &[self.contact(peer), format!("Allow: {ALLOW}")][..],
                &timer_headers(interval),
            ]
            .concat(),
            Some(&body),
        );
        if let Peer::Udp { .. } = peer {
            self.resend_until_acked(p.call_id.clone(), bytes.clone(), peer.clone(), acked);
        }
        (200, bytes)
    }

    /// Resend a 2xx over UDP at T1, 2T1, ... T2 until its ACK; a call never
    /// acknowledged within 64*T1 ends with BYE.
    fn resend_until_acked(
        self: &Arc<Self>,
        call_id: String,
        bytes: Vec<u8>,
        peer: Peer,
        acked: Arc<AtomicBool>,
    ) {
        let ua = self.clone();
        tokio::spawn(async move {
            let mut wait = T1;
            let mut waited = Duration::ZERO;
            while waited < ACK_WAIT {
                tokio::time::sleep(wait).await;
                waited += wait;
                if acked.load(Ordering::Relaxed) {
                    return;
                }
                peer.send(bytes.clone());
                wait = (wait * 2).min(T2);
            }
            if !acked.load(Ordering::Relaxed) {
                tracing::info!(call_id = %call_id, "no ACK for the 2xx: ending the call");
                ua.end_call(&call_id, "no_ack", true);
            }
        });
    }

    fn ack(&self, p: &Parts<'_>) {
        if let Some(c) = self.inner().calls.get(&p.call_id) {
            if p.to_tag.as_deref() == Some(c.local_tag.as_str()) {
                c.acked.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The dialog `p` is in, by Call-ID and our tag.
    fn in_dialog<R>(&self, p: &Parts<'_>, f: impl FnOnce(&mut Call) -> R) -> Option<R> {
        let mut inner = self.inner();
        let c = inner.calls.get_mut(&p.call_id)?;
        if p.to_tag.as_deref() != Some(c.local_tag.as_str()) {
            return None;
        }
        Some(f(c))
    }

    fn no_dialog(&self, p: &Parts<'_>) -> (u16, Vec<u8>) {
        let r = Refusal::new(481, "Call/Transaction Does Not Exist");
        (481, self.response(p, &r, None, &[], None))
    }

    fn reinvite(&self, p: &Parts<'_>) -> (u16, Vec<u8>) {
        let now = self.state.clock.now();
        let (asked, supported) = timer_request(p.req);
        let ours = self.cfg.session_expires;
        let Some((conf, pid, (session, version), local, interval)) = self.in_dialog(p, |c| {
            c.sdp.1 += 1;
            // A re-INVITE refreshes the session (RFC 4028), with the interval it asks.
            if let Some((interval, at)) = &mut c.timer {
                *at = now;
                if let Ok(Some(i)) = session_interval(ours, asked, supported) {
                    *interval = i;
                }
            }
            let interval = c.timer.map(|(i, _)| i);
            (
                c.conf.clone(),
                c.pid.clone(),
                c.sdp,
                c.local_media,
                interval,
            )
        }) else {
            return self.no_dialog(p);
        };
        let media = match sdp::negotiate(p.req.body()) {
            Ok(m) => m,
            Err(e) => {
                let r = Refusal::from(&e);
                return (r.code, self.response(p, &r, None, &[], None));
            }
        };
        // The call keeps the SRTP keys it was answered with: a re-offer may not switch
        // between RTP and SRTP.
        let key = {
            let control = self.state.control();
            let part = control.sessions().participant(&conf, &pid);
            part.ok().and_then(|p| p.srtp).map(|k| k.local)
        };
        if media.srtp.is_some() != key.is_some() {
            let r = Refusal::new(488, "Not Acceptable Here: a call keeps RTP or SRTP");
            return (r.code, self.response(p, &r, None, &[], None));
        }
        if let Err(e) = self.state.control().sip_hold(&conf, &pid, media.hold) {
            let r = Refusal::from(&e);
            return (r.code, self.response(p, &r, None, &[], None));
        }
        if media.hold {
            // A held phone may stop sending: not a dead call.
            self.in_dialog(p, |c| c.quiet_since = None);
        }
        let body = sdp::answer(&media, local, key.as_ref(), session, version);
        let ok = Refusal::new(200, "OK");
        let extra = [vec![format!("Allow: {ALLOW}")], timer_headers(interval)].concat();
        (200, self.response(p, &ok, None, &extra, Some(&body)))
    }

    fn bye(&self, p: &Parts<'_>) -> (u16, Vec<u8>) {
        if self.in_dialog(p, |_| ()).is_none() {
            return self.no_dialog(p);
        }
        self.end_call(&p.call_id, "bye", false);
        let ok = Refusal::new(200, "OK");
        (200, self.response(p, &ok, None, &[], None))
    }

    /// CANCEL: a ringing call ends (487 to its INVITE, 200 to the CANCEL); an
    /// answered one is not affected (RFC 3261 9.2: 200); else 481.
    /// It answers the CANCEL before the INVITE (200, then 487), as UACs expect.
    fn cancel(&self, p: &Parts<'_>, key: TxKey, peer: &Peer) {
        let ringing = self.inner().ringing.remove(&p.call_id);
        let known = ringing.is_some() || self.inner().calls.contains_key(&p.call_id);
        let (code, bytes) = if known {
            let ok = Refusal::new(200, "OK");
            (200, self.response(p, &ok, None, &[], None))
        } else {
            self.no_dialog(p)
        };
        self.metrics.answered("CANCEL", code);
        self.remember(key, &bytes);
        peer.send(bytes);
        if let Some(r) = ringing {
            if let Ok(invite) = parts(&r.req) {
                let terminated = Refusal::new(487, "Request Terminated");
                let bytes = self.response(&invite, &terminated, Some(&r.tag), &[], None);
                self.metrics.answered("INVITE", 487);
                self.remember(r.key, &bytes);
                r.peer.send(bytes);
            }
            self.state.control().sip_cancelled(&r.conf);
        }
    }

    fn options(&self, p: &Parts<'_>) -> (u16, Vec<u8>) {
        let active = self.inner().active();
        let full = {
            let cap = self.state.control().sessions().capacity();
            cap.free == 0
        };
        let room = self.inner().admission.room(active);
        let r = match room {
            Ok(()) if !full => Refusal::new(200, "OK"),
            Ok(()) => Refusal {
                retry_after: Some(tutti_control_core::sip::RETRY_AFTER_SECS),
                ..Refusal::new(503, "Full")
            },
            Err(r) => r,
        };
        let extra = [
            format!("Allow: {ALLOW}"),
            "Accept: application/sdp".to_string(),
            "Supported: ".to_string(),
        ];
        let tag = self.tag();
        (r.code, self.response(p, &r, Some(&tag), &extra, None))
    }

    /// End call `call_id`: forget it, delete its participant (if still there) with
    /// `reason`, and send BYE if `send_bye`.
    fn end_call(&self, call_id: &str, reason: &'static str, send_bye: bool) {
        let call = {
            let mut inner = self.inner();
            let Some(call) = inner.calls.remove(call_id) else {
                drop(inner);
                // A dial-out not answered yet: CANCEL it.
                return self.hang_up_dial(call_id, send_bye);
            };
            inner
                .by_participant
                .remove(&(call.conf.clone(), call.pid.clone()));
            self.metrics.dialogs.set(inner.calls.len() as i64);
            call
        };
        {
            let mut control = self.state.control();
            control.sip_end(&call.conf, &call.pid, reason);
            if call.app.is_some() {
                if let Err(e) = control.delete_conference(&call.conf) {
                    tracing::warn!(conference = %call.conf, error = %e, "application call's conference not deleted");
                }
            }
        }
        if self.inner().dials.contains_key(call_id) {
            self.hang_up_dial(call_id, send_bye);
        } else if send_bye {
            self.send_bye(call);
        }
    }

    fn send_bye(&self, mut call: Call) {
        call.cseq += 1;
        let local = call
            .peer
            .local()
            .map_or_else(|| "0.0.0.0:5060".to_string(), |a| a.to_string());
        let branch = format!("z9hG4bK{}", self.tag());
        // Our From is the INVITE's To (with our tag), our To its From.
        let from = call.to.replacen("To:", "From:", 1);
        let to = call.from.replacen("From:", "To:", 1);
        let (uri, routes, hop) = in_dialog_route(&call.target, &call.route);
        let routes: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
        let msg = format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/{} {local};branch={branch}\r\nMax-Forwards: 70\r\n\
             {routes}{from}\r\n{to}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\nServer: tutti\r\nContent-Length: 0\r\n\r\n",
            call.peer.transport().as_str(),
            call.call_id,
            call.cseq
        );
        tracing::info!(call_id = %call.call_id, next_hop = %hop, "SIP BYE sent");
        call.peer.send_request(&hop, msg.into_bytes());
    }

    /// Every second, end dead calls with BYE: a session not refreshed in time (RFC
    /// 4028, reason `session_expired`), a participant without RTP for the RTP timeout
    /// (reason `rtp_timeout`).
    pub async fn watch_sessions(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = self.state.clock.now();
            let orphan = *self.state.control().reclaim().config();
            let dead: Vec<(String, &'static str)> = self
                .inner()
                .calls
                .iter()
                .filter_map(|(id, c)| {
                    let expired = c
                        .timer
                        .is_some_and(|(interval, at)| now >= session_deadline(at, interval));
                    let silent = c
                        .quiet_since
                        .is_some_and(|q| now >= rtp_deadline(q, &orphan));
                    let reason = if expired {
                        "session_expired"
                    } else if silent {
                        "rtp_timeout"
                    } else {
                        return None;
                    };
                    Some((id.clone(), reason))
                })
                .collect();
            for (id, reason) in dead {
                tracing::info!(call_id = %id, reason, "dead dialog: ending the call");
                self.end_call(&id, reason, true);
            }
        }
    }

    /// Watch the core's events: a participant of a call deleted by anyone but the
    /// call itself (API, reclamation, conference deletion) ends the call with BYE; a
    /// participant falling quiet (not on hold, no SID before) starts its RTP timeout,
    /// and media again stops it.
    pub async fn watch_events(self: Arc<Self>) {
        let mut events = Box::pin(self.state.events.subscribe());
        while let Some(d) = events.next().await {
            let Delivery::Event(ev) = d else {
                continue;
            };
            let (Some(conf), Some(pid)) = (&ev.conference, &ev.participant) else {
                continue;
            };
            if ev.kind == "participant_moved" {
                // The call goes on in the conference its participant moved to.
                let from = ev.detail.from.clone().unwrap_or_default();
                let mut inner = self.inner();
                if let Some(id) = inner.by_participant.remove(&(from, pid.clone())) {
                    if let Some(c) = inner.calls.get_mut(&id) {
                        c.conf = conf.clone();
                    }
                    inner.by_participant.insert((conf.clone(), pid.clone()), id);
                }
                continue;
            }
            let key = (conf.clone(), pid.clone());
            let Some(id) = self.inner().by_participant.get(&key).cloned() else {
                continue;
            };
            match ev.kind {
                "participant_deleted" => {
                    let reason = ev.detail.reason.unwrap_or("deleted");
                    self.end_call(&id, reason, true);
                }
                "participant_quiet" if ev.detail.sid_before != Some(true) => {
                    let held = self
                        .state
                        .control()
                        .sessions()
                        .participant(conf, pid)
                        .is_ok_and(|p| p.hold);
                    let now = self.state.clock.now();
                    if let Some(c) = self.inner().calls.get_mut(&id) {
                        c.quiet_since = (!held).then_some(now);
                    }
                }
                "participant_active" => {
                    if let Some(c) = self.inner().calls.get_mut(&id) {
                        c.quiet_since = None;
                    }
                }
                "prompt_done" => {
                    let completed = ev.detail.completed.unwrap_or(false);
                    let next = self
                        .inner()
                        .calls
                        .get_mut(&id)
                        .and_then(|c| c.app.as_mut())
                        .and_then(|a| a.handle_prompt_done(completed));
                    if let Some(action) = next {
                        self.app_action(&id, action);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Ua {
    /// Carry out what application call `call_id` does next: play a prompt to its
    /// caller (a failure hangs up), or hang up.
    fn app_action(&self, call_id: &str, action: AppAction) {
        match action {
            AppAction::Play(prompt) => {
                let Some((conf, pid)) = self
                    .inner()
                    .calls
                    .get(call_id)
                    .map(|c| (c.conf.clone(), c.pid.clone()))
                else {
                    return;
                };
                let played = self.state.control().play_prompt(&conf, Some(&pid), &prompt);
                if let Err(e) = played {
                    tracing::warn!(call_id, prompt, error = %e, "application prompt not played");
                    let next = self
                        .inner()
                        .calls
                        .get_mut(call_id)
                        .and_then(|c| c.app.as_mut())
                        .and_then(AppCall::handle_play_failed);
                    if let Some(action) = next {
                        self.app_action(call_id, action);
                    }
                }
            }
            AppAction::Hangup(reason) => {
                tracing::info!(call_id, reason, "application hangs up");
                self.end_call(call_id, reason, true);
            }
        }
    }
}

/// A response to one of our requests as the dial state machine takes it; `None`
/// without the CSeq it needs.
pub fn dial_response(r: &rsipstack::sip::Response) -> Option<dial::Response> {
    let cseq = r.cseq_header().ok()?;
    let answers = match cseq.method().ok()? {
        Method::Invite => dial::Answers::Invite,
        Method::Cancel => dial::Answers::Cancel,
        Method::Bye => dial::Answers::Bye,
        _ => dial::Answers::Other,
    };
    let session_expires = header_value(&r.headers, "Session-Expires", "x").and_then(|v| {
        let mut it = v.split(';');
        let secs = it.next()?.trim().parse().ok()?;
        let uac = it.any(|p| p.trim().eq_ignore_ascii_case("refresher=uac"));
        Some((secs, uac))
    });
    Some(dial::Response {
        code: r.status_code.code(),
        cseq: cseq.seq().ok()?,
        answers,
        to: header_value(&r.headers, "To", "t")?,
        contact: header_value(&r.headers, "Contact", "m").map(|c| uri_of(&c)),
        record_route: route_set(&r.headers),
        session_expires,
        body: r.body.clone(),
    })
}

impl Ua {
    /// Dial-outs are sent from `socket` (the first UDP listener given).
    pub fn add_udp_socket(&self, socket: Arc<UdpSocket>) {
        self.inner().udp.push(socket);
    }

    /// Dial `req.to` into conference `conf` over UDP, or TCP if the URI says
    /// `transport=tcp`, from a listener of that transport: its participant is reserved,
    /// the INVITE sent; the call goes on in [`Ua::drive_dials`] and the responses.
    pub async fn dial(self: &Arc<Self>, conf: &str, req: DialRequest) -> Result<String, DialError> {
        let uri = rsipstack::sip::Uri::try_from(req.to.as_str())
            .map_err(|e| DialError::Invalid(format!("to: not a SIP URI ({e})")))?;
        if uri.scheme != Some(rsipstack::sip::Scheme::Sip) {
            return Err(DialError::Invalid("to: a sip: URI is needed".into()));
        }
        use rsipstack::sip::uri::Param;
        let transport = match uri.params.iter().find_map(|p| match p {
            Param::Transport(t) => Some(t),
            _ => None,
        }) {
            None | Some(rsipstack::sip::Transport::Udp) => Transport::Udp,
            Some(rsipstack::sip::Transport::Tcp) => Transport::Tcp,
            Some(t) => {
                return Err(DialError::Invalid(format!(
                    "to: transport {t} is not supported (udp or tcp)"
                )))
            }
        };
        let (host, port) =
            next_hop(&req.to).ok_or_else(|| DialError::Invalid("to: no host to call".into()))?;
        if let Some(from) = &req.from {
            rsipstack::sip::Uri::try_from(from.as_str())
                .map_err(|e| DialError::Invalid(format!("from: not a SIP URI ({e})")))?;
        }
        let unavailable = || {
            DialError::Unavailable(format!(
                "no SIP {} listener to dial from",
                transport.as_str()
            ))
        };
        let (udp, local) = {
            let inner = self.inner();
            inner
                .admission
                .room(inner.active())
                .map_err(|r| DialError::Unavailable(r.reason))?;
            match transport {
                Transport::Udp => {
                    let socket = inner.udp.first().cloned().ok_or_else(unavailable)?;
                    let local = socket
                        .local_addr()
                        .map_err(|e| DialError::Unavailable(format!("SIP socket: {e}")))?;
                    (Some(socket), local)
                }
                Transport::Tcp => {
                    let l = self
                        .cfg
                        .listen
                        .iter()
                        .find(|l| l.transport == Transport::Tcp);
                    (None, l.ok_or_else(unavailable)?.addr)
                }
            }
        };
        let tag = self.tag();
        let call_id = format!("{tag}@tutti");
        let from = req
            .from
            .unwrap_or_else(|| format!("sip:tutti@{}", local.ip()));
        let info = CallInfo {
            call_id: call_id.clone(),
            from: from.clone(),
            to: req.to.clone(),
        };
        let joined = self
            .state
            .control()
            .dial_reserve(conf, &req.offer, info.clone())?;
        let tcp_param = if udp.is_none() { ";transport=tcp" } else { "" };
        let setup = DialSetup {
            call_id: call_id.clone(),
            local_tag: tag,
            to: req.to,
            from,
            contact: format!("sip:tutti@{local}{tcp_param}"),
            via: local.to_string(),
            reliable: udp.is_none(),
            local_media: joined.local,
            codecs: req.offer.codecs.clone(),
            telephone_event: req.offer.telephone_event,
            timeout: req.timeout,
            session_expires: Some(self.cfg.session_expires),
        };
        let dial = Dial::new(self.state.clock.now(), setup);
        tracing::info!(call_id = %call_id, conference = %conf, participant = %joined.pid, transport = transport.as_str(), "SIP dial-out");
        let peer = udp.map(|socket| Peer::Udp {
            socket,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        });
        {
            let mut inner = self.inner();
            inner
                .by_participant
                .insert((joined.conf.clone(), joined.pid.clone()), call_id.clone());
            inner.dials.insert(
                call_id.clone(),
                Dialing {
                    dial,
                    conf: joined.conf,
                    pid: joined.pid.clone(),
                    info,
                    peer,
                    local_media: joined.local,
                    live: true,
                },
            );
        }
        if transport == Transport::Tcp {
            self.open_dial_connection(&call_id, local.ip(), (host, port))
                .await;
        }
        self.pump_dial(&call_id);
        Ok(joined.pid)
    }

    /// Connect dial-out `call_id` over TCP to `host:port` (resolved if a name) from
    /// `from`; a callee we cannot connect to fails the call as unreachable.
    async fn open_dial_connection(
        self: &Arc<Self>,
        call_id: &str,
        from: std::net::IpAddr,
        (host, port): (String, u16),
    ) {
        let connect = async {
            let to = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("the name has no address"))?;
            super::transport::connect(from, to, self.clone()).await
        };
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, connect).await;
        let mut inner = self.inner();
        let Some(d) = inner.dials.get_mut(call_id) else {
            return;
        };
        match opened {
            Ok(Ok(peer)) => d.peer = Some(peer),
            Ok(Err(e)) => {
                tracing::info!(call_id, error = %e, "dial-out connection failed");
                d.dial.transport_error();
            }
            Err(_) => {
                tracing::info!(call_id, "dial-out connection timed out");
                d.dial.transport_error();
            }
        }
    }

    /// A response: to a dial-out's request, else (answers to our BYEs) nothing to do.
    fn response_in(&self, r: &rsipstack::sip::Response) {
        let Ok(call_id) = r.call_id_header().map(|c| c.value().to_string()) else {
            return;
        };
        let Some(resp) = dial_response(r) else {
            return;
        };
        let now = self.state.clock.now();
        match self.inner().dials.get_mut(&call_id) {
            Some(d) => d.dial.handle_response(now, &resp),
            None => return,
        }
        self.pump_dial(&call_id);
    }

    /// The caller's side of dial-out `call_id` ends: CANCEL or BYE (`send`), or, the
    /// callee having ended it, just forget it.
    fn hang_up_dial(&self, call_id: &str, send: bool) {
        let now = self.state.clock.now();
        {
            let mut inner = self.inner();
            let Some(d) = inner.dials.get_mut(call_id) else {
                return;
            };
            d.live = false;
            let key = (d.conf.clone(), d.pid.clone());
            inner.by_participant.remove(&key);
            let Some(d) = inner.dials.get_mut(call_id) else {
                return;
            };
            if send {
                d.dial.hangup(now);
            } else {
                inner.dials.remove(call_id);
                return;
            }
        }
        self.pump_dial(call_id);
    }

    /// Send what dial-out `call_id` queued and carry out what happened to it.
    fn pump_dial(&self, call_id: &str) {
        loop {
            let (out, ev, peer, conf, pid, live) = {
                let mut inner = self.inner();
                let Some(d) = inner.dials.get_mut(call_id) else {
                    return;
                };
                // Held until its connection is open.
                let out: Vec<_> = match d.peer {
                    Some(_) => std::iter::from_fn(|| d.dial.poll_transmit()).collect(),
                    None => Vec::new(),
                };
                let ev = d.dial.poll_event();
                let done = d.dial.is_done() && ev.is_none();
                let r = (
                    out,
                    ev,
                    d.peer.clone(),
                    d.conf.clone(),
                    d.pid.clone(),
                    d.live,
                );
                if done {
                    inner.dials.remove(call_id);
                }
                r
            };
            if let Some(peer) = &peer {
                for t in out {
                    peer.send_request(&t.hop, t.bytes);
                }
            }
            self.dial_timer.notify_one();
            let Some(ev) = ev else {
                return;
            };
            if live {
                self.dial_event(call_id, &conf, &pid, ev, peer);
            }
        }
    }

    fn dial_event(&self, call_id: &str, conf: &str, pid: &str, ev: DialEvent, peer: Option<Peer>) {
        match ev {
            DialEvent::Ringing => self.state.control().dial_ringing(conf, pid),
            DialEvent::Failed { reason, code } => {
                self.inner()
                    .by_participant
                    .remove(&(conf.to_string(), pid.to_string()));
                self.state.control().dial_failed(conf, pid, reason, code);
            }
            DialEvent::Ended { reason } => self.end_call(call_id, reason, true),
            DialEvent::Answered(a) => {
                let Some(peer) = peer else {
                    return;
                };
                let (info, local_media, tag) = {
                    let inner = self.inner();
                    let Some(d) = inner.dials.get(call_id) else {
                        return;
                    };
                    let tag = a.local.rsplit_once("tag=").map(|(_, t)| t.to_string());
                    (d.info.clone(), d.local_media, tag.unwrap_or_default())
                };
                let joined = self
                    .state
                    .control()
                    .dial_answered(conf, pid, &a.media, info);
                if let Err(e) = joined {
                    tracing::info!(call_id, error = %e, "answered dial-out ended");
                    self.inner()
                        .by_participant
                        .remove(&(conf.to_string(), pid.to_string()));
                    return self.hang_up_dial(call_id, true);
                }
                let now = self.state.clock.now();
                let session = u64::from_str_radix(tag.get(..12).unwrap_or("1"), 16).unwrap_or(1);
                // The dialog as the UAS side keeps it: `from` the other party, `to` us.
                let call = Call {
                    call_id: call_id.to_string(),
                    conf: conf.to_string(),
                    pid: pid.to_string(),
                    local_tag: tag,
                    from: format!("From: {}", a.remote),
                    to: format!("To: {}", a.local),
                    target: a.target.clone(),
                    route: a.route.clone(),
                    peer,
                    acked: Arc::new(AtomicBool::new(true)),
                    sdp: (session, 1),
                    local_media,
                    cseq: 1,
                    timer: a.peer_refreshes.map(|i| (i, now)),
                    quiet_since: None,
                    app: None,
                };
                tracing::info!(call_id, conference = %conf, participant = %pid, "SIP dial-out answered");
                let mut inner = self.inner();
                inner.calls.insert(call_id.to_string(), call);
                self.metrics.dialogs.set(inner.calls.len() as i64);
            }
        }
    }

    /// Run the dial-outs' timers (retransmissions, timeouts, refreshes) as they fall
    /// due, forever.
    pub async fn drive_dials(self: Arc<Self>) {
        loop {
            let now = self.state.clock.now();
            let next = self
                .inner()
                .dials
                .values()
                .filter_map(|d| d.dial.poll_timeout())
                .min();
            let wait = next.map_or(Duration::from_secs(1), |t| t.saturating_since(now));
            tokio::select! {
                _ = self.dial_timer.notified() => {}
                _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
            }
            let now = self.state.clock.now();
            let due: Vec<String> = {
                let mut inner = self.inner();
                inner
                    .dials
                    .iter_mut()
                    .filter(|(_, d)| d.dial.poll_timeout().is_some_and(|t| t <= now))
                    .map(|(id, d)| {
                        d.dial.handle_timeout(now);
                        id.clone()
                    })
                    .collect()
            };
            for id in due {
                self.pump_dial(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:conf-1@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK1\r\nFrom: <sip:a@198.18.0.2>;tag=a\r\nTo: <sip:conf-1@198.18.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn requests_are_read_and_checked() {
        let Incoming::Request(req) = read(INVITE.as_bytes()) else {
            panic!("not read");
        };
        let p = parts(&req).unwrap();
        assert_eq!(
            (p.call_id.as_str(), p.cseq, p.branch.as_str()),
            ("c1", 1, "z9hG4bK1")
        );
        assert_eq!(p.to_tag, None);
        for (from, to, why) in [
            ("Call-ID: c1\r\n", "", "Missing Call-ID"),
            ("CSeq: 1 INVITE", "CSeq: 1 BYE", "CSeq method differs"),
            ("CSeq: 1 INVITE\r\n", "", "Missing CSeq"),
            (
                "Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK1\r\n",
                "",
                "Missing Via",
            ),
        ] {
            match read(INVITE.replace(from, to).as_bytes()) {
                Incoming::Request(req) => {
                    let e = parts(&req).err().expect("refused");
                    assert!(e.contains(why), "{e}");
                }
                Incoming::Malformed(e) => assert!(!e.is_empty()),
                Incoming::Response(_) => panic!("a response"),
            }
        }
    }

    #[test]
    fn in_dialog_requests_go_to_the_remote_targets_host_and_port() {
        assert_eq!(
            next_hop("sip:alice@198.18.0.3:5071;transport=udp"),
            Some(("198.18.0.3".into(), 5071))
        );
        assert_eq!(
            next_hop("sip:bob@example.org"),
            Some(("example.org".into(), 5060))
        );
        assert_eq!(
            next_hop("sips:carol@example.org"),
            Some(("example.org".into(), 5061))
        );
        assert_eq!(next_hop("sip:[::1]:5070"), Some(("::1".into(), 5070)));
        assert_eq!(next_hop("not a uri <>"), None);
        assert_eq!(next_hop("tel:+15551234"), None);
    }

    #[test]
    fn in_dialog_requests_follow_the_route_set() {
        let t = "sip:alice@198.18.0.3:5071";
        assert_eq!(in_dialog_route(t, &[]), (t.into(), vec![], t.into()));
        let loose = vec![
            "<sip:198.18.0.9:5060;lr>".to_string(),
            "<sip:p2.example.org;lr>".to_string(),
        ];
        assert_eq!(
            in_dialog_route(t, &loose),
            (t.into(), loose.clone(), "sip:198.18.0.9:5060;lr".into())
        );
        let strict = vec!["<sip:198.18.0.9>".to_string(), loose[1].clone()];
        assert_eq!(
            in_dialog_route(t, &strict),
            (
                "sip:198.18.0.9".into(),
                vec![loose[1].clone(), format!("<{t}>")],
                "sip:198.18.0.9".into()
            )
        );
        let req = INVITE.replace(
            "Call-ID: c1\r\n",
            "Call-ID: c1\r\nRecord-Route: <sip:198.18.0.9;lr>, \"a,b\" <sip:p2.example.org;lr>\r\nRecord-Route: <sip:p3;lr>\r\n",
        );
        assert_eq!(
            route_set(&read_request(&req).headers),
            vec![
                "<sip:198.18.0.9;lr>".to_string(),
                "\"a,b\" <sip:p2.example.org;lr>".to_string(),
                "<sip:p3;lr>".to_string()
            ]
        );
        assert!(route_set(&read_request(INVITE).headers).is_empty());
    }

    fn read_request(text: &str) -> Request {
        match read(text.as_bytes()) {
            Incoming::Request(r) => *r,
            _ => panic!("not a request: {text}"),
        }
    }

    #[test]
    fn unreadable_requests_get_400_along_their_via() {
        let raw = INVITE.replace("CSeq: 1 INVITE", "CSeq: x INVITE");
        let out = String::from_utf8(bad_request(raw.as_bytes(), "bad\r\nCSeq").unwrap()).unwrap();
        assert!(out.starts_with("SIP/2.0 400 Bad Request (badCSeq)\r\nVia: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK1\r\n"), "{out}");
        assert!(
            out.contains("Call-ID: c1\r\n") && out.ends_with("Content-Length: 0\r\n\r\n"),
            "{out}"
        );
        assert_eq!(bad_request(b"garbage\r\n\r\n", "x"), None);
        assert_eq!(bad_request(&[0xff, 0xfe, b':'], "x"), None);
        for junk in [
            &b""[..],
            b"\0\0\0",
            b"SIP/2.0 200",
            b"INVITE",
            &[0xc3, 0x28, b'\r', b'\n'],
        ] {
            assert!(!matches!(read(junk), Incoming::Request(_)), "{junk:?}");
        }
    }
}
