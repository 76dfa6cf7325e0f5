//! Path parameters that answer in the error shape.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Longest path segment accepted (an id, or a percent-encoded emoji of up to
/// 32 characters); anything longer cannot exist.
const MAX_SEGMENT_LEN: usize = 512;

/// Path parameters; an undecodable or absurdly long id is a 404, like any
/// other id that does not exist.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let too_long = parts
            .uri
            .path()
            .split('/')
            .any(|segment| segment.len() > MAX_SEGMENT_LEN);
        if too_long {
            return Err(ApiError::not_found("resource"));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|_| ApiError::not_found("resource"))
    }
}
