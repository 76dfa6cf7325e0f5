//! The write path's durability under group commit, for real: a write API
//! taking hundreds of concurrent commands (many aggregates, several
//! commands per aggregate, so appends are grouped and batched) is killed
//! with SIGKILL mid-load. Every acknowledged command must be in the log
//! exactly once, and nothing unacknowledged may be half there.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::cluster::cluster;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_testkit::Deadline;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_api_killed_mid_group_commit_loses_no_acknowledged_command() {
    let c = cluster(&[]).await;
    let accounts = c.funded("kill", 32, 1).await;
    let acknowledged = Mutex::new(BTreeSet::<(String, String)>::new());
    let answered = AtomicUsize::new(0);
    // 96 workers, three per account, all through write API 0
    let load = futures::future::join_all((0..96).map(|w| {
        let (id, token) = &accounts[w % accounts.len()];
        let (c, acknowledged, answered) = (&c, &acknowledged, &answered);
        async move {
            for n in 0.. {
                let key = format!("w{w}-{n}");
                let sent = c
                    .http
                    .post(format!("{}/v1/accounts/me/charge", c.base(0)))
                    .bearer_auth(token)
                    .json(&json!({"amount": 1, "idempotency_key": key}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status() == StatusCode::OK => {
                        acknowledged.lock().unwrap().insert((id.clone(), key));
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    // the process is gone: this worker is done
                    _ => return,
                }
            }
        }
    }));
    let killer = async {
        let deadline = Deadline::new(Duration::from_secs(60), "2,000 charges are acknowledged");
        while answered.load(Ordering::Relaxed) < 2_000 {
            deadline.tick().await;
        }
        let pid = c.stack.writers[0].pid().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        assert!(killed.unwrap().success(), "SIGKILL sent");
    };
    tokio::join!(load, killer);

    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 2_000);
    let mut logged: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (id, payload) in c.events("account", "PointsCharged").await {
        let key = payload["idempotency_key"].as_str().unwrap().to_owned();
        *logged.entry((id, key)).or_default() += 1;
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|k| !logged.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the log: {missing:?}"
    );
    let twice: Vec<_> = logged.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "charged twice: {twice:?}");
    // nothing half there: every account's events are gapless, and the
    // balance each event carries is the count of charges before it
    let rows: Vec<(String, i64, serde_json::Value)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, payload FROM events
          WHERE aggregate_type = 'account' ORDER BY aggregate_id, sequence",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap();
    let mut per_account: BTreeMap<&str, Vec<(i64, &serde_json::Value)>> = BTreeMap::new();
    for (id, seq, payload) in &rows {
        per_account.entry(id).or_default().push((*seq, payload));
    }
    for (id, events) in per_account {
        for (i, (seq, payload)) in events.iter().enumerate() {
            assert_eq!(*seq, i as i64 + 1, "{id}: gapless");
            if let Some(balance) = payload.get("balance") {
                // registration, then one point per charge (the seed's too)
                assert_eq!(balance.as_i64().unwrap(), i as i64, "{id}: {payload}");
            }
        }
    }
    // the surviving write API answers on the same log afterwards
    let (id, token) = &accounts[0];
    let (status, body) = c
        .send(
            1,
            Method::POST,
            "/v1/accounts/me/charge",
            token,
            None,
            Some(json!({"amount": 1, "idempotency_key": "after"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{id}: {body}");
}

/// Reads of `serve` come from memory between writes and are conditional:
/// a document read again is answered 304 for its own tag, and a write is
/// seen at once by a read asking for its version (the cache forgets what
/// the projector writes), with a new tag.
#[tokio::test]
async fn reads_are_tagged_answer_304_when_unchanged_and_see_a_write_at_once() {
    let stack = common::stack::Stack::embedded(&[]).await;
    let c = &stack.client;
    let (_, token) = c.register("etag@example.com", "etag").await;
    let url = format!("{}/v1/accounts/me?min_version=1", c.read);
    let first = c.http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    for _ in 0..3 {
        let again = c
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.bytes().await.unwrap().is_empty());
    }
    for n in 1..=5 {
        let charged = c
            .post(
                "/v1/accounts/me/charge",
                &token,
                json!({"amount": 10, "idempotency_key": format!("k{n}")}),
            )
            .await;
        assert_eq!(charged.status, StatusCode::OK, "{}", charged.body);
        let version = charged.body["version"].as_u64().unwrap();
        let read = c
            .http
            .get(format!("{}/v1/accounts/me?min_version={version}", c.read))
            .bearer_auth(&token)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK, "a changed document is sent");
        assert!(read.headers().get("x-stale").is_none(), "read-your-writes");
        assert_ne!(read.headers()["etag"].to_str().unwrap(), tag);
        let body: serde_json::Value = read.json().await.unwrap();
        assert_eq!(body["balance"], 10 * n);
    }
}
