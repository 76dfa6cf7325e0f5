//! The queue's port: where positions, the admission cursor and ended tokens
//! are kept (adapters: the write side's PostgreSQL and SQLite state stores).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

tessera_events::port_error!(
    /// A state store failed; the adapter's error is the source.
    StateError, "state store failed"
);

/// One admission tick of a concert's queue: positions up to
/// `admitted_up_to` were admitted `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub admitted_up_to: u64,
    pub at: DateTime<Utc>,
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

/// One user asking for a place, as [`QueueStore::place`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceRequest {
    pub concert_id: String,
    pub user_id: String,
    /// A position the caller found ended (see [`QueueStore::place`]).
    pub stale: Option<u64>,
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
    /// Places several users at once: the answers are what [`Self::place`]
    /// called for each request, in order, one after another would give
    /// (a user asking twice in one batch takes one position). An adapter
    /// that can writes the whole batch in one transaction; this default
    /// places one request at a time.
    async fn place_many(&self, requests: &[PlaceRequest]) -> Result<Vec<Placed>, StateError> {
        let mut placed = Vec::with_capacity(requests.len());
        for r in requests {
            placed.push(self.place(&r.concert_id, &r.user_id, r.stale).await?);
        }
        Ok(placed)
    }
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
    /// The admission ticks of `concert_id`'s queue that reach past
    /// position `after`, oldest first. The last one's `admitted_up_to` is
    /// the queue's cursor: the cursor and its tick move together.
    async fn ticks_after(&self, concert_id: &str, after: u64) -> Result<Vec<Tick>, StateError>;
    /// One admission tick for every queue: up to `batch` more positions of
    /// each (never past the last one handed out). Returns how many queues moved.
    async fn advance(&self, batch: u64, now: DateTime<Utc>) -> Result<usize, StateError>;
    async fn revoke(&self, jti: &str, until: DateTime<Utc>) -> Result<(), StateError>;
    /// Whether each of `jtis` was ended, in order, in one query.
    async fn revoked_among(&self, jtis: &[String]) -> Result<Vec<bool>, StateError>;
}
