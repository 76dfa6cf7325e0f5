//! The webhook tables in the embedded event store (`events.db`, migration
//! `sqlite/0002_webhooks.sql`). SQLite has one writer, so the log position
//! alone orders it and `tx_id` stays 0.

use async_trait::async_trait;
use sqlx::SqlitePool;
use tessera_events::LogPosition;
use uuid::Uuid;

use super::{
    count, types_json, Backlog, DeadLetter, LetterRow, StoreError, Webhook, WebhookRow,
    WebhookStore,
};

const WEBHOOK_COLUMNS: &str = "webhook_id, url, event_types, secret, tx_id, global_position,
    delivered, last_error, created_at";

const LETTER_COLUMNS: &str = "letter_id, webhook_id, event_id, event_type, aggregate_type,
    aggregate_id, sequence, body, attempts, last_error, dead_at";

#[derive(Clone)]
pub struct SqliteWebhooks {
    pool: SqlitePool,
}

impl SqliteWebhooks {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl WebhookStore for SqliteWebhooks {
    async fn register(&self, w: &Webhook) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhooks (webhook_id, url, event_types, secret, global_position, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(w.webhook_id.to_string())
        .bind(&w.url)
        .bind(types_json(&w.event_types))
        .bind(&w.secret)
        .bind(w.checkpoint.position)
        .bind(w.created_at)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(StoreError::new)
    }

    async fn delete(&self, webhook_id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE webhook_id = ?1")
            .bind(webhook_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self) -> Result<Vec<Webhook>, StoreError> {
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, webhook_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(rows.into_iter().map(WebhookRow::into_webhook).collect())
    }

    async fn backlog(&self, w: &Webhook) -> Result<Backlog, StoreError> {
        let (pending, failed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events
                      WHERE global_position > ?1
                        AND event_type IN (SELECT value FROM json_each(?2))),
                    (SELECT count(*) FROM webhook_dead_letters WHERE webhook_id = ?3)",
        )
        .bind(w.checkpoint.position)
        .bind(types_json(&w.event_types))
        .bind(w.webhook_id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(Backlog {
            pending: count(pending),
            failed: count(failed),
        })
    }

    async fn advance(
        &self,
        webhook_id: Uuid,
        to: LogPosition,
        delivered: u64,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhooks SET global_position = ?2, delivered = delivered + ?3, last_error = ?4
              WHERE webhook_id = ?1",
        )
        .bind(webhook_id.to_string())
        .bind(to.position)
        .bind(i64::try_from(delivered).unwrap_or(i64::MAX))
        .bind(last_error)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(StoreError::new)
    }

    async fn dead_letter(&self, l: &DeadLetter, to: LogPosition) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        sqlx::query(
            "INSERT OR IGNORE INTO webhook_dead_letters (webhook_id, event_id, event_type,
                    aggregate_type, aggregate_id, sequence, body, attempts, last_error, dead_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
              WHERE EXISTS (SELECT 1 FROM webhooks WHERE webhook_id = ?1)",
        )
        .bind(l.webhook_id.to_string())
        .bind(l.event_id.to_string())
        .bind(&l.event_type)
        .bind(&l.aggregate_type)
        .bind(&l.aggregate_id)
        .bind(i64::try_from(l.sequence).unwrap_or(i64::MAX))
        .bind(&l.body)
        .bind(i64::from(l.attempts))
        .bind(&l.last_error)
        .bind(l.dead_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        sqlx::query(
            "UPDATE webhooks SET global_position = ?2, last_error = ?3 WHERE webhook_id = ?1",
        )
        .bind(l.webhook_id.to_string())
        .bind(to.position)
        .bind(&l.last_error)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        tx.commit().await.map_err(StoreError::new)
    }

    async fn dead_letters(&self, webhook_id: Option<Uuid>) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<LetterRow> = sqlx::query_as(&format!(
            "SELECT {LETTER_COLUMNS} FROM webhook_dead_letters
              WHERE ?1 IS NULL OR webhook_id = ?1 ORDER BY letter_id"
        ))
        .bind(webhook_id.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(rows.into_iter().map(LetterRow::into_letter).collect())
    }

    async fn letter_delivered(&self, letter_id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        let webhook: Option<String> = sqlx::query_scalar(
            "DELETE FROM webhook_dead_letters WHERE letter_id = ?1 RETURNING webhook_id",
        )
        .bind(letter_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        if let Some(webhook) = webhook {
            sqlx::query("UPDATE webhooks SET delivered = delivered + 1 WHERE webhook_id = ?1")
                .bind(webhook)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?;
        }
        tx.commit().await.map_err(StoreError::new)
    }

    async fn letter_failed(&self, letter_id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_dead_letters SET attempts = attempts + 1, last_error = ?2
              WHERE letter_id = ?1",
        )
        .bind(letter_id)
        .bind(error)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(StoreError::new)
    }

    async fn discard(&self, letter_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_dead_letters WHERE letter_id = ?1")
            .bind(letter_id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?;
        Ok(done.rows_affected() > 0)
    }
}
