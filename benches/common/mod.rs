//! Shared by the benchmarks: the real `tutti` binary on `virtio_user`, connected to a
//! `net_vhost` port in the benchmark process that generates and absorbs its traffic on
//! the other core, plus a little HTTP for its API and metrics.
#![allow(dead_code)] // each bench uses a subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tutti_dataplane::wire::eth;
use tutti_dpdk::{Eal, Mempool, Port, PortQueue, PortSetup};

/// tutti's MAC on virtio_user (set by devarg so generators can address it).
pub const TUTTI_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 1]);
/// The generator's MAC.
pub const GEN_MAC: eth::MacAddr = eth::MacAddr([2, 0, 0, 0, 0, 2]);

/// The EAL of the benchmark process: one lcore (CPU 0) and a vhost-user port whose socket
/// tutti's virtio_user connects to.
pub fn bench_eal(tag: &str) -> (Eal, String) {
    let sock = format!("/tmp/tutti-bench-{tag}-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let eal = Eal::init(&[
        "-l".into(),
        "0".into(),
        "--no-pci".into(),
        format!("--file-prefix=tuttibench{tag}{}", std::process::id()),
        "-m".into(),
        "512".into(),
        format!("--vdev=net_vhost0,iface={sock},queues=1"),
        "--log-level=lib.eal:warning".into(),
        "--log-level=lib.vhost.config:warning".into(),
    ])
    .expect("EAL (run as root with hugepages: scripts/test sets them up)");
    (eal, sock)
}

/// tutti running on CPU 1 behind the vhost port; dropped: SIGTERM, wait, clean up.
pub struct VirtioRig {
    pub queue: PortQueue,
    pub api: u16,
    tutti: Child,
    dir: std::path::PathBuf,
    sock: String,
    port: Port,
    _pool: Arc<Mempool>,
}

impl VirtioRig {
    /// Start tutti with `dataplane_extra` appended to its `dataplane:` section.
    pub fn start(eal: &Eal, sock: &str, dataplane_extra: &str) -> VirtioRig {
        let pool = Arc::new(
            Mempool::new(eal, "bench_gen", 65535, 256, 2048 + 128, 0).expect("generator pool"),
        );
        let port = Port::start(
            eal,
            "net_vhost0",
            PortSetup {
                pools: vec![pool.clone()],
            },
        )
        .expect("vhost port");
        let queue = port.queue(0).expect("queue 0");
        let api = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tutti-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("tutti.yaml");
        std::fs::write(
            &cfg,
            format!(
                "eal: [\"--lcores\", \"0@0,1@1\", \"--no-pci\", \"--vdev=virtio_user0,path={sock},queues=1,queue_size=1024,mac={TUTTI_MAC}\", \"--single-file-segments\", \"--file-prefix=tuttibenchvu{pid}\", \"-m\", \"1024\", \"--log-level=lib.eal:warning\"]\nports:\n  - device: virtio_user0\n    ipv4: 198.18.0.1/24\ndataplane:\n  cores: [1]\n  idle_sleep_us: 0\n  mbufs_per_queue: 65535\n{dataplane_extra}control:\n  listen: 127.0.0.1:{api}\n",
                pid = std::process::id()
            ),
        )
        .unwrap();
        let tutti = Command::new(env!("CARGO_BIN_EXE_tutti"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr")).unwrap(),
            ))
            .spawn()
            .expect("starting tutti");
        let rig = VirtioRig {
            queue,
            api,
            tutti,
            dir,
            sock: sock.to_string(),
            port,
            _pool: pool,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while rig.http("GET", "/healthz", None).is_none() {
            assert!(
                Instant::now() < deadline,
                "tutti did not start: {}",
                rig.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        while !rig.port.link().up {
            assert!(Instant::now() < deadline, "vhost link never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
        rig
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// A request to tutti's API: (status, body).
    pub fn http(&self, method: &str, path: &str, json: Option<&str>) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.api)).ok()?;
        let body = json.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut b = String::new();
        s.read_to_string(&mut b).ok()?;
        let (head, body) = b.split_once("\r\n\r\n")?;
        Some((
            head.split_whitespace().nth(1)?.parse().ok()?,
            body.to_string(),
        ))
    }

    /// The current /metrics text.
    pub fn metrics(&self) -> String {
        self.http("GET", "/metrics", None)
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

impl Drop for VirtioRig {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.tutti.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.tutti.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.tutti.kill();
        let _ = self.tutti.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// The value of one sample in Prometheus text (0 if absent).
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}
