//! Where a projector's events come from: Kafka in production, a tail of the
//! event log in the embedded mode (and for rebuilds).

pub mod kafka;
pub mod shared;
pub mod tail;

use async_trait::async_trait;
use tessera_events::{Envelope, LogPosition};

/// One delivery: an event, or bytes on the topic that are not one.
// Nearly every delivery is an event; boxing it would allocate for each one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Event(Envelope),
    Undecodable {
        /// Where it came from (`topic/partition/offset`).
        source: String,
        raw: String,
        error: String,
    },
}

tessera_events::port_error!(
    /// The feed failed; the broker's or the store's error is the source.
    FeedError, "event feed failed"
);

#[async_trait]
pub trait EventFeed: Send + Sync {
    /// Up to `max` deliveries in order per aggregate. When none are ready it
    /// waits a short while and may return an empty batch.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, FeedError>;

    /// Marks everything returned so far as done (after the documents are
    /// written): Kafka offsets are committed here, never before.
    async fn commit(&mut self) -> Result<(), FeedError>;

    /// Log position of the last delivery returned, when known.
    fn position(&self) -> Option<LogPosition>;

    /// Events the source holds beyond what was committed, when known.
    fn lag(&self) -> Option<u64> {
        None
    }

    /// Lets go of what this instance reads, so others take it over at once
    /// (at shutdown, after the last commit).
    async fn release(&mut self) -> Result<(), FeedError> {
        Ok(())
    }
}
