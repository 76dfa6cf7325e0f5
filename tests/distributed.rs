//! The production roles as separate processes on real PostgreSQL, Kafka
//! (tansu) and MongoDB (secantusdb): write-api → PostgreSQL → relay → Kafka
//! → projector → MongoDB → read-api.

mod common;

use std::time::Duration;

use common::{accounts_and_guilds, admin_token, board_and_commerce, Client, Tessera};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_testkit::{KafkaTopic, MongoDatabase, PgDatabase};

#[tokio::test]
async fn the_four_roles_run_the_whole_contract_and_a_killed_projector_loses_nothing() {
    let pg = PgDatabase::create().await;
    let kafka = KafkaTopic::create();
    let mongo = MongoDatabase::create();
    let mut env = common::stack_env(&pg, &kafka, &mongo);
    env.extend([
        ("TESSERA_MIN_VERSION_WAIT_MS", "5000".to_owned()),
        ("TESSERA_KAFKA_DEBUG", "cgrp".to_owned()),
        ("TESSERA_QUEUE_ADMIT_INTERVAL_MS", "100".to_owned()),
        ("TESSERA_HOLD_TTL_SECONDS", "4".to_owned()),
        ("TESSERA_SWEEP_INTERVAL_MS", "200".to_owned()),
        ("TESSERA_LOG", "info,librdkafka=debug".to_owned()),
    ]);
    let write = Tessera::spawn(&["write-api"], &env).await;
    let read = Tessera::spawn(&["read-api"], &env).await;
    let mut relay = Tessera::spawn(&["relay"], &env).await;
    let mut projector = Tessera::spawn(&["projector"], &env).await;
    let c = Client::new(&write.addr, &read.addr);
    for process in [&write, &read, &relay, &projector] {
        let r = reqwest::get(format!("{}/readyz", process.addr))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    let outcome = accounts_and_guilds(&c).await;
    board_and_commerce(&c, &admin_token(&env)).await;

    // kill -9 the projector and the relay mid-stream; commands keep working
    projector.kill();
    let token = &outcome.owner_token;
    let mut version = 0;
    for i in 0..40 {
        let a = c
            .call(
                Method::POST,
                "/v1/accounts/me/charge",
                Some(token),
                Some(json!({"amount": 10, "idempotency_key": format!("burst-{i}")})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        version = a.body["version"].as_u64().unwrap();
        if i == 20 {
            relay.kill();
            relay = Tessera::spawn(&["relay"], &env).await;
        }
    }
    // the killed member holds its partitions until its session times out
    // (10 s), then the new one resumes from the last committed offsets
    let projector = Tessera::spawn(&["projector"], &env).await;
    let me = c
        .try_get_until("/v1/accounts/me", token, Duration::from_secs(90), |b| {
            b["version"].as_u64() == Some(version)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the restarted projector did not catch up:\n--- projector\n{}\n--- relay\n{}",
                projector.logs(),
                relay.logs()
            )
        });
    assert_eq!(
        me["balance"],
        outcome.balance + 400,
        "every charge applied exactly once"
    );
    let history = c
        .try_get_until(
            "/v1/accounts/me/history?limit=100",
            token,
            Duration::from_secs(90),
            |b| b["items"].as_array().is_some_and(|i| i.len() == 41),
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "the history did not catch up:\n--- projector\n{}\n--- relay\n{}",
                projector.logs(),
                relay.logs()
            )
        });
    let sequences: Vec<u64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sequence"].as_u64().unwrap())
        .collect();
    let mut sorted = sequences.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(sequences, sorted, "newest first, no duplicates");
    drop(relay);
}

#[tokio::test]
async fn migrate_prepares_an_empty_database_and_is_idempotent() {
    let pg = PgDatabase::create().await;
    for _ in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("migrate")
            .env("TESSERA_DATABASE_URL", pg.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pool = pg.pool(1).await;
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let tables: Vec<_> = tables.into_iter().map(|(t,)| t).collect();
    for t in ["credentials", "events", "relay_checkpoints"] {
        assert!(
            tables.contains(&t.to_owned()),
            "{t} missing from {tables:?}"
        );
    }
}

#[tokio::test]
async fn a_production_role_without_its_settings_says_what_is_missing() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("write-api")
        .env_remove("TESSERA_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TESSERA_DATABASE_URL"));
}
