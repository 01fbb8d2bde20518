//! The event broadcaster for `GET /v1/events`: the events the control core queues are
//! published here; a subscriber that falls behind misses events and is told how many.

use futures_util::Stream;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
pub use tutti_control_core::events::{timestamp, Detail, Event};

/// Events a subscriber may fall behind by before it misses some.
pub const BACKLOG: usize = 1024;

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// The next event.
    Event(Event),
    /// The subscriber fell behind and missed this many events.
    Lagged(u64),
}

/// The broadcaster: publish events, subscribe to them, and end every subscription at
/// shutdown (so that long-lived event streams do not hold the server open).
#[derive(Clone, Debug)]
pub struct EventHub {
    tx: broadcast::Sender<Event>,
    closed: Arc<watch::Sender<bool>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(BACKLOG).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

/// The `lagged` event: the subscriber missed `missed` events before `at`.
pub fn lagged(missed: u64, at: std::time::SystemTime) -> serde_json::Value {
    serde_json::json!({
        "type": "lagged",
        "conference": null,
        "participant": null,
        "timestamp": timestamp(at),
        "missed": missed,
    })
}

impl EventHub {
    /// Send `ev` to every current subscriber (none is fine).
    pub fn publish(&self, ev: Event) {
        // Every event any test makes must match its schema in the OpenAPI document.
        #[cfg(test)]
        crate::http::openapi::check::event_documented(&ev);
        // An error only means nobody is listening.
        let _ = self.tx.send(ev);
    }

    /// Events from now on, until [`EventHub::close`].
    pub fn subscribe(&self) -> impl Stream<Item = Delivery> + Send + 'static {
        let state = (self.tx.subscribe(), self.closed.subscribe());
        futures_util::stream::unfold(state, |(mut rx, mut closed)| async move {
            let delivery = tokio::select! {
                biased;
                _ = closed.wait_for(|c| *c) => return None,
                r = rx.recv() => match r {
                    Ok(ev) => Delivery::Event(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => Delivery::Lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            Some((delivery, (rx, closed)))
        })
    }

    /// End every subscription, now and later.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::time::SystemTime;

    /// The `n`th of a run of events, told apart by their call manager.
    fn ev(n: usize) -> Event {
        Event::lease("lease_renewed", &format!("cm{n}"), SystemTime::UNIX_EPOCH)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn subscribers_get_events_lag_notes_and_the_end() {
        let hub = EventHub::default();
        let mut sub = Box::pin(hub.subscribe());
        hub.publish(ev(0));
        assert_eq!(sub.next().await, Some(Delivery::Event(ev(0))));
        for n in 0..BACKLOG + 5 {
            hub.publish(ev(n));
        }
        assert_eq!(sub.next().await, Some(Delivery::Lagged(5)));
        assert_eq!(sub.next().await, Some(Delivery::Event(ev(5))));
        hub.close();
        assert_eq!(sub.next().await, None);
        assert_eq!(Box::pin(hub.subscribe()).next().await, None);
    }
}
