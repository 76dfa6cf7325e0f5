//! The event store, command bus, credentials and commit-ordered log on a
//! real PostgreSQL (a fresh database per test).

use std::sync::Arc;
use std::time::Duration;

use cqrs_es::EventStore;
use futures::future::join_all;
use tessera_events::{EventLog, LogPosition};
use tessera_testkit::PgDatabase;
use tessera_write_side::bus::{BusConfig, CommandBus, CommandError};
use tessera_write_side::domain::account::{Account, AccountCommand, AccountError};
use tessera_write_side::store::credentials::{CredentialError, CredentialStore, PgCredentials};
use tessera_write_side::store::postgres::{self, PgEventLog};
use tessera_write_side::store::Store;

mod support;

use support::{ctx, pg_store as store, register};

#[tokio::test]
async fn committed_events_carry_metadata_and_the_columns_postgres_fills() {
    let db = PgDatabase::create().await;
    let (store, pool) = store(&db).await;
    let bus = CommandBus::<Account>::new(store.clone(), (), BusConfig::default());
    register(&bus, "a1").await;
    let done = bus
        .execute(
            "a1",
            AccountCommand::Charge {
                amount: 70,
                idempotency_key: "k".into(),
            },
            &ctx("a1"),
            Account::balance,
        )
        .await
        .unwrap();
    assert_eq!((done.version, done.appended, done.output), (2, 1, 70));

    let events = EventStore::<Account>::load_events(&store, "a1")
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let ids: Vec<_> = events
        .iter()
        .map(|e| e.metadata["event_id"].clone())
        .collect();
    assert_ne!(ids[0], ids[1], "each event has its own id");
    assert!(ids
        .iter()
        .all(|id| uuid::Uuid::parse_str(id).unwrap().get_version_num() == 7));
    assert_eq!(events[1].metadata["actor"], "a1");
    assert_eq!(events[1].metadata["request_id"], "req-a1");

    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT global_position, tx_id::text FROM events ORDER BY global_position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].0 < rows[1].0);
    assert_ne!(rows[0].1, rows[1].1, "two commands, two transactions");
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let db = PgDatabase::create().await;
    let (store, pool) = store(&db).await;
    let bus = CommandBus::<Account>::new(store, (), BusConfig::default());
    register(&bus, "a1").await;
    let e = bus
        .execute(
            "a1",
            AccountCommand::Use {
                amount: 5,
                reference: "r".into(),
            },
            &ctx("a1"),
            |_| (),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        CommandError::Rejected(AccountError::InsufficientPoints { .. })
    ));
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Two write-side instances (two buses, two pools) charge one account 200
/// times concurrently: optimistic conflicts are retried, nothing is lost and
/// the sequence has no gap.
#[tokio::test]
async fn two_instances_racing_on_one_aggregate_lose_nothing() {
    let db = PgDatabase::create().await;
    let (store_a, pool) = store(&db).await;
    let store_b = Store::new(postgres::repo(db.pool(8).await));
    let config = BusConfig {
        max_attempts: 50,
        ..BusConfig::default()
    };
    let a = Arc::new(CommandBus::<Account>::new(store_a, (), config));
    let b = Arc::new(CommandBus::<Account>::new(store_b, (), config));
    register(&a, "hot").await;
    let charges = (0..200).map(|i| {
        let bus = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        async move {
            bus.execute(
                "hot",
                AccountCommand::Charge {
                    amount: 1,
                    idempotency_key: format!("k{i}"),
                },
                &ctx("hot"),
                |_| (),
            )
            .await
        }
    });
    let results = join_all(charges).await;
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} charges failed: {failed:?}",
        failed.len()
    );
    let balance = a.read("hot", Account::balance).await.unwrap();
    assert_eq!(balance, 200);
    let seqs: Vec<(i64,)> =
        sqlx::query_as("SELECT sequence FROM events WHERE aggregate_id = 'hot' ORDER BY sequence")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(seqs.len(), 201);
    assert!(seqs.iter().enumerate().all(|(i, (s,))| *s == i as i64 + 1));
}

#[tokio::test]
async fn the_same_email_registered_concurrently_is_taken_once() {
    let db = PgDatabase::create().await;
    let (_, pool) = store(&db).await;
    let creds = Arc::new(PgCredentials::new(pool));
    let attempts = (0..20).map(|i| {
        let creds = Arc::clone(&creds);
        async move {
            let r = creds
                .reserve("same@example.com", &format!("acc-{i}"), "hash")
                .await?;
            // hold it a little, as a registration does while its event commits
            tokio::time::sleep(Duration::from_millis(5)).await;
            r.confirm().await
        }
    });
    let results = join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(CredentialError::EmailTaken)))
        .count();
    assert_eq!((ok, taken), (1, 19));
}

#[tokio::test]
async fn a_released_reservation_leaves_the_email_free() {
    let db = PgDatabase::create().await;
    let (_, pool) = store(&db).await;
    let creds = PgCredentials::new(pool);
    creds
        .reserve("x@example.com", "a", "h")
        .await
        .unwrap()
        .release()
        .await;
    assert_eq!(creds.find("x@example.com").await.unwrap(), None);
    creds
        .reserve("x@example.com", "b", "h")
        .await
        .unwrap()
        .confirm()
        .await
        .unwrap();
    assert_eq!(
        creds
            .find("x@example.com")
            .await
            .unwrap()
            .unwrap()
            .account_id,
        "b"
    );
}

async fn insert_raw(conn: &mut sqlx::PgConnection, aggregate_id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('account', $1, 1, 'AccountRegistered', '1.0', $2, '{}')",
    )
    .bind(aggregate_id)
    .bind(serde_json::json!({"type": "AccountRegistered", "email": "e", "nickname": "n"}))
    .execute(conn)
    .await
    .unwrap();
}

/// The trap of a position-only tail: transaction T1 inserts first (lower
/// position) but commits after T2. The log must hold T2 back while T1 is
/// open, and then return both, T1's row first; a "position > last" tail
/// would have returned T2's row and then skipped T1's forever.
#[tokio::test]
async fn the_log_never_skips_a_transaction_that_commits_late() {
    let db = PgDatabase::create().await;
    let (_, pool) = store(&db).await;
    let log = PgEventLog::new(pool.clone());

    let mut t1 = pool.begin().await.unwrap();
    insert_raw(&mut t1, "early-insert-late-commit").await;
    let mut t2 = pool.begin().await.unwrap();
    insert_raw(&mut t2, "late-insert-early-commit").await;
    t2.commit().await.unwrap();

    let (position_of_t2,): (i64,) = sqlx::query_as("SELECT global_position FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        position_of_t2, 2,
        "T1 took position 1 but is not visible yet"
    );
    assert!(
        log.read_after(LogPosition::START, 100)
            .await
            .unwrap()
            .is_empty(),
        "T2 must wait while T1, which started earlier, is still open"
    );

    t1.commit().await.unwrap();
    // xids are cluster-wide: other tests' open transactions may hold the
    // rows back a little longer, never forever
    tessera_testkit::wait_until(Duration::from_secs(10), "both rows are released", || {
        let log = log.clone();
        async move { log.read_after(LogPosition::START, 100).await.unwrap().len() == 2 }
    })
    .await;
    let records = log.read_after(LogPosition::START, 100).await.unwrap();
    let order: Vec<_> = records
        .iter()
        .map(|r| r.envelope.aggregate_id.as_str())
        .collect();
    assert_eq!(
        order,
        ["early-insert-late-commit", "late-insert-early-commit"]
    );
    assert!(log.read_after(records[1].at, 100).await.unwrap().is_empty());
    assert_eq!(log.head().await.unwrap(), records[1].at);
}

/// The relay and every rebuild read the log this way, batch after batch:
/// the order must come off the `(tx_id, global_position)` index. Sorting
/// instead costs a scan of the rest of the log per batch (it did, when the
/// `ORDER BY` named the text-cast output column).
#[tokio::test]
async fn reading_in_commit_order_walks_the_index_without_sorting() {
    let db = PgDatabase::create().await;
    let (_, pool) = store(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    // with sorting priced out, a plan that can avoid it will
    sqlx::query("SET enable_sort = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        PgEventLog::read_after_sql()
            .replace("$1", "'0'")
            .replace("$2", "0")
            .replace("$3", "5000")
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(!plan.contains("Sort"), "{plan}");
    assert!(plan.contains("events_commit_order"), "{plan}");
}

#[tokio::test]
async fn reading_after_a_checkpoint_resumes_exactly_there() {
    let db = PgDatabase::create().await;
    let (store, pool) = store(&db).await;
    let bus = CommandBus::<Account>::new(store, (), BusConfig::default());
    for i in 0..5 {
        register(&bus, &format!("acc{i}")).await;
    }
    let log = PgEventLog::new(pool);
    // rows become readable once every older transaction on the cluster has
    // ended; tests running in parallel hold some open for a moment
    let deadline = tessera_testkit::Deadline::new(Duration::from_secs(30), "all five readable");
    while log.read_after(LogPosition::START, 100).await.unwrap().len() < 5 {
        deadline.tick().await;
    }
    let first = log.read_after(LogPosition::START, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = log.read_after(first[1].at, 100).await.unwrap();
    assert_eq!(rest.len(), 3);
    let all: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|r| r.envelope.aggregate_id.clone())
        .collect();
    assert_eq!(all, ["acc0", "acc1", "acc2", "acc3", "acc4"]);
    assert!(rest
        .iter()
        .all(|r| r.envelope.event_type == "AccountRegistered"));
}

#[tokio::test]
async fn an_id_with_a_nul_is_an_aggregate_without_events_not_a_failure() {
    let db = PgDatabase::create().await;
    let (store, _pool) = store(&db).await;
    let events = EventStore::<Account>::load_events(&store, "a\0b")
        .await
        .unwrap();
    assert!(events.is_empty());
    // a command on it meets an unknown account, as for any other unknown id
    let bus = CommandBus::<Account>::new(store, (), BusConfig::default());
    let refused = bus
        .execute(
            "a\0b",
            AccountCommand::Charge {
                amount: 1,
                idempotency_key: "k".into(),
            },
            &ctx("a\0b"),
            Account::balance,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Rejected(_)), "{refused:?}");
}
