//! Catching up: a projector reading a backlog from Kafka into MongoDB (what
//! happens after an outage), beside the document store's raw upsert rate
//! measured in the same run, on the same server.
//!
//! The backlog is published as the relay publishes (idempotent producer,
//! one message per batch, the epoch header). Two projections are measured:
//! `accounts`, where a batch's events of one account become one write, and
//! `point_history`, which writes one new document per charge (write-bound
//! by nature). Each run checks itself: every account's document holds its
//! last version, every charge its history entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use futures::StreamExt as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tessera_documents::documents::collections;
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::{DocumentStore, Write};
use tessera_events::{AccountEvent, Envelope};
use tessera_projector::feed::kafka::{KafkaFeed, KafkaFeedConfig, EPOCH_HEADER};
use tessera_projector::projection::{Accounts, PointHistory, Projection};
use tessera_projector::runner::{new_instance_id, Projector, RetryPolicy, Step};

/// What a catch-up measurement did.
#[derive(Debug, Clone, Copy)]
pub struct CaughtUp {
    pub events: u64,
    pub documents: u64,
    pub seconds: f64,
    pub per_second: f64,
}

impl CaughtUp {
    /// The report's detail column: what the run produced and how long it took.
    pub fn detail(&self) -> String {
        format!(
            "{} events, {} documents, {:.1} s",
            crate::report::thousands(self.events as f64),
            crate::report::thousands(self.documents as f64),
            self.seconds
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CatchupConfig {
    pub accounts: u64,
    pub charges_per_account: u64,
}

fn env(var: &str) -> Result<String> {
    std::env::var(var).with_context(|| format!("{var} is not set (scripts/bench sets it)"))
}

fn envelope(account: &str, sequence: u64, position: i64) -> Envelope {
    let event = AccountEvent::charging(account, sequence, 1);
    Envelope::fresh(account, sequence, position, &event, chrono::Utc::now())
        .expect("an account event serializes")
}

/// Publishes the backlog to a topic of its own with the relay's producer
/// settings but `batch` messages per batch; answers the topic, the events
/// and how fast they were acknowledged.
pub async fn publish_backlog(config: CatchupConfig, batch: usize) -> Result<(String, u64, f64)> {
    let brokers = env("TESSERA_TEST_KAFKA_BROKERS")?;
    let topic = format!("bench_catchup_{}", uuid::Uuid::new_v4().simple());
    tessera_write_side::relay::ensure_topic(&brokers, &topic, 4).await?;
    let mut settings = tessera_write_side::relay::producer_config(&brokers, None);
    settings.set("batch.num.messages", batch.to_string());
    let producer: FutureProducer = settings.create()?;
    let started = Instant::now();
    let mut deliveries = Vec::new();
    let mut position = 0;
    for sequence in 1..=config.charges_per_account + 1 {
        for a in 0..config.accounts {
            position += 1;
            let account = format!("acc{a:05}");
            let payload = serde_json::to_vec(&envelope(&account, sequence, position))?;
            let headers = OwnedHeaders::new().insert(Header {
                key: EPOCH_HEADER,
                value: Some("bench"),
            });
            let mut record = FutureRecord::to(&topic)
                .key(&account)
                .payload(&payload)
                .headers(headers);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => break deliveries.push(delivery),
                    Err((_, r)) => {
                        // the queue is full: let it drain
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            if deliveries.len() >= 2_000 {
                for d in std::mem::take(&mut deliveries) {
                    d.await?.map_err(|(e, _)| e)?;
                }
            }
        }
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    let events = u64::try_from(position).unwrap_or_default();
    let rate = events as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON);
    Ok((topic, events, rate))
}

async fn mongo() -> Result<(MongoStore, String)> {
    let uri = env("TESSERA_TEST_MONGODB_URI")?;
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let store = MongoStore::connect(&uri, &name)
        .await?
        .with_timeout(Duration::from_secs(30));
    Ok((store, name))
}

/// 16 concurrent tasks upserting `documents` small documents (into a
/// collection with one secondary index, as projections have): the store's
/// own write rate.
pub async fn raw_upserts(documents: u64, indexed: bool) -> Result<CaughtUp> {
    let (store, name) = mongo().await?;
    if indexed {
        store.ensure_indexes("raw", &["account_id"]).await?;
    }
    let started = Instant::now();
    let store = &store;
    let results: Vec<Result<()>> = futures::stream::iter(0..documents)
        .map(|i| async move {
            store
                .write(
                    "raw",
                    vec![Write::Upsert {
                        id: format!("d{i}"),
                        body: json!({"n": i, "account_id": format!("acc{:05}", i % 500), "version": 1}),
                    }],
                )
                .await?;
            Ok(())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    let found = store.list_all_ids("raw").await?;
    ensure!(
        found == documents,
        "{found} of {documents} upserts are there"
    );
    drop_database(&name).await;
    Ok(CaughtUp {
        events: documents,
        documents,
        seconds,
        per_second: documents as f64 / seconds.max(f64::EPSILON),
    })
}

async fn drop_database(name: &str) {
    if let Ok(uri) = env("TESSERA_TEST_MONGODB_URI") {
        if let Ok(client) = mongodb::Client::with_uri_str(&uri).await {
            let _ = client.database(name).drop().await;
        }
    }
}

/// One projection reading the whole backlog from the start of the topic;
/// answers how fast, once every document is as the backlog makes it.
pub async fn project(
    projection: Arc<dyn Projection>,
    topic: &str,
    config: CatchupConfig,
    batch_size: usize,
) -> Result<CaughtUp> {
    let (store, name) = mongo().await?;
    let docs: Arc<dyn DocumentStore> = Arc::new(store);
    let instance = new_instance_id();
    let feed = KafkaFeed::new(
        KafkaFeedConfig {
            brokers: env("TESSERA_TEST_KAFKA_BROKERS")?,
            topic: topic.to_owned(),
            projection: projection.name(),
            instance: instance.clone(),
            idle_wait: Duration::from_millis(200),
            debug: None,
        },
        Arc::clone(&docs),
    )?;
    let name_of = projection.name();
    let is_accounts = name_of == collections::ACCOUNTS;
    let events = config.accounts * (config.charges_per_account + 1);
    let mut projector = Projector::new(
        projection,
        Arc::clone(&docs),
        Box::new(feed),
        RetryPolicy::default(),
    )
    .with_instance(instance)
    .with_batch_size(batch_size);
    projector.prepare().await?;
    let collection = tessera_documents::live::live(&*docs, name_of).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(900);
    let last = i64::try_from(events).unwrap_or(i64::MAX);
    // Caught up once every document is as the backlog makes it. The last
    // position handed out is not enough: partitions are read side by side,
    // so the last event may come while another partition is still behind.
    let documents = loop {
        ensure!(Instant::now() < deadline, "not caught up in 15 minutes");
        // Checked only once the feed runs dry: counting 20,000 history
        // entries after every batch cost more than projecting them (it made
        // `point_history` look 9x slower than it is).
        match projector.project_next().await? {
            Step::Processed { dead_lettered, .. } => {
                ensure!(dead_lettered == 0, "a catch-up dead-lettered events");
                continue;
            }
            Step::Idle => {}
        }
        if projector.position().is_none_or(|p| p.position < last) {
            continue;
        }
        if let Some(n) = caught_up(&*docs, &collection, is_accounts, config).await? {
            break n;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    drop(projector);
    drop_database(&name).await;
    Ok(CaughtUp {
        events,
        documents,
        seconds,
        per_second: events as f64 / seconds.max(f64::EPSILON),
    })
}

/// The documents written once the backlog is fully projected, `None` while
/// some are missing or behind.
async fn caught_up(
    docs: &dyn DocumentStore,
    collection: &str,
    is_accounts: bool,
    config: CatchupConfig,
) -> Result<Option<u64>> {
    if is_accounts {
        let expected = config.charges_per_account + 1;
        let ids: Vec<String> = (0..config.accounts).map(|a| format!("acc{a:05}")).collect();
        let found = docs.get_many(collection, &ids).await?;
        let done = found.len() as u64 == config.accounts
            && found
                .iter()
                .all(|d| d.body["version"].as_u64() == Some(expected));
        Ok(done.then_some(config.accounts))
    } else {
        let n = docs.list_all_ids(collection).await?;
        let charges = config.accounts * config.charges_per_account;
        ensure!(n <= charges, "{n} history entries for {charges} charges");
        Ok((n == charges).then_some(n))
    }
}

/// Both projections.
pub fn projections() -> [Arc<dyn Projection>; 2] {
    [Arc::new(Accounts), Arc::new(PointHistory)]
}

trait CountIds {
    async fn list_all_ids(&self, collection: &str) -> Result<u64>;
}

impl<S: DocumentStore + ?Sized> CountIds for S {
    async fn list_all_ids(&self, collection: &str) -> Result<u64> {
        let mut count = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list(
                    collection,
                    tessera_documents::store::ListQuery {
                        filter: None,
                        order: tessera_documents::store::Order::Asc,
                        after: after.as_deref(),
                        limit: 1_000,
                    },
                )
                .await?;
            let Some(last) = page.last() else {
                return Ok(count);
            };
            after = Some(last.id.clone());
            count += page.len() as u64;
        }
    }
}
