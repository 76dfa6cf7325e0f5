//! The one error shape of every Tessera API:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.

use std::borrow::Cow;
use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable `snake_case` code (`invalid_input`, `not_found`, `already_member`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Specifics, such as the offending `field`.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error answer of any Tessera API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Value,
    /// Seconds for the `Retry-After` header (503 and 429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            details: Value::Object(serde_json::Map::new()),
            retry_after: None,
        }
    }

    /// Asks the client to come back after `seconds` (`Retry-After`).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        if !details.is_null() {
            self.details = details;
        }
        self
    }

    /// 400 `invalid_input` naming the offending field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("{field}: {reason}"),
        )
        .with_details(serde_json::json!({ "field": field, "reason": reason }))
    }

    /// 400 for a value that is none of `known`, which `details.known` lists.
    pub fn not_one_of<'a>(
        field: &str,
        reason: impl Into<String>,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let reason = reason.into();
        Self::invalid(field, reason.clone()).with_details(serde_json::json!({
            "field": field,
            "reason": reason,
            "known": known.into_iter().collect::<Vec<_>>(),
        }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
        .with_details(serde_json::json!({ "limit_bytes": limit }))
    }

    /// 500 without details for the client; the cause goes to the log.
    pub fn internal(cause: impl Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; it has been logged",
        )
    }

    /// 503 for a dependency that is down or does not answer in time, with
    /// `Retry-After`; the cause goes to the log.
    pub fn unavailable(cause: impl Display) -> Self {
        tracing::error!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency is unavailable; try again shortly",
        )
        .retry_after(1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}
