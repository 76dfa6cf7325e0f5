//! Leadership for work that one process at a time must do (the relay, the
//! queue admission ticks, the hold sweeper, webhook delivery): a PostgreSQL advisory lock
//! held on a dedicated connection; the embedded mode is a single process.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub enum Leadership {
    /// One process: always the leader.
    Single,
    Postgres(PgPool),
}

/// Held while leading; dropping it (or losing its connection) lets a
/// standby take over.
pub enum LeaderGuard {
    Single,
    Postgres(PgConnection),
}

impl LeaderGuard {
    /// Whether the lock is still held (its connection still answers).
    pub async fn alive(&mut self) -> bool {
        match self {
            Self::Single => true,
            Self::Postgres(conn) => conn.ping().await.is_ok(),
        }
    }
}

/// The advisory lock key of a name (a fixed FNV-1a hash: std's hasher is
/// randomized per process).
pub fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("tessera:{name}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

impl Leadership {
    /// Waits (as a standby) until this process leads `name`; `None` if shut
    /// down first.
    pub async fn acquire(
        &self,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<LeaderGuard>, sqlx::Error> {
        let pool = match self {
            Self::Single => return Ok(Some(LeaderGuard::Single)),
            Self::Postgres(pool) => pool,
        };
        let mut conn = pool.acquire().await?.detach();
        let key = lock_key(name);
        let mut announced = false;
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut conn)
                .await?;
            if got {
                tracing::info!(role = name, "leading");
                return Ok(Some(LeaderGuard::Postgres(conn)));
            }
            if !announced {
                tracing::info!(role = name, "another process leads; standing by");
                announced = true;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn lock_keys_are_stable_and_distinct_per_name() {
        assert_eq!(lock_key("relay:default"), lock_key("relay:default"));
        assert_ne!(lock_key("relay:default"), lock_key("background"));
    }
}
