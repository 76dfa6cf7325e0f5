//! The queue's port: where positions, the admission cursor and ended tokens
//! are kept (adapters: the write side's PostgreSQL and SQLite state stores).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

tessera_events::port_error!(
    /// A state store failed; the adapter's error is the source.
    StateError, "state store failed"
);

/// Where a concert's queue stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCursor {
    /// Positions up to this one are admitted.
    pub admitted_up_to: u64,
    /// The last position handed out.
    pub last_issued: u64,
}

#[async_trait]
pub trait QueueStore: Send + Sync {
    /// The next position in a concert's queue (1, 2, 3, ...).
    async fn enqueue(&self, concert_id: &str) -> Result<u64, StateError>;
    async fn cursor(&self, concert_id: &str) -> Result<QueueCursor, StateError>;
    /// When `position` was admitted, if it was.
    async fn admitted_at(
        &self,
        concert_id: &str,
        position: u64,
    ) -> Result<Option<DateTime<Utc>>, StateError>;
    /// One admission tick for every queue: up to `batch` more positions of
    /// each (never past the last one handed out). Returns how many queues moved.
    async fn advance(&self, batch: u64, now: DateTime<Utc>) -> Result<usize, StateError>;
    async fn revoke(&self, jti: &str, until: DateTime<Utc>) -> Result<(), StateError>;
    async fn is_revoked(&self, jti: &str) -> Result<bool, StateError>;
}
