use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Where a message was posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessagePlace {
    /// A text channel of a guild; `guild_version` is the guild's version
    /// the author's nickname was read at.
    Channel {
        guild_id: String,
        channel_id: String,
        guild_version: u64,
    },
    /// A direct-message room, with its members (at most 10, fixed at the
    /// room's creation): each member's room list is one of the documents a
    /// message changes, and this way a message names them without the
    /// projector having to see the room first.
    Room {
        room_id: String,
        members: Vec<String>,
    },
}

/// Events of the `message` aggregate: one message, in a channel or a room.
/// Every message is its own aggregate, so posting is one new stream and
/// never an append to an ever-growing channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum MessageEvent {
    /// Carries the author's nickname (in the guild, or their account's in a
    /// room) as it was when the message was posted.
    MessagePosted {
        place: MessagePlace,
        author_id: String,
        author_nickname: String,
        content: String,
    },
    /// The whole new content.
    MessageEdited {
        content: String,
    },
    MessageDeleted {
        by: String,
    },
}

event_kind!(MessageEvent: aggregate::MESSAGE, version "1.0" {
    MessagePosted,
    MessageEdited,
    MessageDeleted,
});

/// Events of the `dm_room` aggregate: a direct-message room. Its members
/// are fixed when it is made; its messages are `message` aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum RoomEvent {
    /// `members` includes `created_by`, sorted.
    RoomCreated {
        created_by: String,
        members: Vec<String>,
    },
}

event_kind!(RoomEvent: aggregate::DM_ROOM, version "1.0" {
    RoomCreated,
});
