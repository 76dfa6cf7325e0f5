//! The shared tail against a log that grows while many tails read it: each
//! tail sees exactly the log, in order, with nothing skipped or repeated, and
//! each record is read from the inner log about once instead of once per
//! tail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use tessera_events::{Envelope, EventLog, LogError, LogFilter, LogPosition, LogRecord};
use tessera_projector::feed::shared::SharedTail;

/// The inner log: records in commit order, and how often it was read.
#[derive(Default)]
struct Recorded {
    records: Mutex<Vec<LogRecord>>,
    reads: AtomicUsize,
    /// Records handed out (what a real log reads and decodes).
    handed_out: AtomicUsize,
}

impl Recorded {
    fn append(&self, n: usize) {
        let mut records = self.records.lock().unwrap();
        for _ in 0..n {
            let position = records.len() as i64 + 1;
            let envelope: Envelope = serde_json::from_value(json!({
                "event_id": uuid::Uuid::now_v7(),
                "aggregate_type": "account",
                "aggregate_id": format!("a{}", position % 7),
                "sequence": position as u64,
                "global_position": position,
                "event_type": "Charged",
                "event_version": "1",
                "payload": {"n": position},
                "metadata": {
                    "event_id": uuid::Uuid::now_v7(),
                    "occurred_at": "2026-12-04T00:00:00Z",
                    "actor": "test",
                    "correlation_id": "c",
                },
                "recorded_at": "2026-12-04T00:00:00Z",
            }))
            .unwrap();
            records.push(LogRecord {
                at: LogPosition { tx_id: 0, position },
                envelope,
            });
        }
    }

    fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

#[async_trait]
impl EventLog for Recorded {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        // give the other tails a chance to run into the fetch in progress
        tokio::task::yield_now().await;
        let records = self.records.lock().unwrap();
        let out: Vec<LogRecord> = records
            .iter()
            .filter(|r| r.at > after)
            .take(limit)
            .cloned()
            .collect();
        self.handed_out.fetch_add(out.len(), Ordering::SeqCst);
        Ok(out)
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        Ok(self
            .records
            .lock()
            .unwrap()
            .last()
            .map_or(LogPosition::START, |r| r.at))
    }

    async fn read_filtered(
        &self,
        _after_position: i64,
        _limit: usize,
        _filter: &LogFilter,
    ) -> Result<Vec<LogRecord>, LogError> {
        unreachable!("the shared tail passes audit reads through untouched")
    }
}

/// Reads through `log` from `start` until `total` records were seen.
async fn tail(log: Arc<dyn EventLog>, start: LogPosition, total: usize, page: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor = start;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {cursor:?}"
        );
        let records = log.read_after(cursor, page).await.unwrap();
        assert!(records.len() <= page);
        if let Some(last) = records.last() {
            cursor = last.at;
        } else {
            tokio::task::yield_now().await;
        }
        seen.extend(records.iter().map(|r| r.envelope.global_position));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tails_see_the_whole_log_while_it_grows_and_share_its_reads() {
    let inner = Arc::new(Recorded::default());
    inner.append(50);
    let shared: Arc<dyn EventLog> = Arc::new(SharedTail::new(inner.clone(), 4096));
    const TOTAL: usize = 3_000;
    let tails: Vec<_> = (0..20)
        .map(|i| {
            let log = Arc::clone(&shared);
            // pages of different sizes, as projections' batch sizes differ
            tokio::spawn(tail(log, LogPosition::START, TOTAL, 50 + i * 7))
        })
        .collect();
    let writer = {
        let inner = inner.clone();
        tokio::spawn(async move {
            while inner.len() < TOTAL {
                inner.append(10);
                tokio::task::yield_now().await;
            }
        })
    };
    writer.await.unwrap();
    let expected: Vec<i64> = (1..=TOTAL as i64).collect();
    for t in tails {
        assert_eq!(t.await.unwrap(), expected);
    }
    // alone, each of the 20 tails would read every record: 60,000
    let read = inner.handed_out.load(Ordering::SeqCst);
    assert!(read < 2 * TOTAL, "{read} records read from the inner log");
}

#[tokio::test]
async fn a_tail_behind_the_window_reads_the_log_itself_and_then_joins() {
    let inner = Arc::new(Recorded::default());
    inner.append(1_000);
    let shared: Arc<dyn EventLog> = Arc::new(SharedTail::new(inner.clone(), 100));
    // a tail at the head opens the window there
    let head = inner.head().await.unwrap();
    assert!(shared.read_after(head, 10).await.unwrap().is_empty());
    inner.append(20);
    assert_eq!(
        tail(Arc::clone(&shared), head, 20, 10).await,
        (1_001..=1_020).collect::<Vec<_>>()
    );
    // a tail from the start is outside the window: it reads the log itself,
    // in order, and lands in the window for the last records
    let before = inner.reads.load(Ordering::SeqCst);
    let all = tail(Arc::clone(&shared), LogPosition::START, 1_020, 100).await;
    assert_eq!(all, (1..=1_020).collect::<Vec<_>>());
    assert!(inner.reads.load(Ordering::SeqCst) - before >= 10);
    // a cursor that is no record's position is never answered from memory
    let odd = LogPosition {
        tx_id: 9,
        position: 1_005,
    };
    assert!(shared.read_after(odd, 10).await.unwrap().is_empty());
}
