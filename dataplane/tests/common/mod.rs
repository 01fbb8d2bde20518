//! Signal and packet helpers shared by the dataplane's integration tests.
#![allow(dead_code)] // each test binary uses a subset

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{Engine, EngineCounters};
use tutti_dataplane::host::{uplink, CoreEvent, CorePorts, Retired, UplinkRx};
use tutti_dataplane::io::MemoryIo;
use tutti_dataplane::poll::{command_ring, Command, Handoff, PollLoop, PortAddr};
use tutti_dataplane::stats::CoreCounters;
use tutti_dataplane::wire::{eth, ipv4, udp};

/// An RTP packet (no CSRCs or extensions).
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An Ethernet frame from `from` (MAC, address) to `to` (MAC, address) carrying UDP
/// `payload`, checksums set.
pub fn udp_frame(
    from: (eth::MacAddr, SocketAddrV4),
    to: (eth::MacAddr, Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let ((mac, src), (dst_mac, dst_ip, dst_port)) = (from, to);
    let mut f = vec![0u8; 42 + payload.len()];
    f[42..].copy_from_slice(payload);
    udp::write_header(&mut f[34..], *src.ip(), dst_ip, src.port(), dst_port);
    ipv4::write_header(
        &mut f[14..],
        *src.ip(),
        dst_ip,
        ipv4::PROTO_UDP,
        8 + payload.len(),
        1,
    );
    eth::EthHeader {
        dst: dst_mac,
        src: mac,
        ethertype: eth::ETHERTYPE_IPV4,
    }
    .write(&mut f);
    f
}

/// Sample rate of every signal here.
pub const RATE: f64 = 8000.0;

/// `len` samples of a sine of `freq` Hz and peak `amplitude`, starting at sample `start`.
pub fn tone(freq: f64, amplitude: f64, start: usize, len: usize) -> Vec<i16> {
    (start..start + len)
        .map(|n| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * n as f64 / RATE).sin()).round() as i16
        })
        .collect()
}

/// Encode `pcm` with `codec` (panics on a codec error: test input is well-formed).
pub fn encode(codec: CodecKind, pcm: &[i16]) -> Vec<u8> {
    let mut out = vec![0u8; codec.encoded_len(pcm.len())];
    assert_eq!(codec.encode(pcm, &mut out), Ok(out.len()));
    out
}

/// Decode `payload` with `codec`.
pub fn decode(codec: CodecKind, payload: &[u8]) -> Vec<i16> {
    let mut pcm = vec![0i16; codec.samples_in(payload.len()).expect("whole samples")];
    assert_eq!(codec.decode(payload, &mut pcm), Ok(pcm.len()));
    pcm
}

/// Power of `freq` in `x` (Goertzel), normalised so a sine of amplitude A gives A^2/4 * N^2.
pub fn goertzel(x: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / RATE;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// A power ratio in decibels.
pub fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

/// A poll loop over one in-memory port (4096 buffers) whose engine owns `ports`, with
/// the control core's ends of its rings and its counters.
pub struct LoopRig {
    pub lp: PollLoop<MemoryIo>,
    pub commands: rtrb::Producer<Command>,
    pub events: rtrb::Consumer<CoreEvent>,
    pub retired: rtrb::Consumer<Retired>,
    pub engine: Arc<EngineCounters>,
    pub core: Arc<CoreCounters>,
}

/// A [`LoopRig`] at `mac`/`ip` (a /24, no gateway) owning media ports `ports`.
pub fn loop_rig(mac: eth::MacAddr, ip: Ipv4Addr, ports: std::ops::RangeInclusive<u16>) -> LoopRig {
    let (commands, rx) = command_ring(64);
    let (up, UplinkRx { events, retired }) = uplink(1024, 64);
    let engine = Arc::new(EngineCounters::default());
    let core = Arc::new(CoreCounters::default());
    let eng = Engine::new(CorePorts::single(ports), 8, engine.clone());
    let addr = PortAddr {
        mac,
        ip,
        prefix_len: 24,
        gateway: None,
    };
    let lp = PollLoop::new(
        vec![(MemoryIo::new(4096, 2048), addr)],
        core.clone(),
        rx,
        0,
        eng,
        Handoff::none(),
        up,
    );
    LoopRig {
        lp,
        commands,
        events,
        retired,
        engine,
        core,
    }
}

/// Participant `i` of `conf` (key 100 + i, local port 20000 + 2i, SSRC 0xabc0 + i) whose
/// media goes to `remote`: PCMU, no RTCP.
pub fn pcmu_participant(
    conf: tutti_dataplane::conference::ConfKey,
    i: usize,
    remote: SocketAddrV4,
) -> tutti_dataplane::conference::ParticipantSpec {
    use tutti_dataplane::conference::{Liveness, PartKey, ParticipantSettings, ParticipantSpec};
    ParticipantSpec {
        conf,
        key: PartKey(100 + i as u32),
        local_port: 20000 + 2 * i as u16,
        remote,
        codec: CodecKind::Pcmu,
        payload_types: tutti_dataplane::rx::PayloadTypes::negotiated(CodecKind::Pcmu, None, None),
        rtcp: false,
        ssrc: 0xabc0 + i as u32,
        settings: ParticipantSettings::default(),
        liveness: Liveness::default(),
        srtp: None,
    }
}
