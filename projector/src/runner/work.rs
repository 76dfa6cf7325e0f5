//! The documents of one batch (or one refold), read once and written once.

use std::collections::HashMap;

use serde_json::Value;
use tessera_events::{DomainEvent, Envelope};
use tessera_runtime::trace::TraceParent;

use crate::projection::{FoldError, Live, Outcome, Projection, Targets};
use tessera_documents::changes::Change;
use tessera_documents::store::{DocumentStore, StoreError, StoredDoc, Write, Written};

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) doc: Option<Value>,
    pub(crate) rev: Option<u64>,
    pub(crate) dirty: bool,
    /// The trace of the last event that changed it, for the change feed.
    pub(crate) trace_id: Option<String>,
}

impl Slot {
    pub(crate) const fn absent() -> Self {
        Self {
            doc: None,
            rev: None,
            dirty: false,
            trace_id: None,
        }
    }
}

/// Which documents an event targets, once looked up.
pub(crate) enum Resolved {
    Ids(Vec<String>),
    /// Writing the batch so far (so an index sees it) conflicted: fold the
    /// batch again.
    Raced,
}

/// How writing the changed documents went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    Written,
    /// A document was not at the revision read: fold again.
    Raced,
}

impl Flushed {
    pub(crate) fn raced(self) -> bool {
        self == Self::Raced
    }
}

pub(crate) struct Work<'a> {
    projection: &'a dyn Projection,
    docs: &'a dyn DocumentStore,
    collection: &'a str,
    pub(crate) cache: HashMap<String, Slot>,
    /// Documents written, for the live streams (of a projection they follow).
    pub(crate) written: Vec<Change>,
}

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
            written: Vec::new(),
        }
    }

    /// Reads the documents of `ids` not read yet, in one query.
    pub(crate) async fn load(&mut self, ids: &[String]) -> Result<(), StoreError> {
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
            .get_many(self.collection, &missing)
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
                    trace_id: None,
                },
                None => Slot::absent(),
            };
            self.cache.insert(id, slot);
        }
        Ok(())
    }

    pub(crate) async fn resolve(&mut self, targets: Targets) -> Result<Resolved, StoreError> {
        Ok(match targets {
            Targets::None => Resolved::Ids(Vec::new()),
            Targets::Ids(ids) => Resolved::Ids(ids),
            Targets::Where { field, value } => {
                // the index must see this batch's earlier changes
                if self.flush().await?.raced() {
                    return Ok(Resolved::Raced);
                }
                Resolved::Ids(self.docs.find_ids(self.collection, field, &value).await?)
            }
        })
    }

    /// Folds one event into its documents without changing the cache.
    pub(crate) fn fold(
        &self,
        ids: &[String],
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Result<Vec<(String, Outcome<Value>)>, FoldError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let doc = self.cache.get(id).and_then(|s| s.doc.as_ref());
            out.push((id.clone(), self.projection.apply(id, doc, envelope, event)?));
        }
        Ok(out)
    }

    /// Keeps what `envelope`'s event made of its documents.
    pub(crate) fn keep(&mut self, changes: Vec<(String, Outcome<Value>)>, envelope: &Envelope) {
        let trace_id = envelope
            .metadata
            .traceparent
            .as_deref()
            .and_then(TraceParent::parse)
            .map(|t| t.trace_id.to_string());
        for (id, outcome) in changes {
            let slot = self.cache.entry(id).or_insert(Slot::absent());
            match outcome {
                Outcome::Unchanged => continue,
                Outcome::Put(doc) => slot.doc = Some(doc),
                Outcome::Delete => slot.doc = None,
            }
            slot.dirty = true;
            slot.trace_id.clone_from(&trace_id);
        }
    }

    /// Drops clean documents from the cache, so they are read again.
    pub(crate) fn forget(&mut self, ids: &[String]) {
        for id in ids {
            if self.cache.get(id).is_some_and(|s| !s.dirty) {
                self.cache.remove(id);
            }
        }
    }

    /// Writes every changed document, each at the revision it was read at.
    pub(crate) async fn flush(&mut self) -> Result<Flushed, StoreError> {
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
            return Ok(Flushed::Written);
        }
        let results = self.docs.write(self.collection, writes).await?;
        let mut raced = false;
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Written::Ok(rev) => {
                    if let Some(slot) = self.cache.get_mut(&id) {
                        slot.dirty = false;
                        slot.rev = slot.doc.is_some().then_some(rev);
                        let key = match (self.projection.live(), &slot.doc) {
                            (Live::Quiet, _) | (_, None) => None,
                            (Live::ById, Some(_)) => Some(None),
                            (Live::ByField(field), Some(doc)) => {
                                Some(doc.get(field).and_then(Value::as_str).map(str::to_owned))
                            }
                        };
                        if let Some(key) = key {
                            self.written.push(Change {
                                projection: self.projection.name().to_owned(),
                                id,
                                key,
                                trace_id: slot.trace_id.take(),
                            });
                        }
                    }
                }
                Written::Conflict => {
                    raced = true;
                    self.cache.remove(&id);
                }
            }
        }
        Ok(if raced {
            Flushed::Raced
        } else {
            Flushed::Written
        })
    }
}
