//! Group commit: the appends of commands on different aggregates that arrive
//! together go into the event store in one transaction (DESIGN.md §9).
//!
//! One PostgreSQL commit is one WAL flush; a command per commit caps the
//! write side at the flush rate, while the same server takes ten times the
//! rows in multi-row transactions. Each caller hands over one aggregate's
//! rows and waits; a flusher takes everything waiting (up to
//! `max_batch`), writes it in one transaction and answers each caller once
//! that transaction committed, so no command is answered before its events
//! are durable. Nothing waits on purpose: at low load a batch is the one
//! append that is there (no added latency); under load the appends that
//! arrive while a flush runs form the next batch.
//!
//! An aggregate whose rows conflict (another writer appended at one of its
//! sequences first) fails alone: its rows are taken out of the transaction
//! and its caller retries, the others commit. On PostgreSQL a group is
//! first inserted as if nothing conflicts, and written again skipping
//! conflicts only when that breaks a key (`write_postgres`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::bus::{Cause, SharedCause};

/// How appends are grouped.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// Appends (one aggregate's events each) written in one transaction at
    /// the most.
    pub max_batch: usize,
    /// Transactions in flight at once. PostgreSQL flushes the WAL of
    /// concurrent commits together, so a few overlap well; SQLite has one
    /// writer, so more than one only waits on its lock.
    pub max_in_flight: usize,
    /// Transactions in flight at once while a full batch (`max_batch`
    /// appends) waits for a flusher: a backlog that one more transaction
    /// takes whole, where starting it earlier would only split the
    /// arrivals into smaller groups.
    pub busy_in_flight: usize,
    /// How long a flusher waits for more appends before it writes a batch
    /// smaller than `max_batch`. Zero by default: nothing is added at low
    /// load, and under load the appends that arrive during a flush make the
    /// next batch anyway.
    pub wait: Duration,
}

impl GroupConfig {
    /// Whether an append that just joined `queue` starts another flusher.
    fn starts_another(&self, queue: &Queue) -> bool {
        let max = self.max_in_flight.max(1);
        queue.in_flight < max
            || (queue.in_flight < self.busy_in_flight.max(max)
                && queue.pending.len() >= self.max_batch.max(1))
    }

    /// Two transactions in flight, four while a full group waits: under
    /// wrk's 64 connections on two cores the write API took 13,229–13,820
    /// charges/s with two and 12,083–12,249 with four (fewer, larger groups
    /// cost fewer commits), while 1,600 commands in flight in process went
    /// faster with four (BENCHMARKS.md).
    ///
    /// The plain insert and the extra transactions for a backlog together
    /// took the in-process path from 0.50 to 0.62–0.65 of PostgreSQL's
    /// 50-row limit (`tessera-bench --only appends`, same session).
    pub const POSTGRES: Self = Self {
        max_batch: 512,
        max_in_flight: 2,
        busy_in_flight: 4,
        wait: Duration::ZERO,
    };
    pub const SQLITE: Self = Self {
        max_batch: 512,
        max_in_flight: 1,
        busy_in_flight: 1,
        wait: Duration::ZERO,
    };
}

/// Why an append did not go in.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended at one of the sequences first: nothing of
    /// this append was written.
    #[error("another writer appended to the aggregate first")]
    Conflict,
    /// The store did not answer (in time): the append may or may not have
    /// been written.
    #[error("the event store is unavailable: {0}")]
    Unavailable(#[source] Cause),
    #[error("the append failed: {0}")]
    Failed(#[source] Cause),
}

/// One event as the group committer writes it: its payload and metadata
/// already JSON text. Serialized once, straight from the event: going
/// through `serde_json::Value` (cqrs-es's `SerializedEvent`) built a tree
/// of allocations per event that the driver then serialized again.
#[derive(Debug, Clone)]
pub struct Row {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub sequence: usize,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
}

impl Row {
    fn sequence(&self) -> i64 {
        i64::try_from(self.sequence).unwrap_or(i64::MAX)
    }
}

/// Where the group committer writes.
#[derive(Clone)]
pub enum Target {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

struct Pending {
    rows: Vec<Row>,
    done: oneshot::Sender<Result<(), AppendError>>,
    /// The store timeout counts from the append, not from its batch: an
    /// append queued behind a batch that hangs (a paused server) would
    /// otherwise wait out that batch's timeout and then its own (the fault
    /// suite saw a charge answered 503 after 3.7 s for a 2 s timeout).
    deadline: Instant,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    in_flight: usize,
}

struct Inner {
    target: Target,
    config: GroupConfig,
    timeout: Duration,
    queue: Mutex<Queue>,
    commits: watch::Sender<u64>,
    careful: Careful,
}

/// The group committer of one event store.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

impl GroupCommit {
    pub fn new(
        target: Target,
        config: GroupConfig,
        timeout: Duration,
        commits: watch::Sender<u64>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                target,
                config,
                timeout,
                queue: Mutex::new(Queue::default()),
                commits,
                careful: Careful::default(),
            }),
        }
    }

    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self::new(
            self.inner.target.clone(),
            self.inner.config,
            timeout,
            self.inner.commits.clone(),
        )
    }

    #[must_use]
    pub fn with_config(&self, config: GroupConfig) -> Self {
        Self::new(
            self.inner.target.clone(),
            config,
            self.inner.timeout,
            self.inner.commits.clone(),
        )
    }

    /// Appends one aggregate's rows (consecutive sequences) and answers once
    /// the transaction that holds them committed.
    ///
    /// The flush runs in a task of its own: a caller that goes away (a
    /// client hanging up) neither cancels its neighbours' commit nor leaves
    /// the queue without a flusher.
    pub async fn append(&self, rows: Vec<Row>) -> Result<(), AppendError> {
        let (done, answer) = oneshot::channel();
        let deadline = Instant::now() + self.inner.timeout;
        let start_flusher = {
            let mut queue = self.inner.lock();
            queue.pending.push(Pending {
                rows,
                done,
                deadline,
            });
            let start = self.inner.config.starts_another(&queue);
            if start {
                queue.in_flight += 1;
            }
            start
        };
        if start_flusher {
            tokio::spawn(flush_while_pending(Arc::clone(&self.inner)));
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(answered) => answered.unwrap_or_else(|_| {
                Err(AppendError::Failed(
                    "the flusher ended without an answer".into(),
                ))
            }),
            // still queued (left out when its batch is taken) or in a
            // write that has not answered: either way not known written
            Err(_) => Err(self.inner.timed_out()),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether fewer appends wait than a full batch.
    fn short_of_a_batch(&self) -> bool {
        self.lock().pending.len() < self.config.max_batch.max(1)
    }

    fn timed_out(&self) -> AppendError {
        AppendError::Unavailable(Box::new(super::TimedOut(self.timeout)))
    }

    /// The next batch, or `None` (and one flusher fewer) when nothing waits.
    /// Appends whose callers were answered "timed out" while they waited
    /// are dropped unwritten.
    fn next_batch(&self) -> Option<Vec<Pending>> {
        let mut queue = self.lock();
        let now = Instant::now();
        queue.pending.retain(|p| p.deadline > now);
        if queue.pending.is_empty() {
            queue.in_flight -= 1;
            return None;
        }
        let take = queue.pending.len().min(self.config.max_batch.max(1));
        Some(queue.pending.drain(..take).collect())
    }
}

/// Gives the queue back a flusher if this one dies mid-batch (a panic in a
/// driver), so later appends are not left waiting forever.
struct FlusherGuard(Arc<Inner>);

impl Drop for FlusherGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().in_flight -= 1;
        }
    }
}

async fn flush_while_pending(inner: Arc<Inner>) {
    let _guard = FlusherGuard(Arc::clone(&inner));
    loop {
        if !inner.config.wait.is_zero() && inner.short_of_a_batch() {
            tokio::time::sleep(inner.config.wait).await;
        }
        let Some(batch) = inner.next_batch() else {
            break;
        };
        let appends: Vec<&[Row]> = batch.iter().map(|p| p.rows.as_slice()).collect();
        // bounded by the latest caller's deadline: the earlier ones have
        // answered themselves by then
        let deadline = batch
            .iter()
            .map(|p| p.deadline)
            .max()
            .unwrap_or_else(Instant::now);
        let outcome =
            tokio::time::timeout_at(deadline, write(&inner.target, &appends, &inner.careful)).await;
        let results = match outcome {
            Ok(Ok(conflicted)) => {
                let committed = conflicted.iter().filter(|c| !**c).count();
                if committed > 0 {
                    inner.commits.send_modify(|n| *n = n.wrapping_add(1));
                }
                metrics::histogram!("tessera_group_commit_appends").record(batch.len() as f64);
                conflicted
                    .into_iter()
                    .map(|c| {
                        if c {
                            Err(AppendError::Conflict)
                        } else {
                            Ok(())
                        }
                    })
                    .collect::<Vec<_>>()
            }
            Ok(Err(e)) => {
                let unavailable = e.is_unavailable();
                tracing::warn!(error = ?e, appends = batch.len(), "group commit failed");
                let shared: Arc<dyn std::error::Error + Send + Sync> = Arc::from(e.cause());
                (0..batch.len())
                    .map(|_| {
                        let cause: Cause = Box::new(SharedCause(Arc::clone(&shared)));
                        Err(if unavailable {
                            AppendError::Unavailable(cause)
                        } else {
                            AppendError::Failed(cause)
                        })
                    })
                    .collect()
            }
            Err(_) => (0..batch.len()).map(|_| Err(inner.timed_out())).collect(),
        };
        for (pending, result) in batch.into_iter().zip(results) {
            let _ = pending.done.send(result);
        }
    }
}

/// A batch that failed as a whole.
#[derive(Debug)]
struct BatchError(sqlx::Error);

impl BatchError {
    /// A pool that timed out or a broken socket: the store is unavailable
    /// (503), not broken (500).
    fn is_unavailable(&self) -> bool {
        super::is_unavailable(&self.0)
    }

    fn cause(self) -> Cause {
        Box::new(self.0)
    }
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        Self(e)
    }
}

/// Writes a batch in one transaction; answers, per append, whether it
/// conflicted (and so was left out).
async fn write(
    target: &Target,
    appends: &[&[Row]],
    careful: &Careful,
) -> Result<Vec<bool>, BatchError> {
    match target {
        Target::Postgres(pool) => write_postgres(pool, appends, careful).await,
        Target::Sqlite(pool) => write_sqlite(pool, appends).await,
    }
}

/// PostgreSQL: one `INSERT … SELECT FROM unnest(…)` for the whole batch,
/// in key order, in one transaction.
///
/// Key order matters twice: an aggregate's rows get ascending positions
/// (per-aggregate order in the log), and two write APIs whose batches hold
/// the same aggregates take their row locks in the same order, so they
/// cannot deadlock. The insert is the transaction's first write, so the
/// transaction id is taken only after every decision was made (DESIGN.md §3).
///
/// A batch is first written as if nothing conflicts, with a plain insert: a
/// conflict is rare (another process wrote the aggregate first) and
/// `ON CONFLICT` costs every row a speculative insertion (pgbench, 500-row
/// transactions of the group commit's own rows: 10–20 % more rows/s
/// without it). When the plain insert breaks the primary key, nothing was
/// written; the batch is written again skipping conflicts, and so are the
/// next few batches of this store (`careful`), while the race lasts.
async fn write_postgres(
    pool: &PgPool,
    appends: &[&[Row]],
    careful: &Careful,
) -> Result<Vec<bool>, BatchError> {
    let mut order: Vec<(usize, &Row)> = appends
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.iter().map(move |r| (i, r)))
        .collect();
    // stable: of two appends at one key, the earlier one stays first
    order.sort_by(|(_, a), (_, b)| key(a).cmp(&key(b)));
    // two appends of one batch at the same key (two writers of one
    // process that loaded the same version): the later one conflicts
    // before anything is written, or both would look written below
    let mut conflicted = vec![false; appends.len()];
    for pair in order.windows(2) {
        if key(pair[0].1) == key(pair[1].1) {
            conflicted[pair[1].0] = true;
        }
    }
    order.retain(|(i, _)| !conflicted[*i]);
    let columns = Columns::of(&order);
    if !careful.now() {
        match insert_all(pool, &columns).await {
            Ok(()) => return Ok(conflicted),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => careful.start(),
            Err(e) => return Err(e.into()),
        }
    }
    insert_skipping_conflicts(pool, &columns, &order, &mut conflicted).await?;
    Ok(conflicted)
}

/// Rows come out of `unnest` in the order given (`WITH ORDINALITY` … `ORDER
/// BY n` says so rather than trusting the plan).
macro_rules! insert_sql {
    () => {
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT t, i, s, e, v, p::jsonb, m::jsonb
           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
                WITH ORDINALITY AS r(t, i, s, e, v, p, m, n)
          ORDER BY n"
    };
}

/// The batch's rows as the arrays the insert binds, in key order.
struct Columns<'a> {
    types: Vec<&'static str>,
    ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    versions: Vec<&'a str>,
    payloads: Vec<&'a str>,
    metadata: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(order: &[(usize, &'a Row)]) -> Self {
        let mut c = Self {
            types: Vec::with_capacity(order.len()),
            ids: Vec::with_capacity(order.len()),
            sequences: Vec::with_capacity(order.len()),
            event_types: Vec::with_capacity(order.len()),
            versions: Vec::with_capacity(order.len()),
            payloads: Vec::with_capacity(order.len()),
            metadata: Vec::with_capacity(order.len()),
        };
        for (_, r) in order {
            c.types.push(r.aggregate_type);
            c.ids.push(r.aggregate_id.as_str());
            c.sequences.push(r.sequence());
            c.event_types.push(r.event_type.as_str());
            c.versions.push(r.event_version.as_str());
            c.payloads.push(r.payload.as_str());
            c.metadata.push(r.metadata.as_str());
        }
        c
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// The insert, with `ON CONFLICT DO NOTHING` or without.
    fn insert(
        &self,
        skip_conflicts: bool,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let sql = if skip_conflicts {
            concat!(insert_sql!(), " ON CONFLICT DO NOTHING")
        } else {
            insert_sql!()
        };
        sqlx::query(sql)
            .bind(&self.types)
            .bind(&self.ids)
            .bind(&self.sequences)
            .bind(&self.event_types)
            .bind(&self.versions)
            .bind(&self.payloads)
            .bind(&self.metadata)
    }
}

/// Every row in one transaction, or (on any error, a broken key among them)
/// none.
async fn insert_all(pool: &PgPool, columns: &Columns<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    columns.insert(false).execute(&mut *tx).await?;
    tx.commit().await
}

/// The rows that do not conflict, in one transaction; marks the appends
/// that conflicted. When the insert took fewer rows than it was given, the
/// rows this transaction holds tell which appends conflicted; their other
/// rows are deleted again before the commit, so an append is all in or all
/// out.
async fn insert_skipping_conflicts(
    pool: &PgPool,
    columns: &Columns<'_>,
    order: &[(usize, &Row)],
    conflicted: &mut [bool],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = columns
        .insert(true)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // the count tells whether anything conflicted; only then is it worth
    // asking which rows went in (a `RETURNING` of every row cost both sides
    // a decode per row, for the rare batch with a conflict)
    if usize::try_from(inserted).is_ok_and(|n| n != columns.len()) {
        let inserted: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT aggregate_type, aggregate_id, sequence FROM events
              WHERE tx_id = pg_current_xact_id()",
        )
        .fetch_all(&mut *tx)
        .await?;
        let written: HashSet<(&str, &str, i64)> = inserted
            .iter()
            .map(|(t, i, s)| (t.as_str(), i.as_str(), *s))
            .collect();
        for (i, r) in order {
            if !written.contains(&key(r)) {
                conflicted[*i] = true;
            }
        }
        // take the conflicted appends' other rows out again
        let (mut t, mut a, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in order {
            if conflicted[*i] {
                t.push(r.aggregate_type);
                a.push(r.aggregate_id.as_str());
                s.push(r.sequence());
            }
        }
        sqlx::query(
            "DELETE FROM events e
              USING unnest($1::text[], $2::text[], $3::bigint[]) AS r(t, i, s)
              WHERE e.aggregate_type = r.t AND e.aggregate_id = r.i AND e.sequence = r.s
                AND e.tx_id = pg_current_xact_id()",
        )
        .bind(&t)
        .bind(&a)
        .bind(&s)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// How many of a store's next batches skip conflicts from the start: after
/// one conflicted, others likely will (a race on one aggregate between
/// processes), and a plain insert that breaks a key is a wasted write.
#[derive(Default)]
struct Careful(AtomicU32);

impl Careful {
    /// Batches written carefully after a conflict.
    const BATCHES: u32 = 16;

    /// Whether the batch about to be written skips conflicts from the
    /// start; uses up one of the careful batches.
    fn now(&self) -> bool {
        self.0
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    fn start(&self) {
        self.0.store(Self::BATCHES, Relaxed);
    }
}

/// A row's primary key in the events table.
fn key(r: &Row) -> (&'static str, &str, i64) {
    (r.aggregate_type, r.aggregate_id.as_str(), r.sequence())
}

/// SQLite: one transaction, one multi-row `INSERT` per append. A statement
/// that breaks the primary key is undone alone (SQLite's default `ABORT`
/// keeps the transaction and the statements before it), so a conflicting
/// append is left out and the others commit.
async fn write_sqlite(pool: &SqlitePool, appends: &[&[Row]]) -> Result<Vec<bool>, BatchError> {
    let mut tx = pool.begin().await?;
    let mut conflicted = Vec::with_capacity(appends.len());
    for rows in appends {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
        );
        insert.push_values(rows.iter(), |mut b, r| {
            b.push_bind(r.aggregate_type)
                .push_bind(r.aggregate_id.as_str())
                .push_bind(r.sequence())
                .push_bind(r.event_type.as_str())
                .push_bind(r.event_version.as_str())
                .push_bind(r.payload.as_str())
                .push_bind(r.metadata.as_str());
        });
        match insert.build().execute(&mut *tx).await {
            Ok(_) => conflicted.push(false),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => conflicted.push(true),
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(conflicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(in_flight: usize, pending: usize) -> Queue {
        Queue {
            pending: (0..pending)
                .map(|_| Pending {
                    rows: Vec::new(),
                    done: oneshot::channel().0,
                    deadline: Instant::now(),
                })
                .collect(),
            in_flight,
        }
    }

    #[test]
    fn more_transactions_start_only_while_a_full_group_waits() {
        let config = GroupConfig {
            max_batch: 4,
            max_in_flight: 2,
            busy_in_flight: 3,
            wait: Duration::ZERO,
        };
        assert!(
            config.starts_another(&queue(1, 1)),
            "below the ordinary count"
        );
        assert!(
            !config.starts_another(&queue(2, 3)),
            "a partial group waits"
        );
        assert!(config.starts_another(&queue(2, 4)), "a full group waits");
        assert!(!config.starts_another(&queue(3, 9)), "at the busy count");
    }

    #[test]
    fn careful_counts_down_after_a_conflict() {
        let careful = Careful::default();
        assert!(!careful.now());
        careful.start();
        let careful_batches = (0..Careful::BATCHES + 5).filter(|_| careful.now()).count();
        assert_eq!(careful_batches, Careful::BATCHES as usize);
        assert!(!careful.now());
    }
}
