//! The write path: commands and appends, each beside its baseline.
//!
//! Every measurement gets a fresh database with Tessera's schema (the same
//! table, indexes and commit trigger for Tessera and baseline alike), and
//! afterwards the events in it are counted: a figure whose events are not
//! all in the log is an error, not a result.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use postgres_es::PostgresEventRepository;
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_events::AccountEvent;
use tessera_testkit::PgDatabase;
use tessera_write_side::bus::{BusConfig, CommandBus, CommandContext, CONFLICT_BACKOFF};
use tessera_write_side::domain::account::{Account, AccountCommand};
use tessera_write_side::domain::Recorded;
use tessera_write_side::store::{postgres, Store};

use crate::measure::{closed_loop, Done, Run};

#[derive(Debug, Clone, Copy)]
pub struct WriteConfig {
    /// Concurrent senders (each with its own connection when it needs one).
    pub workers: usize,
    /// Accounts each sender cycles through on distinct aggregates.
    pub accounts_per_worker: usize,
    pub duration: Duration,
}

/// Which aggregates the commands go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Each worker cycles through accounts of its own: no two commands in
    /// flight share an aggregate.
    Distinct,
    /// Every command goes to the same account.
    Hot,
}

/// A fresh database with Tessera's schema, and a pool on it.
pub async fn database(connections: u32) -> Result<(PgDatabase, PgPool)> {
    let db = PgDatabase::create().await;
    let pool = postgres::connect(db.url(), connections).await?;
    postgres::migrate(&pool).await?;
    Ok((db, pool))
}

fn metadata_of(actor: &str) -> Value {
    json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "actor": actor,
        "correlation_id": uuid::Uuid::now_v7().to_string(),
    })
}

/// Registers `ids` with one `AccountRegistered` each, straight into the
/// table: setup, not measured.
pub async fn register(pool: &PgPool, ids: &[String]) -> Result<()> {
    for chunk in ids.chunks(5_000) {
        let payloads: Vec<Value> = chunk
            .iter()
            .map(|id| {
                serde_json::to_value(Recorded(AccountEvent::AccountRegistered {
                    email: format!("{id}@example.com"),
                    nickname: id.clone(),
                }))
            })
            .collect::<Result<_, _>>()?;
        let metadata: Vec<Value> = chunk.iter().map(|id| metadata_of(id)).collect();
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'account', id, 1, 'AccountRegistered', '1.0', payload, metadata
               FROM UNNEST($1::text[], $2::jsonb[], $3::jsonb[]) AS t(id, payload, metadata)",
        )
        .bind(chunk)
        .bind(payloads)
        .bind(metadata)
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn accounts(prefix: &str, config: &WriteConfig, target: Target) -> Arc<Vec<String>> {
    let n = match target {
        Target::Distinct => config.workers * config.accounts_per_worker,
        Target::Hot => 1,
    };
    Arc::new((0..n).map(|i| format!("{prefix}-{i}")).collect())
}

/// The account for a worker's `n`th command.
fn pick(ids: &[String], target: Target, workers: usize, worker: usize, n: u64) -> String {
    match target {
        Target::Hot => ids[0].clone(),
        Target::Distinct => {
            let per_worker = ids.len() / workers;
            let k = usize::try_from(n).unwrap_or(0) % per_worker;
            ids[worker + k * workers].clone()
        }
    }
}

fn charge(worker: usize, n: u64) -> AccountCommand {
    AccountCommand::Charge {
        amount: 1,
        idempotency_key: format!("w{worker}-{n}"),
    }
}

/// Checks the log holds exactly what the run says it appended.
async fn check_appended(pool: &PgPool, before: i64, run: &Run) -> Result<()> {
    let now: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    ensure!(
        u64::try_from(now - before)? == run.events,
        "the run counted {} events but the log grew by {}",
        run.events,
        now - before
    );
    ensure!(
        run.operations > 0,
        "nothing succeeded: {:?}",
        run.first_error
    );
    Ok(())
}

async fn measured<F, Fut>(pool: &PgPool, config: &WriteConfig, op: F) -> Result<Run>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Done, String>> + Send + 'static,
{
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let run = closed_loop(config.workers, config.duration, op).await;
    check_appended(pool, before, &run)
        .await
        .with_context(|| format!("{run:?}"))?;
    Ok(run)
}

fn pool_size(config: &WriteConfig) -> u32 {
    u32::try_from(config.workers + 2).unwrap_or(u32::MAX)
}

/// The bus needs no connection per sender (its appends share the group
/// committer's few), so its pool stays this size however many commands are
/// in flight.
const BUS_POOL: u32 = 34;

/// `config` with `per_sender` commands in flight for each of its senders
/// (as many concurrent workers), over the same number of accounts.
#[must_use]
pub fn in_flight(config: &WriteConfig, per_sender: usize) -> WriteConfig {
    let workers = config.workers * per_sender.max(1);
    WriteConfig {
        workers,
        accounts_per_worker: (config.workers * config.accounts_per_worker / workers).max(1),
        duration: config.duration,
    }
}

/// `Charge` commands through Tessera's [`CommandBus`] (cache, in-process
/// serialization per aggregate, metadata, bounded retries); the store
/// groups concurrent appends by default, as in the write API.
pub async fn tessera_commands(config: &WriteConfig, target: Target) -> Result<Run> {
    let (_db, pool) = database(pool_size(config).min(BUS_POOL)).await?;
    let ids = accounts("bus", config, target);
    register(&pool, &ids).await?;
    let bus = Arc::new(CommandBus::<Account>::new(
        Store::new(postgres::repo(pool.clone())),
        (),
        BusConfig::default(),
    ));
    let workers = config.workers;
    measured(&pool, config, move |worker, n| {
        let bus = Arc::clone(&bus);
        let id = pick(&ids, target, workers, worker, n);
        async move {
            let context = CommandContext::new(id.clone(), None);
            let done = bus
                .execute(&id, charge(worker, n), &context, |_| ())
                .await
                .map_err(|e| e.to_string())?;
            Ok(Done {
                events: done.appended as u64,
                retries: 0,
            })
        }
    })
    .await
}

/// The same commands through plain cqrs-es: `CqrsFramework::execute` over
/// postgres-es, which loads the aggregate's whole history for every
/// command, retried on an optimistic conflict with the same jittered
/// backoff the bus uses.
pub async fn cqrs_es_commands(config: &WriteConfig, target: Target) -> Result<Run> {
    const MAX_ATTEMPTS: u32 = 50;
    let (_db, pool) = database(pool_size(config)).await?;
    let ids = accounts("plain", config, target);
    register(&pool, &ids).await?;
    let store = PersistedEventStore::<_, Account>::new_event_store(PostgresEventRepository::new(
        pool.clone(),
    ));
    let cqrs = Arc::new(CqrsFramework::new(store, vec![], ()));
    let workers = config.workers;
    measured(&pool, config, move |worker, n| {
        let cqrs = Arc::clone(&cqrs);
        let id = pick(&ids, target, workers, worker, n);
        async move {
            let mut retries = 0;
            loop {
                match cqrs.execute(&id, charge(worker, n)).await {
                    Ok(()) => {
                        return Ok(Done {
                            events: 1,
                            retries: u64::from(retries),
                        })
                    }
                    Err(AggregateError::AggregateConflict) if retries + 1 < MAX_ATTEMPTS => {
                        retries += 1;
                        tokio::time::sleep(CONFLICT_BACKOFF.delay(retries)).await;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    })
    .await
}

/// What a baseline's insert of `rows` ready rows did.
fn inserted(rows: u64) -> Done {
    Done {
        events: rows,
        retries: 0,
    }
}

/// The payload and metadata of the baselines' ready-made rows.
fn ready_row() -> Result<(Value, Value)> {
    let payload = serde_json::to_value(Recorded(AccountEvent::PointsCharged {
        amount: 1,
        balance: 1,
        idempotency_key: "k".into(),
    }))?;
    Ok((payload, metadata_of("raw")))
}

/// The physical limit of appending one event per transaction: a plain
/// single-row `INSERT` of a ready-made row, autocommit, each worker on an
/// aggregate of its own.
pub async fn raw_inserts(config: &WriteConfig) -> Result<Run> {
    let (_db, pool) = database(pool_size(config)).await?;
    let (payload, metadata) = ready_row()?;
    let pool_for_run = pool.clone();
    measured(&pool, config, move |worker, n| {
        let pool = pool_for_run.clone();
        let payload = payload.clone();
        let metadata = metadata.clone();
        async move {
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 VALUES ('account', $1, $2, 'PointsCharged', '1.0', $3, $4)",
            )
            .bind(format!("raw-{worker}"))
            .bind(i64::try_from(n).unwrap_or(i64::MAX) + 1)
            .bind(payload)
            .bind(metadata)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())
            .map(|_| inserted(1))
        }
    })
    .await
}

/// The physical limit of appending in groups: transactions of `rows`
/// ready-made rows (one `INSERT ... SELECT FROM UNNEST`), each worker on an
/// aggregate of its own. DESIGN.md §9 wants the grouped command path at
/// 0.6 of it with 50.
pub async fn raw_batches(config: &WriteConfig, rows: u64) -> Result<Run> {
    let (_db, pool) = database(pool_size(config)).await?;
    let (payload, metadata) = ready_row()?;
    let pool_for_run = pool.clone();
    measured(&pool, config, move |worker, n| {
        let pool = pool_for_run.clone();
        let first = i64::try_from(n * rows).unwrap_or(i64::MAX) + 1;
        let sequences: Vec<i64> = (first..).take(usize::try_from(rows).unwrap_or(1)).collect();
        let (payload, metadata) = (payload.clone(), metadata.clone());
        async move {
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 SELECT 'account', $1, s, 'PointsCharged', '1.0', $2, $3 FROM UNNEST($4::bigint[]) AS s",
            )
            .bind(format!("raw-{worker}"))
            .bind(payload)
            .bind(metadata)
            .bind(sequences)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())
            .map(|_| inserted(rows))
        }
    })
    .await
}

/// One sender's rows, ready to bind: aggregate ids, payloads, metadata.
struct ReadyRows {
    ids: Vec<String>,
    payloads: Vec<String>,
    metadata: Vec<String>,
}

/// The same limit with rows like the ones the bus writes: in each
/// transaction, `rows` events of as many aggregates (the sender's own),
/// each with its own payload and metadata, bound as JSON text (as the group
/// commit binds them) rather than one value bound once for all rows.
/// PostgreSQL parses and indexes every row here, as it does for real
/// events and for pgbench's literal rows.
pub async fn raw_distinct_batches(config: &WriteConfig, rows: u64) -> Result<Run> {
    let (_db, pool) = database(pool_size(config)).await?;
    let per_worker: Vec<Arc<ReadyRows>> = (0..config.workers)
        .map(|worker| {
            let mut ids = Vec::new();
            let mut payloads = Vec::new();
            let mut metadata = Vec::new();
            for i in 0..rows {
                ids.push(format!("raw-{worker}-{i}"));
                payloads.push(
                    serde_json::to_string(&Recorded(AccountEvent::PointsCharged {
                        amount: 1,
                        balance: 1,
                        idempotency_key: format!("w{worker}-{i}"),
                    }))
                    .expect("a charge serializes"),
                );
                metadata.push(
                    serde_json::to_string(&metadata_of(&format!("raw-{worker}")))
                        .expect("metadata serializes"),
                );
            }
            Arc::new(ReadyRows {
                ids,
                payloads,
                metadata,
            })
        })
        .collect();
    let pool_for_run = pool.clone();
    measured(&pool, config, move |worker, n| {
        let pool = pool_for_run.clone();
        let ready = Arc::clone(&per_worker[worker]);
        let sequence = i64::try_from(n).unwrap_or(i64::MAX) + 1;
        async move {
            let ReadyRows {
                ids,
                payloads,
                metadata,
            } = &*ready;
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 SELECT 'account', i, $1, 'PointsCharged', '1.0', p::jsonb, m::jsonb
                   FROM UNNEST($2::text[], $3::text[], $4::text[]) AS r(i, p, m)",
            )
            .bind(sequence)
            .bind(ids)
            .bind(payloads)
            .bind(metadata)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())
            .map(|_| inserted(rows))
        }
    })
    .await
}

/// Appends through Tessera's event store alone (serialization, per-event
/// metadata and ids, the optimistic check of postgres-es), no aggregate.
pub async fn store_appends(config: &WriteConfig) -> Result<Run> {
    let (_db, pool) = database(pool_size(config)).await?;
    let store = Store::new(postgres::repo(pool.clone()));
    measured(&pool, config, move |worker, n| {
        let store = store.clone();
        async move {
            let sequence = usize::try_from(n).unwrap_or(usize::MAX);
            let event = Recorded(AccountEvent::PointsCharged {
                amount: 1,
                balance: i64::try_from(n).unwrap_or(0) + 1,
                idempotency_key: format!("k{n}"),
            });
            let context = EventStoreAggregateContext {
                aggregate_id: format!("store-{worker}"),
                aggregate: Account::default(),
                current_sequence: sequence,
                current_snapshot: None,
            };
            let metadata = HashMap::from([("actor".to_owned(), format!("store-{worker}"))]);
            let committed = EventStore::<Account>::commit(&store, vec![event], context, metadata)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Done {
                events: committed.len() as u64,
                retries: 0,
            })
        }
    })
    .await
}
