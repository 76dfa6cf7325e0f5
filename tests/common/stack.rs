//! One test kit for every end-to-end file: a deployment of `tessera`
//! processes, the client that talks to it, and the stores behind it opened
//! the way the CLI opens them.
//!
//! - [`Stack::embedded`]: `tessera serve` on a fresh data directory;
//! - [`Stack::distributed`]: the production roles on a fresh PostgreSQL
//!   database, Kafka topic and MongoDB database, in any [`Topology`] (the
//!   races run two write APIs and nothing else);
//! - [`Stack::start`]: the same roles on stores the caller made (the fault
//!   suite's, which it pauses and restarts).

use std::any::Any;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tessera_documents::store::embedded::EmbeddedStore;
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::DocumentStore;
use tessera_events::EventLog;
use tessera_projector::projection;
use tessera_testkit::{free_port, KafkaTopic, MongoDatabase, PgDatabase};
use tessera_write_side::store::postgres::{self, PgEventLog};
use tessera_write_side::store::sqlite::{self, SqliteEventLog};

use super::{admin_token, stack_env, Client, Tessera};

/// How many processes of each role a distributed stack runs.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    pub writers: usize,
    pub readers: usize,
    pub relays: usize,
    pub projectors: usize,
    /// Write and read APIs listen on ports chosen up front, so that a
    /// restarted process comes back where clients expect it.
    pub fixed_ports: bool,
}

impl Topology {
    /// One process of each role.
    pub const PIPELINE: Self = Self {
        writers: 1,
        readers: 1,
        relays: 1,
        projectors: 1,
        fixed_ports: false,
    };

    /// `n` write APIs on one database and nothing else.
    pub const fn writers(n: usize) -> Self {
        Self {
            writers: n,
            readers: 0,
            relays: 0,
            projectors: 0,
            fixed_ports: false,
        }
    }

    pub const fn with_projectors(self, projectors: usize) -> Self {
        Self { projectors, ..self }
    }

    pub const fn with_fixed_ports(self) -> Self {
        Self {
            fixed_ports: true,
            ..self
        }
    }
}

/// A running deployment.
pub struct Stack {
    /// The settings every process got (point the CLI at the same stores).
    pub env: Vec<(&'static str, String)>,
    /// `serve` in the embedded mode.
    pub writers: Vec<Tessera>,
    pub readers: Vec<Tessera>,
    pub relays: Vec<Tessera>,
    pub projectors: Vec<Tessera>,
    /// Talks to the first write API and the first read API.
    pub client: Arc<Client>,
    /// An admin token minted with the stack's secret.
    pub admin: String,
    /// The fresh PostgreSQL database of a distributed stack.
    pub pg: Option<PgDatabase>,
    keep: Vec<Box<dyn Any + Send>>,
}

/// Settings the end-to-end scenarios want on both modes: short waits for
/// reads and queue admission, holds that expire within a test.
fn scenario_env(distributed: bool) -> Vec<(&'static str, String)> {
    // A read's wait for its version ends as soon as the version is there;
    // it is long enough for a machine three times slower than these, where
    // reads of a fresh stack waited out 5 s (distributed) and 500 ms
    // (serve) for their versions. Only the one read of a version never
    // reached waits it out.
    let (wait, ttl) = if distributed {
        ("10000", "4")
    } else {
        ("5000", "3")
    };
    vec![
        ("TESSERA_MIN_VERSION_WAIT_MS", wait.to_owned()),
        ("TESSERA_QUEUE_ADMIT_INTERVAL_MS", "100".to_owned()),
        ("TESSERA_HOLD_TTL_SECONDS", ttl.to_owned()),
        // long enough for a payment after reads that wait for projections
        ("TESSERA_ORDER_TTL_SECONDS", "8".to_owned()),
        ("TESSERA_SWEEP_INTERVAL_MS", "200".to_owned()),
    ]
}

fn merged(
    mut env: Vec<(&'static str, String)>,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, (*v).to_owned()));
    }
    env
}

impl Stack {
    /// `tessera serve` on a fresh data directory; `extra` overrides.
    pub async fn embedded(extra: &[(&'static str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("TESSERA_DATA_DIR", dir.path().display().to_string())];
        env.extend(scenario_env(false));
        let env = merged(env, extra);
        let server = Tessera::spawn(&["serve"], &env).await;
        Self {
            client: Arc::new(Client::new(&server.addr, &server.addr)),
            admin: admin_token(&env),
            env,
            writers: vec![server],
            readers: Vec::new(),
            relays: Vec::new(),
            projectors: Vec::new(),
            pg: None,
            keep: vec![Box::new(dir)],
        }
    }

    /// The production roles on a fresh database, topic and document
    /// database; `extra` overrides.
    pub async fn distributed(topology: Topology, extra: &[(&'static str, &str)]) -> Self {
        let pg = PgDatabase::create().await;
        let kafka = KafkaTopic::create();
        let mongo = MongoDatabase::create();
        let mut env = stack_env(&pg, &kafka, &mongo);
        env.extend(scenario_env(true));
        let mut stack = Self::start(merged(env, extra), topology, Vec::new()).await;
        stack.pg = Some(pg);
        stack
            .keep
            .extend([Box::new(kafka) as Box<dyn Any + Send>, Box::new(mongo)]);
        stack
    }

    /// The roles of `topology` with `env`, on stores the caller made;
    /// `keep` lives as long as the stack.
    pub async fn start(
        env: Vec<(&'static str, String)>,
        topology: Topology,
        keep: Vec<Box<dyn Any + Send>>,
    ) -> Self {
        let api_env = |fixed: bool| {
            let mut e = env.clone();
            if fixed {
                e.push(("TESSERA_HTTP_ADDR", format!("127.0.0.1:{}", free_port())));
            }
            e
        };
        let mut writers = Vec::new();
        for _ in 0..topology.writers {
            writers.push(Tessera::spawn(&["write-api"], &api_env(topology.fixed_ports)).await);
        }
        let mut readers = Vec::new();
        for _ in 0..topology.readers {
            readers.push(Tessera::spawn(&["read-api"], &api_env(topology.fixed_ports)).await);
        }
        let mut relays = Vec::new();
        for _ in 0..topology.relays {
            relays.push(Tessera::spawn(&["relay"], &env).await);
        }
        let mut projectors = Vec::new();
        for _ in 0..topology.projectors {
            projectors.push(Tessera::spawn(&["projector"], &env).await);
        }
        let write = writers.first().map_or("", |p| p.addr.as_str());
        let read = readers.first().map_or(write, |p| p.addr.as_str());
        Self {
            client: Arc::new(Client::new(write, read)),
            admin: admin_token(&env),
            env,
            writers,
            readers,
            relays,
            projectors,
            pg: None,
            keep,
        }
    }

    /// The first write API (`serve` in the embedded mode).
    pub fn write(&self) -> &Tessera {
        &self.writers[0]
    }

    /// The first read API (`serve` in the embedded mode).
    pub fn read(&self) -> &Tessera {
        self.readers.first().unwrap_or(&self.writers[0])
    }

    /// One of the settings the processes got.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn processes(&self) -> Vec<(String, &Tessera)> {
        let mut all = Vec::new();
        for (role, ps) in [
            ("write-api", &self.writers),
            ("read-api", &self.readers),
            ("relay", &self.relays),
            ("projector", &self.projectors),
        ] {
            for (i, p) in ps.iter().enumerate() {
                all.push((format!("{role}-{}", i + 1), p));
            }
        }
        all
    }

    /// The last `lines` log lines of every process, for a failure message.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        for (name, p) in self.processes() {
            let logs = p.logs();
            let tail: Vec<&str> = logs.lines().rev().take(lines).collect();
            let _ = writeln!(out, "--- {name} (last lines)");
            for l in tail.into_iter().rev() {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }

    /// Writes every process's whole log to `CARGO_TARGET_TMPDIR/<folder>`;
    /// answers its path.
    pub fn save_logs(&self, folder: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
        let _ = std::fs::create_dir_all(&dir);
        for (name, p) in self.processes() {
            let _ = std::fs::write(dir.join(format!("{name}.log")), p.logs());
        }
        dir.display().to_string()
    }

    /// The event log, read only, as the CLI opens it.
    pub async fn event_log(&self) -> Arc<dyn EventLog> {
        if let Some(dir) = self.setting("TESSERA_DATA_DIR") {
            let pool = sqlite::open(&std::path::Path::new(dir).join("events.db"), 2)
                .await
                .unwrap();
            Arc::new(SqliteEventLog::new(pool))
        } else {
            let url = self.setting("TESSERA_DATABASE_URL").expect("a database");
            Arc::new(PgEventLog::new(postgres::connect(url, 2).await.unwrap()))
        }
    }

    /// The document store, as the CLI opens it.
    pub async fn documents(&self) -> Arc<dyn DocumentStore> {
        if let Some(dir) = self.setting("TESSERA_DATA_DIR") {
            let path = std::path::Path::new(dir).join("documents.db");
            Arc::new(EmbeddedStore::open(&path).await.unwrap())
        } else {
            let uri = self
                .setting("TESSERA_MONGODB_URI")
                .expect("a document store");
            let name = self
                .setting("TESSERA_MONGODB_DATABASE")
                .unwrap_or("tessera");
            Arc::new(MongoStore::connect(uri, name).await.unwrap())
        }
    }

    /// Waits until every projection has caught up with the head of the log
    /// and holds no dead letter, as `GET /v1/admin/projections` tells.
    pub async fn wait_caught_up(&self) {
        let caught_up = self
            .client
            .try_get_until(
                "/v1/admin/projections",
                &self.admin,
                Duration::from_secs(120),
                |b| {
                    b.as_array().is_some_and(|ps| {
                        ps.len() == projection::all().len()
                            && ps.iter().all(|p| p["lag"] == 0 && p["dead_letters"] == 0)
                    })
                },
            )
            .await;
        if caught_up.is_none() {
            let now = self.client.get("/v1/admin/projections", &self.admin).await;
            panic!(
                "the projections did not catch up: {}\n{}",
                now.body,
                self.logs(60)
            );
        }
    }
}
