use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Events of the `post` aggregate: a post in a forum channel, with its
/// comments and reactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// `post_author_id`: whom the comment notifies (since 1.1; `null` in
    /// older events, which notify no one).
    CommentAdded {
        comment_id: String,
        author_id: String,
        author_nickname: String,
        guild_version: u64,
        content: String,
        post_author_id: Option<String>,
    },
    CommentEdited {
        comment_id: String,
        content: String,
    },
    CommentDeleted {
        comment_id: String,
    },
    /// `post_author_id` as for [`CommentAdded`](Self::CommentAdded).
    ReactionAdded {
        user_id: String,
        emoji: String,
        post_author_id: Option<String>,
    },
    ReactionRemoved {
        user_id: String,
        emoji: String,
    },
}

event_kind!(PostEvent: aggregate::POST, version "1.1" {
    PostCreated,
    PostEdited,
    PostDeleted,
    CommentAdded,
    CommentEdited,
    CommentDeleted,
    ReactionAdded,
    ReactionRemoved,
});
