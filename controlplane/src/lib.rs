//! tutti-controlplane: the slow path. Serves the HTTP API (`/healthz`, `/v1/status`,
//! `/metrics`, the conference REST API under `/v1/conferences`, the event stream
//! `/v1/events` and `/openapi.json`) on a thread outside the dataplane cores, keeps the
//! session table and drives the dataplane cores through a [`media::MediaPlane`]. Call
//! managers hold leases (`/v1/call-managers`); the conferences of one whose lease
//! lapsed are orphaned and reclaimed ([`orphan`]).

pub mod api;
mod conferences;
pub mod events;
pub mod gateway;
pub mod leases;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod orphan;
pub mod reclaim;
pub mod sessions;
#[cfg(test)]
mod test_support;

use events::{Event, EventHub};
use media::MediaPlane;
use orphan::OrphanConfig;
use reclaim::{Reclaim, ReclaimMetrics};
use serde::Serialize;
use sessions::Sessions;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;
use tutti_dataplane::clock::Clock;
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

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ControlState {
    pub cores: Arc<[CoreHandle]>,
    pub ports: Arc<dyn PortSource>,
    pub version: &'static str,
    /// The conference-hosting dataplane cores.
    pub media: Arc<dyn MediaPlane>,
    /// The session table (over `media.cores()`).
    pub sessions: Arc<Mutex<Sessions>>,
    /// Events for `/v1/events` subscribers.
    pub events: EventHub,
    /// API request counters.
    pub api_metrics: Arc<metrics::ApiMetrics>,
    /// The clock of the dataplane's events (orphan timers and leases run on it).
    pub clock: Arc<dyn Clock + Send + Sync>,
    /// Call-manager leases and orphan reclamation. Lock order: `sessions`, then this.
    pub reclaim: Arc<Mutex<Reclaim>>,
    /// Reclamation counters.
    pub reclaim_metrics: Arc<ReclaimMetrics>,
    /// The gateway role, when configured.
    pub gateway: Option<Arc<gateway::Gateway>>,
}

impl ControlState {
    /// The state for `cores` (counters), `ports`, and the conference cores of `media`
    /// (`media.cores()` and its reclamation prompts are read once, here), with an empty
    /// session table; `clock` is the dataplane's and `orphan` the reclamation timers.
    pub fn new(
        cores: impl Into<Arc<[CoreHandle]>>,
        ports: Arc<dyn PortSource>,
        media: Arc<dyn MediaPlane>,
        version: &'static str,
        clock: Arc<dyn Clock + Send + Sync>,
        orphan: OrphanConfig,
    ) -> Self {
        let prompts = orphan::PromptTable::new(|p| {
            let id = media.prompt(p.name())?;
            Some((id, media.prompt_length(id)?))
        });
        ControlState {
            cores: cores.into(),
            ports,
            version,
            sessions: Arc::new(Mutex::new(Sessions::new(media.cores()))),
            media,
            events: EventHub::default(),
            api_metrics: Arc::default(),
            clock,
            reclaim: Arc::new(Mutex::new(Reclaim::new(orphan, prompts))),
            reclaim_metrics: Arc::default(),
            gateway: None,
        }
    }

    /// The same state with the gateway role.
    pub fn with_gateway(mut self, gateway: gateway::Gateway) -> Self {
        self.gateway = Some(Arc::new(gateway));
        self
    }

    /// Handle one event from a dataplane core's relay (gateway role).
    pub fn relay_event(&self, ev: tutti_dataplane::relay::RelayEvent) {
        if let Some(g) = &self.gateway {
            g.relay_event(ev);
        }
    }

    /// The session table, locked. Every change to it completes without panicking, so
    /// a poisoned lock (a panic elsewhere while holding it) still guards a consistent
    /// table and is taken over rather than failing every later request.
    pub fn lock_sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease table and orphan watches, locked (after the session table, if both
    /// are needed). Like the session table, a poisoned lock is taken over.
    pub fn lock_reclaim(&self) -> MutexGuard<'_, Reclaim> {
        self.reclaim.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Handle one event drained from dataplane core `core`'s event ring (index into
    /// `media.cores()`): map its keys to API ids, send it to `/v1/events` subscribers
    /// and feed it to the conference's orphan watch. Events about conferences or
    /// participants that no longer exist are dropped. The timestamp is the wall-clock
    /// time of this call, not `ev.at` (the dataplane clock has no wall-clock origin);
    /// the event ring is drained every few milliseconds, so the two differ by that much.
    pub fn media_event(&self, core: usize, ev: MediaEvent) {
        let mut t = self.lock_sessions();
        let Some(event) = Event::from_media(&t, self.media.as_ref(), core, &ev, SystemTime::now())
        else {
            return;
        };
        self.events.publish(event);
        let mut r = self.lock_reclaim();
        self.watch_event(&mut t, &mut r, &ev);
    }
}
