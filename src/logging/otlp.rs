//! Sends finished spans to an OpenTelemetry collector: OTLP over HTTP with
//! JSON bodies (`POST {endpoint}/v1/traces`), which every collector accepts
//! on its HTTP port. Spans are batched on a thread of their own, so a slow
//! or absent collector costs the request path nothing: its queue fills and
//! further spans are dropped and counted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tessera_runtime::trace::{take_dropped, FinishedSpan};
use tokio::sync::{mpsc, oneshot};

use crate::settings::Settings;

/// Spans waiting to be sent; a full queue drops new ones.
const QUEUE: usize = 8192;
/// Spans per request to the collector.
const BATCH: usize = 512;
/// How long a request to the collector may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Config {
    pub traces_url: String,
    pub headers: Vec<(String, String)>,
    pub service: String,
    pub delay: Duration,
}

impl Config {
    pub fn new(endpoint: &url::Url, s: &Settings, service: &str) -> Self {
        let headers = s
            .otel_exporter_otlp_headers
            .as_ref()
            .map(|h| parse_headers(h.expose_secret()))
            .unwrap_or_default();
        Self {
            traces_url: format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/')),
            headers,
            service: service.to_owned(),
            delay: Duration::from_millis(s.otel_bsp_schedule_delay.max(1)),
        }
    }
}

/// `key=value,key=value`, values percent-decoded as the specification says.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), percent_decoded(v.trim())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// `%XX` escapes decoded; a `+` stays a `+` (base64 keys have them).
fn percent_decoded(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| v.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The exporter's thread. Dropping it sends what is queued and waits for
/// that (at most one request's timeout).
#[derive(Debug)]
pub struct Exporter {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn start(config: Config) -> (mpsc::Sender<FinishedSpan>, Exporter) {
    let (sink, spans) = mpsc::channel(QUEUE);
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("otlp-exporter".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(export(config, spans, stopped)),
                Err(error) => eprintln!("tessera: the span exporter cannot start: {error}"),
            }
        })
        .ok();
    (
        sink,
        Exporter {
            stop: Some(stop),
            thread,
        },
    )
}

async fn export(
    config: Config,
    mut spans: mpsc::Receiver<FinishedSpan>,
    mut stopped: oneshot::Receiver<()>,
) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(error = %error, "span exporter has no http client");
            return;
        }
    };
    let mut tick = tokio::time::interval(config.delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            span = spans.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= BATCH {
                        send(&client, &config, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => send(&client, &config, &mut batch).await,
            _ = &mut stopped => break,
        }
    }
    while let Ok(span) = spans.try_recv() {
        batch.push(span);
        if batch.len() >= BATCH {
            send(&client, &config, &mut batch).await;
        }
    }
    send(&client, &config, &mut batch).await;
}

async fn send(client: &reqwest::Client, config: &Config, batch: &mut Vec<FinishedSpan>) {
    let dropped = take_dropped();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "spans dropped: the collector was slower than the spans came"
        );
    }
    // a caller that said "not sampled" is not exported (parent-based sampling)
    batch.retain(|s| s.context.sampled);
    if batch.is_empty() {
        return;
    }
    let body = encode(&config.service, batch);
    let spans = batch.len();
    batch.clear();
    let mut request = client.post(&config.traces_url).json(&body);
    for (k, v) in &config.headers {
        request = request.header(k, v);
    }
    match request.send().await {
        Ok(res) if res.status().is_success() => {}
        Ok(res) => tracing::warn!(
            status = res.status().as_u16(),
            spans,
            "collector refused spans"
        ),
        Err(error) => tracing::warn!(error = %error, spans, "collector unreachable, spans dropped"),
    }
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding: ids in hex, times
/// and 64-bit integers as decimal strings, enums as numbers.
pub fn encode(service: &str, spans: &[FinishedSpan]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [attribute("service.name", &Value::from(service))]},
            "scopeSpans": [{
                "scope": {"name": "tessera", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    })
}

fn span(s: &FinishedSpan) -> Value {
    // SpanKind: INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5
    let kind = match s.fields.get("otel.kind").and_then(Value::as_str) {
        Some("server") => 2,
        Some("client") => 3,
        Some("producer") => 4,
        Some("consumer") => 5,
        _ => 1,
    };
    let failed = s
        .fields
        .get("http.response.status_code")
        .and_then(Value::as_u64)
        .is_some_and(|status| status >= 500);
    let mut out = json!({
        "traceId": s.context.trace_id.to_string(),
        "spanId": s.context.span_id.to_string(),
        "name": s.name,
        "kind": kind,
        "startTimeUnixNano": nanos(s.started),
        "endTimeUnixNano": nanos(s.ended),
        "attributes": s.fields.iter()
            .filter(|(k, _)| !k.starts_with("otel."))
            .map(|(k, v)| attribute(k, v))
            .collect::<Vec<_>>(),
        // STATUS_CODE_ERROR 2, else unset
        "status": if failed { json!({"code": 2}) } else { json!({}) },
    });
    if let Some(parent) = s.parent {
        out["parentSpanId"] = parent.to_string().into();
    }
    out
}

fn attribute(key: &str, value: &Value) -> Value {
    let value = match value {
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": value})
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_pairs_with_escapes_decoded() {
        assert_eq!(
            parse_headers("api-key=s3cr%20t+/=, x-tenant = t1,broken,=v"),
            vec![
                ("api-key".to_owned(), "s3cr t+/=".to_owned()),
                ("x-tenant".to_owned(), "t1".to_owned())
            ]
        );
    }
}
