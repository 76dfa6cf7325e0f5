//! Presence shared by every read API through Redis (DESIGN.md §10): per
//! user a sorted set of their streams' leases, scored by when each runs
//! out. A lease is renewed while its stream is open and cut to the grace
//! period when it closes; a read API that dies leaves leases that run out.
//! Keys carry a prefix (`TESSERA_REDIS_PREFIX`), so deployments and tests
//! can share one server.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use tessera_read_side::presence::{Presence, PresenceError};

pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    /// How long a user's key outlives its last lease.
    keep: Duration,
}

impl RedisPresence {
    pub async fn connect(url: &str, prefix: &str, keep: Duration) -> Result<Self> {
        let client = redis::Client::open(url).context("bad TESSERA_REDIS_URL")?;
        let conn = client
            .get_connection_manager()
            .await
            .context("cannot connect to Redis")?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            keep,
        })
    }

    fn key(&self, user_id: &str) -> String {
        format!("{}:presence:{user_id}", self.prefix)
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn hold(
        &self,
        user_id: &str,
        stream_id: &str,
        until: DateTime<Utc>,
    ) -> Result<(), PresenceError> {
        let key = self.key(user_id);
        let keep_ms = i64::try_from(self.keep.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&key, stream_id, until.timestamp_millis())
            .ignore()
            .zrembyscore(&key, "-inf", Utc::now().timestamp_millis())
            .ignore()
            .pexpire(
                &key,
                keep_ms + (until - Utc::now()).num_milliseconds().max(0),
            )
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(PresenceError::new)
    }

    async fn online(
        &self,
        user_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>, PresenceError> {
        if user_ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut pipe = redis::pipe();
        // leases running past now (exclusive)
        let after_now = format!("({}", now.timestamp_millis());
        for u in user_ids {
            pipe.zcount(self.key(u), &after_now, "+inf");
        }
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = pipe
            .query_async(&mut conn)
            .await
            .map_err(PresenceError::new)?;
        Ok(user_ids
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(u, _)| u.clone())
            .collect())
    }
}
