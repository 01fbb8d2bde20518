//! The pump: the task that keeps the control core fed. Every turn it hands the
//! dataplane's rings to the binary's `drain` (which gives each media and relay event to
//! [`ControlState::media_event`] / [`ControlState::relay_event`] and frees what the
//! cores retired), then runs the core's timers due on the injected clock and starts
//! sending the peer requests the core queued ([`ControlState::poll`]).

use crate::ControlState;
use std::time::Duration;

/// Run the pump on `state` every `every`, forever.
pub async fn run(state: ControlState, every: Duration, mut drain: impl FnMut(&ControlState)) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        drain(&state);
        state.poll();
    }
}
