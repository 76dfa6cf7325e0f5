//! Operating Tessera as an operator would: `tessera admin` rebuilds while
//! commands keep arriving (compared with a from-scratch fold of the log),
//! replay, audit export and verification, dead letters, status, the admin
//! routes and `/metrics`, on both run modes.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::documents::{letters_of_aggregate, live_body, overwrite};
use common::fold::{all_documents, until_live_equals_a_fold};
use common::stack::{Stack, Topology};
use common::{accounts_and_guilds, board_and_commerce, cli, cli_json, cli_ok, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_documents::live;
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::{DocumentStore, Write};
use tessera_events::{EventLog, Upcaster};
use tessera_projector::projection::{self, Accounts, PointHistory, Projection};
use tessera_projector::rebuild::{self, Quiet, RebuildConfig};
use tessera_testkit::{wait_until, MongoDatabase, PgDatabase};
use tessera_write_side::store::postgres::{self, PgEventLog};

/// Time between two churn commands: the distributed stack on secantusdb
/// folds ≈ 900 document writes/s on these machines, shared by fourteen
/// projections on two projector instances.
fn pace(stack: &Stack) -> Duration {
    Duration::from_millis(if stack.pg.is_some() { 100 } else { 15 })
}

/// Commands of every kind, one after the other, until told to stop. The
/// user whose guild nickname changes never posts or comments: a nickname
/// change racing a post's creation across partitions is a known corner of
/// the distributed mode (README, "Consistency").
struct Churn {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Churn {
    async fn start(c: Arc<Client>, admin: String, pace: Duration) -> Self {
        let (_, writer) = c.register("churn-writer@example.com", "writer").await;
        let (_, renamer) = c.register("churn-renamer@example.com", "renamer").await;
        let ok = |a: &common::Answer, what: &str| {
            assert!(a.status.is_success(), "{what}: {} {}", a.status, a.body);
        };
        let g = c
            .post("/v1/guilds", &writer, json!({"name": "Churn"}))
            .await;
        ok(&g, "guild");
        let gid = g.body["guild_id"].as_str().unwrap().to_owned();
        let f = c
            .post(
                &format!("/v1/guilds/{gid}/channels"),
                &writer,
                json!({"name": "forum", "kind": "forum"}),
            )
            .await;
        ok(&f, "channel");
        let forum = f.body["channel_id"].as_str().unwrap().to_owned();
        let j = c
            .send(
                Method::POST,
                &format!("/v1/guilds/{gid}/members"),
                &renamer,
                None,
            )
            .await;
        ok(&j, "join");
        let cp = c
            .post(
                "/v1/coupons",
                &admin,
                json!({"name": "churn", "total_quantity": 1000, "discount_amount": 5}),
            )
            .await;
        ok(&cp, "coupon");
        let coupon = cp.body["coupon_id"].as_str().unwrap().to_owned();

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            async move {
                let mut post = String::new();
                let mut i = 0_u64;
                let mut members = 0;
                // a steady pace, not a flood that outruns the read store
                let mut pace = tokio::time::interval(pace);
                while !stop.load(Ordering::SeqCst) {
                    pace.tick().await;
                    let step = if i % 7 == 6 && members >= 40 {
                        0
                    } else {
                        i % 7
                    };
                    let (method, path, token, body) = match step {
                        0 => (
                            Method::POST,
                            "/v1/accounts/me/charge".to_owned(),
                            &writer,
                            Some(json!({"amount": 3, "idempotency_key": format!("churn-{i}")})),
                        ),
                        1 => (
                            Method::POST,
                            format!("/v1/channels/{forum}/posts"),
                            &writer,
                            Some(json!({"title": format!("post {i}"), "content": "churn"})),
                        ),
                        2 => (
                            Method::POST,
                            format!("/v1/posts/{post}/comments"),
                            &writer,
                            Some(json!({"content": format!("comment {i}")})),
                        ),
                        3 => (
                            Method::PUT,
                            format!("/v1/posts/{post}/reactions/e{}", i % 3),
                            &writer,
                            None,
                        ),
                        4 => (
                            Method::PUT,
                            format!("/v1/guilds/{gid}/members/me/nickname"),
                            &renamer,
                            Some(json!({"nickname": format!("renamer {i}")})),
                        ),
                        5 => (
                            Method::PATCH,
                            format!("/v1/guilds/{gid}"),
                            &writer,
                            Some(json!({"name": format!("Churn {i}")})),
                        ),
                        _ => {
                            // a new member: account, join, coupon
                            let (_, t) = c
                                .register(&format!("churn-{i}@example.com"), &format!("n{i}"))
                                .await;
                            let j = c
                                .send(Method::POST, &format!("/v1/guilds/{gid}/members"), &t, None)
                                .await;
                            assert_eq!(j.status, StatusCode::CREATED, "{}", j.body);
                            let a = c
                                .send(
                                    Method::POST,
                                    &format!("/v1/coupons/{coupon}/issue"),
                                    &t,
                                    None,
                                )
                                .await;
                            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
                            done.fetch_add(3, Ordering::SeqCst);
                            members += 1;
                            i += 1;
                            continue;
                        }
                    };
                    let a = c.call(method, &path, Some(token), body).await;
                    assert!(a.status.is_success(), "{path}: {} {}", a.status, a.body);
                    if step == 1 {
                        a.body["post_id"].as_str().unwrap().clone_into(&mut post);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            }
        });
        Self { stop, done, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("every churn command succeeded");
        self.done.load(Ordering::SeqCst)
    }
}

/// Reads that must keep answering while collections are rebuilt and
/// switched underneath them, a round of four at the churn's pace. Unpaced,
/// they read as fast as the read side answers, a load of their own on the
/// document server the rebuild writes to; on a machine three times slower
/// the distributed rebuild then took over five minutes and its test failed.
struct Readers {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Readers {
    fn start(c: Arc<Client>, token: String, guild_id: String, pace: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let (mut reads, mut failures) = (0, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    for path in [
                        "/v1/accounts/me".to_owned(),
                        "/v1/accounts/me/history?limit=5".to_owned(),
                        format!("/v1/guilds/{guild_id}"),
                        "/v1/me/guilds".to_owned(),
                    ] {
                        let a = c.get(&path, &token).await;
                        reads += 1;
                        if a.status != StatusCode::OK {
                            failures.push(format!("{path}: {} {}", a.status, a.body));
                        }
                    }
                    tokio::time::sleep(pace).await;
                }
                (reads, failures)
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// The proof the issue asks for: `admin rebuild --all` while commands keep
/// arriving and reads keep being served, then every document of every
/// live collection equals a from-scratch fold of the log.
async fn rebuild_all_while_commands_arrive(stack: Stack) {
    let (log, docs) = (stack.event_log().await, stack.documents().await);
    let c = Arc::clone(&stack.client);
    let outcome = accounts_and_guilds(&c).await;
    board_and_commerce(&c, &stack.admin).await;
    let g = c
        .post(
            "/v1/guilds",
            &outcome.owner_token,
            json!({"name": "Readers' guild"}),
        )
        .await;
    let guild_id = g.body["guild_id"].as_str().unwrap().to_owned();
    stack.wait_caught_up().await;
    let before: BTreeMap<String, String> = {
        let mut m = BTreeMap::new();
        for p in projection::all() {
            m.insert(
                p.name().to_owned(),
                live::live(&*docs, p.name()).await.unwrap(),
            );
        }
        m
    };

    let churn = Churn::start(Arc::clone(&c), stack.admin.clone(), pace(&stack)).await;
    let readers = Readers::start(
        Arc::clone(&c),
        outcome.owner_token.clone(),
        guild_id,
        pace(&stack),
    );
    let at_start = churn.done.load(Ordering::SeqCst);
    let env = stack.env.clone();
    let rebuilt = tokio::task::spawn_blocking(move || {
        cli_json(&env, &["admin", "rebuild", "--all", "--yes", "--json"])
    })
    .await
    .unwrap();
    let during = churn.done.load(Ordering::SeqCst) - at_start;
    let total = churn.stop().await;
    let (reads, failures) = readers.stop().await;
    assert!(
        during >= 10,
        "commands kept arriving during the rebuild ({during})"
    );
    assert!(
        reads > 0 && failures.is_empty(),
        "reads failed: {failures:?}"
    );

    let reports = rebuilt.as_array().unwrap();
    assert_eq!(reports.len(), projection::all().len(), "{rebuilt}");
    for r in reports {
        let name = r["projection"].as_str().unwrap();
        assert_eq!(r["from"].as_str(), before.get(name).map(String::as_str));
        assert_ne!(r["from"], r["to"], "{name} got a new collection");
        assert_eq!(r["dead_lettered"], 0, "{r}");
    }

    stack.wait_caught_up().await;
    for p in projection::all() {
        let name = p.name();
        let live = live::live(&*docs, name).await.unwrap();
        let report = reports.iter().find(|r| r["projection"] == name).unwrap();
        assert_eq!(
            report["to"].as_str(),
            Some(live.as_str()),
            "readers switched"
        );
        let old = all_documents(&*docs, &before[name]).await;
        assert!(old.is_empty(), "{} was dropped", before[name]);
    }
    let documents = until_live_equals_a_fold(&*log, &*docs, Duration::from_secs(60)).await;
    assert!(documents > 50, "a real comparison ({documents} documents)");
    for r in reports {
        eprintln!(
            "{}: {} events in {:.1} s, live projectors paused {} ms",
            r["projection"],
            r["events"],
            r["seconds"].as_f64().unwrap_or_default(),
            r["frozen_ms"]
        );
    }
    eprintln!("rebuilt with {during} commands arriving ({total} in all), {reads} reads served");
}

#[tokio::test]
async fn rebuild_all_on_serve_while_commands_arrive_equals_a_fold_from_scratch() {
    rebuild_all_while_commands_arrive(Stack::embedded(&[]).await).await;
}

#[tokio::test]
async fn rebuild_all_on_the_distributed_stack_with_two_projectors_equals_a_fold_from_scratch() {
    rebuild_all_while_commands_arrive(
        Stack::distributed(Topology::PIPELINE.with_projectors(2), &[]).await,
    )
    .await;
}

/// Test-only steps: a `PointsCharged` shape older than any this code writes
/// (`points`/`balance_after`/`key`), as a store that ran an earlier
/// release holds.
const OLD_SHAPES: &[Upcaster] = &[Upcaster {
    aggregate_type: "account",
    event_type: "PointsCharged",
    to_version: "1.0",
    upcast: |old| {
        json!({
            "type": "PointsCharged",
            "amount": old["points"],
            "balance": old["balance_after"],
            "idempotency_key": old["key"],
        })
    },
}];

#[tokio::test]
async fn a_rebuild_reads_old_event_versions_through_the_upcasters() {
    let pg = PgDatabase::create().await;
    let mongo = MongoDatabase::create();
    let pool = pg.pool(4).await;
    postgres::migrate(&pool).await.unwrap();
    let insert = |sequence: i64, version: &'static str, payload: Value| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata)
                 VALUES ('account', 'acc-old', $1, $2, $3, $4,
                         jsonb_build_object('event_id', gen_random_uuid()::text,
                                            'occurred_at', '2024-05-01T10:00:00Z',
                                            'actor', 'acc-old'))",
            )
            .bind(sequence)
            .bind(payload["type"].as_str().unwrap().to_owned())
            .bind(version)
            .bind(payload)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    insert(
        1,
        "1.0",
        json!({"type": "AccountRegistered", "email": "old@example.com", "nickname": "old"}),
    )
    .await;
    insert(
        2,
        "0.9",
        json!({"type": "PointsCharged", "points": 30, "balance_after": 30, "key": "k1"}),
    )
    .await;
    insert(
        3,
        "1.0",
        json!({"type": "PointsCharged", "amount": 12, "balance": 42, "idempotency_key": "k2"}),
    )
    .await;

    let docs: Arc<dyn DocumentStore> =
        Arc::new(MongoStore::connect(&mongo.uri, &mongo.name).await.unwrap());
    let config = RebuildConfig {
        drop_delay: Duration::ZERO,
        ..RebuildConfig::default()
    };
    // without the step the old payload cannot be read: the control
    let plain: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool.clone()));
    until_visible(&*plain, 3).await;
    let report = rebuild::rebuild(
        Arc::new(Accounts),
        Arc::clone(&docs),
        plain,
        &config,
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(
        report.dead_lettered, 2,
        "the old charge and the one parked behind it"
    );

    let log: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool).with_upcasters(OLD_SHAPES));
    let projections: [Arc<dyn Projection>; 2] = [Arc::new(Accounts), Arc::new(PointHistory)];
    for p in projections {
        let r = rebuild::rebuild(p, Arc::clone(&docs), Arc::clone(&log), &config, &Quiet)
            .await
            .unwrap();
        assert_eq!((r.events, r.dead_lettered), (3, 0), "{r:?}");
    }
    let accounts = live::live(&*docs, "accounts").await.unwrap();
    let account = docs.get(&accounts, "acc-old").await.unwrap().unwrap().body;
    assert_eq!(
        (account["balance"].as_i64(), account["version"].as_u64()),
        (Some(42), Some(3))
    );
    let history = live::live(&*docs, "point_history").await.unwrap();
    let entries = all_documents(&*docs, &history).await;
    let amounts: Vec<_> = entries.values().map(|e| e["amount"].as_i64()).collect();
    assert_eq!(amounts, [Some(30), Some(12)], "{entries:?}");
}

#[tokio::test]
async fn a_rebuild_switches_without_a_live_instance_that_never_pauses_and_names_it() {
    let pg = PgDatabase::create().await;
    let mongo = MongoDatabase::create();
    let pool = pg.pool(4).await;
    postgres::migrate(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                             event_version, payload, metadata)
         VALUES ('account', 'acc-1', 1, 'AccountRegistered', '1.0',
                 '{\"type\": \"AccountRegistered\", \"email\": \"a@example.com\", \"nickname\": \"a\"}',
                 jsonb_build_object('event_id', gen_random_uuid()::text,
                                    'occurred_at', '2026-05-01T10:00:00Z'))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let docs: Arc<dyn DocumentStore> =
        Arc::new(MongoStore::connect(&mongo.uri, &mongo.name).await.unwrap());
    // a live instance that keeps beating but never pauses (stuck in a batch,
    // or dead a moment ago): it must not hold the rebuild forever
    let beating = Arc::new(AtomicBool::new(true));
    let heart = {
        let docs = Arc::clone(&docs);
        let beating = Arc::clone(&beating);
        tokio::spawn(async move {
            while beating.load(Ordering::SeqCst) {
                let me = live::Instance {
                    projection: "accounts".into(),
                    instance: "stuck-1".into(),
                    heartbeat_at: chrono::Utc::now(),
                    acked_epoch: 0,
                    lag: None,
                };
                live::beat(&*docs, &me).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    wait_until(Duration::from_secs(10), "the stuck instance beats", || {
        let docs = Arc::clone(&docs);
        async move {
            live::alive(&*docs, "accounts", chrono::Duration::seconds(15))
                .await
                .unwrap()
                .len()
                == 1
        }
    })
    .await;
    let config = RebuildConfig {
        ack_timeout: Duration::from_secs(2),
        drop_delay: Duration::ZERO,
        ..RebuildConfig::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool));
    until_visible(&*log, 1).await;
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        rebuild::rebuild(Arc::new(Accounts), Arc::clone(&docs), log, &config, &Quiet),
    )
    .await
    .expect("the rebuild finishes although an instance never pauses")
    .unwrap();
    beating.store(false, Ordering::SeqCst);
    heart.await.unwrap();
    assert_eq!(report.unacknowledged, ["stuck-1"], "{report:?}");
    assert!(started.elapsed() >= config.ack_timeout, "it did wait");
    assert_eq!(report.events, 1);
    let live = live::live(&*docs, "accounts").await.unwrap();
    assert_eq!(live, report.to, "switched");
    let account = docs.get(&live, "acc-1").await.unwrap().unwrap().body;
    assert_eq!(account["version"].as_u64(), Some(1));
}

async fn charge(c: &Client, token: &str, key: &str) -> u64 {
    let a = c
        .post(
            "/v1/accounts/me/charge",
            token,
            json!({"amount": 10, "idempotency_key": key}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["version"].as_u64().unwrap()
}

/// A charge the accounts read model shows: its version.
async fn charge_projected(c: &Client, token: &str, key: &str, what: &str) -> u64 {
    let v = charge(c, token, key).await;
    c.get_until(
        &format!("/v1/accounts/me?min_version={v}"),
        token,
        what,
        |b| b["version"] == v,
    )
    .await;
    v
}

/// Waits until the aggregate has `n` pending letters.
async fn until_letters(env: &[(&str, String)], aggregate_id: &str, n: usize, what: &str) {
    wait_until(Duration::from_secs(60), what, || {
        let pending = letters_of(env, aggregate_id).len();
        async move { pending == n }
    })
    .await;
}

/// Pending letters of one aggregate, as `admin dlq list --json` prints them.
fn letters_of(env: &[(&str, String)], aggregate_id: &str) -> Vec<Value> {
    letters_of_aggregate(
        &cli_json(env, &["admin", "dlq", "list", "--json"]),
        aggregate_id,
    )
}

#[tokio::test]
async fn dead_letters_are_listed_retried_in_order_and_discarded_and_replay_repairs_documents() {
    let stack = Stack::embedded(&[]).await;
    let c = Arc::clone(&stack.client);
    let docs = stack.documents().await;
    let docs = &*docs;
    let (id, token) = c.register("dlq@example.com", "dlq").await;
    charge_projected(&c, &token, "a", "the charge is projected").await;
    let good = live_body(docs, "accounts", &id).await.unwrap();

    // a document the fold cannot read: the next events become dead letters,
    // the first failing, the later ones parked behind it
    let mut broken = good.clone();
    broken["balance"] = json!("not a number");
    overwrite(docs, "accounts", &id, broken.clone()).await;
    charge(&c, &token, "b").await;
    let last = charge(&c, &token, "c").await;
    until_letters(&stack.env, &id, 2, "two dead letters").await;
    let letters = letters_of(&stack.env, &id);
    assert_eq!(
        letters
            .iter()
            .map(|l| (
                l["projection"].as_str().unwrap(),
                l["sequence"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("accounts", 3), ("accounts", 4)],
        "{letters:?}"
    );
    let status = cli_json(&stack.env, &["admin", "status", "--json"]);
    let accounts = status
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "accounts")
        .unwrap();
    assert_eq!(accounts["dead_letters"], 2, "{status}");
    let route = c.get("/v1/admin/projections", &stack.admin).await;
    let accounts = route
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "accounts")
        .unwrap();
    assert_eq!(accounts["dead_letters"], 2, "{}", route.body);
    let text = cli_ok(&stack.env, &["admin", "dlq", "list"]);
    assert!(text.contains(&format!("account:{id} #3")), "{text}");

    // the operator repairs the document; retrying the later letter retries
    // its aggregate from the earliest sequence up, in order
    overwrite(docs, "accounts", &id, good.clone()).await;
    let later = letters[1]["id"].as_str().unwrap();
    let retried = cli_json(&stack.env, &["admin", "dlq", "retry", later, "--json"]);
    assert_eq!(
        retried["retried"].as_array().map(Vec::len),
        Some(2),
        "{retried}"
    );
    let left = letters_of(&stack.env, &id);
    assert!(left.is_empty(), "{left:?}");
    let doc = live_body(docs, "accounts", &id).await.unwrap();
    assert_eq!(
        (doc["balance"].as_i64(), doc["version"].as_u64()),
        (Some(30), Some(last))
    );
    let next = charge(&c, &token, "d").await;
    c.get_until(
        &format!("/v1/accounts/me?min_version={next}"),
        &token,
        "events after the retried letters flow again",
        |b| b["balance"] == 40,
    )
    .await;

    // discard: the letter goes, its event stays in the log, and a replay
    // of the aggregate repairs the document from the log
    overwrite(docs, "accounts", &id, broken).await;
    let last = charge(&c, &token, "e").await;
    until_letters(&stack.env, &id, 1, "a dead letter").await;
    let letter = letters_of(&stack.env, &id).remove(0);
    let out = cli_ok(
        &stack.env,
        &["admin", "dlq", "discard", letter["id"].as_str().unwrap()],
    );
    assert!(out.contains("discarded"), "{out}");
    assert!(letters_of(&stack.env, &id).is_empty());
    let again = cli(
        &stack.env,
        &["admin", "dlq", "discard", letter["id"].as_str().unwrap()],
    );
    assert!(!again.status.success(), "a discarded letter is gone");

    // also lose a history entry: replay brings back every document of the
    // aggregate
    let history = live::live(docs, "point_history").await.unwrap();
    let entries: Vec<String> = all_documents(docs, &history)
        .await
        .into_iter()
        .filter(|(_, d)| d["account_id"] == id.as_str())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(entries.len(), 5);
    let lost = docs.get(&history, &entries[1]).await.unwrap().unwrap();
    docs.write(
        &history,
        vec![Write::Delete {
            id: lost.id.clone(),
            expected_rev: lost.rev,
        }],
    )
    .await
    .unwrap();
    let replayed = cli_json(
        &stack.env,
        &[
            "admin",
            "replay",
            "--aggregate-type",
            "account",
            "--aggregate-id",
            &id,
            "--json",
        ],
    );
    let by_name = |name: &str| {
        replayed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["projection"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {replayed}"))
    };
    assert_eq!(by_name("accounts")["events"], last, "{replayed}");
    assert_eq!(by_name("point_history")["documents"], 5, "{replayed}");
    // serve answers from memory what its own projector wrote; a replay by
    // another process on its data folder is read once the remembered
    // document ages out (TESSERA_READ_CACHE_MS, 1 s by default)
    let replayed_at = std::time::Instant::now();
    let me = c
        .get_until("/v1/accounts/me", &token, "the replayed account", |b| {
            b["balance"] == 50
        })
        .await;
    assert_eq!(me["version"].as_u64(), Some(last));
    assert!(
        replayed_at.elapsed() < Duration::from_secs(5),
        "the replay was read {:?} later, past the cache's bound",
        replayed_at.elapsed()
    );
    let restored = docs.get(&history, &lost.id).await.unwrap().unwrap();
    assert_eq!(restored.body, lost.body);
    let bad = cli(
        &stack.env,
        &[
            "admin",
            "replay",
            "--aggregate-type",
            "account",
            "--aggregate-id",
            "no-such-account",
        ],
    );
    assert!(bad.status.success() || !bad.stderr.is_empty());
}

#[tokio::test]
async fn a_gap_the_feed_skipped_is_repaired_from_the_log_when_its_letter_is_retried() {
    let stack = Stack::embedded(&[]).await;
    let c = Arc::clone(&stack.client);
    let docs = stack.documents().await;
    let docs = &*docs;
    let (id, token) = c.register("gap@example.com", "gap").await;
    charge_projected(&c, &token, "a", "the first charge is projected").await;
    let before = live_body(docs, "accounts", &id).await.unwrap();
    let missed = charge_projected(&c, &token, "b", "the second charge is projected").await;
    // as if the feed had skipped the second charge: the document is back
    // before it, so the next event arrives after a gap the log does not have
    overwrite(docs, "accounts", &id, before).await;
    let last = charge(&c, &token, "c").await;
    until_letters(&stack.env, &id, 1, "a gap letter").await;
    let letter = letters_of(&stack.env, &id).remove(0);
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains(&format!("expected sequence {missed}")),
        "{letter}"
    );
    let retried = cli_json(
        &stack.env,
        &[
            "admin",
            "dlq",
            "retry",
            letter["id"].as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(retried["repaired_from_log"], 1, "{retried}");
    assert_eq!(retried["retried"].as_array().map(Vec::len), Some(1));
    assert!(letters_of(&stack.env, &id).is_empty());
    let doc = live_body(docs, "accounts", &id).await.unwrap();
    assert_eq!(
        (doc["balance"].as_i64(), doc["version"].as_u64()),
        (Some(30), Some(last))
    );
}

/// Lines of an export file, the trailer last.
fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `verify-export` on `lines` written to a file: (intact, what it said).
fn verify(
    env: &[(&str, String)],
    dir: &std::path::Path,
    name: &str,
    lines: &[String],
) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = cli(env, &["admin", "verify-export", path.to_str().unwrap()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn exports_carry_a_hash_chain_that_names_each_kind_of_tampering() {
    let stack = Stack::embedded(&[]).await;
    let c = Arc::clone(&stack.client);
    let outcome = accounts_and_guilds(&c).await;
    let env = &stack.env;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.jsonl");
    cli_ok(
        env,
        &["admin", "export", "--output", file.to_str().unwrap()],
    );
    let all = lines(&file);
    let records: Vec<Value> = all
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (trailer, records) = records.split_last().unwrap();
    let head = stack.event_log().await.head().await.unwrap();
    assert_eq!(trailer["record_type"], "trailer");
    assert_eq!(trailer["count"].as_u64(), Some(records.len() as u64));
    assert_eq!(
        records.last().unwrap()["global_position"].as_i64(),
        Some(head.position)
    );
    let positions: Vec<i64> = records
        .iter()
        .map(|r| r["global_position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "global order");
    assert_eq!(records[0]["prev_hash"], "0".repeat(64));
    for w in records.windows(2) {
        assert_eq!(w[1]["prev_hash"], w[0]["hash"], "chained");
    }
    assert_eq!(trailer["head"], records.last().unwrap()["hash"]);

    // standard output carries the same bytes
    let stdout = cli_ok(env, &["admin", "export"]);
    assert_eq!(stdout, std::fs::read_to_string(&file).unwrap());

    let (ok, said) = verify(env, dir.path(), "intact.jsonl", &all);
    assert!(ok && said.contains("intact"), "{said}");

    // each kind of tampering is found and the record is named
    let event_id = |i: usize| records[i]["event_id"].as_str().unwrap().to_owned();
    let mut edited = all.clone();
    let mut r: Value = serde_json::from_str(&edited[3]).unwrap();
    r["metadata"]["actor"] = json!("someone-else");
    edited[3] = r.to_string();
    let (ok, said) = verify(env, dir.path(), "edited.jsonl", &edited);
    assert!(
        !ok && said.contains("was edited") && said.contains(&event_id(3)),
        "{said}"
    );

    let mut deleted = all.clone();
    deleted.remove(5);
    let (ok, said) = verify(env, dir.path(), "deleted.jsonl", &deleted);
    assert!(
        !ok && said.contains("deleted") && said.contains(&event_id(6)),
        "{said}"
    );

    // a forger who recomputes the hash of the record they add is still
    // caught by the record after it
    let mut inserted = all.clone();
    let mut forged: tessera_events::audit::AuditRecord = serde_json::from_str(&all[2]).unwrap();
    forged.envelope.event_id = uuid::Uuid::now_v7();
    forged.prev_hash = records[2]["hash"].as_str().unwrap().to_owned();
    forged.hash = tessera_events::audit::chain_hash(&forged.prev_hash, &forged.envelope);
    inserted.insert(3, serde_json::to_string(&forged).unwrap());
    let (ok, said) = verify(env, dir.path(), "inserted.jsonl", &inserted);
    assert!(!ok && said.contains("was inserted"), "{said}");
    assert!(
        said.contains(&forged.envelope.event_id.to_string()),
        "{said}"
    );
    let mut duplicated = all.clone();
    duplicated.insert(3, all[2].clone());
    let (ok, said) = verify(env, dir.path(), "duplicated.jsonl", &duplicated);
    assert!(
        !ok && said.contains("was inserted") && said.contains(&event_id(2)),
        "{said}"
    );

    let mut reordered = all.clone();
    reordered.swap(7, 8);
    let (ok, said) = verify(env, dir.path(), "reordered.jsonl", &reordered);
    assert!(!ok && said.contains("out of order"), "{said}");
    assert!(
        said.contains(&event_id(7)) || said.contains(&event_id(8)),
        "{said}"
    );

    let mut truncated = all.clone();
    truncated.remove(truncated.len() - 2);
    let (ok, said) = verify(env, dir.path(), "truncated.jsonl", &truncated);
    assert!(!ok && said.contains("trailer"), "{said}");

    // filters: one aggregate, a time window; CSV with the same chain
    let mine = records
        .iter()
        .find(|r| r["event_type"] == "AccountRegistered")
        .unwrap();
    let account = mine["aggregate_id"].as_str().unwrap();
    let one = cli_ok(
        env,
        &[
            "admin",
            "export",
            "--aggregate-type",
            "account",
            "--aggregate-id",
            account,
        ],
    );
    let one: Vec<Value> = one
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = records
        .iter()
        .filter(|r| r["aggregate_id"] == account)
        .count();
    assert_eq!(one.len(), expected + 1);
    assert!(one[..expected]
        .iter()
        .all(|r| r["aggregate_type"] == "account" && r["aggregate_id"] == account));
    let future = cli_ok(env, &["admin", "export", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future.lines().count(), 1, "only the trailer: {future}");
    let until = records[10]["recorded_at"].as_str().unwrap();
    let early = cli_ok(env, &["admin", "export", "--until", until]);
    let early: Vec<Value> = early
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        early.len() > 1 && early.len() <= 11,
        "records before {until}: {}",
        early.len()
    );
    let bad = cli(env, &["admin", "export", "--since", "yesterday"]);
    assert!(!bad.status.success());

    let csv = dir.path().join("all.csv");
    cli_ok(
        env,
        &[
            "admin",
            "export",
            "--format",
            "csv",
            "--output",
            csv.to_str().unwrap(),
        ],
    );
    let rows = lines(&csv);
    assert!(
        rows[0].starts_with("global_position") || rows[0].contains("event_id"),
        "a header: {}",
        rows[0]
    );
    let out = cli_ok(env, &["admin", "verify-export", csv.to_str().unwrap()]);
    let head_hash = trailer["head"].as_str().unwrap();
    assert!(
        out.contains("intact") && out.contains(head_hash),
        "same chain as JSONL: {out}"
    );
    let mut edited = rows.clone();
    edited[4] = edited[4].replacen("account", "acount", 1);
    let (ok, said) = verify(env, dir.path(), "edited.csv", &edited);
    assert!(!ok && said.contains("was edited"), "{said}");
    let mut swapped = rows.clone();
    swapped.swap(2, 3);
    let (ok, said) = verify(env, dir.path(), "swapped.csv", &swapped);
    assert!(!ok && said.contains("out of order"), "{said}");

    // the audit view pages through the same log
    let admin = &stack.admin;
    let mut seen = Vec::new();
    let mut path = "/v1/admin/events?limit=7".to_owned();
    loop {
        let page = c.get(&path, admin).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["event_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/admin/events?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let all_ids: Vec<String> = records
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, all_ids);
    let filtered = c
        .get(
            &format!(
                "/v1/admin/events?aggregate_type=account&aggregate_id={account}&after_position=0"
            ),
            admin,
        )
        .await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), expected);
    for bad in [
        "/v1/admin/events?limit=0",
        "/v1/admin/events?limit=1001",
        "/v1/admin/events?after_position=-1",
        "/v1/admin/events?since=yesterday",
        "/v1/admin/events?cursor=garbage",
    ] {
        let a = c.get(bad, admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
        assert!(a.body["error"]["code"].is_string(), "{}", a.body);
    }
    for path in ["/v1/admin/events", "/v1/admin/projections"] {
        let user = c.get(path, &outcome.ann_token).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN, "{path}");
        let nobody = c.call(Method::GET, path, None, None).await;
        assert_eq!(nobody.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn status_progress_and_metrics_tell_operators_what_runs() {
    let stack = Stack::embedded(&[]).await;
    let c = Arc::clone(&stack.client);
    accounts_and_guilds(&c).await;
    stack.wait_caught_up().await;
    let log = stack.event_log().await;
    let head = log.head().await.unwrap().position;

    let status = cli_json(&stack.env, &["admin", "status", "--json"]);
    for p in status.as_array().unwrap() {
        assert_eq!(
            (p["lag"].as_i64(), p["dead_letters"].as_u64()),
            (Some(0), Some(0)),
            "{p}"
        );
        assert!(p["collection"].is_string(), "{p}");
    }
    let accounts = status
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "accounts")
        .unwrap();
    assert_eq!(accounts["last_position"].as_i64(), Some(head), "{status}");
    let text = cli_ok(&stack.env, &["admin", "status"]);
    assert!(
        text.contains(&format!("position {head}")) && text.contains("point_history"),
        "{text}"
    );

    // not a terminal: plain progress lines on standard error, the report on
    // standard output
    let out = cli(&stack.env, &["admin", "rebuild", "accounts"]);
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("rebuilt accounts from"), "{stdout}");
    assert!(
        stderr.contains("accounts: ") && stderr.contains("events/s, ETA"),
        "progress lines: {stderr}"
    );
    assert!(
        !stderr.contains('\r'),
        "no bar redraws off a terminal: {stderr:?}"
    );
    let refused = cli(&stack.env, &["admin", "rebuild", "--all"]);
    assert!(!refused.status.success(), "--all asks before it runs");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let unknown = cli(&stack.env, &["admin", "rebuild", "no_such_projection"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("known: accounts"));

    let metrics = reqwest::get(format!("{}/metrics", stack.write().addr))
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    for family in [
        "tessera_command_duration_seconds_bucket",
        "tessera_commands_total",
        "tessera_events_appended_total",
        "tessera_http_requests_total",
        "tessera_projector_events_total",
        "tessera_projector_lag_seconds",
    ] {
        assert!(metrics.contains(family), "{family} in\n{metrics}");
    }
    let charge_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("tessera_commands_total")
                && l.contains("aggregate=\"account\"")
                && l.contains("outcome=\"accepted\"")
        })
        .unwrap_or_else(|| panic!("commands counted by aggregate and outcome:\n{metrics}"));
    assert!(!charge_line.ends_with(" 0"), "{charge_line}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tessera_http_requests_total") && l.contains("status=\"201\"")),
        "{metrics}"
    );
}

/// Waits until the log shows `count` events. PostgreSQL's log shows a commit
/// once every older transaction on the server has ended, and parallel tests
/// hold some open, so a rebuild started at once could stop short of the head.
async fn until_visible(log: &dyn EventLog, count: usize) {
    wait_until(
        Duration::from_secs(30),
        "the events are visible",
        || async move {
            log.read_after(tessera_events::LogPosition::START, 1000)
                .await
                .unwrap()
                .len()
                == count
        },
    )
    .await;
}
