//! Bad configurations, a missing device and a port that cannot start give a clear error
//! and a non-zero exit, never a hang.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn wait_exit(t: &mut Tutti, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = t.child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "tutti hung: {}", t.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_config_reports_line_and_column() {
    let dir = std::env::temp_dir().join(unique("tutti-cfg-"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "eal: []\nports:\n  - device: net_null0\n    ipv4: 198.18.0.1/24\n    speed: 10\ndataplane:\n  cores: [1]\ncontrol:\n  listen: 127.0.0.1:1\n",
    )
    .unwrap();
    let o = run(tutti_bin(), &["check-config", f.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.yaml:5:5") && err.contains("unknown field `speed`"),
        "{err}"
    );

    std::fs::write(&f, "eal: [\n").unwrap();
    let o = run(tutti_bin(), &["check-config", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.yaml:"),
        "syntax error without a location"
    );

    let good = config("net_null0", "net_null0", &[], None, 1, "x");
    std::fs::write(&f, good).unwrap();
    let o = run(tutti_bin(), &["check-config", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(": ok"));

    let o = run(
        tutti_bin(),
        &["check-config", dir.join("missing.yaml").to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);

    let o = run(tutti_bin(), &["--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("run") && help.contains("check-config"),
        "{help}"
    );
}

#[test]
fn missing_device_is_a_clear_error() {
    require_environment();
    let prefix = unique("tuttimiss");
    // The EAL creates net_null0, but the config asks for a device that does not exist.
    let yaml = config("net_null0", "net_nosuch0", &[], None, free_port(), &prefix);
    let mut t = Tutti::spawn(&yaml, &prefix, 1);
    let st = wait_exit(&mut t, 30);
    assert!(!st.success());
    let err = t.stderr();
    assert!(
        err.contains("no DPDK port named 'net_nosuch0'") && err.contains("net_null0"),
        "{err}"
    );
    assert_eq!(t.hugepage_files(), 0);
}

#[test]
fn port_that_cannot_start_is_a_clear_error() {
    require_environment();
    let prefix = unique("tuttibadq");
    // An af_packet port created with one queue pair cannot serve two dataplane cores
    // (both mapped onto CPU 1 so this works on a two-CPU machine). Nothing is sent.
    let api = free_port();
    let mut yaml = config(
        "net_af_packet0,iface=lo,qpairs=1",
        "net_af_packet0",
        &[],
        None,
        api,
        &prefix,
    );
    yaml = yaml.replace("\"-l\", \"0-1\"", "\"--lcores\", \"0@0,(1,2)@1\"");
    yaml = yaml.replace("cores: [1]", "cores: [1, 2]");
    let mut t = Tutti::spawn(&yaml, &prefix, api);
    let st = wait_exit(&mut t, 30);
    assert!(!st.success());
    let err = t.stderr();
    assert!(
        err.contains("(net_af_packet0): configuring queues failed: 2 queue pairs asked for, the device has at most 1"),
        "{err}"
    );
    assert_eq!(t.hugepage_files(), 0);
}

#[test]
fn eal_failure_and_bad_core_are_clear_errors() {
    require_environment();
    let prefix = unique("tuttieal");
    let yaml = config(
        "net_null0",
        "net_null0",
        &["--no-such-eal-option"],
        None,
        free_port(),
        &prefix,
    );
    let mut t = Tutti::spawn(&yaml, &prefix, 1);
    assert!(!wait_exit(&mut t, 30).success());
    assert!(
        t.stderr().contains("EAL initialisation failed"),
        "{}",
        t.stderr()
    );

    let prefix = unique("tuttimain");
    let yaml = config("net_null0", "net_null0", &[], None, free_port(), &prefix)
        .replace("cores: [1]", "cores: [0]");
    let mut t = Tutti::spawn(&yaml, &prefix, 1);
    assert!(!wait_exit(&mut t, 30).success());
    assert!(
        t.stderr().contains("lcore 0 is the EAL main lcore"),
        "{}",
        t.stderr()
    );
    assert_eq!(t.hugepage_files(), 0);
}

#[test]
fn busy_control_port_is_a_clear_error_and_cores_stop() {
    require_environment();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let prefix = unique("tuttibusy");
    let yaml = config("net_null0", "net_null0", &[], None, port, &prefix);
    let mut t = Tutti::spawn(&yaml, &prefix, port);
    assert!(!wait_exit(&mut t, 30).success());
    assert!(
        t.stderr()
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        t.stderr()
    );
    assert_eq!(t.hugepage_files(), 0);
}

#[test]
fn exception_interface_that_exists_already_is_a_clear_error() {
    require_environment();
    let prefix = unique("tuttixex");
    let ns = Netns::new();
    let taken = unique("xt");
    must(
        "ip",
        &[
            "-n", &ns.name, "tuntap", "add", "dev", &taken, "mode", "tap",
        ],
    );
    let yaml = config("net_null0", "net_null0", &[], None, free_port(), &prefix).replace(
        "    ipv4: 198.18.0.1/24\n",
        &format!("    ipv4: 198.18.0.1/24\n    exception: {{iface: {taken}}}\n"),
    );
    let mut t = Tutti::spawn_in(&ns, &yaml, &prefix, 1);
    let st = wait_exit(&mut t, 30);
    assert!(!st.success());
    let err = t.stderr();
    assert!(
        err.contains(&format!(
            "ports[0].exception.iface: an interface named {taken} exists already"
        )),
        "{err}"
    );
    assert_eq!(t.hugepage_files(), 0, "hugepage files left behind");
}

#[test]
fn an_unusable_state_dir_stops_start_up_naming_it() {
    require_environment();
    // A regular file where the directory should be.
    let file = std::env::temp_dir().join(unique("tutti-state-file-"));
    std::fs::write(&file, "not a directory").unwrap();
    let prefix = unique("dirbad");
    let api = free_port();
    let yaml = format!(
        "{}state_dir: {}\n",
        config("net_null0", "net_null0", &[], None, api, &prefix),
        file.display()
    );
    let mut t = Tutti::spawn(&yaml, &prefix, api);
    assert!(!wait_exit(&mut t, 60).success());
    let err = t.stderr();
    assert!(
        err.contains("state_dir") && err.contains(&file.display().to_string()),
        "{err}"
    );
    let _ = std::fs::remove_file(&file);
}
