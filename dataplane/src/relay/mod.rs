//! The gateway relay of one dataplane core: clients' RTP terminates here and is relayed
//! to the mixer hosting their conference, the mixer's stream for each client comes back
//! here and is relayed to the client — addresses, ports and RTP header fields rewritten
//! in place, nothing copied. During a handover each client's inbound packets also go to
//! the new mixer (a header copy chained to the shared payload), and the two mixers'
//! streams for the client meet in its [`Splice`], which validates the new one and cuts
//! over between two packets.
//!
//! Inbound RTP timestamps are mapped onto the conference's [`Timeline`] (one offset per
//! client stream, chosen at its first packet), so that every mixer sees the same frames
//! under the same timestamps and mixes them identically.
//!
//! State is built on the control core and linked in by [`RelayCommand`]s; what is
//! unlinked goes back up the `retired` ring, so the core allocates and frees nothing.

pub mod splice;

use crate::clock::Instant;
use crate::conference::{ConfKey, LegCrypto, PartKey, SrtpDrops, SrtpKeys};
use crate::host::{retire, CorePorts, EventQueue, PortMap, Retired, Slab};
use crate::io::PacketBuf;
use crate::mixer::Ptime;
use crate::rate::SampleRate;
use crate::stats::Counter;
use crate::wire::eth::MacAddr;
use crate::wire::rewrite::{
    readdress, resize_udp_payload, rewrite_udp_rtcp_sender, rewrite_udp_rtp, RtpRewrite,
};
use crate::wire::rtcp::{self as rtcp_wire, PacketClass};
use crate::wire::rtp::RtpPacket;
use crate::wire::udp;
use core::cmp::{Ordering, Reverse};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use splice::{Decision, Leg, RtpHead, Splice, SpliceEvent};
use std::collections::BinaryHeap;
use std::sync::Arc;

/// The RTP clock of the relayed streams (G.711's).
pub const RTP_CLOCK: SampleRate = SampleRate::Hz8000;
/// An inbound timestamp further than this from the timeline (in samples, 1 s)
/// re-anchors the client's mapping (the client restarted its clock or stream).
const REANCHOR_SAMPLES: i64 = RTP_CLOCK.hz() as i64;
/// How much a client's added delay shrinks per forwarded packet after a handover.
pub const RAMP_STEP: Duration = Duration::from_millis(2);
/// Events a relay holds for the poll loop at most (beyond, they are counted lost).
const EVENT_QUEUE: usize = 4096;
/// Held packets released per [`Relay::poll`] call at most.
const RELEASES_PER_POLL: usize = 64;

/// The timeline a gateway maps every client's RTP timestamps of one conference onto:
/// frame boundaries at `base + k * ptime samples`, frame `k` starting `k * ptime` after
/// `origin` on the dataplane clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub base: u32,
    pub origin: Instant,
    pub ptime: Ptime,
}

impl Timeline {
    /// The timeline timestamp of the frame boundary at or before `now`.
    pub fn frame_at(&self, now: Instant) -> u32 {
        let ptime = self.ptime.duration().as_nanos().max(1);
        let frames = now.saturating_since(self.origin).as_nanos() / ptime;
        self.base
            .wrapping_add((frames as u32).wrapping_mul(self.ptime.samples(RTP_CLOCK) as u32))
    }
}

/// One client relayed by the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelaySpec {
    pub conf: ConfKey,
    pub part: PartKey,
    /// The client's RTP address (RTCP on the next port, or multiplexed on this one).
    pub client: SocketAddrV4,
    /// Our RTP port towards the client (RTCP on the next one).
    pub client_port: u16,
    /// Our RTP port towards the mixers (RTCP on the next one).
    pub mixer_port: u16,
    /// The mixer participant's RTP address on the hosting mixer.
    pub mixer: SocketAddrV4,
    pub timeline: Timeline,
}

/// A client's handover: the mixer participant it moves to and the splice joining that
/// mixer's stream to the active one's.
struct Handover {
    candidate: SocketAddrV4,
    splice: Box<Splice>,
}

/// A client's relay state on its core.
pub struct RelaySession {
    spec: RelaySpec,
    /// Inbound mapping: the client's SSRC and the delta that puts its timestamps on the
    /// timeline.
    inbound: Option<(u32, u32)>,
    /// The mixer the client's stream comes from.
    active: SocketAddrV4,
    /// How the active mixer's stream is rewritten for the client.
    rewrite: RtpRewrite,
    /// Delay added to the active mixer's packets (ramps down to zero after a handover).
    delay: Duration,
    /// The handover under way, if any.
    handover: Option<Handover>,
    /// The newest RTP header sent to the client, and the leg timestamp it came with.
    last: Option<(RtpHead, u32)>,
    /// When that packet arrived from its mixer.
    last_at: Instant,
    /// The client's SRTP: its packets are unprotected here and go to the mixers plain;
    /// the mixers' packets are protected here after their headers are rewritten.
    crypto: Option<LegCrypto>,
}

impl RelaySession {
    /// Build a session (on the control core: this allocates).
    pub fn new(spec: RelaySpec) -> Box<RelaySession> {
        Box::new(RelaySession {
            spec,
            inbound: None,
            active: spec.mixer,
            rewrite: RtpRewrite::default(),
            delay: Duration::ZERO,
            handover: None,
            last: None,
            last_at: Instant::ZERO,
            crypto: None,
        })
    }

    /// A session whose client speaks SRTP with `keys` (on the control core: this
    /// allocates the contexts).
    pub fn secured(
        spec: RelaySpec,
        keys: &SrtpKeys,
    ) -> Result<Box<RelaySession>, tutti_srtp::Error> {
        let mut s = RelaySession::new(spec);
        s.crypto = Some(LegCrypto::new(keys)?);
        Ok(s)
    }

    /// The session's participant key.
    pub fn part(&self) -> PartKey {
        self.spec.part
    }
}

/// A relay operation with its state already built.
pub enum RelayCommand {
    Add(Box<RelaySession>),
    Remove(PartKey),
    /// Start moving the client to the mixer participant at `candidate`: duplicate its
    /// inbound packets there and splice that mixer's stream in. With `instruct`, the
    /// candidate was told to send the client-visible SSRC, sequence numbers and
    /// timestamps itself.
    StartHandover {
        part: PartKey,
        candidate: SocketAddrV4,
        splice: Box<Splice>,
        instruct: bool,
    },
    /// Every client of the conference is validated: the splice may cut over.
    Commit(PartKey),
    /// End the client's handover: if it cut over, the new mixer becomes its mixer and the
    /// old one gets no more packets; if not, it stays on the old one and the new one gets
    /// nothing more.
    End(PartKey),
}

/// Something the relay saw, for the control plane's handover orchestration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelayEvent {
    pub conf: ConfKey,
    pub part: PartKey,
    pub at: Instant,
    pub kind: RelayEventKind,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RelayEventKind {
    /// A handover started: the newest header the client got (`head`, client-visible) and
    /// the mixer leg's timestamp of that frame (absent if nothing was sent yet).
    Started { last: Option<(RtpHead, u32)> },
    /// A step of the client's splice.
    Splice(SpliceEvent),
}

/// Relay counters (single writer: this core).
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub sessions: Counter,
    pub from_clients: Counter,
    pub to_mixers: Counter,
    /// Inbound packets also sent to a handover's new mixer.
    pub duplicated: Counter,
    pub from_mixers: Counter,
    pub to_clients: Counter,
    /// Packets held back to align two mixers' streams.
    pub held: Counter,
    /// From an address that is not the session's client or mixer.
    pub foreign: Counter,
    /// A mixer's packet not forwarded: the other mixer's copy of the frame was (or
    /// will be) sent, or the splice refused it.
    pub superseded: Counter,
    /// Next hop not resolved yet, or no buffer for a duplicate.
    pub unroutable: Counter,
    pub malformed: Counter,
    /// SRTP/SRTCP from clients that failed authentication, or the replay window.
    pub srtp_auth_failures: Counter,
    pub srtp_replays: Counter,
    /// Mixers' packets that could not be protected for their client (no room, or the
    /// context refused), and clients' SRTP that could not be unprotected otherwise.
    pub srtp_failures: Counter,
    /// Clients' timestamp mappings re-anchored after a jump.
    pub reanchored: Counter,
    pub events_lost: Counter,
    pub commands_rejected: Counter,
}

/// The poll loop's side of the relay: the port the relayed packets go out on.
pub trait RelayPort<B: PacketBuf> {
    /// Our address on the port.
    fn ip(&self) -> Ipv4Addr;
    /// Our MAC and the next hop's towards `dst`, or `None` while it is being resolved.
    fn macs(&mut self, dst: Ipv4Addr) -> Option<(MacAddr, MacAddr)>;
    /// See [`crate::io::PacketIo::duplicate`].
    fn duplicate(&mut self, b: &B, split: usize) -> Option<B>;
    /// Queue `b` for transmission.
    fn send(&mut self, b: B);
}

struct Held<B> {
    at: Instant,
    n: u64,
    buf: B,
}

impl<B> PartialEq for Held<B> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.n) == (other.at, other.n)
    }
}
impl<B> Eq for Held<B> {}
impl<B> PartialOrd for Held<B> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<B> Ord for Held<B> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.n).cmp(&(other.at, other.n))
    }
}

/// Where a received datagram sits in the frame.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    pub src: SocketAddrV4,
    pub dst_port: u16,
    /// Offset of the UDP header in the frame.
    pub udp_at: usize,
    /// End of the UDP datagram in the frame (Ethernet padding follows).
    pub end: usize,
}

/// The relayed clients of one core.
pub struct Relay<B> {
    /// This core's view of which core holds each media port.
    table: CorePorts,
    /// Our local ports -> the index of the session using each.
    ports: PortMap<u32>,
    sessions: Slab<PartKey, RelaySession>,
    held: BinaryHeap<Reverse<Held<B>>>,
    held_n: u64,
    events: EventQueue<RelayEvent>,
    counters: Arc<RelayCounters>,
}

impl<B: PacketBuf> Relay<B> {
    /// A relay on the core `table` is the view of, for at most `max_sessions` clients.
    pub fn new(table: CorePorts, max_sessions: usize, counters: Arc<RelayCounters>) -> Relay<B> {
        Relay {
            ports: table.map(),
            table,
            sessions: Slab::new(max_sessions),
            held: BinaryHeap::with_capacity(max_sessions * 4 + 1),
            held_n: 0,
            events: EventQueue::new(EVENT_QUEUE),
            counters,
        }
    }

    /// Whether a relayed client uses local port `port`.
    pub fn owns(&self, port: u16) -> bool {
        self.ports.get(port).is_some()
    }

    /// Map (or with `None` unmap) the session's ports, claiming (giving back) them.
    fn map(&mut self, s: &RelaySpec, v: Option<u32>) {
        for p in [s.client_port, s.mixer_port] {
            for q in [p, p.wrapping_add(1)] {
                self.ports.set(q, v);
            }
            match v {
                Some(_) => self.table.claim(p),
                None => self.table.release(p),
            }
        }
    }

    /// The oldest event not yet taken (the poll loop sends them up).
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop()
    }

    fn push_event(&mut self, spec: &RelaySpec, at: Instant, kind: RelayEventKind) {
        let ev = RelayEvent {
            conf: spec.conf,
            part: spec.part,
            at,
            kind,
        };
        if self.events.push(ev).is_err() {
            self.counters.events_lost.inc();
        }
    }

    fn session_mut(&mut self, part: PartKey) -> Option<&mut RelaySession> {
        self.sessions.by_key_mut(&part)
    }

    /// Apply one command from the control core; what it unlinks goes up `retired`.
    pub fn apply(
        &mut self,
        cmd: RelayCommand,
        now: Instant,
        retired: &mut rtrb::Producer<Retired>,
    ) {
        match cmd {
            RelayCommand::Add(s) => {
                let ports_ok = [s.spec.client_port, s.spec.mixer_port]
                    .iter()
                    .all(|&p| self.ports.covers(p) && self.ports.covers(p.wrapping_add(1)));
                let spec = s.spec;
                let added = if ports_ok {
                    self.sessions.insert(spec.part, s)
                } else {
                    Err(s)
                };
                match added {
                    Ok(i) => {
                        self.map(&spec, Some(i));
                        self.counters.sessions.inc();
                    }
                    Err(s) => {
                        self.counters.commands_rejected.inc();
                        retire(retired, Retired::RelaySession(s));
                    }
                }
            }
            RelayCommand::Remove(part) => {
                let Some((_, mut s)) = self.sessions.remove(&part) else {
                    return;
                };
                self.map(&s.spec, None);
                if let Some(h) = s.handover.take() {
                    retire(retired, Retired::Splice(h.splice));
                }
                self.counters.sessions.sub(1);
                retire(retired, Retired::RelaySession(s));
            }
            RelayCommand::StartHandover {
                part,
                candidate,
                mut splice,
                instruct,
            } => {
                let Some(s) = self.session_mut(part) else {
                    self.counters.commands_rejected.inc();
                    retire(retired, Retired::Splice(splice));
                    return;
                };
                if s.handover.is_some() {
                    self.counters.commands_rejected.inc();
                    retire(retired, Retired::Splice(splice));
                    return;
                }
                // Rewrite mode: both mixers send the timeline's timestamps, so the
                // candidate's frames map to the client as the active one's do. Instruct
                // mode: the candidate sends client-visible timestamps itself.
                let candidate_ts_delta = if instruct { 0 } else { s.rewrite.ts_delta };
                splice.start(s.rewrite, s.delay, candidate_ts_delta);
                if let Some((head, _)) = s.last {
                    splice.seed_active(s.last_at, head.ts, head.seq, head.ssrc);
                }
                s.handover = Some(Handover { candidate, splice });
                let (spec, last) = (s.spec, s.last);
                self.push_event(&spec, now, RelayEventKind::Started { last });
            }
            RelayCommand::Commit(part) => {
                if let Some(h) = self.session_mut(part).and_then(|s| s.handover.as_mut()) {
                    h.splice.commit();
                }
            }
            RelayCommand::End(part) => {
                let Some(s) = self.session_mut(part) else {
                    return;
                };
                let Some(Handover {
                    candidate,
                    mut splice,
                }) = s.handover.take()
                else {
                    return;
                };
                match splice.forward_after_cut() {
                    // Cut over: the new mixer is the client's mixer now.
                    Some((rw, delay)) => {
                        s.rewrite = rw;
                        s.delay = delay;
                        s.active = candidate;
                    }
                    // Not cut over: the client stays where it was.
                    None => splice.abort(),
                }
                retire(retired, Retired::Splice(splice));
            }
        }
    }

    /// When [`Relay::poll`] next has a held packet to release.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.at)
    }

    /// Send the held packets due at `now` (a bounded number per call).
    pub fn poll(&mut self, now: Instant, out: &mut impl RelayPort<B>) {
        for _ in 0..RELEASES_PER_POLL {
            match self.held.peek() {
                Some(Reverse(h)) if h.at <= now => {}
                _ => break,
            }
            if let Some(Reverse(h)) = self.held.pop() {
                self.counters.to_clients.inc();
                out.send(h.buf);
            }
        }
    }

    /// A datagram for one of our ports (see [`Relay::owns`]), in frame `buf`.
    pub fn handle(&mut self, now: Instant, mut buf: B, d: Datagram, out: &mut impl RelayPort<B>) {
        let Some(i) = self.ports.get(d.dst_port) else {
            return;
        };
        let start = d.udp_at + udp::HEADER_LEN;
        if start > d.end || !buf.set_len(d.end) {
            self.counters.malformed.inc();
            return;
        }
        let Some(s) = self.sessions.get_mut(i) else {
            return;
        };
        let spec = s.spec;
        if d.dst_port == spec.client_port || d.dst_port == spec.client_port.wrapping_add(1) {
            self.counters.from_clients.inc();
            let offset = d.dst_port - spec.client_port;
            if d.src.ip() != spec.client.ip() {
                self.counters.foreign.inc();
                return;
            }
            let payload = buf.data().get(start..d.end).unwrap_or(&[]);
            let rtp = offset == 0 && rtcp_wire::classify(payload) != PacketClass::Rtcp;
            if let Some(c) = s.crypto.as_mut() {
                // The mixers get it plain (one unprotect, before any duplicate).
                let drops = SrtpDrops {
                    auth: &self.counters.srtp_auth_failures,
                    replay: &self.counters.srtp_replays,
                    other: &self.counters.srtp_failures,
                };
                let plain = buf.data_mut().get_mut(start..d.end);
                let Some(n) = plain.and_then(|p| c.unprotect(p, !rtp, drops)) else {
                    return;
                };
                if !buf.set_len(start + n)
                    || resize_udp_payload(buf.data_mut(), d.udp_at, n).is_err()
                {
                    self.counters.malformed.inc();
                    return;
                }
            }
            if rtp {
                let payload = buf.data().get(start..).unwrap_or(&[]);
                let Ok(p) = RtpPacket::parse(payload) else {
                    self.counters.malformed.inc();
                    return;
                };
                let (ssrc, ts) = (p.ssrc(), p.timestamp());
                let grid = spec.timeline.frame_at(now);
                let delta = match s.inbound {
                    Some((known, delta))
                        if known == ssrc
                            && i64::from(ts.wrapping_add(delta).wrapping_sub(grid) as i32)
                                .abs()
                                <= REANCHOR_SAMPLES =>
                    {
                        delta
                    }
                    previous => {
                        if previous.is_some() {
                            self.counters.reanchored.inc();
                        }
                        let delta = grid.wrapping_sub(ts);
                        s.inbound = Some((ssrc, delta));
                        delta
                    }
                };
                let rw = RtpRewrite {
                    ts_delta: delta,
                    ..RtpRewrite::default()
                };
                if rewrite_udp_rtp(&mut buf.data_mut()[d.udp_at..], &rw).is_err() {
                    self.counters.malformed.inc();
                    return;
                }
            }
            let from = SocketAddrV4::new(out.ip(), spec.mixer_port + offset);
            if let Some(c) = s.handover.as_ref().map(|h| h.candidate) {
                let to = SocketAddrV4::new(*c.ip(), c.port() + offset);
                match out.duplicate(&buf, start) {
                    Some(dup) => {
                        if forward(dup, from, to, out) {
                            self.counters.duplicated.inc();
                        } else {
                            self.counters.unroutable.inc();
                        }
                    }
                    None => self.counters.unroutable.inc(),
                }
            }
            let to = SocketAddrV4::new(*s.active.ip(), s.active.port() + offset);
            if forward(buf, from, to, out) {
                self.counters.to_mixers.inc();
            } else {
                self.counters.unroutable.inc();
            }
            return;
        }

        // From a mixer.
        self.counters.from_mixers.inc();
        let offset = d.dst_port.wrapping_sub(spec.mixer_port);
        let from_leg = |m: SocketAddrV4| {
            d.src.ip() == m.ip() && (d.src.port() == m.port() + offset || d.src.port() == m.port())
        };
        let leg = if from_leg(s.active) {
            Leg::Active
        } else if s.handover.as_ref().is_some_and(|h| from_leg(h.candidate)) {
            Leg::Candidate
        } else {
            self.counters.foreign.inc();
            return;
        };
        let payload = buf.data().get(start..d.end).unwrap_or(&[]);
        let from = SocketAddrV4::new(out.ip(), spec.client_port + offset);
        let to = SocketAddrV4::new(*spec.client.ip(), spec.client.port() + offset);
        if offset == 1 || rtcp_wire::classify(payload) == PacketClass::Rtcp {
            // RTCP goes through from the mixer whose stream the client gets, with the
            // sender's SSRC and RTP timestamp mapped as its RTP is.
            let cut = s
                .handover
                .as_ref()
                .and_then(|h| h.splice.forward_after_cut());
            let (feeding, rw) = match cut {
                Some((rw, _)) => (Leg::Candidate, rw),
                None => (Leg::Active, s.rewrite),
            };
            if feeding != leg {
                self.counters.superseded.inc();
                return;
            }
            rewrite_udp_rtcp_sender(&mut buf.data_mut()[d.udp_at..], &rw);
            if !protect_for_client(&mut s.crypto, &mut buf, d.udp_at, true) {
                self.counters.srtp_failures.inc();
                return;
            }
            if forward(buf, from, to, out) {
                self.counters.to_clients.inc();
            } else {
                self.counters.unroutable.inc();
            }
            return;
        }
        let Ok(p) = RtpPacket::parse(payload) else {
            self.counters.malformed.inc();
            return;
        };
        let head = RtpHead {
            ssrc: p.ssrc(),
            seq: p.sequence_number(),
            ts: p.timestamp(),
            marker: p.marker(),
        };
        let (rw, release) = match s.handover.as_mut().map(|h| &mut h.splice) {
            Some(sp) => {
                let decision = sp.on_packet(now, leg, head, p.payload());
                while let Some(e) = sp.poll_event() {
                    let ev = RelayEvent {
                        conf: spec.conf,
                        part: spec.part,
                        at: now,
                        kind: RelayEventKind::Splice(e),
                    };
                    if self.events.push(ev).is_err() {
                        self.counters.events_lost.inc();
                    }
                }
                match decision {
                    Decision::Forward {
                        rewrite,
                        release_at,
                    } => (rewrite, release_at),
                    Decision::Drop(_) => {
                        self.counters.superseded.inc();
                        return;
                    }
                }
            }
            None if leg == Leg::Active => {
                let release = now + s.delay;
                s.delay = s.delay.saturating_sub(RAMP_STEP);
                (s.rewrite, release)
            }
            None => {
                self.counters.superseded.inc();
                return;
            }
        };
        if rewrite_udp_rtp(&mut buf.data_mut()[d.udp_at..], &rw).is_err() {
            self.counters.malformed.inc();
            return;
        }
        if !protect_for_client(&mut s.crypto, &mut buf, d.udp_at, false) {
            self.counters.srtp_failures.inc();
            return;
        }
        s.last = Some((
            RtpHead {
                ssrc: rw.ssrc.unwrap_or(head.ssrc),
                seq: head.seq.wrapping_add(rw.seq_delta),
                ts: head.ts.wrapping_add(rw.ts_delta),
                marker: head.marker,
            },
            head.ts,
        ));
        s.last_at = now;
        if !readdress_for(&mut buf, from, to, out) {
            self.counters.unroutable.inc();
            return;
        }
        // Held packets due by now go first, so nothing overtakes them.
        self.poll(now, out);
        if release <= now {
            self.counters.to_clients.inc();
            out.send(buf);
        } else if self.held.len() < self.held.capacity() {
            self.counters.held.inc();
            self.held_n += 1;
            self.held.push(Reverse(Held {
                at: release,
                n: self.held_n,
                buf,
            }));
        } else {
            // No room to hold it: late is better than lost.
            self.counters.to_clients.inc();
            out.send(buf);
        }
    }
}

/// Protect the datagram (UDP header at `udp_at`, ending where `b` ends) in place for a
/// client with SRTP, growing `b` by the trailer and fixing the lengths and checksums;
/// true if it can be sent (also when the client has no SRTP).
fn protect_for_client<B: PacketBuf>(
    crypto: &mut Option<LegCrypto>,
    b: &mut B,
    udp_at: usize,
    rtcp: bool,
) -> bool {
    let Some(c) = crypto.as_mut() else {
        return true;
    };
    let start = udp_at + udp::HEADER_LEN;
    let Some(len) = b.data().len().checked_sub(start) else {
        return false;
    };
    let trailer = if rtcp {
        tutti_srtp::MAX_RTCP_TRAILER
    } else {
        tutti_srtp::MAX_RTP_TRAILER
    };
    if !b.set_len(start + len + trailer) {
        return false;
    }
    let n = b
        .data_mut()
        .get_mut(start..)
        .map_or(0, |p| c.protect(p, len, rtcp));
    n != 0 && b.set_len(start + n) && resize_udp_payload(b.data_mut(), udp_at, n).is_ok()
}

/// Readdress `b` from `from` to `to` (MACs by the port's next hop); false if the next
/// hop is not resolved yet.
fn readdress_for<B: PacketBuf>(
    b: &mut B,
    from: SocketAddrV4,
    to: SocketAddrV4,
    out: &mut impl RelayPort<B>,
) -> bool {
    let Some(macs) = out.macs(*to.ip()) else {
        return false;
    };
    readdress(b.data_mut(), macs, from, to).is_ok()
}

/// [`readdress_for`] and send.
fn forward<B: PacketBuf>(
    mut b: B,
    from: SocketAddrV4,
    to: SocketAddrV4,
    out: &mut impl RelayPort<B>,
) -> bool {
    let ok = readdress_for(&mut b, from, to, out);
    if ok {
        out.send(b);
    }
    ok
}
