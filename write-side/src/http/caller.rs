//! Who sends a command: what every command handler takes first.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tessera_http::auth::Principal;
use tessera_http::error::ApiError;
use tessera_http::extract::{CurrentUser, RequestId};

use crate::app::WriteState;

/// The write side, the authenticated user (or 401) and the request's id,
/// in one extractor, so a handler's list of arguments starts with who
/// sends the command and goes on with what it is about:
/// `Caller(ws, user, request_id): Caller, ApiPath(id): ApiPath<String>`.
pub struct Caller(pub WriteState, pub Principal, pub Option<String>);

impl FromRequestParts<WriteState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ws: &WriteState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, ws).await?;
        let Ok(RequestId(request_id)) = RequestId::from_request_parts(parts, ws).await;
        Ok(Self(ws.clone(), user, request_id))
    }
}
