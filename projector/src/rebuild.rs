//! Rebuilding a projection from the event log without downtime, and
//! replaying one aggregate's documents.
//!
//! A rebuild folds the whole log, in commit order, into a new collection
//! while readers keep reading the live one and live projectors keep writing
//! it; then it switches (see [`crate::routes`] for the handshake) and drops
//! the old collection once readers have moved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use tessera_events::{EventLog, LogFilter, LogPosition};

use crate::feed::Delivery;
use crate::projection::Projection;
use crate::runner::{
    fold_batch, refold, Folded, Parking, Refolded, RetryPolicy, CONTENDED_ATTEMPTS,
};
use tessera_documents::live;
use tessera_documents::store::{DocumentStore, StoreError};

/// Reports how far a long operation got.
pub trait Progress: Send + Sync {
    /// `done` of about `total` events.
    fn update(&self, done: u64, total: u64);
    fn message(&self, text: &str);
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn update(&self, _: u64, _: u64) {}
    fn message(&self, _: &str) {}
}

#[derive(Debug, Clone)]
pub struct RebuildConfig {
    /// Events read from the log per batch.
    pub batch: usize,
    /// Freeze once the new collection is this close to the head.
    pub freeze_within: i64,
    /// Instances that beat within this long must acknowledge a freeze.
    pub alive_within: chrono::Duration,
    /// How long to wait for those acknowledgements. An instance that does
    /// not pause by then (stuck, or dead with a fresh heartbeat) is switched
    /// without: a batch it was writing notices the switch and folds itself
    /// again into the new collection before its offsets move.
    pub ack_timeout: Duration,
    /// How long readers may keep the old collection after the switch.
    pub drop_delay: Duration,
}

impl Default for RebuildConfig {
    fn default() -> Self {
        Self {
            batch: 5_000,
            freeze_within: 1_000,
            alive_within: chrono::Duration::seconds(15),
            ack_timeout: Duration::from_secs(10),
            drop_delay: live::READER_TTL * 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: String,
    pub from: String,
    pub to: String,
    pub events: u64,
    /// From the start to the switch.
    pub seconds: f64,
    pub events_per_second: f64,
    pub dead_lettered: u64,
    /// How long the live projectors were paused for the switch.
    pub frozen_ms: u128,
    /// Live instances that did not pause within the timeout.
    pub unacknowledged: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event log: {0}")]
    Log(String),
    #[error("a rebuild of {0} is already filling {1}")]
    Busy(String, String),
    #[error("the route of {0} changed under the rebuild; try again")]
    Raced(String),
}

fn log_err(e: impl std::fmt::Display) -> RebuildError {
    RebuildError::Log(e.to_string())
}

/// Catch-up passes before a rebuild freezes the live projectors anyway.
const MAX_PASSES: u32 = 3;

/// Folds the log into one collection, counting what it did.
struct Filler<'a> {
    projection: &'a dyn Projection,
    docs: &'a dyn DocumentStore,
    log: &'a dyn EventLog,
    collection: &'a str,
    batch: usize,
    progress: &'a dyn Progress,
    events: u64,
    dead_lettered: u64,
}

impl Filler<'_> {
    /// Folds events after `from` up to `target`, a head read earlier: a
    /// fixed goal, so a log that grows faster than the fold cannot keep
    /// it running. Returns the new position.
    async fn run(
        &mut self,
        mut from: LogPosition,
        target: LogPosition,
    ) -> Result<LogPosition, RebuildError> {
        let policy = RetryPolicy::default();
        loop {
            if from >= target {
                return Ok(from);
            }
            let records = self
                .log
                .read_after(from, self.batch)
                .await
                .map_err(log_err)?;
            let Some(last) = records.last().map(|r| r.at) else {
                return Ok(from);
            };
            let deliveries: Vec<Delivery> = records
                .into_iter()
                .map(|r| Delivery::Event(r.envelope))
                .collect();
            let mut attempt = 0;
            let dead = loop {
                attempt += 1;
                let folded = fold_batch(
                    self.projection,
                    self.docs,
                    self.collection,
                    &policy,
                    &deliveries,
                    Parking::Never,
                )
                .await?;
                match folded {
                    Folded::Done { dead_lettered, .. } => break dead_lettered,
                    Folded::Raced { .. } if attempt >= CONTENDED_ATTEMPTS => {
                        return Err(RebuildError::Raced(self.projection.name().to_owned()))
                    }
                    Folded::Raced { .. } => tokio::time::sleep(policy.backoff.delay(attempt)).await,
                }
            };
            self.events += deliveries.len() as u64;
            self.dead_lettered += dead as u64;
            from = last;
            let total = u64::try_from(target.position).unwrap_or(0).max(self.events);
            self.progress.update(self.events, total);
        }
    }
}

/// Rebuilds one projection from the log into a new collection and switches
/// readers and live projectors to it. The old collection (`from` in the
/// report) stays until [`retire`] drops it, once readers have moved.
pub async fn rebuild(
    projection: Arc<dyn Projection>,
    docs: Arc<dyn DocumentStore>,
    log: Arc<dyn EventLog>,
    config: &RebuildConfig,
    progress: &dyn Progress,
) -> Result<RebuildReport, RebuildError> {
    let name = projection.name();
    let started = Instant::now();
    let (mut route, rev) = live::load(&*docs, name).await?;
    if let Some(building) = &route.building {
        return Err(RebuildError::Busy(name.into(), building.clone()));
    }
    let from = route.live.clone();
    let target = format!("{name}__{}", Utc::now().format("%Y%m%d%H%M%S%3f"));
    docs.drop_collection(&target).await?;
    docs.ensure_indexes(&target, projection.indexes()).await?;
    route.building = Some(target.clone());
    if !live::save(&*docs, &route, rev).await? {
        return Err(RebuildError::Raced(name.into()));
    }

    let mut filler = Filler {
        projection: &*projection,
        docs: &*docs,
        log: &*log,
        collection: &target,
        batch: config.batch,
        progress,
        events: 0,
        dead_lettered: 0,
    };
    let outcome = fill_and_switch(&mut filler, config).await;
    let counted = (filler.events, filler.dead_lettered);
    let (frozen_ms, unacknowledged) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // leave the live collection as it was
            if let Ok((mut route, rev)) = live::load(&*docs, name).await {
                route.building = None;
                route.freeze = false;
                let _ = live::save(&*docs, &route, rev).await;
            }
            let _ = docs.drop_collection(&target).await;
            return Err(e);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    progress.message(&format!("switched {name} to {target}"));
    Ok(RebuildReport {
        projection: name.into(),
        from,
        to: target,
        events: counted.0,
        seconds,
        events_per_second: counted.0 as f64 / seconds.max(f64::EPSILON),
        dead_lettered: counted.1,
        frozen_ms,
        unacknowledged,
    })
}

/// Fills, freezes, switches: how long the freeze lasted, and which live
/// instances did not acknowledge it.
async fn fill_and_switch(
    filler: &mut Filler<'_>,
    config: &RebuildConfig,
) -> Result<(u128, Vec<String>), RebuildError> {
    let docs = filler.docs;
    let name = filler.projection.name();
    // 1. the bulk, while everything runs: passes up to the head as it was
    // when each began, until close enough to freeze (or the log grows as
    // fast as the fold: then the freeze waits for one more pass at most)
    let mut at = LogPosition::START;
    let mut head = filler.log.head().await.map_err(log_err)?;
    for pass in 1.. {
        at = filler.run(at, head).await?;
        // also the goal of the next pass
        head = filler.log.head().await.map_err(log_err)?;
        if head.position - at.position <= config.freeze_within || pass >= MAX_PASSES {
            break;
        }
    }

    // 2. freeze the live projectors
    let (mut route, rev) = live::load(docs, name).await?;
    route.freeze = true;
    route.epoch += 1;
    let epoch = route.epoch;
    if !live::save(docs, &route, rev).await? {
        return Err(RebuildError::Raced(name.into()));
    }
    let frozen = Instant::now();
    filler
        .progress
        .message(&format!("pausing live {name} projectors for the switch"));
    let deadline = Instant::now() + config.ack_timeout;
    let unacknowledged = loop {
        let alive = live::alive(docs, name, config.alive_within).await?;
        let waiting: Vec<String> = alive
            .into_iter()
            .filter(|i| i.acked_epoch < epoch)
            .map(|i| i.instance)
            .collect();
        if waiting.is_empty() {
            break waiting;
        }
        if Instant::now() >= deadline {
            filler.progress.message(&format!(
                "{} live {name} instance(s) did not pause within {:?} (stuck or dead): switching without them; a batch they were writing is folded again into the new collection",
                waiting.len(),
                config.ack_timeout
            ));
            break waiting;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // 3. the rest, up to the head as of the acknowledgements: no frozen
    // projector applied anything after it, and what arrives later the live
    // projectors apply to the new collection once it is switched in
    // (sequence checks skip what the fill already applied)
    let head = filler.log.head().await.map_err(log_err)?;
    filler.run(at, head).await?;

    // 4. switch and resume
    let (mut route, rev) = live::load(docs, name).await?;
    route.live = filler.collection.to_owned();
    route.building = None;
    route.freeze = false;
    if !live::save(docs, &route, rev).await? {
        return Err(RebuildError::Raced(name.into()));
    }
    Ok((frozen.elapsed().as_millis(), unacknowledged))
}

/// Drops collections that rebuilds switched away from, after giving readers
/// that still resolve the old route ([`live::READER_TTL`]) time to move.
/// One wait serves any number of rebuilds.
pub async fn retire(
    docs: &dyn DocumentStore,
    reports: &[RebuildReport],
    config: &RebuildConfig,
) -> Result<(), RebuildError> {
    let old: Vec<&str> = reports
        .iter()
        .filter(|r| r.from != r.to)
        .map(|r| r.from.as_str())
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    tokio::time::sleep(config.drop_delay).await;
    for collection in old {
        docs.drop_collection(collection).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub projection: String,
    pub documents: usize,
    pub events: usize,
    /// Why the projection was left alone, if it was.
    pub skipped: Option<String>,
}

/// All events of one aggregate, in sequence order.
pub async fn history(
    log: &dyn EventLog,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<tessera_events::Envelope>, RebuildError> {
    let filter = LogFilter {
        aggregate_type: Some(aggregate_type.to_owned()),
        aggregate_id: Some(aggregate_id.to_owned()),
        ..LogFilter::default()
    };
    let mut envelopes = Vec::new();
    let mut after = 0;
    loop {
        let page = log
            .read_filtered(after, 5_000, &filter)
            .await
            .map_err(log_err)?;
        let Some(last) = page.last() else { break };
        after = last.envelope.global_position;
        envelopes.extend(page.into_iter().map(|r| r.envelope));
    }
    envelopes.sort_by_key(|e| e.sequence);
    Ok(envelopes)
}

/// Rebuilds, in every projection that reads this aggregate type, the
/// documents one aggregate's events make, while live projectors run (see
/// [`refold`]). Projections whose documents combine several aggregates are
/// left alone: a full rebuild redoes them.
pub async fn replay(
    projections: &[Arc<dyn Projection>],
    docs: &dyn DocumentStore,
    log: &dyn EventLog,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<ReplayReport>, RebuildError> {
    let mut reports = Vec::new();
    for p in projections
        .iter()
        .filter(|p| p.aggregate_types().contains(&aggregate_type))
    {
        let mut report = ReplayReport {
            projection: p.name().into(),
            documents: 0,
            events: 0,
            skipped: None,
        };
        if !p.single_source() {
            report.skipped =
                Some("its documents combine several aggregates; rebuild it instead".into());
            reports.push(report);
            continue;
        }
        let policy = RetryPolicy::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let collection = live::live(docs, p.name()).await?;
            let envelopes = history(log, aggregate_type, aggregate_id).await?;
            report.events = envelopes.len();
            match refold(&**p, docs, &collection, &envelopes).await? {
                Refolded::Done { documents } => {
                    report.documents = documents;
                    break;
                }
                Refolded::Refused { sequence, error } => {
                    report.skipped = Some(format!(
                        "event #{sequence} is refused ({error}); nothing was changed"
                    ));
                    break;
                }
                Refolded::Raced if attempt >= CONTENDED_ATTEMPTS => {
                    return Err(RebuildError::Raced(p.name().to_owned()))
                }
                Refolded::Raced => tokio::time::sleep(policy.backoff.delay(attempt)).await,
            }
        }
        reports.push(report);
    }
    Ok(reports)
}
