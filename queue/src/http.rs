//! A queue refusal in the one error shape.

use axum::http::StatusCode;
use tessera_http::error::ApiError;

use crate::gate::QueueDenied;

impl From<QueueDenied> for ApiError {
    fn from(e: QueueDenied) -> Self {
        let message = e.to_string();
        match e {
            QueueDenied::Missing => {
                Self::new(StatusCode::UNAUTHORIZED, "queue_token_required", message)
            }
            QueueDenied::Invalid => {
                Self::new(StatusCode::UNAUTHORIZED, "queue_token_invalid", message)
            }
            QueueDenied::Expired => {
                Self::new(StatusCode::UNAUTHORIZED, "queue_token_expired", message)
            }
            QueueDenied::OtherUser | QueueDenied::OtherConcert => Self::forbidden(message),
            QueueDenied::ExtensionLimit(max) => {
                Self::new(StatusCode::CONFLICT, "extension_limit", message)
                    .with_details(serde_json::json!({ "max_extensions": max }))
            }
            QueueDenied::NotActive {
                position,
                ahead,
                estimated_wait_seconds,
            } => Self::new(StatusCode::LOCKED, "queue_not_active", message).with_details(
                serde_json::json!({
                    "position": position,
                    "ahead": ahead,
                    "estimated_wait_seconds": estimated_wait_seconds,
                }),
            ),
            // the state store (Redis, PostgreSQL, SQLite) did not answer in
            // time: the client may try again, as with the event store
            QueueDenied::Store(cause) => Self::unavailable(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;
    use crate::store::StateError;

    #[test]
    fn a_state_store_that_does_not_answer_is_a_503_to_retry_not_a_500() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "pool timed out");
        let answer = ApiError::from(QueueDenied::Store(StateError::new(timeout))).into_response();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key("retry-after"));
    }
}
