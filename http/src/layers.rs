//! What every Tessera HTTP app wraps its routes in: request ids, a request
//! span for the logs (ECS field names; the W3C `traceparent` header as its
//! remote parent, an absent or malformed one starting a new trace), the
//! body limit, metrics, panics as 500s, 404/405 in the error shape.

use std::any::Any;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::{HeaderName, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tessera_runtime::trace;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::error::ApiError;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(every_request))
}

/// What every request gets, in one middleware: its id (the caller's
/// `x-request-id`, else a new UUID, echoed on the answer), its span, a
/// declared body over the limit refused before it is read, the metrics and
/// the closing log line. It sits outside the panic guard, so a handler's
/// panic is answered, logged and counted like any 500.
///
/// One middleware, not five: each `from_fn` or tower layer costs every
/// request a boxed future and a clone of the service inside it, and the
/// five layers were about a fifth of `serve`'s CPU in the seats race
/// (perf, BENCHMARKS.md).
async fn every_request(mut req: Request, next: Next) -> Response {
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    let span = tracing::info_span!(
        "request",
        "otel.kind" = "server",
        traceparent = req
            .headers()
            .get(trace::REMOTE_PARENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        "http.request.method" = %req.method(),
        "url.path" = %req.uri().path(),
        "http.request.id" = request_id.to_str().unwrap_or_default(),
        "user.id" = tracing::field::Empty,
        "http.response.status_code" = tracing::field::Empty,
    );
    let method = req.method().as_str().to_owned();
    // the route template, not the raw path: ids would explode the series
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = std::time::Instant::now();
    let mut res = if declared_oversize(&req) {
        ApiError::payload_too_large(BODY_LIMIT).into_response()
    } else {
        next.run(req).instrument(span.clone()).await
    };
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    metrics::histogram!("tessera_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!("tessera_http_requests_total", "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
    let duration = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    span.record("http.response.status_code", status);
    span.in_scope(|| {
        // the answer names the request's own span, so a caller that sent
        // no `traceparent` can still find its trace
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
    res.headers_mut().insert(X_REQUEST_ID, request_id);
    res
}

/// Whether the body's declared length is over the limit (refused before it
/// is read, on every route, also those that take no body).
fn declared_oversize(req: &Request) -> bool {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64)
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::{get, post};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> Router {
        with_common_layers(
            Router::new()
                .route("/ok", get(|| async { "ok" }))
                .route("/echo", post(|body: String| async move { body }))
                .route(
                    "/boom",
                    get(|| async {
                        panic!("kaboom");
                        #[allow(unreachable_code)]
                        ""
                    }),
                ),
        )
    }

    async fn send(req: axum::http::Request<Body>) -> (Response, serde_json::Value) {
        let res = app().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, Body::empty()), json)
    }

    fn request_id(res: &Response) -> &str {
        res.headers()[X_REQUEST_ID].to_str().unwrap()
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_new_one_and_a_given_one_is_echoed() {
        let (first, _) = send(Request::get("/ok").body(Body::empty()).unwrap()).await;
        let (second, _) = send(Request::get("/ok").body(Body::empty()).unwrap()).await;
        assert_eq!(first.status(), StatusCode::OK);
        assert!(uuid::Uuid::parse_str(request_id(&first)).is_ok());
        assert_ne!(request_id(&first), request_id(&second));

        let (given, _) = send(
            Request::get("/ok")
                .header("x-request-id", "caller-chosen-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(request_id(&given), "caller-chosen-1");
    }

    #[tokio::test]
    async fn a_panic_is_a_500_in_the_error_shape_with_its_request_id() {
        let (res, body) = send(Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error", "{body}");
        assert!(!request_id(&res).is_empty());
    }

    #[tokio::test]
    async fn a_declared_oversize_body_is_refused_before_it_is_read_on_any_route() {
        for path in ["/echo", "/ok"] {
            let (res, body) = send(
                Request::post(path)
                    .header(CONTENT_LENGTH, BODY_LIMIT + 1)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
            assert!(!request_id(&res).is_empty());
        }
        let (res, body) = send(
            Request::post("/echo")
                .body(Body::from("a small body"))
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_in_the_error_shape() {
        let (res, body) = send(Request::get("/nowhere").body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        let (res, body) = send(Request::delete("/ok").body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
}
