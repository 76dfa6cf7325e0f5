//! What every Tessera HTTP app wraps its routes in: request ids, a request
//! span for the logs, the body limit, panics as 500s, 404/405 in the error
//! shape.

use std::any::Any;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tessera_runtime::trace;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::error::ApiError;

/// Largest accepted request body (API.md: 64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Wraps a complete app (apply once, after merging routers).
pub fn with_common_layers(router: Router) -> Router {
    router
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(middleware::from_fn(record_request))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(reject_declared_oversize))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(trace_request))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The request span: ECS field names, so the logs of everything the request
/// does carry them, and the W3C `traceparent` header as its remote parent
/// (an absent or malformed header starts a new trace, as the specification
/// asks). The answer names the request's own span in `traceresponse`, so a
/// caller that sent no header can still find its trace.
async fn trace_request(req: Request, next: Next) -> Response {
    let span = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        tracing::info_span!(
            "request",
            "otel.kind" = "server",
            traceparent = header(trace::REMOTE_PARENT),
            "http.request.method" = %req.method(),
            "url.path" = %req.uri().path(),
            "http.request.id" = header("x-request-id"),
            "user.id" = tracing::field::Empty,
            "http.response.status_code" = tracing::field::Empty,
        )
    };
    let started = std::time::Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let duration = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    span.record("http.response.status_code", status);
    span.in_scope(|| {
        if let Some(context) = trace::current() {
            if let Ok(value) = HeaderValue::from_str(&context.to_string()) {
                res.headers_mut().insert("traceresponse", value);
            }
        }
        if status >= 500 {
            tracing::error!("event.duration" = duration, "request finished");
        } else {
            tracing::info!("event.duration" = duration, "request finished");
        }
    });
    res
}

/// `tessera_http_requests_total` and `tessera_http_request_duration_seconds`
/// by method, route template (not the raw path: ids would explode the
/// series) and status.
async fn record_request(req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!("tessera_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("tessera_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    res
}

/// Refuses a body whose declared length is over the limit before reading
/// it, on every route (also those that take no body).
async fn reject_declared_oversize(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > BODY_LIMIT as u64 => ApiError::payload_too_large(BODY_LIMIT).into_response(),
        _ => next.run(req).await,
    }
}

#[allow(clippy::needless_pass_by_value)] // the signature CatchPanicLayer wants
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}
