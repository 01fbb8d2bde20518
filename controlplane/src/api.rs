//! The HTTP API: `/healthz`, `/v1/status`, `/metrics`. Unknown routes and bad methods
//! answer with a JSON `{"error": ...}` body.

use crate::{metrics, ControlState};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::future::Future;

/// A JSON error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The router with every endpoint.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
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
    Json(Status {
        version: s.version,
        ports: s.ports.ports(),
        cores,
    })
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

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ControlState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CoreHandle, PortSource, PortStatus};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use tower::ServiceExt;
    use tutti_dataplane::stats::{CoreCounters, DropReason};

    struct Fixed;
    impl PortSource for Fixed {
        fn ports(&self) -> Vec<PortStatus> {
            vec![PortStatus {
                device: "net_tap0".into(),
                driver: "net_tap".into(),
                port_id: 0,
                mac: "02:00:00:00:00:01".into(),
                ipv4: "198.18.0.1/24".into(),
                gateway: None,
                link_up: true,
                speed_mbps: 10000,
                queues: 1,
                rss: false,
                mbufs_in_use: 512,
                xstats: Default::default(),
            }]
        }
    }

    fn state() -> (ControlState, Arc<CoreCounters>) {
        let c = Arc::new(CoreCounters::default());
        c.rx_packets.add(5);
        c.drop_packet(DropReason::NoListener);
        let st = ControlState {
            cores: vec![CoreHandle {
                lcore: 1,
                counters: c.clone(),
            }]
            .into(),
            ports: Arc::new(Fixed),
            version: "test",
        };
        (st, c)
    }

    async fn get(st: ControlState, uri: &str) -> (StatusCode, String) {
        let r = router(st)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn metrics_read_counters_at_scrape_time() {
        let (st, c) = state();
        let (code, text) = get(st.clone(), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains("tutti_rx_packets_total{core=\"1\"} 5"),
            "{text}"
        );
        assert!(text.contains("tutti_dropped_packets_total{core=\"1\",reason=\"no_listener\"} 1"));
        assert!(text.contains("tutti_mbufs_in_use{port=\"net_tap0\"} 512"));
        assert!(text.contains("# TYPE tutti_rx_packets_total counter"));
        assert!(!text.contains("# EOF"));
        c.rx_packets.add(2);
        let (_, text) = get(st, "/metrics").await;
        assert!(text.contains("tutti_rx_packets_total{core=\"1\"} 7"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn status_and_errors_are_json() {
        let (st, _) = state();
        let (code, body) = get(st.clone(), "/v1/status").await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["cores"][0]["rx_packets"], 5);
        assert_eq!(v["cores"][0]["drops"]["no_listener"], 1);
        assert_eq!(v["ports"][0]["link_up"], true);
        let (code, body) = get(st.clone(), "/v1/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(body.contains("\"error\""));
        assert_eq!(get(st, "/healthz").await, (StatusCode::OK, "ok\n".into()));
    }
}
