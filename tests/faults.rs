//! The pipeline heals itself: every fault run for real on the distributed
//! stack (write-api, read-api, relay, two projectors on a PostgreSQL
//! cluster, a tansu broker and a secantusdb server of the test's own) under
//! a steady mixed command load that records every answer.
//!
//! After each fault the stack must recover without an operator within a
//! bound, and health and metrics must have told the truth during it. At the
//! end: every acknowledged command's events are in the log exactly once,
//! none of an unacknowledged one is half there, every document of every
//! projection equals a fold of the whole log from nothing, and no dead
//! letter was written.
//!
//! The faults come in three groups (the broker; the stores; the roles
//! killed and stopped), each a test on a stack of its own, so they run side
//! by side.
//!
//! `scripts/faults` runs this with longer faults, several rounds, and
//! collects the reports (`TESSERA_TEST_FAULTS_REPORT`: a folder that gets a
//! report per group).

use crate::common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fold::{all_documents, until_live_equals_a_fold};
use common::load::{Answered, Load, Sent};
use common::stack::Topology;
use common::Tessera;
use reqwest::StatusCode;
use serde_json::Value;
use tessera_documents::store::mongo::MongoStore;
use tessera_projector::projection;
use tessera_testkit::{Broker, DocServer, PgCluster};
use tessera_write_side::store::postgres::{self, PgEventLog};

/// Seconds from the environment, or a default.
fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// The production roles (two projectors) on stores this test can pause
/// and restart: its own PostgreSQL cluster, broker and document server.
struct Stack {
    pg: PgCluster,
    broker: Broker,
    docs_server: DocServer,
    kit: common::stack::Stack,
    http: reqwest::Client,
    pool: sqlx::PgPool,
    /// The version each read was last seen at: versions only grow, so a
    /// read seen at the version a later check wants is not read again.
    seen: BTreeMap<(String, String), u64>,
}

impl std::ops::Deref for Stack {
    type Target = common::stack::Stack;

    fn deref(&self) -> &common::stack::Stack {
        &self.kit
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut common::stack::Stack {
        &mut self.kit
    }
}

impl Stack {
    async fn start() -> Self {
        let pg = PgCluster::start();
        let db = pg.database("tessera").await;
        let mut broker = Broker::reserve();
        broker.start().await;
        let docs_server = DocServer::start().await;
        let env = vec![
            ("TESSERA_DATABASE_URL", db.clone()),
            ("TESSERA_DATABASE_MAX_CONNECTIONS", "8".to_owned()),
            ("TESSERA_KAFKA_BROKERS", broker.brokers()),
            ("TESSERA_KAFKA_PARTITIONS", "4".to_owned()),
            ("TESSERA_MONGODB_URI", docs_server.uri()),
            (
                "TESSERA_JWT_SECRET",
                "a-test-secret-that-is-long-enough-for-hs256".to_owned(),
            ),
            ("TESSERA_RELAY_STALL_SECONDS", "5".to_owned()),
            ("TESSERA_PROJECTOR_STALL_SECONDS", "10".to_owned()),
            ("TESSERA_RELAY_PUBLISH_TIMEOUT_SECONDS", "5".to_owned()),
        ];
        let topology = Topology::PIPELINE.with_projectors(2).with_fixed_ports();
        let kit = common::stack::Stack::start(env, topology, Vec::new()).await;
        let pool = postgres::connect(&db, 2).await.unwrap();
        Self {
            pg,
            broker,
            docs_server,
            kit,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            pool,
            seen: Default::default(),
        }
    }

    /// A GET that answers `None` instead of failing when nothing listens.
    async fn try_get(
        &self,
        base: &str,
        path: &str,
        token: Option<&str>,
    ) -> Option<(StatusCode, Value, Duration, Option<String>)> {
        let started = Instant::now();
        let mut req = self.http.get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.ok()?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.json().await.unwrap_or(Value::Null);
        Some((status, body, started.elapsed(), retry_after))
    }

    async fn ready(&self, base: &str) -> Option<(bool, Duration)> {
        self.try_get(base, "/readyz", None)
            .await
            .map(|(status, _, took, _)| (status == StatusCode::OK, took))
    }

    /// A gauge or counter summed over its series in a role's `/metrics`.
    async fn metric(&self, base: &str, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Waits until every read the load was acknowledged by `until`
    /// reflects its command; how long that took.
    ///
    /// A document's version only grows, so a read seen caught up is not
    /// read again, not even by a later check, and a round reads only the
    /// first few reads not yet seen caught up. Reading all of them every
    /// round (300 to 500) was a load of its own on the document server,
    /// which the pipeline shares: with a third of this machine's CPU, the
    /// stack took 35 s to heal from a paused broker and over 30 s from one
    /// restarted empty; 22 s from each with this check.
    async fn recovered(
        &mut self,
        load: &Load,
        until: Instant,
        bound: Duration,
    ) -> Result<Duration, String> {
        const ROUND: usize = 16;
        let started = Instant::now();
        let mut wanted: BTreeMap<(String, String), u64> = BTreeMap::new();
        for s in load.sent().into_iter().filter(|s| s.at <= until) {
            if let Some((path, token, version)) = s.read {
                let v = wanted.entry((path, token)).or_insert(0);
                *v = (*v).max(version);
            }
        }
        let mut unseen: Vec<((String, String), u64)> = wanted
            .into_iter()
            .filter(|(key, version)| self.seen.get(key).is_none_or(|s| s < version))
            .collect();
        while !unseen.is_empty() {
            let round: Vec<_> = unseen.drain(..unseen.len().min(ROUND)).collect();
            let this = &*self;
            let read =
                futures::future::join_all(round.into_iter().map(|(key, version)| async move {
                    let seen = this
                        .try_get(&this.client.read, &key.0, Some(&key.1))
                        .await
                        .and_then(|(status, body, _, _)| {
                            (status == StatusCode::OK)
                                .then(|| body["version"].as_u64())
                                .flatten()
                        });
                    (key, version, seen)
                }))
                .await;
            let (mut behind, mut again) = (Vec::new(), Vec::new());
            for (key, version, seen) in read {
                match seen {
                    Some(s) if s >= version => {
                        self.seen.insert(key, s);
                    }
                    _ => {
                        behind.push(format!("{}: {seen:?} < {version}", key.0));
                        again.push((key, version));
                    }
                }
            }
            // the ones still behind are read first next round
            unseen.splice(0..0, again);
            if behind.is_empty() {
                continue;
            }
            if started.elapsed() > bound {
                return Err(format!(
                    "{} reads not seen caught up after {bound:?}, e.g. {:?}",
                    unseen.len(),
                    &behind[..behind.len().min(5)]
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = started.elapsed();
        if took > bound {
            return Err(format!(
                "reads caught up only after {took:?}, past {bound:?}"
            ));
        }
        Ok(took)
    }

    /// Waits until every projection caught up with the log and holds no
    /// dead letter, as `GET /v1/admin/projections` tells.
    async fn caught_up(&self, bound: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let now = self
                .try_get(
                    &self.client.read,
                    "/v1/admin/projections",
                    Some(&self.admin),
                )
                .await;
            if let Some((StatusCode::OK, body, _, _)) = &now {
                let all = body.as_array().is_some_and(|ps| {
                    ps.len() == projection::all().len()
                        && ps.iter().all(|p| p["lag"] == 0 && p["dead_letters"] == 0)
                });
                if all {
                    return Ok(());
                }
            }
            if started.elapsed() > bound {
                return Err(format!("not caught up after {bound:?}: {now:?}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// One row of the fault matrix.
struct Row {
    fault: String,
    started: Instant,
    ended: Instant,
    recovery: Result<Duration, String>,
    health: Vec<String>,
}

impl Row {
    /// Adds the row, telling how it went (the suite takes minutes); a
    /// fault the stack did not recover from ends the test with its logs.
    fn record(self, rows: &mut Vec<Row>, stack: &Stack) {
        eprintln!(
            "[faults] {}: {:.1} s, recovery {:?}; {}",
            self.fault,
            (self.ended - self.started).as_secs_f64(),
            self.recovery,
            self.health.join("; ")
        );
        if let Err(e) = &self.recovery {
            let dir = stack.save_logs("faults");
            panic!(
                "no recovery from {}: {e}\n(whole logs in {dir})\n{}",
                self.fault,
                stack.logs(60)
            );
        }
        rows.push(self);
    }
}

/// Whether the fault named `name` runs (`TESSERA_TEST_FAULTS_ONLY`: a comma
/// list; unset: all).
fn chosen(name: &str) -> bool {
    std::env::var("TESSERA_TEST_FAULTS_ONLY")
        .map_or(true, |only| only.split(',').any(|o| o.trim() == name))
}

/// Watches readiness and metrics while a fault lasts.
#[derive(Default)]
struct Watch {
    /// Seconds into the fault the role first answered 503 on `/readyz`.
    not_ready_after: BTreeMap<&'static str, f64>,
    slowest_readyz: Duration,
    max_relay_lag: f64,
}

impl Watch {
    async fn observe(&mut self, stack: &Stack, since: Instant) {
        for (role, base) in [
            ("relay", stack.relays[0].addr.as_str()),
            ("projector", stack.projectors[0].addr.as_str()),
            ("read-api", stack.read().addr.as_str()),
            ("write-api", stack.write().addr.as_str()),
        ] {
            if let Some((ready, took)) = stack.ready(base).await {
                self.slowest_readyz = self.slowest_readyz.max(took);
                if !ready {
                    self.not_ready_after
                        .entry(role)
                        .or_insert_with(|| since.elapsed().as_secs_f64());
                }
            }
        }
        if let Some(lag) = stack
            .metric(&stack.relays[0].addr, "tessera_relay_lag_events")
            .await
        {
            self.max_relay_lag = self.max_relay_lag.max(lag);
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .not_ready_after
            .iter()
            .map(|(role, s)| format!("{role} /readyz 503 after {s:.1} s"))
            .collect();
        out.push(format!("max relay lag {}", self.max_relay_lag));
        out.push(format!(
            "slowest /readyz {} ms",
            self.slowest_readyz.as_millis()
        ));
        out
    }
}

/// Watches for `length`, polling health every half second.
/// Watches from `since` (the fault's start) until `length` after it.
async fn watch_for(stack: &Stack, since: Instant, length: Duration) -> Watch {
    let mut watch = Watch::default();
    while since.elapsed() < length {
        watch.observe(stack, since).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    watch
}

/// The log against what the load was answered: (lost, duplicated, half
/// there) per request, and the events per command of each kind.
async fn check_log(pool: &sqlx::PgPool, sent: &[Sent]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT metadata->>'request_id', count(*) FROM events GROUP BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    let counts: BTreeMap<String, i64> = rows
        .into_iter()
        .filter_map(|(rid, n)| rid.map(|r| (r, n)))
        .collect();
    // every command of this load appends one event
    let (mut lost, mut duplicated, mut half) = (Vec::new(), Vec::new(), Vec::new());
    for s in sent {
        let n = counts.get(&s.request_id).copied().unwrap_or(0);
        match s.answered {
            Answered::Acked if n == 0 => lost.push(format!("{} {}", s.kind, s.request_id)),
            Answered::Acked if n > 1 => {
                duplicated.push(format!("{} {} ({n})", s.kind, s.request_id))
            }
            Answered::Refused if n > 0 => {
                half.push(format!("refused {} {} ({n})", s.kind, s.request_id))
            }
            Answered::Unknown if n > 1 => {
                half.push(format!("unknown {} {} ({n})", s.kind, s.request_id))
            }
            _ => {}
        }
    }
    (lost, duplicated, half)
}

// The faults run in three groups, side by side, each on a stack of its own:
// one after another on one stack they took about 500 s in the suite, its
// longest test by far (alone: 110, 65 and 39 s).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_heals_itself_from_broker_faults_without_an_operator() {
    heals_from("broker", &["broker-pause", "broker-restart"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_heals_itself_from_store_faults_without_an_operator() {
    heals_from("stores", &["store-pause", "pg-pause", "pg-restart"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_heals_itself_from_killed_and_stopped_roles_without_an_operator() {
    heals_from("roles", &["kill", "sigterm"]).await;
}

/// Runs the `faults` of a group (those `TESSERA_TEST_FAULTS_ONLY` keeps)
/// under a steady load, then checks the log and the documents.
async fn heals_from(group: &str, faults: &[&str]) {
    let runs = |name: &str| faults.contains(&name) && chosen(name);
    if !faults.iter().any(|f| runs(f)) {
        eprintln!("[faults] {group}: no fault of this group is chosen");
        return;
    }
    let pause = seconds("TESSERA_TEST_FAULTS_PAUSE_SECONDS", 30);
    let store_pause = seconds("TESSERA_TEST_FAULTS_STORE_PAUSE_SECONDS", 8);
    let bound = seconds("TESSERA_TEST_FAULTS_RECOVERY_SECONDS", 60);
    let mut stack = Stack::start().await;
    let mut load = Load::start(Arc::clone(&stack.client), 8, 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a steady load first
    let mut rows: Vec<Row> = Vec::new();
    // a user of the load, for reads and commands of the test's own
    let token = load
        .sent()
        .iter()
        .find_map(|s| s.read.clone())
        .map(|r| r.1)
        .unwrap();
    // a user no load worker writes for: a command of a load user may queue
    // behind that user's other commands (one at a time per aggregate), each
    // bounded by the store timeout; this one meets the store alone
    let (_, quiet) = stack.client.register("quiet@example.com", "quiet").await;

    // --- the broker paused (SIGSTOP), then resumed
    if runs("broker-pause") {
        let started = Instant::now();
        stack.broker.pause();
        let watch = watch_for(&stack, started, pause).await;
        stack.broker.resume();
        let ended = Instant::now();
        let recovery = stack.recovered(&load, ended, bound).await;
        assert!(
            watch
                .not_ready_after
                .get("relay")
                .is_some_and(|s| *s <= 12.0),
            "the relay said it could not publish: {:?}",
            watch.lines()
        );
        assert!(
            watch.max_relay_lag > 0.0,
            "the relay lag showed the waiting events"
        );
        Row {
            fault: format!("broker SIGSTOP {} s", pause.as_secs()),
            started,
            ended,
            recovery,
            health: watch.lines(),
        }
        .record(&mut rows, &stack);
        // reads caught up, so the relay published since; its /readyz may
        // answer a moment later on a busy machine
        tessera_testkit::wait_until(
            Duration::from_secs(15),
            "the relay is ready again",
            || async {
                stack
                    .ready(&stack.relays[0].addr)
                    .await
                    .is_some_and(|(ready, _)| ready)
            },
        )
        .await;
    }

    // --- the broker killed and started again, empty (memory storage)
    if runs("broker-restart") {
        let started = Instant::now();
        stack.broker.stop();
        let watch = watch_for(&stack, started, Duration::from_secs(3)).await;
        stack.broker.start().await;
        let ended = Instant::now();
        // the relay publishes the whole log again and every projection
        // reads it from the start: 9 s alone here; 37 to 56 s while each
        // error the consumer had queued failed a projector step and backed
        // it off, which this bound now catches
        let recovery = stack.recovered(&load, ended, bound / 2).await;
        Row {
            fault: "broker killed, restarted empty".into(),
            started,
            ended,
            recovery,
            health: watch.lines(),
        }
        .record(&mut rows, &stack);
    }

    // --- the document store paused: reads answer 503 quickly, /readyz too
    if runs("store-pause") {
        let started = Instant::now();
        stack.docs_server.pause();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let read = stack
            .try_get(&stack.client.read, "/v1/accounts/me", Some(&token))
            .await;
        let watch = watch_for(&stack, started, store_pause).await;
        stack.docs_server.resume();
        let ended = Instant::now();
        let recovery = stack.recovered(&load, ended, bound).await;
        let (status, _, took, retry_after) =
            read.expect("the read API answers while its store is paused");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took < Duration::from_secs(3), "a bounded answer: {took:?}");
        assert!(retry_after.is_some(), "with Retry-After");
        assert!(
            watch.slowest_readyz < Duration::from_millis(1500),
            "{:?}",
            watch.lines()
        );
        let mut health = watch.lines();
        health.push(format!(
            "GET /v1/accounts/me {} in {} ms",
            status.as_u16(),
            took.as_millis()
        ));
        Row {
            fault: format!("secantusdb SIGSTOP {} s", store_pause.as_secs()),
            started,
            ended,
            recovery,
            health,
        }
        .record(&mut rows, &stack);
    }

    // --- PostgreSQL paused: commands answer 503 quickly, /readyz too
    if runs("pg-pause") {
        let started = Instant::now();
        stack.pg.pause();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let charge = Instant::now();
        let answer = stack
            .http
            .post(format!("{}/v1/accounts/me/charge", stack.client.write))
            .bearer_auth(&quiet)
            .json(&serde_json::json!({"amount": 1, "idempotency_key": "while-paused"}))
            .send()
            .await;
        let charge_took = charge.elapsed();
        let watch = watch_for(&stack, started, store_pause).await;
        stack.pg.resume();
        let ended = Instant::now();
        let recovery = stack.recovered(&load, ended, bound).await;
        let answer = answer.expect("the write API answers while PostgreSQL is paused");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key("retry-after"));
        assert!(
            charge_took < Duration::from_secs(3),
            "a bounded answer: {charge_took:?}"
        );
        assert!(
            watch.slowest_readyz < Duration::from_millis(1500),
            "{:?}",
            watch.lines()
        );
        let mut health = watch.lines();
        health.push(format!("POST charge 503 in {} ms", charge_took.as_millis()));
        Row {
            fault: format!("PostgreSQL SIGSTOP {} s", store_pause.as_secs()),
            started,
            ended,
            recovery,
            health,
        }
        .record(&mut rows, &stack);
    }

    // --- PostgreSQL restarted (immediate: crash recovery) under load
    if runs("pg-restart") {
        let started = Instant::now();
        stack.pg.restart();
        let ended = Instant::now();
        let watch = watch_for(&stack, started, Duration::from_secs(2)).await;
        let recovery = stack.recovered(&load, ended, bound).await;
        Row {
            fault: "PostgreSQL restarted".into(),
            started,
            ended,
            recovery,
            health: watch.lines(),
        }
        .record(&mut rows, &stack);
    }

    // --- kill -9 of each role, restarted after 5 s
    if runs("kill") {
        for role in ["projector", "relay", "write-api", "read-api"] {
            let started = Instant::now();
            stack.process(role).kill();
            let watch = watch_for(&stack, started, Duration::from_secs(5)).await;
            stack.process(role).respawn().await;
            let ended = Instant::now();
            let recovery = stack.recovered(&load, ended, bound).await;
            Row {
                fault: format!("kill -9 {role}, restart after 5 s"),
                started,
                ended,
                recovery,
                health: watch.lines(),
            }
            .record(&mut rows, &stack);
        }
    }

    // --- SIGTERM of each role: it finishes what it holds and exits
    if runs("sigterm") {
        for role in ["projector", "relay", "write-api", "read-api"] {
            let started = Instant::now();
            let exited = stack
                .process(role)
                .terminate_within(Duration::from_secs(10));
            let (took, clean) = exited.unwrap_or_else(|| {
                panic!(
                    "{role} did not exit within 10 s of SIGTERM\n{}",
                    stack.logs(60)
                )
            });
            assert!(
                clean,
                "{role} exited with an error after SIGTERM\n{}",
                stack.logs(60)
            );
            stack.process(role).respawn().await;
            let ended = Instant::now();
            let recovery = stack.recovered(&load, ended, bound).await;
            Row {
                fault: format!("SIGTERM {role}"),
                started,
                ended,
                recovery,
                health: vec![format!("exited 0 in {} ms", took.as_millis())],
            }
            .record(&mut rows, &stack);
        }
    }

    // --- the end: everything in the log once, documents equal to a fold
    load.stop().await;
    let sent = load.sent();
    if let Err(e) = stack.caught_up(bound).await {
        panic!("{e}\n{}", stack.logs(60));
    }
    let (lost, duplicated, half) = check_log(&stack.pool, &sent).await;
    let report = report(&rows, &sent, &stack.pool).await;
    eprintln!("{report}");
    if let Ok(dir) = std::env::var("TESSERA_TEST_FAULTS_REPORT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{group}.md"), &report).unwrap();
    }
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    assert!(duplicated.is_empty(), "in the log twice: {duplicated:?}");
    assert!(half.is_empty(), "refused or unknown but written: {half:?}");
    let acked = sent
        .iter()
        .filter(|s| s.answered == Answered::Acked)
        .count();
    assert!(acked > 200, "a real load ({acked} commands acknowledged)");
    compare_with_a_fold(&stack).await;
}

impl Stack {
    fn process(&mut self, role: &str) -> &mut Tessera {
        match role {
            "projector" => &mut self.projectors[0],
            "relay" => &mut self.relays[0],
            "write-api" => &mut self.writers[0],
            "read-api" => &mut self.readers[0],
            other => panic!("no role {other}"),
        }
    }
}

/// Every document of every projection against a fold of the whole log.
async fn compare_with_a_fold(stack: &Stack) {
    let log = PgEventLog::new(stack.pool.clone());
    let uri = stack.docs_server.uri();
    let docs = MongoStore::connect(&uri, "tessera")
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let compared = until_live_equals_a_fold(&log, &docs, Duration::from_secs(60)).await;
    let letters = all_documents(
        &docs,
        tessera_documents::documents::collections::DEAD_LETTERS,
    )
    .await;
    assert!(letters.is_empty(), "no dead letters: {letters:?}");
    assert!(compared > 100, "a real comparison ({compared} documents)");
}

/// The fault matrix as a Markdown table.
async fn report(rows: &[Row], sent: &[Sent], pool: &sqlx::PgPool) -> String {
    let mut out = String::from(
        "| fault | commands acknowledged during it (unknown, refused) | lost | duplicated | recovery | health and metrics during it |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let window: Vec<Sent> = sent
            .iter()
            .filter(|s| s.at >= r.started && s.at < r.ended)
            .cloned()
            .collect();
        let count = |a: Answered| window.iter().filter(|s| s.answered == a).count();
        let (lost, duplicated, _) = check_log(pool, &window).await;
        let recovery = match &r.recovery {
            Ok(d) => format!("{:.1} s", d.as_secs_f64()),
            Err(e) => format!("none: {e}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} ({}, {}) | {} | {} | {} | {} |",
            r.fault,
            count(Answered::Acked),
            count(Answered::Unknown),
            count(Answered::Refused),
            lost.len(),
            duplicated.len(),
            recovery,
            r.health.join("; ")
        );
    }
    out
}
