//! Drives `tessera` processes over HTTP: spawning roles, and one scenario
//! of the accounts and guilds contract that both run modes must pass.

#![allow(dead_code)] // each test binary uses a part of this module

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_testkit::Deadline;

/// A running `tessera` process.
pub struct Tessera {
    child: Child,
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
    role: String,
}

impl Tessera {
    /// Starts `tessera <args>` with `env` on a free port and waits until it
    /// listens.
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
        }
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
    http: reqwest::Client,
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
