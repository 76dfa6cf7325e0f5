//! Chat's read models: messages (of channels and DM rooms alike) and each
//! member's view of a DM room.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A message (collection `messages`, id = message id, which is
/// time-ordered: a place's ids in descending order are newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDoc {
    pub message_id: String,
    /// Set for a channel message.
    pub guild_id: Option<String>,
    pub channel_id: Option<String>,
    /// Set for a DM room message.
    pub room_id: Option<String>,
    pub author_id: String,
    pub author_nickname: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    /// The channel or room while the message is not deleted: the index a
    /// place's history is listed by.
    pub listed_in: Option<String>,
    /// `guild:author` for a channel message: a nickname change in the guild
    /// reaches the message through it.
    pub nick_keys: Vec<String>,
    /// The guild's sequence the author's nickname reflects.
    pub guild_version: u64,
    /// The message's own sequence.
    pub version: u64,
}

/// The last message of a room, as its list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessageDoc {
    pub message_id: String,
    pub author_id: String,
    pub author_nickname: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// Its place in the log.
    pub position: i64,
}

/// Most unread messages a room counts: past it the count stays there.
pub const UNREAD_CAP: usize = 100;

/// One member's view of a DM room (collection `dm_rooms`, id =
/// `user_id:room_id`), made by the room's creation or by any of its
/// messages, whichever the projector sees first (they come from different
/// streams), and the same whatever order they come in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmRoomDoc {
    pub room_id: String,
    pub user_id: String,
    /// Every member, this one included, sorted.
    pub members: Vec<String>,
    /// Set once the room's creation is seen.
    pub created_at: Option<DateTime<Utc>>,
    pub last_message: Option<LastMessageDoc>,
    /// Log positions of the others' messages since this member's own last
    /// one, at most [`UNREAD_CAP`] (the newest).
    pub unread: Vec<i64>,
    /// Log position of this member's own last message.
    pub last_own: i64,
    /// Log position of the room's last event: its activity.
    pub activity: i64,
    /// `user_id:` and the activity inverted, zero-padded: the member's
    /// rooms in index order are the most recently active first.
    pub listed: String,
}

/// The `listed` key of a member's room at `activity`.
pub fn room_listed(user_id: &str, activity: i64) -> String {
    format!("{user_id}:{:019}", i64::MAX - activity.max(0))
}
