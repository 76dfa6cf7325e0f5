use serde::{Deserialize, Serialize};

use crate::{aggregate, EventKind};

/// Events of the `post` aggregate: a post in a forum channel, with its
/// comments and reactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PostEvent {
    /// Carries the author's nickname in the guild and the guild's version it
    /// was read at, so a reader can tell it from a later rename.
    PostCreated {
        guild_id: String,
        channel_id: String,
        author_id: String,
        author_nickname: String,
        guild_version: u64,
        title: String,
        content: String,
    },
    /// The whole new title and content.
    PostEdited {
        title: String,
        content: String,
    },
    PostDeleted {
        by: String,
    },
    CommentAdded {
        comment_id: String,
        author_id: String,
        author_nickname: String,
        guild_version: u64,
        content: String,
    },
    CommentEdited {
        comment_id: String,
        content: String,
    },
    CommentDeleted {
        comment_id: String,
    },
    ReactionAdded {
        user_id: String,
        emoji: String,
    },
    ReactionRemoved {
        user_id: String,
        emoji: String,
    },
}

impl EventKind for PostEvent {
    const AGGREGATE_TYPE: &'static str = aggregate::POST;

    fn event_type(&self) -> &'static str {
        match self {
            Self::PostCreated { .. } => "PostCreated",
            Self::PostEdited { .. } => "PostEdited",
            Self::PostDeleted { .. } => "PostDeleted",
            Self::CommentAdded { .. } => "CommentAdded",
            Self::CommentEdited { .. } => "CommentEdited",
            Self::CommentDeleted { .. } => "CommentDeleted",
            Self::ReactionAdded { .. } => "ReactionAdded",
            Self::ReactionRemoved { .. } => "ReactionRemoved",
        }
    }

    fn event_version(&self) -> &'static str {
        "1.0"
    }
}
