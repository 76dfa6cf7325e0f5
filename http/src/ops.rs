//! Operational routes every process serves: `/healthz`, `/readyz`,
//! `/metrics`, its documents (`/openapi.json`, `/asyncapi.json`), the
//! Swagger UI over its OpenAPI document (`/docs`) and a landing page (`/`)
//! that links them, so that a person who opens the address in a browser
//! finds their way instead of a 404.

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

/// What a process documents about itself.
#[derive(Debug, Clone, Default)]
pub struct ApiDocs {
    /// The OpenAPI document of its HTTP API (none: it serves no API).
    pub openapi: Option<Value>,
    /// The AsyncAPI document of the events on the broker.
    pub asyncapi: Option<Value>,
    /// It serves the web console at [`CONSOLE_PATH`] (linked from `/`).
    pub console: bool,
}

impl ApiDocs {
    /// An API's OpenAPI document, and the event contract.
    pub fn new(openapi: Value, asyncapi: Value) -> Self {
        Self {
            openapi: Some(openapi),
            asyncapi: Some(asyncapi),
            console: false,
        }
    }

    /// The process also serves the web console.
    pub fn with_console(self) -> Self {
        Self {
            console: true,
            ..self
        }
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Arc<dyn Readiness>,
    openapi: Arc<Value>,
    asyncapi: Arc<Value>,
    metrics: Option<MetricsRender>,
}

/// Where the Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";

/// Where the web console is served (by the processes that have it).
pub const CONSOLE_PATH: &str = "/console";

/// `/`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`,
/// `/asyncapi.json`, and `/docs` where the process serves an API.
pub fn router(
    readiness: Arc<dyn Readiness>,
    docs: ApiDocs,
    metrics: Option<MetricsRender>,
) -> Router {
    let has_api = docs.openapi.is_some();
    let page = landing_page(has_api, docs.console);
    let router = Router::new()
        .route(
            "/",
            get(move || std::future::ready(axum::response::Html(page.clone()))),
        )
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/asyncapi.json", get(asyncapi_json))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState {
            readiness,
            // a process without an API answers an empty document, as before
            openapi: Arc::new(docs.openapi.unwrap_or_else(|| json!({}))),
            asyncapi: Arc::new(docs.asyncapi.unwrap_or_else(|| json!({}))),
            metrics,
        });
    if !has_api {
        return router;
    }
    // the UI fetches the document the process already serves; its assets
    // are compiled in, so it works without a network
    let ui = utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .config(utoipa_swagger_ui::Config::new(["/openapi.json"]).try_it_out_enabled(true));
    router.merge(Router::from(ui))
}

/// The page `/` answers: links to what the process serves.
fn landing_page(has_api: bool, console: bool) -> String {
    let mut links = Vec::new();
    if console {
        links.push((
            CONSOLE_PATH,
            "web console: event log, aggregate history, projections, dead letters, webhooks, live tail (admin sign-in)",
        ));
    }
    if has_api {
        links.push((DOCS_PATH, "API documentation (Swagger UI)"));
    }
    links.extend([
        ("/openapi.json", "OpenAPI document of this API"),
        (
            "/asyncapi.json",
            "AsyncAPI document of the events on the broker",
        ),
        ("/metrics", "Prometheus metrics"),
        ("/healthz", "liveness"),
        ("/readyz", "readiness of the stores and broker"),
    ]);
    let items: String = links
        .iter()
        .map(|(href, text)| format!("<li><a href=\"{href}\">{href}</a> — {text}</li>\n"))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera</title></head>\n<body><h1>Tessera</h1>\n<p>A strict CQRS / event-sourced backend. This process serves:</p>\n<ul>\n{items}</ul>\n</body></html>\n"
    )
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

async fn asyncapi_json(State(state): State<OpsState>) -> Json<Value> {
    Json((*state.asyncapi).clone())
}
