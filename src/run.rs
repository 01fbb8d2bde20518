//! `tutti run`: bring up the EAL, the ports and one poll loop per dataplane core, serve
//! the control API on this thread, and on SIGINT/SIGTERM take it all down in order.

use crate::config::{Config, ExceptionKind, PortConfig};
use crate::kernel::{self, KernelSide};
use crate::media::{DpdkMedia, MediaPump};
use anyhow::{bail, Context};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};
use tutti_controlplane::clock::{entropy_seed, SystemClock};
use tutti_controlplane::gateway::Gateway;
use tutti_controlplane::media::MediaCore;
use tutti_controlplane::sip;
use tutti_controlplane::{http as api, ControlState, CoreHandle, PortSource, PortStatus};
use tutti_dataplane::conference::{Engine, EngineCounters};
use tutti_dataplane::host::{uplink, CorePorts, PortTable};
use tutti_dataplane::poll::{command_ring, Handoff, PollLoop, PortAddr, RingPair};
use tutti_dataplane::relay::{Relay, RelayCounters};
use tutti_dataplane::rx::PromptLibrary;
use tutti_dataplane::stats::CoreCounters;
use tutti_dpdk::{launch, leaked_pools, mbuf_ring, Eal, Mbuf, Mempool, Port, PortSetup, TscClock};

/// Packets in flight between two cores at most (an rte_ring size: a power of two).
const HANDOFF_RING: u32 = 4096;
/// Buffers in each core's pool for its exception queue pair (rx and tx rings of 1024,
/// the punt copies and what is in flight).
const EXCEPTION_MBUFS: u32 = 4095;
/// Media events buffered per core before they are counted as lost.
const EVENT_RING: usize = 65_536;
/// How often the control core drains the cores' event and retired rings.
const PUMP_INTERVAL: Duration = Duration::from_millis(5);

/// The spoken prompts shipped in the repository (`prompts/`, made by
/// scripts/make-prompts), built into the binary so a configuration without a prompts
/// directory still has them.
const BUILT_IN_PROMPTS: [(&str, &[u8]); 18] = [
    ("stay", include_bytes!("../prompts/stay.wav")),
    ("goodbye", include_bytes!("../prompts/goodbye.wav")),
    ("disconnect", include_bytes!("../prompts/disconnect.wav")),
    ("enter-code", include_bytes!("../prompts/enter-code.wav")),
    (
        "invalid-code",
        include_bytes!("../prompts/invalid-code.wav"),
    ),
    ("joining", include_bytes!("../prompts/joining.wav")),
    ("enter-pin", include_bytes!("../prompts/enter-pin.wav")),
    ("invalid-pin", include_bytes!("../prompts/invalid-pin.wav")),
    ("try-later", include_bytes!("../prompts/try-later.wav")),
    ("ivr-goodbye", include_bytes!("../prompts/ivr-goodbye.wav")),
    (
        "conference-full",
        include_bytes!("../prompts/conference-full.wav"),
    ),
    (
        "conference-locked",
        include_bytes!("../prompts/conference-locked.wav"),
    ),
    (
        "first-participant",
        include_bytes!("../prompts/first-participant.wav"),
    ),
    (
        "waiting-for-moderator",
        include_bytes!("../prompts/waiting-for-moderator.wav"),
    ),
    (
        "moderator-joined",
        include_bytes!("../prompts/moderator-joined.wav"),
    ),
    (
        "moderator-left",
        include_bytes!("../prompts/moderator-left.wav"),
    ),
    ("muted", include_bytes!("../prompts/muted.wav")),
    ("unmuted", include_bytes!("../prompts/unmuted.wav")),
];

/// The prompt library: the configured directory (which must load), else the installed
/// directory if it exists, else the built-in prompts.
fn load_prompts(cfg: &Config) -> anyhow::Result<PromptLibrary> {
    let installed = std::path::Path::new(crate::config::DEFAULT_PROMPTS);
    let dir = match &cfg.prompts {
        Some(dir) => dir.as_path(),
        None if installed.is_dir() => installed,
        None => {
            let mut lib = PromptLibrary::new();
            for (name, wav) in BUILT_IN_PROMPTS {
                lib.add_wav(name, wav)
                    .with_context(|| format!("built-in prompt {name}"))?;
            }
            return Ok(lib);
        }
    };
    PromptLibrary::load_dir(dir).with_context(|| format!("prompts: cannot load {}", dir.display()))
}

/// One pool per dataplane core, each on the socket of the core that polls it.
fn core_pools(eal: &Eal, cfg: &Config, stem: &str, n: u32) -> anyhow::Result<Vec<Arc<Mempool>>> {
    let mut pools = Vec::new();
    for (qi, &lcore) in cfg.dataplane.cores.iter().enumerate() {
        let socket = eal.lcore_socket(lcore) as i32;
        let pool = Mempool::new(eal, &format!("{stem}_q{qi}"), n, 256, 2048 + 128, socket)?;
        pools.push(Arc::new(pool));
    }
    Ok(pools)
}

/// Create port `pi`'s exception device (one queue pair per dataplane core) with the
/// NIC port's MAC, and configure its kernel interface.
fn start_exception(
    eal: &Eal,
    cfg: &Config,
    pi: usize,
    pc: &PortConfig,
    nic: &Port,
) -> anyhow::Result<Option<Port>> {
    let Some(x) = &pc.exception else {
        return Ok(None);
    };
    let iface = &x.iface;
    if kernel::iface_exists(iface) {
        bail!("ports[{pi}].exception.iface: an interface named {iface} exists already");
    }
    let mac = nic.mac();
    let queues = cfg.dataplane.cores.len();
    let (name, args) = match x.kind {
        ExceptionKind::Tap => (format!("net_tap_x{pi}"), format!("iface={iface},mac={mac}")),
        ExceptionKind::VirtioUser => {
            if !std::path::Path::new("/dev/vhost-net").exists() {
                bail!("ports[{pi}].exception.kind: virtio_user needs /dev/vhost-net (modprobe vhost_net), or use kind: tap");
            }
            (
                format!("virtio_user_x{pi}"),
                format!(
                    "path=/dev/vhost-net,iface={iface},mac={mac},queues={queues},queue_size=1024"
                ),
            )
        }
    };
    let pools = core_pools(eal, cfg, &format!("tutti_x{pi}"), EXCEPTION_MBUFS)?;
    let port = Port::create(eal, &name, &args, PortSetup { pools })
        .with_context(|| format!("ports[{pi}].exception: creating {iface}"))?;
    kernel::configure(&KernelSide {
        iface,
        mac,
        ipv4: pc.ipv4,
        gateway: pc.gateway,
    })
    .with_context(|| format!("ports[{pi}].exception: configuring {iface}"))?;
    let b = x.bounds();
    info!(
        port = %pc.device,
        iface = %iface,
        device = %name,
        driver = port.driver(),
        mac = %mac,
        ipv4 = %pc.ipv4,
        gateway = ?pc.gateway,
        rate_pps = b.rate_pps,
        burst = b.burst,
        queue = b.queue,
        "exception port up: what the dataplane does not consume goes to the kernel (per core bounds)"
    );
    Ok(Some(port))
}

struct DpdkPorts {
    ports: Vec<(Arc<Port>, crate::config::PortConfig)>,
}

impl PortSource for DpdkPorts {
    fn ports(&self) -> Vec<PortStatus> {
        self.ports
            .iter()
            .map(|(p, c)| {
                let link = p.link();
                PortStatus {
                    device: p.name().to_string(),
                    driver: p.driver().to_string(),
                    port_id: p.id(),
                    mac: p.mac().to_string(),
                    ipv4: c.ipv4.to_string(),
                    gateway: c.gateway.map(|g| g.to_string()),
                    link_up: link.up,
                    speed_mbps: link.speed_mbps,
                    queues: p.queues(),
                    rss: p.rss(),
                    mbufs_in_use: p.mbufs_in_use(),
                    xstats: p.xstats().into_iter().filter(|(_, v)| *v != 0).collect(),
                }
            })
            .collect()
    }
}

pub fn run(cfg: Config) -> anyhow::Result<()> {
    let prompts = load_prompts(&cfg)?;
    let store = open_store(&cfg)?;
    let eal = Eal::init(&cfg.eal)?;
    let main_lcore = eal.main_lcore();
    for &c in &cfg.dataplane.cores {
        if c == main_lcore {
            bail!("dataplane.cores: lcore {c} is the EAL main lcore, which runs the control plane; use another lcore");
        }
        if !eal.lcore_enabled(c) {
            bail!("dataplane.cores: lcore {c} is not in the EAL core list (eal: -l/--lcores)");
        }
    }

    // One pool per (port, core), on the socket of the core that polls it.
    let mut ports = Vec::with_capacity(cfg.ports.len());
    let mut exceptions = Vec::with_capacity(cfg.ports.len());
    for (pi, pc) in cfg.ports.iter().enumerate() {
        let pools = core_pools(
            &eal,
            &cfg,
            &format!("tutti_p{pi}"),
            cfg.dataplane.mbufs_per_queue,
        )?;
        let port = Port::start(&eal, &pc.device, PortSetup { pools })?;
        info!(
            port = %pc.device,
            driver = port.driver(),
            id = port.id(),
            mac = %port.mac(),
            ipv4 = %pc.ipv4,
            "port up; duplicates sent as {}",
            if port.multi_seg() {
                "a header mbuf chained to a shared payload"
            } else {
                "copies (the PMD sends no chained mbufs)"
            }
        );
        exceptions.push(start_exception(&eal, &cfg, pi, pc, &port)?);
        ports.push((Arc::new(port), pc.clone()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let clock = TscClock::new(&eal);
    let ncores = cfg.dataplane.cores.len();
    let media_ports = cfg
        .dataplane
        .udp_ports
        .pairs()
        .context("dataplane.udp_ports holds no port pair")?;
    // Which core holds each media port pair: claimed by the core that links a call in.
    let table = PortTable::shared(media_ports.clone());
    let media_ip = cfg.ports[0].ipv4.addr;
    let mut handoffs = Handoff::mesh(ncores, |from, to| -> anyhow::Result<RingPair<Mbuf>> {
        let socket = eal.lcore_socket(cfg.dataplane.cores[to]) as i32;
        let (tx, rx) = mbuf_ring(&eal, &format!("tutti_ho_{from}_{to}"), HANDOFF_RING, socket)?;
        Ok((Box::new(tx), Box::new(rx)))
    })?
    .into_iter();
    let mut cores = Vec::new();
    let mut media_cores = Vec::new();
    let mut rings = Vec::new();
    let mut uplinks = Vec::new();
    let mut handles = Vec::new();
    let per_core = cfg.dataplane.participants_per_core as usize;
    let confs_per_core = cfg.dataplane.conferences_per_core as usize;
    for (qi, &lcore) in cfg.dataplane.cores.iter().enumerate() {
        let mut queues = Vec::new();
        for (port, pc) in &ports {
            let q = port
                .queue(qi as u16)
                .context("queue missing for a dataplane core")?;
            let addr = PortAddr {
                mac: port.mac(),
                ip: pc.ipv4.addr,
                prefix_len: pc.ipv4.prefix_len,
                gateway: pc.gateway,
            };
            queues.push((q, addr));
        }
        let counters = Arc::new(CoreCounters::default());
        let engine_counters = Arc::new(EngineCounters::default());
        let (tx, rx) = command_ring(1024);
        // Retired: every conference and participant, and on a gateway every relay
        // session and splice, the core can hold.
        let relayed = if cfg.gateway.is_some() {
            2 * per_core
        } else {
            0
        };
        let (up, up_rx) = uplink(EVENT_RING, per_core + confs_per_core + relayed + 1024);
        let core_ports = CorePorts::new(table.clone(), qi);
        let engine = Engine::new(core_ports.clone(), confs_per_core, engine_counters.clone());
        let handoff = handoffs.next().context("handoff rings")?;
        let mut lp = PollLoop::new(
            queues,
            counters.clone(),
            rx,
            cfg.dataplane.idle_sleep_us,
            engine,
            handoff,
            up,
        );
        for (pi, x) in exceptions.iter().enumerate() {
            if let (Some(x), Some(pc)) = (x, cfg.ports.get(pi)) {
                let q = x
                    .queue(qi as u16)
                    .context("exception queue missing for a dataplane core")?;
                let bounds = pc
                    .exception
                    .as_ref()
                    .map(|e| e.bounds())
                    .unwrap_or_default();
                lp = lp.with_exception(pi, q, bounds);
            }
        }
        let relay_counters = Arc::new(RelayCounters::default());
        if cfg.gateway.is_some() {
            lp = lp.with_relay(Relay::new(core_ports, per_core, relay_counters.clone()));
        }
        let stop_flag = stop.clone();
        let h = launch(&eal, lcore, move || lp.run(&clock, &stop_flag))?;
        handles.push(h);
        rings.push(tx);
        uplinks.push(up_rx);
        media_cores.push(MediaCore {
            lcore,
            local_ip: media_ip,
            ports: media_ports.clone(),
            capacity: cfg.dataplane.participants_per_core,
        });
        cores.push(CoreHandle {
            lcore,
            counters,
            engine: engine_counters,
            relay: relay_counters,
        });
    }
    let media = Arc::new(DpdkMedia::new(
        media_cores,
        rings,
        prompts,
        clock,
        cfg.gateway.is_some(),
    ));
    let pump = MediaPump::new(uplinks, media.clone());
    info!(
        cores = ?cfg.dataplane.cores,
        "{} dataplane core(s) polling; control API on {}://{}",
        cores.len(),
        scheme(&cfg.control.tls),
        cfg.control.listen
    );
    if let Some(g) = &cfg.gateway {
        info!(
            "gateway API on {}://{}; mixers {}",
            scheme(&g.tls),
            g.listen,
            g.mixers.join(", ")
        );
    }

    let served = serve_control(&cfg, cores, &ports, media.clone(), pump, clock, store);

    // Shut down in order: cores, then ports, then pools, then the EAL.
    stop.store(true, Ordering::Relaxed);
    media.stop_all();
    let mut clean = true;
    for h in handles {
        let lcore = h.lcore();
        if !h.join() {
            error!(lcore, "dataplane lcore ended abnormally");
            clean = false;
        }
    }
    drop(ports);
    drop(exceptions);
    drop(eal);
    if leaked_pools() > 0 {
        warn!(
            pools = leaked_pools(),
            "mempools leaked at shutdown (mbufs still out); the EAL was not cleaned up"
        );
    }
    served?;
    if !clean {
        bail!("a dataplane core failed");
    }
    info!("stopped");
    Ok(())
}

fn serve_control(
    cfg: &Config,
    cores: Vec<CoreHandle>,
    ports: &[(Arc<Port>, crate::config::PortConfig)],
    media: Arc<DpdkMedia>,
    mut pump: MediaPump,
    clock: TscClock,
    store: tutti_controlplane::store::queue::StoreQueue,
) -> anyhow::Result<()> {
    if let Some(cpu) = cfg.control.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            warn!(
                cpu,
                "could not pin the control thread to the CPU; continuing unpinned"
            );
        }
    }
    let mut state = ControlState::new(
        cores,
        Arc::new(DpdkPorts {
            ports: ports.to_vec(),
        }),
        media,
        env!("CARGO_PKG_VERSION"),
        Arc::new(SystemClock(clock)),
        cfg.orphan.timers(),
        entropy_seed(),
    );
    let sip_metrics = cfg
        .sip
        .as_ref()
        .map(|_| Arc::new(tutti_controlplane::sip::SipMetrics::default()));
    state.sip = sip_metrics.clone();
    let access = cfg.control.access().map_err(anyhow::Error::msg)?;
    let tls = cfg.control.tls().map_err(anyhow::Error::msg)?;
    warn_if_open("control", cfg.control.listen, &access);
    let mut gateway_access = None;
    let mut gateway_tls = None;
    if let Some(g) = &cfg.gateway {
        let gw = Gateway::new(g.settings(), g.mixer_access().map_err(anyhow::Error::msg)?)
            .map_err(|e| anyhow::anyhow!("gateway: cannot make an HTTP client: {e}"))?;
        state = state.with_gateway(gw);
        let a = g
            .access(cfg.control.metrics_public)
            .map_err(anyhow::Error::msg)?;
        warn_if_open("gateway", g.listen, &a);
        gateway_access = Some(a);
        gateway_tls = g.tls().map_err(anyhow::Error::msg)?;
    }
    let state = state.with_store(store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let listen = cfg.control.listen;
    let gateway_listen = cfg.gateway.as_ref().map(|g| g.listen);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("control.listen: cannot listen on {listen}"))?;
        let gateway_listener = match gateway_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("gateway.listen: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        if let (Some(sip), Some(metrics)) = (&cfg.sip, sip_metrics) {
            let settings = sip::SipConfig {
                applications: cfg.applications(),
                ..sip.settings()
            };
            let ua = sip::ua::Ua::new(state.clone(), settings.clone(), metrics);
            let _ = state.sip_ua.set(Arc::downgrade(&ua));
            for l in settings.listen {
                let bound = sip::transport::bind(l)
                    .await
                    .with_context(|| format!("sip.listen: cannot listen on {l}"))?;
                if let sip::transport::Bound::Udp(socket) = &bound {
                    ua.add_udp_socket(socket.clone());
                }
                tokio::spawn(sip::transport::serve(bound, ua.clone()));
            }
            tokio::spawn(ua.clone().watch_sessions());
            tokio::spawn(ua.clone().drive_dials());
            tokio::spawn(ua.watch_events());
            info!(
                "SIP on {}",
                sip.listen
                    .iter()
                    .map(|l| l.0.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tokio::spawn(tutti_controlplane::pump::run(
            state.clone(),
            PUMP_INTERVAL,
            move |s| pump.drain(s),
        ));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let gateway_api = gateway_listener.map(|l| {
            let router = api::gateway_router(state.clone(), gateway_access.unwrap_or_default());
            tokio::spawn(api::serve(
                l,
                gateway_tls,
                router,
                state.events.clone(),
                stopped(stop_rx.clone()),
            ))
        });
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let served = api::serve(
            listener,
            tls,
            api::router(state.clone(), access),
            state.events.clone(),
            stopped(stop_rx),
        )
        .await
        .context("control API");
        if let Some(g) = gateway_api {
            g.await
                .context("gateway API task")?
                .context("gateway API")?;
        }
        served
    })
}

/// The URL scheme of an API served with `tls`.
fn scheme(tls: &Option<crate::config::TlsFiles>) -> &'static str {
    if tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// Warn that the `section` API on `listen` is reachable from the network without a token.
fn warn_if_open(section: &str, listen: std::net::SocketAddr, access: &api::Access) {
    if !listen.ip().is_loopback() && !access.is_protected() {
        warn!(
            "{section}.listen {listen} is not a loopback address and {section}.token is not set: \
             anyone who can reach it can use the API"
        );
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we cannot stop cleanly; run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM, shutting down"),
        _ = int.recv() => info!("SIGINT, shutting down"),
    }
}

/// The provisioning store: the database in `state_dir` (created if missing), or one in
/// memory when none is configured; behind its request queue.
fn open_store(cfg: &Config) -> anyhow::Result<tutti_controlplane::store::queue::StoreQueue> {
    use crate::config::{StoreBackend, DEFAULT_STORE_PREFIX};
    use tutti_controlplane::store::{embedded::Embedded, redis::Redis, Store};
    let (capacity, timeout) = cfg.store.settings();
    let store: Box<dyn Store> = match (cfg.store.backend, &cfg.state_dir) {
        (StoreBackend::Redis, _) => {
            let url = cfg.store.url.as_deref().unwrap_or_default();
            let prefix = cfg.store.prefix.as_deref().unwrap_or(DEFAULT_STORE_PREFIX);
            let store =
                Redis::new(url, prefix, timeout).map_err(|e| anyhow::anyhow!("store.url: {e}"))?;
            tracing::info!(url, prefix, "provisioning store: redis");
            Box::new(store)
        }
        (StoreBackend::Embedded, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("state_dir: cannot create {}", dir.display()))?;
            let store = Embedded::open(dir).map_err(|e| anyhow::anyhow!("state_dir: {e}"))?;
            tracing::info!(state_dir = %dir.display(), "provisioning store opened");
            Box::new(store)
        }
        (StoreBackend::Embedded, None) => {
            tracing::warn!(
                "no state_dir configured: provisioning (/v1/directory) is kept in memory \
                 and lost at exit"
            );
            Box::new(Embedded::in_memory().map_err(|e| anyhow::anyhow!("provisioning store: {e}"))?)
        }
    };
    let (queue, _worker) =
        tutti_controlplane::store::queue::StoreQueue::start(store, capacity, timeout)
            .context("starting the store's worker thread")?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_prompts_load_and_have_every_ivr_prompt() {
        let mut lib = PromptLibrary::new();
        for (name, wav) in BUILT_IN_PROMPTS {
            lib.add_wav(name, wav)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for p in tutti_controlplane::ivr::IvrPrompt::ALL {
            assert!(lib.id(p.name()).is_some(), "no prompt {}", p.name());
        }
    }
}
