//! Extractors that answer bad input in the documented error shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::auth::{AuthError, Authenticator, Principal};
use crate::error::ApiError;
use crate::layers::BODY_LIMIT;

/// JSON object body. Malformed JSON, another kind of JSON value than an
/// object, wrong types, unknown or missing fields → 400 `invalid_input`
/// naming the field; no JSON content type → 415; a body over the limit → 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(BODY_LIMIT)
            } else {
                ApiError::invalid("body", rejection.body_text())
            }
        })?;
        // serde reads a struct from a JSON array too (`["x"]` fills the
        // first field): every body of this API is an object, so say so
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::invalid("body", "the body must be a JSON object"));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes JSON, reporting the path of the field that failed.
///
/// A number with a zero fraction (`4.0`) is an integer to JSON Schema, so
/// it is one here too.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let reason = strip_position(&e.to_string());
        if e.is_data() {
            ApiError::invalid("body", reason)
        } else {
            ApiError::invalid("body", format!("malformed JSON: {reason}"))
        }
    })?;
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner();
        let reason = strip_position(&inner.to_string());
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            named_field(&reason).unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        ApiError::invalid(&field, reason)
    })
}

/// Turns every float with a zero fraction that an `i64` holds into an
/// integer, in place.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // 2^63: the first float past i64::MAX
                if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 {
                    #[allow(clippy::cast_possible_truncation)] // whole and in range, checked above
                    let i = f as i64;
                    *value = Value::from(i);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// serde reports unknown and missing fields at the parent's path; the name
/// is in the message (``unknown field `x` ``).
fn named_field(reason: &str) -> Option<String> {
    let start = reason.find('`')? + 1;
    let len = reason[start..].find('`')?;
    (reason.starts_with("unknown field") || reason.starts_with("missing field"))
        .then(|| reason[start..start + len].to_owned())
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query string parameters; a bad one is a 400 `invalid_input`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                let field = named_field(&reason).unwrap_or_else(|| "query".to_owned());
                ApiError::invalid(&field, reason)
            })
    }
}

/// A header's value, when it is text.
fn header<'p>(parts: &'p Parts, name: &str) -> Option<&'p str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The authenticated caller (`Authorization: Bearer <jwt>`), or 401.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Principal);

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        let token = header(parts, AUTHORIZATION.as_str())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(AuthError::Missing);
        let principal = token
            .and_then(|t| auth.verify(t))
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        tracing::Span::current().record("user.id", principal.user_id.as_str());
        // what runs after (the paging of a list) may bind to the caller
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// An authenticated caller with the `admin` role: 401 without a token, 403
/// with a token of another role.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Principal);

impl<S> FromRequestParts<S> for AdminUser
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(principal) = CurrentUser::from_request_parts(parts, state).await?;
        if principal.is_admin() {
            Ok(Self(principal))
        } else {
            Err(ApiError::forbidden("this needs the admin role"))
        }
    }
}

/// The `X-Queue-Token` header, if any (checked by the queue gate).
#[derive(Debug, Clone)]
pub struct QueueToken(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for QueueToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            header(parts, "x-queue-token")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
        ))
    }
}

/// The request id set by the request-id layer (or sent by the client).
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(header(parts, "x-request-id").map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u8,
    }

    fn field_of(json: &str) -> (String, String) {
        let e = parse_json::<Body>(json.as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        (
            e.details["field"].as_str().unwrap().to_owned(),
            e.details["reason"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn bad_json_names_the_field_that_failed() {
        assert_eq!(field_of(r#"{"name": 5, "count": 1}"#).0, "name");
        assert_eq!(field_of(r#"{"name": "a", "count": 300}"#).0, "count");
        assert_eq!(field_of(r#"{"name": "a"}"#).0, "count");
        assert_eq!(
            field_of(r#"{"name": "a", "count": 1, "extra": true}"#).0,
            "extra"
        );
        let (field, reason) = field_of(r#"{"name": "a", "#);
        assert_eq!(field, "body");
        assert!(reason.starts_with("malformed JSON"), "{reason}");
        assert_eq!(field_of(r#"{"name": "a", "count": 1} x"#).0, "body");
    }
}
