//! tutti on `virtio_user`, connected to a `net_vhost` backend run by `dpdk-testpmd` (the
//! testpmd-style virtio pairing). testpmd's icmpecho engine answers tutti's ARP request
//! for its gateway: packets flow both ways and both sides count them.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Testpmd {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        signal(self.child.id(), "-INT");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The last "RX-packets: N ... TX-packets: M" pair testpmd printed for port 0.
fn testpmd_counts(log: &std::path::Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .rev()
            .find_map(|l| {
                let i = l.find(name)?;
                l[i + name.len()..].split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0)
    };
    (field("RX-packets:"), field("TX-packets:"))
}

#[test]
fn virtio_user_to_vhost_passes_traffic_both_ways() {
    require_environment();
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("tuttivh")));
    let log = std::env::temp_dir().join(format!("{}.log", unique("testpmd")));
    let vh_prefix = unique("tuttivhost");
    let pmd = Command::new("timeout")
        .args([
            "60",
            "dpdk-testpmd",
            "-l",
            "0-1",
            "--no-pci",
            "-m",
            "128",
            "--huge-unlink",
        ])
        .arg(format!("--file-prefix={vh_prefix}"))
        .arg(format!(
            "--vdev=net_vhost0,iface={},queues=1",
            sock.display()
        ))
        .args([
            "--",
            "--forward-mode=icmpecho",
            "--stats-period",
            "1",
            "--nb-cores=1",
            "--no-mlockall",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("dpdk-testpmd (package dpdk) must be installed");
    let pmd = Testpmd {
        child: pmd,
        log: log.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "testpmd never created {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let prefix = unique("tuttivu");
    let api = free_port();
    let yaml = config(
        &format!("virtio_user0,path={},queues=1", sock.display()),
        "virtio_user0",
        &["--single-file-segments"],
        Some("198.18.0.254"),
        api,
        &prefix,
    );
    let mut t = Tutti::start(&yaml, &prefix, api);
    t.wait_for(15, "the gateway's ARP reply from testpmd", |t| {
        t.metric("tutti_rx_packets_total{core=\"1\"}") >= 1.0
    });
    assert!(t.metric("tutti_tx_packets_total{core=\"1\"}") >= 1.0);
    assert!(t.metric("tutti_arp_requests_total{core=\"1\"}") >= 1.0);
    assert_eq!(
        t.metric("tutti_dropped_packets_total{core=\"1\",reason=\"unsupported_arp\"}"),
        0.0
    );
    let (_, status) = t.get("/v1/status");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["ports"][0]["driver"], "net_virtio_user");
    assert_eq!(v["ports"][0]["link_up"], true);

    // testpmd's own counters (printed every second) show the same packets.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rx, tx) = testpmd_counts(&pmd.log);
        if rx >= 1 && tx >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "testpmd counted rx {rx} tx {tx}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, _) = t.terminate();
    assert!(st.success(), "{}", t.stderr());
    assert_eq!(t.hugepage_files(), 0);
    drop(pmd);
    let _ = std::fs::remove_file(&sock);
}
