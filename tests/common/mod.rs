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
        self.adopt_from(None, iface, cidr);
    }

    /// Move `iface` from namespace `from` (the root namespace if `None`) here, address it
    /// and bring it up.
    pub fn adopt_from(&self, from: Option<&Netns>, iface: &str, cidr: &str) {
        let n: Vec<String> = from.map_or(Vec::new(), |f| vec!["-n".into(), f.name.clone()]);
        let with = |rest: &[&str]| -> Vec<String> {
            n.iter()
                .cloned()
                .chain(rest.iter().map(|s| s.to_string()))
                .collect()
        };
        let run_ip = |args: Vec<String>| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run("ip", &a)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run_ip(with(&["link", "show", iface])).status.success() {
            assert!(
                Instant::now() < deadline,
                "interface {iface} never appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let moved = run_ip(with(&["link", "set", iface, "netns", &self.name]));
        assert!(moved.status.success(), "moving {iface}: {moved:?}");
        must("ip", &["-n", &self.name, "addr", "add", cidr, "dev", iface]);
        must("ip", &["-n", &self.name, "link", "set", iface, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Run a command inside `ns` with a time bound.
pub fn ns_spawn(ns: &Netns, secs: u32, cmd: &[&str]) -> Child {
    let mut args = vec!["netns", "exec", &ns.name, "timeout"];
    let secs = secs.to_string();
    args.push(&secs);
    args.extend_from_slice(cmd);
    Command::new("ip")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn in namespace")
}

/// The tones the conference tests' peers send (one each) and analyse.
pub const FREQS: [u32; 3] = [440, 1000, 1900];

/// The level of frequency `f` in an rtp-peer report's analysis (dB).
pub fn db(report: &serde_json::Value, f: u32) -> f64 {
    report["analysis_db"][f.to_string()]
        .as_f64()
        .expect("analysis")
}

/// `scripts/rtp-peer`'s analysis of the WAV file `wav` at frequencies `freqs` (its
/// `analysis_db` per frequency and `seconds`).
pub fn analyze_wav(wav: &std::path::Path, freqs: &[u32]) -> serde_json::Value {
    let peer = repo_path("scripts/rtp-peer");
    let mut args = vec![
        peer.to_str().unwrap(),
        "--analyze-wav",
        wav.to_str().unwrap(),
    ];
    let freqs: Vec<String> = freqs.iter().map(u32::to_string).collect();
    for f in &freqs {
        args.extend(["--analyze", f.as_str()]);
    }
    serde_json::from_str(&must("python3", &args)).expect("analysis JSON")
}

/// A `scripts/rtp-peer` endpoint in a namespace; killed on drop, by PID.
pub struct Peer {
    child: Child,
    report: std::path::PathBuf,
}

impl Peer {
    /// Run rtp-peer inside `ns` from `bind` to `remote` for `secs`, with extra arguments.
    pub fn start(ns: &Netns, bind: &str, remote: &str, secs: u32, extra: &[String]) -> Peer {
        let report = std::env::temp_dir().join(format!("{}.json", unique("tutti-peer-")));
        let (peer, report_s) = (repo_path("scripts/rtp-peer"), report.display().to_string());
        let secs_s = secs.to_string();
        let mut args: Vec<&str> = vec![
            "python3",
            peer.to_str().unwrap(),
            "--bind",
            bind,
            "--remote",
            remote,
            "--seconds",
            &secs_s,
            "--report",
            &report_s,
        ];
        let freqs: Vec<String> = FREQS.iter().map(u32::to_string).collect();
        for f in &freqs {
            args.extend(["--analyze", f.as_str()]);
        }
        args.extend(extra.iter().map(String::as_str));
        let child = ns_spawn(ns, secs + 20, &args);
        Peer { child, report }
    }

    /// Wait for it and read its JSON report.
    pub fn finish(mut self) -> serde_json::Value {
        let st = self.child.wait().expect("rtp-peer wait");
        assert!(st.success(), "rtp-peer failed: {st}");
        let text = std::fs::read_to_string(&self.report).expect("rtp-peer report");
        let _ = std::fs::remove_file(&self.report);
        serde_json::from_str(&text).expect("report JSON")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A TCP forwarder from 127.0.0.1 in the test's namespace to 127.0.0.1:`port` inside
/// namespace `ns` (where a tutti's control API listens): a thread joins `ns` (setns
/// affects only that thread) and connects there for each connection accepted on a
/// listener made before it joined. Returns the local address; the thread ends with the
/// test process.
pub fn forward_into(ns: &str, port: u16) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("forwarder listener");
    let local = listener.local_addr().unwrap();
    let ns_file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
    std::thread::spawn(move || {
        nix::sched::setns(&ns_file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(2),
            ) else {
                continue; // dropping `client` tells the caller the API is not up
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                pipe(client, s2);
                pipe(server, c2);
            }
        }
    });
    local
}

impl Tutti {
    /// Start `tutti run` inside namespace `ns` (`ip netns exec`, which execs tutti, so
    /// the child's PID is tutti's) and wait until `/healthz` answers through
    /// [`forward_into`]; `api` is its control port there.
    pub fn start_in(ns: &Netns, yaml: &str, prefix: &str, api: u16) -> Tutti {
        let mut t = Tutti::spawn_in(ns, yaml, prefix, api);
        t.wait_up();
        t
    }

    /// As [`Tutti::start_in`], not waiting.
    pub fn spawn_in(ns: &Netns, yaml: &str, prefix: &str, api: u16) -> Tutti {
        let mut t = Tutti::spawn_with(yaml, prefix, api, &["ip", "netns", "exec", &ns.name]);
        t.api = forward_into(&ns.name, api);
        t
    }

    /// Write `yaml` to a fresh directory and start `tutti run` on it (not waiting).
    pub fn spawn(yaml: &str, prefix: &str, api: u16) -> Tutti {
        Tutti::spawn_with(yaml, prefix, api, &[])
    }

    /// As [`Tutti::spawn`], the binary run through the command `wrapper` (may be empty).
    fn spawn_with(yaml: &str, prefix: &str, api: u16, wrapper: &[&str]) -> Tutti {
        let dir = std::env::temp_dir().join(unique("tutti-e2e-"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("tutti.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let mut argv: Vec<&str> = wrapper.to_vec();
        argv.push(tutti_bin());
        let child = Command::new(argv[0])
            .args(&argv[1..])
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
        t.wait_up();
        t
    }

    /// Wait until `/healthz` answers (panics with tutti's stderr if it exits).
    fn wait_up(&mut self) {
        let t = self;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = t.child.try_wait().unwrap() {
                panic!("tutti exited early ({st}): {}", t.stderr());
            }
            if http_get(t.api, "/healthz").is_some_and(|(c, _)| c == 200) {
                return;
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

// ---------------------------------------------------------------------------------------
// Several tutti processes on one test network: each on its own net_tap device, every tap
// moved into ONE namespace this test creates and joined there by a Linux bridge, which
// also carries the clients' addresses. Used by the mixer-handover tests (a gateway and
// two mixers); nothing above depends on it.

/// The bridge's own address in a bridged test network (the clients' next hop, unused).
pub const BRIDGE_ADDR: &str = "198.18.0.254/24";

/// One tutti process of a bridged test network, as known before it starts.
#[derive(Clone, Debug)]
pub struct Node {
    /// Position in the `start_bridged` list.
    pub index: usize,
    /// The tap's name (kernel side: a bridge port in the namespace).
    pub iface: String,
    /// Its dataplane address (no prefix length), e.g. "198.18.0.11".
    pub ip: String,
    /// Its `control.listen` port on 127.0.0.1.
    pub api: u16,
    /// Its DPDK `--file-prefix`.
    pub prefix: String,
}

impl Node {
    /// Its control API as a URL, as a gateway's `mixers:` list names it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }
}

/// The configuration of bridged node `node`: `config()` on a net_tap with the node's
/// address, `idle_sleep_us: 200` so that several processes share two CPUs, and lcores
/// spread so the dataplane cores alternate between CPU 1 and CPU 0 (the EAL main lcore,
/// which runs the control plane, on the other CPU).
pub fn bridged_config(node: &Node) -> String {
    let (main_cpu, dp_cpu) = if node.index.is_multiple_of(2) {
        (0, 1)
    } else {
        (1, 0)
    };
    config(
        &format!("net_tap0,iface={}", node.iface),
        "net_tap0",
        &[],
        None,
        node.api,
        &node.prefix,
    )
    .replace(
        "\"-l\", \"0-1\"",
        &format!("\"--lcores\", \"0@{main_cpu},1@{dp_cpu}\""),
    )
    .replace("ipv4: 198.18.0.1/24", &format!("ipv4: {}/24", node.ip))
    .replace("idle_sleep_us: 50", "idle_sleep_us: 200")
}

/// Several tutti on one bridge in one namespace of the test's own. Drop order: the
/// processes (SIGTERM, then SIGKILL, by PID; their stderr printed first if the test is
/// failing), then the namespace (which takes the bridge with it), then hugepage files
/// a killed process left under its own prefix.
pub struct Bridged {
    /// The running processes, in `nodes` order.
    pub procs: Vec<Tutti>,
    pub nodes: Vec<Node>,
    pub ns: Netns,
    /// The bridge's name inside `ns`.
    pub bridge: String,
}

/// Start one tutti per address in `ips` (in that order, each waiting for `/healthz`),
/// their taps bridged in a fresh namespace whose bridge has `BRIDGE_ADDR` and
/// `host_addrs` (CIDRs: the clients' addresses). `customise(node, all_nodes, yaml)`
/// returns the configuration to use (start from the given `bridged_config` yaml; every
/// node's API port is chosen before any starts, so a gateway can name its mixers).
pub fn start_bridged(
    tag: &str,
    ips: &[&str],
    host_addrs: &[&str],
    mut customise: impl FnMut(&Node, &[Node], String) -> String,
) -> Bridged {
    require_environment();
    let nodes: Vec<Node> = ips
        .iter()
        .enumerate()
        .map(|(index, ip)| Node {
            index,
            iface: unique(&format!("{tag}{index}")),
            ip: ip.to_string(),
            api: free_port(),
            prefix: unique("tuttibr"),
        })
        .collect();
    for n in &nodes {
        assert!(n.iface.len() <= 15, "interface name {} too long", n.iface);
    }
    let ns = Netns::new();
    let bridge = unique("tbr");
    // No IPv6 chatter (router solicitations, DAD) on the test network.
    let _ = ns.exec(
        "sysctl",
        &[
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
    must(
        "ip",
        &[
            "-n",
            &ns.name,
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    );
    // A fixed MAC address: otherwise the bridge takes its ports' lowest and changes it
    // when a port comes or goes (a tutti killed), and whoever has the clients' addresses
    // in its ARP cache sends to a MAC address nobody has any more.
    let pid = std::process::id();
    let bridge_mac = format!("02:7f:00:00:{:02x}:{:02x}", (pid >> 8) & 0xff, pid & 0xff);
    must(
        "ip",
        &[
            "-n",
            &ns.name,
            "link",
            "set",
            &bridge,
            "address",
            &bridge_mac,
        ],
    );
    must(
        "ip",
        &["-n", &ns.name, "addr", "add", BRIDGE_ADDR, "dev", &bridge],
    );
    for a in host_addrs {
        must("ip", &["-n", &ns.name, "addr", "add", a, "dev", &bridge]);
    }
    must("ip", &["-n", &ns.name, "link", "set", &bridge, "up"]);
    let mut b = Bridged {
        procs: Vec::new(),
        nodes: nodes.clone(),
        ns,
        bridge,
    };
    for n in &nodes {
        let yaml = customise(n, &nodes, bridged_config(n));
        b.procs.push(Tutti::start(&yaml, &n.prefix, n.api));
        b.ns.bridge_port(&n.iface, &b.bridge, n.index);
    }
    b
}

impl Netns {
    /// Move tap `iface` (from the root namespace) here and make it a port of `bridge`.
    /// The kernel side of a net_tap device starts with the DPDK port's own MAC address;
    /// a bridge would take frames for that address as its own, so the kernel side gets
    /// another (locally administered) one first.
    pub fn bridge_port(&self, iface: &str, bridge: &str, index: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run("ip", &["link", "show", iface]).status.success() {
            assert!(
                Instant::now() < deadline,
                "interface {iface} never appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        must("ip", &["link", "set", iface, "netns", &self.name]);
        must("ip", &["-n", &self.name, "link", "set", iface, "down"]);
        let pid = std::process::id();
        let mac = format!(
            "02:7e:{:02x}:{:02x}:{:02x}:{:02x}",
            (pid >> 16) & 0xff,
            (pid >> 8) & 0xff,
            pid & 0xff,
            (SEQ.fetch_add(1, Ordering::Relaxed) as usize * 16 + index) & 0xff
        );
        must(
            "ip",
            &["-n", &self.name, "link", "set", iface, "address", &mac],
        );
        must(
            "ip",
            &["-n", &self.name, "link", "set", iface, "master", bridge],
        );
        must("ip", &["-n", &self.name, "link", "set", iface, "up"]);
    }
}

impl Bridged {
    /// Node `i`'s control API address.
    pub fn api(&self, i: usize) -> SocketAddr {
        self.procs[i].api
    }

    /// Node `i`'s control API as a URL.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every process's stderr (the last `max` bytes of each), labelled.
    pub fn logs(&self, max: usize) -> String {
        let mut out = String::new();
        for (n, t) in self.nodes.iter().zip(&self.procs) {
            let e = t.stderr();
            let mut cut = e.len().saturating_sub(max);
            while !e.is_char_boundary(cut) {
                cut += 1;
            }
            out.push_str(&format!(
                "----- tutti #{} ({}, API {}) stderr -----\n{}\n",
                n.index,
                n.ip,
                t.api,
                &e[cut..]
            ));
        }
        out
    }

    /// SIGKILL node `i` by PID (no clean shutdown), wait for it, and remove the
    /// hugepage files and DPDK runtime directory it leaves under its own prefix.
    pub fn kill_hard(&mut self, i: usize) {
        let t = &mut self.procs[i];
        let _ = t.child.kill();
        let _ = t.child.wait();
        remove_dpdk_leftovers(&self.nodes[i].prefix);
    }

    /// Whether node `i` is still running.
    pub fn alive(&mut self, i: usize) -> bool {
        self.procs[i].child.try_wait().ok().flatten().is_none()
    }

    /// Give every thread of every running process scheduling priority `nice` (e.g. -10:
    /// real-time media on a CPU shared with builds). Threads started later inherit it
    /// from the thread that starts them.
    pub fn renice(&self, nice: i32) {
        for t in &self.procs {
            renice_threads(t.child.id(), nice);
        }
    }

    /// Ping `ip` from the namespace (bounded: 3 echoes, 1 s each).
    pub fn ping(&self, ip: &str) -> bool {
        self.ns
            .exec("ping", &["-c", "3", "-i", "0.2", "-W", "1", "-q", ip])
            .status
            .success()
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs(20_000));
        }
        // Processes first (Tutti's own drop: SIGTERM, wait, SIGKILL, by PID)...
        self.procs.clear();
        // ...then the namespace (a field; dropped after this) and what a killed process
        // left behind under its own prefix.
        for n in &self.nodes {
            remove_dpdk_leftovers(&n.prefix);
        }
    }
}

/// Remove the hugepage files and DPDK runtime directory of file prefix `prefix` (only
/// ever called with this test's own prefixes, after their process ended).
pub fn remove_dpdk_leftovers(prefix: &str) {
    if let Ok(d) = std::fs::read_dir("/dev/hugepages") {
        for e in d.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{prefix}map_"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
}

/// Set the nice value of every thread of process `pid` (by thread id: Linux applies
/// `setpriority` per thread).
pub fn renice_threads(pid: u32, nice: i32) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    let tids: Vec<String> = tasks
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let n = nice.to_string();
    let mut args = vec!["-n", n.as_str(), "-p"];
    args.extend(tids.iter().map(String::as_str));
    let _ = run("renice", &args);
}

/// A JSON request to any API address (e.g. a gateway's `gateway.listen`): the status and
/// the body parsed as JSON (Null if empty); panics if the connection fails.
pub fn call_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> (u16, serde_json::Value) {
    let (code, body) = http(addr, method, path, json)
        .unwrap_or_else(|| panic!("{method} http://{addr}{path}: no answer"));
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The value of one Prometheus sample at `addr`'s `/metrics`, `None` if it is absent.
pub fn metric_at(addr: SocketAddr, sample: &str) -> Option<f64> {
    let (code, text) = http_get(addr, "/metrics")?;
    if code != 200 {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}
/// tutti in a namespace of its own with an exception port, its NIC (a net_tap) moved
/// into a second namespace with the clients (198.18.0.2-4, a MAC of their own):
/// the rig the exception-path and SIP tests share. Dropped in field order: tutti first,
/// then the namespaces.
pub struct ExceptionRig {
    pub t: Tutti,
    pub clients: Netns,
    pub tutti_ns: Netns,
    /// The exception interface tutti created in its namespace.
    pub kernel_if: String,
}

/// Start an [`ExceptionRig`]: `tag` names its interfaces and file prefix, `exception`
/// is the port's `exception:` flow mapping after `iface` (e.g. `, rate_pps: 2000`), and
/// `extra_yaml` is appended to the configuration (e.g. a `sip:` section).
pub fn exception_rig(tag: &str, exception: &str, extra_yaml: &str) -> ExceptionRig {
    let clients = Netns::new();
    let a = Appliance::start(tag, exception, extra_yaml, 0, &clients);
    ExceptionRig {
        t: a.t,
        clients,
        tutti_ns: a.ns,
        kernel_if: a.kernel_if,
    }
}

/// One tutti in a namespace of its own with an exception port, service address
/// 198.18.`net`.1/24, its NIC (a net_tap) moved into the namespace `clients` as
/// 198.18.`net`.2-4/24 (its gateway .2) with a MAC of its own. Several appliances can
/// share one clients' namespace (each on its own subnet). Dropped in field order.
pub struct Appliance {
    pub t: Tutti,
    pub ns: Netns,
    /// The exception interface tutti created in its namespace.
    pub kernel_if: String,
}

impl Appliance {
    /// Start one: `tag`, `exception` and `extra_yaml` as for [`exception_rig`]; every
    /// `198.18.0.` in `extra_yaml` is put on subnet `net`.
    pub fn start(
        tag: &str,
        exception: &str,
        extra_yaml: &str,
        net: u8,
        clients: &Netns,
    ) -> Appliance {
        require_environment();
        let ns = Netns::new();
        let nic = unique(&format!("{tag}n"));
        let kernel_if = unique(&format!("{tag}k"));
        let prefix = unique(&format!("tutti{tag}"));
        let api = free_port();
        let subnet = format!("198.18.{net}.");
        let yaml = config(
            &format!("net_tap0,iface={nic}"),
            "net_tap0",
            &[],
            Some(&format!("{subnet}2")),
            api,
            &prefix,
        )
        .replace(
            "    ipv4: 198.18.0.1/24\n",
            &format!("    ipv4: {subnet}1/24\n    exception: {{iface: {kernel_if}{exception}}}\n"),
        );
        let extra = extra_yaml.replace("198.18.0.", &subnet);
        let t = Tutti::start_in(&ns, &format!("{yaml}{extra}"), &prefix, api);
        clients.adopt_from(Some(&ns), &nic, &format!("{subnet}2/24"));
        // The clients' side of the wire has a MAC of its own (net_tap gives the kernel
        // end the port's MAC).
        let mac = format!("02:00:00:00:{net:02x}:02");
        must(
            "ip",
            &["-n", &clients.name, "link", "set", &nic, "address", &mac],
        );
        for host in [3, 4] {
            let a = format!("{subnet}{host}/24");
            must("ip", &["-n", &clients.name, "addr", "add", &a, "dev", &nic]);
        }
        Appliance { t, ns, kernel_if }
    }
}

pub mod sip;
pub mod srtp;
