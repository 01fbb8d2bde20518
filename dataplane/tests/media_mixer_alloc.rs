//! After participants are added, set_input, tick, output and the RTP header build allocate
//! nothing (counted by a global allocator that counts this thread's allocations).

use tutti_dataplane::clock::Instant;
use tutti_dataplane::codec::CodecKind;
use tutti_dataplane::mixer::kernel::Kernel;
use tutti_dataplane::mixer::{ActiveSpeakers, Input, Mixer, MixerConfig, ParticipantConfig};
use tutti_dataplane::rtp_send::{RtpSender, RtpSenderConfig};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

#[test]
fn ticks_allocate_nothing() {
    for kernel in Kernel::available() {
        for active in [ActiveSpeakers::Loudest(3), ActiveSpeakers::All] {
            let config = MixerConfig {
                capacity: 40,
                active_speakers: active,
                kernel: Some(kernel.kind()),
                ..MixerConfig::default()
            };
            let mut m = Mixer::new(config).unwrap();
            let slots: Vec<_> = (0..40)
                .map(|i| {
                    m.add_participant(ParticipantConfig::new(CodecKind::ALL[i % 3]))
                        .unwrap()
                })
                .collect();
            let mut senders: Vec<_> = (0..40u32)
                .map(|i| {
                    RtpSender::new(RtpSenderConfig {
                        ssrc: i,
                        ..Default::default()
                    })
                })
                .collect();
            let frames: Vec<Vec<u8>> = (0..40)
                .map(|i| {
                    (0..CodecKind::ALL[i % 3].encoded_len(160))
                        .map(|j| (i * 7 + j * 13) as u8)
                        .collect()
                })
                .collect();
            let mut out = vec![0u8; 1500];
            let before = allocs();
            for t in 0..50u64 {
                for (i, s) in slots.iter().enumerate() {
                    if !(i as u64 + t).is_multiple_of(4) {
                        m.set_input(*s, Input::Encoded(&frames[i])).unwrap();
                    }
                }
                m.tick(Instant::from_nanos(t * 20_000_000));
                for (s, tx) in slots.iter().zip(senders.iter_mut()) {
                    let o = m.output(*s).unwrap();
                    tx.write_packet(&mut out, o.payload, 160, o.voiced).unwrap();
                }
                if t == 25 {
                    m.remove_participant(slots[3]).unwrap();
                    m.add_participant(ParticipantConfig::new(CodecKind::Pcma))
                        .unwrap();
                }
            }
            assert_eq!(allocs() - before, 0, "{} {active:?}", kernel.name());
        }
    }
}
