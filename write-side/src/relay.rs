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
//! Only one relay publishes at a time (a PostgreSQL advisory lock); another
//! one waits as a standby and takes over if the first one dies.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::postgres::{PgListener, PgPool};
use tessera_events::{EventLog, LogPosition};
use tokio_util::sync::CancellationToken;

use crate::leader::Leadership;
use crate::store::postgres::{PgEventLog, NOTIFY_CHANNEL};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Checkpoint and lock name: relays with the same name share one.
    pub name: String,
    pub topic: String,
    pub batch_size: usize,
    /// How often to look for events when no notification arrives.
    pub poll_interval: Duration,
    /// How long the producer keeps trying to deliver one event.
    pub delivery_timeout: Duration,
    /// librdkafka debug contexts (`debug` property), for diagnosis.
    pub kafka_debug: Option<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            topic: "tessera.events".into(),
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            delivery_timeout: Duration::from_secs(10),
            kafka_debug: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("event store: {0}")]
    Store(String),
    #[error("kafka: {0}")]
    Kafka(String),
}

fn store_err(e: impl std::fmt::Display) -> RelayError {
    RelayError::Store(e.to_string())
}

fn kafka_err(e: impl std::fmt::Display) -> RelayError {
    RelayError::Kafka(e.to_string())
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayStep {
    Published(usize),
    Idle,
}

pub struct Relay {
    pool: PgPool,
    log: PgEventLog,
    producer: FutureProducer,
    config: RelayConfig,
    checkpoint: LogPosition,
}

/// Creates the topic if it does not exist yet.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), RelayError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(kafka_err)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(kafka_err)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(RelayError::Kafka(format!("creating {name}: {code}"))),
        }
    }
    Ok(())
}

/// A producer that never reorders or duplicates within a partition on retry.
pub fn idempotent_producer(
    brokers: &str,
    config: &RelayConfig,
) -> Result<FutureProducer, RelayError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            config.delivery_timeout.as_millis().to_string(),
        );
    if let Some(debug) = &config.kafka_debug {
        c.set("debug", debug);
    }
    c.create().map_err(kafka_err)
}

impl Relay {
    pub async fn new(pool: PgPool, brokers: &str, config: RelayConfig) -> Result<Self, RelayError> {
        let producer = idempotent_producer(brokers, &config)?;
        let checkpoint = load_checkpoint(&pool, &config.name).await?;
        Ok(Self {
            log: PgEventLog::new(pool.clone()),
            pool,
            producer,
            config,
            checkpoint,
        })
    }

    pub fn checkpoint(&self) -> LogPosition {
        self.checkpoint
    }

    /// Publishes the next batch of committed events, then moves the
    /// checkpoint past them.
    pub async fn relay_next(&mut self) -> Result<RelayStep, RelayError> {
        let records = self
            .log
            .read_after(self.checkpoint, self.config.batch_size)
            .await
            .map_err(store_err)?;
        let Some(last) = records.last().map(|r| r.at) else {
            return Ok(RelayStep::Idle);
        };
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let e = &record.envelope;
            let payload = serde_json::to_vec(e).map_err(kafka_err)?;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event_type",
                    value: Some(e.event_type.as_bytes()),
                })
                .insert(Header {
                    key: "aggregate_type",
                    value: Some(e.aggregate_type.as_bytes()),
                });
            let mut message = FutureRecord::to(&self.config.topic)
                .key(e.aggregate_id.as_bytes())
                .payload(&payload)
                .headers(headers);
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                        m,
                    )) => {
                        // let the queue drain, then enqueue again
                        message = m;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => return Err(kafka_err(e)),
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(kafka_err(e)),
                Err(_canceled) => {
                    return Err(RelayError::Kafka("producer dropped a delivery".into()))
                }
            }
        }
        save_checkpoint(&self.pool, &self.config.name, last).await?;
        self.checkpoint = last;
        metrics::counter!("tessera_relay_published_total").increment(records.len() as u64);
        if let Ok(head) = self.log.head().await {
            metrics::gauge!("tessera_relay_lag_events")
                .set((head.position - last.position).max(0) as f64);
        }
        Ok(RelayStep::Published(records.len()))
    }

    /// Runs until `shutdown`: waits for the relay lock (standby), then
    /// publishes whenever events commit. The batch in hand is finished first.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let leadership = Leadership::Postgres(self.pool.clone());
        let Some(mut lock) = leadership
            .acquire(&format!("relay:{}", self.config.name), &shutdown)
            .await
            .map_err(RelayError::Store)?
        else {
            return Ok(());
        };
        tracing::info!(relay = %self.config.name, "relay lock acquired; publishing");
        // the checkpoint may have moved while we were standing by
        self.checkpoint = load_checkpoint(&self.pool, &self.config.name).await?;
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(store_err)?;
        listener.listen(NOTIFY_CHANNEL).await.map_err(store_err)?;
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            // losing the lock connection means another relay may take over
            if !lock.alive().await {
                return Err(RelayError::Store("relay lock connection lost".into()));
            }

            match self.relay_next().await {
                Ok(RelayStep::Published(n)) => {
                    failures = 0;
                    tracing::debug!(events = n, "published");
                }
                Ok(RelayStep::Idle) => {
                    failures = 0;
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        _ = listener.recv() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(
                        200u64.saturating_mul(2u64.saturating_pow(failures.min(5))),
                    );
                    tracing::warn!(%error, failures, "relay step failed, retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        // deliver whatever the producer still holds before leaving
        let _ = self.producer.flush(Duration::from_secs(5));
        tracing::info!(relay = %self.config.name, "relay stopped");
        Ok(())
    }
}

async fn load_checkpoint(pool: &PgPool, name: &str) -> Result<LogPosition, RelayError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT tx_id::text::bigint, global_position FROM relay_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(store_err)?;
    Ok(
        row.map_or(LogPosition::START, |(tx, position)| LogPosition {
            tx_id: u64::try_from(tx).unwrap_or_default(),
            position,
        }),
    )
}

async fn save_checkpoint(pool: &PgPool, name: &str, at: LogPosition) -> Result<(), RelayError> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, tx_id, global_position) VALUES ($1, $2::text::xid8, $3)
         ON CONFLICT (name) DO UPDATE
            SET tx_id = excluded.tx_id, global_position = excluded.global_position, updated_at = now()",
    )
    .bind(name)
    .bind(at.tx_id.to_string())
    .bind(at.position)
    .execute(pool)
    .await
    .map(drop)
    .map_err(store_err)
}
