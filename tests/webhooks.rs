//! Webhooks end to end, against a real HTTP receiver on loopback that fails
//! on purpose (`common::receiver`): what is delivered is checked against the
//! event log — every matching event committed after the registration, none
//! before, signed over the exact body, in order per aggregate.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::receiver::{Received, Receiver};
use common::stack::{Stack, Topology};
use common::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_events::{EventLog, LogPosition, LogRecord};
use tessera_testkit::{wait_until, Broker, Deadline};
use tessera_webhooks::signature::verify;

const SECRET: &str = "a webhook secret of the test";
const TYPES: [&str; 2] = ["AccountRegistered", "ProfileUpdated"];

/// Every event of the log, in commit order.
async fn whole_log(log: &dyn EventLog) -> Vec<LogRecord> {
    let mut all = Vec::new();
    let mut at = LogPosition::START;
    loop {
        let batch = log.read_after(at, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        at = last.at;
        all.extend(batch);
    }
    all
}

/// The whole log once it shows every matching event of `ids` (`each`
/// apiece). PostgreSQL's log shows a row only once every older
/// transaction ended, and that horizon is the whole server's: a neighbour
/// test's open transaction can hide rows already committed here for a
/// moment (a run read a position two events short).
async fn showing(log: &dyn EventLog, ids: &[String], each: usize) -> Vec<LogRecord> {
    let wanted = ids.len() * each;
    wait_until(
        Duration::from_secs(30),
        "the log shows the events written",
        || async {
            let all = whole_log(log).await;
            all.iter()
                .filter(|r| {
                    TYPES.contains(&r.envelope.event_type.as_str())
                        && ids.contains(&r.envelope.aggregate_id)
                })
                .count()
                >= wanted
        },
    )
    .await;
    whole_log(log).await
}

/// `n` accounts, each renamed `renames` times, concurrently: returns their ids.
async fn accounts_with_renames(c: &Client, tag: &str, n: usize, renames: usize) -> Vec<String> {
    let work = (0..n).map(|i| async move {
        let (id, token) = c
            .register(&format!("{tag}-{i}@example.com"), &format!("{tag}{i}"))
            .await;
        for r in 0..renames {
            let a = c
                .send(
                    Method::PATCH,
                    "/v1/accounts/me",
                    &token,
                    Some(json!({"nickname": format!("{tag}{i}r{r}")})),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        }
        id
    });
    futures::future::join_all(work).await
}

/// Checks what the receiver accepted against the log: each matching event
/// committed after `from` at least once, nothing else, signatures good, and
/// per aggregate the first deliveries in sequence order.
fn assert_delivered_exactly_the_log(accepted: &[Received], log: &[LogRecord], after: i64) {
    let wanted: Vec<&LogRecord> = log
        .iter()
        .filter(|r| {
            r.envelope.global_position > after && TYPES.contains(&r.envelope.event_type.as_str())
        })
        .collect();
    let mut first_seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in accepted {
        assert!(
            verify(SECRET.as_bytes(), &r.body, r.header("x-tessera-signature")),
            "a delivery whose signature does not match its body: {}",
            r.header("x-tessera-signature")
        );
        let event_id = r.envelope["event_id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("x-tessera-event-id"), event_id);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(
            r.header("traceparent"),
            r.envelope["metadata"]["traceparent"]
                .as_str()
                .unwrap_or_default(),
            "a delivery continues its event's trace"
        );
        if seen.insert(event_id) {
            first_seen
                .entry(r.envelope["aggregate_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(r.envelope["sequence"].as_u64().unwrap());
        }
    }
    let expected: HashSet<String> = wanted
        .iter()
        .map(|r| r.envelope.event_id.to_string())
        .collect();
    let missing: Vec<_> = expected.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "{} matching events never delivered: {missing:?}",
        missing.len()
    );
    assert!(
        extra.is_empty(),
        "delivered events that were not to be: {extra:?}"
    );
    for (aggregate, sequences) in first_seen {
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "aggregate {aggregate} delivered out of order: {sequences:?}"
        );
    }
    // and each delivery carries the envelope exactly as the log holds it
    for r in accepted.iter().take(5) {
        let in_log = wanted
            .iter()
            .find(|w| w.envelope.event_id.to_string() == r.envelope["event_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(r.envelope, serde_json::to_value(&in_log.envelope).unwrap());
    }
}

fn admin_cli(stack: &Stack, args: &[&str]) -> (bool, String) {
    let args: Vec<&str> = ["admin", "webhooks"].iter().chain(args).copied().collect();
    let out = common::tessera(&stack.env, &args);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn listed(stack: &Stack) -> Value {
    let (ok, out) = admin_cli(stack, &["list", "--json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

async fn register_webhook(c: &Client, admin: &str, url: &str) -> String {
    let a = c
        .post(
            "/v1/admin/webhooks",
            admin,
            json!({"url": url, "event_types": TYPES, "secret": SECRET}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["webhook_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_delivers_signed_events_in_order_and_dead_letters_what_keeps_failing() {
    let stack = Stack::embedded(&[
        ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("TESSERA_WEBHOOK_MAX_ATTEMPTS", "3"),
        ("TESSERA_WEBHOOK_BACKOFF_BASE_MS", "50"),
        ("TESSERA_WEBHOOK_BACKOFF_MAX_MS", "200"),
    ])
    .await;
    let c = &stack.client;
    let receiver = Receiver::start().await;
    // history before the registration is not replayed
    accounts_with_renames(c, "before", 3, 1).await;
    let log = stack.event_log().await;
    let registered_after = whole_log(&*log)
        .await
        .last()
        .unwrap()
        .envelope
        .global_position;

    // bad registrations are refused, nothing is kept
    let (_, user_token) = c.register("plain@example.com", "plain").await;
    let body = json!({"url": receiver.url(), "event_types": TYPES, "secret": SECRET});
    c.refuses(
        Method::POST,
        "/v1/admin/webhooks",
        &user_token,
        Some(body.clone()),
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;
    let unknown = json!({"url": receiver.url(), "event_types": ["NoSuchEvent"], "secret": SECRET});
    c.refuses(
        Method::POST,
        "/v1/admin/webhooks",
        &stack.admin,
        Some(unknown),
        (StatusCode::BAD_REQUEST, "invalid_input"),
    )
    .await;
    let ftp = json!({"url": "ftp://example.com/x", "event_types": TYPES, "secret": SECRET});
    c.refuses(
        Method::POST,
        "/v1/admin/webhooks",
        &stack.admin,
        Some(ftp),
        (StatusCode::UNPROCESSABLE_ENTITY, "url_not_allowed"),
    )
    .await;
    let registered_after = registered_after.max(
        whole_log(&*log)
            .await
            .last()
            .unwrap()
            .envelope
            .global_position,
    );
    let webhook_id = register_webhook(c, &stack.admin, &receiver.url()).await;

    let ids = accounts_with_renames(c, "after", 8, 3).await;
    let expected = ids.len() * 4;
    wait_until(
        Duration::from_secs(30),
        "every matching event is delivered",
        || async { receiver.accepted().len() >= expected },
    )
    .await;
    let all = whole_log(&*log).await;
    assert_delivered_exactly_the_log(&receiver.accepted(), &all, registered_after);

    // the listing tells the same, and never shows the secret
    let list = c.get("/v1/admin/webhooks", &stack.admin).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(!list.body.to_string().contains(SECRET));
    let hook = &list.body[0];
    assert_eq!(hook["webhook_id"], webhook_id.as_str());
    assert_eq!(hook["delivered"], expected);
    assert_eq!(
        (hook["pending"].as_u64(), hook["failed"].as_u64()),
        (Some(0), Some(0))
    );
    c.refuses(
        Method::GET,
        "/v1/admin/webhooks",
        &user_token,
        None,
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;

    // a receiver that refuses: three attempts with backoff, then a dead letter
    receiver.answer(|_| 500);
    let before = receiver.received().len();
    accounts_with_renames(c, "refused", 1, 0).await;
    let deadline = Deadline::new(
        Duration::from_secs(30),
        "the refused delivery is dead-lettered",
    );
    let letters = loop {
        let l = listed(&stack);
        if l["dead_letters"].as_array().is_some_and(|d| !d.is_empty()) {
            break l;
        }
        deadline.tick().await;
    };
    assert_eq!(
        receiver.received().len() - before,
        3,
        "three attempts, then a dead letter"
    );
    let attempts: Vec<_> = receiver.received()[before..]
        .iter()
        .map(|r| r.header("x-tessera-delivery-attempt").to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["event_type"], "AccountRegistered");
    assert!(
        letter["last_error"].as_str().unwrap().contains("500"),
        "{letter}"
    );
    assert_eq!(letters["webhooks"][0]["failed"], 1);
    assert!(letters["webhooks"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("500"));

    // the webhook went on: the next event is delivered once the receiver heals
    receiver.answer(|_| 204);
    accounts_with_renames(c, "healed", 1, 0).await;
    wait_until(
        Duration::from_secs(30),
        "the next event is delivered",
        || async { receiver.accepted().len() == expected + 1 },
    )
    .await;
    // the operator retries the dead letter: delivered with its original body
    let (ok, out) = admin_cli(&stack, &["retry", "--all"]);
    assert!(ok, "{out}");
    assert!(out.contains("delivered 1 letters"), "{out}");
    let retried = receiver.accepted().last().unwrap().clone();
    assert_eq!(retried.envelope["event_id"], letter["event_id"]);
    let trace = retried.envelope["metadata"]["traceparent"].as_str();
    assert!(trace.is_some(), "{}", retried.envelope);
    assert_eq!(Some(retried.header("traceparent")), trace);
    assert!(verify(
        SECRET.as_bytes(),
        &retried.body,
        retried.header("x-tessera-signature")
    ));
    let after_retry = listed(&stack);
    assert_eq!(after_retry["dead_letters"], json!([]));
    assert_eq!(after_retry["webhooks"][0]["delivered"], expected + 2);
    assert_eq!(after_retry["webhooks"][0]["failed"], 0);

    // deleted: gone from the list, a second delete is 404
    let gone = c
        .send(
            Method::DELETE,
            &format!("/v1/admin/webhooks/{webhook_id}"),
            &stack.admin,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    c.refuses(
        Method::DELETE,
        &format!("/v1/admin/webhooks/{webhook_id}"),
        &stack.admin,
        None,
        (StatusCode::NOT_FOUND, "not_found"),
    )
    .await;
    assert_eq!(
        c.get("/v1/admin/webhooks", &stack.admin).await.body,
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_down_for_30_s_with_kafka_stopped_and_the_relay_killed_gets_every_event_in_order(
) {
    let mut broker = Broker::reserve();
    broker.start().await;
    let brokers = broker.brokers();
    let topology = Topology {
        writers: 1,
        readers: 1,
        relays: 1,
        projectors: 0,
        fixed_ports: false,
    };
    let mut stack = Stack::distributed(
        topology,
        &[
            ("TESSERA_KAFKA_BROKERS", &brokers),
            ("TESSERA_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("TESSERA_WEBHOOK_MAX_ATTEMPTS", "1000"),
            ("TESSERA_WEBHOOK_BACKOFF_BASE_MS", "100"),
            ("TESSERA_WEBHOOK_BACKOFF_MAX_MS", "2000"),
        ],
    )
    .await;
    let c = stack.client.clone();
    let mut receiver = Receiver::reserve();
    let log = stack.event_log().await;
    let before = accounts_with_renames(&c, "before", 2, 1).await;
    let webhook_id = register_webhook(&c, &stack.admin, &receiver.url()).await;
    let registered_after = showing(&*log, &before, 2)
        .await
        .last()
        .unwrap()
        .envelope
        .global_position;

    // Kafka goes away; commands and deliveries do not need it
    broker.stop();
    let down = std::time::Instant::now();
    let ids = accounts_with_renames(&c, "during", 20, 2).await;
    let expected = ids.len() * 3;
    // the webhook waits with its events pending and says why
    c.get_until(
        "/v1/admin/webhooks",
        &stack.admin,
        "the webhook reports the receiver down",
        |b| {
            b[0]["webhook_id"] == webhook_id.as_str()
                && b[0]["pending"].as_u64() == Some(expected as u64)
                && b[0]["last_error"].as_str().is_some()
        },
    )
    .await;
    // the deliverer is killed while the receiver is down, and comes back
    stack.relays[0].kill();
    stack.relays[0].respawn().await;
    // the receiver stays down for 30 s in all
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    assert!(receiver.received().is_empty());
    receiver.up().await;
    let up = std::time::Instant::now();
    wait_until(
        Duration::from_secs(60),
        "every event is delivered after the receiver came up",
        || async {
            let seen: HashSet<String> = receiver
                .accepted()
                .iter()
                .map(|r| {
                    r.envelope["event_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            seen.len() >= expected
        },
    )
    .await;
    let caught_up = up.elapsed();
    let all = whole_log(&*log).await;
    assert_delivered_exactly_the_log(&receiver.accepted(), &all, registered_after);
    let after = c.get("/v1/admin/webhooks", &stack.admin).await;
    assert_eq!(after.body[0]["pending"], 0, "{}", after.body);
    assert_eq!(after.body[0]["failed"], 0);
    assert_eq!(after.body[0]["last_error"], Value::Null);
    eprintln!(
        "webhooks: {expected} events delivered {caught_up:?} after a 30 s outage, {} requests in all",
        receiver.received().len()
    );
}
