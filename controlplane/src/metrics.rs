//! Prometheus metrics, rendered at scrape time from the dataplane's per-core counters and
//! the ports' state (prometheus-client, OpenMetrics text).

use crate::{ControlState, PortStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use tutti_dataplane::stats::{CoreCounters, DropReason};

/// Content type of [`render`]'s output.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`to_prometheus_text`]'s output (the classic text format 0.0.4).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

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
        let labels = labels.as_slice();
        m.encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

fn per_core<'a>(
    cores: &'a [crate::CoreHandle],
    f: impl Fn(&CoreCounters) -> u64 + 'a,
) -> impl Iterator<Item = (Labels, ConstCounter<u64>)> + 'a {
    cores.iter().map(move |c| {
        (
            vec![("core", c.lcore.to_string())],
            ConstCounter::new(f(&c.counters)),
        )
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
        let counter = MetricType::Counter;
        family(
            &mut enc,
            "tutti_rx_packets",
            "Packets received by the dataplane core",
            counter,
            per_core(cores, |c| c.rx_packets.get()),
        )?;
        family(
            &mut enc,
            "tutti_rx_bytes",
            "Bytes received by the dataplane core",
            counter,
            per_core(cores, |c| c.rx_bytes.get()),
        )?;
        family(
            &mut enc,
            "tutti_tx_packets",
            "Packets sent by the dataplane core",
            counter,
            per_core(cores, |c| c.tx_packets.get()),
        )?;
        family(
            &mut enc,
            "tutti_tx_bytes",
            "Bytes sent by the dataplane core",
            counter,
            per_core(cores, |c| c.tx_bytes.get()),
        )?;
        family(
            &mut enc,
            "tutti_arp_replies",
            "ARP replies sent for our addresses",
            counter,
            per_core(cores, |c| c.arp_replies_sent.get()),
        )?;
        family(
            &mut enc,
            "tutti_arp_requests",
            "ARP requests sent to resolve next hops",
            counter,
            per_core(cores, |c| c.arp_requests_sent.get()),
        )?;
        family(
            &mut enc,
            "tutti_icmp_echo_replies",
            "ICMP echo replies sent",
            counter,
            per_core(cores, |c| c.icmp_echo_replies.get()),
        )?;
        family(
            &mut enc,
            "tutti_loop_iterations",
            "Poll-loop iterations",
            counter,
            per_core(cores, |c| c.iterations.get()),
        )?;
        let drops = cores.iter().flat_map(|c| {
            DropReason::ALL.iter().map(move |r| {
                (
                    vec![
                        ("core", c.lcore.to_string()),
                        ("reason", r.as_str().to_string()),
                    ],
                    ConstCounter::new(c.counters.drops(*r)),
                )
            })
        });
        family(
            &mut enc,
            "tutti_dropped_packets",
            "Packets dropped by the dataplane, by reason",
            counter,
            drops,
        )?;
        let busy = cores.iter().map(|c| {
            (
                vec![("core", c.lcore.to_string())],
                ConstGauge::new(c.counters.busy_ratio()),
            )
        });
        family(
            &mut enc,
            "tutti_core_busy_ratio",
            "Share of the poll loop's time spent moving packets (since start)",
            MetricType::Gauge,
            busy,
        )?;

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
        Ok(())
    }
}

/// Render every metric as OpenMetrics text.
pub fn render(state: &ControlState) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Dataplane {
        state: ControlStateRef(state.clone()),
    }));
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
