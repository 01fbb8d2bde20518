//! The gateway's client of its mixers' REST APIs (the same API this crate serves).

use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tutti_control_core::peer::PeerError;

/// An HTTP client for mixers, with a bounded time per call.
#[derive(Clone, Debug)]
pub struct MixerClient {
    http: reqwest::Client,
}

impl MixerClient {
    /// A client whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<MixerClient, String> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map(|http| MixerClient { http })
            .map_err(|e| e.to_string())
    }

    /// `method base+path` with an optional JSON body; the JSON answer (`null` for an
    /// empty one such as 204).
    pub async fn call(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PeerError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| PeerError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| PeerError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            return Err(PeerError::Refused {
                url,
                status: status.as_u16(),
                message,
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| PeerError::BadAnswer {
            url,
            reason: e.to_string(),
        })
    }

    /// The mixer's free participant slots, from its `/v1/status`.
    pub async fn free_capacity(&self, base: &str) -> Result<u64, PeerError> {
        let v = self.call(Method::GET, base, "/v1/status", None).await?;
        v.pointer("/capacity/free")
            .and_then(Value::as_u64)
            .ok_or_else(|| PeerError::BadAnswer {
                url: format!("{base}/v1/status"),
                reason: "no capacity.free".into(),
            })
    }
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
