//! The document store port and its adapters (MongoDB; embedded SQLite).
//!
//! Documents are JSON objects with a store-managed revision. Every write is
//! a compare-and-set on that revision, so two projector instances that fold
//! into the same document (a user's guild list fed by two guilds on two
//! partitions) cannot lose each other's update.

pub mod cached;
pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub id: String,
    /// Increases by one with every write; 0 for unchecked writes.
    pub rev: u64,
    pub body: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert (`expected_rev: None`) or replace the revision that was read.
    Put {
        id: String,
        expected_rev: Option<u64>,
        body: Value,
    },
    Delete {
        id: String,
        expected_rev: u64,
    },
    /// Unconditional insert-or-replace (checkpoints, bookkeeping).
    Upsert {
        id: String,
        body: Value,
    },
}

impl Write {
    pub fn id(&self) -> &str {
        match self {
            Self::Put { id, .. } | Self::Delete { id, .. } | Self::Upsert { id, .. } => id,
        }
    }
}

/// The result of one [`Write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Applied; the document's new revision (0 once deleted).
    Ok(u64),
    /// The document was not at the expected revision (or already existed).
    Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// A page of documents in id order.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    /// Only documents whose indexed field holds this value (`None`: all).
    pub filter: Option<(&'a str, &'a str)>,
    pub order: Order,
    /// Resume after this id (exclusive).
    pub after: Option<&'a str>,
    pub limit: usize,
}

/// The documents whose indexed `field` lies in `[from, to)`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct RangeQuery<'a> {
    pub field: &'a str,
    pub from: &'a str,
    /// Exclusive.
    pub to: &'a str,
    pub limit: usize,
}

tessera_events::port_error!(
    /// The document store failed; the adapter's error is the source.
    StoreError, "document store failed"
);

impl StoreError {
    /// Documents kept changing under a writer that retried.
    pub fn contended(what: &str) -> Self {
        Self::new(format!("documents kept changing while {what}"))
    }
}

#[async_trait]
pub trait DocumentStore: Send + Sync {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredDoc>, StoreError>;

    async fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>, StoreError>;

    /// Ids of the documents whose indexed `field` holds `value` (a scalar,
    /// or an element of an array).
    async fn find_ids(
        &self,
        collection: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<String>, StoreError>;

    async fn list(
        &self,
        collection: &str,
        query: ListQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError>;

    /// The documents the query's range holds, in order of its field (then
    /// id).
    async fn range(
        &self,
        collection: &str,
        query: RangeQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError>;

    /// Applies the writes, each one atomically; a conflict on one does not
    /// stop the others.
    async fn write(&self, collection: &str, writes: Vec<Write>)
        -> Result<Vec<Written>, StoreError>;

    /// Declares the fields that [`find_ids`](Self::find_ids) and
    /// [`list`](Self::list) filter on. Idempotent.
    async fn ensure_indexes(&self, collection: &str, fields: &[&str]) -> Result<(), StoreError>;

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError>;

    async fn ping(&self) -> Result<(), StoreError>;

    /// Ticks after writes, when the store can tell (the embedded store): lets
    /// readers wait for a version without polling. `None`: poll.
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// The values of `field` in a document as index keys: a string or number,
/// or each string or number of an array. Nested fields use dots (`a.b`).
pub fn index_values(body: &Value, field: &str) -> Vec<String> {
    let mut v = body;
    for part in field.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return Vec::new(),
        }
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_values_reads_scalars_arrays_and_nested_fields() {
        let doc = json!({"a": "x", "n": 3, "arr": ["p", "q", {"no": 1}], "o": {"b": "deep"}, "nul": null});
        assert_eq!(index_values(&doc, "a"), ["x"]);
        assert_eq!(index_values(&doc, "n"), ["3"]);
        assert_eq!(index_values(&doc, "arr"), ["p", "q"]);
        assert_eq!(index_values(&doc, "o.b"), ["deep"]);
        assert!(index_values(&doc, "nul").is_empty());
        assert!(index_values(&doc, "missing").is_empty());
    }
}
