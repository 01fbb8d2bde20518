//! Kamailio (Debian's, dispatcher module) in front of two tutti appliances, with the
//! configuration shipped in scripts/kamailio: calls from sipp through Kamailio are spread
//! over both; an appliance that is full answers OPTIONS and INVITE with 503 and gets no
//! new calls (they go to the other); an appliance that dies gets none either.
//!
//! Each tutti runs in a namespace of its own with an exception port (service addresses
//! 198.18.0.1 and 198.18.1.1); both NICs end in one clients' namespace where Kamailio
//! (198.18.0.4:5060) and sipp (198.18.0.3) run.

mod common;
use common::sip::sipp;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kamailio in `ns` (`ip netns exec` execs it, so the child is Kamailio's main
/// process), stopped by PID when dropped: SIGTERM, on which it stops its workers, then
/// SIGKILL if it is still there after 5 s.
struct Kamailio(Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        signal(self.0.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kamailio(ns: &Netns, dir: &std::path::Path) -> Kamailio {
    let list = dir.join("tutti.list");
    std::fs::write(&list, "1 sip:198.18.0.1:5060\n1 sip:198.18.1.1:5060\n").unwrap();
    let cfg = repo_path("scripts/kamailio/kamailio.cfg");
    let dispatcher = format!("TUTTI_DISPATCHER=\"{}\"", list.display());
    let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "timeout", "120", "kamailio", "-DD", "-E",
        ])
        .args(["-f", cfg.to_str().unwrap()])
        .args(["-A", "TUTTI_LISTEN=udp:198.18.0.4:5060", "-A", &dispatcher])
        .args(["-Y", dir.to_str().unwrap(), "-w", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("kamailio (Debian package kamailio)");
    Kamailio(child)
}

/// A caller that follows the Record-Route (sipp's built-in `uac` does not): INVITE,
/// 200 (its Record-Route kept), ACK and BYE through the route set to tutti's Contact.
const UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac through a record-routing proxy">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// INVITEs tutti answered with `code` so far.
fn invites(t: &Tutti, code: u16) -> f64 {
    let (_, text) = t.get("/metrics");
    let sample = format!("tutti_sip_requests_total{{method=\"INVITE\",code=\"{code}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&sample))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn options_503(t: &Tutti) -> f64 {
    let (_, text) = t.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(r#"tutti_sip_requests_total{method="OPTIONS",code="503"} "#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn kamailio_spreads_calls_and_skips_full_and_dead_appliances() {
    require_environment();
    let _serial = one_at_a_time();
    let clients = Netns::new();
    let sip = "sip:\n  listen: [\"udp:198.18.0.1:5060\"]\n  auto_create: true\n";
    let a = Appliance::start("ka", "", sip, 0, &clients);
    let mut b = Appliance::start("kb", "", &format!("{sip}  max_calls: 1\n"), 1, &clients);
    let dir = a.t.dir.clone();
    let _kamailio = kamailio(&clients, &dir);
    let calls = |n: u32, hold_ms: u32| {
        let (n, hold) = (n.to_string(), hold_ms.to_string());
        let args = ["-s", "conf-k", "-m", &n, "-r", "5", "-d", &hold];
        sipp(
            &clients,
            &dir,
            "198.18.0.4:5060",
            UAC,
            "198.18.0.3",
            &args,
            60,
        )
    };
    // Both appliances answer the probes: wait until a call lands on each.
    let deadline = Instant::now() + Duration::from_secs(30);
    while invites(&a.t, 200) < 1.0 || invites(&b.t, 200) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "calls do not reach both appliances"
        );
        let (ok, log) = calls(2, 100).finish();
        assert!(ok, "sipp through kamailio: {log}");
    }

    // Spread: ten calls, round-robin over both.
    let (a0, b0) = (invites(&a.t, 200), invites(&b.t, 200));
    let (ok, log) = calls(10, 100).finish();
    assert!(ok, "sipp through kamailio: {log}");
    let (da, db) = (invites(&a.t, 200) - a0, invites(&b.t, 200) - b0);
    assert_eq!(da + db, 10.0);
    assert!(da >= 3.0 && db >= 3.0, "calls per appliance: {da} and {db}");

    // B full (max_calls 1, one long call straight to it): it answers 503 and every new
    // call through Kamailio is answered by A.
    let long = sipp(
        &clients,
        &dir,
        "198.18.1.1:5060",
        UAC,
        "198.18.1.3",
        &["-s", "conf-long", "-m", "1", "-d", "15000"],
        60,
    );
    b.t.wait_for(10, "B's long call", |t| invites(t, 200) > b0 + db);
    b.t.wait_for(10, "an OPTIONS probe answered 503", |t| {
        options_503(t) >= 1.0
    });
    let (a1, b1) = (invites(&a.t, 200), invites(&b.t, 200));
    let (ok, log) = calls(6, 100).finish();
    assert!(ok, "sipp through kamailio while B is full: {log}");
    assert_eq!(invites(&a.t, 200) - a1, 6.0, "A takes every new call");
    assert_eq!(invites(&b.t, 200), b1, "B takes none while full");
    drop(long);

    // B dies: every call still succeeds, on A.
    b.t.child.kill().unwrap();
    let _ = b.t.child.wait();
    let a2 = invites(&a.t, 200);
    let (ok, log) = calls(6, 100).finish();
    assert!(ok, "sipp through kamailio with B dead: {log}");
    assert_eq!(invites(&a.t, 200) - a2, 6.0, "A takes every call");
}
