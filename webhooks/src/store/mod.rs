//! Where webhooks, their checkpoints and their dead letters are kept: the
//! port, and its adapters beside the event log they follow (PostgreSQL in
//! production, the embedded SQLite event store in `serve`).

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tessera_events::LogPosition;
use uuid::Uuid;

tessera_events::port_error!(
    /// The webhook tables could not be read or written; the adapter's
    /// error is the source.
    StoreError, "webhook store unavailable"
);

/// A registered webhook and how far its deliveries went.
#[derive(Clone)]
pub struct Webhook {
    pub webhook_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    /// Signs every delivery; never listed back.
    pub secret: String,
    /// Every event up to here was delivered or dead-lettered.
    pub checkpoint: LogPosition,
    pub delivered: u64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("secret", &"[hidden]")
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }
}

/// What a listing shows beside a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Matching events committed past the checkpoint.
    pub pending: u64,
    /// Dead letters waiting to be retried or discarded.
    pub failed: u64,
}

/// A delivery that ran out of attempts, kept with the exact body it sent.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub letter_id: i64,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub body: String,
    pub attempts: u32,
    pub last_error: String,
    pub dead_at: DateTime<Utc>,
}

/// The port.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Keeps a new webhook; its deliveries start after its checkpoint.
    async fn register(&self, webhook: &Webhook) -> Result<(), StoreError>;
    /// `false` when there was no such webhook. Its dead letters go with it.
    async fn delete(&self, webhook_id: Uuid) -> Result<bool, StoreError>;
    /// Oldest first.
    async fn list(&self) -> Result<Vec<Webhook>, StoreError>;
    async fn backlog(&self, webhook: &Webhook) -> Result<Backlog, StoreError>;
    /// Moves the checkpoint to `to`, counting `delivered` more deliveries and
    /// keeping `last_error` (cleared by a delivery that went through).
    async fn advance(
        &self,
        webhook_id: Uuid,
        to: LogPosition,
        delivered: u64,
        last_error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Keeps `letter` and moves the checkpoint past its event, in one
    /// transaction.
    async fn dead_letter(&self, letter: &DeadLetter, to: LogPosition) -> Result<(), StoreError>;
    /// Every dead letter (of one webhook), oldest first.
    async fn dead_letters(&self, webhook_id: Option<Uuid>) -> Result<Vec<DeadLetter>, StoreError>;
    /// A dead letter delivered on retry: gone, and counted as delivered.
    async fn letter_delivered(&self, letter_id: i64) -> Result<(), StoreError>;
    /// A retry that failed again.
    async fn letter_failed(&self, letter_id: i64, error: &str) -> Result<(), StoreError>;
    /// `false` when there was no such letter.
    async fn discard(&self, letter_id: i64) -> Result<bool, StoreError>;
}

/// The columns both adapters read a webhook from.
#[derive(sqlx::FromRow)]
struct WebhookRow {
    webhook_id: String,
    url: String,
    event_types: String,
    secret: String,
    tx_id: i64,
    global_position: i64,
    delivered: i64,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

impl WebhookRow {
    fn into_webhook(self) -> Webhook {
        Webhook {
            webhook_id: self.webhook_id.parse().unwrap_or_default(),
            url: self.url,
            event_types: serde_json::from_str(&self.event_types).unwrap_or_default(),
            secret: self.secret,
            checkpoint: LogPosition {
                tx_id: u64::try_from(self.tx_id).unwrap_or_default(),
                position: self.global_position,
            },
            delivered: u64::try_from(self.delivered).unwrap_or_default(),
            last_error: self.last_error,
            created_at: self.created_at,
        }
    }
}

/// The columns both adapters read a dead letter from.
#[derive(sqlx::FromRow)]
struct LetterRow {
    letter_id: i64,
    webhook_id: String,
    event_id: String,
    event_type: String,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    body: String,
    attempts: i64,
    last_error: String,
    dead_at: DateTime<Utc>,
}

impl LetterRow {
    fn into_letter(self) -> DeadLetter {
        DeadLetter {
            letter_id: self.letter_id,
            webhook_id: self.webhook_id.parse().unwrap_or_default(),
            event_id: self.event_id.parse().unwrap_or_default(),
            event_type: self.event_type,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: u64::try_from(self.sequence).unwrap_or_default(),
            body: self.body,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            dead_at: self.dead_at,
        }
    }
}

fn types_json(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".into())
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}
