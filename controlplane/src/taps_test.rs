//! The control side of audio taps over the test media plane (which keeps each tap's core
//! end as a dataplane core would).

use crate::test_support::{harness, json, media_core};
use axum::http::{Method, StatusCode};
use tutti_control_core::control::TapOn;
use tutti_control_core::error::ControlError;
use tutti_control_core::sessions::SessionError;
use tutti_dataplane::conference::MediaOp;
use tutti_dataplane::tap::{TapRead, TapSource};

#[tokio::test(flavor = "current_thread")]
async fn taps_are_added_read_and_end_when_removed_or_their_conference_goes() {
    let h = harness(vec![media_core(10)]);
    let st = &h.state;
    let (code, _) = json(st, Method::POST, "/v1/conferences", Some(r#"{"id": "a"}"#)).await;
    assert_eq!(code, StatusCode::CREATED);
    let alice = r#"{"remote": "198.18.0.2:4000", "codec": "pcmu"}"#;
    let (code, p) = json(
        st,
        Method::POST,
        "/v1/conferences/a/participants",
        Some(alice),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let conf = st.control().sessions().conference("a").unwrap().key;
    let part = st.control().sessions().participant("a", &pid).unwrap().key;

    let (mix, mut mix_reader) = st.control().add_tap("a", TapOn::Mix).unwrap();
    let (input, mut in_reader) = st.control().add_tap("a", TapOn::Input(&pid)).unwrap();
    assert_ne!(mix, input);
    // 20 ms at 8 kHz, in a ring of a second.
    assert_eq!(mix_reader.spec().frame_samples, 160);
    assert_eq!(mix_reader.spec().frames, 50);
    assert_eq!(mix_reader.spec().source, TapSource::Mix);
    assert_eq!(in_reader.spec().source, TapSource::Input(part));

    let frame: Vec<i16> = (0..160).collect();
    h.media.push_taps(conf, &frame);
    let mut got = [0i16; 160];
    assert_eq!(in_reader.read(&mut got), TapRead::Frame);
    assert_eq!(got[..], frame[..]);
    assert_eq!(in_reader.read(&mut got), TapRead::Empty);

    st.control().remove_tap("a", input).unwrap();
    assert!(h
        .media
        .ops()
        .contains(&(0, MediaOp::RemoveTap { conf, tap: input })));
    assert_eq!(in_reader.read(&mut got), TapRead::Ended);

    // The mix tap ends with its conference, once its queued frame is read.
    let (code, _) = crate::test_support::send(st, Method::DELETE, "/v1/conferences/a", None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(mix_reader.read(&mut got), TapRead::Frame);
    assert_eq!(mix_reader.read(&mut got), TapRead::Ended);
}

#[tokio::test(flavor = "current_thread")]
async fn taps_of_unknown_conferences_or_participants_are_not_found() {
    let h = harness(vec![media_core(10)]);
    let st = &h.state;
    let not_found_conf = st.control().add_tap("nope", TapOn::Mix).err();
    assert!(
        matches!(
            not_found_conf,
            Some(ControlError::Session(SessionError::NoSuchConference(_)))
        ),
        "{not_found_conf:?}"
    );
    json(st, Method::POST, "/v1/conferences", Some(r#"{"id": "a"}"#)).await;
    let unknown = st.control().add_tap("a", TapOn::Output("p-9")).err();
    assert!(
        matches!(
            unknown,
            Some(ControlError::Session(
                SessionError::NoSuchParticipant { .. }
            ))
        ),
        "{unknown:?}"
    );
    let gone = st
        .control()
        .remove_tap("b", tutti_dataplane::tap::TapKey(1))
        .err();
    assert!(gone.is_some());
    // A full command ring is the dataplane's refusal, passed on.
    h.media.set_busy(true);
    let busy = st.control().add_tap("a", TapOn::Mix).err();
    assert!(matches!(busy, Some(ControlError::Media(_))), "{busy:?}");
    assert!(h.media.taps.lock().unwrap().is_empty());
}
