//! Provisioning through `/v1/directory/conferences` survives a restart (the embedded
//! store in `state_dir`). An unusable `state_dir` is in errors.rs.

mod common;
use common::*;

const ENTRY: &str = r#"{"code": "4711", "pin": "1234", "moderator_pin": "9876",
                        "wait_for_moderator": true, "name": "Ops bridge"}"#;

#[test]
fn provisioning_survives_a_restart() {
    require_environment();
    let _serial = one_at_a_time();
    let state = std::env::temp_dir().join(unique("tutti-state-"));
    let prefix = unique("dir");
    let api = free_port();
    let yaml = format!(
        "{}state_dir: {}\n",
        config("net_null0", "net_null0", &[], None, api, &prefix),
        state.display()
    );
    let mut t = Tutti::start(&yaml, &prefix, api);
    let (code, created) = t.call("POST", "/v1/directory/conferences", Some(ENTRY));
    assert_eq!(code, 201, "{created}");
    let (code, _) = t.call(
        "PUT",
        "/v1/directory/conferences/12",
        Some(r#"{"locked": true}"#),
    );
    assert_eq!(code, 201);
    assert_eq!(
        t.call("DELETE", "/v1/directory/conferences/12", None).0,
        204
    );
    assert_eq!(
        t.metric(r#"tutti_store_requests_total{op="insert",result="ok"}"#),
        1.0
    );
    t.assert_metrics_valid();
    let (status, _) = t.terminate();
    assert!(status.success(), "{}", t.stderr());

    let mut t = Tutti::start(&yaml, &prefix, api);
    let (code, got) = t.call("GET", "/v1/directory/conferences/4711", None);
    assert_eq!((code, &got), (200, &created));
    assert_eq!(got["moderator_pin"], "9876");
    let (_, page) = t.call("GET", "/v1/directory/conferences", None);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(t.call("GET", "/v1/directory/conferences/12", None).0, 404);
    let (status, _) = t.terminate();
    assert!(status.success(), "{}", t.stderr());
    let _ = std::fs::remove_dir_all(&state);
}

/// Debian's redis-server on a free loopback port, stopped by PID when dropped.
struct RedisServer(std::process::Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_appliances_share_provisioning_in_redis() {
    require_environment();
    let _serial = one_at_a_time();
    let port = free_port();
    let redis = RedisServer(
        std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let store =
        format!("store: {{backend: redis, url: 'redis://127.0.0.1:{port}/0', prefix: e2e}}\n");
    let start = |tag: &str| {
        let prefix = unique(tag);
        let api = free_port();
        let yaml = format!(
            "{}{store}",
            config("net_null0", "net_null0", &[], None, api, &prefix)
        );
        Tutti::start(&yaml, &prefix, api)
    };
    let mut a = start("rda");
    let mut b = start("rdb");
    let (code, created) = a.call("POST", "/v1/directory/conferences", Some(ENTRY));
    assert_eq!(code, 201, "{created}");
    let (code, got) = b.call("GET", "/v1/directory/conferences/4711", None);
    assert_eq!((code, &got), (200, &created), "B reads what A wrote");
    assert_eq!(
        b.call("POST", "/v1/directory/conferences", Some(ENTRY)).0,
        409
    );
    // The store going away is a clear 500 naming it, and the appliances keep serving.
    drop(redis);
    let (code, err) = a.call("GET", "/v1/directory/conferences/4711", None);
    assert_eq!(code, 500, "{err}");
    assert!(
        err["error"].as_str().unwrap_or_default().contains("redis"),
        "{err}"
    );
    assert_eq!(a.get("/healthz").0, 200);
    assert!(a.metric(r#"tutti_store_requests_total{op="get",result="error"}"#) >= 1.0);
    for t in [&mut a, &mut b] {
        let (status, _) = t.terminate();
        assert!(status.success(), "{}", t.stderr());
    }
}
