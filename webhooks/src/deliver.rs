//! The deliverer: another consumer of the committed log, like the relay
//! (DESIGN.md §10). Each webhook follows the log from its own checkpoint, in
//! commit order, one delivery at a time, so the events of an aggregate
//! arrive in their order. A delivery that fails is retried with exponential
//! backoff and full jitter while the webhook's later events wait (order is
//! kept); after `max_attempts` it becomes a dead letter and the webhook goes
//! on. The checkpoint moves only after a delivery was answered 2xx (at
//! least once), and lives beside the log, so restarts lose nothing and
//! Kafka plays no part.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tessera_events::{EventLog, LogError, LogPosition, LogRecord};
use tessera_runtime::leader::Leadership;
use tessera_runtime::{drive, sleep_or_shutdown, Backoff, Jitter, Step, Stepped};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::send::{Attempt, Refused, Sender};
use crate::store::{DeadLetter, StoreError, Webhook, WebhookStore};

/// How the deliverer paces itself.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// Log records a webhook reads at a time.
    pub batch_size: usize,
    /// Attempts of one delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// Between attempts of one delivery.
    pub backoff: Backoff,
    /// How often to look at the log when nothing was delivered.
    pub poll_interval: Duration,
    /// How often the list of webhooks is read again (registrations and
    /// deletions reach a running deliverer within this).
    pub reload_interval: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            // 0.5 + 1 + 2 + ... capped at 60 s: about 8 minutes of attempts
            max_attempts: 12,
            backoff: Backoff::new(
                Duration::from_millis(500),
                Duration::from_secs(60),
                Jitter::Full,
            ),
            poll_interval: Duration::from_millis(200),
            reload_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("an event cannot be serialized: {0}")]
    Encode(#[source] serde_json::Error),
}

/// A webhook as the deliverer follows it.
struct Follower {
    webhook: Webhook,
    /// Failed attempts of the delivery in hand.
    failures: u32,
    retry_at: Option<Instant>,
}

pub struct Deliverer {
    store: Arc<dyn WebhookStore>,
    log: Arc<dyn EventLog>,
    sender: Sender,
    config: DeliveryConfig,
    followers: HashMap<Uuid, Follower>,
    listed_at: Option<Instant>,
    stop: CancellationToken,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        log: Arc<dyn EventLog>,
        sender: Sender,
        config: DeliveryConfig,
    ) -> Self {
        Self {
            store,
            log,
            sender,
            config,
            followers: HashMap::new(),
            listed_at: None,
            stop: CancellationToken::new(),
        }
    }

    /// Delivers what is due for every webhook: at most a batch of log
    /// records each. Returns how many records moved a checkpoint.
    pub async fn deliver_next(&mut self) -> Result<usize, DeliverError> {
        if self
            .listed_at
            .is_none_or(|t| t.elapsed() >= self.config.reload_interval)
        {
            self.reload().await?;
        }
        let now = Instant::now();
        let (store, log, sender, config, stop) = (
            &*self.store,
            &*self.log,
            &self.sender,
            &self.config,
            &self.stop,
        );
        let due = self
            .followers
            .values_mut()
            .filter(|f| f.retry_at.is_none_or(|at| at <= now))
            .map(|f| follow(f, store, log, sender, config, stop));
        let mut moved = 0;
        let mut first_error = None;
        for outcome in futures::future::join_all(due).await {
            match outcome {
                Ok(n) => moved += n,
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(moved),
        }
    }

    /// Picks up registrations and deletions; a webhook already followed
    /// keeps its place and its attempts.
    async fn reload(&mut self) -> Result<(), DeliverError> {
        let listed = self.store.list().await?;
        let mut followers = HashMap::with_capacity(listed.len());
        for webhook in listed {
            let id = webhook.webhook_id;
            let follower = match self.followers.remove(&id) {
                Some(mut known) => {
                    // the deliverer is the only one moving checkpoints
                    known.webhook.checkpoint = known.webhook.checkpoint.max(webhook.checkpoint);
                    known
                }
                None => Follower {
                    webhook,
                    failures: 0,
                    retry_at: None,
                },
            };
            followers.insert(id, follower);
        }
        self.followers = followers;
        self.listed_at = Some(Instant::now());
        Ok(())
    }

    /// When the earliest waiting retry is due.
    fn next_retry(&self) -> Option<Instant> {
        self.followers.values().filter_map(|f| f.retry_at).min()
    }

    /// Runs until `shutdown`: waits to lead (`webhooks` lock; one deliverer
    /// at a time), then delivers, and stands by again if the lock is lost.
    pub async fn run(mut self, leadership: Leadership, shutdown: CancellationToken) {
        self.stop = shutdown.clone();
        // every outcome is exported from the start, at zero until it happens
        for outcome in ["delivered", "failed", "dead_lettered"] {
            metrics::counter!("tessera_webhook_deliveries_total", "outcome" => outcome)
                .increment(0);
        }
        let backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(5),
            Jitter::Equal,
        );
        while !shutdown.is_cancelled() {
            let guard = match leadership.acquire("webhooks", &shutdown).await {
                Ok(Some(guard)) => guard,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot take over webhook delivery yet");
                    sleep_or_shutdown(Duration::from_secs(1), &shutdown).await;
                    continue;
                }
            };
            // the list and the checkpoints may have moved while standing by
            self.followers.clear();
            self.listed_at = None;
            let stop = shutdown.child_token();
            let mut leading = Leading {
                deliverer: &mut self,
                guard,
                stop: stop.clone(),
            };
            drive("webhooks", &mut leading, backoff, &stop).await;
        }
        tracing::info!("webhook delivery stopped");
    }
}

/// Delivers the webhook's next records, stopping at the first failure.
async fn follow(
    f: &mut Follower,
    store: &dyn WebhookStore,
    log: &dyn EventLog,
    sender: &Sender,
    config: &DeliveryConfig,
    stop: &CancellationToken,
) -> Result<usize, DeliverError> {
    f.retry_at = None;
    let records = log
        .read_after(f.webhook.checkpoint, config.batch_size)
        .await?;
    let mut through = f.webhook.checkpoint;
    let mut moved = 0;
    for record in records {
        if stop.is_cancelled() {
            break;
        }
        if !f.webhook.wants(&record.envelope.event_type) {
            through = record.at;
            moved += 1;
            continue;
        }
        let body = serde_json::to_vec(&record.envelope).map_err(DeliverError::Encode)?;
        let started = Instant::now();
        let sent = sender
            .send(
                &f.webhook,
                Attempt::of(&record.envelope, f.failures + 1),
                body.clone(),
            )
            .await;
        metrics::histogram!("tessera_webhook_delivery_seconds")
            .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(()) => {
                metrics::counter!("tessera_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                store
                    .advance(f.webhook.webhook_id, record.at, 1, None)
                    .await?;
                f.webhook.checkpoint = record.at;
                f.webhook.last_error = None;
                f.failures = 0;
                through = record.at;
                moved += 1;
            }
            Err(refused) => {
                f.failures += 1;
                let error = refused.to_string();
                metrics::counter!("tessera_webhook_deliveries_total", "outcome" => "failed")
                    .increment(1);
                if f.failures < config.max_attempts {
                    let pause = config.backoff.delay(f.failures);
                    tracing::warn!(webhook_id = %f.webhook.webhook_id, event_id = %record.envelope.event_id, attempt = f.failures, pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), %error, "webhook delivery failed, retrying");
                    store
                        .advance(f.webhook.webhook_id, through, 0, Some(&error))
                        .await?;
                    f.webhook.checkpoint = through;
                    f.webhook.last_error = Some(error);
                    f.retry_at = Some(Instant::now() + pause);
                    return Ok(moved);
                }
                tracing::error!(webhook_id = %f.webhook.webhook_id, event_id = %record.envelope.event_id, attempts = f.failures, %error, "webhook delivery dead-lettered");
                metrics::counter!("tessera_webhook_deliveries_total", "outcome" => "dead_lettered")
                    .increment(1);
                let letter = dead_letter(&f.webhook, &record, body, f.failures, error.clone());
                store.dead_letter(&letter, record.at).await?;
                f.webhook.checkpoint = record.at;
                f.webhook.last_error = Some(error);
                f.failures = 0;
                through = record.at;
                moved += 1;
            }
        }
    }
    if through > f.webhook.checkpoint {
        store
            .advance(
                f.webhook.webhook_id,
                through,
                0,
                f.webhook.last_error.as_deref(),
            )
            .await?;
        f.webhook.checkpoint = through;
    }
    Ok(moved)
}

fn dead_letter(
    w: &Webhook,
    r: &LogRecord,
    body: Vec<u8>,
    attempts: u32,
    last_error: String,
) -> DeadLetter {
    let e = &r.envelope;
    DeadLetter {
        letter_id: 0,
        webhook_id: w.webhook_id,
        event_id: e.event_id,
        event_type: e.event_type.clone(),
        aggregate_type: e.aggregate_type.clone(),
        aggregate_id: e.aggregate_id.clone(),
        sequence: e.sequence,
        body: String::from_utf8(body).unwrap_or_default(),
        attempts,
        last_error,
        dead_at: Utc::now(),
    }
}

/// The deliverer while it holds the lock.
struct Leading<'a> {
    deliverer: &'a mut Deliverer,
    guard: tessera_runtime::leader::LeaderGuard,
    stop: CancellationToken,
}

impl Step for Leading<'_> {
    type Error = DeliverError;

    async fn step(&mut self) -> Result<Stepped, DeliverError> {
        if !self.guard.alive().await {
            tracing::warn!("webhook lock lost; standing by");
            self.stop.cancel();
            return Ok(Stepped::Idle);
        }
        if self.deliverer.deliver_next().await? > 0 {
            return Ok(Stepped::Worked);
        }
        let mut pause = self.deliverer.config.poll_interval;
        if let Some(at) = self.deliverer.next_retry() {
            pause = pause.min(at.saturating_duration_since(Instant::now()));
        }
        sleep_or_shutdown(pause, &self.stop).await;
        Ok(Stepped::Idle)
    }
}

/// Retries a dead letter now (the operator's `tessera admin webhooks
/// retry`): delivered, it is gone and counted; refused again, it stays with
/// the new error.
pub async fn retry_letter(
    store: &dyn WebhookStore,
    sender: &Sender,
    webhook: &Webhook,
    letter: &DeadLetter,
) -> Result<Result<(), Refused>, StoreError> {
    // the letter keeps the envelope as its body: its trace is in there
    let traceparent = serde_json::from_str::<serde_json::Value>(&letter.body)
        .ok()
        .and_then(|body| body["metadata"]["traceparent"].as_str().map(str::to_owned));
    let attempt = Attempt {
        event_id: letter.event_id,
        event_type: &letter.event_type,
        number: letter.attempts + 1,
        traceparent: traceparent.as_deref(),
    };
    match sender
        .send(webhook, attempt, letter.body.clone().into_bytes())
        .await
    {
        Ok(()) => {
            store.letter_delivered(letter.letter_id).await?;
            Ok(Ok(()))
        }
        Err(refused) => {
            store
                .letter_failed(letter.letter_id, &refused.to_string())
                .await?;
            Ok(Err(refused))
        }
    }
}

/// Where a new webhook starts: the log's head now, so only events
/// committed after the registration are delivered.
pub async fn start_position(log: &dyn EventLog) -> Result<LogPosition, LogError> {
    log.head().await
}
