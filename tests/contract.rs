//! The event contract holds on the wire: after the whole API contract ran
//! through the production roles, an independent client (Python
//! confluent-kafka, `tests/contract/consume.py`) reads the topic from its
//! start and validates every envelope and payload against the schemas
//! checked in under `docs/`. It must read every event of the log and find
//! none that breaks them.
//!
//! `scripts/test` installs the client into a cached virtualenv and points
//! `TESSERA_TEST_CONTRACT_PYTHON` at its interpreter.

use crate::common;

use std::process::Command;

use common::stack::{Stack, Topology};
use common::{accounts_and_guilds, board_and_commerce};
use serde_json::Value;

#[tokio::test]
async fn every_message_on_the_topic_keeps_the_checked_in_contract() {
    let python = std::env::var("TESSERA_TEST_CONTRACT_PYTHON").expect(
        "TESSERA_TEST_CONTRACT_PYTHON names a Python with confluent-kafka and jsonschema: run the suite with scripts/test",
    );
    let stack = Stack::distributed(Topology::PIPELINE, &[]).await;
    accounts_and_guilds(&stack.client).await;
    board_and_commerce(&stack.client, &stack.admin).await;
    // projections caught up: the relay published the whole log
    stack.wait_caught_up().await;
    let pool = stack.pg.as_ref().expect("a database").pool(1).await;
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(events > 50, "the scenarios recorded {events} events");
    let root = env!("CARGO_MANIFEST_DIR");
    let (brokers, topic) = (
        stack.setting("TESSERA_KAFKA_BROKERS").unwrap().to_owned(),
        stack.setting("TESSERA_KAFKA_TOPIC").unwrap().to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(format!("{root}/tests/contract/consume.py"))
            .args(["--brokers", &brokers, "--topic", &topic])
            .args(["--docs", &format!("{root}/docs")])
            .args(["--expect", &events.to_string(), "--timeout", "90"])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the consumer failed:\n{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("no report ({e}):\n{printed}"));
    assert_eq!(report["invalid_count"], 0, "{report:#}");
    assert!(
        report["distinct_events"].as_i64() >= Some(events),
        "read {} of the {events} events in the log: {report:#}",
        report["distinct_events"]
    );
    let types = report["event_types"].as_array().unwrap().len();
    assert!(types >= 30, "only {types} event types went by: {report:#}");
}
