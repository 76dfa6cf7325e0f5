//! The projector consuming a real Kafka-protocol broker in a consumer group:
//! a crash between writing documents and committing offsets redelivers the
//! batch, and nothing is lost or applied twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tessera_events::{AccountEvent, Envelope, EventKind, LogPosition, Metadata};
use tessera_projector::documents::{collections, AccountDoc};
use tessera_projector::feed::kafka::KafkaFeed;
use tessera_projector::feed::{Delivery, EventFeed, FeedError};
use tessera_projector::projection::Accounts;
use tessera_projector::runner::{Projector, RetryPolicy, Step};
use tessera_projector::store::mongo::MongoStore;
use tessera_projector::store::DocumentStore;
use tessera_testkit::{Deadline, KafkaTopic, MongoDatabase};

fn charge(id: &str, sequence: u64) -> Envelope {
    let event = if sequence == 1 {
        AccountEvent::AccountRegistered {
            email: format!("{id}@x.y"),
            nickname: id.into(),
        }
    } else {
        AccountEvent::PointsCharged {
            amount: 1,
            balance: i64::try_from(sequence - 1).unwrap(),
            idempotency_key: format!("k{sequence}"),
        }
    };
    let metadata = Metadata::from_stored(&json!({}));
    Envelope {
        event_id: uuid::Uuid::now_v7(),
        aggregate_type: AccountEvent::AGGREGATE_TYPE.into(),
        aggregate_id: id.into(),
        sequence,
        global_position: 0,
        event_type: event.event_type().into(),
        event_version: event.event_version().into(),
        payload: serde_json::to_value(&event).unwrap(),
        metadata,
        recorded_at: chrono::Utc::now(),
    }
}

/// A feed that "crashes" on its n-th commit: documents are written, offsets
/// are not committed.
struct CrashOnCommit {
    inner: KafkaFeed,
    commits_left: usize,
}

#[async_trait]
impl EventFeed for CrashOnCommit {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, FeedError> {
        self.inner.next_batch(max).await
    }

    async fn commit(&mut self) -> Result<(), FeedError> {
        if self.commits_left == 0 {
            return Err(FeedError("crashed before committing".into()));
        }
        self.commits_left -= 1;
        self.inner.commit().await
    }

    fn position(&self) -> Option<LogPosition> {
        self.inner.position()
    }
}

async fn balances(docs: &Arc<dyn DocumentStore>, accounts: &[&str]) -> Vec<(u64, i64)> {
    let mut out = Vec::new();
    for a in accounts {
        let d: Option<AccountDoc> = docs
            .get(collections::ACCOUNTS, a)
            .await
            .unwrap()
            .map(|d| serde_json::from_value(d.body).unwrap());
        out.push(d.map_or((0, 0), |d| (d.version, d.balance)));
    }
    out
}

#[tokio::test]
async fn a_crash_before_the_offset_commit_redelivers_without_double_applying() {
    let kafka = KafkaTopic::create();
    create_topic(&kafka).await;
    let db = MongoDatabase::create();
    let docs: Arc<dyn DocumentStore> =
        Arc::new(MongoStore::connect(&db.uri, &db.name).await.unwrap());
    let accounts = ["a", "b", "c", "d"];
    let per_account = 60u64;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .unwrap();
    for s in 1..=per_account {
        for a in accounts {
            let payload = serde_json::to_vec(&charge(a, s)).unwrap();
            producer
                .send(
                    FutureRecord::to(&kafka.topic).key(a).payload(&payload),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
    }
    let group = kafka.group("accounts");
    let policy = RetryPolicy::default();

    // first instance: two batches commit, the third is written and then the
    // process "dies" before its offsets are committed
    let feed = CrashOnCommit {
        inner: KafkaFeed::new(
            &kafka.brokers,
            &group,
            &kafka.topic,
            Duration::from_millis(500),
        )
        .unwrap(),
        commits_left: 2,
    };
    let mut first = Projector::new(
        Arc::new(Accounts),
        Arc::clone(&docs),
        Box::new(feed),
        policy,
    )
    .with_batch_size(40);
    first.prepare().await.unwrap();
    let mut written = 0;
    let deadline = Deadline::new(
        Duration::from_secs(30),
        "the first instance handles three batches",
    );
    loop {
        match first.project_next().await {
            Ok(Step::Processed { events, .. }) => written += events,
            Ok(Step::Idle) => deadline.tick().await,
            Err(_) => break, // the crash
        }
    }
    assert!(written > 0);
    let before_crash = balances(&docs, &accounts).await;
    drop(first);

    // second instance, same group: resumes at the last committed offset
    let feed = KafkaFeed::new(
        &kafka.brokers,
        &group,
        &kafka.topic,
        Duration::from_millis(500),
    )
    .unwrap();
    let mut second = Projector::new(
        Arc::new(Accounts),
        Arc::clone(&docs),
        Box::new(feed),
        policy,
    );
    let expected: Vec<(u64, i64)> = accounts
        .iter()
        .map(|_| (per_account, i64::try_from(per_account).unwrap() - 1))
        .collect();
    let deadline = Deadline::new(Duration::from_secs(60), "the second instance catches up");
    let mut redelivered = 0;
    while balances(&docs, &accounts).await != expected {
        match second.project_next().await.unwrap() {
            Step::Processed {
                events,
                dead_lettered,
            } => {
                assert_eq!(dead_lettered, 0);
                redelivered += events;
            }
            Step::Idle => deadline.tick().await,
        }
    }
    let total = (per_account as usize) * accounts.len();
    let applied_before_crash: u64 = before_crash.iter().map(|(version, _)| version).sum();
    assert!(
        applied_before_crash as usize > written,
        "the crash left applied but uncommitted events ({applied_before_crash} applied, {written} committed)"
    );
    assert!(
        redelivered >= total - written,
        "everything after the last commit was delivered again ({redelivered} of {})",
        total - written
    );
    let dead = docs
        .find_ids(collections::DEAD_LETTERS, "pending_for", "accounts")
        .await
        .unwrap();
    assert!(
        dead.is_empty(),
        "duplicates are skipped, not dead-lettered: {dead:?}"
    );
}

async fn create_topic(kafka: &KafkaTopic) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .unwrap();
    admin
        .create_topics(
            [&NewTopic::new(&kafka.topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
}
