//! How the write side's errors answer in the one error shape
//! (`tessera_http::error::ApiError`): domain rejections by their kind, the
//! bus's conflicts and failures, the queue gate and credentials.

use axum::http::StatusCode;
use tessera_http::error::ApiError;

use crate::bus::{AppError, CommandError, Rejection};
use crate::domain::{DomainError, ErrorKind};
use crate::store::credentials::CredentialError;

/// A domain rejection, with its code, message and details.
pub fn rejection(r: Rejection) -> ApiError {
    let status = match r.kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => return ApiError::internal(r.message),
    };
    ApiError::new(status, r.code, r.message).with_details(r.details)
}

fn conflict(attempts: u32) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the resource kept changing under this request; retry it",
    )
    .with_details(serde_json::json!({ "attempts": attempts }))
}

/// A command's error answers as the application error it becomes.
impl<E: DomainError> From<CommandError<E>> for ApiError {
    fn from(e: CommandError<E>) -> Self {
        AppError::from(e).into()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Rejected(r) => rejection(r),
            AppError::Conflict { attempts } => conflict(attempts),
            AppError::Failed(cause) => Self::internal(cause),
            AppError::Unavailable(cause) => Self::unavailable(cause),
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::EmailTaken => Self::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email already exists",
            )
            .with_details(serde_json::json!({ "field": "email" })),
            CredentialError::Failed(cause) => Self::internal(cause),
        }
    }
}
