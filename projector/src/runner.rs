//! The projector loop: take a batch from the feed, fold it into documents,
//! write them, then commit the feed.
//!
//! Within a batch each document is read once, every event for it is folded
//! in order, and it is written once: the document store is the slow part,
//! so several events of one document become one write. Writes are
//! compare-and-set; if another instance changed a document under us the
//! batch is folded again (folds are idempotent, so what was written is
//! skipped as duplicate).
//!
//! An event whose fold fails is retried with exponential backoff and jitter
//! (a gap can close if another instance is still writing the event before
//! it), then dead-lettered with the reason; later events of that aggregate
//! are parked behind it, and every other aggregate carries on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tessera_events::{upcast, DomainEvent, Envelope, LogPosition, UPCASTERS};
use tokio_util::sync::CancellationToken;

use crate::documents::{
    collections, dead_letter_aggregate, dead_letter_id, DeadLetterDoc, ProjectionStatus,
};
use crate::feed::{Delivery, EventFeed, FeedError};
use crate::projection::{FoldError, Outcome, Projection, Targets};
use crate::routes;
use crate::store::{DocumentStore, StoreError, StoredDoc, Write, Written};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts at folding one event before it is dead-lettered.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Full jitter over an exponential ceiling.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
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
    handled: u64,
    /// `handled` as of the last status write.
    saved_events: u64,
    /// This instance, for the rebuild handshake (see [`crate::routes`]).
    instance: String,
    /// Shared with the heartbeat task of [`run`](Self::run), which keeps the
    /// instance visibly alive while a slow batch is being written.
    acked_epoch: Arc<std::sync::atomic::AtomicU64>,
    last_beat: Option<std::time::Instant>,
}

/// How often a live instance reports itself alive.
const BEAT_EVERY: Duration = Duration::from_secs(2);

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
            batch_size: 500,
            pending: None,
            handled: 0,
            saved_events: 0,
            instance: uuid::Uuid::now_v7().to_string(),
            acked_epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            last_beat: None,
        }
    }

    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
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
        )
        .await?;
        self.last_beat = Some(std::time::Instant::now());
        Ok(())
    }

    /// Handles the next batch, or reports that the feed had nothing (or
    /// that a rebuild froze the projection: then nothing is taken from the
    /// feed and nothing is written until the switch is done).
    pub async fn project_next(&mut self) -> Result<Step, ProjectorError> {
        let (route, _) = routes::load(&*self.docs, self.projection.name()).await?;
        if route.freeze {
            if self.acked_epoch.load(std::sync::atomic::Ordering::SeqCst) < route.epoch {
                self.acked_epoch
                    .store(route.epoch, std::sync::atomic::Ordering::SeqCst);
                self.beat(true).await?;
            } else {
                self.beat(false).await?;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(Step::Idle);
        }
        self.beat(false).await?;
        let collection = route.live;
        let batch = match self.pending.take() {
            Some(batch) => batch,
            None => self.feed.next_batch(self.batch_size).await?,
        };
        if batch.is_empty() {
            return Ok(Step::Idle);
        }
        self.pending = Some(batch);
        let batch = self.pending.as_deref().unwrap_or_default();
        let mut collection = collection;
        let dead_lettered = loop {
            let dead = self.fold_into(&collection, batch).await?;
            // a rebuild may have switched the live collection while this batch
            // was written: then fold it again into the new one before the
            // offsets move (sequence checks skip what the rebuild applied)
            let (now, _) = routes::load(&*self.docs, self.projection.name()).await?;
            if now.live == collection {
                break dead;
            }
            tracing::info!(projection = self.name(), from = %collection, to = %now.live, "collection switched under a batch; folding it again");
            collection = now.live;
        };
        let events = batch.len();
        let newest = batch
            .iter()
            .filter_map(|d| match d {
                Delivery::Event(e) => Some(e.recorded_at),
                Delivery::Undecodable { .. } => None,
            })
            .max();
        self.feed.commit().await?;
        let name = self.projection.name();
        metrics::counter!("tessera_projector_events_total", "projection" => name)
            .increment(events as u64);
        metrics::counter!("tessera_dead_letters_total", "projection" => name)
            .increment(dead_lettered as u64);
        if let Some(newest) = newest {
            let lag = (chrono::Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!("tessera_projector_lag_seconds", "projection" => name).set(lag);
        }
        self.pending = None;
        self.handled += events as u64;
        self.save_status().await?;
        Ok(Step::Processed {
            events,
            dead_lettered,
        })
    }

    /// Records the highest log position this projection has applied. With
    /// several instances (each on its own partitions) the document keeps
    /// the highest any of them reached, so a quiet instance behind an idle
    /// partition does not show a lag that is not there.
    async fn save_status(&mut self) -> Result<(), StoreError> {
        let Some(at) = self.feed.position() else {
            return Ok(());
        };
        let name = self.projection.name();
        for _ in 0..5 {
            let current = self.docs.get(collections::PROJECTIONS, name).await?;
            let stored = current
                .as_ref()
                .and_then(|d| serde_json::from_value::<ProjectionStatus>(d.body.clone()).ok());
            let highest = stored
                .as_ref()
                .map(|s| LogPosition {
                    tx_id: s.tx_id,
                    position: s.position,
                })
                .filter(|s| s.position > at.position)
                .unwrap_or(at);
            let status = ProjectionStatus {
                name: name.to_owned(),
                collection: name.to_owned(),
                tx_id: highest.tx_id,
                position: highest.position,
                events: stored.map_or(0, |s| s.events) + self.unsaved_events(),
                updated_at: chrono::Utc::now(),
            };
            let body = serde_json::to_value(&status).map_err(StoreError::from_display)?;
            let written = self
                .docs
                .write(
                    collections::PROJECTIONS,
                    vec![Write::Put {
                        id: name.to_owned(),
                        expected_rev: current.map(|d| d.rev),
                        body,
                    }],
                )
                .await?;
            if matches!(written.first(), Some(Written::Ok(_))) {
                self.saved_events = self.handled;
                return Ok(());
            }
        }
        // another instance kept winning; its position is at least as fresh
        Ok(())
    }

    fn unsaved_events(&self) -> u64 {
        self.handled - self.saved_events
    }

    async fn fold_into(
        &self,
        collection: &str,
        batch: &[Delivery],
    ) -> Result<usize, ProjectorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match fold_batch(
                &*self.projection,
                &*self.docs,
                collection,
                &self.policy,
                batch,
            )
            .await?
            {
                Some(dead) => return Ok(dead),
                None if attempt >= 10 => return Err(ProjectorError::Contended(attempt)),
                None => tokio::time::sleep(self.policy.delay(attempt)).await,
            }
        }
    }

    /// Runs until `shutdown`; the batch in hand is finished and committed
    /// first. Failures of the store or the feed are logged and retried.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // alive is about the process, not the batch: a rebuild waits for
        // every instance that beats, and one in a long batch must count
        let heart = tokio::spawn({
            let (docs, name, instance, acked) = (
                Arc::clone(&self.docs),
                self.projection.name(),
                self.instance.clone(),
                Arc::clone(&self.acked_epoch),
            );
            let shutdown = shutdown.clone();
            async move {
                let mut every = tokio::time::interval(BEAT_EVERY);
                while !shutdown.is_cancelled() {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        _ = every.tick() => {
                            if let Err(error) = beat(&*docs, name, &instance, &acked).await {
                                tracing::warn!(projection = name, %error, "heartbeat failed");
                            }
                        }
                    }
                }
            }
        });
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            match self.project_next().await {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(projection = self.name(), %error, failures, "projection step failed, retrying");
                    let pause = self
                        .policy
                        .delay(failures.min(8))
                        .max(Duration::from_millis(100));
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        heart.abort();
        tracing::info!(projection = self.name(), "projector stopped");
    }

    pub fn position(&self) -> Option<LogPosition> {
        self.feed.position()
    }
}

async fn beat(
    docs: &dyn DocumentStore,
    projection: &str,
    instance: &str,
    acked_epoch: &std::sync::atomic::AtomicU64,
) -> Result<(), StoreError> {
    let me = routes::Instance {
        projection: projection.to_owned(),
        instance: instance.to_owned(),
        heartbeat_at: chrono::Utc::now(),
        acked_epoch: acked_epoch.load(std::sync::atomic::Ordering::SeqCst),
    };
    routes::beat(docs, &me).await
}

/// Declares the indexes a projection (its live collection), the dead
/// letters and the instance registry need.
pub async fn prepare(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
) -> Result<(), StoreError> {
    let live = routes::live(docs, projection.name()).await?;
    docs.ensure_indexes(&live, projection.indexes()).await?;
    docs.ensure_indexes(collections::DEAD_LETTERS, &["pending_for"])
        .await?;
    docs.ensure_indexes(routes::INSTANCES, &["projection"])
        .await
}

#[derive(Debug)]
struct Slot {
    doc: Option<Value>,
    rev: Option<u64>,
    dirty: bool,
}

/// The documents of one batch, read once and written once.
pub(crate) struct Work<'a> {
    projection: &'a dyn Projection,
    docs: &'a dyn DocumentStore,
    collection: &'a str,
    cache: HashMap<String, Slot>,
}

/// `Ok(None)`: a write conflicted; fold the batch again.
type Flushed = Option<()>;

impl<'a> Work<'a> {
    pub(crate) fn new(
        projection: &'a dyn Projection,
        docs: &'a dyn DocumentStore,
        collection: &'a str,
    ) -> Self {
        Self {
            projection,
            docs,
            collection,
            cache: HashMap::new(),
        }
    }

    fn collection(&self) -> &'a str {
        self.collection
    }

    async fn load(&mut self, ids: &[String]) -> Result<(), StoreError> {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !self.cache.contains_key(*id))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut found: HashMap<String, StoredDoc> = self
            .docs
            .get_many(self.collection(), &missing)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        for id in missing {
            let slot = match found.remove(&id) {
                Some(d) => Slot {
                    doc: Some(d.body),
                    rev: Some(d.rev),
                    dirty: false,
                },
                None => Slot {
                    doc: None,
                    rev: None,
                    dirty: false,
                },
            };
            self.cache.insert(id, slot);
        }
        Ok(())
    }

    async fn resolve(&mut self, targets: Targets) -> Result<Option<Vec<String>>, StoreError> {
        Ok(match targets {
            Targets::None => Some(Vec::new()),
            Targets::Ids(ids) => Some(ids),
            Targets::Where { field, value } => {
                // the index must see this batch's earlier changes
                if self.flush().await?.is_none() {
                    return Ok(None);
                }
                Some(self.docs.find_ids(self.collection(), field, &value).await?)
            }
        })
    }

    /// Folds one event into its documents without changing the cache.
    fn fold(
        &self,
        ids: &[String],
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Result<Vec<(String, Outcome<Value>)>, FoldError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let doc = self.cache.get(id).and_then(|s| s.doc.as_ref());
            out.push((id.clone(), self.projection.apply(doc, envelope, event)?));
        }
        Ok(out)
    }

    fn keep(&mut self, changes: Vec<(String, Outcome<Value>)>) {
        for (id, outcome) in changes {
            let slot = self.cache.entry(id).or_insert(Slot {
                doc: None,
                rev: None,
                dirty: false,
            });
            match outcome {
                Outcome::Unchanged => {}
                Outcome::Put(doc) => {
                    slot.doc = Some(doc);
                    slot.dirty = true;
                }
                Outcome::Delete => {
                    slot.doc = None;
                    slot.dirty = true;
                }
            }
        }
    }

    fn forget(&mut self, ids: &[String]) {
        for id in ids {
            if self.cache.get(id).is_some_and(|s| !s.dirty) {
                self.cache.remove(id);
            }
        }
    }

    async fn flush(&mut self) -> Result<Flushed, StoreError> {
        let mut ids = Vec::new();
        let mut writes = Vec::new();
        for (id, slot) in &self.cache {
            if !slot.dirty {
                continue;
            }
            let write = match (&slot.doc, slot.rev) {
                (Some(body), expected_rev) => Write::Put {
                    id: id.clone(),
                    expected_rev,
                    body: body.clone(),
                },
                (None, Some(expected_rev)) => Write::Delete {
                    id: id.clone(),
                    expected_rev,
                },
                (None, None) => continue, // created and deleted within the batch
            };
            ids.push(id.clone());
            writes.push(write);
        }
        if writes.is_empty() {
            return Ok(Some(()));
        }
        let results = self.docs.write(self.collection(), writes).await?;
        let mut conflicted = false;
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Written::Ok(rev) => {
                    if let Some(slot) = self.cache.get_mut(&id) {
                        slot.dirty = false;
                        slot.rev = slot.doc.is_some().then_some(rev);
                    }
                }
                Written::Conflict => {
                    conflicted = true;
                    self.cache.remove(&id);
                }
            }
        }
        Ok((!conflicted).then_some(()))
    }
}

/// Folds a batch into the store. `Ok(Some(n))`: done, `n` events were
/// dead-lettered; `Ok(None)`: a document changed under us, fold again.
/// Whether pending dead letters hold back later events of their aggregate
/// (live projection), or every event is folded afresh (a rebuild from the
/// log, which has no gaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parking {
    BehindDeadLetters,
    Never,
}

pub(crate) async fn fold_batch(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    collection: &str,
    policy: &RetryPolicy,
    batch: &[Delivery],
) -> Result<Option<usize>, StoreError> {
    fold_batch_with(
        projection,
        docs,
        collection,
        policy,
        batch,
        Parking::BehindDeadLetters,
    )
    .await
}

pub(crate) async fn fold_batch_with(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    collection: &str,
    policy: &RetryPolicy,
    batch: &[Delivery],
    parking: Parking,
) -> Result<Option<usize>, StoreError> {
    let name = projection.name();
    let mut blocked: HashSet<String> = match parking {
        Parking::Never => HashSet::new(),
        Parking::BehindDeadLetters => docs
            .find_ids(collections::DEAD_LETTERS, "pending_for", name)
            .await?
            .iter()
            .filter_map(|id| dead_letter_aggregate(name, id).map(str::to_owned))
            .collect(),
    };
    let prepared = decode_batch(projection, batch);
    let mut work = Work::new(projection, docs, collection);
    // Every document the batch names by id, read in one go: a batch spread
    // over thousands of aggregates (a rebuild) otherwise pays a store round
    // trip per event, which is where its time went.
    work.load(&prefetch(projection, &prepared)).await?;
    let mut dead = 0;
    for (delivery, prepared) in batch.iter().zip(prepared) {
        let original = match delivery {
            Delivery::Event(e) => e,
            Delivery::Undecodable { source, raw, error } => {
                dead_letter_raw(projection, docs, source, raw, error).await?;
                dead += 1;
                continue;
            }
        };
        let Some(Prepared { envelope, event }) = prepared else {
            continue; // another projection's aggregate type
        };
        let aggregate = format!("{}:{}", envelope.aggregate_type, envelope.aggregate_id);
        if blocked.contains(&aggregate) {
            let reason = "waiting behind an earlier dead letter of this aggregate";
            dead_letter(projection, docs, original, reason, 0).await?;
            dead += 1;
            continue;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (ids, result) = match &event {
                Err(e) => (Vec::new(), Err(FoldError::Undecodable(e.clone()))),
                Ok(event) => {
                    let Some(ids) = work.resolve(projection.targets(&envelope, event)).await?
                    else {
                        return Ok(None);
                    };
                    work.load(&ids).await?;
                    let result = work.fold(&ids, &envelope, event);
                    (ids, result)
                }
            };
            match result {
                Ok(changes) => {
                    work.keep(changes);
                    break;
                }
                Err(error) if attempt < policy.attempts => {
                    tracing::warn!(projection = name, aggregate = %aggregate, sequence = envelope.sequence, attempt, %error, "fold failed, retrying");
                    if work.flush().await?.is_none() {
                        return Ok(None);
                    }
                    tokio::time::sleep(policy.delay(attempt)).await;
                    work.forget(&ids); // read them again: another writer may have moved them
                }
                Err(error) => {
                    tracing::error!(projection = name, aggregate = %aggregate, sequence = envelope.sequence, attempt, %error, "event dead-lettered");
                    dead_letter(projection, docs, &envelope, &error.to_string(), attempt).await?;
                    blocked.insert(aggregate);
                    dead += 1;
                    break;
                }
            }
        }
    }
    Ok(work.flush().await?.map(|()| dead))
}

/// An event of a batch that the projection folds, upcast and decoded once.
struct Prepared {
    envelope: Envelope,
    event: Result<DomainEvent, String>,
}

/// The batch's events of the projection's aggregate types, in batch order
/// (`None` for the rest).
fn decode_batch(projection: &dyn Projection, batch: &[Delivery]) -> Vec<Option<Prepared>> {
    batch
        .iter()
        .map(|delivery| match delivery {
            Delivery::Event(e)
                if projection
                    .aggregate_types()
                    .contains(&e.aggregate_type.as_str()) =>
            {
                let mut envelope = e.clone();
                upcast(&mut envelope, UPCASTERS);
                let event = DomainEvent::decode(&envelope).map_err(|e| e.to_string());
                Some(Prepared { envelope, event })
            }
            _ => None,
        })
        .collect()
}

/// The ids of the documents the prepared events target by id, each once.
fn prefetch(projection: &dyn Projection, prepared: &[Option<Prepared>]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for p in prepared.iter().flatten() {
        let Ok(event) = &p.event else { continue };
        if let Targets::Ids(targets) = projection.targets(&p.envelope, event) {
            for id in targets {
                if seen.insert(id.clone()) {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

/// How refolding one aggregate's documents went.
#[derive(Debug)]
pub(crate) enum Refolded {
    /// These documents now hold exactly what the events make.
    Done { documents: usize },
    /// A document changed while folding (a live projector wrote it); read
    /// the events again and retry.
    Raced,
    /// The projection refuses one of the events; nothing was written.
    Refused { sequence: u64, error: FoldError },
}

/// Folds one aggregate's whole history (`envelopes`, in sequence order) from
/// nothing and puts the result over the documents it targets, each write
/// conditional on the revision read first. Live projectors keep running: if
/// one writes meanwhile the write conflicts and the caller retries with the
/// events read again, and the events a live projector applies after this
/// are duplicates it skips.
pub(crate) async fn refold(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    collection: &str,
    envelopes: &[Envelope],
) -> Result<Refolded, StoreError> {
    let mut decoded = Vec::with_capacity(envelopes.len());
    let mut ids = HashSet::new();
    for envelope in envelopes {
        let mut envelope = envelope.clone();
        upcast(&mut envelope, UPCASTERS);
        let event = match DomainEvent::decode(&envelope) {
            Ok(event) => event,
            Err(e) => {
                return Ok(Refolded::Refused {
                    sequence: envelope.sequence,
                    error: FoldError::Undecodable(e.to_string()),
                })
            }
        };
        if let Targets::Ids(targets) = projection.targets(&envelope, &event) {
            ids.extend(targets.iter().cloned());
            decoded.push((envelope, event, targets));
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let mut work = Work::new(projection, docs, collection);
    for id in &ids {
        work.cache.insert(
            id.clone(),
            Slot {
                doc: None,
                rev: None,
                dirty: false,
            },
        );
    }
    // what is there now is replaced (or deleted), but only at the revision read
    for existing in docs.get_many(collection, &ids).await? {
        work.cache.insert(
            existing.id,
            Slot {
                doc: None,
                rev: Some(existing.rev),
                dirty: true,
            },
        );
    }
    for (envelope, event, targets) in &decoded {
        match work.fold(targets, envelope, event) {
            Ok(changes) => work.keep(changes),
            Err(error) => {
                return Ok(Refolded::Refused {
                    sequence: envelope.sequence,
                    error,
                });
            }
        }
    }
    Ok(match work.flush().await? {
        Some(()) => Refolded::Done {
            documents: ids.len(),
        },
        None => Refolded::Raced,
    })
}

/// Folds one event into `collection`, outside any batch (a dead letter being
/// retried). `Ok(Err(_))`: the fold still refuses it.
pub(crate) async fn apply_one(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    collection: &str,
    envelope: &Envelope,
) -> Result<Result<(), FoldError>, StoreError> {
    let mut envelope = envelope.clone();
    upcast(&mut envelope, UPCASTERS);
    let event = match DomainEvent::decode(&envelope) {
        Ok(event) => event,
        Err(e) => return Ok(Err(FoldError::Undecodable(e.to_string()))),
    };
    for _ in 0..10 {
        let mut work = Work::new(projection, docs, collection);
        let Some(ids) = work.resolve(projection.targets(&envelope, &event)).await? else {
            continue;
        };
        work.load(&ids).await?;
        match work.fold(&ids, &envelope, &event) {
            Ok(changes) => work.keep(changes),
            Err(e) => return Ok(Err(e)),
        }
        if work.flush().await?.is_some() {
            return Ok(Ok(()));
        }
    }
    Err(StoreError(
        "documents kept changing while applying a dead letter".into(),
    ))
}

async fn dead_letter(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    envelope: &Envelope,
    error: &str,
    attempts: u32,
) -> Result<(), StoreError> {
    let name = projection.name();
    let letter = DeadLetterDoc {
        projection: name.to_owned(),
        aggregate_type: envelope.aggregate_type.clone(),
        aggregate_id: envelope.aggregate_id.clone(),
        sequence: envelope.sequence,
        global_position: envelope.global_position,
        envelope: Some(envelope.clone()),
        raw: None,
        error: error.to_owned(),
        attempts,
        pending_for: Some(name.to_owned()),
        created_at: chrono::Utc::now(),
        resolution: None,
        resolved_at: None,
    };
    let id = dead_letter_id(
        name,
        &envelope.aggregate_type,
        &envelope.aggregate_id,
        envelope.sequence,
    );
    store_letter(docs, id, &letter).await
}

async fn dead_letter_raw(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    source: &str,
    raw: &str,
    error: &str,
) -> Result<(), StoreError> {
    let name = projection.name();
    let letter = DeadLetterDoc {
        projection: name.to_owned(),
        aggregate_type: String::new(),
        aggregate_id: String::new(),
        sequence: 0,
        global_position: 0,
        envelope: None,
        raw: Some(raw.to_owned()),
        error: format!("not an event envelope: {error}"),
        attempts: 1,
        // nothing can be ordered behind bytes without an aggregate
        pending_for: None,
        created_at: chrono::Utc::now(),
        resolution: None,
        resolved_at: None,
    };
    store_letter(docs, format!("{name}:raw:{source}"), &letter).await
}

async fn store_letter(
    docs: &dyn DocumentStore,
    id: String,
    letter: &DeadLetterDoc,
) -> Result<(), StoreError> {
    let body = serde_json::to_value(letter).map_err(StoreError::from_display)?;
    // an existing letter for the same event (a batch folded again) is kept
    docs.write(
        collections::DEAD_LETTERS,
        vec![Write::Put {
            id,
            expected_rev: None,
            body,
        }],
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let p = RetryPolicy::default();
        assert!(p.delay(1) <= Duration::from_millis(25));
        assert!(p.delay(3) <= Duration::from_millis(100));
        assert!(p.delay(30) <= Duration::from_secs(1));
        assert!(p.delay(3) >= Duration::from_millis(50));
    }
}
