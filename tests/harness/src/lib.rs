//! Test harness. Each test gets its own PostgreSQL database, MongoDB
//! database, Kafka topic and ports, on the real servers `scripts/services up`
//! starts (its env file names them), so tests run in parallel.
//!
//! A missing server fails the test with a message saying how to start it:
//! a test that cannot reach its server must not pass.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with scripts/test, or `source $(scripts/services up)` first"
        )
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Waits until `check` holds, polling every 20 ms; panics with `what` after
/// `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deadline for loops that wait on a condition with mutable state:
/// `loop { if done { break } deadline.tick().await }`.
pub struct Deadline {
    at: tokio::time::Instant,
    timeout: Duration,
    what: String,
}

impl Deadline {
    pub fn new(timeout: Duration, what: impl Into<String>) -> Self {
        Self {
            at: tokio::time::Instant::now() + timeout,
            timeout,
            what: what.into(),
        }
    }

    /// Sleeps a little; panics once the deadline has passed.
    pub async fn tick(&self) {
        assert!(
            tokio::time::Instant::now() < self.at,
            "timed out after {:?} waiting until {}",
            self.timeout,
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free TCP port on loopback (nobody listens on it right now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// A PostgreSQL database of its own, dropped at the end of the test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin_url = required("TESSERA_TEST_PG_URL");
        let name = unique("tessera_test");
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("cannot reach PostgreSQL at TESSERA_TEST_PG_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("cannot create a test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn pool(&self, max_connections: u32) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&self.url)
            .await
            .expect("cannot connect to the test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime we can block on: use a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A MongoDB database of its own, dropped at the end of the test.
pub struct MongoDatabase {
    pub uri: String,
    pub name: String,
}

impl MongoDatabase {
    pub fn create() -> Self {
        Self {
            uri: required("TESSERA_TEST_MONGODB_URI"),
            name: unique("tessera_test"),
        }
    }
}

impl Drop for MongoDatabase {
    fn drop(&mut self) {
        let uri = self.uri.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(client) = mongodb::Client::with_uri_str(&uri).await {
                        let _ = client.database(&name).drop().await;
                    }
                });
            }
        })
        .join();
    }
}

/// The shared Kafka-compatible broker and a topic of this test's own.
pub struct KafkaTopic {
    pub brokers: String,
    pub topic: String,
}

impl KafkaTopic {
    pub fn create() -> Self {
        Self {
            brokers: required("TESSERA_TEST_KAFKA_BROKERS"),
            topic: unique("tessera_test"),
        }
    }

    /// A consumer group name of this test's own.
    pub fn group(&self, name: &str) -> String {
        format!("{}.{name}", self.topic)
    }
}

/// A broker of the test's own (to stop and start it), on `port`.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
}

impl Broker {
    /// A port to start a broker on later (nothing listens there yet).
    pub fn reserve() -> Self {
        Self {
            port: free_port(),
            child: None,
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self) {
        let bin = required("TESSERA_TEST_TANSU_BIN");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start tansu");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            Duration::from_secs(20),
            "the broker listens",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The argument list of an env var map, for display in failures.
pub fn describe(env: &[(&str, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// JSON helper for tests.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("valid JSON")
}
