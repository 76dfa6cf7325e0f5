//! The change feed between processes (DESIGN.md §10): each projector
//! publishes the documents it wrote on a Redis channel (`<prefix>:changes`,
//! the Redis that presence uses), and every read API instance subscribes
//! on its own, into the in-process feed its streams follow. Changes are
//! ephemeral, like presence: one lost (Redis away) costs a stream one push,
//! never a notification, which a stream catches up on from the read model.
//!
//! A Kafka topic would carry them too, but a second topic on the broker
//! the events go through made the pipeline's recovery from a broker that
//! restarted empty miss its bound in the fault suite (measured: every run
//! of `tests/faults.rs` failed that row with the change topic, and passed
//! without it), and the changes need none of Kafka's durability.

use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt;
use tessera_documents::changes::{Announce, Broadcast, Change};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Batches of changes waiting to be published, at most: past it a batch
/// is dropped (Redis is away or slow) and said so.
const BACKLOG: usize = 1024;

/// How long to wait before subscribing again after Redis went away.
const RESUBSCRIBE: Duration = Duration::from_millis(200);

fn channel(prefix: &str) -> String {
    format!("{prefix}:changes")
}

/// A projector's announcements, published in order by one task.
pub struct RedisAnnounce {
    batches: mpsc::Sender<Vec<Change>>,
}

impl RedisAnnounce {
    pub async fn start(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).context("bad TESSERA_REDIS_URL")?;
        let mut conn = client
            .get_connection_manager()
            .await
            .context("cannot connect to Redis")?;
        let channel = channel(prefix);
        let (batches, mut waiting) = mpsc::channel::<Vec<Change>>(BACKLOG);
        tokio::spawn(async move {
            while let Some(batch) = waiting.recv().await {
                let mut pipe = redis::pipe();
                for change in &batch {
                    if let Ok(payload) = serde_json::to_string(change) {
                        pipe.publish(&channel, payload).ignore();
                    }
                }
                if let Err(error) = pipe.query_async::<()>(&mut conn).await {
                    tracing::warn!(%error, changes = batch.len(), "changes were not published");
                }
            }
        });
        Ok(Self { batches })
    }
}

impl Announce for RedisAnnounce {
    fn announce(&self, changes: Vec<Change>) {
        if let Err(error) = self.batches.try_send(changes) {
            tracing::warn!(%error, "the change feed is behind; a batch of changes was dropped");
        }
    }
}

/// Subscribes to the change channel, once.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Follows the change channel into `feed` until `shutdown`, subscribing
/// again whenever Redis comes back. Subscribed before it returns (when
/// Redis answers), so a stream opened once the read API serves hears every
/// change after it; after each later subscription the streams are told to
/// read again what they must not miss.
pub async fn follow_changes(
    url: &str,
    prefix: &str,
    feed: Broadcast,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let client = redis::Client::open(url).context("bad TESSERA_REDIS_URL")?;
    let channel = channel(prefix);
    let mut first = match subscribe(&client, &channel).await {
        Ok(pubsub) => Some(pubsub),
        Err(error) => {
            tracing::warn!(%error, "the change feed's Redis does not answer; live streams wait for it");
            None
        }
    };
    Ok(tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let subscribed = match first.take() {
                Some(pubsub) => Ok(pubsub),
                None => {
                    let again = subscribe(&client, &channel).await;
                    if again.is_ok() {
                        feed.send(Change::resync());
                    }
                    again
                }
            };
            match subscribed {
                Ok(mut pubsub) => {
                    let mut messages = pubsub.on_message();
                    loop {
                        let message = tokio::select! {
                            () = shutdown.cancelled() => return,
                            m = messages.next() => m,
                        };
                        let Some(message) = message else {
                            tracing::warn!(
                                "the change feed's connection closed; subscribing again"
                            );
                            break;
                        };
                        if let Ok(change) =
                            serde_json::from_slice::<Change>(message.get_payload_bytes())
                        {
                            feed.send(change);
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "the change feed's Redis does not answer"),
            }
            tokio::time::sleep(RESUBSCRIBE).await;
        }
    }))
}
