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

/// The place a user holds in a concert's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub position: u64,
    /// The end of the active window after the last extension.
    pub extended_until: Option<DateTime<Utc>>,
}

/// The outcome of asking for a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A new position, taken by this call.
    New(u64),
    /// The position the user already holds (a concurrent call took it).
    Held(u64),
}

#[async_trait]
pub trait QueueStore: Send + Sync {
    /// The place `user_id` holds in `concert_id`'s queue, if any.
    async fn holder(&self, concert_id: &str, user_id: &str) -> Result<Option<Holder>, StateError>;
    /// Gives `user_id` the next position (1, 2, 3, ...) unless they hold
    /// one: atomically, so concurrent calls of one user (on any instance)
    /// take one position between them. `stale` is a position the caller
    /// found ended; a holder of exactly that one gets a new position.
    async fn place(
        &self,
        concert_id: &str,
        user_id: &str,
        stale: Option<u64>,
    ) -> Result<Placed, StateError>;
    /// Extends the active window of `position` to `until`, unless it was
    /// extended `max` times already (`None` then).
    async fn extend(
        &self,
        concert_id: &str,
        user_id: &str,
        position: u64,
        max: u32,
        until: DateTime<Utc>,
    ) -> Result<Option<u32>, StateError>;
    /// Gives the place up (the token ended at payment).
    async fn release(
        &self,
        concert_id: &str,
        user_id: &str,
        position: u64,
    ) -> Result<(), StateError>;
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
