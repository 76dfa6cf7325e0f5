//! The change feed: which documents the projections just wrote, for the
//! live streams of the read API (DESIGN.md §10). A projector announces each
//! batch's written documents once they are readable; every read API
//! instance hears every announcement (in process, a broadcast channel; in
//! production, a Redis channel each instance follows on its own) and pushes
//! to the streams that follow those documents. Read APIs announce on it too:
//! who came online and who went offline.

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

/// A document a projection wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The projection (not the collection: a rebuild switches those).
    pub projection: String,
    pub id: String,
    /// What streams follow it by, when not its id: the place of a message,
    /// the user of a notification.
    pub key: Option<String>,
    /// The trace of the command whose event changed it (its `traceparent`'s
    /// trace id), pushed with the change so a client can follow one trace
    /// from its command to its screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Change {
    /// Not a document: the feed may have missed changes (it was away and is
    /// back), so streams read what they must not miss again.
    pub fn resync() -> Self {
        Self {
            projection: RESYNC.to_owned(),
            id: String::new(),
            key: None,
            trace_id: None,
        }
    }

    pub fn is_resync(&self) -> bool {
        self.projection == RESYNC
    }

    /// Not a document: `user_id` came online (their first stream opened)
    /// or went offline (the grace period after their last one ran out).
    pub fn presence(user_id: &str, online: bool) -> Self {
        Self {
            projection: PRESENCE.to_owned(),
            id: user_id.to_owned(),
            key: Some(if online { "online" } else { "offline" }.to_owned()),
            trace_id: None,
        }
    }

    /// `(user_id, online)` of a presence change.
    pub fn as_presence(&self) -> Option<(&str, bool)> {
        (self.projection == PRESENCE)
            .then(|| (self.id.as_str(), self.key.as_deref() == Some("online")))
    }
}

const RESYNC: &str = "*resync*";
const PRESENCE: &str = "*presence*";

/// Where a projector announces what it wrote. Never blocks and never
/// fails the projection: a stream that misses a change reads it again.
pub trait Announce: Send + Sync {
    fn announce(&self, changes: Vec<Change>);
}

/// A change as the subscribers of one process hear it. The document it
/// names is read once, by the first subscriber that wants it, for all of
/// them: a thousand streams following one channel cost one read per
/// message, not a thousand (measured: with a read per stream, 1,000 streams
/// on two read APIs over MongoDB got 19 % of 200,000 pushes within 15 s;
/// BENCHMARKS.md).
#[derive(Debug)]
pub struct Heard {
    pub change: Change,
    body: tokio::sync::OnceCell<Option<Value>>,
}

impl Heard {
    pub fn new(change: Change) -> Self {
        Self {
            change,
            body: tokio::sync::OnceCell::new(),
        }
    }

    /// The changed document's body, read with `read` by the first caller;
    /// the others wait for that read and share it. A failed read is tried
    /// again by the next caller.
    pub async fn body<F, Fut, E>(&self, read: F) -> Result<Option<Value>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Value>, E>>,
    {
        self.body.get_or_try_init(read).await.cloned()
    }
}

/// The in-process change feed: every subscriber hears every change.
#[derive(Clone)]
pub struct Broadcast(broadcast::Sender<Arc<Heard>>);

impl Broadcast {
    /// A feed whose slowest subscriber may fall `capacity` changes behind
    /// before it is told it lagged.
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity.max(1)).0)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Heard>> {
        self.0.subscribe()
    }

    /// One change heard from elsewhere (another process's feed).
    pub fn send(&self, change: Change) {
        // no subscriber is not an error: nobody is streaming
        let _ = self.0.send(Arc::new(Heard::new(change)));
    }
}

impl Announce for Broadcast {
    fn announce(&self, changes: Vec<Change>) {
        for c in changes {
            self.send(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn every_subscriber_hears_every_change_and_a_slow_one_learns_it_lagged() {
        let feed = Broadcast::new(2);
        let (mut a, mut b) = (feed.subscribe(), feed.subscribe());
        let change = |id: &str| Change {
            projection: "posts".into(),
            id: id.into(),
            key: None,
            trace_id: None,
        };
        feed.announce(vec![change("p1"), change("p2")]);
        assert_eq!(a.recv().await.unwrap().change.id, "p1");
        assert_eq!(a.recv().await.unwrap().change.id, "p2");
        feed.announce(vec![change("p3")]);
        assert!(matches!(
            b.recv().await,
            Err(broadcast::error::RecvError::Lagged(1))
        ));
        assert_eq!(b.recv().await.unwrap().change.id, "p2");
    }

    #[tokio::test]
    async fn a_changed_document_is_read_once_for_every_subscriber() {
        let feed = Broadcast::new(8);
        let subscribers: Vec<_> = (0..50).map(|_| feed.subscribe()).collect();
        feed.send(Change {
            projection: "posts".into(),
            id: "p1".into(),
            key: None,
            trace_id: None,
        });
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<_, ()>(Some(serde_json::json!({"title": "t"})))
        };
        let bodies = futures::future::join_all(subscribers.into_iter().map(|mut s| {
            let read = &read;
            async move { s.recv().await.unwrap().body(read).await.unwrap() }
        }))
        .await;
        assert!(bodies.iter().all(|b| b.as_ref().unwrap()["title"] == "t"));
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one read for fifty subscribers"
        );
    }

    #[test]
    fn presence_changes_round_trip_and_are_no_documents() {
        let on = Change::presence("u1", true);
        let back: Change = serde_json::from_str(&serde_json::to_string(&on).unwrap()).unwrap();
        assert_eq!(back.as_presence(), Some(("u1", true)));
        assert_eq!(
            Change::presence("u1", false).as_presence(),
            Some(("u1", false))
        );
        assert!(!on.is_resync());
        assert_eq!(Change::resync().as_presence(), None);
    }
}
