//! tutti-controlplane: the control plane's drivers, around the sans-IO control core
//! ([`tutti_control_core`], where every decision is made). This crate does the I/O:
//!
//! - [`http`]: the REST API (`/healthz`, `/v1/status`, `/metrics`, `/v1/conferences`,
//!   `/v1/call-managers`, `/v1/events`, `/openapi.json`, and the gateway API), each
//!   handler thin: parse and validate ([`http::dto`]) → call the core → map the answer
//!   or its [`ControlError`](tutti_control_core::ControlError) once ([`http::error`]);
//! - [`gateway`]: the peer client that carries the core's requests to mixers (reqwest)
//!   and feeds their answers back;
//! - [`events`]: the broadcaster of the core's events to `/v1/events` subscribers;
//! - [`store`]: the provisioning store (embedded redb) behind its bounded request queue;
//! - [`metrics`]: Prometheus text rendered at scrape time;
//! - [`pump`]: the task that feeds the core the dataplane's events and its timers on
//!   the injected clock, and carries out its effects.

#![forbid(unsafe_code)]
// The OpenAPI document is written as `json!` literals, deeper than the default limit.
#![recursion_limit = "256"]

pub mod clock;
pub mod events;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod pump;
pub mod sip;
pub mod store;
#[cfg(test)]
mod taps_test;
#[cfg(test)]
mod test_support;

pub use tokio_rustls;
pub use tutti_control_core::{directory, ivr, leases, media, orphan, reclaim, sessions};

use events::EventHub;
use media::MediaPlane;
use orphan::OrphanConfig;
use serde::Serialize;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tutti_control_core::{Control, ControlClock};
use tutti_dataplane::conference::{EngineCounters, MediaEvent};
use tutti_dataplane::stats::CoreCounters;

/// One dataplane core as the control plane sees it.
#[derive(Clone, Debug)]
pub struct CoreHandle {
    /// The EAL lcore id.
    pub lcore: u32,
    /// Its counters (written by that core only).
    pub counters: Arc<CoreCounters>,
    /// Its conference engine's counters (written by that core only).
    pub engine: Arc<EngineCounters>,
    /// Its gateway relay's counters (zero unless the appliance is a gateway).
    pub relay: Arc<tutti_dataplane::relay::RelayCounters>,
}

/// A port's state, read on demand (link state can change at any time).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PortStatus {
    pub device: String,
    pub driver: String,
    pub port_id: u16,
    pub mac: String,
    pub ipv4: String,
    pub gateway: Option<String>,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub queues: u16,
    pub rss: bool,
    pub mbufs_in_use: u64,
    /// The PMD's extended statistics (non-zero ones), by name.
    pub xstats: std::collections::BTreeMap<String, u64>,
}

/// Where port state comes from: the DPDK ports in production, a fixed list in tests.
pub trait PortSource: Send + Sync + 'static {
    fn ports(&self) -> Vec<PortStatus>;
}

/// What the drivers share.
#[derive(Clone)]
pub struct ControlState {
    pub cores: Arc<[CoreHandle]>,
    pub ports: Arc<dyn PortSource>,
    pub version: &'static str,
    /// The control core (which drives the conference-hosting dataplane cores).
    pub core: Arc<Mutex<Control>>,
    /// Events for `/v1/events` subscribers.
    pub events: EventHub,
    /// API request counters.
    pub api_metrics: Arc<metrics::ApiMetrics>,
    /// The control plane's one clock (the core runs on it too).
    pub clock: Arc<dyn ControlClock>,
    /// The gateway role, when configured.
    pub gateway: Option<Arc<gateway::Gateway>>,
    /// SIP counters, when the SIP user agent runs.
    pub sip: Option<Arc<sip::SipMetrics>>,
    /// The provisioning store's request queue (the binary always starts one).
    pub store: Option<store::queue::StoreQueue>,
    /// The SIP user agent, once it runs (dial-out).
    pub sip_ua: Arc<std::sync::OnceLock<std::sync::Weak<sip::ua::Ua>>>,
}

/// The control core, locked; the events it queued are published when the lock is let
/// go (so subscribers see them in order, and only changes that happened).
pub struct ControlGuard<'a> {
    guard: MutexGuard<'a, Control>,
    events: &'a EventHub,
    gateway: Option<&'a gateway::Gateway>,
}

impl Deref for ControlGuard<'_> {
    type Target = Control;
    fn deref(&self) -> &Control {
        &self.guard
    }
}

impl DerefMut for ControlGuard<'_> {
    fn deref_mut(&mut self) -> &mut Control {
        &mut self.guard
    }
}

impl Drop for ControlGuard<'_> {
    fn drop(&mut self) {
        while let Some(ev) = self.guard.poll_event() {
            self.events.publish(ev);
        }
        while let Some(o) = self.guard.poll_observation() {
            if let Some(g) = self.gateway {
                g.metrics.observe(o);
            }
        }
    }
}

impl ControlState {
    /// The state for `cores` (counters), `ports`, and the conference cores of `media`,
    /// with an empty control core on `clock` with reclamation timers `orphan` and its
    /// RNG seeded with `seed`.
    pub fn new(
        cores: impl Into<Arc<[CoreHandle]>>,
        ports: Arc<dyn PortSource>,
        media: Arc<dyn MediaPlane>,
        version: &'static str,
        clock: Arc<dyn ControlClock>,
        orphan: OrphanConfig,
        seed: u64,
    ) -> Self {
        let core = Control::new(media, clock.clone(), orphan, seed);
        ControlState {
            cores: cores.into(),
            ports,
            version,
            core: Arc::new(Mutex::new(core)),
            events: EventHub::default(),
            api_metrics: Arc::default(),
            clock,
            gateway: None,
            sip: None,
            store: None,
            sip_ua: Arc::default(),
        }
    }

    /// The same state with the provisioning store behind `queue`.
    pub fn with_store(mut self, queue: store::queue::StoreQueue) -> Self {
        self.store = Some(queue);
        self
    }

    /// The same state with the gateway role.
    pub fn with_gateway(mut self, gateway: gateway::Gateway) -> Self {
        self.control().enable_gateway(gateway.config().clone());
        self.gateway = Some(Arc::new(gateway));
        self
    }

    /// The control core, locked. Every change to it completes without panicking, so a
    /// poisoned lock (a panic elsewhere while holding it) still guards a consistent
    /// core and is taken over rather than failing every later request.
    pub fn control(&self) -> ControlGuard<'_> {
        ControlGuard {
            guard: self.core.lock().unwrap_or_else(PoisonError::into_inner),
            events: &self.events,
            gateway: self.gateway.as_deref(),
        }
    }

    /// Handle one event drained from dataplane core `core`'s event ring (index into
    /// `media.cores()`).
    pub fn media_event(&self, core: usize, ev: MediaEvent) {
        self.control().media_event(core, ev);
    }

    /// Handle one event from a dataplane core's relay (gateway role).
    pub fn relay_event(&self, ev: tutti_dataplane::relay::RelayEvent) {
        self.control().relay_event(ev);
    }

    /// One turn of the pump: run the core's timers due on the clock and send the peer
    /// requests it has queued. The binary calls it every few milliseconds; tests call it
    /// after moving their clock.
    pub fn poll(&self) {
        self.control().handle_timeout();
        if let Some(g) = &self.gateway {
            g.spawn_peer_driver(self);
            g.spawn_drain_driver(self);
        }
    }
}
