//! tutti on `net_tap`, the tap moved into a namespace this test creates: it answers ARP
//! and ping at 198.18.0.1, counts a UDP datagram to an unused port as a drop, resolves its
//! gateway by ARP, serves valid metrics, and exits 0 on SIGTERM releasing its hugepages.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn tap_answers_arp_and_ping_counts_drops_and_stops_cleanly() {
    require_environment();
    let iface = unique("tt");
    let prefix = unique("tuttitap");
    let api = free_port();
    let yaml = config(
        &format!("net_tap0,iface={iface}"),
        "net_tap0",
        &[],
        Some("198.18.0.2"),
        api,
        &prefix,
    );
    let mut t = Tutti::start(&yaml, &prefix, api);
    let ns = Netns::new();
    ns.adopt(&iface, "198.18.0.2/24");

    // The gateway (the namespace side here) is resolved by tutti on its own: the kernel
    // learns tutti's address from the request before anything is sent to tutti.
    t.wait_for(10, "an ARP request for the gateway", |t| {
        t.metric("tutti_arp_requests_total{core=\"1\"}") >= 1.0
    });

    let ping = ns.exec("ping", &["-c", "3", "-i", "0.2", "-W", "2", "198.18.0.1"]);
    assert!(
        ping.status.success(),
        "ping failed: {}\n{}",
        String::from_utf8_lossy(&ping.stdout),
        t.stderr()
    );
    let out = String::from_utf8_lossy(&ping.stdout);
    assert!(out.contains("3 received"), "{out}");

    // ARP: the namespace's neighbour entry for 198.18.0.1 carries tutti's MAC.
    let (_, status) = t.get("/v1/status");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let mac = v["ports"][0]["mac"].as_str().unwrap().to_string();
    // (net_tap reads link state from the kernel interface by name in tutti's namespace,
    // so after the move it reads "down"; the virtio test checks link state.)
    assert_eq!(v["ports"][0]["driver"], "net_tap");
    let neigh = String::from_utf8_lossy(&ns.exec("ip", &["neigh", "show", "198.18.0.1"]).stdout)
        .into_owned();
    assert!(
        neigh.contains(&mac),
        "neighbour table {neigh} lacks tutti's MAC {mac}"
    );
    assert!(t.metric("tutti_icmp_echo_replies_total{core=\"1\"}") >= 3.0);

    // A UDP datagram to an unused port is a counted drop.
    let before = t.metric("tutti_dropped_packets_total{core=\"1\",reason=\"no_listener\"}");
    let send = ns.exec(
        "python3",
        &["-c", "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'hello', ('198.18.0.1', 9999))"],
    );
    assert!(send.status.success());
    t.wait_for(5, "the UDP drop to be counted", |t| {
        t.metric("tutti_dropped_packets_total{core=\"1\",reason=\"no_listener\"}") >= before + 1.0
    });
    let rx = t.metric("tutti_rx_packets_total{core=\"1\"}");
    let tx = t.metric("tutti_tx_packets_total{core=\"1\"}");
    assert!(rx >= 5.0 && tx >= 4.0, "rx {rx} tx {tx}");

    t.assert_metrics_valid();

    assert!(t.hugepage_files() > 0, "a running instance maps hugepages");
    let (st, took) = t.terminate();
    assert!(st.success(), "exit status {st}: {}", t.stderr());
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    assert_eq!(t.hugepage_files(), 0, "hugepage files left behind");
}
