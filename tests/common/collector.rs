//! An OpenTelemetry collector stand-in on loopback: it takes OTLP/HTTP JSON
//! exports at `/v1/traces` as a collector does and records every span with
//! the `service.name` of the process that sent it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One exported span.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub span: Value,
}

impl Span {
    pub fn str(&self, field: &str) -> &str {
        self.span[field].as_str().unwrap_or_default()
    }

    /// An attribute's value, whatever its OTLP type.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.span["attributes"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)
            .and_then(|a| a["value"].as_object()?.values().next())
    }
}

#[derive(Clone, Default)]
struct Shared {
    spans: Arc<Mutex<Vec<Span>>>,
    /// The `content-type` of every export.
    content_types: Arc<Mutex<Vec<String>>>,
}

pub struct Collector {
    pub addr: SocketAddr,
    shared: Shared,
    stop: CancellationToken,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared::default();
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(shared.clone());
        let serving =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move {
            let _ = serving.await;
        });
        Self { addr, shared, stop }
    }

    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` names.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of one trace received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        let spans = self.shared.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.span["traceId"] == trace_id)
            .cloned()
            .collect()
    }

    pub fn content_types(&self) -> Vec<String> {
        self.shared.content_types.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An `ExportTraceServiceRequest`: resource spans, each with its resource's
/// attributes and scope spans.
async fn export(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    shared
        .content_types
        .lock()
        .unwrap()
        .push(content_type.to_owned());
    let Some(resources) = request["resourceSpans"].as_array() else {
        return StatusCode::BAD_REQUEST;
    };
    let mut got = Vec::new();
    for resource in resources {
        let service = resource["resource"]["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                got.push(Span {
                    service: service.clone(),
                    span: span.clone(),
                });
            }
        }
    }
    shared.spans.lock().unwrap().extend(got);
    StatusCode::OK
}
