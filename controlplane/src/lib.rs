//! tutti-controlplane: the slow path. Serves the HTTP API (`/healthz`, `/v1/status`,
//! `/metrics`) on a thread outside the dataplane cores, reading the dataplane's per-core
//! counters at request time.

pub mod api;
pub mod metrics;

use serde::Serialize;
use std::sync::Arc;
use tutti_dataplane::stats::CoreCounters;

/// One dataplane core as the control plane sees it.
#[derive(Clone, Debug)]
pub struct CoreHandle {
    /// The EAL lcore id.
    pub lcore: u32,
    /// Its counters (written by that core only).
    pub counters: Arc<CoreCounters>,
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
}
