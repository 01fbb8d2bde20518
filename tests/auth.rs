//! The control and gateway APIs with bearer tokens (`control.token_file`,
//! `gateway.token`, `gateway.mixer_token`), asked with curl: no token or a wrong one is
//! 401 with a challenge, the right one 200, `/healthz` open, `/metrics` open or closed
//! as `control.metrics_public` says; a gateway creates conferences on a token-protected
//! mixer with its mixer token; `control.tls` serves HTTPS (a self-signed certificate
//! made with the openssl CLI) and plain HTTP gets no answer.

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

#[test]
fn control_tls_serves_https_with_the_configured_certificate() {
    require_environment();
    let _one = one_at_a_time();
    let dir = std::env::temp_dir().join(unique("tutti-tls-"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    must(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tutti-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            k,
            "-out",
            c,
        ],
    );
    let prefix = unique("tuttitls");
    let api = free_port();
    let base = config("net_null0", "net_null0", &[], None, api, &prefix);
    // A key that is not one is refused at start-up, naming the file.
    let bad = format!("{base}  tls:\n    cert: {c}\n    key: {c}\n");
    let f = dir.join("bad.yaml");
    std::fs::write(&f, bad).unwrap();
    let o = run(tutti_bin(), &["check-config", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("control.tls.key") && err.contains(c),
        "{err}"
    );

    let yaml = format!("{base}  token: s3cret\n  tls:\n    cert: {c}\n    key: {k}\n");
    let mut t = Tutti::spawn(&yaml, &prefix, api);
    let https = format!("https://127.0.0.1:{api}");
    let trusted = ["--cacert", c];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while curl(&https, "/healthz", &trusted).0 != 200 {
        assert!(
            t.child.try_wait().unwrap().is_none(),
            "tutti exited: {}",
            t.stderr()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no HTTPS: {}",
            t.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let auth = ["--cacert", c, "-H", "Authorization: Bearer s3cret"];
    let (code, body) = curl(&https, "/v1/status", &auth);
    assert_eq!(code, 200, "{body}");
    assert_eq!(curl(&https, "/v1/status", &trusted).0, 401);
    // Without trusting the certificate, or in plain HTTP, there is no answer.
    assert_eq!(curl(&https, "/healthz", &[]).0, 0);
    let (code, _) = curl(&format!("http://127.0.0.1:{api}"), "/healthz", &[]);
    assert_eq!(code, 0, "plain HTTP answered");
    assert!(t
        .stderr()
        .contains(&format!("control API on https://127.0.0.1:{api}")));
    let (status, _) = t.terminate();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
