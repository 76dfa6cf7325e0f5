//! The `message` aggregate: one message in a text channel or a DM room.
//!
//! Each message is its own stream, so posting is always a new stream of one
//! event, whatever the channel already holds: a busy channel never becomes
//! an ever-growing aggregate, and posts to one channel do not contend.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, ChannelKind, MessageEvent, MessagePlace};

use super::post::{BoardServices, ChannelLookup};
use super::{impl_aggregate, text_ok, DomainError, ErrorKind, FactUnavailable};

super::named!(MessageCommand {
    PostInChannel,
    PostInRoom,
    Edit,
    Delete,
});

/// Limits of the contract (API.md, Chat).
pub mod limits {
    pub const CONTENT: (usize, usize) = (1, 4_000);
}

/// Facts from the guild, room and account aggregates that chat decisions
/// need.
#[async_trait]
pub trait ChatServices: BoardServices {
    /// The room's members, `None` for an unknown room.
    async fn room_members(&self, room_id: &str) -> Result<Option<Vec<String>>, FactUnavailable>;
    /// The account's nickname, `None` for an unknown account.
    async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable>;
}

pub type ChatServicesRef = Arc<dyn ChatServices>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageCommand {
    PostInChannel {
        channel_id: String,
        author_id: String,
        content: String,
    },
    PostInRoom {
        room_id: String,
        author_id: String,
        content: String,
    },
    /// `channel_id` is the channel the request names: a message of another
    /// channel is not found there.
    Edit {
        actor: String,
        channel_id: String,
        content: String,
    },
    Delete {
        actor: String,
        channel_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message not found")]
    NotFound,
    #[error("message already exists")]
    AlreadyExists,
    #[error("the message has been deleted")]
    Gone,
    #[error("the channel or its guild has been deleted")]
    ChannelGone,
    #[error("channel not found")]
    ChannelNotFound,
    #[error("messages can only be posted in text channels")]
    NotAText,
    #[error("not a member of this channel's guild")]
    NotMember,
    #[error("room not found")]
    RoomNotFound,
    #[error("not a member of this room")]
    NotRoomMember,
    #[error("only the author may do this")]
    NotAuthor,
    #[error("only the author or the guild owner may delete a message")]
    NotAuthorOrOwner,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error(transparent)]
    Unavailable(FactUnavailable),
}

impl DomainError for MessageError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::ChannelNotFound | Self::RoomNotFound => ErrorKind::NotFound,
            Self::AlreadyExists => ErrorKind::Conflict,
            Self::Gone | Self::ChannelGone => ErrorKind::Gone,
            Self::NotAText => ErrorKind::Unprocessable,
            Self::NotMember | Self::NotRoomMember | Self::NotAuthor | Self::NotAuthorOrOwner => {
                ErrorKind::Forbidden
            }
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::ChannelNotFound => "channel_not_found",
            Self::RoomNotFound => "room_not_found",
            Self::AlreadyExists => "conflict",
            Self::Gone | Self::ChannelGone => "gone",
            Self::NotAText => "not_a_text_channel",
            Self::NotMember | Self::NotRoomMember => "not_member",
            Self::NotAuthor | Self::NotAuthorOrOwner => "forbidden",
            Self::Invalid { .. } => "invalid_input",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            _ => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    place: Option<MessagePlace>,
    deleted: bool,
    author_id: String,
    content: String,
}

fn content_ok(content: &str) -> Result<(), MessageError> {
    let (min, max) = limits::CONTENT;
    if text_ok(content, min, max) {
        Ok(())
    } else {
        Err(MessageError::Invalid { field: "content" })
    }
}

fn unavailable(e: FactUnavailable) -> MessageError {
    MessageError::Unavailable(e)
}

impl Message {
    pub fn exists(&self) -> bool {
        self.place.is_some() && !self.deleted
    }

    /// The channel the message was posted in, if it was posted in one.
    pub fn channel_id(&self) -> Option<&str> {
        match &self.place {
            Some(MessagePlace::Channel { channel_id, .. }) => Some(channel_id),
            _ => None,
        }
    }

    async fn post_in_channel(
        channel_id: String,
        author_id: String,
        content: String,
        services: &ChatServicesRef,
    ) -> Result<MessageEvent, MessageError> {
        content_ok(&content)?;
        let channel = match services.channel(&channel_id).await.map_err(unavailable)? {
            ChannelLookup::Live(channel) => channel,
            ChannelLookup::Gone => return Err(MessageError::ChannelGone),
            ChannelLookup::Unknown => return Err(MessageError::ChannelNotFound),
        };
        let m = services
            .membership(&channel.guild_id, &author_id)
            .await
            .map_err(unavailable)?;
        if !m.guild_alive {
            return Err(MessageError::ChannelGone);
        }
        if channel.kind != ChannelKind::Text {
            return Err(MessageError::NotAText);
        }
        let author_nickname = m.nickname.ok_or(MessageError::NotMember)?;
        Ok(MessageEvent::MessagePosted {
            place: MessagePlace::Channel {
                guild_id: channel.guild_id,
                channel_id,
                guild_version: m.guild_version,
            },
            author_id,
            author_nickname,
            content,
        })
    }

    async fn post_in_room(
        room_id: String,
        author_id: String,
        content: String,
        services: &ChatServicesRef,
    ) -> Result<MessageEvent, MessageError> {
        content_ok(&content)?;
        let members = services
            .room_members(&room_id)
            .await
            .map_err(unavailable)?
            .ok_or(MessageError::RoomNotFound)?;
        if !members.contains(&author_id) {
            return Err(MessageError::NotRoomMember);
        }
        let author_nickname = services
            .account_nickname(&author_id)
            .await
            .map_err(unavailable)?
            .unwrap_or_default();
        Ok(MessageEvent::MessagePosted {
            place: MessagePlace::Room { room_id, members },
            author_id,
            author_nickname,
            content,
        })
    }

    /// The message as a command on it through `channel_id` finds it: in that
    /// channel, not deleted, the channel and its guild alive. Returns the
    /// message's guild.
    async fn in_channel(
        &self,
        channel_id: &str,
        services: &ChatServicesRef,
    ) -> Result<String, MessageError> {
        let Some(MessagePlace::Channel {
            guild_id,
            channel_id: own,
            ..
        }) = &self.place
        else {
            return Err(MessageError::NotFound);
        };
        if own != channel_id {
            return Err(MessageError::NotFound);
        }
        if self.deleted {
            return Err(MessageError::Gone);
        }
        // what lives in a deleted channel or guild takes no more commands
        match services.channel(channel_id).await.map_err(unavailable)? {
            ChannelLookup::Live(_) => Ok(guild_id.clone()),
            _ => Err(MessageError::ChannelGone),
        }
    }

    async fn decide(
        &self,
        command: MessageCommand,
        services: &ChatServicesRef,
    ) -> Result<Option<MessageEvent>, MessageError> {
        let event = match command {
            // a message is posted once, wherever it was asked to go
            MessageCommand::PostInChannel { .. } | MessageCommand::PostInRoom { .. }
                if self.place.is_some() =>
            {
                return Err(MessageError::AlreadyExists);
            }
            MessageCommand::PostInChannel {
                channel_id,
                author_id,
                content,
            } => Self::post_in_channel(channel_id, author_id, content, services).await?,
            MessageCommand::PostInRoom {
                room_id,
                author_id,
                content,
            } => Self::post_in_room(room_id, author_id, content, services).await?,
            MessageCommand::Edit {
                actor,
                channel_id,
                content,
            } => {
                self.in_channel(&channel_id, services).await?;
                if actor != self.author_id {
                    return Err(MessageError::NotAuthor);
                }
                content_ok(&content)?;
                if content == self.content {
                    return Ok(None);
                }
                MessageEvent::MessageEdited { content }
            }
            MessageCommand::Delete { actor, channel_id } => {
                let guild_id = self.in_channel(&channel_id, services).await?;
                if actor != self.author_id
                    && services
                        .membership(&guild_id, &actor)
                        .await
                        .map_err(unavailable)?
                        .owner_id
                        != actor
                {
                    return Err(MessageError::NotAuthorOrOwner);
                }
                MessageEvent::MessageDeleted { by: actor }
            }
        };
        Ok(Some(event))
    }

    fn evolve(&mut self, event: MessageEvent) {
        match event {
            MessageEvent::MessagePosted {
                place,
                author_id,
                content,
                ..
            } => {
                self.place = Some(place);
                self.author_id = author_id;
                self.content = content;
            }
            MessageEvent::MessageEdited { content } => self.content = content,
            MessageEvent::MessageDeleted { .. } => self.deleted = true,
        }
    }
}

impl_aggregate!(Message: aggregate::MESSAGE, MessageCommand => MessageEvent, MessageError, services ChatServicesRef);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::{self, recorded as expect, OneGuild};

    /// Room "r" of ann and bob beside the guild; every account's nickname
    /// is its id and "(account)".
    #[async_trait]
    impl ChatServices for OneGuild {
        async fn room_members(
            &self,
            room_id: &str,
        ) -> Result<Option<Vec<String>>, FactUnavailable> {
            Ok((room_id == "r").then(|| vec!["ann".into(), "bob".into()]))
        }

        async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable> {
            Ok(Some(format!("{user_id} (account)")))
        }
    }

    fn given(events: Vec<MessageEvent>) -> cqrs_es::test::AggregateTestExecutor<Message> {
        let services: ChatServicesRef = Arc::new(OneGuild::at_version(3));
        testkit::given(services, events)
    }

    fn in_channel(channel: &str, author: &str, content: &str) -> MessageCommand {
        MessageCommand::PostInChannel {
            channel_id: channel.into(),
            author_id: author.into(),
            content: content.into(),
        }
    }

    /// Ann's message in "chat".
    fn posted_in_chat(content: &str) -> MessageEvent {
        MessageEvent::MessagePosted {
            place: MessagePlace::Channel {
                guild_id: "g".into(),
                channel_id: "chat".into(),
                guild_version: 3,
            },
            author_id: "ann".into(),
            author_nickname: "Ann".into(),
            content: content.into(),
        }
    }

    fn posted() -> MessageEvent {
        posted_in_chat("hello")
    }

    #[test]
    fn a_member_posts_in_a_text_channel_with_their_guild_nickname() {
        given(vec![])
            .when(in_channel("chat", "ann", "hello"))
            .then_expect_events(expect(vec![posted()]));
    }

    #[test]
    fn strangers_forums_deleted_and_unknown_channels_are_refused() {
        given(vec![])
            .when(in_channel("chat", "stranger", "hi"))
            .then_expect_error(MessageError::NotMember);
        given(vec![])
            .when(in_channel("forum", "ann", "hi"))
            .then_expect_error(MessageError::NotAText);
        given(vec![])
            .when(in_channel("deleted", "ann", "hi"))
            .then_expect_error(MessageError::ChannelGone);
        given(vec![])
            .when(in_channel("nope", "ann", "hi"))
            .then_expect_error(MessageError::ChannelNotFound);
        given(vec![posted()])
            .when(in_channel("chat", "ann", "again"))
            .then_expect_error(MessageError::AlreadyExists);
    }

    #[test]
    fn content_is_one_to_four_thousand_characters_of_text() {
        for content in ["", "   ", "a\u{0}b", &*"x".repeat(4_001)] {
            given(vec![])
                .when(in_channel("chat", "ann", content))
                .then_expect_error(MessageError::Invalid { field: "content" });
        }
        let longest = "é".repeat(4_000);
        given(vec![])
            .when(in_channel("chat", "ann", &longest))
            .then_expect_events(expect(vec![posted_in_chat(&longest)]));
    }

    #[test]
    fn only_the_author_edits_and_the_author_or_the_owner_deletes() {
        let edit = |actor: &str, content: &str| MessageCommand::Edit {
            actor: actor.into(),
            channel_id: "chat".into(),
            content: content.into(),
        };
        let delete = |actor: &str| MessageCommand::Delete {
            actor: actor.into(),
            channel_id: "chat".into(),
        };
        given(vec![posted()])
            .when(edit("bob", "mine now"))
            .then_expect_error(MessageError::NotAuthor);
        given(vec![posted()])
            .when(edit("ann", "edited"))
            .then_expect_events(expect(vec![MessageEvent::MessageEdited {
                content: "edited".into(),
            }]));
        given(vec![posted()])
            .when(edit("ann", "hello"))
            .then_expect_events(vec![]);
        given(vec![posted()])
            .when(delete("bob"))
            .then_expect_error(MessageError::NotAuthorOrOwner);
        for actor in ["ann", "owner"] {
            given(vec![posted()])
                .when(delete(actor))
                .then_expect_events(expect(vec![MessageEvent::MessageDeleted {
                    by: actor.into(),
                }]));
        }
        let deleted = MessageEvent::MessageDeleted { by: "ann".into() };
        given(vec![posted(), deleted.clone()])
            .when(edit("ann", "too late"))
            .then_expect_error(MessageError::Gone);
        given(vec![posted(), deleted])
            .when(delete("owner"))
            .then_expect_error(MessageError::Gone);
    }

    #[test]
    fn a_message_is_only_found_through_its_own_channel() {
        given(vec![posted()])
            .when(MessageCommand::Delete {
                actor: "ann".into(),
                channel_id: "forum".into(),
            })
            .then_expect_error(MessageError::NotFound);
        given(vec![])
            .when(MessageCommand::Edit {
                actor: "ann".into(),
                channel_id: "chat".into(),
                content: "x".into(),
            })
            .then_expect_error(MessageError::NotFound);
    }

    #[test]
    fn a_message_in_a_deleted_channel_takes_no_more_commands() {
        let there = MessageEvent::MessagePosted {
            place: MessagePlace::Channel {
                guild_id: "g".into(),
                channel_id: "deleted".into(),
                guild_version: 3,
            },
            author_id: "ann".into(),
            author_nickname: "Ann".into(),
            content: "hello".into(),
        };
        given(vec![there])
            .when(MessageCommand::Delete {
                actor: "ann".into(),
                channel_id: "deleted".into(),
            })
            .then_expect_error(MessageError::ChannelGone);
    }

    #[test]
    fn room_members_post_in_their_room_with_their_account_nickname() {
        let post = |room: &str, author: &str| MessageCommand::PostInRoom {
            room_id: room.into(),
            author_id: author.into(),
            content: "hey".into(),
        };
        given(vec![])
            .when(post("r", "bob"))
            .then_expect_events(expect(vec![MessageEvent::MessagePosted {
                place: MessagePlace::Room {
                    room_id: "r".into(),
                    members: vec!["ann".into(), "bob".into()],
                },
                author_id: "bob".into(),
                author_nickname: "bob (account)".into(),
                content: "hey".into(),
            }]));
        given(vec![])
            .when(post("r", "owner"))
            .then_expect_error(MessageError::NotRoomMember);
        given(vec![])
            .when(post("elsewhere", "ann"))
            .then_expect_error(MessageError::RoomNotFound);
    }
}
