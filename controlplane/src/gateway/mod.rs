//! The gateway role's drivers: the peer client ([`peer`]) that carries the control
//! core's requests to the mixers and feeds their answers back, and the handover
//! metrics. The gateway's table, its decisions and the handover plan are the core's
//! ([`tutti_control_core::gateway`]); its API handlers are in [`crate::http`].

pub mod peer;
#[cfg(test)]
mod tests;

use crate::ControlState;
use peer::{MixerAccess, MixerClient};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tutti_control_core::gateway::handover::Mode;
use tutti_control_core::gateway::Observation;
pub use tutti_control_core::gateway::{GatewayConfig, HandoverSettings};

/// Handover counters and timings.
#[derive(Debug)]
pub struct HandoverMetrics {
    pub(crate) handovers: Family<ResultLabel, Counter>,
    pub(crate) duration: Histogram,
    pub(crate) extra_delay: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ResultLabel {
    result: &'static str,
}

impl Default for HandoverMetrics {
    fn default() -> Self {
        let m = HandoverMetrics {
            handovers: Family::default(),
            duration: Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
            extra_delay: Histogram::new([0.0, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1]),
        };
        for result in ["completed", "aborted"] {
            let _ = m.handovers.get_or_create(&ResultLabel { result });
        }
        m
    }
}

impl HandoverMetrics {
    /// Record one of the core's measurements.
    pub fn observe(&self, o: Observation) {
        match o {
            Observation::HandoverFinished { completed, took } => {
                let result = if completed { "completed" } else { "aborted" };
                self.handovers.get_or_create(&ResultLabel { result }).inc();
                self.duration.observe(took.as_secs_f64());
            }
            Observation::ExtraDelay(d) => self.extra_delay.observe(d.as_secs_f64()),
        }
    }
}

/// The gateway role's drivers.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    pub(crate) client: MixerClient,
    pub metrics: HandoverMetrics,
    /// A task is sending the core's peer requests.
    driving: Arc<AtomicBool>,
    /// A task is starting the handovers of draining mixers.
    draining: Arc<AtomicBool>,
}

impl Gateway {
    /// The gateway for `config`, reaching its mixers with `access`.
    pub fn new(config: GatewayConfig, access: MixerAccess) -> Result<Gateway, String> {
        Ok(Gateway {
            client: MixerClient::new(config.handover.mixer_timeout, access)?,
            config,
            metrics: HandoverMetrics::default(),
            driving: Arc::default(),
            draining: Arc::default(),
        })
    }

    /// Its settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Start a task sending the peer requests the core queued, unless one runs.
    pub(crate) fn spawn_peer_driver(&self, state: &ControlState) {
        if state.control().peer_requests_queued() == 0 || self.driving.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (state, driving) = (state.clone(), self.driving.clone());
        tokio::spawn(async move {
            state.drive_peers().await;
            driving.store(false, Ordering::Release);
        });
    }
}

impl Gateway {
    /// Start handing over the conferences of draining mixers that are due (unless that
    /// is under way already).
    pub(crate) fn spawn_drain_driver(&self, state: &ControlState) {
        let any = state.control().gateway().is_ok_and(|t| t.draining_any());
        if !any || self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        let (state, draining) = (state.clone(), self.draining.clone());
        tokio::spawn(async move {
            state.drive_drain().await;
            draining.store(false, Ordering::Release);
        });
    }
}

impl ControlState {
    /// Start a handover for each conference of a draining mixer the core says is due,
    /// to the freest mixer that takes conferences, and send the peer requests that
    /// queues. One that cannot start is tried again later (the core's retry time).
    pub async fn drive_drain(&self) {
        let Some(g) = self.gateway.clone() else {
            return;
        };
        let due = self.control().gw_drain_due();
        for (id, from) in due {
            let started = match crate::http::gateway::freest_mixer(self, &g, Some(&from)).await {
                Ok(to) => self
                    .control()
                    .gw_start_handover(&id, &from, to, Mode::Rewrite),
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                tracing::warn!(conference = %id, mixer = %from, error = %e, "drain: handover not started; trying again later");
            }
        }
        self.drive_peers().await;
    }

    /// Send the peer requests the core queued, one at a time, each answer back to the
    /// core, until it queues no more.
    pub async fn drive_peers(&self) {
        let Some(g) = self.gateway.clone() else {
            return;
        };
        loop {
            let Some((id, req)) = self.control().poll_peer_request() else {
                return;
            };
            let result = g.client.execute(&req).await;
            if let Err(e) = &result {
                tracing::warn!(mixer = %req.mixer, error = %e, "peer request failed");
            }
            self.control().handle_peer_response(id, result);
        }
    }
}
