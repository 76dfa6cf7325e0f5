//! A feed from Kafka. Partitions are shared among a projection's live
//! instances by leases kept in the document store, not by a Kafka consumer
//! group, and offsets are kept there too, written only after the runner
//! wrote the documents (at-least-once; folds are idempotent, so a
//! redelivery changes nothing).
//!
//! Why not a consumer group: on tansu (the Kafka-protocol broker these
//! machines test with) a group can be left with partitions nobody consumes
//! after a member dies or the broker pauses, offsets are lost with the
//! broker, and a member joining a stalled group may wait for good. Leases
//! behave the same on tansu and on Kafka, and a restarted instance takes
//! its partitions back as soon as the dead one's heartbeat is older than
//! [`LEASE_TTL`], not after a session timeout and a rebalance.
//!
//! How partitions are shared (see [`Lease`]): every instance beats in
//! `projector_instances` (the runner does that); the live instances, sorted
//! by id, take partition `p` in turn (`p mod n`). An instance releases a
//! partition another live instance should have, after committing it, and
//! takes a partition it should have once nobody alive holds it. Two
//! instances may briefly read one partition (one paused past its lease);
//! document writes are compare-and-set and folds skip duplicates, so that
//! costs work, not correctness, and the late one's offset write fails and
//! it lets go.
//!
//! A message names the topic epoch the relay published it in. A partition
//! whose next message has another epoch than the one its offset belongs to
//! was published again from scratch (the broker lost its data): the feed
//! starts that partition over from its beginning.
//!
//! The feed never fetches a topic the broker does not have. tansu answers
//! such a fetch with a zero topic id and a "current leader", and librdkafka
//! 2.12 dereferences the missing topic name of that answer and crashes the
//! process (`rd_kafka_metadata_update_op`). So when a broker connection
//! breaks (a restarted broker has lost its memory-stored topics) a guard
//! task pauses every partition at once, and the feed resumes them only
//! once the topic's metadata shows it again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tessera_events::{Envelope, LogPosition};

use super::{Delivery, EventFeed, FeedError};
use tessera_documents::live;
use tessera_documents::store::{DocumentStore, Write, Written};

/// How long to keep filling a batch once a first message arrived.
const FILL_WINDOW: Duration = Duration::from_millis(5);
/// An instance whose heartbeat is older than this has lost its partitions.
/// The runner beats every 2 s, so this is three missed beats.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often the feed looks at who is alive and moves partitions.
const BALANCE_EVERY: Duration = Duration::from_secs(1);
/// How often the partitions' ends are read for the lag.
const LAG_EVERY: Duration = Duration::from_secs(2);
pub use tessera_kafka::EPOCH_HEADER;
/// How far before a stored offset a partition is read again (a batch).
const MARGIN: i64 = tessera_kafka::MESSAGES_PER_BATCH as i64;
/// Collection of partition leases and offsets, one document per projection.
pub const PARTITIONS: &str = "projector_partitions";

/// Who reads a partition, and where the projection is in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The instance reading it; `None`: free.
    pub owner: Option<String>,
    /// The next offset to read: everything before it is in the documents.
    pub next_offset: i64,
    /// The topic epoch `next_offset` belongs to.
    pub epoch: Option<String>,
}

/// The leases of one projection's partitions (keys: partition numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionsDoc {
    pub projection: String,
    pub partitions: BTreeMap<String, Lease>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What balancing decided for this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balance {
    pub take: Vec<i32>,
    pub release: Vec<i32>,
}

/// Decides which partitions `me` takes and releases, given the live
/// instances (`me` among them) and the current leases. Pure, so the rules
/// are tested without a broker.
pub fn balance(
    me: &str,
    live: &BTreeSet<String>,
    partitions: &[i32],
    leases: &BTreeMap<String, Lease>,
) -> Balance {
    let instances: Vec<&String> = live.iter().collect();
    let mut out = Balance::default();
    if instances.is_empty() {
        return out;
    }
    for (i, &p) in partitions.iter().enumerate() {
        let should = instances[i % instances.len()].as_str();
        let owner = leases.get(&p.to_string()).and_then(|l| l.owner.as_deref());
        match owner {
            Some(o) if o == me => {
                if should != me {
                    out.release.push(p);
                }
            }
            Some(o) if live.contains(o) => {} // its owner lets go when it sees us
            _ => {
                if should == me {
                    out.take.push(p);
                }
            }
        }
    }
    out
}

/// A partition this instance reads.
#[derive(Debug, Clone)]
struct Owned {
    /// The next offset to hand out.
    read: i64,
    /// The next offset as stored (what was committed).
    committed: i64,
    /// The newest epoch seen: the one the stored offset belongs to.
    epoch: Option<String>,
    /// Every epoch seen since this instance took the partition: a message
    /// of one of these is read on; only an unknown epoch starts over (the
    /// partition may still hold an older epoch's messages before the new
    /// epoch's, and reading it again from the start passes through them).
    known: BTreeSet<String>,
}

impl Owned {
    fn at(next_offset: i64, epoch: Option<String>) -> Self {
        Self {
            read: next_offset,
            committed: next_offset,
            known: epoch.iter().cloned().collect(),
            epoch,
        }
    }

    /// Back to the start of the partition (a new epoch, or a topic made
    /// again); the start is written at the next commit.
    fn restart(&mut self, epoch: Option<String>) {
        self.read = 0;
        self.committed = -1;
        if let Some(e) = &epoch {
            self.known.insert(e.clone());
        }
        self.epoch = epoch;
    }
}

#[derive(Debug, Clone)]
pub struct KafkaFeedConfig {
    pub brokers: String,
    pub topic: String,
    /// The projection whose documents this feed fills (the leases' key).
    pub projection: &'static str,
    /// This instance, as the runner beats it (see [`tessera_documents::live::beat`]).
    pub instance: String,
    /// How long `next_batch` waits for a first message.
    pub idle_wait: Duration,
    /// librdkafka debug contexts, for diagnosis.
    pub debug: Option<String>,
}

type Client = StreamConsumer<tessera_kafka::Context>;

pub struct KafkaFeed {
    consumer: Arc<Client>,
    /// Set by the guard: the partitions are paused until the topic is seen.
    suspended: Arc<AtomicBool>,
    guard: tokio::task::JoinHandle<()>,
    docs: Arc<dyn DocumentStore>,
    config: KafkaFeedConfig,
    owned: BTreeMap<i32, Owned>,
    /// The topic's partitions, once known.
    partitions: Vec<i32>,
    last: Option<LogPosition>,
    next_balance: Instant,
    next_lag: Instant,
    lag: Option<u64>,
}

fn feed_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> FeedError {
    FeedError::new(e)
}

/// The consumer settings of a projector: no group (partitions are assigned
/// by leases) and short fetch waits.
///
/// Kafka answers a fetch as soon as data is there, but tansu answers only
/// after half its wait, so the wait is what an event's delivery may take
/// on tansu. Each projection has its own consumer, so an idle projector
/// sends twenty of these fetches at a time. Measured on an idle four-role
/// stack (debug build), 20 ms against 100 ms: tansu 22 % of a core against
/// 6 %, the projector 10 % against 7 %; a charge read back through
/// `min_version` 125 ms against 158 ms (median of 40); the whole test suite
/// 334 s against 326 s.
pub fn consumer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        // required by librdkafka's consumer, though no group is joined
        .set("group.id", "tessera-projector-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // an offset Kafka no longer has (or a topic made again): read it all
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        // a fetch the broker never answers is given up after 10 s and
        // sent again, not after the default 60 s: tansu sometimes leaves
        // one unanswered ("held back by preceeding FetchRequest with
        // timeout in 57745ms"), and the fault suite saw reads stay behind
        // for over a minute while it waited
        .set("socket.timeout.ms", "10000")
        .set("fetch.error.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    config
}

impl KafkaFeed {
    pub fn new(config: KafkaFeedConfig, docs: Arc<dyn DocumentStore>) -> Result<Self, FeedError> {
        let mut client = consumer_config(&config.brokers);
        if let Some(debug) = &config.debug {
            client.set("debug", debug);
        }
        let consumer: Client = client
            .create_with_context(tessera_kafka::Context)
            .map_err(feed_err)?;
        let consumer = Arc::new(consumer);
        let suspended = Arc::new(AtomicBool::new(false));
        let guard = tokio::spawn(guard(
            Arc::downgrade(&consumer),
            tessera_kafka::watch_brokers(&config.brokers),
            Arc::clone(&suspended),
            config.projection,
        ));
        let now = Instant::now();
        Ok(Self {
            consumer,
            suspended,
            guard,
            docs,
            config,
            owned: BTreeMap::new(),
            partitions: Vec::new(),
            last: None,
            next_balance: now,
            next_lag: now,
            lag: None,
        })
    }

    /// The partitions this instance reads now.
    pub fn owned(&self) -> Vec<i32> {
        self.owned.keys().copied().collect()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Client) -> T + Send + 'static,
    ) -> Result<T, FeedError> {
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || f(&consumer))
            .await
            .map_err(feed_err)
    }

    /// After the guard paused everything: resumes once the broker shows the
    /// topic again. `false`: still waiting.
    async fn resume_if_topic_is_back(&mut self) -> bool {
        if let Err(error) = self.load_partitions().await {
            tracing::debug!(projection = self.config.projection, %error, "the broker does not answer yet");
            return false;
        }
        if self.partitions.is_empty() {
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        for p in self.owned.keys() {
            tpl.add_partition(&self.config.topic, *p);
        }
        let _ = self.consumer.resume(&tpl);
        self.suspended.store(false, Ordering::SeqCst);
        self.assign();
        tracing::info!(
            projection = self.config.projection,
            "the broker shows the topic again; reading on"
        );
        true
    }

    async fn load_partitions(&mut self) -> Result<(), FeedError> {
        let topic = self.config.topic.clone();
        let found = self
            .blocking(move |c| {
                c.fetch_metadata(Some(&topic), Duration::from_secs(3))
                    .map(|m| {
                        m.topics()
                            .iter()
                            .filter(|t| t.error().is_none())
                            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                            .collect::<Vec<i32>>()
                    })
            })
            .await?
            .map_err(feed_err)?;
        let mut found = found;
        found.sort_unstable();
        self.partitions = found;
        Ok(())
    }

    /// Reads the leases, writes what this instance takes or lets go, and
    /// assigns the consumer what it now owns.
    async fn rebalance(&mut self) -> Result<(), FeedError> {
        if self.partitions.is_empty() {
            self.load_partitions().await?;
            if self.partitions.is_empty() {
                return Ok(()); // the relay has not created the topic yet
            }
        }
        let projection = self.config.projection;
        let me = self.config.instance.clone();
        let mut live: BTreeSet<String> = live::alive(
            &*self.docs,
            projection,
            chrono::Duration::from_std(LEASE_TTL).unwrap_or_default(),
        )
        .await
        .map_err(feed_err)?
        .into_iter()
        .map(|i| i.instance)
        .collect();
        live.insert(me.clone());
        for _ in 0..5 {
            let (mut doc, rev) = self.load_leases().await?;
            let decided = balance(&me, &live, &self.partitions, &doc.partitions);
            // partitions the store says are ours but we do not read: after a
            // restart with the same instance id, or a lost race
            let stored_ours: Vec<i32> = doc
                .partitions
                .iter()
                .filter(|(_, l)| l.owner.as_deref() == Some(me.as_str()))
                .filter_map(|(p, _)| p.parse().ok())
                .collect();
            if decided.take.is_empty() && decided.release.is_empty() {
                self.adopt(&doc, &stored_ours);
                return Ok(());
            }
            for p in &decided.release {
                if let Some(l) = doc.partitions.get_mut(&p.to_string()) {
                    l.owner = None;
                }
            }
            for p in &decided.take {
                doc.partitions.entry(p.to_string()).or_default().owner = Some(me.clone());
            }
            if self.save_leases(&mut doc, rev).await? {
                if !decided.take.is_empty() || !decided.release.is_empty() {
                    tracing::info!(projection, instance = %me, take = ?decided.take, release = ?decided.release, "partitions moved");
                }
                let ours: Vec<i32> = doc
                    .partitions
                    .iter()
                    .filter(|(_, l)| l.owner.as_deref() == Some(me.as_str()))
                    .filter_map(|(p, _)| p.parse().ok())
                    .collect();
                self.adopt(&doc, &ours);
                return Ok(());
            }
        }
        Ok(()) // another instance kept writing; try again at the next balance
    }

    /// Makes the consumer read exactly `ours`, new partitions from their
    /// stored offsets.
    fn adopt(&mut self, doc: &PartitionsDoc, ours: &[i32]) {
        let wanted: BTreeSet<i32> = ours.iter().copied().collect();
        let current: BTreeSet<i32> = self.owned.keys().copied().collect();
        if wanted == current {
            return;
        }
        self.owned.retain(|p, _| wanted.contains(p));
        for p in wanted.difference(&current) {
            let lease = doc
                .partitions
                .get(&p.to_string())
                .cloned()
                .unwrap_or_default();
            self.owned
                .insert(*p, Owned::at(lease.next_offset, lease.epoch));
        }
        self.assign();
    }

    /// Makes the consumer read the owned partitions, each from
    /// [`MARGIN`] messages before its next offset (see
    /// `tessera_kafka::MESSAGES_PER_BATCH`; what comes before `read` is
    /// skipped in [`accept`](Self::accept)).
    fn assign(&self) {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.owned {
            let from = o.read.saturating_sub(MARGIN).max(0);
            let _ = tpl.add_partition_offset(&self.config.topic, *p, Offset::Offset(from));
        }
        if let Err(error) = self.consumer.assign(&tpl) {
            tracing::warn!(projection = self.config.projection, %error, "assigning partitions failed");
        }
        if self.suspended.load(Ordering::SeqCst) {
            let _ = self.consumer.pause(&tpl); // still waiting for the topic
        }
    }

    async fn load_leases(&self) -> Result<(PartitionsDoc, Option<u64>), FeedError> {
        let found = self
            .docs
            .get(PARTITIONS, self.config.projection)
            .await
            .map_err(feed_err)?;
        Ok(match found {
            Some(d) => (
                serde_json::from_value(d.body).map_err(feed_err)?,
                Some(d.rev),
            ),
            None => (
                PartitionsDoc {
                    projection: self.config.projection.to_owned(),
                    ..PartitionsDoc::default()
                },
                None,
            ),
        })
    }

    async fn save_leases(
        &self,
        doc: &mut PartitionsDoc,
        rev: Option<u64>,
    ) -> Result<bool, FeedError> {
        doc.updated_at = Some(Utc::now());
        let body = serde_json::to_value(&*doc).map_err(feed_err)?;
        let written = self
            .docs
            .write(
                PARTITIONS,
                vec![Write::Put {
                    id: self.config.projection.to_owned(),
                    expected_rev: rev,
                    body,
                }],
            )
            .await
            .map_err(feed_err)?;
        Ok(matches!(written.first(), Some(Written::Ok(_))))
    }

    /// Reads where each owned partition ends: the lag, and partitions that
    /// now end before what was read (a topic made again, not yet published
    /// past the old offsets: tansu answers such a fetch with nothing, not
    /// with "offset out of range").
    async fn measure_lag(&mut self) {
        let topic = self.config.topic.clone();
        let owned: Vec<i32> = self.owned.keys().copied().collect();
        let measured = self
            .blocking(move |c| {
                owned
                    .into_iter()
                    .map(|p| {
                        c.fetch_watermarks(&topic, p, Duration::from_secs(2))
                            .map(|(_, high)| (p, high))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
        let Ok(Ok(ends)) = measured else {
            self.lag = None;
            return;
        };
        let mut lag = 0u64;
        let mut shrunk = false;
        for (p, high) in ends {
            let Some(o) = self.owned.get_mut(&p) else {
                continue;
            };
            // tansu reports a partition's end as its last batch's first
            // offset plus one: only an end further back than a whole batch
            // means the partition shrank
            if high + MARGIN <= o.read {
                tracing::warn!(projection = self.config.projection, partition = p, end = high, read = o.read, "the partition ends before what was read: the topic was made again; reading it from its beginning");
                o.restart(None);
                o.known.clear();
                shrunk = true;
            }
            lag += u64::try_from(high - o.committed.max(0)).unwrap_or(0);
        }
        if shrunk {
            self.assign();
        }
        self.lag = Some(lag);
    }

    /// Takes one message into the batch, or `None` if it is not ours to
    /// hand out (a partition let go, an offset already handed out).
    fn accept(
        &mut self,
        partition: i32,
        offset: i64,
        epoch: Option<String>,
        payload: &[u8],
    ) -> Option<Delivery> {
        let projection = self.config.projection;
        let owned = self.owned.get_mut(&partition)?;
        if offset < owned.read {
            return None;
        }
        if let Some(new) = epoch {
            if owned.epoch.is_none() {
                owned.known.insert(new.clone());
                owned.epoch = Some(new);
            } else if !owned.known.contains(&new) {
                tracing::warn!(projection, partition, from = ?owned.epoch, to = %new, "the topic was published again from the start; reading this partition from its beginning");
                owned.restart(Some(new));
                self.assign();
                return None;
            }
        }
        owned.read = offset + 1;
        let source = format!("{}/{partition}/{offset}", self.config.topic);
        Some(match serde_json::from_slice::<Envelope>(payload) {
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
                raw: String::from_utf8_lossy(payload).into_owned(),
                error: e.to_string(),
            },
        })
    }
}

impl Drop for KafkaFeed {
    fn drop(&mut self) {
        self.guard.abort();
    }
}

/// Pauses every assigned partition as soon as a broker connection breaks
/// (see the module docs), until the feed sees the topic again.
async fn guard(
    consumer: std::sync::Weak<Client>,
    mut broken: tokio::sync::watch::Receiver<u64>,
    suspended: Arc<AtomicBool>,
    projection: &'static str,
) {
    while broken.changed().await.is_ok() {
        let Some(consumer) = consumer.upgrade() else {
            return;
        };
        if !suspended.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                projection,
                "a broker went away; partitions paused until the topic is seen again"
            );
        }
        if let Ok(assigned) = consumer.assignment() {
            if assigned.count() > 0 {
                let _ = consumer.pause(&assigned);
            }
        }
    }
}

fn epoch_of(headers: Option<&rdkafka::message::BorrowedHeaders>) -> Option<String> {
    let headers = headers?;
    headers
        .iter()
        .find(|h| h.key == EPOCH_HEADER)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[async_trait]
impl EventFeed for KafkaFeed {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, FeedError> {
        if self.suspended.load(Ordering::SeqCst) && !self.resume_if_topic_is_back().await {
            tokio::time::sleep(self.config.idle_wait.min(BALANCE_EVERY)).await;
            return Ok(Vec::new());
        }
        // everything handed out so far is committed: a safe point to move
        // partitions
        if Instant::now() >= self.next_balance {
            self.next_balance = Instant::now() + BALANCE_EVERY;
            if let Err(error) = self.rebalance().await {
                tracing::warn!(projection = self.config.projection, %error, "balancing partitions failed");
            }
        }
        if Instant::now() >= self.next_lag {
            self.next_lag = Instant::now() + LAG_EVERY;
            self.measure_lag().await;
        }
        let mut batch = Vec::new();
        if self.owned.is_empty() {
            tokio::time::sleep(self.config.idle_wait.min(BALANCE_EVERY)).await;
            return Ok(batch);
        }
        let started = Instant::now();
        let mut window = self.config.idle_wait;
        // librdkafka queues an error for each broken connection and each
        // partition it could not fetch, and hands them out one per `recv`.
        // A broker that restarted empty leaves a dozen of them queued; when
        // each one failed the step, the driver backed off once per error
        // and the projections read nothing for 40 s after the topic was
        // back (the fault suite's "broker killed, restarted empty"). So
        // errors are drained here, for up to `idle_wait`: the step fails
        // only when nothing but errors came in that time.
        let mut failed = None;
        while batch.len() < max {
            let consumer = Arc::clone(&self.consumer);
            let message = match tokio::time::timeout(window, consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Err(e)) => {
                    if !batch.is_empty() {
                        break;
                    }
                    tracing::debug!(projection = self.config.projection, error = %e, "the consumer reported an error; reading on");
                    failed = Some(e);
                    window = self.config.idle_wait.saturating_sub(started.elapsed());
                    if window.is_zero() {
                        break;
                    }
                    continue;
                }
                Ok(Ok(m)) => (
                    m.partition(),
                    m.offset(),
                    epoch_of(m.headers()),
                    m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                ),
            };
            let (partition, offset, epoch, payload) = message;
            if let Some(delivery) = self.accept(partition, offset, epoch, &payload) {
                batch.push(delivery);
                window = FILL_WINDOW;
            }
        }
        match failed {
            Some(error) if batch.is_empty() => Err(feed_err(error)),
            _ => Ok(batch),
        }
    }

    async fn commit(&mut self) -> Result<(), FeedError> {
        let me = self.config.instance.clone();
        let moved: Vec<i32> = self
            .owned
            .iter()
            .filter(|(_, o)| o.read != o.committed)
            .map(|(p, _)| *p)
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        for _ in 0..10 {
            let (mut doc, rev) = self.load_leases().await?;
            let mut lost = Vec::new();
            for p in &moved {
                let lease = doc.partitions.entry(p.to_string()).or_default();
                if lease.owner.as_deref() != Some(me.as_str()) {
                    lost.push(*p);
                    continue;
                }
                if let Some(o) = self.owned.get(p) {
                    lease.next_offset = o.read;
                    lease.epoch.clone_from(&o.epoch);
                }
            }
            if !lost.is_empty() {
                // another instance took them while we were away: what we
                // wrote is in the documents, and it reads on from its offset
                tracing::warn!(projection = self.config.projection, partitions = ?lost, "partitions were taken over; letting go");
                self.owned.retain(|p, _| !lost.contains(p));
                self.assign();
            }
            if self.save_leases(&mut doc, rev).await? {
                for o in self.owned.values_mut() {
                    o.committed = o.read;
                }
                return Ok(());
            }
        }
        Err(FeedError::new(
            "the partition leases kept changing while committing",
        ))
    }

    fn position(&self) -> Option<LogPosition> {
        self.last
    }

    fn lag(&self) -> Option<u64> {
        self.lag
    }

    async fn release(&mut self) -> Result<(), FeedError> {
        let me = self.config.instance.clone();
        for _ in 0..5 {
            let (mut doc, rev) = self.load_leases().await?;
            let mut changed = false;
            for lease in doc.partitions.values_mut() {
                if lease.owner.as_deref() == Some(me.as_str()) {
                    lease.owner = None;
                    changed = true;
                }
            }
            if !changed || self.save_leases(&mut doc, rev).await? {
                self.owned.clear();
                self.assign();
                return Ok(());
            }
        }
        Err(FeedError::new(
            "the partition leases kept changing while releasing",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn leases(owners: &[(i32, Option<&str>)]) -> BTreeMap<String, Lease> {
        owners
            .iter()
            .map(|(p, o)| {
                (
                    p.to_string(),
                    Lease {
                        owner: o.map(str::to_owned),
                        ..Lease::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_lone_instance_takes_every_free_partition() {
        let b = balance("a", &live(&["a"]), &[0, 1, 2, 3], &BTreeMap::new());
        assert_eq!(b.take, [0, 1, 2, 3]);
        assert!(b.release.is_empty());
    }

    #[test]
    fn a_newcomer_waits_until_the_owner_lets_go_and_the_owner_does() {
        let held = leases(&[
            (0, Some("a")),
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("a")),
        ]);
        let both = live(&["a", "b"]);
        let newcomer = balance("b", &both, &[0, 1, 2, 3], &held);
        assert!(
            newcomer.take.is_empty(),
            "a live owner keeps its partitions until it lets go"
        );
        let owner = balance("a", &both, &[0, 1, 2, 3], &held);
        assert_eq!(owner.release, [1, 3], "every other partition goes to b");
        let after = leases(&[(0, Some("a")), (1, None), (2, Some("a")), (3, None)]);
        assert_eq!(balance("b", &both, &[0, 1, 2, 3], &after).take, [1, 3]);
    }

    #[test]
    fn partitions_of_a_dead_instance_go_to_the_live_ones() {
        let held = leases(&[
            (0, Some("a")),
            (1, Some("dead")),
            (2, Some("a")),
            (3, Some("dead")),
        ]);
        let b = balance("a", &live(&["a"]), &[0, 1, 2, 3], &held);
        assert_eq!(b.take, [1, 3]);
        assert!(b.release.is_empty());
    }

    #[test]
    fn every_partition_has_exactly_one_intended_owner() {
        let everyone = live(&["a", "b", "c"]);
        let mut leases = BTreeMap::new();
        let parts: Vec<i32> = (0..8).collect();
        for _round in 0..3 {
            for me in ["a", "b", "c"] {
                let b = balance(me, &everyone, &parts, &leases);
                for p in b.release {
                    leases.insert(p.to_string(), Lease::default());
                }
                for p in b.take {
                    leases.insert(
                        p.to_string(),
                        Lease {
                            owner: Some(me.to_owned()),
                            ..Lease::default()
                        },
                    );
                }
            }
        }
        let owners: Vec<_> = parts
            .iter()
            .map(|p| leases[&p.to_string()].owner.clone().unwrap())
            .collect();
        assert_eq!(owners, ["a", "b", "c", "a", "b", "c", "a", "b"]);
    }
}
