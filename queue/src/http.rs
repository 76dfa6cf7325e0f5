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
            QueueDenied::Store(cause) => Self::internal(cause),
        }
    }
}
