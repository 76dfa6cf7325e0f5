//! A feed that tails the event log in commit order (the embedded mode; also
//! what a rebuild reads). Its resume point is the projection's status
//! document, which the runner writes after each batch.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_events::{EventLog, LogPosition};
use tokio::sync::watch;

use super::{Delivery, EventFeed, FeedError};
use tessera_documents::documents::{collections, ProjectionStatus};
use tessera_documents::store::DocumentStore;

pub struct TailFeed {
    log: Arc<dyn EventLog>,
    cursor: LogPosition,
    /// Ticks when the write side commits (same process); polls without it.
    wake: Option<watch::Receiver<u64>>,
    idle_wait: Duration,
    /// 0 after a read that found the end of the log; unknown while a read
    /// returns full batches.
    lag: Option<u64>,
}

impl TailFeed {
    pub fn new(
        log: Arc<dyn EventLog>,
        start: LogPosition,
        wake: Option<watch::Receiver<u64>>,
        idle_wait: Duration,
    ) -> Self {
        Self {
            log,
            cursor: start,
            wake,
            idle_wait,
            lag: None,
        }
    }

    /// Resumes where the projection's status document says it stopped.
    pub async fn resume(
        log: Arc<dyn EventLog>,
        docs: &dyn DocumentStore,
        projection: &str,
        wake: Option<watch::Receiver<u64>>,
        idle_wait: Duration,
    ) -> Result<Self, FeedError> {
        let start = docs
            .get(collections::PROJECTIONS, projection)
            .await
            .map_err(FeedError::new)?
            .and_then(|d| serde_json::from_value::<ProjectionStatus>(d.body).ok())
            .map_or(LogPosition::START, |s| LogPosition {
                tx_id: s.tx_id,
                position: s.position,
            });
        Ok(Self::new(log, start, wake, idle_wait))
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Delivery>, FeedError> {
        let records = self
            .log
            .read_after(self.cursor, max)
            .await
            .map_err(FeedError::new)?;
        if let Some(last) = records.last() {
            self.cursor = last.at;
        }
        self.lag = (records.len() < max).then_some(0);
        Ok(records
            .into_iter()
            .map(|r| Delivery::Event(r.envelope))
            .collect())
    }
}

#[async_trait]
impl EventFeed for TailFeed {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, FeedError> {
        if let Some(wake) = &mut self.wake {
            // commits before this read are in it; wait only for later ones
            wake.borrow_and_update();
        }
        let batch = self.read(max).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        match &mut self.wake {
            Some(wake) => {
                // a tick (or the channel closing) ends the wait early
                let _ = tokio::time::timeout(self.idle_wait, wake.changed()).await;
            }
            None => tokio::time::sleep(self.idle_wait).await,
        }
        self.read(max).await
    }

    async fn commit(&mut self) -> Result<(), FeedError> {
        Ok(())
    }

    fn position(&self) -> Option<LogPosition> {
        Some(self.cursor)
    }

    fn lag(&self) -> Option<u64> {
        self.lag
    }
}
