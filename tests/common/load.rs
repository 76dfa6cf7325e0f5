//! A steady mixed command load that records every answer: charges, guilds
//! made and joined, posts and comments, each request with an
//! `X-Request-Id` of its own, so its events can be found in the log
//! (`metadata.request_id`) and checked against what was answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::Client;

/// How a request ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// 2xx: the command's events must be in the log, exactly once.
    Acked,
    /// 4xx: the domain refused; nothing may be in the log.
    Refused,
    /// 5xx, a timeout or no connection: all of its events or none.
    Unknown,
}

/// One request the load sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub request_id: String,
    pub kind: &'static str,
    pub answered: Answered,
    pub at: Instant,
    /// A read that must reflect the command once the pipeline caught up:
    /// (path, token, version).
    pub read: Option<(String, String, u64)>,
}

#[derive(Debug, Clone)]
struct User {
    token: String,
    guild: String,
    forum: String,
}

/// The load: started with [`Load::start`], stopped with [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    pub sent: Arc<Mutex<Vec<Sent>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Commands per worker per second, roughly.
const WORKER_PACE: Duration = Duration::from_millis(100);

impl Load {
    /// Registers `users` users (each with a guild and a forum channel) and
    /// starts `workers` workers, each sending about 10 commands a second.
    pub async fn start(client: Arc<Client>, users: usize, workers: usize) -> Self {
        let mut registered = Vec::new();
        for i in 0..users {
            let email = format!("load{i}-{}@example.com", uuid::Uuid::new_v4().simple());
            let (_, token) = client.register(&email, &format!("load{i}")).await;
            let g = client
                .post("/v1/guilds", &token, json!({"name": format!("Load {i}")}))
                .await;
            assert!(g.status.is_success(), "{}", g.body);
            let guild = g.body["guild_id"].as_str().unwrap().to_owned();
            let f = client
                .post(
                    &format!("/v1/guilds/{guild}/channels"),
                    &token,
                    json!({"name": "forum", "kind": "forum"}),
                )
                .await;
            assert!(f.status.is_success(), "{}", f.body);
            registered.push(User {
                token,
                guild,
                forum: f.body["channel_id"].as_str().unwrap().to_owned(),
            });
        }
        let users = Arc::new(registered);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let tasks = (0..workers)
            .map(|w| {
                let worker = Worker {
                    client: Arc::clone(&client),
                    http: http.clone(),
                    users: Arc::clone(&users),
                    sent: Arc::clone(&sent),
                    counter: Arc::clone(&counter),
                    posts: Vec::new(),
                    joined: BTreeMap::new(),
                    index: w,
                };
                let stop = Arc::clone(&stop);
                tokio::spawn(worker.run(stop))
            })
            .collect();
        Self { stop, sent, tasks }
    }

    /// Stops the workers and waits for their requests in flight.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

struct Worker {
    client: Arc<Client>,
    http: reqwest::Client,
    users: Arc<Vec<User>>,
    sent: Arc<Mutex<Vec<Sent>>>,
    counter: Arc<AtomicU64>,
    /// Posts this worker made: (post id, its author's token).
    posts: Vec<(String, String)>,
    /// Guilds each user index joined through this worker.
    joined: BTreeMap<usize, Vec<String>>,
    index: usize,
}

impl Worker {
    async fn run(mut self, stop: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(WORKER_PACE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            self.one(n).await;
        }
    }

    async fn one(&mut self, n: u64) {
        let users = Arc::clone(&self.users);
        let u = usize::try_from(n).unwrap_or(0) % users.len();
        let user = &users[u];
        match n % 10 {
            0..=5 => {
                let body = json!({"amount": 1, "idempotency_key": format!("load-{n}")});
                self.send(
                    "charge",
                    Method::POST,
                    "/v1/accounts/me/charge",
                    &user.token,
                    Some(body),
                    |b| Some(("/v1/accounts/me".to_owned(), b["version"].as_u64()?)),
                )
                .await;
            }
            6 => {
                let body = json!({"title": format!("post {n}"), "content": "load"});
                let path = format!("/v1/channels/{}/posts", user.forum);
                if let Some(b) = self
                    .send("post", Method::POST, &path, &user.token, Some(body), |b| {
                        Some((
                            format!("/v1/posts/{}", b["post_id"].as_str()?),
                            b["version"].as_u64()?,
                        ))
                    })
                    .await
                {
                    if let Some(id) = b["post_id"].as_str() {
                        self.posts.push((id.to_owned(), user.token.clone()));
                    }
                }
            }
            7 if !self.posts.is_empty() => {
                // the post's author comments (a member of its guild)
                let (post, author) =
                    self.posts[usize::try_from(n).unwrap_or(0) % self.posts.len()].clone();
                let path = format!("/v1/posts/{post}/comments");
                let body = json!({"content": format!("comment {n}")});
                let read_path = format!("/v1/posts/{post}");
                self.send(
                    "comment",
                    Method::POST,
                    &path,
                    &author,
                    Some(body),
                    move |b| Some((read_path.clone(), b["version"].as_u64()?)),
                )
                .await;
            }
            8 => {
                // join another user's guild (once per guild and user)
                let other = &users[(u + 1 + self.index) % users.len()];
                let joined = self.joined.entry(u).or_default();
                if joined.contains(&other.guild) || other.guild == user.guild {
                    return;
                }
                joined.push(other.guild.clone());
                let path = format!("/v1/guilds/{}/members", other.guild);
                let read_path = format!("/v1/guilds/{}", other.guild);
                self.send("join", Method::POST, &path, &user.token, None, move |b| {
                    Some((read_path.clone(), b["version"].as_u64()?))
                })
                .await;
            }
            _ => {
                let body = json!({"name": format!("guild {n}")});
                self.send(
                    "guild",
                    Method::POST,
                    "/v1/guilds",
                    &user.token,
                    Some(body),
                    |b| {
                        Some((
                            format!("/v1/guilds/{}", b["guild_id"].as_str()?),
                            b["version"].as_u64()?,
                        ))
                    },
                )
                .await;
            }
        }
    }

    /// Sends one command and records how it was answered.
    async fn send(
        &self,
        kind: &'static str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        read: impl Fn(&Value) -> Option<(String, u64)>,
    ) -> Option<Value> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.client.write))
            .bearer_auth(token)
            .header("x-request-id", &request_id);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (answered, value) = match req.send().await {
            Ok(res) => {
                let status = res.status();
                let value: Value = res.json().await.unwrap_or(Value::Null);
                let answered = if status.is_success() {
                    Answered::Acked
                } else if status.is_client_error() {
                    Answered::Refused
                } else {
                    Answered::Unknown
                };
                (answered, value)
            }
            Err(_) => (Answered::Unknown, Value::Null),
        };
        let read = (answered == Answered::Acked)
            .then(|| read(&value))
            .flatten()
            .map(|(path, version)| (path, token.to_owned(), version));
        self.sent.lock().unwrap().push(Sent {
            request_id,
            kind,
            answered,
            at: Instant::now(),
            read,
        });
        (answered == Answered::Acked).then_some(value)
    }
}
