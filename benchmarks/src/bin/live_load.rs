//! `tessera-live-load`: holds N live streams (`GET /v1/stream`) open on one
//! or more read APIs while members post channel messages at a steady rate,
//! and measures how long after each command's answer every stream has the
//! message (push latency). It counts what it produced: every message must
//! reach every stream, once (`scripts/load live` runs it and records the
//! summary beside the k6 scenarios'; k6 has no Server-Sent Events client).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::StreamExt as _;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "Push latency of Tessera's live streams under a steady command load")]
struct Args {
    /// The write API.
    #[arg(long)]
    write: String,
    /// The read APIs (comma-separated); streams are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    read: Vec<String>,
    /// Process ids of the read APIs (their memory is read from /proc).
    #[arg(long, value_delimiter = ',')]
    read_pids: Vec<u32>,
    /// Streams held open.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Members of the guild; the streams and the messages are theirs.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Messages posted per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The p99 push latency goal, ms.
    #[arg(long, default_value_t = 1000.0)]
    p99_goal_ms: f64,
    /// Where to write the summary (JSON).
    #[arg(long)]
    summary: PathBuf,
}

struct Api {
    http: reqwest::Client,
    write: String,
    read: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let base = if method == reqwest::Method::GET {
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
        let res = req.send().await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> Result<Value> {
        let (status, body) = self.call(method.clone(), path, token, body).await?;
        if status != want {
            bail!("{method} {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Registers and signs in: `(user_id, token)`.
    async fn user(&self, tag: &str) -> Result<(String, String)> {
        let email = format!("{tag}@live-load.example");
        let creds = json!({"email": email, "password": "live-load-password", "nickname": tag});
        let made = self
            .expect(
                reqwest::Method::POST,
                "/v1/accounts",
                None,
                Some(creds.clone()),
                201,
            )
            .await?;
        let token = self
            .expect(
                reqwest::Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({"email": email, "password": "live-load-password"})),
                200,
            )
            .await?;
        Ok((
            made["account_id"].as_str().unwrap_or_default().to_owned(),
            token["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

/// One stream: when each message (by number) arrived.
type Arrivals = Arc<Mutex<HashMap<usize, Instant>>>;

/// Opens a stream, retrying while the read model does not show the
/// membership yet (403) within `deadline`.
async fn open(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    channel: &str,
    deadline: Instant,
) -> Result<reqwest::Response> {
    loop {
        let res = http
            .get(format!("{base}/v1/stream"))
            .query(&[("topics", format!("channel:{channel}"))])
            .bearer_auth(token)
            .send()
            .await?;
        if res.status() == reqwest::StatusCode::OK {
            return Ok(res);
        }
        if Instant::now() > deadline {
            bail!("a stream was refused: {}", res.status());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a stream's events until it ends, noting each load message.
async fn follow(res: reqwest::Response, arrivals: Arrivals) {
    let mut body = res.bytes_stream();
    let mut buffer = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if !block.lines().any(|l| l == "event: message") {
                continue;
            }
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let number = serde_json::from_str::<Value>(&data).ok().and_then(|v| {
                v["message"]["content"]
                    .as_str()
                    .and_then(|c| c.strip_prefix("load-"))
                    .and_then(|n| n.parse().ok())
            });
            if let Some(n) = number {
                arrivals.lock().unwrap().entry(n).or_insert(now);
            }
        }
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let api = Arc::new(Api {
        http: http.clone(),
        write: args.write.clone(),
        read: args.read[0].clone(),
    });
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    // a guild with a text channel, and its members
    let (_, owner) = api.user(&format!("owner-{run}")).await?;
    let guild = api
        .expect(
            reqwest::Method::POST,
            "/v1/guilds",
            Some(&owner),
            Some(json!({"name": format!("live {run}")})),
            201,
        )
        .await?;
    let guild_id = guild["guild_id"].as_str().context("guild_id")?.to_owned();
    let channel = api
        .expect(
            reqwest::Method::POST,
            &format!("/v1/guilds/{guild_id}/channels"),
            Some(&owner),
            Some(json!({"name": "load", "kind": "text"})),
            201,
        )
        .await?;
    let channel_id = channel["channel_id"]
        .as_str()
        .context("channel_id")?
        .to_owned();
    let users = args.users.max(1);
    let mut tokens = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(8) {
        let made = futures::future::join_all(chunk.iter().map(|i| {
            let api = Arc::clone(&api);
            let tag = format!("u{i}-{run}");
            async move { api.user(&tag).await }
        }))
        .await;
        for m in made {
            tokens.push(m?.1);
        }
    }
    for t in &tokens {
        api.expect(
            reqwest::Method::POST,
            &format!("/v1/guilds/{guild_id}/members"),
            Some(t),
            None,
            201,
        )
        .await?;
    }
    eprintln!("live-load: guild {guild_id}, channel {channel_id}, {users} members");

    let rss_before: Vec<Option<f64>> = args.read_pids.iter().map(|p| rss_mib(*p)).collect();
    // the streams, spread over the read APIs
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut arrivals = Vec::with_capacity(args.streams);
    let mut held = vec![0usize; args.read.len()];
    let mut tasks = Vec::with_capacity(args.streams);
    let opened = futures::stream::iter(0..args.streams)
        .map(|i| {
            let (http, base, token, channel) = (
                http.clone(),
                args.read[i % args.read.len()].clone(),
                tokens[i % users].clone(),
                channel_id.clone(),
            );
            async move { (i, open(&http, &base, &token, &channel, deadline).await) }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for (i, res) in opened {
        let res = res?;
        held[i % args.read.len()] += 1;
        let a: Arrivals = Arc::default();
        arrivals.push(Arc::clone(&a));
        tasks.push(tokio::spawn(follow(res, a)));
    }
    let rss_after: Vec<Option<f64>> = args.read_pids.iter().map(|p| rss_mib(*p)).collect();
    eprintln!(
        "live-load: {} streams open ({held:?} per read API)",
        arrivals.len()
    );

    // the messages, at a steady rate; when each was answered
    let total = (args.rate * args.seconds).round().max(1.0) as usize;
    let answered: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(0.01)));
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    for k in 0..total {
        ticker.tick().await;
        let (api, token, channel, answered) = (
            Arc::clone(&api),
            tokens[k % users].clone(),
            channel_id.clone(),
            Arc::clone(&answered),
        );
        sends.push(tokio::spawn(async move {
            let posted = api
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/channels/{channel}/messages"),
                    Some(&token),
                    Some(json!({"content": format!("load-{k}")})),
                )
                .await;
            if matches!(posted, Ok((201, _))) {
                answered.lock().unwrap()[k] = Some(Instant::now());
            }
        }));
    }
    futures::future::join_all(sends).await;
    let posting = started.elapsed();
    let acknowledged = answered
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.is_some())
        .count();

    // every stream should have every acknowledged message; wait for it, bounded
    let expected = acknowledged * arrivals.len();
    let count = || {
        arrivals
            .iter()
            .map(|a| a.lock().unwrap().len())
            .sum::<usize>()
    };
    let wait_until = Instant::now() + Duration::from_secs(15);
    while count() < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = answered.lock().unwrap().clone();
    let mut latencies = Vec::with_capacity(expected);
    for a in &arrivals {
        for (k, at) in a.lock().unwrap().iter() {
            if let Some(Some(sent)) = answered.get(*k) {
                latencies.push(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let received = latencies.len();
    for t in tasks {
        t.abort();
    }

    let p99 = percentile(&latencies, 99.0);
    let complete = received == expected;
    let all_acknowledged = acknowledged == total;
    let within_goal = p99 <= args.p99_goal_ms;
    let check = |metric: &str, threshold: String, ok: bool| json!({"metric": metric, "threshold": threshold, "ok": ok});
    let per_stream_kib: Vec<Value> = rss_before
        .iter()
        .zip(&rss_after)
        .zip(&held)
        .map(|((b, a), n)| match (b, a) {
            (Some(b), Some(a)) if *n > 0 => json!(round((a - b) * 1024.0 / *n as f64)),
            _ => Value::Null,
        })
        .collect();
    let summary = json!({
        "scenario": "live",
        "description": format!("{} streams on {} read API(s) follow one text channel while {} members post {} messages/s for {} s; push latency is from each command's answer to the message's arrival on each stream", arrivals.len(), args.read.len(), users, args.rate, args.seconds),
        "scale": Value::Null,
        "requests": total,
        "duration_s": round(posting.as_secs_f64()),
        "rps": round(total as f64 / posting.as_secs_f64()),
        "latency_ms": {
            "p50": round(percentile(&latencies, 50.0)), "p95": round(percentile(&latencies, 95.0)),
            "p99": round(p99), "max": round(latencies.last().copied().unwrap_or(f64::NAN)),
        },
        "errors": {"count": total - acknowledged, "rate": (total - acknowledged) as f64 / total as f64},
        "correctness": {"passed": complete && all_acknowledged, "checks": {
            "acknowledged": check("messages answered 201", format!("== {total}"), all_acknowledged),
            "delivered": check("pushes received (messages x streams)", format!("== {expected}"), complete),
        }},
        "thresholds_passed": within_goal,
        "thresholds": {"p99": check("push latency p99 ms", format!("<= {}", args.p99_goal_ms), within_goal)},
        "figures": {
            "streams held per read API": format!("{held:?}"),
            "pushes expected": expected,
            "pushes received": received,
            "read API resident MiB before streams": format!("{:?}", rss_before.iter().map(|r| r.map(round)).collect::<Vec<_>>()),
            "read API resident MiB with streams": format!("{:?}", rss_after.iter().map(|r| r.map(round)).collect::<Vec<_>>()),
            "KiB per stream": format!("{per_stream_kib:?}"),
        },
        "note": "the load generator runs on the same machine as the stack and competes with it for the CPUs",
    });
    std::fs::write(&args.summary, serde_json::to_vec_pretty(&summary)?)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !(complete && all_acknowledged) {
        std::process::exit(99);
    }
    if !within_goal {
        std::process::exit(99);
    }
    Ok(())
}
