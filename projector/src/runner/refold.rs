//! Folding one aggregate's documents again from its whole history (replay),
//! and one event outside any batch (a dead letter being retried).

use std::collections::HashSet;

use tessera_events::{upcast, DomainEvent, Envelope, UPCASTERS};

use super::work::{Resolved, Slot, Work};
use crate::projection::{FoldError, Projection, Targets};
use tessera_documents::store::{DocumentStore, StoreError};

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

fn decode(envelope: &Envelope) -> Result<(Envelope, DomainEvent), FoldError> {
    let mut envelope = envelope.clone();
    upcast(&mut envelope, UPCASTERS);
    let event =
        DomainEvent::decode(&envelope).map_err(|e| FoldError::Undecodable(e.to_string()))?;
    Ok((envelope, event))
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
        let (envelope, event) = match decode(envelope) {
            Ok(d) => d,
            Err(error) => {
                return Ok(Refolded::Refused {
                    sequence: envelope.sequence,
                    error,
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
        work.cache.insert(id.clone(), Slot::absent());
    }
    // what is there now is replaced (or deleted), but only at the revision read
    for existing in docs.get_many(collection, &ids).await? {
        work.cache.insert(
            existing.id,
            Slot {
                doc: None,
                rev: Some(existing.rev),
                dirty: true,
                trace_id: None,
            },
        );
    }
    for (envelope, event, targets) in &decoded {
        match work.fold(targets, envelope, event) {
            Ok(changes) => work.keep(changes, envelope),
            Err(error) => {
                return Ok(Refolded::Refused {
                    sequence: envelope.sequence,
                    error,
                });
            }
        }
    }
    Ok(if work.flush().await?.raced() {
        Refolded::Raced
    } else {
        Refolded::Done {
            documents: ids.len(),
        }
    })
}

/// How applying one event went.
#[derive(Debug)]
pub(crate) enum Applied {
    Done,
    /// The fold still refuses it.
    Refused(FoldError),
}

/// Folds one event into `collection`, outside any batch (a dead letter being
/// retried).
pub(crate) async fn apply_one(
    projection: &dyn Projection,
    docs: &dyn DocumentStore,
    collection: &str,
    envelope: &Envelope,
) -> Result<Applied, StoreError> {
    let (envelope, event) = match decode(envelope) {
        Ok(d) => d,
        Err(e) => return Ok(Applied::Refused(e)),
    };
    for _ in 0..super::CONTENDED_ATTEMPTS {
        let mut work = Work::new(projection, docs, collection);
        let Resolved::Ids(ids) = work.resolve(projection.targets(&envelope, &event)).await? else {
            continue;
        };
        work.load(&ids).await?;
        match work.fold(&ids, &envelope, &event) {
            Ok(changes) => work.keep(changes, &envelope),
            Err(e) => return Ok(Applied::Refused(e)),
        }
        if !work.flush().await?.raced() {
            return Ok(Applied::Done);
        }
    }
    Err(StoreError::contended("applying a dead letter"))
}
