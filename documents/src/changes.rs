//! The change feed: which documents the projections just wrote, for the
//! live streams of the read API (DESIGN.md §10). A projector announces each
//! batch's written documents once they are readable; every read API
//! instance hears every announcement (in process, a broadcast channel; in
//! production, a Redis channel each instance follows on its own) and pushes
//! to the streams that follow those documents. Read APIs announce on it too:
//! who came online and who went offline.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
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
}

impl Change {
    /// Not a document: the feed may have missed changes (it was away and is
    /// back), so streams read what they must not miss again.
    pub fn resync() -> Self {
        Self {
            projection: RESYNC.to_owned(),
            id: String::new(),
            key: None,
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

/// The in-process change feed: every subscriber hears every change.
#[derive(Clone)]
pub struct Broadcast(broadcast::Sender<Arc<Change>>);

impl Broadcast {
    /// A feed whose slowest subscriber may fall `capacity` changes behind
    /// before it is told it lagged.
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity.max(1)).0)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.0.subscribe()
    }

    /// One change heard from elsewhere (another process's feed).
    pub fn send(&self, change: Change) {
        // no subscriber is not an error: nobody is streaming
        let _ = self.0.send(Arc::new(change));
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
    use super::*;

    #[tokio::test]
    async fn every_subscriber_hears_every_change_and_a_slow_one_learns_it_lagged() {
        let feed = Broadcast::new(2);
        let (mut a, mut b) = (feed.subscribe(), feed.subscribe());
        let change = |id: &str| Change {
            projection: "posts".into(),
            id: id.into(),
            key: None,
        };
        feed.announce(vec![change("p1"), change("p2")]);
        assert_eq!(a.recv().await.unwrap().id, "p1");
        assert_eq!(a.recv().await.unwrap().id, "p2");
        feed.announce(vec![change("p3")]);
        assert!(matches!(
            b.recv().await,
            Err(broadcast::error::RecvError::Lagged(1))
        ));
        assert_eq!(b.recv().await.unwrap().id, "p2");
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
