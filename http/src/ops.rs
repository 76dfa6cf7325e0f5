//! Operational routes every process serves: `/healthz`, `/readyz`,
//! `/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::health::{Check, Readiness};

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct OpsState {
    readiness: Arc<dyn Readiness>,
    openapi: Arc<Value>,
    metrics: Option<MetricsRender>,
}

/// `/healthz`, `/readyz`, `/openapi.json` and `/metrics`.
pub fn router(
    readiness: Arc<dyn Readiness>,
    openapi: Value,
    metrics: Option<MetricsRender>,
) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState {
            readiness,
            openapi: Arc::new(openapi),
            metrics,
        })
}

async fn metrics_text(State(state): State<OpsState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|render| render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let checks = tokio::time::timeout(crate::health::CHECK_TIMEOUT, state.readiness.check())
        .await
        .unwrap_or_else(|_| {
            vec![Check {
                name: state.readiness.label(),
                result: Err("readiness checks timed out".into()),
            }]
        });
    let mut ready = true;
    let mut report = serde_json::Map::new();
    for c in checks {
        let status = match &c.result {
            Ok(()) => "ok",
            Err(error) => {
                ready = false;
                tracing::warn!(dependency = c.name, %error, "not ready");
                "unreachable"
            }
        };
        report.insert(c.name.to_owned(), json!(status));
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if ready { "ready" } else { "not_ready" };
    (code, Json(json!({ "status": status, "checks": report })))
}

async fn openapi_json(State(state): State<OpsState>) -> Json<Value> {
    Json((*state.openapi).clone())
}
