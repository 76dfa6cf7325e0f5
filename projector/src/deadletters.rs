//! Operating the dead letters: list, retry, discard.
//!
//! Retrying keeps per-aggregate order: the letters of one aggregate in one
//! projection are retried from the earliest sequence up, and the first one
//! that still fails stops the rest (they stay parked behind it, as do new
//! events of that aggregate).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use tessera_events::EventLog;

use crate::projection::{FoldError, Projection};
use crate::runner::{apply_one, Applied};
use tessera_documents::documents::{collections, DeadLetterDoc};
use tessera_documents::live;
use tessera_documents::store::{DocumentStore, StoreError, StoredDoc, Write};

/// A pending dead letter and its id.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    pub id: String,
    #[serde(skip)]
    pub rev: u64,
    #[serde(flatten)]
    pub doc: DeadLetterDoc,
}

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

fn letter(d: StoredDoc) -> Result<Letter, StoreError> {
    Ok(Letter {
        id: d.id,
        rev: d.rev,
        doc: serde_json::from_value(d.body).map_err(err)?,
    })
}

/// Pending letters of `projection` (or of every projection), by
/// projection, aggregate and sequence.
pub async fn pending(
    docs: &dyn DocumentStore,
    projections: &[Arc<dyn Projection>],
    only: Option<&str>,
) -> Result<Vec<Letter>, StoreError> {
    let mut out = Vec::new();
    for p in projections
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.name()))
    {
        let ids = docs
            .find_ids(collections::DEAD_LETTERS, "pending_for", p.name())
            .await?;
        for d in docs.get_many(collections::DEAD_LETTERS, &ids).await? {
            out.push(letter(d)?);
        }
    }
    out.sort_by(|a, b| {
        (
            &a.doc.projection,
            &a.doc.aggregate_type,
            &a.doc.aggregate_id,
            a.doc.sequence,
        )
            .cmp(&(
                &b.doc.projection,
                &b.doc.aggregate_type,
                &b.doc.aggregate_id,
                b.doc.sequence,
            ))
    });
    Ok(out)
}

async fn resolve(
    docs: &dyn DocumentStore,
    l: &Letter,
    resolution: &str,
) -> Result<bool, StoreError> {
    let mut doc = l.doc.clone();
    doc.pending_for = None;
    doc.resolution = Some(resolution.into());
    doc.resolved_at = Some(Utc::now());
    let written = docs
        .write(
            collections::DEAD_LETTERS,
            vec![Write::Put {
                id: l.id.clone(),
                expected_rev: Some(l.rev),
                body: serde_json::to_value(&doc).map_err(err)?,
            }],
        )
        .await?;
    Ok(matches!(
        written.first(),
        Some(tessera_documents::store::Written::Ok(_))
    ))
}

/// Discards one pending letter. `false`: no such pending letter.
pub async fn discard(docs: &dyn DocumentStore, id: &str) -> Result<bool, StoreError> {
    match docs.get(collections::DEAD_LETTERS, id).await? {
        Some(d) => {
            let l = letter(d)?;
            if l.doc.pending_for.is_none() {
                return Ok(false);
            }
            resolve(docs, &l, "discarded").await
        }
        None => Ok(false),
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryReport {
    pub retried: Vec<String>,
    /// Events missing before a letter that were applied from the log.
    pub repaired_from_log: usize,
    /// (letter id, why it still fails); the letters after it stay parked.
    pub still_failing: Vec<(String, String)>,
}

/// Retries the letters of the aggregate `id` belongs to (`None`: every
/// pending letter), in order. A letter refused for a gap is repaired from
/// the event log: the events the projection missed are read from `log` and
/// applied first (the feed may have skipped them; the log has them all).
pub async fn retry(
    docs: &dyn DocumentStore,
    log: &dyn EventLog,
    projections: &[Arc<dyn Projection>],
    id: Option<&str>,
) -> Result<RetryReport, StoreError> {
    let all = pending(docs, projections, None).await?;
    let wanted = match id {
        Some(id) => {
            let Some(l) = all.iter().find(|l| l.id == id) else {
                return Ok(RetryReport::default());
            };
            let key = (
                l.doc.projection.clone(),
                l.doc.aggregate_type.clone(),
                l.doc.aggregate_id.clone(),
            );
            all.into_iter()
                .filter(|l| {
                    (
                        l.doc.projection.clone(),
                        l.doc.aggregate_type.clone(),
                        l.doc.aggregate_id.clone(),
                    ) == key
                })
                .collect()
        }
        None => all,
    };
    let mut groups: BTreeMap<(String, String, String), Vec<Letter>> = BTreeMap::new();
    for l in wanted {
        let key = (
            l.doc.projection.clone(),
            l.doc.aggregate_type.clone(),
            l.doc.aggregate_id.clone(),
        );
        groups.entry(key).or_default().push(l);
    }
    let mut report = RetryReport::default();
    for ((projection, _, _), letters) in groups {
        let Some(p) = projections.iter().find(|p| p.name() == projection) else {
            continue;
        };
        let collection = live::live(docs, p.name()).await?;
        for mut l in letters {
            let Some(envelope) = l.doc.envelope.clone() else {
                // bytes that were never an event cannot be retried
                report
                    .still_failing
                    .push((l.id.clone(), "not an event; discard it".into()));
                break;
            };
            let mut applied = apply_one(&**p, docs, &collection, &envelope).await?;
            if let Applied::Refused(FoldError::Gap { expected, got }) = &applied {
                let missing =
                    crate::rebuild::history(log, &envelope.aggregate_type, &envelope.aggregate_id)
                        .await
                        .map_err(StoreError::new)?
                        .into_iter()
                        .filter(|e| (*expected..*got).contains(&e.sequence))
                        .collect::<Vec<_>>();
                let mut filled = true;
                for e in &missing {
                    if let Applied::Refused(_) = apply_one(&**p, docs, &collection, e).await? {
                        filled = false;
                        break;
                    }
                }
                if filled && !missing.is_empty() {
                    report.repaired_from_log += missing.len();
                    applied = apply_one(&**p, docs, &collection, &envelope).await?;
                }
            }
            match applied {
                Applied::Done => {
                    resolve(docs, &l, "retried").await?;
                    report.retried.push(l.id);
                }
                Applied::Refused(e) => {
                    l.doc.attempts += 1;
                    l.doc.error = e.to_string();
                    docs.write(
                        collections::DEAD_LETTERS,
                        vec![Write::Put {
                            id: l.id.clone(),
                            expected_rev: Some(l.rev),
                            body: serde_json::to_value(&l.doc).map_err(err)?,
                        }],
                    )
                    .await?;
                    report.still_failing.push((l.id, e.to_string()));
                    break;
                }
            }
        }
    }
    Ok(report)
}
