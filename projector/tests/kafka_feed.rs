//! The projector consuming a real Kafka-protocol broker, partitions shared
//! by leases in the document store: a crash between writing documents and
//! committing offsets redelivers the batch, and nothing is lost or applied
//! twice; instances share partitions and take a dead one's over; a topic
//! published again in a new epoch is read again from its start.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tessera_documents::documents::{collections, AccountDoc};
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::DocumentStore;
use tessera_events::{AccountEvent, Envelope, LogPosition};
use tessera_projector::feed::kafka::{KafkaFeed, KafkaFeedConfig, EPOCH_HEADER, LEASE_TTL};
use tessera_projector::feed::{Delivery, EventFeed, FeedError};
use tessera_projector::projection::Accounts;
use tessera_projector::runner::{new_instance_id, Projector, RetryPolicy, Step};
use tessera_testkit::{Deadline, KafkaTopic, MongoDatabase};

fn charge(id: &str, sequence: u64) -> Envelope {
    let event = AccountEvent::charging(id, sequence, 1);
    Envelope::fresh(id, sequence, 0, &event, chrono::Utc::now()).unwrap()
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
            return Err(FeedError::new("crashed before committing"));
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
    let producer = producer(&kafka);
    let all: Vec<Envelope> = (1..=per_account)
        .flat_map(|s| accounts.map(|a| charge(a, s)))
        .collect();
    // sent at once, so the broker stores them in batches: the second
    // instance resumes inside one
    publish_all(&producer, &kafka, &all, "epoch-1").await;
    let policy = RetryPolicy::default();

    // first instance: two batches commit, the third is written and then the
    // process "dies" before its offsets are committed
    let instance = new_instance_id();
    let crashing = CrashOnCommit {
        inner: feed(&kafka, &docs, &instance),
        commits_left: 2,
    };
    let mut first = Projector::new(
        Arc::new(Accounts),
        Arc::clone(&docs),
        Box::new(crashing),
        policy,
    )
    .with_instance(instance)
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

    // second instance: takes the partitions once the first one's lease
    // ran out, and resumes at the last committed offsets
    let instance = new_instance_id();
    let mut second = Projector::new(
        Arc::new(Accounts),
        Arc::clone(&docs),
        Box::new(feed(&kafka, &docs, &instance)),
        policy,
    )
    .with_instance(instance);
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

fn producer(kafka: &KafkaTopic) -> FutureProducer {
    // batched as the relay batches (a consumer resuming inside a batch must
    // skip nothing on tansu, see `tessera_kafka::MESSAGES_PER_BATCH`)
    ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set(
            "batch.num.messages",
            tessera_kafka::MESSAGES_PER_BATCH.to_string(),
        )
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

async fn publish(producer: &FutureProducer, kafka: &KafkaTopic, e: &Envelope, epoch: &str) {
    let payload = serde_json::to_vec(e).unwrap();
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: EPOCH_HEADER,
        value: Some(epoch.as_bytes()),
    });
    producer
        .send(
            FutureRecord::to(&kafka.topic)
                .key(&e.aggregate_id)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
}

async fn publish_all(producer: &FutureProducer, kafka: &KafkaTopic, all: &[Envelope], epoch: &str) {
    let mut deliveries = Vec::new();
    for e in all {
        let payload = serde_json::to_vec(e).unwrap();
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: EPOCH_HEADER,
            value: Some(epoch.as_bytes()),
        });
        let record = FutureRecord::to(&kafka.topic)
            .key(&e.aggregate_id)
            .payload(&payload)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for d in deliveries {
        d.await.unwrap().unwrap();
    }
}

fn feed(kafka: &KafkaTopic, docs: &Arc<dyn DocumentStore>, instance: &str) -> KafkaFeed {
    KafkaFeed::new(
        KafkaFeedConfig {
            brokers: kafka.brokers.clone(),
            topic: kafka.topic.clone(),
            projection: "accounts",
            instance: instance.to_owned(),
            idle_wait: Duration::from_millis(200),
            debug: None,
        },
        Arc::clone(docs),
    )
    .unwrap()
}

fn projector(kafka: &KafkaTopic, docs: &Arc<dyn DocumentStore>) -> Projector {
    let instance = new_instance_id();
    Projector::new(
        Arc::new(Accounts),
        Arc::clone(docs),
        Box::new(feed(kafka, docs, &instance)),
        RetryPolicy::default(),
    )
    .with_instance(instance)
    .with_batch_size(50)
}

#[tokio::test]
async fn instances_share_the_partitions_and_take_over_a_dead_ones() {
    let kafka = KafkaTopic::create();
    create_topic(&kafka).await; // three partitions
    let db = MongoDatabase::create();
    let docs: Arc<dyn DocumentStore> =
        Arc::new(MongoStore::connect(&db.uri, &db.name).await.unwrap());
    let producer = producer(&kafka);
    let accounts: Vec<String> = (0..12).map(|i| format!("acc{i}")).collect();
    let ids: Vec<&str> = accounts.iter().map(String::as_str).collect();
    for a in &ids {
        publish(&producer, &kafka, &charge(a, 1), "e").await;
    }
    let mut a = projector(&kafka, &docs);
    let mut b = projector(&kafka, &docs);
    let deadline = Deadline::new(
        Duration::from_secs(30),
        "the instances split the partitions and every account is registered",
    );
    loop {
        a.project_next().await.unwrap();
        b.project_next().await.unwrap();
        let split = (
            owned_by(&docs, a.instance()).await,
            owned_by(&docs, b.instance()).await,
        );
        let registered = balances(&docs, &ids).await.iter().all(|(v, _)| *v == 1);
        if registered && (split == (2, 1) || split == (1, 2)) {
            break;
        }
        deadline.tick().await;
    }

    // b dies: once its lease ran out, a reads everything, b's share included
    drop(b);
    let died = std::time::Instant::now();
    for id in &ids {
        publish(&producer, &kafka, &charge(id, 2), "e").await;
    }
    let deadline = Deadline::new(
        Duration::from_secs(60),
        "a takes b's partitions and catches up",
    );
    while !balances(&docs, &ids).await.iter().all(|(v, _)| *v == 2) {
        if let Step::Processed { dead_lettered, .. } = a.project_next().await.unwrap() {
            assert_eq!(dead_lettered, 0);
        }
        deadline.tick().await;
    }
    let took = died.elapsed();
    assert!(
        took < LEASE_TTL + Duration::from_secs(10),
        "taken over in {took:?}: within the lease and a few balance rounds"
    );
    assert_eq!(owned_by(&docs, a.instance()).await, 3);
}

#[tokio::test]
async fn a_topic_published_again_in_a_new_epoch_is_read_again_from_its_start() {
    let kafka = KafkaTopic::create();
    create_topic(&kafka).await;
    let db = MongoDatabase::create();
    let docs: Arc<dyn DocumentStore> =
        Arc::new(MongoStore::connect(&db.uri, &db.name).await.unwrap());
    let producer = producer(&kafka);
    for s in 1..=3 {
        publish(&producer, &kafka, &charge("x", s), "old").await;
    }
    let mut p = projector(&kafka, &docs);
    let deadline = Deadline::new(Duration::from_secs(30), "x reaches version 3");
    while balances(&docs, &["x"]).await != [(3, 2)] {
        p.project_next().await.unwrap();
        deadline.tick().await;
    }
    // the relay publishes the whole log again in a new epoch (its broker
    // lost the topic), here after the old messages: the new epoch's first
    // message sends the feed back to the start of the partition; what it
    // reads again is skipped as duplicate and the new event applies
    for s in 1..=4 {
        publish(&producer, &kafka, &charge("x", s), "new").await;
    }
    let deadline = Deadline::new(Duration::from_secs(30), "x reaches version 4");
    while balances(&docs, &["x"]).await != [(4, 3)] {
        if let Step::Processed { dead_lettered, .. } = p.project_next().await.unwrap() {
            assert_eq!(dead_lettered, 0, "nothing is a gap");
        }
        deadline.tick().await;
    }
}

/// How many partitions the leases give `instance`.
async fn owned_by(docs: &Arc<dyn DocumentStore>, instance: &str) -> usize {
    let Some(doc) = docs
        .get(tessera_projector::feed::kafka::PARTITIONS, "accounts")
        .await
        .unwrap()
    else {
        return 0;
    };
    let leases: tessera_projector::feed::kafka::PartitionsDoc =
        serde_json::from_value(doc.body).unwrap();
    leases
        .partitions
        .values()
        .filter(|l| l.owner.as_deref() == Some(instance))
        .count()
}

async fn create_topic(kafka: &KafkaTopic) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            [&NewTopic::new(&kafka.topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[tokio::test]
async fn a_broker_restarted_empty_is_read_again_from_the_start() {
    let mut broker = tessera_testkit::Broker::reserve();
    broker.start().await;
    let kafka = KafkaTopic {
        brokers: broker.brokers(),
        topic: format!("restarted_{}", uuid::Uuid::new_v4().simple()),
    };
    create_topic(&kafka).await;
    let db = MongoDatabase::create();
    let docs: Arc<dyn DocumentStore> =
        Arc::new(MongoStore::connect(&db.uri, &db.name).await.unwrap());
    let producer_a = producer(&kafka);
    for s in 1..=5 {
        publish(&producer_a, &kafka, &charge("y", s), "first").await;
    }
    let mut p = projector(&kafka, &docs);
    let deadline = Deadline::new(Duration::from_secs(30), "y reaches version 5");
    while balances(&docs, &["y"]).await != [(5, 4)] {
        p.project_next().await.unwrap();
        deadline.tick().await;
    }
    // the broker loses everything; the feed waits (fetching a topic the
    // broker does not know would crash librdkafka on tansu's answer) until
    // the relay made the topic again and published the whole log in a new
    // epoch, and one more event
    broker.stop();
    broker.start().await;
    let deadline = Deadline::new(Duration::from_secs(10), "the feed notices the restart");
    for _ in 0..5 {
        let _ = p.project_next().await; // fetching nothing it must not
        deadline.tick().await;
    }
    create_topic(&kafka).await;
    let producer_b = producer(&kafka);
    for s in 1..=6 {
        publish(&producer_b, &kafka, &charge("y", s), "second").await;
    }
    let deadline = Deadline::new(Duration::from_secs(60), "y reaches version 6");
    while balances(&docs, &["y"]).await != [(6, 5)] {
        match p.project_next().await {
            Ok(Step::Processed { dead_lettered, .. }) => assert_eq!(dead_lettered, 0),
            Ok(Step::Idle) | Err(_) => {} // reconnecting
        }
        deadline.tick().await;
    }
}
