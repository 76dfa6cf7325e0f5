//! The projector loop: take a batch from the feed, fold it into documents
//! ([`batch`]), write them, then commit the feed, and record where the
//! projection stands ([`status`], [`health`]).
//!
//! - [`batch`]: folding one batch, with retries and dead letters;
//! - [`work`]: the per-batch document cache (read once, write once);
//! - [`refold`]: one aggregate's history again (replay), one event again
//!   (dead-letter retry);
//! - [`letters`]: writing dead letters;
//! - [`status`]: the projection's position document;
//! - [`health`]: lag and stalls, for `/readyz` and the metrics.
//!
//! A rebuild may switch the live collection at any moment (see
//! [`crate::routes`]). A batch remembers the route's epoch it started in; if
//! the epoch moved by the time its documents are written, the batch waits
//! for the switch to finish and folds itself again into whatever is live
//! before the feed commits. So a switch never loses a batch, even one that
//! a stuck instance was writing while the rebuild went ahead without it.

mod batch;
mod health;
mod letters;
mod refold;
mod status;
mod work;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_events::LogPosition;
use tessera_runtime::{drive, Backoff, Jitter, Stepped};
use tokio_util::sync::CancellationToken;

pub use batch::{Folded, Parking};
pub use health::Health;

pub(crate) use batch::fold_batch;
pub(crate) use refold::{apply_one, refold, Applied, Refolded};

use crate::feed::{Delivery, EventFeed, FeedError};
use crate::projection::Projection;
use tessera_documents::changes::{Announce, Change};
use tessera_documents::live::{self, Route};
use tessera_documents::store::{DocumentStore, StoreError};

/// Folds of one batch (or writes of one document set) that may conflict
/// with other writers before the runner gives up on the step.
pub(crate) const CONTENDED_ATTEMPTS: u32 = 10;

/// How often a live instance reports itself alive.
pub const BEAT_EVERY: Duration = Duration::from_secs(2);

/// How often to look at the route while a switch is under way.
const SWITCH_POLL: Duration = Duration::from_millis(50);

/// How events whose fold fails are retried before they are dead-lettered.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts at folding one event before it is dead-lettered.
    pub attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Backoff::new(
                Duration::from_millis(25),
                Duration::from_secs(1),
                Jitter::Equal,
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("documents kept changing under the projector ({0} attempts)")]
    Contended(u32),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Processed { events: usize, dead_lettered: usize },
    Idle,
}

pub struct Projector {
    projection: Arc<dyn Projection>,
    docs: Arc<dyn DocumentStore>,
    feed: Box<dyn EventFeed>,
    policy: RetryPolicy,
    batch_size: usize,
    /// A batch taken from the feed but not yet written: retried as is.
    pending: Option<Vec<Delivery>>,
    /// Events handled and not yet counted in the status document.
    unsaved_events: u64,
    /// This instance, for the rebuild handshake and the partition leases.
    instance: String,
    /// The last freeze epoch this instance paused for. Shared with the
    /// heartbeat task of [`run`](Self::run), which keeps the instance
    /// visibly alive while a slow batch is being written.
    acked_epoch: Arc<AtomicU64>,
    /// The feed's lag as last measured ([`NOT_MEASURED`]: unknown), told
    /// in the heartbeat.
    lag: Arc<AtomicU64>,
    last_beat: Option<Instant>,
    health: Option<Arc<Health>>,
    /// Where the documents each batch wrote are announced to live streams.
    announce: Option<Arc<dyn Announce>>,
}

/// Deliveries taken from the feed per step unless
/// [`with_batch_size`](Projector::with_batch_size) says otherwise: a batch's
/// events of one document become one write.
pub const DEFAULT_BATCH_SIZE: usize = 500;

impl Projector {
    pub fn new(
        projection: Arc<dyn Projection>,
        docs: Arc<dyn DocumentStore>,
        feed: Box<dyn EventFeed>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            projection,
            docs,
            feed,
            policy,
            batch_size: DEFAULT_BATCH_SIZE,
            pending: None,
            unsaved_events: 0,
            instance: new_instance_id(),
            acked_epoch: Arc::new(AtomicU64::new(0)),
            lag: Arc::new(AtomicU64::new(NOT_MEASURED)),
            last_beat: None,
            health: None,
            announce: None,
        }
    }

    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Runs as `instance` (the id a Kafka feed's leases name).
    #[must_use]
    pub fn with_instance(mut self, instance: String) -> Self {
        self.instance = instance;
        self
    }

    /// Announces the documents each batch writes (of a projection live
    /// streams follow) once the batch is committed.
    #[must_use]
    pub fn with_announce(mut self, announce: Arc<dyn Announce>) -> Self {
        self.announce = Some(announce);
        self
    }

    /// Reports lag and stalls to `health`.
    #[must_use]
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Declares the indexes the projection and its dead letters need.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        prepare(&*self.projection, &*self.docs).await
    }

    async fn beat(&mut self, force: bool) -> Result<(), StoreError> {
        if !force && self.last_beat.is_some_and(|t| t.elapsed() < BEAT_EVERY) {
            return Ok(());
        }
        beat(
            &*self.docs,
            self.projection.name(),
            &self.instance,
            &self.acked_epoch,
            &self.lag,
        )
        .await?;
        self.last_beat = Some(Instant::now());
        Ok(())
    }

    /// Acknowledges a freeze (once per epoch).
    async fn ack(&mut self, route: &Route) -> Result<(), StoreError> {
        if self.acked_epoch.load(Ordering::SeqCst) < route.epoch {
            self.acked_epoch.store(route.epoch, Ordering::SeqCst);
            self.beat(true).await
        } else {
            self.beat(false).await
        }
    }

    /// Handles the next batch, or reports that the feed had nothing (or
    /// that a rebuild froze the projection: then nothing is taken from the
    /// feed and nothing is written until the switch is done).
    pub async fn project_next(&mut self) -> Result<Step, ProjectorError> {
        let (route, _) = live::load(&*self.docs, self.projection.name()).await?;
        if route.is_frozen() {
            self.ack(&route).await?;
            tokio::time::sleep(SWITCH_POLL).await;
            return Ok(Step::Idle);
        }
        self.beat(false).await?;
        let batch = match self.pending.take() {
            Some(batch) => batch,
            None => self.feed.next_batch(self.batch_size).await?,
        };
        if batch.is_empty() {
            self.report(0);
            return Ok(Step::Idle);
        }
        let events = batch.len();
        let result = self.apply_batch(route, &batch).await;
        if result.is_err() {
            self.pending = Some(batch); // retried as is at the next step
        }
        let dead_lettered = result?;
        self.report(events);
        Ok(Step::Processed {
            events,
            dead_lettered,
        })
    }

    /// Folds a batch into the live collection (again into the new one if a
    /// switch moved it meanwhile), commits the feed and records the status.
    async fn apply_batch(
        &mut self,
        route: Route,
        batch: &[Delivery],
    ) -> Result<usize, ProjectorError> {
        let mut collection = route.live;
        let started = route.epoch;
        let (dead_lettered, written) = loop {
            let folded = self.fold_into(&collection, batch).await?;
            let now = self.settled_route(started).await?;
            if now.live == collection {
                break folded;
            }
            tracing::info!(projection = self.name(), from = %collection, to = %now.live, "collection switched under a batch; folding it again");
            collection = now.live;
        };
        self.feed.commit().await?;
        if let (Some(announce), false) = (&self.announce, written.is_empty()) {
            announce.announce(written);
        }
        let events = batch.len();
        let newest = batch
            .iter()
            .filter_map(|d| match d {
                Delivery::Event(e) => Some(e.recorded_at),
                Delivery::Undecodable { .. } => None,
            })
            .max();
        let name = self.projection.name();
        metrics::counter!("tessera_projector_events_total", "projection" => name)
            .increment(events as u64);
        metrics::counter!("tessera_dead_letters_total", "projection" => name)
            .increment(dead_lettered as u64);
        if let Some(newest) = newest {
            let lag = (chrono::Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!("tessera_projector_lag_seconds", "projection" => name).set(lag);
        }
        self.unsaved_events += events as u64;
        if let Some(at) = self.feed.position() {
            // the documents and offsets are written: a failure here only
            // delays the status, so it is logged, not retried with the batch
            match status::save_status(&*self.docs, name, at, self.unsaved_events).await {
                Ok(true) => self.unsaved_events = 0,
                Ok(false) => {}
                Err(error) => tracing::warn!(projection = name, %error, "saving the status failed"),
            }
        }
        Ok(dead_lettered)
    }

    fn report(&self, handled: usize) {
        self.lag
            .store(self.feed.lag().unwrap_or(NOT_MEASURED), Ordering::SeqCst);
        if let Some(health) = &self.health {
            health.stepped(self.projection.name(), handled, self.feed.lag());
        }
    }

    /// The route once no switch that began after `started` is under way:
    /// a freeze seen meanwhile is acknowledged (this instance's batch is
    /// written, and it is folded again if the switch moves the collection).
    async fn settled_route(&mut self, started: u64) -> Result<Route, ProjectorError> {
        loop {
            let (route, _) = live::load(&*self.docs, self.projection.name()).await?;
            if route.epoch == started || !route.is_frozen() {
                return Ok(route);
            }
            self.ack(&route).await?;
            tokio::time::sleep(SWITCH_POLL).await;
        }
    }

    async fn fold_into(
        &self,
        collection: &str,
        batch: &[Delivery],
    ) -> Result<(usize, Vec<Change>), ProjectorError> {
        let mut attempt = 0;
        // documents a raced attempt wrote: the next attempt skips them
        let mut carried: Vec<Change> = Vec::new();
        loop {
            attempt += 1;
            match fold_batch(
                &*self.projection,
                &*self.docs,
                collection,
                &self.policy,
                batch,
                Parking::BehindDeadLetters,
            )
            .await?
            {
                Folded::Done {
                    dead_lettered,
                    written,
                } => {
                    for change in written {
                        if !carried.contains(&change) {
                            carried.push(change);
                        }
                    }
                    return Ok((dead_lettered, carried));
                }
                Folded::Raced { .. } if attempt >= CONTENDED_ATTEMPTS => {
                    return Err(ProjectorError::Contended(attempt))
                }
                Folded::Raced { written } => {
                    for change in written {
                        if !carried.contains(&change) {
                            carried.push(change);
                        }
                    }
                    tokio::time::sleep(self.policy.backoff.delay(attempt)).await;
                }
            }
        }
    }

    /// Runs until `shutdown`; the batch in hand is finished and committed
    /// first, then the instance lets go of what it reads (so the others
    /// take it over at once) and leaves the instance registry. Failures of
    /// the store or the feed are logged and retried.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.projection.name();
        // exported at zero from the start: "dead letters growing" is an
        // increase, which needs a series before the first letter
        metrics::counter!("tessera_dead_letters_total", "projection" => name).increment(0);
        metrics::counter!("tessera_projector_events_total", "projection" => name).increment(0);
        // alive is about the process, not the batch: a rebuild waits for
        // every instance that beats, and one in a long batch must count
        let heart = tokio::spawn({
            let (docs, instance, acked, lag) = (
                Arc::clone(&self.docs),
                self.instance.clone(),
                Arc::clone(&self.acked_epoch),
                Arc::clone(&self.lag),
            );
            let shutdown = shutdown.clone();
            async move {
                let mut every = tokio::time::interval(BEAT_EVERY);
                while !shutdown.is_cancelled() {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        _ = every.tick() => {
                            if let Err(error) = beat(&*docs, name, &instance, &acked, &lag).await {
                                tracing::warn!(projection = name, %error, "heartbeat failed");
                            }
                        }
                    }
                }
            }
        });
        let backoff = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Jitter::Equal,
        );
        drive(name, &mut self, backoff, &shutdown).await;
        heart.abort();
        if let Err(error) = self.feed.release().await {
            tracing::warn!(projection = name, %error, "letting go of the partitions failed; they move once this instance's heartbeat is old");
        }
        if let Err(error) = live::forget(&*self.docs, name, &self.instance).await {
            tracing::warn!(projection = name, %error, "leaving the instance registry failed");
        }
        tracing::info!(projection = name, "projector stopped");
    }

    pub fn position(&self) -> Option<LogPosition> {
        self.feed.position()
    }
}

impl tessera_runtime::Step for Projector {
    type Error = ProjectorError;

    async fn step(&mut self) -> Result<Stepped, ProjectorError> {
        match self.project_next().await {
            Ok(Step::Processed { .. }) => Ok(Stepped::Worked),
            Ok(Step::Idle) => Ok(Stepped::Idle),
            Err(error) => {
                if let Some(health) = &self.health {
                    health.failed(self.projection.name(), &error.to_string());
                }
                Err(error)
            }
        }
    }
}

/// The feed's lag is not known (yet).
const NOT_MEASURED: u64 = u64::MAX;

/// A fresh instance id: sorts by start time, unique across processes.
pub fn new_instance_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn beat(
    docs: &dyn DocumentStore,
    projection: &str,
    instance: &str,
    acked_epoch: &AtomicU64,
    lag: &AtomicU64,
) -> Result<(), StoreError> {
    let lag = lag.load(Ordering::SeqCst);
    let me = live::Instance {
        projection: projection.to_owned(),
        instance: instance.to_owned(),
        heartbeat_at: chrono::Utc::now(),
        acked_epoch: acked_epoch.load(Ordering::SeqCst),
        lag: (lag != NOT_MEASURED).then_some(lag),
    };
    live::beat(docs, &me).await
}

/// Declares the indexes a projection (its live collection), the dead
/// letters and the instance registry need.
pub async fn prepare(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
) -> Result<(), StoreError> {
    let live = live::live(docs, projection.name()).await?;
    docs.ensure_indexes(&live, projection.indexes()).await?;
    docs.ensure_indexes(
        tessera_documents::documents::collections::DEAD_LETTERS,
        &["pending_for"],
    )
    .await?;
    docs.ensure_indexes(live::INSTANCES, &["projection"]).await
}
