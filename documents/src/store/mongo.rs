//! The MongoDB document store (production read models).
//!
//! A document is stored as its JSON fields plus `_id` (the document id) and
//! `_rev` (the revision every write compares and sets). Writes run as
//! per-collection operations, several at a time: client-level `bulk_write`
//! needs MongoDB 8, which not every MongoDB-compatible server speaks.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::Value;

use super::{DocumentStore, ListQuery, Order, RangeQuery, StoreError, StoredDoc, Write, Written};

/// Writes of one batch in flight at once.
const WRITE_CONCURRENCY: usize = 16;

/// How long one operation may take before it fails (a server that does not
/// answer must not hold a read for the driver's socket timeouts).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    timeout: std::time::Duration,
}

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

impl MongoStore {
    /// Connects to `uri` and uses `database`. Fails fast when the server does
    /// not answer.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, StoreError> {
        let mut options = mongodb::options::ClientOptions::parse(uri)
            .await
            .map_err(err)?;
        options.app_name = Some("tessera".into());
        options.server_selection_timeout = Some(std::time::Duration::from_secs(5));
        options.connect_timeout = Some(std::time::Duration::from_secs(5));
        let client = Client::with_options(options).map_err(err)?;
        Ok(Self {
            db: client.database(database),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Fails each operation that takes longer than `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `op`, failing after the store's timeout (`scale` times it for
    /// operations that may legitimately take longer, like building an index).
    async fn bounded<T>(
        &self,
        scale: u32,
        what: &'static str,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.timeout.saturating_mul(scale);
        tokio::time::timeout(limit, op).await.unwrap_or_else(|_| {
            Err(StoreError::new(format!(
                "MongoDB did not answer {what} within {limit:?}"
            )))
        })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().all(|w| w.code == 11000)),
        _ => e.to_string().contains("E11000"),
    }
}

fn rev_bson(rev: u64) -> Bson {
    Bson::Int64(i64::try_from(rev).unwrap_or(i64::MAX))
}

fn to_stored(id: &str, rev: u64, body: &Value) -> Result<Document, StoreError> {
    let mut doc = mongodb::bson::to_document(body).map_err(err)?;
    doc.insert("_id", id);
    doc.insert("_rev", rev_bson(rev));
    Ok(doc)
}

fn from_stored(mut doc: Document) -> Result<StoredDoc, StoreError> {
    let id = match doc.remove("_id") {
        Some(Bson::String(s)) => s,
        Some(other) => other.to_string(),
        None => return Err(StoreError::new("document without _id")),
    };
    let rev = match doc.remove("_rev") {
        Some(Bson::Int64(n)) => u64::try_from(n).unwrap_or_default(),
        Some(Bson::Int32(n)) => u64::try_from(n).unwrap_or_default(),
        _ => 0,
    };
    Ok(StoredDoc {
        id,
        rev,
        body: Bson::Document(doc).into_relaxed_extjson(),
    })
}

impl MongoStore {
    async fn apply(
        &self,
        coll: &Collection<Document>,
        write: Write,
    ) -> Result<Written, StoreError> {
        let result = match write {
            Write::Put {
                id,
                expected_rev: Some(rev),
                body,
            } => coll
                .replace_one(
                    doc! { "_id": &id, "_rev": rev_bson(rev) },
                    to_stored(&id, rev + 1, &body)?,
                )
                .await
                .map(|r| (r.matched_count == 1).then_some(rev + 1)),
            Write::Put {
                id,
                expected_rev: None,
                body,
            } => match coll.insert_one(to_stored(&id, 1, &body)?).await {
                Ok(_) => Ok(Some(1)),
                Err(e) if is_duplicate_key(&e) => Ok(None),
                Err(e) => Err(e),
            },
            Write::Delete { id, expected_rev } => coll
                .delete_one(doc! { "_id": &id, "_rev": rev_bson(expected_rev) })
                .await
                .map(|r| (r.deleted_count == 1).then_some(0)),
            Write::Upsert { id, body } => coll
                .replace_one(doc! { "_id": &id }, to_stored(&id, 0, &body)?)
                .upsert(true)
                .await
                .map(|_| Some(0)),
        };
        match result {
            Ok(Some(rev)) => Ok(Written::Ok(rev)),
            Ok(None) => Ok(Written::Conflict),
            Err(e) => Err(err(e)),
        }
    }
}

#[async_trait]
impl DocumentStore for MongoStore {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.bounded(1, "a read", async {
            self.coll(collection)
                .find_one(doc! { "_id": id })
                .await
                .map_err(err)?
                .map(from_stored)
                .transpose()
        })
        .await
    }

    async fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded(1, "a read", async {
            let cursor = self
                .coll(collection)
                .find(doc! { "_id": { "$in": ids } })
                .await
                .map_err(err)?;
            let docs: Vec<Document> = cursor.try_collect().await.map_err(err)?;
            docs.into_iter().map(from_stored).collect()
        })
        .await
    }

    async fn find_ids(
        &self,
        collection: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.bounded(1, "a query", async {
            let cursor = self
                .coll(collection)
                .find(doc! { field: value })
                .projection(doc! { "_id": 1 })
                .sort(doc! { "_id": 1 })
                .await
                .map_err(err)?;
            let docs: Vec<Document> = cursor.try_collect().await.map_err(err)?;
            Ok(docs
                .into_iter()
                .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
                .collect())
        })
        .await
    }

    async fn list(
        &self,
        collection: &str,
        query: ListQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        let mut filter = Document::new();
        if let Some((field, value)) = query.filter {
            filter.insert(field, value);
        }
        let (op, dir) = match query.order {
            Order::Asc => ("$gt", 1),
            Order::Desc => ("$lt", -1),
        };
        if let Some(after) = query.after {
            filter.insert("_id", doc! { op: after });
        }
        self.bounded(1, "a list", async {
            let cursor = self
                .coll(collection)
                .find(filter)
                .sort(doc! { "_id": dir })
                .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .await
                .map_err(err)?;
            let docs: Vec<Document> = cursor.try_collect().await.map_err(err)?;
            docs.into_iter().map(from_stored).collect()
        })
        .await
    }

    async fn range(
        &self,
        collection: &str,
        query: RangeQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        let RangeQuery {
            field,
            from,
            to,
            limit,
        } = query;
        self.bounded(1, "a range query", async {
            let cursor = self
                .coll(collection)
                .find(doc! { field: { "$gte": from, "$lt": to } })
                .sort(doc! { field: 1, "_id": 1 })
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .await
                .map_err(err)?;
            let docs: Vec<Document> = cursor.try_collect().await.map_err(err)?;
            docs.into_iter().map(from_stored).collect()
        })
        .await
    }

    async fn write(
        &self,
        collection: &str,
        writes: Vec<Write>,
    ) -> Result<Vec<Written>, StoreError> {
        let coll = self.coll(collection);
        let coll = &coll;
        // buffered (not unordered): results come back in the order of writes
        futures::stream::iter(writes)
            .map(|w| self.bounded(1, "a write", self.apply(coll, w)))
            .buffered(WRITE_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn ensure_indexes(&self, collection: &str, fields: &[&str]) -> Result<(), StoreError> {
        for field in fields {
            let model = IndexModel::builder()
                .keys(doc! { *field: 1, "_id": 1 })
                .options(
                    IndexOptions::builder()
                        .name(format!("{field}_1__id_1"))
                        .build(),
                )
                .build();
            self.bounded(30, "an index build", async {
                self.coll(collection)
                    .create_index(model)
                    .await
                    .map(drop)
                    .map_err(err)
            })
            .await?;
        }
        Ok(())
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        self.bounded(30, "a collection drop", async {
            self.coll(collection).drop().await.map_err(err)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(1, "a ping", async {
            self.db
                .run_command(doc! { "ping": 1 })
                .await
                .map(drop)
                .map_err(err)
        })
        .await
    }
}
