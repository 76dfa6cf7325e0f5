//! The contract under a fuzzer: schemathesis (`--checks all`) generates
//! requests from the OpenAPI document `tessera serve` serves (both APIs),
//! and from the write API's and the read API's own documents in the
//! distributed mode, and checks every answer against them, signed in as a
//! user. Zero failures, no 5xx, no panic in the servers' logs.
//!
//! `scripts/test` installs schemathesis (PyPI) and points
//! `TESSERA_TEST_SCHEMATHESIS` at it; `scripts/fuzz` runs a longer round.
//! `TESSERA_TEST_FUZZ_EXAMPLES` sets the cases per operation (30 here).

use crate::common;

use std::process::Command;

use common::stack::Stack;
use serde_json::json;

fn examples() -> u32 {
    std::env::var("TESSERA_TEST_FUZZ_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// Runs schemathesis against the document at `addr` signed in with
/// `token`; answers how many cases it generated, panicking on a failure.
async fn fuzz(addr: &str, token: &str, examples: u32, name: &str) -> u64 {
    let schemathesis = std::env::var("TESSERA_TEST_SCHEMATHESIS").expect(
        "TESSERA_TEST_SCHEMATHESIS names the schemathesis binary: run the suite with scripts/test",
    );
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/schemathesis.toml");
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}"));
    let (addr, token) = (addr.to_owned(), token.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .args(["--config-file", config, "run"])
            .arg(format!("{addr}/openapi.json"))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            // one worker: with two, hypothesis describes its strategies by
            // `ast.parse` in two threads at once, and CPython 3.11's ast
            // module keeps its recursion depth per interpreter, not per
            // thread ("AST constructor recursion depth mismatch", a
            // SystemError schemathesis reports as a failure; 2 of 76
            // operations in one run here)
            .args(["--checks", "all", "--workers", "1", "--no-color"])
            // an accepted stream never ends, which a fuzzer reads as a
            // hung request; tests/live.rs holds the stream to its contract
            .args(["--exclude-path", "/v1/stream"])
            .args(["--suppress-health-check", "all", "--seed", "20261202"])
            .args(["--max-examples", &examples.to_string()])
            .args(["--report", "junit", "--report-dir"])
            .arg(&report)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    // the summary's "Test cases: N generated, ..." line
    let generated: u64 = printed
        .lines()
        .find_map(|l| l.trim().split_once(" generated,")?.0.parse().ok())
        .unwrap_or(0);
    assert!(
        out.status.success(),
        "schemathesis found failures in {name}:\n{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    generated
}

/// A generated `min_version` is mostly one no document reaches: the read
/// waits this long for it (the scenarios' 2–5 s made each such case cost
/// that much, 450 s for the distributed run).
const QUICK_READS: (&str, &str) = ("TESSERA_MIN_VERSION_WAIT_MS", "50");

/// Points, so that generated requests meet data.
async fn signed_in_with_points(stack: &Stack) -> String {
    let c = &stack.client;
    let (_, token) = c.register("fuzz@example.com", "fuzzer").await;
    let charge = c
        .post(
            "/v1/accounts/me/charge",
            &token,
            json!({"amount": 1000, "idempotency_key": "seed"}),
        )
        .await;
    assert!(charge.status.is_success(), "{}", charge.body);
    token
}

/// A 5xx fails schemathesis' `not_a_server_error` check; a panic caught by
/// the panic layer answers 500 too, and says so in the logs.
fn assert_no_panic(stack: &Stack) {
    let logs = stack.logs(usize::MAX);
    assert!(!logs.contains("panicked"), "a server panicked:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_failure() {
    let stack = Stack::embedded(&[("TESSERA_LOG", "info"), QUICK_READS]).await;
    let token = signed_in_with_points(&stack).await;
    let examples = examples();
    let generated = fuzz(&stack.write().addr, &token, examples, "serve").await;
    // both APIs: 50 operations, so well over 1,000 requests each
    assert!(
        generated >= 40 * u64::from(examples),
        "only {generated} cases were generated"
    );
    assert_no_panic(&stack);
    eprintln!("schemathesis: {generated} generated cases, no failure");
}

/// The distributed roles serve a document each: the write API's commands
/// and the read API's reads, on PostgreSQL, Kafka and MongoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_failure_in_either_document_of_the_distributed_roles() {
    let stack = Stack::distributed(
        common::stack::Topology::PIPELINE,
        &[("TESSERA_LOG", "info"), QUICK_READS],
    )
    .await;
    let token = signed_in_with_points(&stack).await;
    // fewer cases per operation than on serve; still over 1,000 per API
    // (20 and 30 per operation generated 2,316 and 2,114)
    let (write_examples, read_examples) = (examples().min(20), examples().min(30));
    let writes = fuzz(&stack.write().addr, &token, write_examples, "write-api").await;
    let reads = fuzz(&stack.read().addr, &token, read_examples, "read-api").await;
    assert!(
        writes >= 20 * u64::from(write_examples) && reads >= 20 * u64::from(read_examples),
        "only {writes} and {reads} cases were generated"
    );
    assert_no_panic(&stack);
    eprintln!(
        "schemathesis: {writes} cases on the write API and {reads} on the read API, no failure"
    );
}
