//! Prometheus metrics, rendered at scrape time from the dataplane's per-core counters,
//! the ports' state and the control core's tables and counts, plus the API's request
//! counters (prometheus-client, OpenMetrics text).

use crate::{ControlState, PortStatus};
use axum::http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use tutti_control_core::orphan::Reason;
use tutti_control_core::reclaim::ReclaimCounts;
use tutti_dataplane::stats::{
    CoreCounters, DropReason, ExceptionDrop, LatencyHistogram, LATENCY_BOUNDS_US,
};

/// A histogram read from a [`LatencyHistogram`] (merged over cores), in seconds.
#[derive(Debug)]
struct SecondsHistogram {
    sum_s: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl SecondsHistogram {
    fn merged<'a>(hists: impl Iterator<Item = &'a LatencyHistogram>) -> SecondsHistogram {
        let mut counts = [0u64; LATENCY_BOUNDS_US.len() + 1];
        let mut sum_ns = 0u64;
        for h in hists {
            for (c, n) in counts.iter_mut().zip(h.counts()) {
                *c += n;
            }
            sum_ns += h.sum_ns();
        }
        let buckets = counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let bound = LATENCY_BOUNDS_US
                    .get(i)
                    .map_or(f64::MAX, |us| *us as f64 / 1e6);
                (bound, *n)
            })
            .collect();
        SecondsHistogram {
            sum_s: sum_ns as f64 / 1e9,
            count: counts.iter().sum(),
            buckets,
        }
    }
}

impl EncodeMetric for SecondsHistogram {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> fmt::Result {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum_s,
            self.count,
            &self.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Per-core counters, one family each (name, help, reader): the poll loop's and its
/// conference engine's.
type CoreCounter = (&'static str, &'static str, fn(&crate::CoreHandle) -> u64);
const CORE_COUNTERS: [CoreCounter; 31] = [
    (
        "tutti_rx_packets",
        "Packets received by the dataplane core",
        |c| c.counters.rx_packets.get(),
    ),
    (
        "tutti_rx_bytes",
        "Bytes received by the dataplane core",
        |c| c.counters.rx_bytes.get(),
    ),
    (
        "tutti_tx_packets",
        "Packets sent by the dataplane core",
        |c| c.counters.tx_packets.get(),
    ),
    ("tutti_tx_bytes", "Bytes sent by the dataplane core", |c| {
        c.counters.tx_bytes.get()
    }),
    (
        "tutti_arp_replies",
        "ARP replies sent for our addresses",
        |c| c.counters.arp_replies_sent.get(),
    ),
    (
        "tutti_arp_requests",
        "ARP requests sent to resolve next hops",
        |c| c.counters.arp_requests_sent.get(),
    ),
    ("tutti_icmp_echo_replies", "ICMP echo replies sent", |c| {
        c.counters.icmp_echo_replies.get()
    }),
    (
        "tutti_exception_punted_packets",
        "Frames sent to the kernel through the exception port",
        |c| c.counters.exception_punted.get(),
    ),
    (
        "tutti_exception_injected_packets",
        "Frames from the kernel's exception interface sent out of the NIC",
        |c| c.counters.exception_injected.get(),
    ),
    ("tutti_loop_iterations", "Poll-loop iterations", |c| {
        c.counters.iterations.get()
    }),
    ("tutti_mix_ticks", "Conference mixing ticks run", |c| {
        c.engine.ticks.get()
    }),
    (
        "tutti_tick_overruns",
        "Mixing ticks that ran a whole ptime late",
        |c| c.engine.tick_overruns.get(),
    ),
    (
        "tutti_rtp_received_packets",
        "RTP packets received for participants",
        |c| c.engine.rtp_in.get(),
    ),
    (
        "tutti_rtp_sent_packets",
        "RTP packets sent to participants",
        |c| c.engine.rtp_out.get(),
    ),
    (
        "tutti_rtcp_received_packets",
        "RTCP packets received from participants",
        |c| c.engine.rtcp_in.get(),
    ),
    (
        "tutti_rtcp_sent_packets",
        "RTCP reports sent to participants",
        |c| c.engine.rtcp_out.get(),
    ),
    (
        "tutti_rtp_late_packets",
        "RTP packets that arrived after their playout time",
        |c| c.engine.rtp_late.get(),
    ),
    (
        "tutti_rtp_duplicate_packets",
        "RTP packets received twice",
        |c| c.engine.rtp_duplicate.get(),
    ),
    (
        "tutti_srtp_auth_failures",
        "SRTP/SRTCP packets that failed authentication (tampered or wrong key)",
        |c| c.engine.srtp_auth_failures.get() + c.relay.srtp_auth_failures.get(),
    ),
    (
        "tutti_srtp_replayed_packets",
        "SRTP/SRTCP packets refused by the replay window",
        |c| c.engine.srtp_replays.get() + c.relay.srtp_replays.get(),
    ),
    (
        "tutti_rtp_reordered_packets",
        "RTP packets older than one already received",
        |c| c.engine.rtp_reordered.get(),
    ),
    (
        "tutti_rtp_lost_frames",
        "Frames concealed because their packet was lost",
        |c| c.engine.frames_lost.get(),
    ),
    (
        "tutti_rtp_refused_packets",
        "RTP refused: foreign source, unknown payload type, sequence jump",
        |c| c.engine.rtp_dropped.get(),
    ),
    (
        "tutti_timeline_jumps",
        "Input-timed conferences re-anchored after a participant's timestamps jumped",
        |c| c.engine.timeline_jumps.get(),
    ),
    (
        "tutti_relay_client_packets",
        "Packets from relayed clients (gateway role)",
        |c| c.relay.from_clients.get(),
    ),
    (
        "tutti_relay_mixer_packets",
        "Packets from mixers for relayed clients (gateway role)",
        |c| c.relay.from_mixers.get(),
    ),
    (
        "tutti_relay_duplicated_packets",
        "Clients' packets also sent to the mixer a handover moves them to",
        |c| c.relay.duplicated.get(),
    ),
    (
        "tutti_relay_held_packets",
        "Mixer packets held back to line two mixers' streams up",
        |c| c.relay.held.get(),
    ),
    (
        "tutti_relay_superseded_packets",
        "Mixer packets not forwarded because the other mixer's copy of the frame was",
        |c| c.relay.superseded.get(),
    ),
    (
        "tutti_relay_dropped_packets",
        "Relayed packets dropped: foreign source, malformed, or next hop unresolved",
        |c| c.relay.foreign.get() + c.relay.malformed.get() + c.relay.unroutable.get(),
    ),
    (
        "tutti_relay_srtp_failures",
        "Relayed packets SRTP could not protect for their client or unprotect (not auth or replay)",
        |c| c.relay.srtp_failures.get(),
    ),
];

/// Content type of [`render`]'s output.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`to_prometheus_text`]'s output (the classic text format 0.0.4).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// API requests answered, by method, route template and status.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
}

impl ApiMetrics {
    /// Count one answered request. `route` is the matched route template (such as
    /// `/v1/conferences/{id}`), never the raw path, so the label set stays bounded.
    pub fn record(&self, method: &Method, route: &str, status: StatusCode) {
        let method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
            .into_iter()
            .find(|m| *m == method.as_str())
            .unwrap_or("other");
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_string(),
                status: status.as_u16(),
            })
            .inc();
    }
}

#[derive(Debug)]
struct Dataplane {
    state: ControlStateRef,
}

/// The collector holds the shared state (the registry wants 'static collectors).
#[derive(Clone)]
struct ControlStateRef(ControlState);

impl fmt::Debug for ControlStateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlState")
    }
}

type Labels = Vec<(&'static str, String)>;

fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> fmt::Result {
    let mut fam = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, m) in samples {
        if labels.is_empty() {
            m.encode(fam)?;
            return Ok(());
        }
        let labels = labels.as_slice();
        m.encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

fn per_core<'a, M: EncodeMetric + 'a>(
    cores: &'a [crate::CoreHandle],
    f: impl Fn(&crate::CoreHandle) -> M + 'a,
) -> impl Iterator<Item = (Labels, M)> + 'a {
    cores
        .iter()
        .map(move |c| (vec![("core", c.lcore.to_string())], f(c)))
}

/// One counter per core and drop reason, labelled `core` and `reason`.
fn per_core_reason<'a, R: Copy + 'a>(
    cores: &'a [crate::CoreHandle],
    reasons: &'a [R],
    name: fn(R) -> &'static str,
    read: fn(&CoreCounters, R) -> u64,
) -> impl Iterator<Item = (Labels, ConstCounter)> + 'a {
    cores.iter().flat_map(move |c| {
        reasons.iter().map(move |&r| {
            (
                vec![
                    ("core", c.lcore.to_string()),
                    ("reason", name(r).to_string()),
                ],
                ConstCounter::new(read(&c.counters, r)),
            )
        })
    })
}

fn per_port<'a, M: EncodeMetric + 'a>(
    ports: &'a [PortStatus],
    f: impl Fn(&PortStatus) -> M + 'a,
) -> impl Iterator<Item = (Labels, M)> + 'a {
    ports
        .iter()
        .map(move |p| (vec![("port", p.device.clone())], f(p)))
}

impl Collector for Dataplane {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let cores = &self.state.0.cores;
        for (name, help, read) in CORE_COUNTERS {
            let samples = per_core(cores, move |c| ConstCounter::new(read(c)));
            family(&mut enc, name, help, MetricType::Counter, samples)?;
        }
        let latency = SecondsHistogram::merged(cores.iter().map(|c| &c.engine.mix_latency));
        family(
            &mut enc,
            "tutti_mix_latency_seconds",
            "From a conference tick's due time to its last packet queued, all cores",
            MetricType::Histogram,
            [(Labels::new(), latency)],
        )?;
        let jitter = SecondsHistogram::merged(cores.iter().map(|c| &c.engine.jitter));
        family(
            &mut enc,
            "tutti_rtp_jitter_seconds",
            "Participants' RFC 3550 interarrival jitter, sampled once a second each",
            MetricType::Histogram,
            [(Labels::new(), jitter)],
        )?;
        let counter = MetricType::Counter;
        let handoff = cores.iter().flat_map(|c| {
            [
                ("out", c.counters.handoff_out.get()),
                ("in", c.counters.handoff_in.get()),
            ]
            .map(|(dir, v)| {
                (
                    vec![
                        ("core", c.lcore.to_string()),
                        ("direction", dir.to_string()),
                    ],
                    ConstCounter::new(v),
                )
            })
        });
        family(
            &mut enc,
            "tutti_handoff_packets",
            "Packets handed to (out) or taken from (in) another core because that core owns their UDP port",
            counter,
            handoff,
        )?;
        family(
            &mut enc,
            "tutti_dropped_packets",
            "Packets dropped by the dataplane, by reason",
            counter,
            per_core_reason(cores, &DropReason::ALL, DropReason::as_str, |c, r| {
                c.drops(r)
            }),
        )?;
        family(
            &mut enc,
            "tutti_exception_dropped_packets",
            "Frames dropped on the exception path (to or from the kernel), by reason",
            counter,
            per_core_reason(cores, &ExceptionDrop::ALL, ExceptionDrop::as_str, |c, r| {
                c.exception_drops(r)
            }),
        )?;
        let busy = per_core(cores, |c| ConstGauge::new(c.counters.busy_ratio()));
        family(
            &mut enc,
            "tutti_core_busy_ratio",
            "Share of the poll loop's time spent moving packets (since start)",
            MetricType::Gauge,
            busy,
        )?;
        // For rate(): busy over run seconds in any window gives the recent busy ratio.
        for (name, help, read) in [
            (
                "tutti_core_busy_seconds",
                "Seconds the poll loop spent in iterations that did work",
                (|c: &CoreCounters| c.busy_ns.get()) as fn(&CoreCounters) -> u64,
            ),
            (
                "tutti_core_run_seconds",
                "Seconds the poll loop has run",
                |c: &CoreCounters| c.total_ns.get(),
            ),
        ] {
            let samples = per_core(cores, move |c| {
                ConstCounter::new(read(&c.counters) as f64 / 1e9)
            });
            family(&mut enc, name, help, MetricType::Counter, samples)?;
        }

        let ports = self.state.0.ports.ports();
        family(
            &mut enc,
            "tutti_port_link_up",
            "1 when the port's link is up",
            MetricType::Gauge,
            per_port(&ports, |p| ConstGauge::new(i64::from(p.link_up))),
        )?;
        family(
            &mut enc,
            "tutti_port_link_speed_mbps",
            "Link speed reported by the PMD",
            MetricType::Gauge,
            per_port(&ports, |p| ConstGauge::new(i64::from(p.speed_mbps))),
        )?;
        family(
            &mut enc,
            "tutti_mbufs_in_use",
            "Packet buffers allocated from the port's pools",
            MetricType::Gauge,
            per_port(&ports, |p| ConstGauge::new(p.mbufs_in_use as i64)),
        )?;

        let (loads, orphaned, leases, counts) = {
            let c = self.state.0.control();
            let leases: Vec<(Labels, ConstGauge)> = c
                .reclaim()
                .leases()
                .iter()
                .map(|(cm, l)| {
                    (
                        vec![("cm", cm.to_string())],
                        ConstGauge::new(i64::from(!l.lapsed)),
                    )
                })
                .collect();
            (
                c.sessions().core_loads().collect::<Vec<_>>(),
                c.reclaim().orphaned(),
                leases,
                c.reclaim_counts().clone(),
            )
        };
        let per_media_core = |f: fn(&crate::sessions::CoreLoad) -> u32| {
            loads.iter().map(move |l| {
                (
                    vec![("core", l.lcore.to_string())],
                    ConstGauge::new(i64::from(f(l))),
                )
            })
        };
        family(
            &mut enc,
            "tutti_conferences",
            "Conferences on the dataplane core",
            MetricType::Gauge,
            per_media_core(|l| l.conferences),
        )?;
        family(
            &mut enc,
            "tutti_participants",
            "Participants on the dataplane core",
            MetricType::Gauge,
            per_media_core(|l| l.participants),
        )?;
        family(
            &mut enc,
            "tutti_participant_capacity",
            "Participants the dataplane core admits",
            MetricType::Gauge,
            per_media_core(|l| l.capacity),
        )?;

        family(
            &mut enc,
            "tutti_orphaned_conferences",
            "Conferences whose call manager's lease lapsed, being reclaimed",
            MetricType::Gauge,
            [(
                Labels::new(),
                ConstGauge::new(i64::try_from(orphaned).unwrap_or(i64::MAX)),
            )],
        )?;
        family(
            &mut enc,
            "tutti_call_manager_lease_up",
            "1 while the call manager's lease is live, 0 once it lapsed",
            MetricType::Gauge,
            leases,
        )?;
        for (name, help, read) in [
            (
                "tutti_reclaimed_conferences",
                "Orphaned conferences released by the reclamation procedure, by reason",
                ReclaimCounts::reclaimed as fn(&ReclaimCounts, Reason) -> u64,
            ),
            (
                "tutti_deleted_participants",
                "Participants deleted by the orphan reclamation procedure, by reason",
                ReclaimCounts::deleted,
            ),
        ] {
            let samples = Reason::ALL.iter().map(|r| {
                (
                    vec![("reason", r.as_str().to_string())],
                    ConstCounter::new(read(&counts, *r)),
                )
            });
            family(&mut enc, name, help, MetricType::Counter, samples)?;
        }
        Ok(())
    }
}

/// Render every metric as OpenMetrics text.
pub fn render(state: &ControlState) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Dataplane {
        state: ControlStateRef(state.clone()),
    }));
    registry.register(
        "tutti_api_requests",
        "API requests answered, by method, route template and status",
        state.api_metrics.requests.clone(),
    );
    if let Some(g) = &state.gateway {
        registry.register(
            "tutti_handovers",
            "Conference handovers between mixers, by result",
            g.metrics.handovers.clone(),
        );
        registry.register(
            "tutti_handover_duration_seconds",
            "Time from a handover request to its end",
            g.metrics.duration.clone(),
        );
        registry.register(
            "tutti_handover_extra_delay_seconds",
            "Delay added to a client's stream at its cut-over",
            g.metrics.extra_delay.clone(),
        );
    }
    if let Some(sip) = &state.sip {
        registry.register(
            "tutti_sip_requests",
            "SIP requests answered, by method and status code",
            sip.requests.clone(),
        );
        registry.register(
            "tutti_sip_dialogs",
            "SIP dialogs (calls) up",
            sip.dialogs.clone(),
        );
    }
    if let Some(store) = &state.store {
        registry.register(
            "tutti_store_requests",
            "Provisioning store requests, by operation and result (ok, busy, timeout, \
             closed, corrupt, error)",
            store.metrics().requests.clone(),
        );
        let depth = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        depth.set(i64::try_from(store.depth()).unwrap_or(i64::MAX));
        registry.register(
            "tutti_store_queue_depth",
            "Provisioning store requests waiting for the store",
            depth,
        );
    }
    let mut out = String::with_capacity(8192);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Convert [`render`]'s OpenMetrics text to the classic Prometheus text format, for
/// scrapers and tools (promtool) that do not ask for OpenMetrics: counter families are
/// named with their `_total` suffix and the `# EOF` marker goes.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                pending_help = Some((name, help));
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = if ty == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((hname, help)) = pending_help.take() {
                if hname == name {
                    out.push_str(&format!("# HELP {family} {help}\n"));
                }
            }
            out.push_str(&format!("# TYPE {family} {ty}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_suffix_in_classic_text() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{core=\"1\"} 3\n# HELP g Level.\n# TYPE g gauge\ng 1.5\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{core=\"1\"} 3\n# HELP g Level.\n# TYPE g gauge\ng 1.5\n"
        );
    }
}
