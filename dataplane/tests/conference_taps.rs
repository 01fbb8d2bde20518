//! Audio taps on the in-memory backend, in virtual time: a conference of three G.711
//! tones with a tap on the full mix, one on participant 0's input and one on its output.
//! The mix tap must hold all three tones, the input tap only participant 0's, the output
//! tap the other two and not participant 0's; a tap whose reader never reads loses
//! frames (counted) while the conference goes on; deleting the conference ends every tap.

mod common;
use common::*;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tutti_dataplane::clock::{Clock, Instant, VirtualClock};
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::conference::{
    ConfKey, Conference, ConferenceSpec, MediaCommand, PartKey, Participant, Timing,
};
use tutti_dataplane::mixer::{ActiveSpeakers, Ptime};
use tutti_dataplane::poll::Command;
use tutti_dataplane::rate::SampleRate;
use tutti_dataplane::rx::rtcp::NtpClock;
use tutti_dataplane::tap::{Tap, TapKey, TapRead, TapReader, TapSource, TapSpec};
use tutti_dataplane::wire::eth;

const OUR_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const FREQS: [f64; 3] = [440.0, 1000.0, 1900.0];
const CONF: ConfKey = ConfKey(3);

fn peer(i: usize) -> (eth::MacAddr, SocketAddrV4) {
    (
        eth::MacAddr([2, 0, 0, 0, 1, i as u8]),
        SocketAddrV4::new(
            Ipv4Addr::new(198, 18, 0, 10 + i as u8),
            30000 + 2 * i as u16,
        ),
    )
}

fn send(s: &mut LoopRig, cmd: MediaCommand) {
    assert!(s.commands.push(Command::Media(cmd)).is_ok());
}

fn tap(s: &mut LoopRig, key: u32, source: TapSource, frames: usize) -> TapReader {
    let (tap, reader) = Tap::new(TapSpec {
        conf: CONF,
        key: TapKey(key),
        source,
        frame_samples: 160,
        frames,
    });
    send(s, MediaCommand::AddTap(tap));
    reader
}

/// Everything queued in `r`, frame by frame, and whether the tap ended.
fn drain(r: &mut TapReader, into: &mut Vec<i16>) -> bool {
    let mut f = [0i16; 160];
    loop {
        match r.read(&mut f) {
            TapRead::Frame => into.extend_from_slice(&f),
            TapRead::Empty => return false,
            TapRead::Ended => return true,
        }
    }
}

#[test]
fn taps_copy_mix_input_and_output_and_a_full_ring_loses_frames() {
    let mut s = loop_rig(OUR_MAC, OUR_IP, 20000..=20999);
    let clock = VirtualClock::new(Instant::from_nanos(1_000_000_000));
    let spec = ConferenceSpec {
        key: CONF,
        ptime: Ptime::Ms20,
        rate: SampleRate::Hz8000,
        active_speakers: ActiveSpeakers::All,
        max_participants: 3,
        timing: Timing::Arrival,
    };
    send(
        &mut s,
        MediaCommand::AddConference(Conference::new(spec).unwrap()),
    );
    for i in 0..3 {
        let spec = pcmu_participant(CONF, i, peer(i).1);
        let p = Participant::new(spec, clock.now(), NtpClock::default()).unwrap();
        send(&mut s, MediaCommand::AddParticipant(p));
    }
    // Mix taps take slots beyond the participants': a full conference still has room.
    let mut mix = tap(&mut s, 1, TapSource::Mix, 200);
    let mut input = tap(&mut s, 2, TapSource::Input(PartKey(100)), 200);
    let mut output = tap(&mut s, 3, TapSource::Output(PartKey(100)), 200);
    // Never read: loses frames once its 5 are queued.
    let mut stalled = tap(&mut s, 4, TapSource::Mix, 5);
    // A tap of a participant that is not there is refused (and ends at once).
    let mut stray = tap(&mut s, 5, TapSource::Input(PartKey(999)), 5);

    let (mut mix_pcm, mut in_pcm, mut out_pcm) = (Vec::new(), Vec::new(), Vec::new());
    for tick in 0..100u32 {
        for (i, freq) in FREQS.iter().enumerate() {
            let pcm = tone(*freq, 6000.0, tick as usize * 160, 160);
            let packet = rtp(
                0,
                1000 + tick as u16,
                5000 + tick * 160,
                0x1000 + i as u32,
                &encode(CodecKind::Pcmu, &pcm),
            );
            let f = udp_frame(peer(i), (OUR_MAC, OUR_IP, 20000 + 2 * i as u16), &packet);
            assert!(s.lp.io_mut(0).unwrap().inject(&f));
        }
        for _ in 0..20 {
            s.lp.run_once(clock.now(), &clock);
            clock.advance(Duration::from_millis(1));
        }
        let io = s.lp.io_mut(0).unwrap();
        while let Some(b) = io.tx.pop_front() {
            io.recycle(b);
        }
        assert!(!drain(&mut mix, &mut mix_pcm));
        assert!(!drain(&mut input, &mut in_pcm));
        assert!(!drain(&mut output, &mut out_pcm));
    }
    // What the core unlinked is freed on the control side.
    while s.retired.pop().is_ok() {}
    assert!(drain(&mut stray, &mut Vec::new()), "refused tap ended");
    assert_eq!(s.engine.commands_rejected.get(), 1);
    // A frame a tick (the first tick comes 20 ms after creation).
    for (name, pcm) in [("mix", &mix_pcm), ("input", &in_pcm), ("output", &out_pcm)] {
        let frames = pcm.len() / 160;
        assert!((95..=100).contains(&frames), "{name}: {frames} frames");
    }
    assert_eq!(stalled.counters().frames.get(), 5);
    assert!(
        stalled.counters().lost.get() >= 90,
        "lost {}",
        stalled.counters().lost.get()
    );
    assert_eq!(mix.counters().lost.get(), 0);

    // The last half second, once the jitter buffers have settled.
    let last = |pcm: &Vec<i16>| pcm[pcm.len() - 4000..].to_vec();
    let power = |pcm: &[i16]| FREQS.map(|f| goertzel(pcm, f));
    let floor = goertzel(&tone(FREQS[0], 6000.0, 0, 4000), FREQS[0]);
    let (m, i, o) = (
        power(&last(&mix_pcm)),
        power(&last(&in_pcm)),
        power(&last(&out_pcm)),
    );
    for (k, p) in m.iter().enumerate() {
        assert!(
            db(p / floor) > -6.0,
            "mix holds tone {k}: {:.1} dB",
            db(p / floor)
        );
    }
    assert!(db(i[0] / floor) > -6.0, "input holds its own tone");
    assert!(
        db(i[1] / floor) < -30.0 && db(i[2] / floor) < -30.0,
        "input holds only its own tone"
    );
    assert!(db(o[0] / floor) < -30.0, "output lacks its own tone");
    assert!(
        db(o[1] / floor) > -6.0 && db(o[2] / floor) > -6.0,
        "output holds the others"
    );

    // Removing a tap ends it; deleting the conference ends the rest.
    send(
        &mut s,
        MediaCommand::RemoveTap {
            conf: CONF,
            tap: TapKey(2),
        },
    );
    s.lp.run_once(clock.now(), &clock);
    while s.retired.pop().is_ok() {}
    assert!(drain(&mut input, &mut Vec::new()), "removed tap ended");
    assert!(!drain(&mut mix, &mut Vec::new()), "others go on");
    send(&mut s, MediaCommand::DeleteConference(CONF));
    s.lp.run_once(clock.now(), &clock);
    while s.retired.pop().is_ok() {}
    for r in [&mut mix, &mut output, &mut stalled] {
        assert!(
            drain(r, &mut Vec::new()),
            "deleting the conference ends its taps"
        );
    }
}
