//! Drives `tessera` processes over HTTP: spawning roles, a client, the
//! deployment kit ([`stack`]) and the contract scenarios ([`scenarios`]).

pub mod cluster;
pub mod collector;
pub mod documents;
pub mod fold;
pub mod load;
pub mod receiver;
pub mod scenarios;
pub mod sse;
pub mod stack;

#[allow(unused_imports)] // the race and fault binaries run no scenario
pub use scenarios::{accounts_and_guilds, board_and_commerce};

/// The settings every production role of one test's stack shares: its own
/// database, topic (4 partitions), consumer groups, MongoDB database and
/// Redis key prefix.
pub fn stack_env(
    pg: &PgDatabase,
    kafka: &KafkaTopic,
    mongo: &MongoDatabase,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
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
    ];
    // presence through the one Redis, under keys of this stack's own
    if let Ok(url) = std::env::var("TESSERA_TEST_REDIS_URL") {
        env.push(("TESSERA_REDIS_URL", url));
        env.push(("TESSERA_REDIS_PREFIX", format!("test-{}", mongo.name)));
    }
    env
}

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
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
        let mut cmd = tessera_testkit::owned_command(env!("CARGO_BIN_EXE_tessera"));
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

    /// The process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
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

impl Answer {
    /// The id a successful creation answered under `field`.
    pub fn id(&self, field: &str) -> String {
        assert!(
            self.status.is_success(),
            "{field}: {} {}",
            self.status,
            self.body
        );
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {}", self.body))
            .to_owned()
    }
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
        self.request(method, path, token, None, body).await
    }

    /// Reads go to the read API, commands to the write API.
    async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        queue: Option<&str>,
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
        if let Some(q) = queue {
            req = req.header("x-queue-token", q);
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

    /// A command as the holder of `token`, with a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// A command as the holder of `token`, with or without a body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        self.call(method, path, Some(token), body).await
    }

    /// A command that must be refused with `want` (status and error code).
    pub async fn refuses(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: (StatusCode, &str),
    ) {
        let a = self.send(method.clone(), path, token, body).await;
        assert_eq!((a.status, code_of(&a)), want, "{method} {path}: {}", a.body);
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

    /// Waits (30 s at most) until a read answers `status`, as the read
    /// models catch up.
    pub async fn get_status_until(&self, path: &str, token: &str, status: StatusCode) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let a = self.get(path, token).await;
            if a.status == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} still answers {} {}, not {status}",
                a.status,
                a.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A guild of `owner`'s: its id.
    pub async fn new_guild(&self, owner: &str, name: &str) -> String {
        self.post("/v1/guilds", owner, json!({ "name": name }))
            .await
            .id("guild_id")
    }

    /// A channel of `kind` (`forum`, `text`) in the guild: its id.
    pub async fn new_channel(&self, owner: &str, guild: &str, name: &str, kind: &str) -> String {
        let path = format!("/v1/guilds/{guild}/channels");
        self.post(&path, owner, json!({ "name": name, "kind": kind }))
            .await
            .id("channel_id")
    }

    /// The holder of `token` joins the guild.
    pub async fn join(&self, token: &str, guild: &str) {
        let path = format!("/v1/guilds/{guild}/members");
        let joined = self.send(Method::POST, &path, token, None).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    }

    pub async fn register(&self, email: &str, nickname: &str) -> (String, String) {
        let body = json!({"email": email, "password": "password123", "nickname": nickname});
        let a = self.unless_busy("/v1/accounts", body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let id = a.body["account_id"].as_str().unwrap().to_owned();
        (id, self.login(email).await)
    }

    pub async fn login(&self, email: &str) -> String {
        let body = json!({"email": email, "password": "password123"});
        let a = self.unless_busy("/v1/auth/token", body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// A sign-in or registration, sent again while it answers 503 `busy`
    /// ("try again shortly": password hashing is bounded, and a loaded test
    /// machine hashes slowly), as a client does.
    async fn unless_busy(&self, path: &str, body: Value) -> Answer {
        let deadline = Deadline::new(Duration::from_secs(30), "an answer other than busy");
        loop {
            let a = self
                .call(Method::POST, path, None, Some(body.clone()))
                .await;
            if a.status != StatusCode::SERVICE_UNAVAILABLE || a.body["error"]["code"] != "busy" {
                return a;
            }
            deadline.tick().await;
        }
    }
}

/// Runs `tessera <args>` with `env` and waits for it.
pub fn cli(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the tessera binary runs")
}

/// `tessera <args>` that must succeed; its standard output.
pub fn cli_ok(env: &[(&str, String)], args: &[&str]) -> String {
    let out = cli(env, args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn cli_json(env: &[(&str, String)], args: &[&str]) -> Value {
    let out = cli_ok(env, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}):\n{out}"))
}

/// Mints an operator token with `tessera admin token`, as an operator would.
pub fn admin_token(env: &[(&str, String)]) -> String {
    mint_token(env, "admin-1", "admin")
}

/// Mints a token for `user` with `role` with `tessera admin token`.
pub fn mint_token(env: &[(&str, String)], user: &str, role: &str) -> String {
    let token = tessera_ok(env, &["admin", "token", "--user", user, "--role", role]);
    token.trim().to_owned()
}

/// `tessera <args>`, with `env` set over the test's own environment.
pub fn tessera(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the tessera binary runs")
}

/// [`tessera`] that must succeed: its standard output.
pub fn tessera_ok(env: &[(&str, String)], args: &[&str]) -> String {
    let out = tessera(env, args);
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn code_of(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or_default()
}

/// Takes a queue token for a concert and waits until it is admitted.
pub async fn active_queue_token(c: &Client, user: &str, concert_id: &str) -> String {
    let t = c
        .post(
            "/v1/queue/tokens",
            user,
            json!({ "concert_id": concert_id }),
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
        self.request(method, path, Some(user), Some(queue), body)
            .await
    }
}
