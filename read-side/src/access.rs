//! Read access (API.md "Read access"): guild content is for its members.
//!
//! Every guild-scoped read goes through [`Access`]: the handler names the
//! guild its resource lives in (directly, or through the channel), and
//! `Access` lets the caller through when they are a member of it or an
//! admin. The facts are read models (`guilds`, `guild_members`,
//! `channels`); the write side is never asked.
//!
//! Membership is as fresh as the `guild_members` projection. A read that
//! passes `min_version` waits (bounded, like the document it asks for) for
//! a guild, channel or membership the read models do not know yet, so a
//! user who has just joined and reads with the version the join answered
//! is not refused by a projection that lags. Deletions are final and
//! answered at once.

use std::time::Duration;

use axum::http::StatusCode;
use tessera_documents::documents::{
    collections, member_id, ChannelRefDoc, GuildDoc, GuildMemberDoc,
};
use tessera_http::auth::Principal;
use tessera_http::error::ApiError;

use crate::query::{store_failed, typed};
use crate::ReadSide;

/// How often a waiting read looks again.
const RECHECK: Duration = Duration::from_millis(20);

pub(crate) fn guild_gone() -> ApiError {
    ApiError::new(StatusCode::GONE, "gone", "this guild has been deleted")
}

fn channel_gone() -> ApiError {
    ApiError::new(StatusCode::GONE, "gone", "this channel has been deleted")
}

fn not_member() -> ApiError {
    ApiError::forbidden("only members of the guild can read this")
}

/// Whether an answer may still change as the read models catch up.
enum Verdict<T> {
    Final(Result<T, ApiError>),
    NotYet(ApiError),
}

/// The caller's access to guild-scoped reads.
pub(crate) struct Access<'a> {
    rs: &'a ReadSide,
    user: &'a Principal,
    /// Wait for facts not known yet (the request passed `min_version`).
    wait: bool,
}

impl<'a> Access<'a> {
    pub(crate) fn new(rs: &'a ReadSide, user: &'a Principal, min_version: Option<u64>) -> Self {
        Self {
            rs,
            user,
            wait: min_version.is_some(),
        }
    }

    /// The guild, if the caller may read what lives in it: 404 for an
    /// unknown guild, 410 for a deleted one, 403 for a non-member.
    pub(crate) async fn guild(&self, guild_id: &str) -> Result<GuildDoc, ApiError> {
        self.settle(|| self.check_guild(guild_id)).await
    }

    /// The channel, if the caller may read what lives in it: 404 for an
    /// unknown channel, 410 when it or its guild is deleted, 403 for a
    /// non-member of its guild.
    pub(crate) async fn channel(&self, channel_id: &str) -> Result<ChannelRefDoc, ApiError> {
        self.settle(|| async {
            let Some(channel) = self
                .get::<ChannelRefDoc>(collections::CHANNELS, channel_id)
                .await?
            else {
                return Ok(Verdict::NotYet(ApiError::not_found("channel")));
            };
            if channel.deleted {
                return Ok(Verdict::Final(Err(channel_gone())));
            }
            Ok(match self.check_guild(&channel.guild_id).await? {
                Verdict::Final(r) => Verdict::Final(r.map(|_| channel)),
                Verdict::NotYet(e) => Verdict::NotYet(e),
            })
        })
        .await
    }

    /// Runs `check` until its answer is final or, for a read that may
    /// wait, the wait is over.
    async fn settle<T, F, Fut>(&self, check: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Verdict<T>, ApiError>>,
    {
        let deadline = tokio::time::Instant::now() + self.rs.min_version_wait;
        loop {
            match check().await? {
                Verdict::Final(answer) => return answer,
                Verdict::NotYet(refusal) => {
                    if !self.wait || tokio::time::Instant::now() + RECHECK > deadline {
                        return Err(refusal);
                    }
                    tokio::time::sleep(RECHECK).await;
                }
            }
        }
    }

    async fn check_guild(&self, guild_id: &str) -> Result<Verdict<GuildDoc>, ApiError> {
        let Some(guild) = self.get::<GuildDoc>(collections::GUILDS, guild_id).await? else {
            return Ok(Verdict::NotYet(ApiError::not_found("guild")));
        };
        if guild.deleted {
            return Ok(Verdict::Final(Err(guild_gone())));
        }
        if self.user.is_admin() {
            return Ok(Verdict::Final(Ok(guild)));
        }
        let member = self
            .get::<GuildMemberDoc>(
                collections::GUILD_MEMBERS,
                &member_id(guild_id, &self.user.user_id),
            )
            .await?;
        Ok(
            if member.is_some_and(|m| m.member_of.as_deref() == Some(guild_id)) {
                Verdict::Final(Ok(guild))
            } else {
                Verdict::NotYet(not_member())
            },
        )
    }

    async fn get<D: serde::de::DeserializeOwned>(
        &self,
        projection: &str,
        id: &str,
    ) -> Result<Option<D>, ApiError> {
        let collection = self.rs.live(projection).await?;
        self.rs
            .docs
            .get(&collection, id)
            .await
            .map_err(|e| store_failed(&e))?
            .map(typed)
            .transpose()
    }
}
