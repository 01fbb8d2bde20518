//! Any bytes as the JSON body of every REST request (mixer and gateway API): each
//! deserialises and validates into the core's request or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tutti_controlplane::http::dto;

/// `data` as a `T`, if it is one.
fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

fuzz_target!(|data: &[u8]| {
    if let Some(b) = body::<dto::CreateConference>(data) {
        let _ = b.validate();
    }
    if let Some(b) = body::<dto::AddParticipant>(data) {
        let _ = b.validate();
    }
    if let Some(b) = body::<dto::PatchParticipant>(data) {
        let _ = b.validate();
    }
    if let Some(b) = body::<dto::PutRtpBasis>(data) {
        let _ = b.basis();
    }
    if let Some(b) = body::<dto::CreateRelayedConference>(data) {
        let _ = b.validate();
    }
    if let Some(b) = body::<dto::HandoverRequest>(data) {
        let _ = b.validate();
    }
    let _ = body::<dto::PlayPrompt>(data);
    let _ = body::<dto::Heartbeat>(data);
    let _ = body::<dto::Adopt>(data);
});
