//! The control and gateway APIs with bearer tokens (`control.token_file`,
//! `gateway.token`, `gateway.mixer_token`), asked with curl: no token or a wrong one is
//! 401 with a challenge, the right one 200, `/healthz` open, `/metrics` open or closed
//! as `control.metrics_public` says; a gateway creates conferences on a token-protected
//! mixer with its mixer token.

mod common;
use common::*;

/// curl `args` against `base` + `path`: the status and the body.
fn curl(base: &str, path: &str, args: &[&str]) -> (u16, String) {
    let url = format!("{base}{path}");
    let mut all = vec!["-sS", "--max-time", "5", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    all.push(&url);
    let o = run("curl", &all);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The `WWW-Authenticate` header of `GET base+path` with `args`.
fn challenge(base: &str, path: &str, args: &[&str]) -> String {
    let url = format!("{base}{path}");
    let mut all = vec!["-sS", "--max-time", "5", "-o", "/dev/null", "-D", "-"];
    all.extend_from_slice(args);
    all.push(&url);
    let head = String::from_utf8_lossy(&run("curl", &all).stdout).into_owned();
    head.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

const BEARER: &str = "Authorization: Bearer mixer-secret";

#[test]
fn tokens_guard_the_apis_and_the_gateway_uses_its_mixer_token() {
    require_environment();
    let _one = one_at_a_time();
    let dir = std::env::temp_dir().join(unique("tutti-auth-"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("mixer.token");
    std::fs::write(&token_file, "mixer-secret\n").unwrap();

    let prefix = unique("tuttiauthm");
    let api = free_port();
    let yaml = format!(
        "{}  token_file: {}\n",
        config("net_null0", "net_null0", &[], None, api, &prefix),
        token_file.display()
    );
    let mixer = Tutti::start(&yaml, &prefix, api);
    let base = format!("http://{}", mixer.api);

    for path in ["/v1/status", "/v1/conferences", "/metrics", "/openapi.json"] {
        let (code, body) = curl(&base, path, &[]);
        assert_eq!(code, 401, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].is_string(), "{body}");
        assert_eq!(challenge(&base, path, &[]), "Bearer realm=\"tutti\"");
        let wrong = ["-H", "Authorization: Bearer mixer-secreT"];
        assert_eq!(curl(&base, path, &wrong).0, 401, "{path}");
        assert_eq!(
            challenge(&base, path, &wrong),
            "Bearer realm=\"tutti\", error=\"invalid_token\""
        );
        assert_eq!(curl(&base, path, &["-H", BEARER]).0, 200, "{path}");
    }
    // The event stream is guarded too: refused at once without the token.
    assert_eq!(curl(&base, "/v1/events", &[]).0, 401);
    assert_eq!(curl(&base, "/healthz", &[]), (200, "ok\n".to_string()));
    let (_, doc) = curl(&base, "/openapi.json", &["-H", BEARER]);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // A gateway (with a token of its own) in front of the mixer, sending mixer-secret.
    let gprefix = unique("tuttiauthg");
    let (gapi, glisten) = (free_port(), free_port());
    let yaml = format!(
        "{}  metrics_public: true\ngateway:\n  listen: 127.0.0.1:{glisten}\n  mixers: [\"{base}\"]\n  token: gateway-secret\n  mixer_token_file: {}\n",
        config("net_null0", "net_null0", &[], None, gapi, &gprefix),
        token_file.display()
    );
    let gateway = Tutti::start(&yaml, &gprefix, gapi);
    let gbase = format!("http://127.0.0.1:{glisten}");
    // control.metrics_public opens /metrics on both of the gateway's APIs only.
    assert_eq!(
        curl(&format!("http://{}", gateway.api), "/metrics", &[]).0,
        200
    );
    assert_eq!(curl(&gbase, "/metrics", &[]).0, 200);
    assert_eq!(curl(&gbase, "/v1/conferences", &[]).0, 401);
    assert_eq!(curl(&gbase, "/v1/conferences", &["-H", BEARER]).0, 401);
    let gauth = ["-H", "Authorization: Bearer gateway-secret"];
    let post = |path: &str, body: &str| {
        let mut args = gauth.to_vec();
        args.extend(["-H", "Content-Type: application/json", "-d", body]);
        curl(&gbase, path, &args)
    };
    let (code, body) = post("/v1/conferences", r#"{"id":"guarded"}"#);
    assert_eq!(code, 201, "{body}\n{}", gateway.stderr());
    let (code, body) = post(
        "/v1/conferences/guarded/participants",
        r#"{"remote":"198.18.0.2:4000","codec":"pcmu"}"#,
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = post("/v1/call-managers/cm1/heartbeat", r#"{"interval_ms":1000}"#);
    assert_eq!(code, 200, "{body}");
    let (code, body) = curl(&base, "/v1/conferences/guarded", &["-H", BEARER]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["participant_count"], 1, "{v}");
    let (_, body) = curl(&base, "/v1/call-managers", &["-H", BEARER]);
    assert!(body.contains("\"cm1\""), "{body}");
    drop(gateway);
    drop(mixer);
    let _ = std::fs::remove_dir_all(&dir);
}
