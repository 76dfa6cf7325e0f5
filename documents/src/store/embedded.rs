//! The embedded document store: JSON documents in a SQLite file, for
//! `tessera serve`. Same contract as the MongoDB adapter.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{RwLock, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::{watch, Mutex};

use super::{
    index_values, DocumentStore, ListQuery, Order, RangeQuery, StoreError, StoredDoc, Write,
    Written,
};

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite-documents");

pub struct EmbeddedStore {
    pool: SqlitePool,
    /// Indexed fields per collection, as read from `doc_index_fields`.
    indexes: RwLock<HashMap<String, Vec<String>>>,
    /// One writer at a time in this process: SQLite has one writer anyway,
    /// and waiting here is cheaper than waiting on the file lock.
    write_lock: Mutex<()>,
    changes: watch::Sender<u64>,
}

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

impl EmbeddedStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(err)?;
        MIGRATOR.run(&pool).await.map_err(err)?;
        Ok(Self {
            pool,
            indexes: RwLock::new(HashMap::new()),
            write_lock: Mutex::new(()),
            changes: watch::Sender::new(0),
        })
    }

    /// The remembered index declarations, to change. A panic while the lock
    /// was held leaves the map as it was between two whole updates, so a
    /// poisoned lock is used as is.
    fn remembered_fields(&self) -> RwLockWriteGuard<'_, HashMap<String, Vec<String>>> {
        self.indexes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The collection's indexed fields: declared by any process on this
    /// file (`doc_index_fields`), remembered once read.
    async fn fields_of(&self, collection: &str) -> Result<Vec<String>, StoreError> {
        if let Some(f) = self
            .indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
        {
            return Ok(f.clone());
        }
        let fields: Vec<String> = sqlx::query_scalar(
            "SELECT field FROM doc_index_fields WHERE collection = ?1 ORDER BY field",
        )
        .bind(collection)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        self.remembered_fields()
            .insert(collection.to_owned(), fields.clone());
        Ok(fields)
    }

    async fn reindex(
        tx: &mut Transaction<'_, Sqlite>,
        collection: &str,
        id: &str,
        body: Option<&Value>,
        fields: &[String],
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM doc_index WHERE collection = ?1 AND id = ?2")
            .bind(collection)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        match body {
            Some(body) => Self::index(tx, collection, id, body, fields).await,
            None => Ok(()),
        }
    }

    async fn index(
        tx: &mut Transaction<'_, Sqlite>,
        collection: &str,
        id: &str,
        body: &Value,
        fields: &[String],
    ) -> Result<(), sqlx::Error> {
        for field in fields {
            for value in index_values(body, field) {
                sqlx::query(
                    "INSERT OR IGNORE INTO doc_index (collection, field, value, id) VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(collection)
                .bind(field)
                .bind(value)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    async fn apply(
        tx: &mut Transaction<'_, Sqlite>,
        collection: &str,
        write: &Write,
        fields: &[String],
    ) -> Result<Written, sqlx::Error> {
        let (affected, body, rev) = match write {
            Write::Put {
                id,
                expected_rev: Some(rev),
                body,
            } => {
                let n = sqlx::query(
                    "UPDATE documents SET rev = rev + 1, body = ?1
                      WHERE collection = ?2 AND id = ?3 AND rev = ?4",
                )
                .bind(body.to_string())
                .bind(collection)
                .bind(id)
                .bind(i64::try_from(*rev).unwrap_or(i64::MAX))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (n, Some(body), rev + 1)
            }
            Write::Put {
                id,
                expected_rev: None,
                body,
            } => {
                let n = Self::insert(
                    tx,
                    "INSERT INTO documents (collection, id, rev, body) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT DO NOTHING",
                    collection,
                    id,
                    body,
                )
                .await?;
                (n, Some(body), 1)
            }
            Write::Delete { id, expected_rev } => {
                let n = sqlx::query(
                    "DELETE FROM documents WHERE collection = ?1 AND id = ?2 AND rev = ?3",
                )
                .bind(collection)
                .bind(id)
                .bind(i64::try_from(*expected_rev).unwrap_or(i64::MAX))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (n, None, 0)
            }
            Write::Upsert { id, body } => {
                let n = Self::insert(
                    tx,
                    "INSERT INTO documents (collection, id, rev, body) VALUES (?1, ?2, 0, ?3)
                     ON CONFLICT (collection, id) DO UPDATE SET body = excluded.body",
                    collection,
                    id,
                    body,
                )
                .await?;
                (n, Some(body), 0)
            }
        };
        if affected == 0 {
            return Ok(Written::Conflict);
        }
        if !fields.is_empty() {
            Self::reindex(tx, collection, write.id(), body, fields).await?;
        }
        Ok(Written::Ok(rev))
    }

    /// Runs one of [`Self::apply`]'s inserts (its parameters `?1` to `?3`:
    /// the collection, the id and the body) and counts the rows it wrote.
    async fn insert(
        tx: &mut Transaction<'_, Sqlite>,
        sql: &str,
        collection: &str,
        id: &str,
        body: &Value,
    ) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(sql)
            .bind(collection)
            .bind(id)
            .bind(body.to_string())
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }
}

/// Rows per multi-row statement (4 parameters each, far under SQLite's
/// limit of 32,766).
const ROWS_PER_STATEMENT: usize = 200;

fn distinct_ids(writes: &[Write]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(writes.len());
    writes.iter().all(|w| seen.insert(w.id()))
}

impl EmbeddedStore {
    /// The same writes as [`Self::apply`] one by one, for writes on
    /// distinct documents: inserts and conditional replaces go in multi-row
    /// statements that return the ids they applied to (the rest conflicted),
    /// and so do their index entries. A statement costs a hop to SQLite's
    /// worker thread; a rebuild writes thousands of documents per batch, and
    /// the hops were most of its time.
    async fn apply_batched(
        tx: &mut Transaction<'_, Sqlite>,
        collection: &str,
        writes: &[Write],
        fields: &[String],
    ) -> Result<Vec<Written>, sqlx::Error> {
        let mut results = vec![Written::Conflict; writes.len()];
        // puts by what they expect: inserts (`None`), then replaces
        let (mut inserts, mut replaces) = (Vec::new(), Vec::new());
        for (at, w) in writes.iter().enumerate() {
            match w {
                Write::Put {
                    id,
                    expected_rev,
                    body,
                } => {
                    let put = (at, id.as_str(), *expected_rev, body.to_string());
                    match expected_rev {
                        None => inserts.push(put),
                        Some(_) => replaces.push(put),
                    }
                }
                other => results[at] = Self::apply(tx, collection, other, fields).await?,
            }
        }
        for (puts, replacing) in [(inserts, false), (replaces, true)] {
            for chunk in puts.chunks(ROWS_PER_STATEMENT) {
                let sql = if replacing {
                    let rows = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                    format!(
                        "WITH v(id, rev, body) AS (VALUES {rows})
                         UPDATE documents SET rev = documents.rev + 1, body = v.body
                           FROM v
                          WHERE documents.id = v.id AND documents.rev = v.rev
                            AND documents.collection = ?
                         RETURNING id"
                    )
                } else {
                    let rows = vec!["(?, ?, 1, ?)"; chunk.len()].join(", ");
                    format!(
                        "INSERT INTO documents (collection, id, rev, body) VALUES {rows}
                         ON CONFLICT DO NOTHING RETURNING id"
                    )
                };
                let mut q = sqlx::query_scalar::<_, String>(&sql);
                for (_, id, expected, body) in chunk {
                    q = match expected {
                        None => q.bind(collection).bind(*id).bind(body.as_str()),
                        Some(rev) => q
                            .bind(*id)
                            .bind(i64::try_from(*rev).unwrap_or(i64::MAX))
                            .bind(body.as_str()),
                    };
                }
                if replacing {
                    q = q.bind(collection);
                }
                let applied: std::collections::HashSet<String> =
                    q.fetch_all(&mut **tx).await?.into_iter().collect();
                for (at, id, expected, _) in chunk {
                    if applied.contains(*id) {
                        results[*at] = Written::Ok(expected.map_or(1, |rev| rev + 1));
                    }
                }
            }
        }
        if !fields.is_empty() {
            let written: Vec<(&str, &Value)> = writes
                .iter()
                .zip(&results)
                .filter_map(|(w, r)| match (w, r) {
                    (Write::Put { id, body, .. }, Written::Ok(_)) => Some((id.as_str(), body)),
                    _ => None,
                })
                .collect();
            Self::reindex_many(tx, collection, &written, fields).await?;
        }
        Ok(results)
    }

    /// [`Self::reindex`] for many documents, in multi-row statements.
    async fn reindex_many(
        tx: &mut Transaction<'_, Sqlite>,
        collection: &str,
        docs: &[(&str, &Value)],
        fields: &[String],
    ) -> Result<(), sqlx::Error> {
        for chunk in docs.chunks(ROWS_PER_STATEMENT) {
            let ids = vec!["?"; chunk.len()].join(", ");
            let sql = format!("DELETE FROM doc_index WHERE collection = ? AND id IN ({ids})");
            let mut q = sqlx::query(&sql).bind(collection);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        let entries: Vec<(&str, &str, String)> = docs
            .iter()
            .flat_map(|(id, body)| {
                fields.iter().flat_map(move |field| {
                    index_values(body, field)
                        .into_iter()
                        .map(move |value| (*id, field.as_str(), value))
                })
            })
            .collect();
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT OR IGNORE INTO doc_index (collection, field, value, id) VALUES {rows}"
            );
            let mut q = sqlx::query(&sql);
            for (id, field, value) in chunk {
                q = q
                    .bind(collection)
                    .bind(*field)
                    .bind(value.as_str())
                    .bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

impl EmbeddedStore {
    /// At most `limit` documents behind the index entries `i` of
    /// `collection`'s `field`, which `clause` filters with the two `bounds`
    /// (?3, ?4) and orders.
    async fn through_index(
        &self,
        clause: &str,
        collection: &str,
        field: &str,
        bounds: (&str, Option<&str>),
        limit: usize,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        let sql = format!(
            "SELECT d.id, d.rev, d.body FROM doc_index i
               JOIN documents d ON d.collection = i.collection AND d.id = i.id
              WHERE i.collection = ?1 AND i.field = ?2 AND {clause} LIMIT ?5"
        );
        let rows = sqlx::query(&sql)
            .bind(collection)
            .bind(field)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(to_doc).collect()
    }
}

fn to_doc(row: &sqlx::sqlite::SqliteRow) -> Result<StoredDoc, StoreError> {
    let body: String = row.try_get("body").map_err(err)?;
    let rev: i64 = row.try_get("rev").map_err(err)?;
    Ok(StoredDoc {
        id: row.try_get("id").map_err(err)?,
        rev: u64::try_from(rev).unwrap_or_default(),
        body: serde_json::from_str(&body).map_err(err)?,
    })
}

#[async_trait]
impl DocumentStore for EmbeddedStore {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let row =
            sqlx::query("SELECT id, rev, body FROM documents WHERE collection = ?1 AND id = ?2")
                .bind(collection)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.as_ref().map(to_doc).transpose()
    }

    async fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>, StoreError> {
        let mut docs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(400) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT id, rev, body FROM documents WHERE collection = ? AND id IN ({placeholders})"
            );
            let mut q = sqlx::query(&sql).bind(collection);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await.map_err(err)? {
                docs.push(to_doc(&row)?);
            }
        }
        Ok(docs)
    }

    async fn find_ids(
        &self,
        collection: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM doc_index WHERE collection = ?1 AND field = ?2 AND value = ?3 ORDER BY id",
        )
        .bind(collection)
        .bind(field)
        .bind(value)
        .fetch_all(&self.pool)
        .await
        .map_err(err)
    }

    async fn list(
        &self,
        collection: &str,
        query: ListQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        let (cmp, dir) = match query.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let Some((field, value)) = query.filter else {
            let sql = format!(
                "SELECT id, rev, body FROM documents
                  WHERE collection = ?1 AND (?2 IS NULL OR id {cmp} ?2)
                  ORDER BY id {dir} LIMIT ?3"
            );
            let rows = sqlx::query(&sql)
                .bind(collection)
                .bind(query.after)
                .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
            return rows.iter().map(to_doc).collect();
        };
        let clause = format!("i.value = ?3 AND (?4 IS NULL OR i.id {cmp} ?4) ORDER BY i.id {dir}");
        let bounds = (value, query.after);
        self.through_index(&clause, collection, field, bounds, query.limit)
            .await
    }

    async fn range(
        &self,
        collection: &str,
        query: RangeQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        let clause = "i.value >= ?3 AND i.value < ?4 ORDER BY i.value, i.id";
        let bounds = (query.from, Some(query.to));
        self.through_index(clause, collection, query.field, bounds, query.limit)
            .await
    }

    async fn write(
        &self,
        collection: &str,
        writes: Vec<Write>,
    ) -> Result<Vec<Written>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let fields = self.fields_of(collection).await?;
        let _one_writer = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await.map_err(err)?;
        let results = if distinct_ids(&writes) {
            Self::apply_batched(&mut tx, collection, &writes, &fields)
                .await
                .map_err(err)?
        } else {
            let mut results = Vec::with_capacity(writes.len());
            for w in &writes {
                results.push(
                    Self::apply(&mut tx, collection, w, &fields)
                        .await
                        .map_err(err)?,
                );
            }
            results
        };
        tx.commit().await.map_err(err)?;
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(results)
    }

    async fn ensure_indexes(&self, collection: &str, fields: &[&str]) -> Result<(), StoreError> {
        let known = self.fields_of(collection).await?;
        let new: Vec<String> = fields
            .iter()
            .filter(|f| !known.iter().any(|k| k == *f))
            .map(|f| (*f).to_owned())
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        // backfill: documents written before this field was declared
        let _one_writer = self.write_lock.lock().await;
        let rows = sqlx::query("SELECT id, rev, body FROM documents WHERE collection = ?1")
            .bind(collection)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let mut tx = self.pool.begin().await.map_err(err)?;
        for row in &rows {
            let doc = to_doc(row)?;
            Self::index(&mut tx, collection, &doc.id, &doc.body, &new)
                .await
                .map_err(err)?;
        }
        for field in &new {
            sqlx::query(
                "INSERT OR IGNORE INTO doc_index_fields (collection, field) VALUES (?1, ?2)",
            )
            .bind(collection)
            .bind(field)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        self.remembered_fields()
            .entry(collection.to_owned())
            .or_default()
            .extend(new);
        Ok(())
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        let _one_writer = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await.map_err(err)?;
        for sql in [
            "DELETE FROM documents WHERE collection = ?1",
            "DELETE FROM doc_index WHERE collection = ?1",
            "DELETE FROM doc_index_fields WHERE collection = ?1",
        ] {
            sqlx::query(sql)
                .bind(collection)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        self.remembered_fields().remove(collection);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(err)
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}
