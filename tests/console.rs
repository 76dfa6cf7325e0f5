//! The web console in a real browser: `tessera serve` with real data (a
//! few accounts and charges, a payload carrying markup, a real dead letter,
//! a webhook), then headless Chromium driven by Playwright
//! (`tests/console/console.mjs`) signs in, finds an aggregate, steps through
//! its history checking each state, retries the dead letter, and sees a new
//! event arrive in the live tail; screenshots go to
//! `target/test-output/console/`. The browser and `playwright-core` come
//! from `scripts/test` (`TESSERA_TEST_CHROMIUM`, `TESSERA_TEST_PLAYWRIGHT`).
//! The read API of the distributed mode is checked at the HTTP level.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::documents::{letters_of_aggregate, live_body, overwrite};
use common::receiver::Receiver;
use common::stack::{Stack, Topology};
use common::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_testkit::wait_until;

fn required(var: &str, what: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} names {what}: run the suite with scripts/test"))
}

/// Where the screenshots go: `target/test-output/console`.
fn output_dir() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = target
        .parent()
        .unwrap_or(&target)
        .join("test-output")
        .join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn charge(c: &Client, token: &str, amount: i64, key: &str) -> Value {
    let a = c
        .post(
            "/v1/accounts/me/charge",
            token,
            json!({"amount": amount, "idempotency_key": key}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

/// The pending dead letters of one aggregate, as the console lists them.
async fn letters_of(c: &Client, admin: &str, aggregate_id: &str) -> Vec<Value> {
    let a = c.get("/v1/admin/dead-letters", admin).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    letters_of_aggregate(&a.body["items"], aggregate_id)
}

#[tokio::test]
async fn the_console_in_a_browser_time_travels_retries_a_dead_letter_and_tails_the_log() {
    let chromium = required("TESSERA_TEST_CHROMIUM", "Debian's chromium");
    let playwright = required(
        "TESSERA_TEST_PLAYWRIGHT",
        "the playwright-core package folder",
    );
    // the projector must fold the damaged document, not one remembered
    // before it was damaged
    let stack = Stack::embedded(&[
        ("TESSERA_READ_CACHE_MS", "0"),
        ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let c = Arc::clone(&stack.client);
    let admin = &stack.admin;

    // kim's history: registered, then three charges
    let (kim, kim_token) = c.register("kim@example.com", "kim").await;
    let mut balances = vec![0];
    for (amount, key) in [(100, "one"), (250, "two"), (50, "three")] {
        let answer = charge(&c, &kim_token, amount, key).await;
        balances.push(answer["balance"].as_i64().unwrap());
    }
    assert_eq!(balances, [0, 100, 350, 400]);
    // a payload that carries markup: the console must show it as text
    let (_, _) = c
        .register("mallory@example.com", "<img src=x onerror=xss()>")
        .await;
    // a real receiver, so the console shows deliveries that went through
    let receiver = Receiver::start().await;
    let hook = c
        .post(
            "/v1/admin/webhooks",
            admin,
            json!({"url": receiver.url(), "event_types": ["PointsCharged"], "secret": "s"}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);

    // lee's accounts document is damaged behind the projector's back: lee's
    // next charge is refused by the fold and dead-lettered
    let (lee, lee_token) = c.register("lee@example.com", "lee").await;
    let v = charge(&c, &lee_token, 10, "before").await["version"].clone();
    c.get_until(
        &format!("/v1/accounts/me?min_version={v}"),
        &lee_token,
        "lee's charge is projected",
        |b| b["version"] == v,
    )
    .await;
    let docs = stack.documents().await;
    let good = live_body(&*docs, "accounts", &lee).await.unwrap();
    let mut broken = good.clone();
    broken["balance"] = json!("not a number");
    overwrite(&*docs, "accounts", &lee, broken).await;
    let lost = charge(&c, &lee_token, 20, "lost").await;
    wait_until(
        std::time::Duration::from_secs(60),
        "a dead letter for lee",
        || {
            let (c, admin, lee) = (Arc::clone(&c), admin.clone(), lee.clone());
            async move { letters_of(&c, &admin, &lee).await.len() == 1 }
        },
    )
    .await;
    let letter = letters_of(&c, admin, &lee).await.remove(0);
    c.get_until(
        "/v1/admin/webhooks",
        admin,
        "lee's two charges are delivered",
        |b| b[0]["delivered"] == 2,
    )
    .await;
    // the operator repairs the document; the browser retries the letter
    overwrite(&*docs, "accounts", &lee, good).await;

    let out = output_dir();
    for old in std::fs::read_dir(&out).unwrap().flatten() {
        let _ = std::fs::remove_file(old.path());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/console.mjs");
    let expect = json!({
        "aggregate_type": "account",
        "aggregate_id": kim,
        "balances": balances,
        "letter_id": letter["letter_id"],
        "user_token": kim_token,
    });
    let run = Command::new("node")
        .arg(script)
        .env("CONSOLE_URL", &stack.write().addr)
        .env("CONSOLE_TOKEN", admin)
        .env("CONSOLE_EXPECT", expect.to_string())
        .env("CONSOLE_SCREENSHOTS", &out)
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT", &playwright)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}\n{}",
        stack.logs(30)
    );
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from the script:\n{stdout}\n{stderr}"));
    println!("browser report: {report}");
    assert_eq!(report["steps_checked"], 4, "{report}");
    assert!(
        report["tail_latency_ms"]
            .as_u64()
            .is_some_and(|ms| ms < 2000),
        "a new event shows in the tail within about a second: {report}"
    );

    // the retry the browser clicked went through: no letter left, and the
    // document holds the lost charge
    assert!(letters_of(&c, admin, &lee).await.is_empty());
    let me = c
        .get(
            &format!("/v1/accounts/me?min_version={}", lost["version"]),
            &lee_token,
        )
        .await;
    assert_eq!(
        (me.status, me.stale, me.body["balance"].as_i64()),
        (StatusCode::OK, false, Some(30)),
        "{}",
        me.body
    );
    for shot in [
        "signin.png",
        "events.png",
        "aggregate-first.png",
        "aggregate-last.png",
        "projections.png",
        "letters.png",
        "letters-retried.png",
        "webhooks.png",
        "tail.png",
    ] {
        let size = std::fs::metadata(out.join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
}

#[tokio::test]
async fn the_read_api_serves_the_console_and_its_admin_routes() {
    let stack = Stack::distributed(Topology::PIPELINE, &[]).await;
    let c = Arc::clone(&stack.client);
    let admin = &stack.admin;
    let read = &stack.read().addr;
    let page = reqwest::get(format!("{read}/console")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("/console/console.js"));
    for (asset, kind) in [
        ("/console/console.js", "javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = reqwest::get(format!("{read}{asset}")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        assert!(r.headers()["content-type"].to_str().unwrap().contains(kind));
    }
    let root = reqwest::get(format!("{read}/")).await.unwrap();
    assert!(root.text().await.unwrap().contains("href=\"/console\""));

    let (kim, token) = c.register("kim@example.com", "kim").await;
    charge(&c, &token, 70, "one").await;
    let state = c
        .get_until(
            &format!("/v1/admin/aggregates/account/{kim}/state?sequence=2"),
            admin,
            "the read API folds kim's events",
            |b| b["sequence"] == 2,
        )
        .await;
    assert_eq!(
        (
            state["state"]["balance"].as_i64(),
            state["last_sequence"].as_u64()
        ),
        (Some(70), Some(2)),
        "{state}"
    );
    let first = c
        .get(
            &format!("/v1/admin/aggregates/account/{kim}/state?sequence=1"),
            admin,
        )
        .await;
    assert_eq!(first.body["state"]["balance"], 0, "{}", first.body);
    assert_eq!(first.body["event"]["event_type"], "AccountRegistered");
    let beyond = c
        .get(
            &format!("/v1/admin/aggregates/account/{kim}/state?sequence=3"),
            admin,
        )
        .await;
    assert_eq!(beyond.status, StatusCode::BAD_REQUEST, "{}", beyond.body);
    let charged = c
        .get(
            &format!("/v1/admin/events?aggregate_id={kim}&event_type=PointsCharged"),
            admin,
        )
        .await;
    assert_eq!(
        charged.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        charged.body
    );

    let unknown = c.get("/v1/admin/events?event_type=Nope", admin).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert!(
        unknown.body["error"]["details"]["known"]
            .as_array()
            .is_some_and(|k| k.iter().any(|t| t == "PointsCharged")),
        "{}",
        unknown.body
    );

    let letters = c.get("/v1/admin/dead-letters", admin).await;
    assert_eq!(
        (
            letters.status,
            letters.body["items"].as_array().map(Vec::len)
        ),
        (StatusCode::OK, Some(0)),
        "{}",
        letters.body
    );
    // retried and discarded on the read API, which reaches the read models
    for (method, path) in [
        (
            Method::POST,
            "/v1/admin/dead-letters/accounts:account:x:1/retry",
        ),
        (
            Method::DELETE,
            "/v1/admin/dead-letters/accounts:account:x:1",
        ),
    ] {
        let missing = c
            .http
            .request(method, format!("{read}{path}"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    let pulse = c
        .get_until(
            "/v1/admin/projections/history",
            admin,
            "the read API samples the projections",
            |b| b["samples"].as_array().is_some_and(|s| !s.is_empty()),
        )
        .await;
    assert_eq!(pulse["interval_seconds"], 2);
    assert!(pulse["head_position"].as_i64().unwrap() >= 2, "{pulse}");
    let deliveries = c
        .get(
            "/v1/admin/webhooks/00000000-0000-7000-8000-000000000000/deliveries",
            admin,
        )
        .await;
    assert_eq!(deliveries.status, StatusCode::NOT_FOUND);
    for path in [
        "/v1/admin/dead-letters",
        "/v1/admin/projections/history",
        &format!("/v1/admin/aggregates/account/{kim}/state"),
    ] {
        let anonymous = c.call(Method::GET, path, None, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        let user = c.get(path, &token).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN, "{path}");
    }
}
