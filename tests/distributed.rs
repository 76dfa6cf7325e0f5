//! The production roles as separate processes on real PostgreSQL, Kafka
//! (tansu) and MongoDB (secantusdb): write-api → PostgreSQL → relay → Kafka
//! → projector → MongoDB → read-api.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::stack::{Stack, Topology};
use common::{accounts_and_guilds, board_and_commerce};
use reqwest::StatusCode;
use serde_json::json;
use tessera_testkit::PgDatabase;

#[tokio::test]
async fn the_four_roles_run_the_whole_contract_and_a_killed_projector_loses_nothing() {
    let mut stack = Stack::distributed(
        Topology::PIPELINE,
        &[
            ("TESSERA_KAFKA_DEBUG", "cgrp"),
            ("TESSERA_LOG", "info,librdkafka=debug"),
        ],
    )
    .await;
    let c = Arc::clone(&stack.client);
    for process in [
        stack.write(),
        stack.read(),
        &stack.relays[0],
        &stack.projectors[0],
    ] {
        let r = reqwest::get(format!("{}/readyz", process.addr))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    let outcome = accounts_and_guilds(&c).await;
    board_and_commerce(&c, &stack.admin).await;

    // kill -9 the projector and the relay mid-stream; commands keep working
    stack.projectors[0].kill();
    let token = &outcome.owner_token;
    let mut version = 0;
    for i in 0..40 {
        let a = c
            .post(
                "/v1/accounts/me/charge",
                token,
                json!({"amount": 10, "idempotency_key": format!("burst-{i}")}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        version = a.body["version"].as_u64().unwrap();
        if i == 20 {
            stack.relays[0].kill();
            stack.relays[0].respawn().await;
        }
    }
    // the killed member holds its partitions until its session times out
    // (10 s), then the new one resumes from the last committed offsets
    stack.projectors[0].respawn().await;
    let me = c
        .try_get_until("/v1/accounts/me", token, Duration::from_secs(90), |b| {
            b["version"].as_u64() == Some(version)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the restarted projector did not catch up:\n{}",
                stack.logs(200)
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
        .unwrap_or_else(|| panic!("the history did not catch up:\n{}", stack.logs(200)));
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
}

#[tokio::test]
async fn migrate_prepares_an_empty_database_and_is_idempotent() {
    let pg = PgDatabase::create().await;
    for _ in 0..2 {
        common::tessera_ok(
            &[("TESSERA_DATABASE_URL", pg.url().to_owned())],
            &["migrate"],
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
