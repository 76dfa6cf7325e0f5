//! Document reads served from memory between writes: a [`DocumentStore`]
//! that keeps what `get` read and forgets a document the moment it is
//! written through it.
//!
//! For a process that both projects and serves (`tessera serve`), every
//! write of its projector goes through this store, so its cache is coherent
//! with what it wrote: a write forgets the documents it touched before it
//! returns, and only then ticks [`changes`](DocumentStore::changes), so a
//! read waiting for a version never wakes to a remembered older one. A read
//! that raced a write (it read the old body while the write committed) does
//! not keep what it read: every write bumps a counter of the ids' stripe,
//! and a read keeps its body only if its stripe did not move while it
//! read. Writes by other processes (an operator's `tessera admin replay` on
//! the same data folder) are not seen: each remembered document is read
//! again after `ttl` at the latest, which bounds that staleness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{DocumentStore, ListQuery, RangeQuery, StoreError, StoredDoc, Write, Written};

const STRIPES: usize = 1024;

pub struct CachedStore {
    inner: Arc<dyn DocumentStore>,
    docs: moka::sync::Cache<(String, String), StoredDoc>,
    /// Writes per stripe of document ids, for reads racing a write.
    stripes: Box<[AtomicU64]>,
    changed: watch::Sender<u64>,
}

impl CachedStore {
    /// Remembers up to `capacity` documents, each for `ttl` at the most.
    pub fn new(inner: Arc<dyn DocumentStore>, capacity: u64, ttl: Duration) -> Self {
        Self {
            inner,
            docs: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            changed: watch::Sender::new(0),
        }
    }

    fn stripe(&self, id: &str) -> &AtomicU64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.stripes[(h.finish() as usize) % STRIPES]
    }

    fn forget(&self, collection: &str, ids: &[&str]) {
        for id in ids {
            self.stripe(id).fetch_add(1, Ordering::AcqRel);
            self.docs
                .invalidate(&(collection.to_owned(), (*id).to_owned()));
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn forget_all(&self) {
        for s in &*self.stripes {
            s.fetch_add(1, Ordering::AcqRel);
        }
        self.docs.invalidate_all();
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[async_trait]
impl DocumentStore for CachedStore {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let key = (collection.to_owned(), id.to_owned());
        if let Some(doc) = self.docs.get(&key) {
            metrics::counter!("tessera_read_cache_total", "outcome" => "hit").increment(1);
            return Ok(Some(doc));
        }
        metrics::counter!("tessera_read_cache_total", "outcome" => "miss").increment(1);
        let stripe = self.stripe(id);
        let before = stripe.load(Ordering::Acquire);
        let doc = self.inner.get(collection, id).await?;
        if let Some(found) = &doc {
            if stripe.load(Ordering::Acquire) == before {
                self.docs.insert(key.clone(), found.clone());
                // a write that bumped the stripe between the check and the
                // insert forgot nothing yet: forget what was just kept
                if stripe.load(Ordering::Acquire) != before {
                    self.docs.invalidate(&key);
                }
            }
        }
        Ok(doc)
    }

    async fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>, StoreError> {
        self.inner.get_many(collection, ids).await
    }

    async fn find_ids(
        &self,
        collection: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.find_ids(collection, field, value).await
    }

    async fn list(
        &self,
        collection: &str,
        query: ListQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        self.inner.list(collection, query).await
    }

    async fn range(
        &self,
        collection: &str,
        query: RangeQuery<'_>,
    ) -> Result<Vec<StoredDoc>, StoreError> {
        self.inner.range(collection, query).await
    }

    async fn write(
        &self,
        collection: &str,
        writes: Vec<Write>,
    ) -> Result<Vec<Written>, StoreError> {
        let ids: Vec<String> = writes.iter().map(|w| w.id().to_owned()).collect();
        let result = self.inner.write(collection, writes).await;
        // forgotten whatever the outcome: a failed batch may have applied
        // in part
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.forget(collection, &ids);
        result
    }

    async fn ensure_indexes(&self, collection: &str, fields: &[&str]) -> Result<(), StoreError> {
        self.inner.ensure_indexes(collection, fields).await
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), StoreError> {
        let result = self.inner.drop_collection(collection).await;
        self.forget_all();
        result
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    /// Ticks after a write through this store forgot what it touched (and
    /// after the inner store's own ticks, when it has them).
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::embedded::EmbeddedStore;

    async fn store() -> (tempfile::TempDir, Arc<dyn DocumentStore>, CachedStore) {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn DocumentStore> = Arc::new(
            EmbeddedStore::open(&dir.path().join("docs.db"))
                .await
                .unwrap(),
        );
        let cached = CachedStore::new(Arc::clone(&inner), 1000, Duration::from_secs(60));
        (dir, inner, cached)
    }

    fn put(id: &str, rev: Option<u64>, v: u64) -> Write {
        Write::Put {
            id: id.into(),
            expected_rev: rev,
            body: json!({"version": v}),
        }
    }

    #[tokio::test]
    async fn a_write_through_the_cache_is_read_back_at_once() {
        let (_dir, _inner, cached) = store().await;
        cached.write("c", vec![put("a", None, 1)]).await.unwrap();
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            1
        );
        let changes = cached.changes().unwrap();
        cached.write("c", vec![put("a", Some(1), 2)]).await.unwrap();
        assert!(changes.has_changed().unwrap(), "a write ticks");
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            2
        );
    }

    #[tokio::test]
    async fn a_remembered_document_is_served_without_the_store_until_written() {
        let (_dir, inner, cached) = store().await;
        inner.write("c", vec![put("a", None, 1)]).await.unwrap();
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            1
        );
        // written behind the cache's back (another process): still the old
        // body, which proves the second read did not reach the store
        inner.write("c", vec![put("a", Some(1), 2)]).await.unwrap();
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            1
        );
        // a write through the cache forgets it
        cached.write("c", vec![put("a", Some(2), 3)]).await.unwrap();
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            3
        );
    }

    #[tokio::test]
    async fn a_write_from_elsewhere_is_seen_after_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn DocumentStore> = Arc::new(
            EmbeddedStore::open(&dir.path().join("docs.db"))
                .await
                .unwrap(),
        );
        let cached = CachedStore::new(Arc::clone(&inner), 1000, Duration::from_millis(50));
        inner.write("c", vec![put("a", None, 1)]).await.unwrap();
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            1
        );
        inner.write("c", vec![put("a", Some(1), 2)]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if cached.get("c", "a").await.unwrap().unwrap().body["version"] == 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not seen within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Readers and a writer of one document at once: once the writer is
    /// done, every read sees its last write (no read that raced a write
    /// left the older body behind).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reads_racing_writes_never_keep_an_older_body() {
        let (_dir, _inner, cached) = store().await;
        let cached = Arc::new(cached);
        cached.write("c", vec![put("a", None, 0)]).await.unwrap();
        let writer = {
            let cached = Arc::clone(&cached);
            tokio::spawn(async move {
                for v in 1..=200u64 {
                    cached.write("c", vec![put("a", Some(v), v)]).await.unwrap();
                }
            })
        };
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let cached = Arc::clone(&cached);
                tokio::spawn(async move {
                    for _ in 0..500 {
                        cached.get("c", "a").await.unwrap();
                    }
                })
            })
            .collect();
        writer.await.unwrap();
        for r in readers {
            r.await.unwrap();
        }
        assert_eq!(
            cached.get("c", "a").await.unwrap().unwrap().body["version"],
            200
        );
    }
}
