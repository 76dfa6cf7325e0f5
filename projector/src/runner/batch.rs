//! Folding one batch: decode each event once, read every document the batch
//! names in one go, fold each event into its documents in order, write each
//! changed document once.
//!
//! The document store is the slow part, so several events of one document
//! become one write. Writes are compare-and-set; if another instance changed
//! a document under us the batch is folded again (folds are idempotent, so
//! what was written is skipped as duplicate).
//!
//! An event whose fold fails is retried with backoff (a gap can close if
//! another instance is still writing the event before it), then
//! dead-lettered with the reason; later events of that aggregate are parked
//! behind it, and every other aggregate carries on.

use std::collections::HashSet;

use tessera_events::{upcast, DomainEvent, Envelope, UPCASTERS};
use tessera_runtime::trace;

use super::letters::{dead_letter, dead_letter_raw};
use super::work::{Resolved, Work};
use super::RetryPolicy;
use crate::feed::Delivery;
use crate::projection::{FoldError, Projection, Targets};
use tessera_documents::changes::Change;
use tessera_documents::documents::{collections, dead_letter_aggregate};
use tessera_documents::store::{DocumentStore, StoreError};

/// How folding a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// Every event is in the documents or dead-lettered (this many).
    Done {
        dead_lettered: usize,
        /// The documents written, for the live streams.
        written: Vec<Change>,
    },
    /// A document changed under the batch: fold it again. What this
    /// attempt did write is announced with the attempt that succeeds (that
    /// one finds those documents applied already and writes them no more).
    Raced { written: Vec<Change> },
}

/// Whether pending dead letters hold back later events of their aggregate
/// (live projection), or every event is folded afresh (a rebuild from the
/// log, which has no gaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    BehindDeadLetters,
    Never,
}

/// An event of a batch that the projection folds, upcast and decoded once.
struct Prepared {
    envelope: Envelope,
    event: Result<DomainEvent, String>,
}

/// Folds a batch into `collection`.
pub async fn fold_batch(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    collection: &str,
    policy: &RetryPolicy,
    batch: &[Delivery],
    parking: Parking,
) -> Result<Folded, StoreError> {
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
        // the command's trace goes on through this projection (a span for
        // the exporter, from here to the end of the event's fold)
        let traceparent = envelope.metadata.traceparent.as_deref();
        let _project = traceparent
            .filter(|_| trace::exporting())
            .map(|traceparent| {
                tracing::info_span!(
                    "project",
                    "otel.kind" = "consumer",
                    traceparent,
                    projection = name,
                    "event.type" = envelope.event_type.as_str(),
                )
            });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (ids, result) = match &event {
                Err(e) => (Vec::new(), Err(FoldError::Undecodable(e.clone()))),
                Ok(event) => {
                    let Resolved::Ids(ids) =
                        work.resolve(projection.targets(&envelope, event)).await?
                    else {
                        return Ok(Folded::Raced {
                            written: std::mem::take(&mut work.written),
                        });
                    };
                    work.load(&ids).await?;
                    let result = work.fold(&ids, &envelope, event);
                    (ids, result)
                }
            };
            match result {
                Ok(changes) => {
                    work.keep(changes, &envelope);
                    break;
                }
                Err(error) if attempt < policy.attempts => {
                    tracing::warn!(projection = name, aggregate = %aggregate, sequence = envelope.sequence, attempt, %error, "fold failed, retrying");
                    if work.flush().await?.raced() {
                        return Ok(Folded::Raced {
                            written: std::mem::take(&mut work.written),
                        });
                    }
                    tokio::time::sleep(policy.backoff.delay(attempt)).await;
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
    Ok(if work.flush().await?.raced() {
        Folded::Raced {
            written: work.written,
        }
    } else {
        Folded::Done {
            dead_lettered: dead,
            written: work.written,
        }
    })
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
