//! One read of the event log shared by every tail in a process.
//!
//! `tessera serve` runs each projection on its own [`TailFeed`], all of them
//! a few events behind the head. Reading the log separately, every event was
//! fetched from SQLite and its JSON decoded once per projection (about twenty
//! times): 30 % of serve's CPU under a write load (BENCHMARKS.md, "where
//! serve's CPU goes"). [`SharedTail`] keeps the newest stretch of the log in
//! memory; a tail whose cursor falls in it is answered from there, and the
//! first tail to reach its end fetches the next records for all of them.
//!
//! The window is always a gap-free run of the log in commit order: it grows
//! only by what the inner log returns after its last record, and a cursor is
//! recognised only when it is exactly the position of a record in it (or its
//! start). A tail anywhere else (a projection far behind, a rebuild) reads the
//! inner log directly until its cursor lands in the window.
//!
//! [`TailFeed`]: super::tail::TailFeed

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tessera_events::{EventLog, LogError, LogFilter, LogPosition, LogRecord};

/// Records fetched from the inner log at once when a tail reaches the end of
/// the window: what one projection batch takes by default.
const FETCH: usize = 500;

pub struct SharedTail {
    inner: Arc<dyn EventLog>,
    window: Mutex<Window>,
    /// One fetch from the inner log at a time: the tails that reach the end
    /// together wait for it instead of each reading the same records.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches begun so far (counted under `fetching`).
    fetches: AtomicU64,
}

impl SharedTail {
    /// Keeps at most `capacity` records (the oldest are dropped first).
    pub fn new(inner: Arc<dyn EventLog>, capacity: usize) -> Self {
        Self {
            inner,
            window: Mutex::new(Window::new(capacity.max(1))),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    fn lookup(&self, after: LogPosition, limit: usize) -> Lookup {
        self.window
            .lock()
            .expect("shared tail window lock")
            .lookup(after, limit)
    }
}

#[async_trait]
impl EventLog for SharedTail {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        loop {
            let fetches = self.fetches.load(Ordering::Acquire);
            let (held, end) = match self.lookup(after, limit) {
                Lookup::Outside => return self.inner.read_after(after, limit).await,
                Lookup::Found(records, _) if records.len() == limit => return Ok(records),
                // fewer than asked: the window ends here, so fetch more first
                Lookup::Found(records, end) => (records, end),
            };
            let _fetching = self.fetching.lock().await;
            if self.window_end() != end {
                // another tail fetched while this one waited
                continue;
            }
            if self.fetches.load(Ordering::Acquire) != fetches {
                // a fetch that began after this read began found nothing
                // newer: the tails woken by one commit read the log once
                return Ok(held);
            }
            self.fetches.fetch_add(1, Ordering::AcqRel);
            // the first tail to read opens the window at its cursor
            let from = end.unwrap_or(after);
            let fresh = self.inner.read_after(from, FETCH.max(limit)).await?;
            if fresh.is_empty() {
                return Ok(held);
            }
            self.window
                .lock()
                .expect("shared tail window lock")
                .extend(from, fresh);
        }
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        self.inner.head().await
    }

    async fn read_filtered(
        &self,
        after_position: i64,
        limit: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogRecord>, LogError> {
        self.inner
            .read_filtered(after_position, limit, filter)
            .await
    }
}

impl SharedTail {
    fn window_end(&self) -> Option<LogPosition> {
        self.window.lock().expect("shared tail window lock").end()
    }
}

enum Lookup {
    /// The cursor is not in the window: read the inner log.
    Outside,
    /// The records after the cursor the window holds (maybe none), and
    /// the window's end as of that look.
    Found(Vec<LogRecord>, Option<LogPosition>),
}

/// A gap-free run of the log: `records` are exactly the events after
/// `start`, in commit order.
struct Window {
    capacity: usize,
    /// The position before the first record; `None` until the first fetch.
    start: Option<LogPosition>,
    records: VecDeque<LogRecord>,
    /// Sequence number of `records[0]` (grows as old records are dropped).
    first_seq: u64,
    /// Where each record sits, by its position.
    seq_of: HashMap<LogPosition, u64>,
}

impl Window {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            start: None,
            records: VecDeque::new(),
            first_seq: 0,
            seq_of: HashMap::new(),
        }
    }

    /// The position of the last record, or the start when there is none.
    fn end(&self) -> Option<LogPosition> {
        self.records.back().map(|r| r.at).or(self.start)
    }

    fn lookup(&self, after: LogPosition, limit: usize) -> Lookup {
        let from = if self.start.is_none() {
            // not open yet: the read fetches, and opens it at its cursor
            return Lookup::Found(Vec::new(), None);
        } else if self.start == Some(after) {
            0
        } else {
            match self.seq_of.get(&after) {
                Some(seq) => (seq - self.first_seq + 1) as usize,
                None => return Lookup::Outside,
            }
        };
        Lookup::Found(
            self.records.range(from..).take(limit).cloned().collect(),
            self.end(),
        )
    }

    /// Appends what the inner log returned after `from`. A window not yet
    /// open opens at `from`; records that would not continue it are not
    /// kept (fetches are serialized, so that does not happen).
    fn extend(&mut self, from: LogPosition, fresh: Vec<LogRecord>) {
        match self.end() {
            None => self.start = Some(from),
            Some(end) if end != from => return,
            Some(_) => {}
        }
        for record in fresh {
            let seq = self.first_seq + self.records.len() as u64;
            self.seq_of.insert(record.at, seq);
            self.records.push_back(record);
        }
        while self.records.len() > self.capacity {
            if let Some(old) = self.records.pop_front() {
                self.seq_of.remove(&old.at);
                self.first_seq += 1;
                self.start = Some(old.at);
            }
        }
    }
}
