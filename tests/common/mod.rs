//! Shared helpers for the end-to-end tests: run the real `tutti` binary on DPDK virtual
//! devices, in network namespaces the test creates, and clean everything up by PID and by
//! name of what the test itself made. Only 127.0.0.0/8 and 198.18.0.0/15 (inside our own
//! namespaces) are ever used.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this test process and call, e.g. for interface names (at most
/// 15 characters) and DPDK file prefixes.
pub fn unique(tag: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}{n}", std::process::id() % 100_000)
}

/// Real-time tests in one binary take turns: on a two-CPU machine, several tutti
/// instances and their traffic generators at once starve each other.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tests need root (namespaces, hugepages) and the DPDK packages; say so plainly.
pub fn require_environment() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    assert!(
        root,
        "end-to-end tests run DPDK and create network namespaces: run them as root via scripts/test"
    );
    let free: u64 =
        std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    assert!(
        free >= 256,
        "only {free} free 2 MiB hugepages; run hugepage-setup/setup-hugepages (scripts/test does)"
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// Run a command to completion, with a time bound.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let mut c = Command::new("timeout");
    c.arg("20").arg(cmd).args(args);
    c.output().unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

/// Run a command that must succeed; returns its stdout.
pub fn must(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace this test created; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("tuttins");
        must("ip", &["netns", "add", &name]);
        must("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Run a command inside the namespace.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        let mut a = vec!["netns", "exec", &self.name, cmd];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Move `iface` (from the root namespace) here, address it and bring it up.
    pub fn adopt(&self, iface: &str, cidr: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run("ip", &["link", "show", iface]).status.success() {
            assert!(
                Instant::now() < deadline,
                "interface {iface} never appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        must("ip", &["link", "set", iface, "netns", &self.name]);
        must("ip", &["-n", &self.name, "addr", "add", cidr, "dev", iface]);
        must("ip", &["-n", &self.name, "link", "set", iface, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// tutti on a net_tap device (its configuration passed through `customise` first), the
/// tap moved into a fresh namespace as 198.18.0.2/24 and `more_addrs`.
pub fn start_on_tap(
    tag: &str,
    customise: impl FnOnce(String) -> String,
    more_addrs: &[&str],
) -> (Tutti, Netns) {
    require_environment();
    let iface = unique(tag);
    let prefix = unique("tuttitap");
    let api = free_port();
    let yaml = customise(config(
        &format!("net_tap0,iface={iface}"),
        "net_tap0",
        &[],
        None,
        api,
        &prefix,
    ));
    let t = Tutti::start(&yaml, &prefix, api);
    let ns = Netns::new();
    ns.adopt(&iface, "198.18.0.2/24");
    for a in more_addrs {
        must("ip", &["-n", &ns.name, "addr", "add", a, "dev", &iface]);
    }
    (t, ns)
}

/// A running `tutti run`; SIGTERM then SIGKILL on drop, by PID.
pub struct Tutti {
    pub child: Child,
    pub api: SocketAddr,
    pub prefix: String,
    pub dir: PathBuf,
}

/// A path in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The binary under test.
pub fn tutti_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tutti")
}

/// A configuration for one port on `vdev` with the given device name.
pub fn config(
    vdev: &str,
    device: &str,
    extra_eal: &[&str],
    gateway: Option<&str>,
    api: u16,
    prefix: &str,
) -> String {
    let mut eal = vec![
        "-l".to_string(),
        "0-1".into(),
        "--no-pci".into(),
        format!("--vdev={vdev}"),
        format!("--file-prefix={prefix}"),
        "-m".into(),
        "128".into(),
        "--log-level=lib.eal:warning".into(),
    ];
    eal.extend(extra_eal.iter().map(|s| s.to_string()));
    let eal: Vec<String> = eal.iter().map(|a| format!("\"{a}\"")).collect();
    let gw = gateway
        .map(|g| format!("    gateway: {g}\n"))
        .unwrap_or_default();
    format!(
        "eal: [{}]\nports:\n  - device: {device}\n    ipv4: 198.18.0.1/24\n{gw}dataplane:\n  cores: [1]\n  idle_sleep_us: 50\n  mbufs_per_queue: 4095\ncontrol:\n  listen: 127.0.0.1:{api}\n",
        eal.join(", ")
    )
}

impl Tutti {
    /// Write `yaml` to a fresh directory and start `tutti run` on it (not waiting).
    pub fn spawn(yaml: &str, prefix: &str, api: u16) -> Tutti {
        let dir = std::env::temp_dir().join(unique("tutti-e2e-"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("tutti.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let child = Command::new(tutti_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("stdout")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr")).unwrap(),
            ))
            .spawn()
            .expect("starting tutti");
        Tutti {
            child,
            api: SocketAddr::from(([127, 0, 0, 1], api)),
            prefix: prefix.into(),
            dir,
        }
    }

    /// Start and wait until `/healthz` answers (panics with tutti's stderr if it exits).
    pub fn start(yaml: &str, prefix: &str, api: u16) -> Tutti {
        let mut t = Tutti::spawn(yaml, prefix, api);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = t.child.try_wait().unwrap() {
                panic!("tutti exited early ({st}): {}", t.stderr());
            }
            if http_get(t.api, "/healthz").is_some_and(|(c, _)| c == 200) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "tutti did not come up: {}",
                t.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.api, path).unwrap_or_else(|| panic!("GET {path} failed: {}", self.stderr()))
    }

    /// A request with a JSON body; the status and the body parsed as JSON (Null if empty).
    pub fn call(&self, method: &str, path: &str, json: Option<&str>) -> (u16, serde_json::Value) {
        let (code, body) = http(self.api, method, path, json)
            .unwrap_or_else(|| panic!("{method} {path} failed: {}", self.stderr()));
        (
            code,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The value of one Prometheus sample, e.g. `tutti_rx_packets_total{core="1"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let (code, text) = self.get("/metrics");
        assert_eq!(code, 200);
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
    }

    /// `/metrics` is valid Prometheus text by `promtool check metrics` (package prometheus).
    pub fn assert_metrics_valid(&self) {
        let (code, text) = self.get("/metrics");
        assert_eq!(code, 200);
        let file = self.dir.join("metrics.txt");
        std::fs::write(&file, &text).unwrap();
        let check = run(
            "sh",
            &[
                "-c",
                &format!("promtool check metrics < {}", file.display()),
            ],
        );
        assert!(
            check.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }

    /// Poll `f` until it holds or `secs` pass.
    pub fn wait_for(&self, secs: u64, what: &str, mut f: impl FnMut(&Tutti) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; tutti said:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait (bounded); returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let t0 = Instant::now();
        signal(self.child.id(), "-TERM");
        let deadline = t0 + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, t0.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tutti ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Hugepage files left under this instance's prefix.
    pub fn hugepage_files(&self) -> usize {
        hugepage_files(&self.prefix)
    }
}

impl Drop for Tutti {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Hugepage files in /dev/hugepages made for DPDK file prefix `prefix`.
pub fn hugepage_files(prefix: &str) -> usize {
    std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{prefix}map_"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Send a signal to one process, by PID.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

/// A minimal HTTP/1.1 GET; `None` if the connection fails.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http(addr, "GET", path, None)
}

/// A minimal HTTP/1.1 request with an optional JSON body; `None` if the connection fails.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = json.unwrap_or("");
    let ctype = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let buf = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Read a Server-Sent Events stream for `secs` seconds on a thread; join for its text.
pub fn sse_collect(addr: SocketAddr, path: &str, secs: u64) -> std::thread::JoinHandle<String> {
    let path = path.to_string();
    std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        );
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => continue,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// The `data:` JSON objects of an SSE capture.
pub fn sse_events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}
