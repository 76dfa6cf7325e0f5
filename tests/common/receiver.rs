//! A real HTTP receiver for webhooks on loopback: it records every request
//! (headers and the exact body) and answers what the test says, so it can
//! fail on purpose; it can also be down (not listening) and come up later on
//! the port its webhook was registered with.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub envelope: Value,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

type Answer = Box<dyn Fn(&Value) -> u16 + Send + Sync>;

#[derive(Clone)]
struct Shared {
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    stop: Option<CancellationToken>,
}

impl Receiver {
    /// A receiver on a free port that answers 200, not listening yet.
    pub fn reserve() -> Self {
        let port = tessera_testkit::free_port();
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            shared: Shared {
                got: Arc::default(),
                answer: Arc::new(Mutex::new(Box::new(|_| 200))),
            },
            stop: None,
        }
    }

    /// A receiver listening now.
    pub async fn start() -> Self {
        let mut r = Self::reserve();
        r.up().await;
        r
    }

    /// Where to register the webhook.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/tessera", self.addr)
    }

    /// Starts listening (again) on its port.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the receiver's port is free");
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/hooks/tessera", post(receive))
            .with_state(self.shared.clone());
        let serving =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move {
            let _ = serving.await;
        });
        self.stop = Some(stop);
    }

    /// Answers `status` from now on, for each envelope as `f` says.
    pub fn answer(&self, f: impl Fn(&Value) -> u16 + Send + Sync + 'static) {
        *self.shared.answer.lock().unwrap() = Box::new(f);
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    /// The requests it answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let envelope: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = (shared.answer.lock().unwrap())(&envelope);
    shared.got.lock().unwrap().push(Received {
        headers,
        body,
        envelope,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
