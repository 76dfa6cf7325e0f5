//! Cursors: opaque to clients and authenticated by the server.
//!
//! A cursor is the position a list stopped at, signed (HMAC-SHA-256) for
//! the route and the caller it was handed to: a forged, altered or
//! borrowed cursor (another list's, another user's) is a 400, never a page.
//! The key is derived from the API secret, so every read API instance
//! accepts the cursors of the others.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_http::auth::Principal;
use tessera_http::error::ApiError;
use tessera_http::extract::ApiQuery;

use crate::query::{PageParams, DEFAULT_LIMIT, MAX_LIMIT};
use crate::ReadState;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the signature a cursor carries (128 bits).
const TAG: usize = 16;

/// The key cursors are signed with.
#[derive(Clone)]
pub struct CursorKey(Arc<[u8; 32]>);

impl CursorKey {
    /// Derives the cursor key from the API secret (never the secret itself).
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"tessera cursors v1");
        Self(Arc::new(mac.finalize().into_bytes().into()))
    }

    fn mac(&self, scope: &str, position: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&*self.0).expect("HMAC takes any key length");
        mac.update(scope.as_bytes());
        mac.update(b"\0");
        mac.update(position.as_bytes());
        mac
    }

    /// A cursor for `position`, valid for `scope` only.
    pub fn seal(&self, scope: &str, position: &str) -> String {
        let tag = self.mac(scope, position).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(position),
            URL_SAFE_NO_PAD.encode(&tag[..TAG])
        )
    }

    /// The position a cursor handed out for `scope` holds.
    pub fn open(&self, scope: &str, cursor: &str) -> Result<String, ApiError> {
        let refused = || ApiError::invalid("cursor", "not a cursor this list handed out to you");
        let (position, tag) = cursor.split_once('.').ok_or_else(refused)?;
        let position = URL_SAFE_NO_PAD
            .decode(position)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(refused)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| refused())?;
        self.mac(scope, &position)
            .verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == TAG)
            .ok_or_else(refused)?;
        Ok(position)
    }
}

/// `?limit=&cursor=` of a list, bound to the route (its path, ids
/// included) and the caller.
pub struct Paging {
    pub limit: usize,
    pub after: Option<String>,
    key: CursorKey,
    scope: String,
}

impl Paging {
    /// Paging for `scope` from a raw limit and cursor.
    pub fn new(
        key: &CursorKey,
        scope: String,
        limit: Option<usize>,
        max: usize,
        default: usize,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        let limit = match limit {
            None => default,
            Some(n) if (1..=max).contains(&n) => n,
            Some(_) => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("must be between 1 and {max}"),
                ))
            }
        };
        let after = match cursor {
            None => None,
            Some("") => return Err(ApiError::invalid("cursor", "must not be empty")),
            Some(c) => Some(key.open(&scope, c)?),
        };
        Ok(Self {
            limit,
            after,
            key: key.clone(),
            scope,
        })
    }

    /// Paging of the list at `path` for `caller` with the default and
    /// greatest limits, for a list whose query has more than `limit` and
    /// `cursor`.
    pub fn for_list(
        key: &CursorKey,
        path: &str,
        caller: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        Self::new(
            key,
            Self::scope(path, caller),
            limit,
            MAX_LIMIT,
            DEFAULT_LIMIT,
            cursor,
        )
    }

    /// The scope of a list: its path and its caller.
    pub fn scope(path: &str, caller: &str) -> String {
        format!("{path}\n{caller}")
    }

    fn scope_of(parts: &Parts) -> String {
        let caller = parts
            .extensions
            .get::<Principal>()
            .map_or("", |p| p.user_id.as_str());
        Self::scope(parts.uri.path(), caller)
    }

    /// The cursor of the next page, which starts after `position`.
    pub fn next(&self, position: &str) -> String {
        self.key.seal(&self.scope, position)
    }
}

impl FromRequestParts<ReadState> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ReadState) -> Result<Self, ApiError> {
        let ApiQuery(q) = ApiQuery::<PageParams>::from_request_parts(parts, state).await?;
        Self::new(
            &state.cursors,
            Self::scope_of(parts),
            q.limit,
            MAX_LIMIT,
            DEFAULT_LIMIT,
            q.cursor.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_scope_and_only_unaltered() {
        let key = CursorKey::derive(b"a secret");
        let cursor = key.seal("/v1/me/guilds\nann", "g-42");
        assert_eq!(key.open("/v1/me/guilds\nann", &cursor).unwrap(), "g-42");
        assert!(
            key.open("/v1/me/guilds\nbob", &cursor).is_err(),
            "another caller"
        );
        assert!(
            key.open("/v1/concerts\nann", &cursor).is_err(),
            "another list"
        );
        let other = CursorKey::derive(b"another secret");
        assert!(
            other.open("/v1/me/guilds\nann", &cursor).is_err(),
            "another key"
        );
        let (_, tag) = cursor.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("g-43"));
        assert!(key.open("/v1/me/guilds\nann", &forged).is_err(), "altered");
        for junk in ["", ".", "abc", "YWJj", "YWJj.", "YWJj.AAAA"] {
            assert!(key.open("/v1/me/guilds\nann", junk).is_err(), "{junk:?}");
        }
    }
}
