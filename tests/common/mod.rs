//! Drives `tessera` processes over HTTP: spawning roles, and one scenario
//! of the accounts and guilds contract that both run modes must pass.

#![allow(dead_code)] // each test binary uses a part of this module

pub mod fold;
pub mod load;
pub mod stack;

/// The settings every production role of one test's stack shares: its own
/// database, topic (4 partitions), consumer groups and MongoDB database.
pub fn stack_env(
    pg: &PgDatabase,
    kafka: &KafkaTopic,
    mongo: &MongoDatabase,
) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_DATABASE_URL", pg.url().to_owned()),
        ("TESSERA_DATABASE_MAX_CONNECTIONS", "6".to_owned()),
        ("TESSERA_KAFKA_BROKERS", kafka.brokers.clone()),
        ("TESSERA_KAFKA_TOPIC", kafka.topic.clone()),
        ("TESSERA_KAFKA_PARTITIONS", "4".to_owned()),
        ("TESSERA_MONGODB_URI", mongo.uri.clone()),
        ("TESSERA_MONGODB_DATABASE", mongo.name.clone()),
        (
            "TESSERA_JWT_SECRET",
            "a-test-secret-that-is-long-enough-for-hs256".to_owned(),
        ),
    ]
}

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_testkit::{Deadline, KafkaTopic, MongoDatabase, PgDatabase};

/// A running `tessera` process.
pub struct Tessera {
    child: Child,
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
    role: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Tessera {
    /// Starts `tessera <args>` with `env` on a free port (unless `env` sets
    /// `TESSERA_HTTP_ADDR`) and waits until it listens.
    pub async fn spawn(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TESSERA_HTTP_ADDR", "127.0.0.1:0")
            .env("TESSERA_LOG", "info")
            .env("TESSERA_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the tessera binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["message"] == "listening" {
                            let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let role = args.first().copied().unwrap_or("serve").to_owned();
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap();
        let Ok(addr) = addr else {
            let _ = child.kill();
            panic!(
                "tessera {role} did not start listening:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Self {
            child,
            addr: format!("http://{addr}"),
            log,
            role,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// Starts the same command again (after a kill or a stop), keeping the
    /// earlier log lines.
    pub async fn respawn(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let fresh = Self::spawn(&args, &env).await;
        let earlier = std::mem::take(&mut *self.log.lock().unwrap());
        fresh.log.lock().unwrap().splice(0..0, earlier);
        let _ = std::mem::replace(self, fresh);
    }

    /// SIGTERM, then how long it took to exit and whether it exited 0 (or
    /// `None` if it had not exited within `bound`, after which it is killed).
    pub fn terminate_within(&mut self, bound: Duration) -> Option<(Duration, bool)> {
        let started = std::time::Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while started.elapsed() < bound {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((started.elapsed(), status.success()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("waits for the process");
        assert!(
            status.success(),
            "tessera {} exited with {status} after SIGTERM:\n{}",
            self.role,
            self.logs()
        );
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of one deployment: commands go to `write`, reads to `read`
/// (the same address in the all-in-one mode).
pub struct Client {
    pub write: String,
    pub read: String,
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub stale: bool,
    pub body: Value,
}

impl Client {
    pub fn new(write: &str, read: &str) -> Self {
        Self {
            write: write.to_owned(),
            read: read.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let base = if method == Method::GET {
            &self.read
        } else {
            &self.write
        };
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let stale = res.headers().get("x-stale").is_some_and(|v| v == "true");
        let body = res.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            stale,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Polls a read until `check` holds (lists have no `min_version`).
    pub async fn get_until(
        &self,
        path: &str,
        token: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Deadline::new(Duration::from_secs(60), what);
        loop {
            let a = self.get(path, token).await;
            if a.status == StatusCode::OK && check(&a.body) {
                return a.body;
            }
            deadline.tick().await;
        }
    }

    /// Like [`get_until`](Self::get_until), but answers `None` at the
    /// deadline instead of panicking, so the caller can show logs.
    pub async fn try_get_until(
        &self,
        path: &str,
        token: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let a = self.get(path, token).await;
            if a.status == StatusCode::OK && check(&a.body) {
                return Some(a.body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn register(&self, email: &str, nickname: &str) -> (String, String) {
        let a = self
            .call(
                Method::POST,
                "/v1/accounts",
                None,
                Some(json!({"email": email, "password": "password123", "nickname": nickname})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let id = a.body["account_id"].as_str().unwrap().to_owned();
        (id, self.login(email).await)
    }

    pub async fn login(&self, email: &str) -> String {
        let a = self
            .call(
                Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({"email": email, "password": "password123"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body["access_token"].as_str().unwrap().to_owned()
    }
}

pub struct Outcome {
    pub owner_token: String,
    pub ann_token: String,
    pub guild_id: String,
    pub balance: i64,
}

/// The accounts and guilds sections of API.md, end to end: commands, then
/// reads that see them (read-your-writes by `min_version`), pagination, and
/// the fan-out of a rename and a deletion to members' guild lists.
pub async fn accounts_and_guilds(c: &Client) -> Outcome {
    let (owner_id, owner) = c.register("owner@example.com", "owner").await;
    let (ann_id, ann) = c.register("ann@example.com", "ann").await;
    let (_, bob) = c.register("bob@example.com", "bob").await;

    // points: idempotent charge, then read it back at that version
    let charge = json!({"amount": 500, "idempotency_key": "first"});
    let a = c
        .call(
            Method::POST,
            "/v1/accounts/me/charge",
            Some(&owner),
            Some(charge.clone()),
        )
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (StatusCode::OK, json!({"balance": 500, "version": 2}))
    );
    let again = c
        .call(
            Method::POST,
            "/v1/accounts/me/charge",
            Some(&owner),
            Some(charge),
        )
        .await;
    assert_eq!(again.body, a.body, "the same key answers the same");
    let me = c.get("/v1/accounts/me?min_version=2", &owner).await;
    assert_eq!(
        (me.status, me.stale),
        (StatusCode::OK, false),
        "{}",
        me.body
    );
    assert_eq!(me.body["balance"], 500);
    assert_eq!(me.body["email"], "owner@example.com");
    let p = c
        .call(
            Method::PATCH,
            "/v1/accounts/me",
            Some(&owner),
            Some(json!({"nickname": "Olive"})),
        )
        .await;
    assert_eq!(p.body["version"], 3);
    let me = c.get("/v1/accounts/me?min_version=3", &owner).await;
    assert_eq!(
        (me.body["nickname"].as_str(), me.body["version"].as_u64()),
        (Some("Olive"), Some(3))
    );
    let history = c
        .get_until(
            "/v1/accounts/me/history",
            &owner,
            "the charge is in the history",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
    assert_eq!(history["items"][0]["amount"], 500);
    assert_eq!(history["items"][0]["kind"], "charge");

    // a guild, its members and their nicknames
    let g = c
        .call(
            Method::POST,
            "/v1/guilds",
            Some(&owner),
            Some(json!({"name": "Crabs"})),
        )
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let gid = g.body["guild_id"].as_str().unwrap().to_owned();
    let guild = |v: u64| format!("/v1/guilds/{gid}?min_version={v}");
    let read = c.get(&guild(1), &ann).await;
    assert_eq!(
        (read.status, read.body["owner_id"].as_str()),
        (StatusCode::OK, Some(owner_id.as_str()))
    );
    for t in [&ann, &bob] {
        let j = c
            .call(
                Method::POST,
                &format!("/v1/guilds/{gid}/members"),
                Some(t),
                None,
            )
            .await;
        assert_eq!(j.status, StatusCode::CREATED, "{}", j.body);
    }
    let dup = c
        .call(
            Method::POST,
            &format!("/v1/guilds/{gid}/members"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_member"))
    );
    let n = c
        .call(
            Method::PUT,
            &format!("/v1/guilds/{gid}/members/me/nickname"),
            Some(&ann),
            Some(json!({"nickname": "Annie"})),
        )
        .await;
    assert_eq!(n.body["version"], 4);
    let cat = c
        .call(
            Method::POST,
            &format!("/v1/guilds/{gid}/categories"),
            Some(&owner),
            Some(json!({"name": "Talk"})),
        )
        .await;
    let ch = c
        .call(
            Method::POST,
            &format!("/v1/guilds/{gid}/channels"),
            Some(&owner),
            Some(
                json!({"name": "general", "kind": "forum", "category_id": cat.body["category_id"]}),
            ),
        )
        .await;
    assert_eq!(
        (ch.status, ch.body["version"].as_u64()),
        (StatusCode::CREATED, Some(6)),
        "{}",
        ch.body
    );
    let read = c.get(&guild(6), &bob).await;
    assert_eq!(read.body["member_count"], 3);
    assert_eq!(read.body["categories"][0]["name"], "Talk");
    assert_eq!(read.body["channels"][0]["kind"], "forum");
    assert_eq!(
        read.body["channels"][0]["category_id"],
        cat.body["category_id"]
    );

    // members, two to a page
    // lists are eventually consistent: wait for the whole expected list
    let ann_key = ann_id.clone();
    let all = c
        .get_until(
            &format!("/v1/guilds/{gid}/members?limit=100"),
            &bob,
            "three members, ann as Annie",
            move |b| {
                b["items"].as_array().is_some_and(|items| {
                    items.len() == 3
                        && items
                            .iter()
                            .any(|m| m["user_id"] == ann_key.as_str() && m["nickname"] == "Annie")
                })
            },
        )
        .await;
    // then page through it, two at a time
    let first = c
        .get(&format!("/v1/guilds/{gid}/members?limit=2"), &bob)
        .await
        .body;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = c
        .get(
            &format!("/v1/guilds/{gid}/members?limit=2&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(second.body["next_cursor"], Value::Null);
    let mut paged: Vec<Value> = first["items"].as_array().unwrap().clone();
    paged.extend(second.body["items"].as_array().unwrap().clone());
    assert_eq!(
        &paged,
        all["items"].as_array().unwrap(),
        "pages add up to the list"
    );
    let bad = c
        .get(&format!("/v1/guilds/{gid}/members?limit=500"), &bob)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = c
        .get(&format!("/v1/guilds/{gid}/members?cursor=%%%"), &bob)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // a rename reaches every member's guild list; leaving removes it
    let r = c
        .call(
            Method::PATCH,
            &format!("/v1/guilds/{gid}"),
            Some(&owner),
            Some(json!({"name": "Lobsters"})),
        )
        .await;
    assert_eq!(r.body["version"], 7);
    let mine = c
        .get_until(
            "/v1/me/guilds",
            &ann,
            "the rename reaches ann's list",
            |b| b["items"][0]["name"] == "Lobsters",
        )
        .await;
    assert_eq!(mine["items"][0]["nickname"], "Annie");
    let leave = c
        .call(
            Method::DELETE,
            &format!("/v1/guilds/{gid}/members/me"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(leave.status, StatusCode::OK);
    c.get_until("/v1/me/guilds", &bob, "bob's list is empty", |b| {
        b["items"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let read = c.get(&guild(8), &ann).await;
    assert_eq!(read.body["member_count"], 2);

    // a version the document never reaches: the wait is bounded and says so
    let stale = c.get(&guild(99), &ann).await;
    assert_eq!((stale.status, stale.stale), (StatusCode::OK, true));

    // deletion: commands and reads answer 410, lists drop it
    let d = c
        .call(
            Method::DELETE,
            &format!("/v1/guilds/{gid}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(d.body["version"], 9);
    let read = c.get(&guild(9), &ann).await;
    assert_eq!(
        (read.status, read.body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("gone"))
    );
    let late = c
        .call(
            Method::POST,
            &format!("/v1/guilds/{gid}/members"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(late.status, StatusCode::GONE);
    c.get_until(
        "/v1/me/guilds",
        &ann,
        "the deleted guild leaves ann's list",
        |b| b["items"].as_array().is_some_and(Vec::is_empty),
    )
    .await;
    let unknown = c.get("/v1/guilds/no-such-guild", &ann).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let anonymous = c.call(Method::GET, "/v1/me/guilds", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    Outcome {
        owner_token: owner,
        ann_token: ann,
        guild_id: gid,
        balance: 500,
    }
}

/// Mints an operator token with `tessera admin token`, as an operator would.
pub fn admin_token(env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(["admin", "token", "--user", "admin-1", "--role", "admin"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the tessera binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn code_of(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or_default()
}

/// Takes a queue token for a concert and waits until it is admitted.
pub async fn active_queue_token(c: &Client, user: &str, concert_id: &str) -> String {
    let t = c
        .call(
            Method::POST,
            "/v1/queue/tokens",
            Some(user),
            Some(json!({ "concert_id": concert_id })),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
    let token = t.body["token"].as_str().unwrap().to_owned();
    let deadline = Deadline::new(Duration::from_secs(30), "the queue token is admitted");
    loop {
        let res = c
            .http
            .get(format!("{}/v1/queue/status", c.read))
            .bearer_auth(user)
            .header("x-queue-token", &token)
            .send()
            .await
            .unwrap();
        let status: Value = res.json().await.unwrap();
        if status["status"] == "active" {
            return token;
        }
        assert_eq!(status["status"], "waiting", "{status}");
        deadline.tick().await;
    }
}

impl Client {
    /// A call with an `X-Queue-Token`.
    pub async fn queued(
        &self,
        method: Method,
        path: &str,
        user: &str,
        queue: &str,
        body: Option<Value>,
    ) -> Answer {
        let base = if method == Method::GET {
            &self.read
        } else {
            &self.write
        };
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(user)
            .header("x-queue-token", queue);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let stale = res.headers().get("x-stale").is_some_and(|v| v == "true");
        Answer {
            status,
            stale,
            body: res.json().await.unwrap_or(Value::Null),
        }
    }
}

/// The board, concerts/queue/reservations and coupons sections of API.md
/// end to end. Expects the hold TTL to be a few seconds and the queue to
/// admit within a second.
pub async fn board_and_commerce(c: &Client, admin: &str) {
    let (_, poster) = c.register("poster@example.com", "poster").await;
    let (fan_id, fan) = c.register("fan@example.com", "fan").await;
    let (_, rival) = c.register("rival@example.com", "rival").await;

    // --- board
    let g = c
        .call(
            Method::POST,
            "/v1/guilds",
            Some(&poster),
            Some(json!({"name": "Forum"})),
        )
        .await;
    let gid = g.body["guild_id"].as_str().unwrap().to_owned();
    let forum = c
        .call(
            Method::POST,
            &format!("/v1/guilds/{gid}/channels"),
            Some(&poster),
            Some(json!({"name": "forum", "kind": "forum"})),
        )
        .await;
    let forum = forum.body["channel_id"].as_str().unwrap().to_owned();
    let text = c
        .call(
            Method::POST,
            &format!("/v1/guilds/{gid}/channels"),
            Some(&poster),
            Some(json!({"name": "chat", "kind": "text"})),
        )
        .await;
    let text = text.body["channel_id"].as_str().unwrap().to_owned();
    c.call(
        Method::POST,
        &format!("/v1/guilds/{gid}/members"),
        Some(&fan),
        None,
    )
    .await;
    let post_body = json!({"title": "Setlist?", "content": "What did they play?"});
    let p = c
        .call(
            Method::POST,
            &format!("/v1/channels/{forum}/posts"),
            Some(&fan),
            Some(post_body.clone()),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let pid = p.body["post_id"].as_str().unwrap().to_owned();
    let refused = c
        .call(
            Method::POST,
            &format!("/v1/channels/{text}/posts"),
            Some(&fan),
            Some(post_body.clone()),
        )
        .await;
    assert_eq!(
        (refused.status, code_of(&refused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_forum_channel")
    );
    let refused = c
        .call(
            Method::POST,
            &format!("/v1/channels/{forum}/posts"),
            Some(&rival),
            Some(post_body.clone()),
        )
        .await;
    assert_eq!(
        (refused.status, code_of(&refused)),
        (StatusCode::FORBIDDEN, "not_member")
    );
    let refused = c
        .call(
            Method::POST,
            "/v1/channels/no-such-channel/posts",
            Some(&fan),
            Some(post_body),
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let cm = c
        .call(
            Method::POST,
            &format!("/v1/posts/{pid}/comments"),
            Some(&poster),
            Some(json!({"content": "All the hits"})),
        )
        .await;
    assert_eq!(cm.status, StatusCode::CREATED, "{}", cm.body);
    let emoji = "%F0%9F%91%8D"; // 👍
    let r1 = c
        .call(
            Method::PUT,
            &format!("/v1/posts/{pid}/reactions/{emoji}"),
            Some(&fan),
            None,
        )
        .await;
    let r2 = c
        .call(
            Method::PUT,
            &format!("/v1/posts/{pid}/reactions/{emoji}"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(
        r1.body["version"], r2.body["version"],
        "reacting twice changes nothing"
    );
    let r3 = c
        .call(
            Method::PUT,
            &format!("/v1/posts/{pid}/reactions/{emoji}"),
            Some(&poster),
            None,
        )
        .await;
    let v = r3.body["version"].as_u64().unwrap();
    let read = c
        .get(&format!("/v1/posts/{pid}?min_version={v}"), &rival)
        .await;
    assert_eq!(
        (read.status, read.stale),
        (StatusCode::OK, false),
        "{}",
        read.body
    );
    assert_eq!(read.body["author_nickname"], "fan");
    assert_eq!(read.body["reactions"]["👍"], 2);
    assert_eq!(read.body["comments"][0]["author_nickname"], "poster");
    let forbidden = c
        .call(
            Method::PATCH,
            &format!("/v1/posts/{pid}"),
            Some(&poster),
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    // a nickname change reaches the post and the comment that show it
    c.call(
        Method::PUT,
        &format!("/v1/guilds/{gid}/members/me/nickname"),
        Some(&fan),
        Some(json!({"nickname": "superfan"})),
    )
    .await;
    c.call(
        Method::PUT,
        &format!("/v1/guilds/{gid}/members/me/nickname"),
        Some(&poster),
        Some(json!({"nickname": "host"})),
    )
    .await;
    c.get_until(
        &format!("/v1/posts/{pid}"),
        &fan,
        "the nicknames reach the post",
        |b| b["author_nickname"] == "superfan" && b["comments"][0]["author_nickname"] == "host",
    )
    .await;
    let list = c
        .get_until(
            &format!("/v1/channels/{forum}/posts"),
            &fan,
            "the post is listed with its comment",
            |b| {
                b["items"][0]["comment_count"] == 1
                    && b["items"][0]["author_nickname"] == "superfan"
            },
        )
        .await;
    assert_eq!(list["items"][0]["reactions"]["👍"], 2);
    let del = c
        .call(
            Method::DELETE,
            &format!("/v1/posts/{pid}"),
            Some(&poster),
            None,
        )
        .await;
    assert_eq!(
        del.status,
        StatusCode::OK,
        "the guild owner may delete: {}",
        del.body
    );
    let v = del.body["version"].as_u64().unwrap();
    let gone = c
        .get(&format!("/v1/posts/{pid}?min_version={v}"), &fan)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    c.get_until(
        &format!("/v1/channels/{forum}/posts"),
        &fan,
        "the deleted post leaves the list",
        |b| b["items"].as_array().is_some_and(Vec::is_empty),
    )
    .await;

    // --- concerts and the queue
    let denied = c
        .call(
            Method::POST,
            "/v1/concerts",
            Some(&fan),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let concert = c
        .call(
            Method::POST,
            "/v1/concerts",
            Some(admin),
            Some(json!({"name": "Winter Live"})),
        )
        .await;
    assert_eq!(concert.status, StatusCode::CREATED, "{}", concert.body);
    let cid = concert.body["concert_id"].as_str().unwrap().to_owned();
    let seats: Vec<Value> = (1..=4)
        .map(|n| json!({"seat_no": n, "price": 1000}))
        .collect();
    let s = c
        .call(
            Method::POST,
            &format!("/v1/concerts/{cid}/schedules"),
            Some(admin),
            Some(json!({"starts_at": "2026-12-24T19:00:00Z", "seats": seats})),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    let sid = s.body["schedule_id"].as_str().unwrap().to_owned();
    c.call(
        Method::POST,
        &format!("/v1/concerts/{cid}/schedules"),
        Some(admin),
        Some(json!({"starts_at": "2027-01-10T19:00:00Z", "seats": [{"seat_no": 1, "price": 5}]})),
    )
    .await;
    let december = c
        .get_until(
            &format!(
                "/v1/concerts/{cid}/schedules?from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z"
            ),
            &fan,
            "the December schedule is in the calendar",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
    assert_eq!(december["items"][0]["schedule_id"], sid.as_str());
    assert_eq!(december["items"][0]["available_seats"], 4);
    c.get_until(
        &format!("/v1/concerts/{cid}/schedules"),
        &fan,
        "both schedules, by start",
        |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
                && b["items"][1]["starts_at"] == "2027-01-10T19:00:00Z"
        },
    )
    .await;
    let no_token = c
        .call(
            Method::POST,
            "/v1/reservations",
            Some(&fan),
            Some(json!({"schedule_id": sid, "seat_nos": [1]})),
        )
        .await;
    assert_eq!(
        (no_token.status, code_of(&no_token)),
        (StatusCode::UNAUTHORIZED, "queue_token_required")
    );
    let fan_q = active_queue_token(c, &fan, &cid).await;
    let rival_q = active_queue_token(c, &rival, &cid).await;
    let map = c
        .queued(
            Method::GET,
            &format!("/v1/schedules/{sid}/seats?min_version=1"),
            &fan,
            &fan_q,
            None,
        )
        .await;
    assert_eq!(map.status, StatusCode::OK, "{}", map.body);
    assert!(map.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["available"] == true));
    // once the map is there, someone else's token is refused
    let wrong_user = c
        .queued(
            Method::GET,
            &format!("/v1/schedules/{sid}/seats"),
            &rival,
            &fan_q,
            None,
        )
        .await;
    assert_eq!(wrong_user.status, StatusCode::FORBIDDEN);

    // --- holds: all or nothing
    c.call(
        Method::POST,
        "/v1/accounts/me/charge",
        Some(&fan),
        Some(json!({"amount": 5000, "idempotency_key": "fan-1"})),
    )
    .await;
    let hold = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &fan,
            &fan_q,
            Some(json!({"schedule_id": sid, "seat_nos": [1, 2]})),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(
        (hold.body["status"].as_str(), hold.body["amount"].as_i64()),
        (Some("held"), Some(2000))
    );
    let rid = hold.body["reservation_id"].as_str().unwrap().to_owned();
    let clash = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &rival,
            &rival_q,
            Some(json!({"schedule_id": sid, "seat_nos": [2, 3]})),
        )
        .await;
    assert_eq!(
        (clash.status, code_of(&clash)),
        (StatusCode::CONFLICT, "seat_unavailable")
    );

    // --- coupons: first come, first served
    let coupon = c
        .call(
            Method::POST,
            "/v1/coupons",
            Some(admin),
            Some(json!({"name": "Early bird", "total_quantity": 1, "discount_amount": 500})),
        )
        .await;
    let kid = coupon.body["coupon_id"].as_str().unwrap().to_owned();
    let mine = c
        .call(
            Method::POST,
            &format!("/v1/coupons/{kid}/issue"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    let sold = c
        .call(
            Method::POST,
            &format!("/v1/coupons/{kid}/issue"),
            Some(&rival),
            None,
        )
        .await;
    assert_eq!(
        (sold.status, code_of(&sold)),
        (StatusCode::CONFLICT, "sold_out")
    );
    let twice = c
        .call(
            Method::POST,
            &format!("/v1/coupons/{kid}/issue"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(
        (twice.status, code_of(&twice)),
        (StatusCode::CONFLICT, "already_issued")
    );
    let campaign = c
        .get(&format!("/v1/coupons/{kid}?min_version=2"), &fan)
        .await;
    assert_eq!(
        (
            campaign.body["issued"].as_u64(),
            campaign.body["remaining"].as_u64()
        ),
        (Some(1), Some(0))
    );

    // --- payment with the coupon, once
    let pay = json!({"coupon_id": kid});
    let paid = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rid}/payment"),
            &fan,
            &fan_q,
            Some(pay.clone()),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(
        paid.body,
        json!({"reservation_id": rid, "status": "paid", "paid_amount": 1500, "balance": 3500})
    );
    let again = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rid}/payment"),
            &fan,
            &fan_q,
            Some(pay),
        )
        .await;
    assert_eq!(
        again.body, paid.body,
        "paying again answers the same and pays once"
    );
    let status = c
        .queued(Method::GET, "/v1/queue/status", &fan, &fan_q, None)
        .await;
    assert_eq!(
        status.body["status"], "expired",
        "the token ended at payment"
    );
    let mine = c
        .get_until(
            &format!("/v1/reservations/{rid}"),
            &fan,
            "the reservation reads paid",
            |b| b["status"] == "paid",
        )
        .await;
    assert_eq!(mine["seat_nos"], json!([1, 2]));
    let others = c.get(&format!("/v1/reservations/{rid}"), &rival).await;
    assert_eq!(others.status, StatusCode::FORBIDDEN);
    c.get_until(
        "/v1/me/reservations",
        &fan,
        "listed among the fan's reservations",
        |b| b["items"][0]["reservation_id"] == rid.as_str(),
    )
    .await;
    c.get_until("/v1/me/coupons", &fan, "the coupon reads used", |b| {
        b["items"][0]["used"] == true
    })
    .await;
    let history = c
        .get_until(
            "/v1/accounts/me/history",
            &fan,
            "the payment is in the history",
            |b| b["items"][0]["kind"] == "use",
        )
        .await;
    assert_eq!(history["items"][0]["amount"], -1500);

    // --- cancelling a paid reservation refunds it and frees the seats
    let cancelled = c
        .call(
            Method::DELETE,
            &format!("/v1/reservations/{rid}"),
            Some(&fan),
            None,
        )
        .await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{}",
        cancelled.body
    );
    let me = c
        .get_until("/v1/accounts/me", &fan, "the refund", |b| {
            b["balance"] == 5000
        })
        .await;
    assert_eq!(me["account_id"], fan_id.as_str());
    c.get_until("/v1/me/coupons", &fan, "the coupon comes back", |b| {
        b["items"][0]["used"] == false
    })
    .await;

    // --- not enough points: refused, and the hold runs out on its own
    let rival_hold = c
        .queued(
            Method::POST,
            "/v1/reservations",
            &rival,
            &rival_q,
            Some(json!({"schedule_id": sid, "seat_nos": [1, 3]})),
        )
        .await;
    assert_eq!(
        rival_hold.status,
        StatusCode::CREATED,
        "seats of a cancelled reservation are free: {}",
        rival_hold.body
    );
    let rival_rid = rival_hold.body["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let broke = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rival_rid}/payment"),
            &rival,
            &rival_q,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (broke.status, code_of(&broke)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points")
    );
    c.get_until(
        &format!("/v1/reservations/{rival_rid}"),
        &rival,
        "the sweeper expires the hold",
        |b| b["status"] == "expired",
    )
    .await;
    let late = c
        .queued(
            Method::POST,
            &format!("/v1/reservations/{rival_rid}/payment"),
            &rival,
            &rival_q,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        late.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        late.body
    );
    assert_eq!(code_of(&late), "hold_expired");
    let map = c
        .queued(
            Method::GET,
            &format!("/v1/schedules/{sid}/seats"),
            &rival,
            &rival_q,
            None,
        )
        .await;
    assert!(
        map.body["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["available"] == true),
        "{}",
        map.body
    );
}
