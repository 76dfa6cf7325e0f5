//! `tessera-race`: the seeds' contention scenarios from a Rust client, for
//! when the load generator must not be what is measured. k6 runs JavaScript
//! per request and on these 2-core machines it took a large share of the
//! CPU the stack needed (BENCHMARKS.md, "Contention"); this client costs a
//! few microseconds a request.
//!
//! - `seats`: USERS users with active queue tokens hold the same 2 seats at
//!   one instant; exactly one wins (seed 004).
//! - `coupons`: ISSUERS users ask for a QUANTITY-coupon drop at one instant,
//!   DUPLICATES of them twice; exactly QUANTITY are issued (seed 003).
//! - `queue`: USERS users take a place in one concert's waiting queue; every
//!   place is distinct, one per user, none skipped (seed 004).
//!
//! Each counts its answers and then checks the event log (or the positions)
//! against what it claims, and exits non-zero when an invariant fails.
//! Requests go over `--connections` keep-alive connections, opened before
//! the start instant; `scripts/load race <seats|coupons|queue>` runs it
//! against a stack it starts.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use futures::{stream, StreamExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "The seeds' contention scenarios against a running Tessera, from a Rust client")]
struct Args {
    /// The write API (or `serve`).
    #[arg(long)]
    write: String,
    /// The read API (or `serve`).
    #[arg(long)]
    read: String,
    /// An admin token (`tessera admin token --role admin`).
    #[arg(long)]
    admin_token: String,
    /// The JWT secret of the stack, to mint the users' tokens.
    #[arg(long)]
    jwt_secret: String,
    /// Keep-alive connections the requests share.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Where to write the summary (JSON).
    #[arg(long)]
    summary: PathBuf,
    /// How the stack runs: the seats race's goal is 2 s `embedded` and 4 s
    /// `distributed` (issue 15)
    #[arg(long, value_parser = ["embedded", "distributed"], default_value = "embedded")]
    mode: String,
    #[command(subcommand)]
    race: Race,
}

#[derive(Debug, Subcommand)]
enum Race {
    /// USERS users hold the same 2 seats at one instant.
    Seats {
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// The goal for the time until every hold is answered, ms (unset:
        /// 2,000 embedded, 4,000 distributed).
        #[arg(long)]
        goal_ms: Option<f64>,
    },
    /// ISSUERS users ask for QUANTITY coupons at one instant.
    Coupons {
        #[arg(long, default_value_t = 100)]
        quantity: u64,
        #[arg(long, default_value_t = 10_000)]
        issuers: usize,
        /// Issuers that ask twice at once.
        #[arg(long, default_value_t = 2_000)]
        duplicates: usize,
        #[arg(long, default_value_t = 1000.0)]
        goal_ms: f64,
    },
    /// USERS users take a place in one concert's waiting queue.
    Queue {
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// The goal, places per second.
        #[arg(long, default_value_t = 10_000.0)]
        goal_per_second: f64,
    },
}

/// One answer: its status, its body, how long it took.
struct Answer {
    status: StatusCode,
    body: Value,
    took: Duration,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// How many answers have `status` (and, when `codes` names any, one of
/// those error codes).
fn counted(answers: &[Answer], status: StatusCode, codes: &[&str]) -> usize {
    answers
        .iter()
        .filter(|a| a.status == status && (codes.is_empty() || codes.contains(&a.code())))
        .count()
}

/// A request to fire: method, base URL, path, bearer token, queue token, body.
struct Call {
    method: Method,
    url: String,
    token: String,
    queue: Option<String>,
    body: Option<Value>,
}

struct Api {
    http: reqwest::Client,
    args: Args,
}

impl Api {
    fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Call {
        let base = if method == Method::GET {
            &self.args.read
        } else {
            &self.args.write
        };
        Call {
            method,
            url: format!("{base}{path}"),
            token: token.to_owned(),
            queue: None,
            body,
        }
    }

    async fn send(&self, call: Call) -> Result<Answer> {
        let started = Instant::now();
        let mut req = self
            .http
            .request(call.method, &call.url)
            .bearer_auth(&call.token);
        if let Some(q) = &call.queue {
            req = req.header("x-queue-token", q);
        }
        if let Some(b) = &call.body {
            req = req.json(b);
        }
        let res = req.send().await.with_context(|| call.url.clone())?;
        let status = res.status();
        let body = res.json().await.unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            took: started.elapsed(),
        })
    }

    /// Sends every call, `--connections` at a time, answers in call order.
    async fn all(&self, calls: Vec<Call>) -> Result<Vec<Answer>> {
        let mut answers: Vec<(usize, Answer)> = stream::iter(calls.into_iter().enumerate())
            .map(|(i, c)| async move { self.send(c).await.map(|a| (i, a)) })
            .buffer_unordered(self.args.connections)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        answers.sort_by_key(|(i, _)| *i);
        Ok(answers.into_iter().map(|(_, a)| a).collect())
    }

    async fn must(&self, call: Call, status: StatusCode) -> Result<Value> {
        let what = format!("{} {}", call.method, call.url);
        let a = self.send(call).await?;
        ensure!(a.status == status, "{what}: {} {}", a.status, a.body);
        Ok(a.body)
    }

    /// Opens the connections before the start instant, as a crowd's
    /// clients would have them open (k6's VUs did too).
    async fn warm(&self) -> Result<()> {
        let calls = (0..self.args.connections)
            .map(|_| self.call(Method::GET, "/healthz", "", None))
            .collect();
        self.all(calls).await.map(drop)
    }

    /// Every event of one aggregate of type `event_type` (the audit view,
    /// paged).
    async fn events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: &str,
    ) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/v1/admin/events?limit=1000&aggregate_type={aggregate_type}&aggregate_id={aggregate_id}"
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self
                .must(
                    self.call(Method::GET, &path, &self.args.admin_token, None),
                    StatusCode::OK,
                )
                .await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    items.retain(|e| e["event_type"] == event_type);
                    return Ok(items);
                }
            }
        }
    }

    fn user_token(&self, user_id: &str) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "sub": user_id, "role": "user", "iss": "tessera", "aud": "tessera-api",
            "iat": now, "exp": now + 4 * 3600, "jti": uuid::Uuid::now_v7().to_string(),
        });
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.args.jwt_secret.as_bytes()),
        )?)
    }

    fn admin(&self, method: Method, path: &str, body: Value) -> Call {
        self.call(method, path, &self.args.admin_token, Some(body))
    }

    /// A concert with one schedule of `seats` seats: (concert, schedule).
    async fn concert(&self, name: &str, seats: u32) -> Result<(String, String)> {
        let concert = self
            .must(
                self.admin(Method::POST, "/v1/concerts", json!({"name": name})),
                StatusCode::CREATED,
            )
            .await?["concert_id"]
            .as_str()
            .context("concert_id")?
            .to_owned();
        let layout: Vec<Value> = (1..=seats)
            .map(|n| json!({"seat_no": n, "price": 1000}))
            .collect();
        let schedule = self
            .must(
                self.admin(
                    Method::POST,
                    &format!("/v1/concerts/{concert}/schedules"),
                    json!({"starts_at": "2027-03-01T19:00:00Z", "seats": layout}),
                ),
                StatusCode::CREATED,
            )
            .await?["schedule_id"]
            .as_str()
            .context("schedule_id")?
            .to_owned();
        Ok((concert, schedule))
    }

    /// Users `prefix-0..n` with their tokens.
    fn users(&self, prefix: &str, n: usize) -> Result<Vec<(String, String)>> {
        (0..n)
            .map(|i| {
                let id = format!("{prefix}-{i}");
                self.user_token(&id).map(|t| (id, t))
            })
            .collect()
    }
}

/// What a race found: figures, checks (name → (what, ok)), whether the goal
/// was met.
struct Outcome {
    description: String,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    unexpected: usize,
    checks: BTreeMap<&'static str, (String, bool)>,
    goal: (String, bool),
    figures: Value,
}

async fn seats(api: &Api, users: usize, goal_ms: f64, run: &str) -> Result<Outcome> {
    let (concert, schedule) = api.concert(&format!("race-{run}"), 10).await?;
    let racers = api.users(&format!("racer-{run}"), users)?;
    let tickets = api
        .all(
            racers
                .iter()
                .map(|(_, t)| {
                    api.call(
                        Method::POST,
                        "/v1/queue/tokens",
                        t,
                        Some(json!({"concert_id": concert})),
                    )
                })
                .collect(),
        )
        .await?;
    let mut queue_tokens = Vec::with_capacity(users);
    for a in &tickets {
        ensure!(
            a.status == StatusCode::CREATED,
            "queue token: {} {}",
            a.status,
            a.body
        );
        queue_tokens.push(a.body["token"].as_str().context("token")?.to_owned());
    }
    // positions are admitted in order: once the last is active, all are
    let last = tickets
        .iter()
        .enumerate()
        .max_by_key(|(_, a)| a.body["position"].as_u64())
        .map(|(i, _)| i)
        .context("no racers")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut call = api.call(Method::GET, "/v1/queue/status", &racers[last].1, None);
        call.queue = Some(queue_tokens[last].clone());
        let status = api.send(call).await?;
        if status.body["status"] == "active" {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the queue did not admit the racers: {}",
            status.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.warm().await?;
    let holds: Vec<Call> = racers
        .iter()
        .zip(queue_tokens)
        .map(|((_, t), q)| {
            let mut c = api.call(
                Method::POST,
                "/v1/reservations",
                t,
                Some(json!({"schedule_id": schedule, "seat_nos": [1, 2]})),
            );
            c.queue = Some(q);
            c
        })
        .collect();
    let start = Instant::now();
    let answers = api.all(holds).await?;
    let elapsed = start.elapsed();
    let won = counted(&answers, StatusCode::CREATED, &[]);
    let lost = counted(&answers, StatusCode::CONFLICT, &["seat_unavailable"]);
    let held: Vec<Value> = api.events("schedule", &schedule, "SeatsHeld").await?;
    let mut checks = BTreeMap::new();
    checks.insert(
        "one_winner",
        (format!("201 answers == 1 (got {won})"), won == 1),
    );
    checks.insert(
        "the_rest_lost",
        (
            format!("409 seat_unavailable == {} (got {lost})", users - 1),
            lost == users - 1,
        ),
    );
    checks.insert(
        "one_hold_in_log",
        (
            format!(
                "SeatsHeld events of the schedule == 1 for seats [1, 2] (got {})",
                held.len()
            ),
            held.len() == 1 && held[0]["payload"]["seat_nos"] == json!([1, 2]),
        ),
    );
    let ms = elapsed.as_secs_f64() * 1000.0;
    Ok(Outcome {
        description: format!("{users} users with active queue tokens hold the same 2 seats at one instant; exactly one hold wins"),
        requests: users,
        elapsed,
        unexpected: users - won - lost,
        latencies: answers.iter().map(|a| a.took).collect(),
        checks,
        goal: (format!("all answered within {goal_ms} ms (took {ms:.0} ms)"), ms <= goal_ms),
        figures: json!({"all answered ms": round(ms), "users": users}),
    })
}

async fn coupons(
    api: &Api,
    quantity: u64,
    issuers: usize,
    duplicates: usize,
    goal_ms: f64,
    run: &str,
) -> Result<Outcome> {
    let coupon = api
        .must(
            api.admin(
                Method::POST,
                "/v1/coupons",
                json!({"name": format!("race-{run}"), "total_quantity": quantity, "discount_amount": 100}),
            ),
            StatusCode::CREATED,
        )
        .await?["coupon_id"]
        .as_str()
        .context("coupon_id")?
        .to_owned();
    let people = api.users(&format!("issuer-{run}"), issuers)?;
    // the first DUPLICATES issuers ask twice, the two asks side by side so
    // they are in flight together
    let asks: Vec<Call> = people
        .iter()
        .enumerate()
        .flat_map(|(i, (_, t))| std::iter::repeat_n(t, if i < duplicates { 2 } else { 1 }))
        .map(|t| {
            api.call(
                Method::POST,
                &format!("/v1/coupons/{coupon}/issue"),
                t,
                None,
            )
        })
        .collect();
    let requests = asks.len();
    api.warm().await?;
    let start = Instant::now();
    let answers = api.all(asks).await?;
    let elapsed = start.elapsed();
    let issued = counted(&answers, StatusCode::CREATED, &[]);
    let refused = counted(
        &answers,
        StatusCode::CONFLICT,
        &["sold_out", "already_issued"],
    );
    let events: Vec<Value> = api.events("coupon", &coupon, "CouponIssued").await?;
    let winners: HashSet<&str> = events
        .iter()
        .filter_map(|e| e["payload"]["user_id"].as_str())
        .collect();
    let mut counts: Vec<u64> = events
        .iter()
        .filter_map(|e| e["payload"]["issued"].as_u64())
        .collect();
    counts.sort_unstable();
    let dense = counts.iter().enumerate().all(|(i, c)| *c == i as u64 + 1);
    let mut checks = BTreeMap::new();
    checks.insert(
        "issued_answers",
        (
            format!("201 answers == {quantity} (got {issued})"),
            issued as u64 == quantity,
        ),
    );
    checks.insert(
        "issued_in_log",
        (
            format!(
                "CouponIssued events == {quantity}, to distinct users, counted 1..{quantity} (got {} to {} users)",
                events.len(),
                winners.len()
            ),
            events.len() as u64 == quantity && winners.len() as u64 == quantity && dense,
        ),
    );
    let ms = elapsed.as_secs_f64() * 1000.0;
    Ok(Outcome {
        description: format!("{issuers} users ask for a {quantity}-coupon drop at one instant, {duplicates} of them twice; exactly {quantity} are issued"),
        requests,
        elapsed,
        unexpected: requests - issued - refused,
        latencies: answers.iter().map(|a| a.took).collect(),
        checks,
        goal: (format!("all answered within {goal_ms} ms (took {ms:.0} ms)"), ms <= goal_ms),
        figures: json!({"all answered ms": round(ms), "issued": issued, "refused": refused}),
    })
}

async fn queue(api: &Api, users: usize, goal: f64, run: &str) -> Result<Outcome> {
    let (concert, _) = api.concert(&format!("queue-{run}"), 1).await?;
    let people = api.users(&format!("queuer-{run}"), users)?;
    let asks = |people: &[(String, String)]| -> Vec<Call> {
        people
            .iter()
            .map(|(_, t)| {
                api.call(
                    Method::POST,
                    "/v1/queue/tokens",
                    t,
                    Some(json!({"concert_id": concert})),
                )
            })
            .collect()
    };
    api.warm().await?;
    let start = Instant::now();
    let answers = api.all(asks(&people)).await?;
    let elapsed = start.elapsed();
    let placed = counted(&answers, StatusCode::CREATED, &[]);
    let mut positions: Vec<u64> = answers
        .iter()
        .filter_map(|a| a.body["position"].as_u64())
        .collect();
    positions.sort_unstable();
    let dense = positions
        .iter()
        .enumerate()
        .all(|(i, p)| *p == i as u64 + 1);
    // asking again keeps the place: a sample of a thousand users
    let sample = people.len().min(1000);
    let again = api.all(asks(&people[..sample])).await?;
    let kept = again
        .iter()
        .zip(&answers)
        .filter(|(b, a)| b.status == StatusCode::OK && b.body["position"] == a.body["position"])
        .count();
    let mut checks = BTreeMap::new();
    checks.insert(
        "placed",
        (
            format!("201 answers == {users} (got {placed})"),
            placed == users,
        ),
    );
    checks.insert(
        "one_place_each",
        (
            format!(
                "positions are exactly 1..{users}, each once (got {} positions)",
                positions.len()
            ),
            positions.len() == users && dense,
        ),
    );
    checks.insert(
        "asking_again_keeps_the_place",
        (
            format!("200 with the same position == {sample} (got {kept})"),
            kept == sample,
        ),
    );
    let rate = users as f64 / elapsed.as_secs_f64();
    Ok(Outcome {
        description: format!("{users} users take a place in one concert's waiting queue at once; one place each, none skipped"),
        requests: users,
        elapsed,
        unexpected: users - placed,
        latencies: answers.iter().map(|a| a.took).collect(),
        checks,
        goal: (format!("places per second >= {goal} (got {rate:.0})"), rate >= goal),
        figures: json!({"places per second": round(rate)}),
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(300))
        .build()?;
    let api = Arc::new(Api { http, args });
    let run = uuid::Uuid::now_v7().simple().to_string();
    let run = &run[run.len() - 10..];
    let (name, outcome) = match api.args.race {
        Race::Seats { users, goal_ms } => {
            let distributed = api.args.mode == "distributed";
            let goal_ms = goal_ms.unwrap_or(if distributed { 4000.0 } else { 2000.0 });
            ("race-seats", seats(&api, users, goal_ms, run).await?)
        }
        Race::Coupons {
            quantity,
            issuers,
            duplicates,
            goal_ms,
        } => (
            "race-coupons",
            coupons(
                &api,
                quantity,
                issuers,
                duplicates.min(issuers),
                goal_ms,
                run,
            )
            .await?,
        ),
        Race::Queue {
            users,
            goal_per_second,
        } => (
            "race-queue",
            queue(&api, users, goal_per_second, run).await?,
        ),
    };
    let mut ms: Vec<f64> = outcome
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let passed = outcome.checks.values().all(|(_, ok)| *ok) && outcome.unexpected == 0;
    let check = |metric: &str, threshold: &str, ok: bool| json!({"metric": metric, "threshold": threshold, "ok": ok});
    let summary = json!({
        "scenario": name,
        "description": outcome.description,
        "scale": Value::Null,
        "requests": outcome.requests,
        "duration_s": round(outcome.elapsed.as_secs_f64()),
        "rps": round(outcome.requests as f64 / outcome.elapsed.as_secs_f64()),
        "latency_ms": {
            "p50": round(percentile(&ms, 50.0)), "p95": round(percentile(&ms, 95.0)),
            "p99": round(percentile(&ms, 99.0)), "max": round(ms.last().copied().unwrap_or(f64::NAN)),
        },
        "errors": {"count": outcome.unexpected, "rate": outcome.unexpected as f64 / outcome.requests as f64},
        "correctness": {"passed": passed, "checks": outcome.checks.iter()
            .map(|(k, (what, ok))| (k.to_string(), check(k, what, *ok)))
            .collect::<serde_json::Map<_, _>>()},
        "thresholds_passed": outcome.goal.1,
        "thresholds": {"goal": check("goal", &outcome.goal.0, outcome.goal.1)},
        "figures": Value::Object({
            let mut f = outcome.figures.as_object().cloned().unwrap_or_default();
            f.insert("keep-alive connections".into(), json!(api.args.connections));
            f
        }),
        "note": "tessera-race (a Rust client) runs on the same machine as the stack and competes with it for the CPUs",
    });
    std::fs::write(&api.args.summary, serde_json::to_vec_pretty(&summary)?)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !passed {
        bail!("an invariant failed");
    }
    if !outcome.goal.1 {
        std::process::exit(99);
    }
    Ok(())
}
