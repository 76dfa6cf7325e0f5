//! A feed from Kafka: a member of a consumer group, committing offsets only
//! after the runner wrote the documents (at-least-once; folds are
//! idempotent, so a redelivery changes nothing).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tessera_events::{Envelope, LogPosition};

use super::{Delivery, EventFeed, FeedError};

/// How long to keep filling a batch once a first message arrived.
const FILL_WINDOW: Duration = Duration::from_millis(5);

pub struct KafkaFeed {
    consumer: StreamConsumer,
    topic: String,
    /// Next offset to commit per partition, for what was returned so far.
    uncommitted: BTreeMap<i32, i64>,
    last: Option<LogPosition>,
    idle_wait: Duration,
    /// When this member was last seen without any partition.
    unassigned_since: Option<Instant>,
    rejoin_after: Option<Duration>,
}

/// Default for [`KafkaFeed::with_rejoin_after`]: longer than the session
/// timeout, so that a healthy coordinator has expired dead members first.
pub const REJOIN_AFTER: Duration = Duration::from_secs(15);

fn feed_err(e: impl std::fmt::Display) -> FeedError {
    FeedError(e.to_string())
}

/// The consumer settings of a projector: manual offset commits, start from
/// the beginning of the topic for a new group.
pub fn consumer_config(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    config
}

impl KafkaFeed {
    pub fn new(
        brokers: &str,
        group_id: &str,
        topic: &str,
        idle_wait: Duration,
    ) -> Result<Self, FeedError> {
        Self::with_config(&consumer_config(brokers, group_id), topic, idle_wait)
    }

    pub fn with_config(
        config: &ClientConfig,
        topic: &str,
        idle_wait: Duration,
    ) -> Result<Self, FeedError> {
        let consumer: StreamConsumer = config.create().map_err(feed_err)?;
        consumer.subscribe(&[topic]).map_err(feed_err)?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            uncommitted: BTreeMap::new(),
            last: None,
            idle_wait,
            unassigned_since: None,
            rejoin_after: Some(REJOIN_AFTER),
        })
    }

    /// Re-joins the group after holding no partition for `after` (`None`:
    /// never).
    ///
    /// Why: a member that joins while a dead member is still registered can
    /// be handed the dead member's plan, with nothing for itself; a broker
    /// that then expires the dead member without starting a new rebalance
    /// (seen with tansu 0.6) leaves the live member idle for good. Re-joining
    /// starts the rebalance the broker skipped. On a healthy broker an empty
    /// assignment only happens with more members than partitions, where the
    /// cost is a rebalance every `after`.
    #[must_use]
    pub fn with_rejoin_after(mut self, after: Option<Duration>) -> Self {
        self.rejoin_after = after;
        self
    }

    fn rejoin_if_unassigned(&mut self) -> Result<(), FeedError> {
        let Some(after) = self.rejoin_after else {
            return Ok(());
        };
        let unassigned = self.consumer.assignment().is_ok_and(|a| a.count() == 0);
        if !unassigned {
            self.unassigned_since = None;
            return Ok(());
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= after {
            tracing::warn!(topic = %self.topic, idle_secs = since.elapsed().as_secs(), "no partitions assigned; re-joining the consumer group");
            self.consumer.unsubscribe();
            self.consumer.subscribe(&[&self.topic]).map_err(feed_err)?;
            self.unassigned_since = None;
        }
        Ok(())
    }

    fn decode(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) -> Delivery {
        self.uncommitted.insert(partition, offset + 1);
        let source = format!("{}/{partition}/{offset}", self.topic);
        let bytes = payload.unwrap_or_default();
        match serde_json::from_slice::<Envelope>(bytes) {
            Ok(envelope) => {
                // partitions interleave: the highest position seen, not the
                // last one
                let at = LogPosition {
                    tx_id: 0,
                    position: envelope.global_position,
                };
                self.last = self.last.max(Some(at));
                Delivery::Event(envelope)
            }
            Err(e) => Delivery::Undecodable {
                source,
                raw: String::from_utf8_lossy(bytes).into_owned(),
                error: e.to_string(),
            },
        }
    }
}

#[async_trait]
impl EventFeed for KafkaFeed {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, FeedError> {
        let mut batch = Vec::new();
        let mut window = self.idle_wait;
        while batch.len() < max {
            let message = match tokio::time::timeout(window, self.consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Err(e)) => {
                    if batch.is_empty() {
                        return Err(feed_err(e));
                    }
                    break;
                }
                Ok(Ok(m)) => (m.partition(), m.offset(), m.payload().map(<[u8]>::to_vec)),
            };
            let (partition, offset, payload) = message;
            let delivery = self.decode(partition, offset, payload.as_deref());
            batch.push(delivery);
            window = FILL_WINDOW;
        }
        if batch.is_empty() {
            self.rejoin_if_unassigned()?;
        }
        Ok(batch)
    }

    async fn commit(&mut self) -> Result<(), FeedError> {
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &self.uncommitted {
            offsets
                .add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
                .map_err(feed_err)?;
        }
        let result = self.consumer.commit(&offsets, CommitMode::Sync);
        self.uncommitted.clear();
        // A failed commit (a rebalance moved a partition away) only means
        // those events will be delivered again, and folds skip duplicates.
        if let Err(error) = result {
            tracing::warn!(%error, topic = %self.topic, "committing offsets failed; events will be redelivered");
        }
        Ok(())
    }

    fn position(&self) -> Option<LogPosition> {
        self.last
    }
}
