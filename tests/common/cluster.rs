//! Two `tessera write-api` processes on one PostgreSQL, driven by
//! hundreds of concurrent requests: the race tests' cluster. Invariants are
//! checked against the event log it reads.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_http::auth::{Authenticator, Role};
use tessera_testkit::Deadline;

use super::stack::{Stack, Topology};

const SECRET: &str = "a-race-test-secret-that-is-long-enough-for-hs256";

/// Two write-side processes on one database.
pub struct Cluster {
    pub stack: Stack,
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub auth: Authenticator,
}

pub async fn cluster(extra: &[(&'static str, &str)]) -> Cluster {
    let mut env = vec![
        ("TESSERA_DATABASE_MAX_CONNECTIONS", "12"),
        ("TESSERA_JWT_SECRET", SECRET),
        ("TESSERA_QUEUE_ADMIT_BATCH", "5000"),
        ("TESSERA_QUEUE_ADMIT_INTERVAL_MS", "100"),
        ("TESSERA_COMMAND_MAX_ATTEMPTS", "30"),
        ("TESSERA_LOG", "warn,tessera=info"),
        // the defaults: a race must not see its holds or orders expire
        // under it (the scenarios' 8 s order TTL expired a drop's orders
        // before their payment on a contended CI machine)
        ("TESSERA_HOLD_TTL_SECONDS", "300"),
        ("TESSERA_ORDER_TTL_SECONDS", "900"),
        ("TESSERA_SWEEP_INTERVAL_MS", "1000"),
    ];
    env.extend_from_slice(extra);
    let stack = Stack::distributed(Topology::writers(2), &env).await;
    Cluster {
        pool: stack.pg.as_ref().unwrap().pool(4).await,
        stack,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        auth: Authenticator::hs256(
            SECRET.as_bytes(),
            "tessera",
            "tessera-api",
            Duration::from_secs(3600),
        )
        .unwrap(),
    }
}

impl Cluster {
    /// Alternates between the two processes.
    pub fn base(&self, i: usize) -> &str {
        &self.stack.writers[i % 2].addr
    }

    /// The error lines process `i % 2` logged.
    fn errors_logged(&self, i: usize) -> String {
        let logs = self.stack.writers[i % 2].logs();
        let errors: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(r#""log.level":"error""#))
            .collect();
        errors[errors.len().saturating_sub(20)..].join("\n")
    }

    pub fn token(&self, user: &str) -> String {
        self.auth.issue(user, Role::User).access_token
    }

    pub async fn send(
        &self,
        i: usize,
        method: Method,
        path: &str,
        token: &str,
        queue: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base(i)))
            .bearer_auth(token);
        if let Some(q) = queue {
            req = req.header("x-queue-token", q);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the write API answers");
        let status = res.status();
        let body = res.json().await.unwrap_or(Value::Null);
        // a 500 is never a race's answer: say what the process logged
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{body}\n{}",
            self.errors_logged(i)
        );
        (status, body)
    }

    /// Holds seat `i + 1` of `schedule` for the token's user, through
    /// process `i % 2`; the hold must be granted.
    pub async fn hold_seat(&self, i: usize, token: &str, queue: &str, schedule: &str) -> Value {
        let seat = i as u32 + 1;
        let (status, hold) = self
            .send(
                i,
                Method::POST,
                "/v1/reservations",
                token,
                Some(queue),
                Some(json!({"schedule_id": schedule, "seat_nos": [seat]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hold}");
        hold
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let admin = self.stack.admin.clone();
        let (status, body) = self
            .send(0, Method::POST, path, &admin, None, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// A concert with one schedule of `seats` seats at `price` each.
    pub async fn schedule(&self, seats: u32, price: i64) -> (String, String) {
        let concert = self.admin("/v1/concerts", json!({"name": "Race"})).await;
        let cid = concert["concert_id"].as_str().unwrap().to_owned();
        let layout: Vec<Value> = (1..=seats)
            .map(|n| json!({"seat_no": n, "price": price}))
            .collect();
        let s = self
            .admin(
                &format!("/v1/concerts/{cid}/schedules"),
                json!({"starts_at": "2026-12-24T19:00:00Z", "seats": layout}),
            )
            .await;
        (cid, s["schedule_id"].as_str().unwrap().to_owned())
    }

    /// `n` registered accounts (`<prefix><i>@example.com`) charged with
    /// `amount` points each: (account id, access token). Registered 16 at a
    /// time over both processes; the token is minted, not logged in for
    /// (one password hash per account, not two).
    pub async fn funded(&self, prefix: &str, n: u32, amount: i64) -> Vec<(String, String)> {
        stream::iter(0..n as usize)
            .map(|i| async move {
                // password hashing is bounded: a busy write API answers 503
                // with Retry-After, and a client tries again
                let deadline = Deadline::new(Duration::from_secs(60), "an account is registered");
                let res = loop {
                    let res = self
                        .http
                        .post(format!("{}/v1/accounts", self.base(i)))
                        .json(&json!({"email": format!("{prefix}{i}@example.com"), "password": "password123", "nickname": prefix}))
                        .send()
                        .await
                        .expect("the write API answers");
                    if res.status() != StatusCode::SERVICE_UNAVAILABLE {
                        break res;
                    }
                    deadline.tick().await;
                };
                assert_eq!(res.status(), StatusCode::CREATED);
                let body: Value = res.json().await.unwrap();
                let id = body["account_id"].as_str().unwrap().to_owned();
                let token = self.token(&id);
                let (s, b) = self
                    .send(
                        i + 1,
                        Method::POST,
                        "/v1/accounts/me/charge",
                        &token,
                        None,
                        Some(json!({"amount": amount, "idempotency_key": "seed"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{b}");
                (id, token)
            })
            .buffered(16)
            .collect()
            .await
    }

    /// Queue tokens for `users`, returned once all are admitted.
    pub async fn admitted(&self, concert_id: &str, users: &[String]) -> Vec<String> {
        let tokens: Vec<String> = stream::iter(users.iter().enumerate())
            .map(|(i, u)| async move {
                let (status, body) = self
                    .send(
                        i,
                        Method::POST,
                        "/v1/queue/tokens",
                        &self.token(u),
                        None,
                        Some(json!({"concert_id": concert_id})),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                body["token"].as_str().unwrap().to_owned()
            })
            .buffered(64)
            .collect()
            .await;
        let deadline = Deadline::new(Duration::from_secs(30), "every queue position is admitted");
        loop {
            let admitted: Option<i64> = sqlx::query_scalar(
                "SELECT admitted_up_to FROM queue_positions WHERE concert_id = $1",
            )
            .bind(concert_id)
            .fetch_optional(&self.pool)
            .await
            .unwrap();
            if admitted.unwrap_or(0) >= users.len() as i64 {
                return tokens;
            }
            deadline.tick().await;
        }
    }

    /// Waits (30 s at most) until `count_sql` counts nothing.
    pub async fn until_none(&self, count_sql: &str, what: &str) {
        let deadline = Deadline::new(Duration::from_secs(30), what);
        loop {
            let open: i64 = sqlx::query_scalar(count_sql)
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if open == 0 {
                return;
            }
            deadline.tick().await;
        }
    }

    pub async fn events(&self, aggregate_type: &str, event_type: &str) -> Vec<(String, Value)> {
        sqlx::query_as(
            "SELECT aggregate_id, payload FROM events WHERE aggregate_type = $1 AND event_type = $2 ORDER BY global_position",
        )
        .bind(aggregate_type)
        .bind(event_type)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}
