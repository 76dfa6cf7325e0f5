//! Who reads: what most read handlers take first.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tessera_http::auth::Principal;
use tessera_http::error::ApiError;
use tessera_http::extract::CurrentUser;

use crate::ReadState;

/// The read side and the authenticated user (or 401) in one extractor:
/// `Reader(rs, user): Reader, ApiPath(id): ApiPath<String>`.
pub struct Reader(pub ReadState, pub Principal);

impl FromRequestParts<ReadState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, rs: &ReadState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, rs).await?;
        Ok(Self(rs.clone(), user))
    }
}
