//! Wiring: builds each role from the settings and runs it until SIGTERM or
//! Ctrl-C. This is the only place that knows every adapter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use axum::Router;
use secrecy::ExposeSecret;
use tessera_documents::changes::{Announce, Broadcast};
use tessera_documents::live::LiveCollections;
use tessera_documents::store::cached::CachedStore;
use tessera_documents::store::embedded::EmbeddedStore;
use tessera_documents::store::DocumentStore;
use tessera_events::EventLog;
use tessera_http::health::{AllOf, Check, Readiness};
use tessera_http::layers::with_common_layers;
use tessera_http::limits::with_abuse_limits;
use tessera_http::ops::ApiDocs;
use tessera_projector::feed::kafka::{KafkaFeed, KafkaFeedConfig};
use tessera_projector::feed::shared::SharedTail;
use tessera_projector::feed::tail::TailFeed;
use tessera_projector::projection::{self, Projection};
use tessera_projector::runner::{new_instance_id, Health, Projector, RetryPolicy};
use tessera_queue::QueueGate;
use tessera_read_side::presence::{lease, InMemoryPresence, Presence};
use tessera_read_side::stream_limit::StreamLimit;
use tessera_read_side::{CursorKey, LiveFeed, ReadSide, ReadState};
use tessera_webhooks::http::Half;
use tessera_webhooks::store::postgres::PgWebhooks;
use tessera_webhooks::store::sqlite::SqliteWebhooks;
use tessera_webhooks::WebhookStore;
use tessera_write_side::app::{Parts, WriteSide, WriteState};
use tessera_write_side::background;
use tessera_write_side::bus::BusConfig;
use tessera_write_side::health::SqlReady;
use tessera_write_side::inbox::UnreadCount;
use tessera_write_side::leader::Leadership;
use tessera_write_side::relay::{Relay, RelayConfig};
use tessera_write_side::store::credentials::{PgCredentials, SqliteCredentials};
use tessera_write_side::store::postgres::PgEventLog;
use tessera_write_side::store::sqlite::SqliteEventLog;
use tessera_write_side::store::state::{PgState, SqliteState};
use tessera_write_side::store::{postgres, sqlite, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::changes::{follow_changes, RedisAnnounce};
use crate::cli::{Cli, Command};
use crate::logging;
use crate::presence::RedisPresence;
use crate::settings::Settings;
use crate::unread::DocsUnread;
use crate::webhooks::{admin_router, spawn_deliverer};
use crate::wiring::{self, authenticator, files, jwt_secret, mongo, mongo_with_timeout};

pub async fn run(cli: Cli) -> Result<()> {
    let s = cli.settings;
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Completions { shell } = command {
        let mut cli = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cli, "tessera", &mut std::io::stdout());
        return Ok(());
    }
    let quiet = matches!(
        command,
        Command::Admin { .. } | Command::Migrate | Command::Doctor { .. }
    );
    let role = match &command {
        Command::Serve => "serve",
        Command::WriteApi => "write-api",
        Command::ReadApi => "read-api",
        Command::Relay => "relay",
        Command::Projector { .. } => "projector",
        Command::Migrate => "migrate",
        Command::Admin { .. } => "admin",
        Command::Doctor { .. } => "doctor",
        Command::Completions { .. } => "completions",
    };
    let logging = logging::Logging {
        filter: if quiet { "warn" } else { &s.log },
        format: &s.log_format,
        to_stderr: quiet,
        role,
    };
    // held to the end: dropping it sends the spans still queued
    let _exporter = logging::init(&logging, &s);
    if !quiet {
        install_metrics();
    }
    match command {
        Command::Serve => serve(&s).await,
        Command::WriteApi => write_api(&s).await,
        Command::ReadApi => read_api(&s).await,
        Command::Relay => relay(&s).await,
        Command::Projector { only } => projector(&s, &only).await,
        Command::Migrate => migrate(&s).await,
        Command::Admin { command } => crate::admin::run(&s, command).await,
        Command::Doctor { json } => crate::doctor::doctor(&s, json).await,
        Command::Completions { .. } => Ok(()),
    }
}

static METRICS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs the Prometheus recorder once per process.
fn install_metrics() {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .unwrap_or_else(|_| PrometheusBuilder::new());
    match builder.install_recorder() {
        Ok(handle) => {
            let _ = METRICS.set(handle);
        }
        Err(error) => tracing::warn!(%error, "metrics recorder not installed"),
    }
}

/// What `/metrics` answers.
fn metrics_render() -> tessera_http::ops::MetricsRender {
    Arc::new(|| METRICS.get().map(|h| h.render()).unwrap_or_default())
}

/// Cancelled on SIGTERM or Ctrl-C.
/// Changes a slow stream may fall behind before it catches up on its
/// notifications from the read model.
const CHANGE_FEED_CAPACITY: usize = 4096;

/// Newest events serve's projections share in memory: several batches of
/// every projection, so one slower than the rest still reads from memory.
const SHARED_TAIL_RECORDS: usize = 8192;

/// The change feed of a read API, where it announces presence, with its
/// streams ended at shutdown.
fn live_feed(
    s: &Settings,
    changes: Broadcast,
    presence: Arc<dyn Announce>,
    shutdown: &CancellationToken,
) -> LiveFeed {
    let (close, closing) = tokio::sync::watch::channel(false);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = close.send(true);
    });
    LiveFeed {
        changes,
        presence,
        closing,
        limit: StreamLimit::new(s.streams_per_user),
    }
}

fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

async fn serve_http(addr: SocketAddr, app: Router, shutdown: CancellationToken) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "listening");
    // the peer address keys the per-IP abuse limits
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
    .context("http server failed")
}

/// The ops routes of a role that serves no API of its own (relay,
/// projector): health, readiness, metrics and the event contract.
fn ops_only(s: &Settings, readiness: Arc<dyn Readiness>) -> Router {
    with_common_layers(tessera_http::ops::router(
        readiness,
        ApiDocs {
            openapi: None,
            asyncapi: Some(asyncapi(s)),
            console: false,
        },
        Some(metrics_render()),
    ))
}

fn openapi_json(docs: Vec<utoipa::openapi::OpenApi>) -> serde_json::Value {
    let mut merged: Option<utoipa::openapi::OpenApi> = None;
    for d in docs {
        merged = Some(match merged {
            None => d,
            Some(mut m) => {
                m.merge(d);
                m
            }
        });
    }
    merged
        .map(|m| serde_json::to_value(m).unwrap_or_default())
        .unwrap_or_default()
}

/// The event contract of the configured topic (`/asyncapi.json`).
fn asyncapi(s: &Settings) -> serde_json::Value {
    tessera_events::contract::asyncapi(&s.kafka_topic)
}

fn bus_config(s: &Settings) -> BusConfig {
    BusConfig {
        max_attempts: s.command_max_attempts.max(1),
        max_batch: s.command_batch.max(1),
        ..BusConfig::default()
    }
}

fn retry_policy(s: &Settings) -> RetryPolicy {
    RetryPolicy {
        attempts: s.projector_attempts.max(1),
        ..RetryPolicy::default()
    }
}

fn selected(only: &[String]) -> Result<Vec<Arc<dyn Projection>>> {
    let all = projection::all();
    if only.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for name in only {
        match all.iter().find(|p| p.name() == name) {
            Some(p) => chosen.push(Arc::clone(p)),
            None => bail!(
                "unknown projection {name:?}; known: {}",
                all.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(chosen)
}

/// A document store as a readiness check.
struct DocsReady(Arc<dyn DocumentStore>);

#[async_trait]
impl Readiness for DocsReady {
    async fn check(&self) -> Vec<Check> {
        vec![Check {
            name: "document_store",
            result: self.0.ping().await.map_err(|e| e.to_string()),
        }]
    }

    fn label(&self) -> &'static str {
        "document_store"
    }
}

/// A Kafka cluster that answers a metadata request.
struct KafkaReady(rdkafka::producer::FutureProducer);

#[async_trait]
impl Readiness for KafkaReady {
    async fn check(&self) -> Vec<Check> {
        use rdkafka::producer::Producer;
        let producer = self.0.clone();
        let result = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_millis(700))
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        vec![Check {
            name: "kafka",
            result,
        }]
    }

    fn label(&self) -> &'static str {
        "kafka"
    }
}

fn kafka_ready(brokers: &str) -> Result<Arc<dyn Readiness>> {
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("bad Kafka settings")?;
    Ok(Arc::new(KafkaReady(producer)))
}

/// A pool on `TESSERA_DATABASE_URL`, without migrating.
async fn postgres_connect(s: &Settings) -> Result<sqlx::PgPool> {
    let url = s
        .database_url
        .as_ref()
        .context("TESSERA_DATABASE_URL is required for this role")?;
    postgres::connect(url.expose_secret(), s.database_max_connections)
        .await
        .context("cannot connect to PostgreSQL")
}

async fn postgres_pool(s: &Settings) -> Result<sqlx::PgPool> {
    let pool = postgres_connect(s).await?;
    postgres::migrate(&pool)
        .await
        .context("migrating PostgreSQL failed")?;
    Ok(pool)
}

fn brokers(s: &Settings) -> Result<&str> {
    s.kafka_brokers
        .as_deref()
        .context("TESSERA_KAFKA_BROKERS is required for this role")
}

/// Everything in one process on embedded storage.
async fn serve(s: &Settings) -> Result<()> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("cannot create {}", s.data_dir.display()))?;
    let events = sqlite::open(&wiring::data_file(s, files::EVENTS), 8)
        .await
        .context("cannot open the embedded event store")?;
    sqlite::migrate(&events)
        .await
        .context("migrating the embedded event store failed")?;
    let credentials_pool = sqlite::open(&wiring::data_file(s, files::CREDENTIALS), 4).await?;
    let credentials = Arc::new(SqliteCredentials::new(credentials_pool.clone()).await?);
    let state_pool = sqlite::open(&wiring::data_file(s, files::STATE), 4).await?;
    let state = Arc::new(SqliteState::new(state_pool.clone()).await?);
    let docs: Arc<dyn DocumentStore> = Arc::new(
        EmbeddedStore::open(&wiring::data_file(s, files::DOCUMENTS))
            .await
            .context("cannot open the embedded document store")?,
    );
    // the projector writes through the same store the reads come from, so
    // remembered documents are forgotten as they are written
    let docs: Arc<dyn DocumentStore> = match s.read_cache() {
        Some(ttl) => Arc::new(CachedStore::new(docs, s.read_cache_entries, ttl)),
        None => docs,
    };
    let secret = jwt_secret(s, true)?;
    let auth = authenticator(s, &secret)?;
    let queue = Arc::new(QueueGate::new(
        state.clone(),
        secret.expose_secret().as_bytes(),
        s.queue(),
    ));
    let store = Store::new(sqlite::repo(events.clone())).with_group_commit(s.group_commit(true));
    let health = Health::new(Duration::from_secs(s.projector_stall_seconds.max(1)));
    let readiness: Arc<dyn Readiness> = Arc::new(AllOf(vec![
        Arc::new(SqlReady::Sqlite("event_store", events.clone())),
        Arc::new(SqlReady::Sqlite("credentials", credentials_pool)),
        Arc::new(SqlReady::Sqlite("state", state_pool)),
        Arc::new(DocsReady(Arc::clone(&docs))),
        Arc::new(ProjectionsReady(Arc::clone(&health))),
    ]));
    let write = Arc::new(WriteSide::new(Parts {
        store: store.clone(),
        credentials,
        auth: Arc::clone(&auth),
        readiness: Arc::clone(&readiness),
        directory: state,
        queue: Arc::clone(&queue),
        bus: bus_config(s),
        hold_ttl: s.hold_ttl(),
        order_ttl: s.order_ttl(),
        unread: Some(Arc::new(DocsUnread::new(Arc::clone(&docs)))),
    }));
    let hooks: Arc<dyn WebhookStore> = Arc::new(SqliteWebhooks::new(events.clone()));
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::new(events));
    let shutdown = shutdown_signal();
    // the projectors announce to the streams in this process
    let changes = Broadcast::new(CHANGE_FEED_CAPACITY);
    let read = ReadSide {
        live: LiveCollections::new(Arc::clone(&docs)),
        docs: Arc::clone(&docs),
        log: Arc::clone(&log),
        auth: Arc::clone(&auth),
        queue,
        min_version_wait: s.min_version_wait(),
        cursors: CursorKey::derive(secret.expose_secret().as_bytes()),
        live_feed: Some(live_feed(
            s,
            changes.clone(),
            Arc::new(changes.clone()),
            &shutdown,
        )),
        presence: Arc::new(InMemoryPresence::default()),
        presence_grace: s.presence_grace(),
    };
    let mut tasks = Vec::new();
    // the projections tail the log together: each event is read and
    // decoded once, not once per projection
    let tail: Arc<dyn EventLog> = Arc::new(SharedTail::new(Arc::clone(&log), SHARED_TAIL_RECORDS));
    for p in projection::all() {
        let feed = TailFeed::resume(
            Arc::clone(&tail),
            &*docs,
            p.name(),
            Some(store.commit_signal()),
            Duration::from_millis(500),
        )
        .await?;
        let projector = Projector::new(p, Arc::clone(&docs), Box::new(feed), retry_policy(s))
            .with_batch_size(s.batch_size)
            .with_health(Arc::clone(&health))
            .with_announce(Arc::new(changes.clone()));
        projector.prepare().await?;
        tasks.push(tokio::spawn(projector.run(shutdown.clone())));
    }
    tasks.push(background::spawn(
        Arc::clone(&write),
        Leadership::Single,
        s.pace(),
        shutdown.clone(),
    ));
    let deliverer = spawn_deliverer(
        s,
        Arc::clone(&hooks),
        Arc::clone(&log),
        Leadership::Single,
        shutdown.clone(),
    )?;
    let (console, console_doc) = crate::console::start(
        Arc::clone(&docs),
        Arc::clone(&log),
        Arc::clone(&auth),
        &shutdown,
    );
    let mut openapi = openapi_json(vec![
        tessera_write_side::http::openapi(),
        tessera_webhooks::http::openapi(Half::Commands),
        tessera_read_side::openapi(),
        tessera_webhooks::http::openapi(Half::Reads),
        console_doc,
    ]);
    // the merged document would keep the write API's title; this process
    // answers both
    openapi["info"]["title"] = "Tessera API (commands and queries)".into();
    openapi["info"]["description"] = "Commands and queries in one process (`tessera serve`). Every 2xx answer of a command carries the aggregate's new `version`; pass it as `min_version` to a read to see your own write.".into();
    let app = with_common_layers(
        Router::new()
            .merge(with_abuse_limits(
                tessera_write_side::http::router(WriteState(write)).merge(admin_router(
                    s,
                    Arc::clone(&hooks),
                    Arc::clone(&log),
                    Arc::clone(&auth),
                    Half::Commands,
                )),
                &s.abuse_limits(),
            ))
            .merge(tessera_read_side::router(ReadState(Arc::new(read))))
            .merge(admin_router(s, hooks, Arc::clone(&log), auth, Half::Reads))
            .merge(console)
            .merge(tessera_http::ops::router(
                readiness,
                ApiDocs::new(openapi, asyncapi(s)).with_console(),
                Some(metrics_render()),
            )),
    );
    tracing::info!(data_dir = %s.data_dir.display(), "serving on embedded storage");
    let served = serve_http(s.http_addr, app, shutdown.clone()).await;
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = deliverer.await;
    served
}

async fn write_api(s: &Settings) -> Result<()> {
    let pool = postgres_pool(s).await?;
    // marking notifications read answers the count the read models hold
    let unread: Option<Arc<dyn UnreadCount>> = match &s.mongodb_uri {
        Some(_) => Some(Arc::new(DocsUnread::new(mongo(s).await?))),
        None => None,
    };
    // credentials get their own pool (see store::credentials)
    let url = s
        .database_url
        .as_ref()
        .context("TESSERA_DATABASE_URL is required")?;
    let credentials_pool =
        postgres::connect(url.expose_secret(), (s.database_max_connections / 2).max(2)).await?;
    let readiness: Arc<dyn Readiness> = Arc::new(SqlReady::Postgres("event_store", pool.clone()));
    let secret = jwt_secret(s, false)?;
    let auth = authenticator(s, &secret)?;
    let state = Arc::new(PgState::new(pool.clone()));
    let queue = Arc::new(QueueGate::new(
        state.clone(),
        secret.expose_secret().as_bytes(),
        s.queue(),
    ));
    let write = Arc::new(WriteSide::new(Parts {
        store: Store::new(postgres::repo(pool.clone()))
            .with_timeout(s.database_timeout())
            .with_group_commit(s.group_commit(false)),
        credentials: Arc::new(PgCredentials::new(credentials_pool)),
        auth: Arc::clone(&auth),
        readiness: Arc::clone(&readiness),
        directory: state,
        queue,
        bus: bus_config(s),
        hold_ttl: s.hold_ttl(),
        order_ttl: s.order_ttl(),
        unread,
    }));
    let shutdown = shutdown_signal();
    let background = background::spawn(
        Arc::clone(&write),
        Leadership::Postgres(pool.clone()),
        s.pace(),
        shutdown.clone(),
    );
    let webhooks = admin_router(
        s,
        Arc::new(PgWebhooks::new(pool.clone())),
        Arc::new(PgEventLog::new(pool)),
        auth,
        Half::Commands,
    );
    let openapi = openapi_json(vec![
        tessera_write_side::http::openapi(),
        tessera_webhooks::http::openapi(Half::Commands),
    ]);
    let app = with_common_layers(
        Router::new()
            .merge(with_abuse_limits(
                tessera_write_side::http::router(WriteState(write)).merge(webhooks),
                &s.abuse_limits(),
            ))
            .merge(tessera_http::ops::router(
                readiness,
                ApiDocs::new(openapi, asyncapi(s)),
                Some(metrics_render()),
            )),
    );
    let served = serve_http(s.http_addr, app, shutdown.clone()).await;
    shutdown.cancel();
    let _ = background.await;
    served
}

/// The change feed of a read API: the projectors' announcements through
/// Redis, where it is configured (without, `/v1/stream` answers 503).
async fn read_api_feed(s: &Settings, shutdown: &CancellationToken) -> Result<Option<LiveFeed>> {
    let Some(url) = &s.redis_url else {
        tracing::warn!("no TESSERA_REDIS_URL: live streams are off");
        return Ok(None);
    };
    let changes = Broadcast::new(CHANGE_FEED_CAPACITY);
    // followed for the life of the process; it stops with the shutdown
    let _follower = follow_changes(
        url.expose_secret(),
        &s.redis_prefix,
        changes.clone(),
        shutdown.clone(),
    )
    .await?;
    // presence goes out through Redis to every read API, this one included
    let presence: Arc<dyn Announce> =
        match RedisAnnounce::start(url.expose_secret(), &s.redis_prefix).await {
            Ok(redis) => Arc::new(redis),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "presence changes reach only this read API's streams"
                );
                Arc::new(changes.clone())
            }
        };
    Ok(Some(live_feed(s, changes, presence, shutdown)))
}

/// Presence of a read API: shared through Redis where it is configured.
async fn presence(s: &Settings) -> Result<Arc<dyn Presence>> {
    let Some(url) = &s.redis_url else {
        tracing::warn!("no TESSERA_REDIS_URL: presence is this read API's own");
        return Ok(Arc::new(InMemoryPresence::default()));
    };
    let (ttl, _) = lease(s.presence_grace());
    Ok(Arc::new(
        RedisPresence::connect(url.expose_secret(), &s.redis_prefix, ttl).await?,
    ))
}

async fn read_api(s: &Settings) -> Result<()> {
    let shutdown = shutdown_signal();
    let docs = mongo(s).await?;
    // the waiting queue's cursor lives with the write side's state; the
    // write API migrates it
    let pool = postgres_connect(s).await?;
    let readiness: Arc<dyn Readiness> = Arc::new(AllOf(vec![
        Arc::new(DocsReady(Arc::clone(&docs))),
        Arc::new(SqlReady::Postgres("queue_state", pool.clone())),
    ]));
    let secret = jwt_secret(s, false)?;
    let auth = authenticator(s, &secret)?;
    let webhooks = admin_router(
        s,
        Arc::new(PgWebhooks::new(pool.clone())),
        Arc::new(PgEventLog::new(pool.clone())),
        Arc::clone(&auth),
        Half::Reads,
    );
    let log: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool.clone()));
    let (console, console_doc) = crate::console::start(
        Arc::clone(&docs),
        Arc::clone(&log),
        Arc::clone(&auth),
        &shutdown,
    );
    let read = ReadSide {
        live: LiveCollections::new(Arc::clone(&docs)),
        docs,
        log,
        auth,
        queue: Arc::new(QueueGate::new(
            Arc::new(PgState::new(pool)),
            secret.expose_secret().as_bytes(),
            s.queue(),
        )),
        min_version_wait: s.min_version_wait(),
        cursors: CursorKey::derive(secret.expose_secret().as_bytes()),
        live_feed: read_api_feed(s, &shutdown).await?,
        presence: presence(s).await?,
        presence_grace: s.presence_grace(),
    };
    let openapi = openapi_json(vec![
        tessera_read_side::openapi(),
        tessera_webhooks::http::openapi(Half::Reads),
        console_doc,
    ]);
    let app = with_common_layers(
        Router::new()
            .merge(tessera_read_side::router(ReadState(Arc::new(read))))
            .merge(webhooks)
            .merge(console)
            .merge(tessera_http::ops::router(
                readiness,
                ApiDocs::new(openapi, asyncapi(s)).with_console(),
                Some(metrics_render()),
            )),
    );
    serve_http(s.http_addr, app, shutdown).await
}

async fn relay(s: &Settings) -> Result<()> {
    let pool = postgres_pool(s).await?;
    let brokers = brokers(s)?;
    let config = RelayConfig {
        topic: s.kafka_topic.clone(),
        partitions: s.kafka_partitions,
        batch_size: s.batch_size,
        publish_timeout: Duration::from_secs(s.relay_publish_timeout_seconds.max(1)),
        stall_after: Duration::from_secs(s.relay_stall_seconds.max(1)),
        kafka_debug: s.kafka_debug.clone(),
        ..RelayConfig::default()
    };
    let relay = Relay::new(pool.clone(), brokers, config).await?;
    let readiness: Arc<dyn Readiness> = Arc::new(AllOf(vec![
        Arc::new(SqlReady::Postgres("event_store", pool.clone())),
        kafka_ready(brokers)?,
        relay.progress(),
    ]));
    let shutdown = shutdown_signal();
    // webhooks are delivered straight from the log: they go on while Kafka is down
    let deliverer = spawn_deliverer(
        s,
        Arc::new(PgWebhooks::new(pool.clone())),
        Arc::new(PgEventLog::new(pool.clone())),
        Leadership::Postgres(pool),
        shutdown.clone(),
    )?;
    let ops = ops_only(s, readiness);
    let http = tokio::spawn(serve_http(s.http_addr, ops, shutdown.clone()));
    let result = relay.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = deliverer.await;
    let _ = http.await;
    result.map_err(Into::into)
}

/// The projections of a process as one readiness source: not ready while
/// one of them is stalled.
struct ProjectionsReady(Arc<Health>);

#[async_trait]
impl Readiness for ProjectionsReady {
    async fn check(&self) -> Vec<Check> {
        let stalled = self.0.stalled();
        vec![Check {
            name: "projections",
            result: if stalled.is_empty() {
                Ok(())
            } else {
                Err(stalled
                    .iter()
                    .map(|(name, why)| format!("{name}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "))
            },
        }]
    }

    fn label(&self) -> &'static str {
        "projections"
    }
}

async fn projector(s: &Settings, only: &[String]) -> Result<()> {
    let docs = mongo_with_timeout(
        s,
        Duration::from_millis(s.projector_store_timeout_ms.max(1)),
    )
    .await?;
    let brokers = brokers(s)?;
    let shutdown = shutdown_signal();
    let health = Health::new(Duration::from_secs(s.projector_stall_seconds.max(1)));
    let announce: Option<Arc<dyn Announce>> = match &s.redis_url {
        Some(url) => Some(Arc::new(
            RedisAnnounce::start(url.expose_secret(), &s.redis_prefix).await?,
        )),
        None => {
            tracing::warn!(
                "no TESSERA_REDIS_URL: documents written are not announced to live streams"
            );
            None
        }
    };
    let mut tasks = Vec::new();
    for p in selected(only)? {
        let instance = new_instance_id();
        let feed = KafkaFeed::new(
            KafkaFeedConfig {
                brokers: brokers.to_owned(),
                topic: s.kafka_topic.clone(),
                projection: p.name(),
                instance: instance.clone(),
                idle_wait: Duration::from_millis(500),
                debug: s.kafka_debug.clone(),
            },
            Arc::clone(&docs),
        )?;
        let mut projector = Projector::new(p, Arc::clone(&docs), Box::new(feed), retry_policy(s))
            .with_batch_size(s.batch_size)
            .with_instance(instance)
            .with_health(Arc::clone(&health));
        if let Some(announce) = &announce {
            projector = projector.with_announce(Arc::clone(announce));
        }
        projector.prepare().await?;
        tasks.push(tokio::spawn(projector.run(shutdown.clone())));
    }
    let readiness: Arc<dyn Readiness> = Arc::new(AllOf(vec![
        Arc::new(DocsReady(docs)),
        kafka_ready(brokers)?,
        Arc::new(ProjectionsReady(health)),
    ]));
    let ops = ops_only(s, readiness);
    let served = serve_http(s.http_addr, ops, shutdown.clone()).await;
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    served
}

async fn migrate(s: &Settings) -> Result<()> {
    if s.database_url.is_some() {
        postgres_pool(s).await?;
        println!("PostgreSQL migrations applied");
    } else {
        std::fs::create_dir_all(&s.data_dir)?;
        let events = sqlite::open(&wiring::data_file(s, files::EVENTS), 1).await?;
        sqlite::migrate(&events).await?;
        let credentials = sqlite::open(&wiring::data_file(s, files::CREDENTIALS), 1).await?;
        SqliteCredentials::new(credentials).await?;
        EmbeddedStore::open(&wiring::data_file(s, files::DOCUMENTS)).await?;
        println!("embedded migrations applied in {}", s.data_dir.display());
    }
    Ok(())
}
