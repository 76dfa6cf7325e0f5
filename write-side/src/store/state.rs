//! What the write side keeps beside the event log: a directory (which guild
//! a channel is in; which schedule a reservation is on and when its hold
//! runs out) and the waiting queue (positions, the admission cursor, ended
//! tokens). Indexes and infrastructure state, never the truth of a decision.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{PgPool, SqlitePool};
pub use tessera_queue::StateError;
use tessera_queue::{Holder, PlaceRequest, Placed, QueueStore, Tick};

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StateError {
    StateError::new(e)
}

/// A hold as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRef {
    pub reservation_id: String,
    pub schedule_id: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    /// The coupon a payment of this hold is using (so that the sweeper can
    /// give it back if the payment never finishes).
    pub coupon_id: Option<String>,
}

/// An order as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    pub order_id: String,
    pub buyer_id: String,
    pub idempotency_key: String,
    /// When the sweeper looks at the order next.
    pub due_at: DateTime<Utc>,
}

#[async_trait]
pub trait Directory: Send + Sync {
    async fn put_channel(&self, channel_id: &str, guild_id: &str) -> Result<(), StateError>;
    async fn channel_guild(&self, channel_id: &str) -> Result<Option<String>, StateError>;
    async fn put_hold(&self, hold: &HoldRef) -> Result<(), StateError>;
    async fn hold(&self, reservation_id: &str) -> Result<Option<HoldRef>, StateError>;
    /// The hold is paid, cancelled or expired: the sweeper can forget it.
    async fn settle_hold(&self, reservation_id: &str) -> Result<(), StateError>;
    /// Records the coupon a payment is about to use.
    async fn set_hold_coupon(
        &self,
        reservation_id: &str,
        coupon_id: &str,
    ) -> Result<(), StateError>;
    /// Unsettled holds that ran out before `now`, oldest first.
    async fn due_holds(&self, now: DateTime<Utc>, limit: usize)
        -> Result<Vec<HoldRef>, StateError>;
    /// The order the buyer's idempotency key names: the one recorded
    /// before, or `order` now recorded. Concurrent claims of one key all
    /// answer the same order.
    async fn claim_order(&self, order: &OrderRef) -> Result<OrderRef, StateError>;
    /// The order is paid or ended and owes nothing: the sweeper can forget it.
    async fn settle_order(&self, order_id: &str) -> Result<(), StateError>;
    /// Puts the order back on the sweeper's list from `due_at` (before a
    /// cancel whose giving back must finish even if this process dies).
    async fn reopen_order(&self, order_id: &str, due_at: DateTime<Utc>) -> Result<(), StateError>;
    /// Unsettled orders due before `now`, oldest first.
    async fn due_orders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderRef>, StateError>;
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

type HoldRow = (String, String, String, i64, Option<String>);

type OrderRow = (String, String, String, i64);

fn order_ref((order_id, buyer_id, idempotency_key, ms): OrderRow) -> OrderRef {
    OrderRef {
        order_id,
        buyer_id,
        idempotency_key,
        due_at: from_ms(ms),
    }
}

fn hold_ref((reservation_id, schedule_id, user_id, ms, coupon_id): HoldRow) -> HoldRef {
    HoldRef {
        reservation_id,
        schedule_id,
        user_id,
        expires_at: from_ms(ms),
        coupon_id,
    }
}

/// Both adapters are the same SQL over a different database; only the
/// admission step differs (`LEAST` against SQLite's two-argument `MIN`), and
/// how a batch of places locks what it reads ([`super::places`]).
macro_rules! sql_state {
    ($(#[$doc:meta])* $name:ident, $pool:ty, $advance:expr, $place_many:path) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            pool: $pool,
        }

        #[async_trait]
        impl Directory for $name {
            async fn put_channel(&self, channel_id: &str, guild_id: &str) -> Result<(), StateError> {
                sqlx::query("INSERT INTO channel_directory (channel_id, guild_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(channel_id)
                    .bind(guild_id)
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn channel_guild(&self, channel_id: &str) -> Result<Option<String>, StateError> {
                sqlx::query_scalar("SELECT guild_id FROM channel_directory WHERE channel_id = $1")
                    .bind(channel_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)
            }

            async fn put_hold(&self, hold: &HoldRef) -> Result<(), StateError> {
                sqlx::query(
                    "INSERT INTO holds (reservation_id, schedule_id, user_id, expires_at_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(&hold.reservation_id)
                .bind(&hold.schedule_id)
                .bind(&hold.user_id)
                .bind(to_ms(hold.expires_at))
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(err)
            }

            async fn hold(&self, reservation_id: &str) -> Result<Option<HoldRef>, StateError> {
                let row: Option<HoldRow> = sqlx::query_as(
                    "SELECT reservation_id, schedule_id, user_id, expires_at_ms, coupon_id FROM holds WHERE reservation_id = $1",
                )
                .bind(reservation_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(row.map(hold_ref))
            }

            async fn settle_hold(&self, reservation_id: &str) -> Result<(), StateError> {
                sqlx::query("UPDATE holds SET settled = true WHERE reservation_id = $1")
                    .bind(reservation_id)
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn set_hold_coupon(&self, reservation_id: &str, coupon_id: &str) -> Result<(), StateError> {
                sqlx::query("UPDATE holds SET coupon_id = $1 WHERE reservation_id = $2")
                    .bind(coupon_id)
                    .bind(reservation_id)
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<HoldRef>, StateError> {
                let rows: Vec<HoldRow> = sqlx::query_as(
                    "SELECT reservation_id, schedule_id, user_id, expires_at_ms, coupon_id FROM holds
                      WHERE NOT settled AND expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2",
                )
                .bind(to_ms(now))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows.into_iter().map(hold_ref).collect())
            }

            async fn claim_order(&self, order: &OrderRef) -> Result<OrderRef, StateError> {
                sqlx::query(
                    "INSERT INTO shop_orders (order_id, buyer_id, idempotency_key, due_at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (buyer_id, idempotency_key) DO NOTHING",
                )
                .bind(&order.order_id)
                .bind(&order.buyer_id)
                .bind(&order.idempotency_key)
                .bind(to_ms(order.due_at))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                let row: OrderRow = sqlx::query_as(
                    "SELECT order_id, buyer_id, idempotency_key, due_at_ms FROM shop_orders
                      WHERE buyer_id = $1 AND idempotency_key = $2",
                )
                .bind(&order.buyer_id)
                .bind(&order.idempotency_key)
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
                Ok(order_ref(row))
            }

            async fn settle_order(&self, order_id: &str) -> Result<(), StateError> {
                sqlx::query("UPDATE shop_orders SET settled = true WHERE order_id = $1")
                    .bind(order_id)
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn reopen_order(&self, order_id: &str, due_at: DateTime<Utc>) -> Result<(), StateError> {
                sqlx::query("UPDATE shop_orders SET settled = false, due_at_ms = $2 WHERE order_id = $1")
                    .bind(order_id)
                    .bind(to_ms(due_at))
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn due_orders(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderRef>, StateError> {
                let rows: Vec<OrderRow> = sqlx::query_as(
                    "SELECT order_id, buyer_id, idempotency_key, due_at_ms FROM shop_orders
                      WHERE NOT settled AND due_at_ms <= $1 ORDER BY due_at_ms LIMIT $2",
                )
                .bind(to_ms(now))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows.into_iter().map(order_ref).collect())
            }
        }

        #[async_trait]
        impl QueueStore for $name {
            async fn place_many(&self, requests: &[PlaceRequest]) -> Result<Vec<Placed>, StateError> {
                $place_many(&self.pool, requests).await
            }

            async fn holder(&self, concert_id: &str, user_id: &str) -> Result<Option<Holder>, StateError> {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT position, extended_until_ms FROM queue_holders
                      WHERE concert_id = $1 AND user_id = $2 AND position > 0",
                )
                .bind(concert_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(row.map(|(p, until)| Holder {
                    position: to_u64(p),
                    extended_until: until.map(from_ms),
                }))
            }

            async fn place(&self, concert_id: &str, user_id: &str, stale: Option<u64>) -> Result<Placed, StateError> {
                let mut tx = self.pool.begin().await.map_err(err)?;
                // the holder row exists (position 0: none yet) and, through
                // the UPDATE, is locked until commit: a concurrent call of
                // the same user waits here and then sees what this one did
                sqlx::query(
                    "INSERT INTO queue_holders (concert_id, user_id, position) VALUES ($1, $2, 0)
                     ON CONFLICT (concert_id, user_id) DO NOTHING",
                )
                .bind(concert_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                let held: i64 = sqlx::query_scalar(
                    "UPDATE queue_holders SET position = position
                      WHERE concert_id = $1 AND user_id = $2 RETURNING position",
                )
                .bind(concert_id)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
                let held = to_u64(held);
                if held > 0 && Some(held) != stale {
                    tx.commit().await.map_err(err)?;
                    return Ok(Placed::Held(held));
                }
                let position: i64 = sqlx::query_scalar(
                    "INSERT INTO queue_positions (concert_id, last_issued) VALUES ($1, 1)
                     ON CONFLICT (concert_id) DO UPDATE SET last_issued = queue_positions.last_issued + 1
                     RETURNING last_issued",
                )
                .bind(concert_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
                sqlx::query(
                    "UPDATE queue_holders SET position = $3, extensions = 0, extended_until_ms = NULL
                      WHERE concert_id = $1 AND user_id = $2",
                )
                .bind(concert_id)
                .bind(user_id)
                .bind(position)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(Placed::New(to_u64(position)))
            }

            async fn extend(
                &self,
                concert_id: &str,
                user_id: &str,
                position: u64,
                max: u32,
                until: DateTime<Utc>,
            ) -> Result<Option<u32>, StateError> {
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE queue_holders SET extensions = extensions + 1, extended_until_ms = $5
                      WHERE concert_id = $1 AND user_id = $2 AND position = $3 AND extensions < $4
                      RETURNING extensions",
                )
                .bind(concert_id)
                .bind(user_id)
                .bind(to_i64(position))
                .bind(i64::from(max))
                .bind(to_ms(until))
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn release(&self, concert_id: &str, user_id: &str, position: u64) -> Result<(), StateError> {
                sqlx::query("DELETE FROM queue_holders WHERE concert_id = $1 AND user_id = $2 AND position = $3")
                    .bind(concert_id)
                    .bind(user_id)
                    .bind(to_i64(position))
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn ticks_after(&self, concert_id: &str, after: u64) -> Result<Vec<Tick>, StateError> {
                let rows: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT admitted_up_to, at_ms FROM queue_ticks WHERE concert_id = $1 AND admitted_up_to > $2
                      ORDER BY admitted_up_to",
                )
                .bind(concert_id)
                .bind(to_i64(after))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
                Ok(rows
                    .into_iter()
                    .map(|(up_to, at)| Tick { admitted_up_to: to_u64(up_to), at: from_ms(at) })
                    .collect())
            }

            async fn advance(&self, batch: u64, now: DateTime<Utc>) -> Result<usize, StateError> {
                let mut tx = self.pool.begin().await.map_err(err)?;
                let moved: Vec<(String, i64)> = sqlx::query_as($advance)
                    .bind(to_i64(batch))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?;
                for (concert_id, admitted) in &moved {
                    sqlx::query(
                        "INSERT INTO queue_ticks (concert_id, admitted_up_to, at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(concert_id)
                    .bind(admitted)
                    .bind(to_ms(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                tx.commit().await.map_err(err)?;
                Ok(moved.len())
            }

            async fn revoke(&self, jti: &str, until: DateTime<Utc>) -> Result<(), StateError> {
                sqlx::query("INSERT INTO queue_revoked (jti, expires_at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(jti)
                    .bind(to_ms(until))
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(err)
            }

            async fn revoked_among(&self, jtis: &[String]) -> Result<Vec<bool>, StateError> {
                if jtis.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::new("SELECT jti FROM queue_revoked WHERE jti IN (");
                let mut list = query.separated(", ");
                for jti in jtis {
                    list.push_bind(jti);
                }
                query.push(")");
                let hits: std::collections::HashSet<String> = query
                    .build_query_scalar()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?
                    .into_iter()
                    .collect();
                Ok(jtis.iter().map(|j| hits.contains(j)).collect())
            }
        }
    };
}

sql_state!(
    /// PostgreSQL state (the production write side; tables from migration 0002).
    PgState,
    PgPool,
    "UPDATE queue_positions SET admitted_up_to = LEAST(admitted_up_to + $1, last_issued)
      WHERE admitted_up_to < last_issued RETURNING concert_id, admitted_up_to",
    super::places::on_postgres
);

sql_state!(
    /// Embedded state, in its own SQLite file (`state.db`).
    SqliteState,
    SqlitePool,
    "UPDATE queue_positions SET admitted_up_to = MIN(admitted_up_to + $1, last_issued)
      WHERE admitted_up_to < last_issued RETURNING concert_id, admitted_up_to",
    super::places::on_sqlite
);

impl PgState {
    /// Uses the event store's pool (migration 0002 holds the tables).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite-state");

impl SqliteState {
    pub async fn new(pool: SqlitePool) -> Result<Self, MigrateError> {
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}
