//! The relay (transactional outbox): publishes committed events to Kafka in
//! commit order.
//!
//! It reads the log through [`PgEventLog`], which returns only events no
//! earlier-committing transaction can still precede, publishes them with the
//! idempotent producer keyed by aggregate id (so each aggregate's events stay
//! in order on one partition), and moves its checkpoint, the pair
//! `(tx_id, global_position)`, only after the broker acknowledged every
//! event of the batch. If Kafka is down, commands keep succeeding: the relay
//! retries and catches up later; nothing is lost, and what may be published
//! twice is skipped downstream by sequence.
//!
//! The relay heals itself (DESIGN.md §3):
//! - a batch the broker does not acknowledge within `publish_timeout`, or any
//!   delivery error (a fenced or fatal producer, an unknown producer id after
//!   a broker restart), throws the producer away; the next step builds a new
//!   one and publishes again from the checkpoint. A new producer can only
//!   repeat events, never leave a hole: the broker took a prefix of what the
//!   old one sent, and the checkpoint is at or before its end;
//! - each message carries the topic's *epoch* (`tessera-epoch` header). When
//!   the topic is gone or ends before offsets the relay was acknowledged
//!   (a broker that lost its data), the relay starts a new epoch and
//!   publishes the whole log again; projectors see the new epoch and start
//!   over from the beginning of the topic, skipping what they already have;
//! - [`RelayProgress`] tells `/readyz` and the lag metric the truth: lag is
//!   the log head minus the checkpoint, and a relay that has had events to
//!   publish but published none for `stall_after` is not ready.
//!
//! Only one relay publishes at a time (a PostgreSQL advisory lock); another
//! one waits as a standby and takes over if the first one dies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use sqlx::postgres::{PgListener, PgPool};
use tessera_events::{EventLog, LogPosition};
use tessera_runtime::{drive, sleep_or_shutdown, Backoff, Jitter, Step, Stepped};
use tokio_util::sync::CancellationToken;

use crate::leader::Leadership;
use crate::store::postgres::{PgEventLog, NOTIFY_CHANNEL};
use tessera_http::health::{Check, Readiness};

pub use tessera_kafka::{EPOCH_HEADER, MESSAGES_PER_BATCH};

/// The relay's producer.
pub type Producer = FutureProducer<tessera_kafka::Context>;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Checkpoint and lock name: relays with the same name share one.
    pub name: String,
    pub topic: String,
    /// Partitions of the topic when the relay creates it.
    pub partitions: i32,
    pub batch_size: usize,
    /// How often to look for events when no notification arrives.
    pub poll_interval: Duration,
    /// How long a batch may wait for the broker's acknowledgements before
    /// the producer is thrown away and the batch sent again.
    pub publish_timeout: Duration,
    /// Events waiting and none published for this long: not ready.
    pub stall_after: Duration,
    /// librdkafka debug contexts (`debug` property), for diagnosis.
    pub kafka_debug: Option<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            topic: "tessera.events".into(),
            partitions: 8,
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            publish_timeout: Duration::from_secs(10),
            stall_after: Duration::from_secs(15),
            kafka_debug: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("event store: {0}")]
    Store(#[source] sqlx::Error),
    #[error("event log: {0}")]
    Log(#[source] tessera_events::LogError),
    #[error("kafka: {0}")]
    Kafka(#[source] KafkaError),
    #[error("the broker acknowledged {acknowledged} of {sent} events within {timeout:?}")]
    Unacknowledged {
        acknowledged: usize,
        sent: usize,
        timeout: Duration,
    },
    #[error("the broker did not answer {what} within {timeout:?}")]
    NoAnswer {
        what: &'static str,
        timeout: Duration,
    },
    #[error("an event cannot be serialized: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("relay lock connection lost")]
    LockLost,
    #[error("taking the relay lock: {0}")]
    Lock(#[source] sqlx::Error),
    #[error("a blocking task of the relay failed: {0}")]
    Blocking(#[source] tokio::task::JoinError),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayStep {
    Published(usize),
    Idle,
}

/// Whether [`ensure_topic`] found the topic or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicState {
    Created,
    Existed,
}

/// Creates the topic if it does not exist yet.
pub async fn ensure_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<TopicState, RelayError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(RelayError::Kafka)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(RelayError::Kafka)?;
    let mut state = TopicState::Created;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => state = TopicState::Existed,
            Err((_, code)) => return Err(RelayError::Kafka(KafkaError::AdminOp(code))),
        }
    }
    Ok(state)
}

/// The settings of the relay's producer: idempotent (it never reorders,
/// duplicates or leaves holes within a partition on retry), at most
/// [`MESSAGES_PER_BATCH`] messages per batch (consumers read from that far
/// back when they start a partition, see `tessera_kafka`), and librdkafka's
/// own message timeout left long: the relay's `publish_timeout` decides when
/// to give up, and a timeout inside librdkafka would bump the idempotent
/// producer's epoch, which tansu answers with `ProducerFenced` for good.
pub fn producer_config(brokers: &str, debug: Option<&str>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("batch.num.messages", MESSAGES_PER_BATCH.to_string())
        .set("linger.ms", "2")
        .set("message.timeout.ms", "300000")
        .set("request.timeout.ms", "30000");
    if let Some(debug) = debug {
        c.set("debug", debug);
    }
    c
}

/// The relay's producer.
pub fn idempotent_producer(brokers: &str, config: &RelayConfig) -> Result<Producer, RelayError> {
    producer_config(brokers, config.kafka_debug.as_deref())
        .create_with_context(tessera_kafka::Context)
        .map_err(RelayError::Kafka)
}

/// Where the relay stands, for `/readyz` and the metrics. Shared between the
/// relay task and the ops routes.
#[derive(Debug, Default)]
pub struct RelayProgress {
    state: Mutex<ProgressState>,
}

#[derive(Debug, Default)]
struct ProgressState {
    publishing: bool,
    lag_events: i64,
    /// Since when events have waited without a batch getting through.
    behind_since: Option<Instant>,
    last_error: Option<String>,
    stall_after: Duration,
}

impl RelayProgress {
    pub fn new(stall_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ProgressState {
                stall_after,
                ..ProgressState::default()
            }),
        })
    }

    fn update(&self, f: impl FnOnce(&mut ProgressState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn published(&self) {
        self.update(|s| {
            s.behind_since = None;
            s.last_error = None;
        });
    }

    fn failed(&self, error: &RelayError) {
        self.update(|s| s.last_error = Some(error.to_string()));
    }

    fn lag(&self, lag_events: i64) {
        self.update(|s| {
            s.lag_events = lag_events;
            if lag_events <= 0 {
                s.behind_since = None;
            } else if s.behind_since.is_none() {
                s.behind_since = Some(Instant::now());
            }
        });
        metrics::gauge!("tessera_relay_lag_events").set(lag_events.max(0) as f64);
    }

    /// Events the log holds beyond the checkpoint, as last measured.
    pub fn lag_events(&self) -> i64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lag_events
    }

    /// `Err` with the reason when the relay leads but cannot publish.
    pub fn stalled(&self) -> Result<(), String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.behind_since {
            Some(since) if s.publishing && since.elapsed() >= s.stall_after => Err(format!(
                "{} events waiting, none published for {} s{}",
                s.lag_events,
                since.elapsed().as_secs(),
                s.last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Readiness for RelayProgress {
    async fn check(&self) -> Vec<Check> {
        vec![Check {
            name: "publishing",
            result: self.stalled(),
        }]
    }

    fn label(&self) -> &'static str {
        "publishing"
    }
}

/// The checkpoint row: how far the log is published, in which topic epoch,
/// and the highest offset the broker acknowledged per partition (to notice
/// a topic that lost data).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    at: LogPosition,
    epoch: String,
    acked: BTreeMap<i32, i64>,
}

impl Checkpoint {
    fn fresh() -> Self {
        Self {
            at: LogPosition::START,
            epoch: uuid::Uuid::now_v7().to_string(),
            acked: BTreeMap::new(),
        }
    }
}

pub struct Relay {
    pool: PgPool,
    log: PgEventLog,
    brokers: String,
    /// `None` after a failure: the next step builds a new one.
    producer: Option<Producer>,
    config: RelayConfig,
    checkpoint: Checkpoint,
    /// Whether the topic was looked at since the producer was built.
    verified: bool,
    progress: Arc<RelayProgress>,
}

impl Relay {
    pub async fn new(pool: PgPool, brokers: &str, config: RelayConfig) -> Result<Self, RelayError> {
        let checkpoint = load_checkpoint(&pool, &config.name).await?;
        let progress = RelayProgress::new(config.stall_after);
        Ok(Self {
            log: PgEventLog::new(pool.clone()),
            pool,
            brokers: brokers.to_owned(),
            producer: None,
            config,
            checkpoint,
            verified: false,
            progress,
        })
    }

    pub fn checkpoint(&self) -> LogPosition {
        self.checkpoint.at
    }

    /// The topic epoch the relay publishes in.
    pub fn epoch(&self) -> &str {
        &self.checkpoint.epoch
    }

    /// What `/readyz` and the lag gauge read.
    pub fn progress(&self) -> Arc<RelayProgress> {
        Arc::clone(&self.progress)
    }

    fn producer(&mut self) -> Result<Producer, RelayError> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let p = idempotent_producer(&self.brokers, &self.config)?;
        self.producer = Some(p.clone());
        Ok(p)
    }

    /// Throws the producer away (what it still holds is purged: the batch
    /// is sent again by a new one from the checkpoint).
    fn discard_producer(&mut self) {
        if let Some(old) = self.producer.take() {
            metrics::counter!("tessera_relay_producer_rebuilds_total").increment(1);
            // destroying a client can block while it closes its sockets
            tokio::task::spawn_blocking(move || {
                old.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
                drop(old);
            });
        }
        self.verified = false;
    }

    /// Makes sure the topic exists and still holds what the relay was
    /// acknowledged; if not, starts a new epoch from the beginning of the log.
    async fn verify_topic(&mut self) -> Result<(), RelayError> {
        let state = tokio::time::timeout(
            self.config.publish_timeout,
            ensure_topic(&self.brokers, &self.config.topic, self.config.partitions),
        )
        .await
        .map_err(|_| RelayError::NoAnswer {
            what: "creating the topic",
            timeout: self.config.publish_timeout,
        })??;
        let lost = match state {
            TopicState::Created => (self.checkpoint.at != LogPosition::START)
                .then(|| "the topic did not exist".to_owned()),
            TopicState::Existed => self.lost_partition().await?,
        };
        if let Some(reason) = lost {
            self.start_new_epoch(&reason).await?;
        }
        self.verified = true;
        Ok(())
    }

    async fn start_new_epoch(&mut self, reason: &str) -> Result<(), RelayError> {
        tracing::warn!(topic = %self.config.topic, reason, "the topic lost events the relay had published; publishing the whole log again in a new epoch");
        metrics::counter!("tessera_relay_topic_resets_total").increment(1);
        self.checkpoint = Checkpoint::fresh();
        save_checkpoint(&self.pool, &self.config.name, &self.checkpoint).await
    }

    /// A partition that ends before an offset the broker acknowledged.
    async fn lost_partition(&mut self) -> Result<Option<String>, RelayError> {
        if self.checkpoint.acked.is_empty() {
            return Ok(None);
        }
        let producer = self.producer()?;
        let topic = self.config.topic.clone();
        let acked = self.checkpoint.acked.clone();
        tokio::task::spawn_blocking(move || {
            for (partition, offset) in acked {
                let (_, high) = producer
                    .client()
                    .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                    .map_err(RelayError::Kafka)?;
                // tansu reports a partition's end as its last batch's first
                // offset plus one, so only an end further back than a whole
                // batch means the partition lost messages
                let margin = i64::try_from(MESSAGES_PER_BATCH).unwrap_or(i64::MAX);
                if high.saturating_add(margin) <= offset {
                    return Ok(Some(format!(
                        "partition {partition} ends at offset {high}, offset {offset} was acknowledged"
                    )));
                }
            }
            Ok(None)
        })
        .await
        .unwrap_or_else(|e| Err(RelayError::Blocking(e)))
    }

    /// Publishes the next batch of committed events, then moves the
    /// checkpoint past them. After a failure it first builds a new producer
    /// and checks the topic.
    pub async fn relay_next(&mut self) -> Result<RelayStep, RelayError> {
        let result = self.publish_next().await;
        match &result {
            Ok(_) => {}
            Err(error) => {
                self.progress.failed(error);
                if matches!(
                    error,
                    RelayError::Kafka(_)
                        | RelayError::Unacknowledged { .. }
                        | RelayError::NoAnswer { .. }
                ) {
                    self.discard_producer();
                }
            }
        }
        result
    }

    async fn publish_next(&mut self) -> Result<RelayStep, RelayError> {
        if !self.verified {
            self.verify_topic().await?;
        }
        let records = self
            .log
            .read_after(self.checkpoint.at, self.config.batch_size)
            .await
            .map_err(RelayError::Log)?;
        if records.is_empty() {
            return Ok(RelayStep::Idle);
        }
        let producer = self.producer()?;
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let e = &record.envelope;
            let payload = serde_json::to_vec(e).map_err(RelayError::Encode)?;
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event_type",
                    value: Some(e.event_type.as_bytes()),
                })
                .insert(Header {
                    key: "aggregate_type",
                    value: Some(e.aggregate_type.as_bytes()),
                })
                .insert(Header {
                    key: EPOCH_HEADER,
                    value: Some(self.checkpoint.epoch.as_bytes()),
                });
            if let Some(traceparent) = &e.metadata.traceparent {
                // the command's trace goes on: a span of it for the
                // exporter (when there is one), and the header for
                // consumers that trace
                let _publish = tessera_runtime::trace::exporting().then(|| {
                    tracing::info_span!(
                        "publish",
                        "otel.kind" = "producer",
                        traceparent = traceparent.as_str(),
                        "messaging.destination.name" = self.config.topic.as_str(),
                        "event.type" = e.event_type.as_str(),
                        "messaging.message.id" = %e.event_id,
                    )
                });
                headers = headers.insert(Header {
                    key: "traceparent",
                    value: Some(traceparent.as_bytes()),
                });
            }
            let mut message = FutureRecord::to(&self.config.topic)
                .key(e.aggregate_id.as_bytes())
                .payload(&payload)
                .headers(headers);
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                        // let the queue drain, then enqueue again
                        message = m;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(RelayError::Kafka(e)),
                }
            }
        }
        // Acknowledgements are awaited in the batch's order, each within
        // `publish_timeout` of the one before: a slow broker that keeps
        // acknowledging is waited for, a silent one is given up on. What was
        // acknowledged in order before a failure moves the checkpoint, so a
        // new producer sends only the rest again.
        let sent = deliveries.len();
        let before = self.checkpoint.acked.clone();
        let mut acked = before.clone();
        let mut prefix = 0;
        let mut failure = None;
        for delivery in deliveries {
            let outcome = match tokio::time::timeout(self.config.publish_timeout, delivery).await {
                Err(_) => {
                    failure = Some(RelayError::Unacknowledged {
                        acknowledged: prefix,
                        sent,
                        timeout: self.config.publish_timeout,
                    });
                    break;
                }
                Ok(outcome) => outcome,
            };
            match outcome {
                Ok(Ok(rdkafka::producer::future_producer::Delivery {
                    partition, offset, ..
                })) => {
                    if let Some(had) = before.get(&partition).filter(|had| offset <= **had) {
                        // the partition started over under us: the broker lost
                        // what it had (a restart on memory storage)
                        let reason = format!(
                            "partition {partition} took offset {offset}, offset {had} was acknowledged before"
                        );
                        self.start_new_epoch(&reason).await?;
                        return Ok(RelayStep::Published(0));
                    }
                    let high = acked.entry(partition).or_insert(offset);
                    *high = (*high).max(offset);
                    prefix += 1;
                }
                Ok(Err((e, _))) => {
                    failure = Some(RelayError::Kafka(e));
                    break;
                }
                Err(_canceled) => {
                    failure = Some(RelayError::Kafka(KafkaError::Canceled));
                    break;
                }
            }
        }
        if prefix > 0 {
            let next = Checkpoint {
                at: records[prefix - 1].at,
                epoch: self.checkpoint.epoch.clone(),
                acked,
            };
            save_checkpoint(&self.pool, &self.config.name, &next).await?;
            self.checkpoint = next;
            self.progress.published();
            metrics::counter!("tessera_relay_published_total").increment(prefix as u64);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(RelayStep::Published(prefix)),
        }
    }

    /// Measures the lag (log head minus checkpoint) for the gauge and
    /// readiness.
    async fn measure_lag(&self) {
        if let Ok(head) = self.log.head().await {
            self.progress
                .lag(head.position.saturating_sub(self.checkpoint.at.position));
        }
    }

    /// Runs until `shutdown`: waits for the relay lock (standby), then
    /// publishes whenever events commit, and stands by again if the lock is
    /// lost. The batch in hand is finished first.
    /// Waits for the relay lock, then reloads the checkpoint (it may have
    /// moved while this instance stood by) and listens for commits. `None`
    /// on shutdown.
    async fn take_over(
        &mut self,
        leadership: &Leadership,
        shutdown: &CancellationToken,
    ) -> Result<Option<(crate::leader::LeaderGuard, PgListener)>, RelayError> {
        let Some(lock) = leadership
            .acquire(&format!("relay:{}", self.config.name), shutdown)
            .await
            .map_err(RelayError::Lock)?
        else {
            return Ok(None);
        };
        tracing::info!(relay = %self.config.name, "relay lock acquired; publishing");
        self.checkpoint = load_checkpoint(&self.pool, &self.config.name).await?;
        self.verified = false;
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(RelayError::Store)?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(RelayError::Store)?;
        Ok(Some((lock, listener)))
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let leadership = Leadership::Postgres(self.pool.clone());
        let backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(5),
            Jitter::Equal,
        );
        let mut failures = 0;
        while !shutdown.is_cancelled() {
            // Standing by and taking over talk to PostgreSQL too: a server
            // restarting under us is waited out, never the end of the relay.
            let (lock, listener) = match self.take_over(&leadership, &shutdown).await {
                Ok(Some(taken)) => {
                    failures = 0;
                    taken
                }
                Ok(None) => break,
                Err(error) => {
                    failures += 1;
                    let pause = backoff.delay(failures);
                    tracing::warn!(%error, failures, pause_ms = pause.as_millis() as u64, "cannot take over the relay yet");
                    sleep_or_shutdown(pause, &shutdown).await;
                    continue;
                }
            };
            self.progress.update(|s| s.publishing = true);
            let stop = shutdown.child_token();
            let mut publishing = Publishing {
                relay: &mut self,
                listener,
                lock,
                stop: stop.clone(),
                measured: None,
            };
            drive("relay", &mut publishing, backoff, &stop).await;
            self.progress.update(|s| s.publishing = false);
            if !shutdown.is_cancelled() {
                tracing::warn!(relay = %self.config.name, "relay lock lost; standing by");
            }
        }
        // hand what the producer still holds to the broker briefly; what does
        // not make it is published again from the checkpoint
        if let Some(producer) = self.producer.take() {
            let _ =
                tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(2))).await;
        }
        tracing::info!(relay = %self.config.name, "relay stopped");
        Ok(())
    }
}

/// The relay while it holds the lock: one step publishes a batch or waits
/// for a commit notification.
struct Publishing<'a> {
    relay: &'a mut Relay,
    listener: PgListener,
    lock: crate::leader::LeaderGuard,
    /// Cancelled on shutdown, and by the step when the lock is lost.
    stop: CancellationToken,
    measured: Option<Instant>,
}

impl Step for Publishing<'_> {
    type Error = RelayError;

    async fn step(&mut self) -> Result<Stepped, RelayError> {
        // losing the lock connection means another relay may take over
        if !self.lock.alive().await {
            self.stop.cancel();
            return Err(RelayError::LockLost);
        }
        // shutdown does not wait for a broker that does not acknowledge:
        // what was sent is published again from the checkpoint
        let step = tokio::select! {
            step = self.relay.relay_next() => step,
            () = self.stop.cancelled() => return Ok(Stepped::Idle),
        };
        if step.is_err()
            || self
                .measured
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.relay.measure_lag().await;
            self.measured = Some(Instant::now());
        }
        match step? {
            RelayStep::Published(n) => {
                tracing::debug!(events = n, "published");
                Ok(Stepped::Worked)
            }
            RelayStep::Idle => {
                tokio::select! {
                    () = self.stop.cancelled() => {}
                    _ = self.listener.recv() => {}
                    () = tokio::time::sleep(self.relay.config.poll_interval) => {}
                }
                Ok(Stepped::Idle)
            }
        }
    }
}

async fn load_checkpoint(pool: &PgPool, name: &str) -> Result<Checkpoint, RelayError> {
    let row: Option<(i64, i64, Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT tx_id::text::bigint, global_position, topic_epoch, acked_offsets
           FROM relay_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(RelayError::Store)?;
    let Some((tx, position, epoch, acked)) = row else {
        return Ok(Checkpoint::fresh());
    };
    Ok(Checkpoint {
        at: LogPosition {
            tx_id: u64::try_from(tx).unwrap_or_default(),
            position,
        },
        // a checkpoint written before epochs existed keeps one from now on
        epoch: epoch.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        acked: serde_json::from_value(acked).unwrap_or_default(),
    })
}

async fn save_checkpoint(pool: &PgPool, name: &str, c: &Checkpoint) -> Result<(), RelayError> {
    let acked = serde_json::to_value(&c.acked).unwrap_or_default();
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, tx_id, global_position, topic_epoch, acked_offsets)
         VALUES ($1, $2::text::xid8, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE
            SET tx_id = excluded.tx_id, global_position = excluded.global_position,
                topic_epoch = excluded.topic_epoch, acked_offsets = excluded.acked_offsets,
                updated_at = now()",
    )
    .bind(name)
    .bind(c.at.tx_id.to_string())
    .bind(c.at.position)
    .bind(&c.epoch)
    .bind(acked)
    .execute(pool)
    .await
    .map(drop)
    .map_err(RelayError::Store)
}
