//! Group commit and hot-aggregate batching (DESIGN.md §9) on the real
//! stores: commands on different aggregates share transactions, commands on
//! one aggregate share appends, and a conflicting append fails alone.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use sqlx::PgPool;
use tessera_testkit::PgDatabase;
use tessera_write_side::bus::{BusConfig, CommandBus, CommandError};
use tessera_write_side::domain::account::{Account, AccountCommand, AccountError};
use tessera_write_side::store::group::{AppendError, GroupCommit, GroupConfig, Row, Target};
use tessera_write_side::store::{postgres, sqlite, Store};
use tokio::sync::watch;

mod support;

use support::{ctx, pg_store, register};

fn charge(key: String) -> AccountCommand {
    AccountCommand::Charge {
        amount: 1,
        idempotency_key: key,
    }
}

/// Per aggregate: its sequences from the log, in position order, and the
/// transactions the events went in with.
async fn log_of(pool: &PgPool) -> Vec<(String, i64, String)> {
    sqlx::query_as(
        "SELECT aggregate_id, sequence, tx_id::text FROM events ORDER BY aggregate_id, global_position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn assert_gapless(log: &[(String, i64, String)]) {
    let mut at: Option<(&str, i64)> = None;
    for (id, seq, _) in log {
        let expected = match at {
            Some((prev, s)) if prev == id => s + 1,
            _ => 1,
        };
        assert_eq!(*seq, expected, "{id}: sequences in position order, gapless");
        at = Some((id, *seq));
    }
}

/// 64 accounts charged 20 times each, all at once: every charge is
/// answered and in the log once, each account's events are gapless and in
/// position order, and the charges went in far fewer transactions than
/// there were charges (one per command before).
#[tokio::test]
async fn commands_on_distinct_aggregates_share_transactions() {
    let db = PgDatabase::create().await;
    let (store, pool) = pg_store(&db).await;
    let bus = Arc::new(CommandBus::<Account>::new(store, (), BusConfig::default()));
    let ids: Vec<String> = (0..64).map(|i| format!("acc{i:02}")).collect();
    join_all(ids.iter().map(|id| register(&bus, id))).await;

    let charges = ids.iter().flat_map(|id| {
        (0..20).map(|n| {
            let bus = Arc::clone(&bus);
            let id = id.clone();
            async move {
                bus.execute(&id, charge(format!("k{n}")), &ctx(&id), Account::balance)
                    .await
            }
        })
    });
    let results = join_all(charges).await;
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");

    let log = log_of(&pool).await;
    assert_eq!(log.len(), 64 * 21);
    assert_gapless(&log);
    let charge_txs: std::collections::HashSet<&str> = log
        .iter()
        .filter(|(_, seq, _)| *seq > 1)
        .map(|(_, _, tx)| tx.as_str())
        .collect();
    assert!(
        charge_txs.len() * 4 <= 64 * 20,
        "1,280 charges went in {} transactions: not grouped",
        charge_txs.len()
    );
    for id in &ids {
        assert_eq!(bus.read(id, Account::balance).await.unwrap(), 20);
    }
}

/// One account charged 300 times at once: all answered, decided one after
/// another in batches (far fewer appends than commands), the balance is
/// exact.
#[tokio::test]
async fn commands_on_one_hot_aggregate_are_appended_in_batches() {
    let db = PgDatabase::create().await;
    let (store, pool) = pg_store(&db).await;
    let bus = Arc::new(CommandBus::<Account>::new(store, (), BusConfig::default()));
    register(&bus, "hot").await;
    let results = join_all((0..300).map(|n| {
        let bus = Arc::clone(&bus);
        async move {
            bus.execute(
                "hot",
                charge(format!("k{n}")),
                &ctx("hot"),
                Account::balance,
            )
            .await
        }
    }))
    .await;
    let mut versions: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap().version)
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=301).collect::<Vec<u64>>(),
        "each command its own version"
    );
    // the output is read right after each command, not after its batch
    for r in &results {
        let done = r.as_ref().unwrap();
        assert_eq!(done.output, i64::try_from(done.version).unwrap() - 1);
    }
    let log = log_of(&pool).await;
    assert_eq!(log.len(), 301);
    assert_gapless(&log);
    let txs: std::collections::HashSet<&str> = log.iter().map(|(_, _, tx)| tx.as_str()).collect();
    assert!(
        txs.len() * 4 <= 300,
        "300 charges in {} appends: not batched",
        txs.len()
    );
}

/// 100 points, 50 spends of 10 at once: exactly 10 go through, 40 are
/// refused without writing anything, and a repeat of a spent reference is
/// answered without a second spend.
#[tokio::test]
async fn rejections_in_a_batch_write_nothing_and_do_not_disturb_their_neighbours() {
    let db = PgDatabase::create().await;
    let (store, pool) = pg_store(&db).await;
    let bus = Arc::new(CommandBus::<Account>::new(store, (), BusConfig::default()));
    register(&bus, "a").await;
    bus.execute(
        "a",
        AccountCommand::Charge {
            amount: 100,
            idempotency_key: "seed".into(),
        },
        &ctx("a"),
        |_| (),
    )
    .await
    .unwrap();
    let spends = join_all((0..50).map(|n| {
        let bus = Arc::clone(&bus);
        async move {
            bus.execute(
                "a",
                AccountCommand::Use {
                    amount: 10,
                    reference: format!("r{n}"),
                },
                &ctx("a"),
                |_| (),
            )
            .await
        }
    }))
    .await;
    let accepted = spends.iter().filter(|r| r.is_ok()).count();
    let refused = spends
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(CommandError::Rejected(
                    AccountError::InsufficientPoints { .. }
                ))
            )
        })
        .count();
    assert_eq!((accepted, refused), (10, 40));
    let (used,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE event_type = 'PointsUsed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(used, 10);
    assert_eq!(bus.read("a", Account::balance).await.unwrap(), 0);
}

/// A second write-side instance appended to an aggregate behind this
/// instance's back: a command decided on the cached state conflicts,
/// is decided again on the fresh state and refused correctly; a refusal
/// decided on the stale cache is checked against the store before it is
/// answered.
#[tokio::test]
async fn another_instances_appends_are_seen_before_answering() {
    let db = PgDatabase::create().await;
    let (store_a, _pool) = pg_store(&db).await;
    let store_b = Store::new(postgres::repo(db.pool(4).await));
    let a = CommandBus::<Account>::new(store_a, (), BusConfig::default());
    let b = CommandBus::<Account>::new(store_b, (), BusConfig::default());
    register(&a, "x").await;
    // a caches the account at 0 points; b charges 50
    assert_eq!(a.read("x", Account::balance).await.unwrap(), 0);
    b.execute(
        "x",
        AccountCommand::Charge {
            amount: 50,
            idempotency_key: "b".into(),
        },
        &ctx("x"),
        |_| (),
    )
    .await
    .unwrap();
    // a's cache says 0: spending 30 would be refused on it, but must not be
    let spent = a
        .execute(
            "x",
            AccountCommand::Use {
                amount: 30,
                reference: "r1".into(),
            },
            &ctx("x"),
            Account::balance,
        )
        .await
        .expect("decided on the current state");
    assert_eq!((spent.version, spent.output), (3, 20));
    // b's cache says 50: spending 40 there must be refused (20 left)
    let refused = b
        .execute(
            "x",
            AccountCommand::Use {
                amount: 40,
                reference: "r2".into(),
            },
            &ctx("x"),
            |_| (),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            CommandError::Rejected(AccountError::InsufficientPoints { balance: 20, .. })
        ),
        "{refused:?}"
    );
}

fn row(id: &str, sequence: usize) -> Row {
    Row {
        aggregate_type: "test",
        aggregate_id: id.to_owned(),
        sequence,
        event_type: "Happened".to_owned(),
        event_version: "1.0".to_owned(),
        payload: json!({"n": sequence}).to_string(),
        metadata: "{}".to_owned(),
    }
}

/// A group committer with one flusher: what is queued while it is busy
/// (or before its task first runs) forms one group.
fn one_flusher(target: Target) -> GroupCommit {
    GroupCommit::new(
        target,
        GroupConfig {
            max_batch: 16,
            max_in_flight: 1,
            busy_in_flight: 1,
            wait: Duration::ZERO,
        },
        Duration::from_secs(5),
        watch::Sender::new(0),
    )
}

/// Two appends in one group, one of which conflicts on its first row but
/// not its second: the conflicting one is left out whole (its second row
/// is not half there), the other commits.
async fn a_conflicting_append_fails_alone(target: Target, rows_of: impl AsyncFn(&str) -> Vec<i64>) {
    let group = one_flusher(target);
    // another writer got "x" 1 first
    group.append(vec![row("x", 1)]).await.unwrap();
    // both appends are queued before the flusher task runs (one thread)
    let (x, y) = tokio::join!(
        group.append(vec![row("x", 1), row("x", 2)]),
        group.append(vec![row("y", 1), row("y", 2)]),
    );
    assert!(matches!(x, Err(AppendError::Conflict)), "{x:?}");
    assert!(y.is_ok(), "{y:?}");
    assert_eq!(
        rows_of("x").await,
        vec![1],
        "nothing of the conflicting append"
    );
    assert_eq!(rows_of("y").await, vec![1, 2]);
}

/// Two appends at the same key in one group (two writers of one process
/// that loaded the same version): the first commits, the second conflicts;
/// neither is told "written" for the other's row.
async fn two_appends_at_one_key_in_one_group(
    target: Target,
    rows_of: impl AsyncFn(&str) -> Vec<i64>,
) {
    let group = one_flusher(target);
    let (first, second, other) = tokio::join!(
        group.append(vec![row("z", 1), row("z", 2)]),
        group.append(vec![row("z", 1)]),
        group.append(vec![row("w", 1)]),
    );
    assert!(first.is_ok(), "{first:?}");
    assert!(matches!(second, Err(AppendError::Conflict)), "{second:?}");
    assert!(other.is_ok(), "{other:?}");
    assert_eq!(rows_of("z").await, vec![1, 2]);
    assert_eq!(rows_of("w").await, vec![1]);
}

#[tokio::test]
async fn a_conflicting_append_fails_alone_on_postgres() {
    let db = PgDatabase::create().await;
    let (_, pool) = pg_store(&db).await;
    let rows_of = async |id: &str| -> Vec<i64> {
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    a_conflicting_append_fails_alone(Target::Postgres(pool.clone()), &rows_of).await;
    two_appends_at_one_key_in_one_group(Target::Postgres(pool.clone()), &rows_of).await;
}

/// After a conflict the committer writes carefully (skipping conflicts)
/// for a while, then plainly again: in every round, through both ways of
/// writing, the conflicting append is refused whole and its neighbour
/// commits.
#[tokio::test]
async fn conflicts_are_told_apart_in_both_ways_of_writing_on_postgres() {
    let db = PgDatabase::create().await;
    let (_, pool) = pg_store(&db).await;
    let group = one_flusher(Target::Postgres(pool.clone()));
    group.append(vec![row("taken", 1)]).await.unwrap();
    for round in 1..=3 {
        let fresh = format!("fresh-{round}");
        let (taken, free) = tokio::join!(
            group.append(vec![row("taken", 1), row("taken", 2)]),
            group.append(vec![row(&fresh, 1), row(&fresh, 2)]),
        );
        assert!(
            matches!(taken, Err(AppendError::Conflict)),
            "round {round}: {taken:?}"
        );
        assert!(free.is_ok(), "round {round}: {free:?}");
        // more plain groups than the careful ones after a conflict, so the
        // next round's conflict meets a plain insert again
        for sequence in 3..40 {
            group.append(vec![row(&fresh, sequence)]).await.unwrap();
        }
    }
    let mut rows = std::collections::BTreeMap::<String, i64>::new();
    for (id, _, _) in log_of(&pool).await {
        *rows.entry(id).or_default() += 1;
    }
    assert_eq!(rows.len(), 4);
    for (id, n) in rows {
        assert_eq!(n, if id == "taken" { 1 } else { 39 }, "{id}");
    }
}

#[tokio::test]
async fn a_conflicting_append_fails_alone_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite::open(&dir.path().join("events.db"), 4)
        .await
        .unwrap();
    sqlite::migrate(&pool).await.unwrap();
    let rows_of = async |id: &str| -> Vec<i64> {
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = ?1 ORDER BY sequence")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    a_conflicting_append_fails_alone(Target::Sqlite(pool.clone()), &rows_of).await;
    two_appends_at_one_key_in_one_group(Target::Sqlite(pool.clone()), &rows_of).await;
}

/// The store timeout counts from each append: an append queued behind a
/// batch that hangs (the events table locked, as by a paused server) is
/// answered "unavailable" within its own timeout, not after the hanging
/// batch's timeout and then its own; nothing of either is written.
#[tokio::test]
async fn an_append_queued_behind_a_hanging_batch_is_answered_within_its_own_timeout() {
    let db = PgDatabase::create().await;
    let (_, pool) = pg_store(&db).await;
    let timeout = Duration::from_millis(1500);
    let group = one_flusher(Target::Postgres(pool.clone())).with_timeout(timeout);
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let first = tokio::spawn({
        let group = group.clone();
        async move { group.append(vec![row("first", 1)]).await }
    });
    // the first batch is in its write, waiting on the lock
    tokio::time::sleep(Duration::from_millis(700)).await;
    let queued = std::time::Instant::now();
    let second = group.append(vec![row("second", 1)]).await;
    let took = queued.elapsed();
    assert!(
        matches!(second, Err(AppendError::Unavailable(_))),
        "{second:?}"
    );
    assert!(
        took < timeout + Duration::from_millis(500),
        "answered {took:?} after it was queued, for a {timeout:?} timeout (the hanging batch's \
         timeout and its own would be {:?})",
        timeout * 2 - Duration::from_millis(700)
    );
    let first = first.await.unwrap();
    assert!(
        matches!(first, Err(AppendError::Unavailable(_))),
        "{first:?}"
    );
    lock.rollback().await.unwrap();
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written, 0, "a timed-out append is not written");
}

/// The embedded store: 32 accounts × 10 charges at once all land, gapless.
#[tokio::test]
async fn the_embedded_store_groups_too() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite::open(&dir.path().join("events.db"), 8)
        .await
        .unwrap();
    sqlite::migrate(&pool).await.unwrap();
    let bus = Arc::new(CommandBus::<Account>::new(
        Store::new(sqlite::repo(pool.clone())),
        (),
        BusConfig::default(),
    ));
    let ids: Vec<String> = (0..32).map(|i| format!("acc{i:02}")).collect();
    join_all(ids.iter().map(|id| register(&bus, id))).await;
    let results = join_all(ids.iter().flat_map(|id| {
        (0..10).map(|n| {
            let bus = Arc::clone(&bus);
            let id = id.clone();
            async move {
                bus.execute(&id, charge(format!("k{n}")), &ctx(&id), |_| ())
                    .await
            }
        })
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    let log: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, '' FROM events ORDER BY aggregate_id, global_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(log.len(), 32 * 11);
    assert_gapless(&log);
}
