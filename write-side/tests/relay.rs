//! The relay on real PostgreSQL and a real Kafka-protocol broker (tansu).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use sqlx::PgPool;
use tessera_events::{Envelope, EventLog};
use tessera_testkit::{Broker, Deadline, KafkaTopic, PgDatabase};
use tessera_write_side::bus::{BusConfig, CommandBus, CommandContext};
use tessera_write_side::domain::account::{Account, AccountCommand};
use tessera_write_side::relay::{ensure_topic, Relay, RelayConfig, RelayStep, EPOCH_HEADER};
use tessera_write_side::store::{postgres, Store};
use tokio_util::sync::CancellationToken;

async fn setup(db: &PgDatabase) -> (PgPool, CommandBus<Account>) {
    let pool = db.pool(8).await;
    postgres::migrate(&pool).await.unwrap();
    let bus = CommandBus::new(
        Store::new(postgres::repo(pool.clone())),
        (),
        BusConfig::default(),
    );
    (pool, bus)
}

fn config(topic: &str) -> RelayConfig {
    RelayConfig {
        topic: topic.into(),
        batch_size: 7, // small, so several batches and checkpoints happen
        poll_interval: Duration::from_millis(100),
        publish_timeout: Duration::from_secs(3),
        stall_after: Duration::from_secs(2),
        ..RelayConfig::default()
    }
}

async fn account_with_charges(bus: &CommandBus<Account>, id: &str, charges: usize) {
    let ctx = CommandContext::new(id, None);
    bus.execute(
        id,
        AccountCommand::Register {
            email: format!("{id}@x.y"),
            nickname: "n".into(),
        },
        &ctx,
        |_| (),
    )
    .await
    .unwrap();
    for i in 0..charges {
        bus.execute(
            id,
            AccountCommand::Charge {
                amount: 1,
                idempotency_key: format!("{i}"),
            },
            &ctx,
            |_| (),
        )
        .await
        .unwrap();
    }
}

/// Reads the topic from the start with a group of its own.
struct Reader {
    consumer: StreamConsumer,
    seen: Vec<Envelope>,
    epochs: Vec<String>,
}

impl Reader {
    fn new(brokers: &str, topic: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set(
                "group.id",
                format!("{topic}.reader.{}", uuid::Uuid::new_v4()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        Self {
            consumer,
            seen: Vec::new(),
            epochs: Vec::new(),
        }
    }

    /// Reads until every aggregate of `expected` has arrived up to its
    /// sequence (duplicates may come on top).
    async fn read_up_to(&mut self, expected: &[(&str, u64)]) -> Vec<Envelope> {
        loop {
            let by = sequences(&self.seen);
            if expected
                .iter()
                .all(|(a, s)| by.get(*a).and_then(|v| v.iter().max()) == Some(s))
            {
                return self.seen.clone();
            }
            let n = self.seen.len() + 1;
            self.read(n).await;
        }
    }

    /// Reads until `n` messages arrived (or panics after the deadline).
    async fn read(&mut self, n: usize) -> &[Envelope] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.seen.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = tokio::time::timeout(left, self.consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} messages arrived", self.seen.len()))
                .unwrap();
            let envelope: Envelope = serde_json::from_slice(m.payload().unwrap()).unwrap();
            use rdkafka::message::Headers;
            let epoch = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == EPOCH_HEADER))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .expect("every message names its epoch");
            self.epochs.push(epoch);
            assert_eq!(
                m.key(),
                Some(envelope.aggregate_id.as_bytes()),
                "keyed by aggregate id"
            );
            self.seen.push(envelope);
        }
        &self.seen
    }
}

/// Per aggregate, the sequences in the order they arrived.
fn sequences(envelopes: &[Envelope]) -> BTreeMap<String, Vec<u64>> {
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in envelopes {
        by.entry(e.aggregate_id.clone())
            .or_default()
            .push(e.sequence);
    }
    by
}

async fn drain(relay: &mut Relay) -> usize {
    let mut total = 0;
    loop {
        match relay.relay_next().await.unwrap() {
            RelayStep::Published(n) => total += n,
            RelayStep::Idle => return total,
        }
    }
}

#[tokio::test]
async fn every_event_is_published_once_in_order_per_aggregate_and_the_checkpoint_holds() {
    let db = PgDatabase::create().await;
    let kafka = KafkaTopic::create();
    let (pool, bus) = setup(&db).await;
    ensure_topic(&kafka.brokers, &kafka.topic, 4).await.unwrap();
    for a in ["a", "b", "c"] {
        account_with_charges(&bus, a, 9).await;
    }
    let mut relay = Relay::new(pool.clone(), &kafka.brokers, config(&kafka.topic))
        .await
        .unwrap();
    assert_eq!(drain(&mut relay).await, 30);

    // a new relay resumes from the stored checkpoint: nothing is sent twice
    let mut again = Relay::new(pool.clone(), &kafka.brokers, config(&kafka.topic))
        .await
        .unwrap();
    assert_eq!(again.checkpoint(), relay.checkpoint());
    assert_eq!(drain(&mut again).await, 0);
    account_with_charges(&bus, "d", 1).await;
    assert_eq!(drain(&mut again).await, 2);

    let mut reader = Reader::new(&kafka.brokers, &kafka.topic);
    let seen = reader.read(32).await.to_vec();
    let by = sequences(&seen);
    for a in ["a", "b", "c"] {
        assert_eq!(
            by[a],
            (1..=10).collect::<Vec<_>>(),
            "aggregate {a} in order, once each"
        );
    }
    assert_eq!(by["d"], [1, 2]);
    assert!(seen
        .iter()
        .all(|e| e.event_version == "1.0" && !e.event_id.is_nil()));
}

#[tokio::test]
async fn an_event_committed_late_is_published_not_skipped() {
    let db = PgDatabase::create().await;
    let kafka = KafkaTopic::create();
    let (pool, _bus) = setup(&db).await;
    ensure_topic(&kafka.brokers, &kafka.topic, 2).await.unwrap();
    let insert = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                  VALUES ('account', $1, 1, 'AccountRegistered', '1.0', $2, '{}')";
    let payload = serde_json::json!({"type": "AccountRegistered", "email": "e", "nickname": "n"});
    let mut late = pool.begin().await.unwrap();
    sqlx::query(insert)
        .bind("late")
        .bind(&payload)
        .execute(&mut *late)
        .await
        .unwrap();
    sqlx::query(insert)
        .bind("early")
        .bind(&payload)
        .execute(&pool)
        .await
        .unwrap();

    let mut relay = Relay::new(pool.clone(), &kafka.brokers, config(&kafka.topic))
        .await
        .unwrap();
    assert_eq!(
        relay.relay_next().await.unwrap(),
        RelayStep::Idle,
        "held back behind the open transaction"
    );
    late.commit().await.unwrap();
    let mut published = 0;
    let deadline = Deadline::new(Duration::from_secs(10), "both events are published");
    while published < 2 {
        if let RelayStep::Published(n) = relay.relay_next().await.unwrap() {
            published += n;
        } else {
            deadline.tick().await;
        }
    }
    assert_eq!(published, 2);
    let mut reader = Reader::new(&kafka.brokers, &kafka.topic);
    let mut ids: Vec<_> = reader
        .read(2)
        .await
        .iter()
        .map(|e| e.aggregate_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["early", "late"]);
}

#[tokio::test]
async fn commands_succeed_while_kafka_is_down_and_the_relay_catches_up() {
    let db = PgDatabase::create().await;
    let (pool, bus) = setup(&db).await;
    let mut broker = Broker::reserve(); // nothing listens there yet
    let topic = format!("down_{}", uuid::Uuid::new_v4().simple());
    let mut relay = Relay::new(pool.clone(), &broker.brokers(), config(&topic))
        .await
        .unwrap();

    account_with_charges(&bus, "patient", 11).await; // the write side does not need Kafka
                                                     // rows become readable once every older transaction on the cluster has
                                                     // ended (the commit-order horizon); parallel tests hold some open
    let log = postgres::PgEventLog::new(pool.clone());
    let deadline = Deadline::new(Duration::from_secs(30), "the events are past the horizon");
    while log
        .read_after(tessera_events::LogPosition::START, 100)
        .await
        .unwrap()
        .is_empty()
    {
        deadline.tick().await;
    }
    assert!(
        relay.relay_next().await.is_err(),
        "publishing fails while the broker is down"
    );
    assert_eq!(
        relay.checkpoint(),
        tessera_events::LogPosition::START,
        "and the checkpoint stays"
    );

    broker.start().await;
    ensure_topic(&broker.brokers(), &topic, 2).await.unwrap();
    let mut total = 0;
    let deadline = Deadline::new(Duration::from_secs(60), "the relay caught up");
    loop {
        match relay.relay_next().await {
            Ok(RelayStep::Published(n)) => total += n,
            Ok(RelayStep::Idle) if total >= 12 => break,
            Ok(RelayStep::Idle) | Err(_) => deadline.tick().await, // still reconnecting
        }
    }
    let mut reader = Reader::new(&broker.brokers(), &topic);
    let seen = reader.read(12).await.to_vec();
    let by = sequences(&seen);
    // a failed batch may have been delivered partly; duplicates are allowed,
    // losses are not
    let mut distinct = by["patient"].clone();
    distinct.dedup();
    assert_eq!(distinct, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_second_relay_stands_by_until_the_first_one_stops() {
    let db = PgDatabase::create().await;
    let kafka = KafkaTopic::create();
    let (pool, bus) = setup(&db).await;
    ensure_topic(&kafka.brokers, &kafka.topic, 2).await.unwrap();
    let first_stop = CancellationToken::new();
    let second_stop = CancellationToken::new();
    let first = Relay::new(pool.clone(), &kafka.brokers, config(&kafka.topic))
        .await
        .unwrap();
    let first = tokio::spawn(first.run(first_stop.clone()));
    let mut reader = Reader::new(&kafka.brokers, &kafka.topic);
    account_with_charges(&bus, "one", 4).await;
    reader.read(5).await;
    let second = Relay::new(pool.clone(), &kafka.brokers, config(&kafka.topic))
        .await
        .unwrap();
    let second = tokio::spawn(second.run(second_stop.clone()));
    account_with_charges(&bus, "two", 4).await;
    reader.read(10).await;

    first_stop.cancel();
    first.await.unwrap().unwrap();
    account_with_charges(&bus, "three", 4).await; // only the standby can publish these
    let seen = reader.read(15).await.to_vec();
    second_stop.cancel();
    second.await.unwrap().unwrap();
    let by = sequences(&seen);
    for a in ["one", "two", "three"] {
        assert_eq!(by[a], [1, 2, 3, 4, 5], "{a}: published once, in order");
    }
    assert_eq!(seen.len(), 15, "no relay published what the other one had");
}

/// Per aggregate, the sequences as they arrived must be the whole history,
/// possibly repeated from some point on, never with a hole: a consumer that
/// applies "next or duplicate" reads it all.
fn assert_gap_free(by: &BTreeMap<String, Vec<u64>>, expected: u64) {
    for (aggregate, seqs) in by {
        let mut have = 0;
        for s in seqs {
            assert!(
                *s <= have + 1,
                "{aggregate}: {s} arrived after {have} (a hole): {seqs:?}"
            );
            have = have.max(*s);
        }
        assert_eq!(have, expected, "{aggregate}: all of it arrived: {seqs:?}");
    }
}

#[tokio::test]
async fn a_paused_broker_is_waited_out_and_the_relay_says_it_is_stalled_meanwhile() {
    let db = PgDatabase::create().await;
    let (pool, bus) = setup(&db).await;
    let mut broker = Broker::reserve();
    broker.start().await;
    let topic = format!("paused_{}", uuid::Uuid::new_v4().simple());
    ensure_topic(&broker.brokers(), &topic, 2).await.unwrap();
    let relay = Relay::new(pool.clone(), &broker.brokers(), config(&topic))
        .await
        .unwrap();
    let progress = relay.progress();
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    for a in ["p1", "p2", "p3"] {
        account_with_charges(&bus, a, 3).await;
    }
    let mut reader = Reader::new(&broker.brokers(), &topic);
    reader.read(12).await;

    broker.pause();
    for a in ["p1", "p2", "p3"] {
        for i in 10..16 {
            charge(&bus, a, i).await; // commands do not need the broker
        }
    }
    let deadline = Deadline::new(Duration::from_secs(30), "the relay reports itself stalled");
    while progress.stalled().is_ok() {
        deadline.tick().await;
    }
    assert!(
        progress.lag_events() > 0,
        "the lag counts the waiting events"
    );
    // paused for longer than a publish may take: the producer is replaced
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.resume();
    let deadline = Deadline::new(Duration::from_secs(60), "the relay catches up by itself");
    while progress.stalled().is_err() || progress.lag_events() > 0 {
        deadline.tick().await;
    }
    let seen = reader
        .read_up_to(&[("p1", 10), ("p2", 10), ("p3", 10)])
        .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_gap_free(&sequences(&seen), 10);
}

#[tokio::test]
async fn a_broker_that_lost_its_data_gets_the_whole_log_again_in_a_new_epoch() {
    let db = PgDatabase::create().await;
    let (pool, bus) = setup(&db).await;
    let mut broker = Broker::reserve();
    broker.start().await;
    let topic = format!("lost_{}", uuid::Uuid::new_v4().simple());
    account_with_charges(&bus, "kept", 4).await;
    let mut relay = Relay::new(pool.clone(), &broker.brokers(), config(&topic))
        .await
        .unwrap();
    let deadline = Deadline::new(Duration::from_secs(30), "the first events are published");
    let mut published = 0;
    while published < 5 {
        match relay.relay_next().await {
            Ok(RelayStep::Published(n)) => published += n,
            _ => deadline.tick().await,
        }
    }
    let first_epoch = relay.epoch().to_owned();

    // the broker restarts empty (memory storage): the topic is gone
    broker.stop();
    broker.start().await;
    account_with_charges(&bus, "later", 1).await;
    let deadline = Deadline::new(
        Duration::from_secs(60),
        "the relay publishes everything again",
    );
    let mut republished = 0;
    while republished < 7 {
        match relay.relay_next().await {
            Ok(RelayStep::Published(n)) => republished += n,
            _ => deadline.tick().await, // reconnecting
        }
    }
    assert_ne!(relay.epoch(), first_epoch, "a new epoch");
    let mut reader = Reader::new(&broker.brokers(), &topic);
    let seen = reader.read(7).await.to_vec();
    let by = sequences(&seen);
    assert_eq!(
        by["kept"],
        [1, 2, 3, 4, 5],
        "the history from before the loss, again"
    );
    assert_eq!(by["later"], [1, 2]);
    assert!(reader.epochs.iter().all(|e| e == relay.epoch()));
}

async fn charge(bus: &CommandBus<Account>, id: &str, i: usize) {
    bus.execute(
        id,
        AccountCommand::Charge {
            amount: 1,
            idempotency_key: format!("{i}"),
        },
        &CommandContext::new(id, None),
        |_| (),
    )
    .await
    .unwrap();
}
