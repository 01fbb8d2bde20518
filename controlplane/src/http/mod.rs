//! The HTTP API: `/healthz`, `/v1/status`, `/metrics`, `/openapi.json`, the event stream
//! `/v1/events`, the conference REST API and the gateway API (see [`openapi`]). Every
//! error, including unknown routes, bad methods and rejected bodies, is a JSON
//! `{"error": ...}` body ([`mod@error`]); every answer is counted by route template and
//! status. Handlers import [`mod@error`], [`extract`] and [`dto`]; nothing here imports
//! the handlers but the route table.

pub mod auth;
mod call_managers;
mod conferences;
mod dial;
mod directory;
pub mod dto;
pub mod error;
pub mod extract;
pub(crate) mod gateway;
pub mod openapi;
pub mod tls;

use crate::events::{lagged, Delivery};
use crate::{metrics, ControlState};
pub use auth::Access;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use error::error;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use std::convert::Infallible;
use std::future::Future;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The routes both the mixer API and the gateway API serve.
fn shared_routes() -> Vec<(&'static str, MethodRouter<ControlState>)> {
    vec![
        ("/healthz", get(healthz)),
        ("/v1/status", get(status)),
        ("/metrics", get(metrics_text)),
        ("/v1/events", get(events)),
    ]
}

/// Every route the API serves: its path template and handlers. The router and the
/// OpenAPI document's test both read this list.
fn routes() -> Vec<(&'static str, MethodRouter<ControlState>)> {
    use conferences as c;
    let mut all = shared_routes();
    all.extend([
        ("/openapi.json", get(openapi_json)),
        ("/v1/conferences", get(c::list).post(c::create)),
        ("/v1/conferences/{id}", get(c::get).delete(c::delete)),
        (
            "/v1/conferences/{id}/participants",
            get(c::list_participants).post(c::add_participant),
        ),
        (
            "/v1/conferences/{id}/participants/{pid}",
            get(c::get_participant)
                .patch(c::patch_participant)
                .delete(c::delete_participant),
        ),
        (
            "/v1/conferences/{id}/participants/{pid}/rtp",
            axum::routing::put(c::set_rtp_basis),
        ),
        (
            "/v1/conferences/{id}/participants/{pid}/move",
            post(c::move_participant),
        ),
        ("/v1/conferences/{id}/prompts", post(c::play_prompt)),
        ("/v1/conferences/{id}/dial", post(dial::dial)),
        ("/v1/conferences/{id}/adopt", post(call_managers::adopt)),
        ("/v1/call-managers", get(call_managers::list)),
        (
            "/v1/call-managers/{cm}/heartbeat",
            post(call_managers::heartbeat),
        ),
        (
            "/v1/directory/conferences",
            get(directory::list).post(directory::create),
        ),
        (
            "/v1/directory/conferences/{code}",
            get(directory::get)
                .put(directory::put)
                .delete(directory::delete),
        ),
    ]);
    all
}

/// The path templates of every route, in the router's syntax (which is OpenAPI's).
pub fn route_paths() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

/// Label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

async fn count_requests(State(s): State<ControlState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED.to_string(), |m| m.as_str().to_string());
    let span = tracing::info_span!("request", method = %method, route = %route);
    let response = tracing::Instrument::instrument(next.run(req), span).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(method = %method, route = %route, status = status.as_u16(), "request failed");
    }
    s.api_metrics.record(&method, &route, status);
    response
}

/// The router with every endpoint of the mixer API, open to whom `access` lets in.
pub fn router(state: ControlState, access: Access) -> Router {
    build(routes(), state, access)
}

/// The router of the gateway API: the shared endpoints and the gateway's conference
/// calls, open to whom `access` lets in.
pub fn gateway_router(state: ControlState, access: Access) -> Router {
    build(gateway_routes(), state, access)
}

fn gateway_routes() -> Vec<(&'static str, MethodRouter<ControlState>)> {
    let mut all = shared_routes();
    all.push(("/openapi.json", get(gateway_openapi_json)));
    all.extend(gateway::routes());
    all
}

/// The path templates of every route of the gateway API.
pub fn gateway_route_paths() -> Vec<&'static str> {
    gateway_routes().into_iter().map(|(path, _)| path).collect()
}

fn build(
    routes: Vec<(&'static str, MethodRouter<ControlState>)>,
    state: ControlState,
    access: Access,
) -> Router {
    routes
        .into_iter()
        .fold(Router::new(), |r, (path, handlers)| r.route(path, handlers))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(access, auth::require_token))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct CoreStatus {
    lcore: u32,
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
    dropped: u64,
    drops: serde_json::Map<String, serde_json::Value>,
    busy_ratio: f64,
    iterations: u64,
}

#[derive(Serialize)]
struct Status {
    version: &'static str,
    ports: Vec<crate::PortStatus>,
    cores: Vec<CoreStatus>,
    capacity: crate::sessions::Capacity,
    conferences: usize,
}

async fn status(State(s): State<ControlState>) -> Json<impl Serialize> {
    let cores = s
        .cores
        .iter()
        .map(|c| {
            let k = &c.counters;
            CoreStatus {
                lcore: c.lcore,
                rx_packets: k.rx_packets.get(),
                rx_bytes: k.rx_bytes.get(),
                tx_packets: k.tx_packets.get(),
                tx_bytes: k.tx_bytes.get(),
                dropped: k.drops_total(),
                drops: tutti_dataplane::stats::DropReason::ALL
                    .iter()
                    .filter(|r| k.drops(**r) > 0)
                    .map(|r| (r.as_str().to_string(), k.drops(*r).into()))
                    .collect(),
                busy_ratio: k.busy_ratio(),
                iterations: k.iterations.get(),
            }
        })
        .collect();
    let (capacity, conferences) = {
        let c = s.control();
        (c.sessions().capacity(), c.sessions().conference_count())
    };
    Json(Status {
        version: s.version,
        ports: s.ports.ports(),
        cores,
        capacity,
        conferences,
    })
}

async fn openapi_json(State(s): State<ControlState>) -> Json<serde_json::Value> {
    let mut doc = openapi::document(s.version);
    openapi::name_prompts(&mut doc, s.control().prompt_names());
    Json(doc)
}

async fn gateway_openapi_json(State(s): State<ControlState>) -> Json<serde_json::Value> {
    let mut doc = openapi::gateway_document(s.version);
    if let Some(g) = &s.gateway {
        openapi::name_mixers(&mut doc, &g.config().mixers);
    }
    Json(doc)
}

/// `GET /v1/events`: every event from now on, as Server-Sent Events named by their
/// type, with keep-alive comments; a subscriber that falls behind gets a `lagged` event
/// saying how many it missed.
async fn events(
    State(s): State<ControlState>,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    let clock = s.clock.clone();
    let stream = s.events.subscribe().map(move |d| {
        let built = match d {
            Delivery::Event(ev) => sse::Event::default().event(ev.kind).json_data(&ev),
            Delivery::Lagged(missed) => sse::Event::default()
                .event("lagged")
                .json_data(lagged(missed, clock.wall())),
        };
        Ok(built
            .unwrap_or_else(|e| sse::Event::default().comment(format!("event not encoded: {e}"))))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// OpenMetrics when the scraper asks for it (as Prometheus does), else the classic
/// Prometheus text format.
async fn metrics_text(State(s): State<ControlState>, headers: HeaderMap) -> Response {
    let Ok(text) = metrics::render(&s) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    };
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(header::CONTENT_TYPE, metrics::OPENMETRICS)], text).into_response()
    } else {
        let classic = metrics::to_prometheus_text(&text);
        ([(header::CONTENT_TYPE, metrics::PROMETHEUS_TEXT)], classic).into_response()
    }
}

/// Serve `router` on `listener` (over TLS with `tls`) until `shutdown` completes; then
/// event streams end and requests in progress finish (`events` is the hub whose streams
/// end).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    events: crate::events::EventHub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = async move {
        shutdown.await;
        events.close();
    };
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(listener, acceptor)?, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{get, harness, json, media_core, send};
    use axum::http::Method;
    use http_body_util::BodyExt;
    use std::collections::BTreeSet;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tutti_dataplane::clock::Instant;
    use tutti_dataplane::conference::{MediaEvent, MediaEventKind, MediaOp, PartKey};
    use tutti_dataplane::rx::{Digit, DigitSource};

    #[tokio::test(flavor = "current_thread")]
    async fn metrics_read_counters_at_scrape_time() {
        let h = harness(vec![media_core(10)]);
        let (code, text) = get(&h.state, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains("tutti_rx_packets_total{core=\"1\"} 5"),
            "{text}"
        );
        assert!(text.contains("tutti_dropped_packets_total{core=\"1\",reason=\"no_listener\"} 1"));
        assert!(text.contains("tutti_mbufs_in_use{port=\"net_tap0\"} 512"));
        assert!(text.contains("# TYPE tutti_rx_packets_total counter"));
        assert!(!text.contains("# EOF"));
        h.counters.rx_packets.add(2);
        let (_, text) = get(&h.state, "/metrics").await;
        assert!(text.contains("tutti_rx_packets_total{core=\"1\"} 7"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn status_and_errors_are_json() {
        let h = harness(vec![media_core(10)]);
        let st = &h.state;
        let (code, body) = get(st, "/v1/status").await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["cores"][0]["rx_packets"], 5);
        assert_eq!(v["cores"][0]["drops"]["no_listener"], 1);
        assert_eq!(v["ports"][0]["link_up"], true);
        assert_eq!(
            v["capacity"],
            serde_json::json!({"participants": 10, "used": 0, "free": 10})
        );
        assert_eq!(v["conferences"], 0);
        let (code, body) = json(st, Method::GET, "/v1/nope", None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(body["error"].is_string());
        let (code, body) = json(st, Method::PUT, "/v1/conferences", Some("{}")).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body["error"].is_string());
        assert_eq!(get(st, "/healthz").await, (StatusCode::OK, "ok\n".into()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_poisoned_session_lock_is_taken_over() {
        let h = harness(vec![media_core(10)]);
        let core = h.state.core.clone();
        let poisoner = std::thread::spawn(move || {
            let _guard = core.lock().unwrap();
            panic!("deliberate panic to poison the session lock");
        });
        assert!(poisoner.join().is_err());
        assert!(h.state.core.is_poisoned());
        let (code, _) = json(&h.state, Method::POST, "/v1/conferences", Some("{}")).await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, v) = json(&h.state, Method::GET, "/v1/status", None).await;
        assert_eq!(
            (code, &v["conferences"]),
            (StatusCode::OK, &serde_json::json!(1))
        );
    }

    /// Is `text` the body of a request that reached a handler for `method`?
    fn served(code: StatusCode, text: &str) -> bool {
        code != StatusCode::METHOD_NOT_ALLOWED && !text.contains("no such endpoint")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn openapi_documents_exactly_the_routes_served() {
        let h = harness(vec![media_core(10)]);
        documents_exactly(router, &h.state, route_paths(), "tutti control API").await;
        let gateway = crate::gateway::Gateway::new(
            crate::gateway::GatewayConfig {
                mixers: Vec::new(),
                handover: Default::default(),
            },
            Default::default(),
        )
        .unwrap();
        let g = h.state.clone().with_gateway(gateway);
        documents_exactly(
            gateway_router,
            &g,
            gateway_route_paths(),
            "tutti gateway API",
        )
        .await;
    }

    /// `/openapi.json` of `make(state)` documents exactly `served_paths`, every method
    /// served is documented and the other way round, and references resolve.
    async fn documents_exactly(
        make: fn(ControlState, Access) -> Router,
        state: &ControlState,
        served_paths: Vec<&str>,
        title: &str,
    ) {
        let (code, text) = crate::test_support::send_via(
            make(state.clone(), Access::open()),
            Method::GET,
            "/openapi.json",
            None,
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.0."));
        assert_eq!(doc["info"]["version"], "test");
        assert_eq!(doc["info"]["title"], title);
        let paths = doc["paths"].as_object().unwrap();
        let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
        let served_paths: BTreeSet<&str> = served_paths.into_iter().collect();
        assert_eq!(documented, served_paths);
        // Every documented method is served and every served method documented. The
        // event stream never ends, so it is only checked for being documented.
        for (path, item) in paths {
            let uri = path.replace("{id}", "c1").replace("{pid}", "p1");
            for method in ["get", "post", "patch", "delete", "put"] {
                let documented = item.get(method).is_some();
                if uri == "/v1/events" && method == "get" {
                    assert!(documented);
                    continue;
                }
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (code, text) = crate::test_support::send_via(
                    make(state.clone(), Access::open()),
                    m,
                    &uri,
                    Some("{}"),
                )
                .await;
                assert_eq!(
                    served(code, &text),
                    documented,
                    "{method} {path}: {code} {text}"
                );
                if documented {
                    for status in item[method]["responses"].as_object().unwrap().keys() {
                        assert!(status.parse::<u16>().is_ok(), "{status}");
                    }
                }
            }
        }
        // Every operation that creates something links to the operations that use its
        // id, each link to an operation with those path parameters.
        let ops: std::collections::BTreeMap<&str, (&str, &serde_json::Value)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object().unwrap().values().filter_map(move |op| {
                    Some((op.get("operationId")?.as_str()?, (path.as_str(), op)))
                })
            })
            .collect();
        let mut linked = 0;
        for (id, (_, op)) in &ops {
            for (status, r) in op["responses"].as_object().unwrap() {
                if status == "201" {
                    assert!(r.get("links").is_some(), "{id} {status} has no links");
                }
                for (name, l) in r
                    .get("links")
                    .and_then(|l| l.as_object())
                    .into_iter()
                    .flatten()
                {
                    let target = l["operationId"].as_str().unwrap();
                    let (path, _) = ops.get(target).unwrap_or_else(|| panic!("{id}: {target}"));
                    for (param, expr) in l["parameters"].as_object().unwrap() {
                        assert!(
                            path.contains(&format!("{{{param}}}")),
                            "{name}: {path} {param}"
                        );
                        assert!(expr.as_str().unwrap().starts_with("$response.body#/"));
                    }
                    linked += 1;
                }
            }
        }
        assert!(linked >= 10, "{linked} links");
        // References resolve.
        let text = doc.to_string();
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn metrics_count_requests_by_route_template_and_pass_promtool() {
        let h = harness(vec![media_core(10)]);
        let st = &h.state;
        send(st, Method::POST, "/v1/conferences", Some(r#"{"id":"m1"}"#)).await;
        let body = r#"{"remote":"198.18.0.2:4000","codec":"pcmu"}"#;
        send(
            st,
            Method::POST,
            "/v1/conferences/m1/participants",
            Some(body),
        )
        .await;
        get(st, "/v1/conferences/m1").await;
        get(st, "/v1/conferences/zz").await;
        get(st, "/v1/conferences/yy").await;
        get(st, "/no/such/thing").await;
        let (_, text) = get(st, "/metrics").await;
        for line in [
            r#"tutti_api_requests_total{method="POST",route="/v1/conferences",status="201"} 1"#,
            r#"tutti_api_requests_total{method="GET",route="/v1/conferences/{id}",status="200"} 1"#,
            r#"tutti_api_requests_total{method="GET",route="/v1/conferences/{id}",status="404"} 2"#,
            r#"tutti_api_requests_total{method="POST",route="/v1/conferences/{id}/participants",status="201"} 1"#,
            r#"tutti_api_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            "# TYPE tutti_api_requests_total counter",
            r#"tutti_conferences{core="3"} 1"#,
            r#"tutti_participants{core="3"} 1"#,
            r#"tutti_participant_capacity{core="3"} 10"#,
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("zz") && !text.contains("/no/such"), "{text}");
        promtool_check(&text);
    }

    /// Run `promtool check metrics` on `text` if promtool is installed.
    fn promtool_check(text: &str) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            println!("note: promtool not installed; skipping `promtool check metrics`");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Read SSE frames up to the next named event, which must be `kind`; its JSON data.
    /// Keep-alive comments are skipped.
    async fn next_event(body: &mut axum::body::Body, kind: &str) -> serde_json::Value {
        let mut buf = String::new();
        loop {
            if let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = Some(n.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(d.to_string());
                    }
                }
                if let Some(name) = name {
                    assert_eq!(name, kind, "{block}");
                    return serde_json::from_str(&data.expect("data line")).unwrap();
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("an SSE frame within 5 s")
                .expect("stream open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sse_delivers_session_and_mapped_media_events() {
        use tower::ServiceExt;
        let h = harness(vec![media_core(10)]);
        let st = &h.state;
        let r = router(st.clone(), Access::open())
            .oneshot(
                axum::http::Request::get("/v1/events")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = r.into_body();

        let (code, conf) = json(st, Method::POST, "/v1/conferences", Some(r#"{"id":"ev"}"#)).await;
        assert_eq!(code, StatusCode::CREATED);
        let ev = next_event(&mut body, "conference_created").await;
        assert_eq!(ev["conference"], "ev");
        assert_eq!(ev["participant"], serde_json::Value::Null);
        let ts = ev["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");

        let add = r#"{"remote":"198.18.0.2:4000","codec":"PCMA"}"#;
        let (_, p) = json(
            st,
            Method::POST,
            "/v1/conferences/ev/participants",
            Some(add),
        )
        .await;
        let ev = next_event(&mut body, "participant_created").await;
        assert_eq!(
            (&ev["conference"], &ev["participant"]),
            (&conf["id"], &p["id"])
        );

        let (core, conf_key, part_key) = match h.media.ops().last() {
            Some((core, MediaOp::AddParticipant(spec))) => (*core, spec.conf, spec.key),
            other => panic!("{other:?}"),
        };
        let at = Instant::from_nanos(1);
        // Stale keys and the wrong core are ignored; the digit gets through mapped.
        for (core, part) in [(core, PartKey(part_key.0 + 100)), (core + 1, part_key)] {
            let kind = MediaEventKind::TalkStart;
            st.media_event(
                core,
                MediaEvent {
                    conf: conf_key,
                    part: Some(part),
                    at,
                    kind,
                },
            );
        }
        let kind = MediaEventKind::Digit {
            digit: Digit::D5,
            source: DigitSource::Rfc4733,
        };
        st.media_event(
            core,
            MediaEvent {
                conf: conf_key,
                part: Some(part_key),
                at,
                kind,
            },
        );
        let ev = next_event(&mut body, "digit").await;
        assert_eq!(ev["type"], "digit");
        assert_eq!(ev["conference"], "ev");
        assert_eq!(ev["participant"], p["id"]);
        assert_eq!(
            (ev["digit"].as_str(), ev["source"].as_str()),
            (Some("5"), Some("rfc4733"))
        );

        let prompt = h.media.prompts.id("goodbye").unwrap();
        let kind = MediaEventKind::PromptDone {
            prompt,
            completed: false,
        };
        st.media_event(
            core,
            MediaEvent {
                conf: conf_key,
                part: None,
                at,
                kind,
            },
        );
        let ev = next_event(&mut body, "prompt_done").await;
        assert_eq!(
            (ev["prompt"].as_str(), ev["completed"].as_bool()),
            (Some("goodbye"), Some(false))
        );
        assert_eq!(ev["participant"], serde_json::Value::Null);

        let (code, _) = send(st, Method::DELETE, "/v1/conferences/ev", None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let ev = next_event(&mut body, "participant_deleted").await;
        assert_eq!(ev["participant"], p["id"]);
        let ev = next_event(&mut body, "conference_deleted").await;
        assert_eq!(ev["conference"], "ev");
    }

    #[test]
    fn every_event_kind_and_field_is_in_the_event_schema() {
        use crate::events::{Detail, Event};
        use openapi::check::mismatch;
        use std::time::SystemTime;
        let doc = openapi::document("test");
        let schema = serde_json::json!({ "$ref": "#/components/schemas/Event" });
        let documented: BTreeSet<&str> = doc["components"]["schemas"]["Event"]["properties"]
            ["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let kinds: BTreeSet<&str> = tutti_control_core::events::KINDS.into_iter().collect();
        assert_eq!(documented, kinds);
        let every_field = Detail {
            digit: Some('5'),
            source: Some("inband"),
            prompt: Some("stay".into()),
            completed: Some(true),
            sid_before: Some(false),
            reason: Some("bye"),
            code: Some(486),
            by: Some("voice"),
            missing: Some(false),
            call_manager: Some("cm1".into()),
            previous_owner: Some("cm0".into()),
            error: Some("mixer gone".into()),
            from: Some("c0".into()),
            mixer: Some("http://127.0.0.1:9".into()),
        };
        for kind in tutti_control_core::events::KINDS {
            let mut ev = Event::session(kind, "c1", Some("p1"), SystemTime::UNIX_EPOCH);
            let v = serde_json::to_value(&ev).unwrap();
            assert_eq!(mismatch(&doc, &schema, &v, "event"), None, "{v}");
            *ev.detail = every_field.clone();
            let v = serde_json::to_value(&ev).unwrap();
            assert_eq!(mismatch(&doc, &schema, &v, "event"), None, "{v}");
            let v = serde_json::to_value(Event::lease(kind, "cm1", SystemTime::UNIX_EPOCH));
            assert_eq!(mismatch(&doc, &schema, &v.unwrap(), "event"), None);
        }
        let v = lagged(3, SystemTime::UNIX_EPOCH);
        assert_eq!(mismatch(&doc, &schema, &v, "event"), None, "{v}");
        // What the schema does not say is caught: a kind, a field, a type.
        let ev = Event::session("made_up", "c1", None, SystemTime::UNIX_EPOCH);
        let v = serde_json::to_value(&ev).unwrap();
        assert!(mismatch(&doc, &schema, &v, "event")
            .unwrap()
            .contains("made_up"));
        let mut v = lagged(3, SystemTime::UNIX_EPOCH);
        v["extra"] = 1.into();
        assert!(mismatch(&doc, &schema, &v, "event")
            .unwrap()
            .contains("extra"));
        v = lagged(3, SystemTime::UNIX_EPOCH);
        v["missed"] = "3".into();
        assert!(mismatch(&doc, &schema, &v, "event").is_some());
        v["missed"] = serde_json::Value::Null;
        assert!(mismatch(&doc, &schema, &v, "event")
            .unwrap()
            .contains("null"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn null_is_taken_only_where_the_schema_says_nullable() {
        let h = harness(vec![media_core(10)]);
        let st = &h.state;
        let doc = openapi::document("test");
        let (code, _) = json(st, Method::POST, "/v1/conferences", Some(r#"{"id":"c"}"#)).await;
        assert_eq!(code, StatusCode::CREATED);
        let add = r#"{"remote":"198.18.0.2:4000","codec":"pcmu"}"#;
        let (_, p) = json(
            st,
            Method::POST,
            "/v1/conferences/c/participants",
            Some(add),
        )
        .await;
        let part = format!(
            "/v1/conferences/c/participants/{}",
            p["id"].as_str().unwrap()
        );
        let input = r#"{"id":"t","timing":"input"}"#;
        assert_eq!(
            json(st, Method::POST, "/v1/conferences", Some(input))
                .await
                .0,
            StatusCode::CREATED
        );
        let beat = r#"{"interval_ms":1000}"#;
        let hb = "/v1/call-managers/cm/heartbeat";
        assert_eq!(
            json(st, Method::POST, hb, Some(beat)).await.0,
            StatusCode::CREATED
        );
        let cases = [
            (
                Method::POST,
                "/v1/conferences".to_string(),
                "ConferenceCreate",
                "{}",
            ),
            (
                Method::POST,
                "/v1/conferences/c/participants".into(),
                "ParticipantCreate",
                add,
            ),
            (Method::PATCH, part.clone(), "ParticipantPatch", "{}"),
            (
                Method::POST,
                "/v1/conferences/c/prompts".into(),
                "PromptRequest",
                r#"{"prompt":"stay"}"#,
            ),
            (Method::POST, hb.into(), "Heartbeat", beat),
            (
                Method::POST,
                "/v1/conferences/c/adopt".into(),
                "Adopt",
                r#"{"owner":"cm"}"#,
            ),
        ];
        let mut checked = 0;
        for (method, uri, name, base) in cases {
            // The properties of the schema, or of each of its oneOf forms.
            let schema = &doc["components"]["schemas"][name];
            let forms = schema["oneOf"]
                .as_array()
                .cloned()
                .unwrap_or(vec![schema.clone()]);
            let props: std::collections::BTreeMap<String, serde_json::Value> = forms
                .iter()
                .flat_map(|f| f["properties"].as_object().unwrap().clone())
                .collect();
            for (field, schema) in &props {
                let mut body: serde_json::Value = serde_json::from_str(base).unwrap();
                body[field] = serde_json::Value::Null;
                let text = body.to_string();
                let (code, v) = json(st, method.clone(), &uri, Some(&text)).await;
                if schema["nullable"] == true {
                    assert!(code.is_success(), "{name}.{field}: {code} {v}");
                } else {
                    assert_eq!(code, StatusCode::BAD_REQUEST, "{name}.{field}: {v}");
                    let msg = v["error"].as_str().unwrap();
                    assert!(
                        msg.contains(field.as_str()) && msg.contains("null"),
                        "{msg}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked}");
        // A nullable field's null means what the schema says: no telephone-events.
        let (code, p) = json(
            st,
            Method::POST,
            "/v1/conferences/c/participants",
            Some(r#"{"remote":"198.18.0.3:4000","codec":"pcmu","telephone_event_pt":null}"#),
        )
        .await;
        assert_eq!(
            (code, &p["telephone_event_pt"]),
            (StatusCode::CREATED, &serde_json::Value::Null)
        );
        // A body must be an object (serde would take a struct from an array).
        let (code, v) = json(st, Method::POST, "/v1/conferences", Some("[]")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_ends_open_event_streams() {
        let h = harness(vec![media_core(10)]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            None,
            router(h.state.clone(), Access::open()),
            h.state.events.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert!(head[..n].starts_with(b"HTTP/1.1 200"));
        stop.send(()).unwrap();
        let done = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    }
}
