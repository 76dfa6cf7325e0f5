//! Presence (API.md "Chat"): a user is online while one of their live
//! streams is open, and until the grace period after the last one closed.
//! It is not an event: each open stream holds a lease in a store every read
//! API shares (Redis in production, memory in `serve`), renewed while it is
//! open and shortened to the grace period when it closes; a read API that
//! dies leaves leases that simply run out.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::documents::{collections, GuildMemberDoc};
use tessera_documents::store::{ListQuery, Order};
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::ApiPath;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Access;
use crate::query::{store_failed, typed};
use crate::reader::Reader;
use crate::ReadState;

tessera_events::port_error!(
    /// The presence store failed; its error is the source.
    PresenceError,
    "presence failed"
);

/// Where the streams' leases live.
#[async_trait]
pub trait Presence: Send + Sync {
    /// `user_id` is online through stream `stream_id` until `until` (unless
    /// the lease is given again).
    async fn hold(
        &self,
        user_id: &str,
        stream_id: &str,
        until: DateTime<Utc>,
    ) -> Result<(), PresenceError>;

    /// Which of `user_ids` are online at `now`.
    async fn online(
        &self,
        user_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>, PresenceError>;
}

/// How long the leases of open streams last, and how often they are
/// renewed: the grace period, at least 3 s, renewed three times in it.
pub fn lease(grace: Duration) -> (Duration, Duration) {
    let ttl = grace.max(Duration::from_secs(3));
    (ttl, ttl / 3)
}

/// Presence of one process (`serve`).
#[derive(Default)]
pub struct InMemoryPresence {
    /// user → stream → until
    leases: Mutex<HashMap<String, HashMap<String, DateTime<Utc>>>>,
}

#[async_trait]
impl Presence for InMemoryPresence {
    async fn hold(
        &self,
        user_id: &str,
        stream_id: &str,
        until: DateTime<Utc>,
    ) -> Result<(), PresenceError> {
        let now = Utc::now();
        let mut leases = self
            .leases
            .lock()
            .map_err(|_| PresenceError::new("presence lock poisoned"))?;
        let of_user = leases.entry(user_id.to_owned()).or_default();
        of_user.retain(|_, t| *t > now);
        of_user.insert(stream_id.to_owned(), until);
        Ok(())
    }

    async fn online(
        &self,
        user_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>, PresenceError> {
        let leases = self
            .leases
            .lock()
            .map_err(|_| PresenceError::new("presence lock poisoned"))?;
        Ok(user_ids
            .iter()
            .filter(|u| {
                leases
                    .get(u.as_str())
                    .is_some_and(|streams| streams.values().any(|t| *t > now))
            })
            .cloned()
            .collect())
    }
}

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new().routes(routes!(guild_presence))
}

/// Members a guild's presence looks at, at most.
const MAX_MEMBERS: usize = 10_000;

/// Members read from the store at a time.
const MEMBER_BATCH: usize = 1_000;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OnlineMember {
    pub user_id: String,
    /// Their nickname in the guild.
    pub nickname: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GuildPresence {
    pub online_count: u64,
    /// Online members by user id (of the guild's first 10,000 members).
    pub online: Vec<OnlineMember>,
}

/// Who of a guild is online (members and admins).
#[utoipa::path(get, path = "/v1/guilds/{guild_id}/presence", tag = "chat",
    params(("guild_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = GuildPresence), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a member"),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "the presence store does not answer")))]
pub async fn guild_presence(
    Reader(rs, user): Reader,
    ApiPath(guild_id): ApiPath<String>,
) -> Result<Json<GuildPresence>, ApiError> {
    Access::new(&rs, &user, None).guild(&guild_id).await?;
    let collection = rs.live(collections::GUILD_MEMBERS).await?;
    let now = Utc::now();
    let mut online = Vec::new();
    let mut after: Option<String> = None;
    let mut seen = 0;
    while seen < MAX_MEMBERS {
        let found = rs
            .docs
            .list(
                &collection,
                ListQuery {
                    filter: Some(("member_of", &guild_id)),
                    order: Order::Asc,
                    after: after.as_deref(),
                    limit: MEMBER_BATCH,
                },
            )
            .await
            .map_err(|e| store_failed(&e))?;
        let Some(last) = found.last() else { break };
        after = Some(last.id.clone());
        let full = found.len() == MEMBER_BATCH;
        seen += found.len();
        let members: Vec<GuildMemberDoc> =
            found.into_iter().map(typed).collect::<Result<_, _>>()?;
        let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
        let here = rs
            .presence
            .online(&ids, now)
            .await
            .map_err(ApiError::unavailable)?;
        online.extend(
            members
                .into_iter()
                .filter(|m| here.contains(&m.user_id))
                .map(|m| OnlineMember {
                    user_id: m.user_id,
                    nickname: m.nickname,
                }),
        );
        if !full {
            break;
        }
    }
    Ok(Json(GuildPresence {
        online_count: online.len() as u64,
        online,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_is_online_while_a_lease_of_theirs_runs() {
        let p = InMemoryPresence::default();
        let now = Utc::now();
        let later = |s: i64| now + chrono::TimeDelta::seconds(s);
        let users = vec!["ann".to_owned(), "bob".to_owned()];
        p.hold("ann", "s1", later(30)).await.unwrap();
        p.hold("ann", "s2", later(5)).await.unwrap();
        assert_eq!(
            p.online(&users, now).await.unwrap(),
            HashSet::from(["ann".to_owned()])
        );
        // s1 closed: its lease is cut to the grace period; s2 still runs
        p.hold("ann", "s1", later(2)).await.unwrap();
        assert!(p.online(&users, later(4)).await.unwrap().contains("ann"));
        assert!(p.online(&users, later(6)).await.unwrap().is_empty());
        assert_eq!(
            lease(Duration::from_secs(30)),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        assert_eq!(lease(Duration::from_secs(1)).0, Duration::from_secs(3));
    }
}
