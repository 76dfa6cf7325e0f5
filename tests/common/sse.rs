//! A Server-Sent Events client over a real HTTP connection: opens
//! `/v1/stream` and reads its events one by one, each with a deadline.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

/// One event of a stream.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

pub struct Stream {
    response: reqwest::Response,
    buffer: String,
    /// Comment lines seen (keep-alives).
    pub comments: usize,
}

/// Opens a stream; `Err` carries the refusal's status and body.
pub async fn open(
    base: &str,
    topics: Option<&str>,
    token: &str,
    last_event_id: Option<&str>,
) -> Result<Stream, (StatusCode, Value)> {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/v1/stream"))
        .bearer_auth(token);
    if let Some(t) = topics {
        req = req.query(&[("topics", t)]);
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let response = req.send().await.expect("the read API answers");
    if response.status() != StatusCode::OK {
        let status = response.status();
        return Err((status, response.json().await.unwrap_or(Value::Null)));
    }
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "a stream is text/event-stream"
    );
    Ok(Stream {
        response,
        buffer: String::new(),
        comments: 0,
    })
}

/// A stream of `topic` once `token` may follow it at `base`: each read API
/// checks access from its own read models, which may not have caught up.
pub async fn open_once_allowed(base: &str, topic: &str, token: &str, within: Duration) -> Stream {
    let deadline = tessera_testkit::Deadline::new(within, format!("{topic} may be followed"));
    loop {
        match open(base, Some(topic), token, None).await {
            Ok(s) => return s,
            Err(_) => deadline.tick().await,
        }
    }
}

impl Stream {
    /// The next event, or `None` once the server ended the stream.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}"))
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Events until one satisfies `want` (within `within` overall).
    pub async fn until(&mut self, within: Duration, want: impl Fn(&SseEvent) -> bool) -> SseEvent {
        let end = tokio::time::Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await.expect("the stream is still open");
            if want(&event) {
                return event;
            }
            eprintln!("stream event passed over: {event:?}");
        }
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let (mut event, mut id, mut data) = (String::from("message"), String::new(), String::new());
        let mut has_data = false;
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match name {
                "event" => event = value.to_owned(),
                "id" => id = value.to_owned(),
                "data" => {
                    has_data = true;
                    data.push_str(value);
                }
                _ => {}
            }
        }
        // a block without data dispatches no event (the SSE standard)
        has_data.then(|| SseEvent {
            event,
            id,
            data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        })
    }
}
