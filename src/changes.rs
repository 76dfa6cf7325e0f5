//! The change feed between processes (DESIGN.md §10): each projector
//! publishes the documents it wrote on a Kafka topic of their own (the
//! events topic's name and `-changes`), and every read API instance reads
//! all of it on its own, from its end when it starts, without a consumer
//! group, into the in-process feed its streams follow. A change lost
//! (a broker down) costs a stream one push, never a notification: a
//! stream catches up on those from the read model.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tessera_documents::changes::{Announce, Broadcast, Change};
use tessera_kafka::Context;
use tokio_util::sync::CancellationToken;

/// The topic the changes of a deployment go on.
pub fn changes_topic(events_topic: &str) -> String {
    format!("{events_topic}-changes")
}

/// One partition: changes need no order between documents, and one
/// partition is read from its end with one assignment.
const PARTITIONS: i32 = 1;

/// Makes the changes topic if it is not there yet.
pub async fn ensure_changes_topic(brokers: &str, topic: &str) -> Result<()> {
    tessera_write_side::relay::ensure_topic(brokers, topic, PARTITIONS)
        .await
        .with_context(|| format!("cannot make the change topic {topic}"))?;
    Ok(())
}

/// A projector's announcements, published fire-and-forget.
pub struct KafkaAnnounce {
    producer: FutureProducer<Context>,
    topic: String,
}

impl KafkaAnnounce {
    pub fn new(brokers: &str, topic: String) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // a push is wanted within a second: batch only briefly
            .set("linger.ms", "5")
            // a change older than this is not worth pushing any more
            .set("message.timeout.ms", "10000")
            .create_with_context(Context)
            .context("bad Kafka settings for the change feed")?;
        Ok(Self { producer, topic })
    }
}

impl Announce for KafkaAnnounce {
    fn announce(&self, changes: Vec<Change>) {
        for change in changes {
            let Ok(payload) = serde_json::to_vec(&change) else {
                continue;
            };
            let record = FutureRecord::to(&self.topic)
                .key(&change.id)
                .payload(&payload);
            // the delivery report is not awaited: a lost change costs one push
            if let Err((error, _)) = self.producer.send_result(record) {
                tracing::warn!(%error, projection = %change.projection, "a change was not published");
            }
        }
    }
}

/// Reads the change topic from its end into `feed` until `shutdown`.
pub async fn follow_changes(
    brokers: &str,
    topic: &str,
    feed: Broadcast,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let consumer: StreamConsumer<Context> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // required by librdkafka's consumer, though no group is joined
        .set("group.id", "tessera-read-api-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "20")
        .set("reconnect.backoff.max.ms", "1000")
        .create_with_context(Context)
        .context("bad Kafka settings for the change feed")?;
    let end = high_watermark(&consumer, topic).await;
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, end.map_or(Offset::End, Offset::Offset))
        .context("cannot name the change topic's partition")?;
    consumer
        .assign(&partitions)
        .context("cannot read the change topic")?;
    let consumer = Arc::new(consumer);
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                m = consumer.recv() => m,
            };
            match message {
                Ok(m) => {
                    let change = m
                        .payload()
                        .and_then(|p| serde_json::from_slice::<Change>(p).ok());
                    if let Some(change) = change {
                        feed.send(change);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the change feed failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }))
}

/// Where the change topic ends now (`None` if the broker does not say).
async fn high_watermark(consumer: &StreamConsumer<Context>, topic: &str) -> Option<i64> {
    // a blocking metadata request, once at start
    tokio::task::block_in_place(|| {
        consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(5))
            .ok()
            .map(|(_, high)| high)
    })
}
