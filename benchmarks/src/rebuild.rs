//! Rebuilding the `accounts` projection from a log of account events,
//! beside cqrs-es `QueryReplay` over the same log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{ensure, Result};
use async_trait::async_trait;
use cqrs_es::persist::{GenericQuery, QueryReplay};
use cqrs_es::{EventEnvelope, Query, View};
use postgres_es::{PostgresEventRepository, PostgresViewRepository};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tessera_documents::store::embedded::EmbeddedStore;
use tessera_documents::store::DocumentStore;
use tessera_events::AccountEvent;
use tessera_projector::projection::{self, Projection};
use tessera_projector::rebuild::{rebuild, Quiet, RebuildConfig};
use tessera_write_side::domain::account::Account;
use tessera_write_side::store::postgres::PgEventLog;

/// Events per account in the generated log.
pub const EVENTS_PER_ACCOUNT: usize = 50;

/// A generated log: each account registered, then charged 10 points at a
/// time, the accounts' events interleaved as concurrent users make them.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub accounts: usize,
    pub events: u64,
}

impl Log {
    /// What every account's balance is once all its events are folded.
    pub fn balance(&self) -> i64 {
        10 * (EVENTS_PER_ACCOUNT as i64 - 1)
    }
}

/// Writes about `events` account events (rounded up to whole accounts).
pub async fn generate(pool: &PgPool, events: u64) -> Result<Log> {
    let accounts = usize::try_from(events)?.div_ceil(EVENTS_PER_ACCOUNT).max(1);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'account', 'acc-' || a, s,
                CASE WHEN s = 1 THEN 'AccountRegistered' ELSE 'PointsCharged' END,
                '1.0',
                CASE WHEN s = 1
                     THEN jsonb_build_object('type', 'AccountRegistered', 'email', 'user' || a || '@example.com', 'nickname', 'user ' || a)
                     ELSE jsonb_build_object('type', 'PointsCharged', 'amount', 10, 'balance', 10 * (s - 1), 'idempotency_key', 'k' || s)
                END,
                jsonb_build_object('event_id', gen_random_uuid()::text, 'occurred_at', '2026-01-01T00:00:00Z',
                                   'actor', 'acc-' || a, 'correlation_id', gen_random_uuid()::text)
           FROM generate_series(1, $1) s, generate_series(1, $2) a
          ORDER BY s, a",
    )
    .bind(i32::try_from(EVENTS_PER_ACCOUNT)?)
    .bind(i32::try_from(accounts)?)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE events").execute(pool).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(Log {
        accounts,
        events: u64::try_from(events)?,
    })
}

/// How one fold of the log went.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

impl Replayed {
    fn new(events: u64, started: Instant) -> Self {
        let seconds = started.elapsed().as_secs_f64();
        Self {
            events,
            seconds,
            events_per_second: events as f64 / seconds,
        }
    }
}

/// `admin rebuild accounts`: Tessera's rebuild (commit-ordered reads,
/// batched folds, conditional writes, the route switch) into the embedded
/// document store in `dir`. Checks every document afterwards.
pub async fn tessera(pool: &PgPool, log: Log, dir: &Path) -> Result<Replayed> {
    let docs = Arc::new(EmbeddedStore::open(&dir.join("documents.db")).await?);
    let events = Arc::new(PgEventLog::new(pool.clone()));
    let accounts: Arc<dyn Projection> = projection::all()
        .into_iter()
        .find(|p| p.name() == "accounts")
        .ok_or_else(|| anyhow::anyhow!("no accounts projection"))?;
    let started = Instant::now();
    let report = rebuild(
        accounts,
        Arc::clone(&docs) as Arc<dyn DocumentStore>,
        events,
        &RebuildConfig::default(),
        &Quiet,
    )
    .await?;
    let replayed = Replayed::new(report.events, started);
    ensure!(report.dead_lettered == 0, "{report:?}");
    let ids: Vec<String> = (1..=log.accounts).map(|a| format!("acc-{a}")).collect();
    let mut balances = HashMap::new();
    for chunk in ids.chunks(1_000) {
        for doc in docs.get_many(&report.to, chunk).await? {
            balances.insert(doc.id, doc.body["balance"].as_i64());
        }
    }
    check(log, &balances)?;
    Ok(replayed)
}

/// The view cqrs-es folds: what the `accounts` document holds of points.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AccountView {
    pub nickname: String,
    pub balance: i64,
    pub version: usize,
}

impl View<Account> for AccountView {
    fn update(&mut self, event: &EventEnvelope<Account>) {
        self.version = event.sequence;
        match &event.payload.0 {
            AccountEvent::AccountRegistered { nickname, .. }
            | AccountEvent::ProfileUpdated { nickname, .. } => {
                nickname.clone_into(&mut self.nickname)
            }
            AccountEvent::PointsCharged { balance, .. }
            | AccountEvent::PointsUsed { balance, .. }
            | AccountEvent::PointsRefunded { balance, .. } => self.balance = *balance,
            AccountEvent::NotificationsRead { .. } => {}
        }
    }
}

fn errors_counted() -> (Arc<AtomicU64>, Box<cqrs_es::persist::QueryErrorHandler>) {
    let errors = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&errors);
    (
        errors,
        Box::new(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        }),
    )
}

/// The baseline: `QueryReplay` of every account event into a
/// `GenericQuery` over a `PostgresViewRepository`, cqrs-es's way of
/// keeping a view, in a table of the same database.
pub async fn query_replay(pool: &PgPool, log: Log) -> Result<Replayed> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS account_view (view_id text PRIMARY KEY, version bigint NOT NULL, payload json NOT NULL)",
    )
    .execute(pool)
    .await?;
    let views = Arc::new(PostgresViewRepository::<AccountView, Account>::new(
        "account_view",
        pool.clone(),
    ));
    let mut query = GenericQuery::new(views);
    let (query_errors, handler) = errors_counted();
    query.use_error_handler(handler);
    let counter = Counted::new(query);
    let dispatched = Arc::clone(&counter.events);
    let mut replay = QueryReplay::new(PostgresEventRepository::new(pool.clone()), counter);
    let (read_errors, handler) = errors_counted();
    replay.use_error_handler(handler);
    let started = Instant::now();
    replay.replay_all().await?;
    let replayed = Replayed::new(dispatched.load(Ordering::Relaxed), started);
    ensure!(
        query_errors.load(Ordering::Relaxed) == 0 && read_errors.load(Ordering::Relaxed) == 0,
        "the replay reported errors"
    );
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT view_id, (payload->>'balance')::bigint FROM account_view")
            .fetch_all(pool)
            .await?;
    check(log, &rows.into_iter().collect())?;
    Ok(replayed)
}

/// The read-and-decode ceiling: `QueryReplay` into a view kept in memory.
pub async fn query_replay_in_memory(pool: &PgPool, log: Log) -> Result<Replayed> {
    let memory = InMemory::default();
    let views = Arc::clone(&memory.views);
    let counter = Counted::new(memory);
    let dispatched = Arc::clone(&counter.events);
    let replay = QueryReplay::new(PostgresEventRepository::new(pool.clone()), counter);
    let started = Instant::now();
    replay.replay_all().await?;
    let replayed = Replayed::new(dispatched.load(Ordering::Relaxed), started);
    let balances = views
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(id, v)| (id.clone(), Some(v.balance)))
        .collect();
    check(log, &balances)?;
    Ok(replayed)
}

/// Every account of the log folded to its final balance, no more, no less.
fn check(log: Log, balances: &HashMap<String, Option<i64>>) -> Result<()> {
    ensure!(
        balances.len() == log.accounts,
        "{} documents for {} accounts",
        balances.len(),
        log.accounts
    );
    let wrong = balances
        .iter()
        .filter(|(_, b)| **b != Some(log.balance()))
        .count();
    ensure!(
        wrong == 0,
        "{wrong} accounts do not hold their balance {}",
        log.balance()
    );
    Ok(())
}

/// Counts the events a query was handed.
struct Counted<Q> {
    inner: Q,
    events: Arc<AtomicU64>,
}

impl<Q> Counted<Q> {
    fn new(inner: Q) -> Self {
        Self {
            inner,
            events: Arc::default(),
        }
    }
}

#[async_trait]
impl<Q: Query<Account>> Query<Account> for Counted<Q> {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<Account>]) {
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.inner.dispatch(aggregate_id, events).await;
    }
}

#[derive(Default)]
struct InMemory {
    views: Arc<Mutex<HashMap<String, AccountView>>>,
}

#[async_trait]
impl Query<Account> for InMemory {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<Account>]) {
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        let view = views.entry(aggregate_id.to_owned()).or_default();
        for event in events {
            view.update(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_names_missing_and_wrong_balances() {
        let log = Log {
            accounts: 2,
            events: 100,
        };
        let good = Some(log.balance());
        let ok = HashMap::from([("a".into(), good), ("b".into(), good)]);
        assert!(check(log, &ok).is_ok());
        let missing = HashMap::from([("a".into(), good)]);
        assert!(check(log, &missing).is_err());
        let wrong = HashMap::from([("a".into(), good), ("b".into(), Some(1))]);
        assert!(check(log, &wrong).is_err());
    }
}
