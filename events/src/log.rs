use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Envelope;

/// A point in the event log in commit order.
///
/// On PostgreSQL that is the pair (transaction id, global position): a row
/// with a lower position may belong to a transaction that commits later, so
/// the position alone is not a safe resume point. On SQLite writes are
/// serialized and `tx_id` is always 0.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    pub tx_id: u64,
    pub position: i64,
}

impl LogPosition {
    pub const START: Self = Self {
        tx_id: 0,
        position: 0,
    };
}

/// One event read from the log, with where it sits.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub at: LogPosition,
    pub envelope: Envelope,
}

/// Which events an audit read or export wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    /// Recorded at or after.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Recorded before.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

crate::port_error!(
    /// The log could not be read; the adapter's error is the source.
    LogError, "event log unavailable"
);

/// Reading the event log in commit order: the port behind the relay, the
/// embedded projector feed and rebuilds. Adapters upcast every payload.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` committed events after `after`, in commit order. Never
    /// returns an event while an earlier-committing one may still appear.
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LogRecord>, LogError>;

    /// The position of the last committed event (for lag).
    async fn head(&self) -> Result<LogPosition, LogError>;

    /// Up to `limit` committed events with a global position above
    /// `after_position` that match `filter`, in global position order (the
    /// audit view and exports).
    async fn read_filtered(
        &self,
        after_position: i64,
        limit: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogRecord>, LogError>;
}
