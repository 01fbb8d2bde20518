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
