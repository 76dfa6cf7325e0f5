//! Logs and traces as an operator meets them: the real log lines of real
//! processes parsed as ECS JSON, a W3C `traceparent` followed from the
//! command's request through the event log, the relay's Kafka message and
//! the projector to the change a stream pushes, and the spans of every
//! process received by an OTLP collector stand-in.

use crate::common;

use std::time::Duration;

use common::collector::{Collector, Span};
use common::sse;
use common::stack::{Stack, Topology};
use common::Tessera;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_testkit::wait_until;

const WAIT: Duration = Duration::from_secs(30);

/// The settings that send spans to `collector` quickly.
fn traced(collector: &Collector) -> [(&'static str, String); 2] {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
}

fn leak(env: &[(&'static str, String)]) -> Vec<(&'static str, &'static str)> {
    env.iter()
        .map(|(k, v)| (*k, &*Box::leak(v.clone().into_boxed_str())))
        .collect()
}

/// A caller's own trace context: a fresh trace id and parent span id.
fn caller_context() -> (String, String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace}-{span}-01"), trace, span)
}

/// Every JSON line a process logged, parsed; a line that is not JSON fails.
fn json_lines(p: &Tessera) -> Vec<Value> {
    p.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The ECS fields every line has.
fn assert_ecs_line(line: &Value, service: &str) {
    let ts = line["@timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("@timestamp: {line}"));
    chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(ts.ends_with('Z'), "UTC: {line}");
    assert!(
        ["trace", "debug", "info", "warn", "error"]
            .contains(&line["log.level"].as_str().unwrap_or_default()),
        "log.level: {line}"
    );
    assert_eq!(line["service.name"], service, "{line}");
    assert!(line["message"].is_string(), "message: {line}");
    assert!(line["ecs.version"].is_string(), "ecs.version: {line}");
    assert!(
        line.get("log.target").is_none() && line.get("level").is_none(),
        "{line}"
    );
}

/// The request log line of `method path` in `trace`.
fn request_line(p: &Tessera, trace: &str, method: &str, path: &str) -> Value {
    json_lines(p)
        .into_iter()
        .find(|l| {
            l["message"] == "request finished"
                && l["trace.id"] == trace
                && l["http.request.method"] == method
                && l["url.path"] == path
        })
        .unwrap_or_else(|| {
            panic!(
                "no request line for {method} {path} in trace {trace}:\n{}",
                p.logs()
            )
        })
}

struct Traced {
    trace: String,
    caller_span: String,
    guild: String,
    owner_id: String,
}

/// A guild renamed by a command that carries `traceparent`, its change
/// pushed to a stream: the trace id is on the answer, the event, the
/// pushed change and the request's log line.
async fn rename_a_guild_in_a_trace(stack: &Stack) -> Traced {
    let c = &stack.client;
    let (owner_id, owner) = c.register("traced@example.com", "traced").await;
    let guild = c.new_guild(&owner, "Traced").await;
    c.get_until(&format!("/v1/guilds/{guild}"), &owner, "the guild", |_| {
        true
    })
    .await;
    let topic = format!("guild:{guild}");
    let mut stream = sse::open_once_allowed(&stack.read().addr, &topic, &owner, WAIT).await;

    let (traceparent, trace, caller_span) = caller_context();
    let res = c
        .http
        .patch(format!("{}/v1/guilds/{guild}", stack.write().addr))
        .bearer_auth(&owner)
        .header("traceparent", &traceparent)
        .json(&json!({"name": "Renamed in a trace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answered = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(
        answered.starts_with(&format!("00-{trace}-")) && !answered.contains(&caller_span),
        "the answer names the request's own span of the caller's trace: {answered}"
    );

    let pushed = stream
        .until(WAIT, |e| {
            e.event == "document" && e.data["document"]["name"] == "Renamed in a trace"
        })
        .await;
    assert_eq!(pushed.data["trace_id"], trace.as_str(), "{:?}", pushed.data);

    let events = c
        .get(
            &format!("/v1/admin/events?aggregate_type=guild&aggregate_id={guild}"),
            &stack.admin,
        )
        .await;
    let renamed = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "GuildUpdated")
        .unwrap_or_else(|| panic!("a GuildUpdated event: {}", events.body))
        .clone();
    let stored = renamed["metadata"]["traceparent"].as_str().unwrap();
    assert_eq!(
        stored, answered,
        "the event keeps the request's span as its cause"
    );
    // events of requests that sent no header are traced too, each its own trace
    let created = &events.body["items"][0]["metadata"]["traceparent"];
    assert!(
        created.is_string() && !created.as_str().unwrap().contains(&trace),
        "{created}"
    );

    let line = request_line(
        stack.write(),
        &trace,
        "PATCH",
        &format!("/v1/guilds/{guild}"),
    );
    assert_eq!(line["http.response.status_code"], 200, "{line}");
    assert_eq!(line["user.id"], owner_id.as_str(), "{line}");
    assert!(
        line["event.duration"].as_u64().is_some_and(|ns| ns > 0),
        "{line}"
    );
    assert!(
        line["http.request.id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    assert_eq!(line["span.id"].as_str().map(str::len), Some(16), "{line}");
    Traced {
        trace,
        caller_span,
        guild,
        owner_id,
    }
}

/// The spans of `trace` once every name in `names` was received.
async fn spans_of(collector: &Collector, trace: &str, names: &[&str]) -> Vec<Span> {
    wait_until(WAIT, "the collector received the trace's spans", || async {
        let got = collector.trace(trace);
        names
            .iter()
            .all(|n| got.iter().any(|s| s.str("name") == *n))
    })
    .await;
    collector.trace(trace)
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.str("name") == name)
        .unwrap_or_else(|| panic!("a {name} span in {spans:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_ecs_lines_and_follows_a_trace_from_the_request_to_the_pushed_change() {
    let collector = Collector::start().await;
    let env = traced(&collector);
    let stack = Stack::embedded(&leak(&env)).await;
    let t = rename_a_guild_in_a_trace(&stack).await;

    let spans = spans_of(&collector, &t.trace, &["request", "project"]).await;
    let request = one(&spans, "request");
    assert_eq!(request.service, "tessera-serve");
    assert_eq!(
        request.str("parentSpanId"),
        t.caller_span,
        "the caller's span is the parent"
    );
    assert_eq!(request.span["kind"], 2, "SERVER");
    assert_eq!(
        request.attribute("http.request.method"),
        Some(&json!("PATCH"))
    );
    assert_eq!(request.attribute("user.id"), Some(&json!(t.owner_id)));
    assert_eq!(
        request.attribute("url.path"),
        Some(&json!(format!("/v1/guilds/{}", t.guild)))
    );
    for project in spans.iter().filter(|s| s.str("name") == "project") {
        assert_eq!(project.span["kind"], 5, "CONSUMER");
        assert_eq!(project.str("parentSpanId"), request.str("spanId"));
        assert_eq!(
            project.attribute("event.type"),
            Some(&json!("GuildUpdated"))
        );
        let (start, end) = (
            project.str("startTimeUnixNano"),
            project.str("endTimeUnixNano"),
        );
        assert!(start.parse::<u128>().unwrap() <= end.parse::<u128>().unwrap());
    }
    assert!(collector
        .content_types()
        .iter()
        .all(|c| c == "application/json"));

    let lines = json_lines(stack.write());
    assert!(lines.len() >= 5, "{} lines", lines.len());
    for line in &lines {
        assert_ecs_line(line, "tessera-serve");
    }
    // a request with no traceparent (or a malformed one) starts its own trace
    let res = stack
        .client
        .http
        .get(format!("{}/v1/guilds/{}", stack.read().addr, t.guild))
        .header("traceparent", "00-not-a-trace-01")
        .send()
        .await
        .unwrap();
    let fresh = res.headers()["traceresponse"].to_str().unwrap();
    assert!(
        fresh.starts_with("00-") && fresh.len() == 55 && !fresh.contains(&t.trace),
        "{fresh}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_crosses_the_write_api_the_relay_kafka_the_projector_and_the_read_api() {
    let collector = Collector::start().await;
    let env = traced(&collector);
    let stack = Stack::distributed(Topology::PIPELINE, &leak(&env)).await;
    let t = rename_a_guild_in_a_trace(&stack).await;

    let spans = spans_of(&collector, &t.trace, &["request", "publish", "project"]).await;
    let request = one(&spans, "request");
    assert_eq!(request.service, "tessera-write-api");
    assert_eq!(request.str("parentSpanId"), t.caller_span);
    let publish = one(&spans, "publish");
    assert_eq!(publish.service, "tessera-relay");
    assert_eq!(publish.span["kind"], 4, "PRODUCER");
    assert_eq!(publish.str("parentSpanId"), request.str("spanId"));
    assert_eq!(
        publish.attribute("event.type"),
        Some(&json!("GuildUpdated"))
    );
    for project in spans.iter().filter(|s| s.str("name") == "project") {
        assert_eq!(project.service, "tessera-projector");
        assert_eq!(project.str("parentSpanId"), request.str("spanId"));
    }

    // the Kafka message carries the header for consumers of the topic
    let topic = stack.setting("TESSERA_KAFKA_TOPIC").unwrap().to_owned();
    let brokers = stack.setting("TESSERA_KAFKA_BROKERS").unwrap().to_owned();
    let header =
        tokio::task::spawn_blocking(move || traceparent_on_kafka(&brokers, &topic, "GuildUpdated"))
            .await
            .unwrap();
    assert_eq!(header.as_deref(), Some(request_context(request).as_str()));

    for (p, service) in [
        (stack.write(), "tessera-write-api"),
        (stack.read(), "tessera-read-api"),
        (&stack.relays[0], "tessera-relay"),
        (&stack.projectors[0], "tessera-projector"),
    ] {
        let lines = json_lines(p);
        assert!(!lines.is_empty(), "{service} logged");
        for line in &lines {
            assert_ecs_line(line, service);
        }
    }
}

/// The `traceparent` a request span gives its children.
fn request_context(request: &Span) -> String {
    format!("00-{}-{}-01", request.str("traceId"), request.str("spanId"))
}

/// The `traceparent` header of the first message of `event_type` on the
/// topic, read from the beginning with a consumer of its own.
fn traceparent_on_kafka(brokers: &str, topic: &str, event_type: &str) -> Option<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::ClientConfig;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("traces-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let end = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < end {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let headers = m.headers()?;
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        if get("event_type").as_deref() == Some(event_type) {
            return get("traceparent");
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_log_still_carries_the_trace_into_the_events() {
    // (the roles' own lines stay: the harness waits for `listening`)
    let stack = Stack::embedded(&[("TESSERA_LOG", "warn,tessera::roles=info")]).await;
    let c = &stack.client;
    let (traceparent, trace, _) = caller_context();
    let res = c
        .http
        .post(format!("{}/v1/accounts", stack.write().addr))
        .header("traceparent", &traceparent)
        .json(&json!({"email": "quiet@example.com", "password": "correct horse", "nickname": "q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let answered = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(answered.starts_with(&format!("00-{trace}-")), "{answered}");
    let account: Value = res.json().await.unwrap();
    let events = c
        .get(
            &format!(
                "/v1/admin/events?aggregate_type=account&aggregate_id={}",
                account["account_id"].as_str().unwrap()
            ),
            &stack.admin,
        )
        .await;
    assert_eq!(
        events.body["items"][0]["metadata"]["traceparent"], answered,
        "{}",
        events.body
    );
    assert!(
        json_lines(stack.write())
            .iter()
            .all(|l| l["log.logger"] == "tessera::roles" || l["log.level"] == "warn"),
        "no request lines at warn: {}",
        stack.write().logs()
    );
}
