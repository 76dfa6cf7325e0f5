//! The `post` aggregate: a post in a forum channel, its comments and its
//! emoji reactions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, ChannelKind, PostEvent};

use super::{impl_aggregate, name_ok, text_ok, DomainError, ErrorKind, FactUnavailable};

super::named!(PostCommand {
    Create,
    Edit,
    Delete,
    AddComment,
    EditComment,
    DeleteComment,
    React,
    Unreact,
});

/// Limits of the contract (API.md, Board).
pub mod limits {
    pub const TITLE: (usize, usize) = (1, 200);
    pub const CONTENT: (usize, usize) = (1, 20_000);
    pub const COMMENT: (usize, usize) = (1, 2_000);
    pub const EMOJI: (usize, usize) = (1, 32);
}

/// Where a channel lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFacts {
    pub guild_id: String,
    pub kind: ChannelKind,
}

/// What the guilds say about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelLookup {
    Live(ChannelFacts),
    /// The channel or its guild was deleted.
    Gone,
    Unknown,
}

/// What a guild says about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The guild exists and is not deleted.
    pub guild_alive: bool,
    pub owner_id: String,
    /// The user's nickname there, `None` if not a member.
    pub nickname: Option<String>,
    /// The guild's version these facts were read at.
    pub guild_version: u64,
}

/// Facts from the guild aggregate that board decisions need.
#[async_trait]
pub trait BoardServices: Send + Sync {
    async fn channel(&self, channel_id: &str) -> Result<ChannelLookup, FactUnavailable>;
    async fn membership(
        &self,
        guild_id: &str,
        user_id: &str,
    ) -> Result<Membership, FactUnavailable>;
}

pub type BoardServicesRef = Arc<dyn BoardServices>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostCommand {
    Create {
        channel_id: String,
        author_id: String,
        title: String,
        content: String,
    },
    Edit {
        actor: String,
        title: Option<String>,
        content: Option<String>,
    },
    Delete {
        actor: String,
    },
    AddComment {
        actor: String,
        comment_id: String,
        content: String,
    },
    EditComment {
        actor: String,
        comment_id: String,
        content: String,
    },
    DeleteComment {
        actor: String,
        comment_id: String,
    },
    React {
        actor: String,
        emoji: String,
    },
    Unreact {
        actor: String,
        emoji: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("post not found")]
    NotFound,
    #[error("post already exists")]
    AlreadyExists,
    #[error("post has been deleted")]
    Gone,
    #[error("the channel or its guild has been deleted")]
    ChannelGone,
    #[error("channel not found")]
    ChannelNotFound,
    #[error("posts can only be written in forum channels")]
    NotAForum,
    #[error("not a member of this channel's guild")]
    NotMember,
    #[error("only the author may do this")]
    NotAuthor,
    #[error("only the author or the guild owner may delete a post")]
    NotAuthorOrOwner,
    #[error("comment not found")]
    CommentNotFound,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error(transparent)]
    Unavailable(FactUnavailable),
}

impl DomainError for PostError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::ChannelNotFound | Self::CommentNotFound => ErrorKind::NotFound,
            Self::AlreadyExists => ErrorKind::Conflict,
            Self::Gone | Self::ChannelGone => ErrorKind::Gone,
            Self::NotAForum => ErrorKind::Unprocessable,
            Self::NotMember | Self::NotAuthor | Self::NotAuthorOrOwner => ErrorKind::Forbidden,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::CommentNotFound => "not_found",
            Self::ChannelNotFound => "channel_not_found",
            Self::AlreadyExists => "conflict",
            Self::Gone | Self::ChannelGone => "gone",
            Self::NotAForum => "not_a_forum_channel",
            Self::NotMember => "not_member",
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Comment {
    author_id: String,
    deleted: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    created: bool,
    deleted: bool,
    guild_id: String,
    /// Where the post lives.
    channel_id: String,
    author_id: String,
    title: String,
    content: String,
    comments: BTreeMap<String, Comment>,
    /// emoji -> users who reacted with it
    reactions: BTreeMap<String, BTreeSet<String>>,
}

fn text(value: &str, (min, max): (usize, usize), field: &'static str) -> Result<(), PostError> {
    if text_ok(value, min, max) {
        Ok(())
    } else {
        Err(PostError::Invalid { field })
    }
}

impl Post {
    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }

    fn alive(&self) -> Result<(), PostError> {
        match (self.created, self.deleted) {
            (false, _) => Err(PostError::NotFound),
            (true, true) => Err(PostError::Gone),
            (true, false) => Ok(()),
        }
    }

    async fn membership(
        &self,
        services: &BoardServicesRef,
        user: &str,
    ) -> Result<Membership, PostError> {
        services
            .membership(&self.guild_id, user)
            .await
            .map_err(PostError::Unavailable)
    }

    async fn member_nickname(
        &self,
        services: &BoardServicesRef,
        user: &str,
    ) -> Result<(String, u64), PostError> {
        let m = self.membership(services, user).await?;
        match m.nickname {
            Some(nickname) if m.guild_alive => Ok((nickname, m.guild_version)),
            _ => Err(PostError::NotMember),
        }
    }

    async fn decide(
        &self,
        command: PostCommand,
        services: &BoardServicesRef,
    ) -> Result<Option<PostEvent>, PostError> {
        if let PostCommand::Create {
            channel_id,
            author_id,
            title,
            content,
        } = command
        {
            if self.created {
                return Err(PostError::AlreadyExists);
            }
            text(&title, limits::TITLE, "title")?;
            text(&content, limits::CONTENT, "content")?;
            let channel = match services
                .channel(&channel_id)
                .await
                .map_err(PostError::Unavailable)?
            {
                ChannelLookup::Live(channel) => channel,
                ChannelLookup::Gone => return Err(PostError::ChannelGone),
                ChannelLookup::Unknown => return Err(PostError::ChannelNotFound),
            };
            let m = services
                .membership(&channel.guild_id, &author_id)
                .await
                .map_err(PostError::Unavailable)?;
            if !m.guild_alive {
                return Err(PostError::ChannelGone);
            }
            if channel.kind != ChannelKind::Forum {
                return Err(PostError::NotAForum);
            }
            let author_nickname = m.nickname.ok_or(PostError::NotMember)?;
            return Ok(Some(PostEvent::PostCreated {
                guild_id: channel.guild_id,
                channel_id,
                author_id,
                author_nickname,
                guild_version: m.guild_version,
                title,
                content,
            }));
        }
        self.alive()?;
        // what lives in a deleted channel or guild takes no more commands
        if !matches!(
            services
                .channel(&self.channel_id)
                .await
                .map_err(PostError::Unavailable)?,
            ChannelLookup::Live(_)
        ) {
            return Err(PostError::ChannelGone);
        }
        let event = match command {
            PostCommand::Create { .. } => return Err(PostError::AlreadyExists),
            PostCommand::Edit {
                actor,
                title,
                content,
            } => {
                if actor != self.author_id {
                    return Err(PostError::NotAuthor);
                }
                let title = title.unwrap_or_else(|| self.title.clone());
                let content = content.unwrap_or_else(|| self.content.clone());
                text(&title, limits::TITLE, "title")?;
                text(&content, limits::CONTENT, "content")?;
                if title == self.title && content == self.content {
                    return Ok(None);
                }
                PostEvent::PostEdited { title, content }
            }
            PostCommand::Delete { actor } => {
                if actor != self.author_id
                    && self.membership(services, &actor).await?.owner_id != actor
                {
                    return Err(PostError::NotAuthorOrOwner);
                }
                PostEvent::PostDeleted { by: actor }
            }
            PostCommand::AddComment {
                actor,
                comment_id,
                content,
            } => {
                text(&content, limits::COMMENT, "content")?;
                if self.comments.contains_key(&comment_id) {
                    return Err(PostError::Invalid {
                        field: "comment_id",
                    });
                }
                let (author_nickname, guild_version) =
                    self.member_nickname(services, &actor).await?;
                PostEvent::CommentAdded {
                    comment_id,
                    author_id: actor,
                    author_nickname,
                    guild_version,
                    content,
                    post_author_id: Some(self.author_id.clone()),
                }
            }
            PostCommand::EditComment {
                actor,
                comment_id,
                content,
            } => {
                let comment = self.comment(&comment_id)?;
                if comment.author_id != actor {
                    return Err(PostError::NotAuthor);
                }
                text(&content, limits::COMMENT, "content")?;
                PostEvent::CommentEdited {
                    comment_id,
                    content,
                }
            }
            PostCommand::DeleteComment { actor, comment_id } => {
                if self.comment(&comment_id)?.author_id != actor {
                    return Err(PostError::NotAuthor);
                }
                PostEvent::CommentDeleted { comment_id }
            }
            PostCommand::React { actor, emoji } => {
                if !name_ok(&emoji, limits::EMOJI.0, limits::EMOJI.1) {
                    return Err(PostError::Invalid { field: "emoji" });
                }
                // only members react, and only members take a reaction back
                self.member_nickname(services, &actor).await?;
                if self
                    .reactions
                    .get(&emoji)
                    .is_some_and(|users| users.contains(&actor))
                {
                    return Ok(None); // one reaction per user per emoji
                }
                PostEvent::ReactionAdded {
                    user_id: actor,
                    emoji,
                    post_author_id: Some(self.author_id.clone()),
                }
            }
            PostCommand::Unreact { actor, emoji } => {
                self.member_nickname(services, &actor).await?;
                if !self
                    .reactions
                    .get(&emoji)
                    .is_some_and(|users| users.contains(&actor))
                {
                    return Ok(None);
                }
                PostEvent::ReactionRemoved {
                    user_id: actor,
                    emoji,
                }
            }
        };
        Ok(Some(event))
    }

    fn comment(&self, comment_id: &str) -> Result<&Comment, PostError> {
        self.comments
            .get(comment_id)
            .filter(|c| !c.deleted)
            .ok_or(PostError::CommentNotFound)
    }
}

impl_aggregate!(Post: aggregate::POST, PostCommand => PostEvent, PostError, services BoardServicesRef);

impl Post {
    fn evolve(&mut self, event: PostEvent) {
        match event {
            PostEvent::PostCreated {
                guild_id,
                channel_id,
                author_id,
                title,
                content,
                ..
            } => {
                self.created = true;
                self.guild_id = guild_id;
                self.channel_id = channel_id;
                self.author_id = author_id;
                self.title = title;
                self.content = content;
            }
            PostEvent::PostEdited { title, content } => {
                self.title = title;
                self.content = content;
            }
            PostEvent::PostDeleted { .. } => self.deleted = true,
            PostEvent::CommentAdded {
                comment_id,
                author_id,
                ..
            } => {
                self.comments.insert(
                    comment_id,
                    Comment {
                        author_id,
                        deleted: false,
                    },
                );
            }
            PostEvent::CommentEdited { .. } => {}
            PostEvent::CommentDeleted { comment_id } => {
                if let Some(c) = self.comments.get_mut(&comment_id) {
                    c.deleted = true;
                }
            }
            PostEvent::ReactionAdded { user_id, emoji, .. } => {
                self.reactions.entry(emoji).or_default().insert(user_id);
            }
            PostEvent::ReactionRemoved { user_id, emoji } => {
                if let Some(users) = self.reactions.get_mut(&emoji) {
                    users.remove(&user_id);
                    if users.is_empty() {
                        self.reactions.remove(&emoji);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::{self, recorded as expect, OneGuild};

    fn given(events: Vec<PostEvent>) -> cqrs_es::test::AggregateTestExecutor<Post> {
        let services: BoardServicesRef = Arc::new(OneGuild::at_version(7));
        testkit::given(services, events)
    }

    fn created() -> PostEvent {
        PostEvent::PostCreated {
            guild_id: "g".into(),
            channel_id: "forum".into(),
            author_id: "ann".into(),
            author_nickname: "Ann".into(),
            guild_version: 7,
            title: "Hello".into(),
            content: "World".into(),
        }
    }

    fn create(channel: &str, author: &str) -> PostCommand {
        PostCommand::Create {
            channel_id: channel.into(),
            author_id: author.into(),
            title: "Hello".into(),
            content: "World".into(),
        }
    }

    fn comment(id: &str, by: &str, nickname: &str) -> PostEvent {
        PostEvent::CommentAdded {
            comment_id: id.into(),
            author_id: by.into(),
            author_nickname: nickname.into(),
            guild_version: 7,
            content: "hi".into(),
            post_author_id: Some("ann".into()),
        }
    }

    #[test]
    fn a_member_posts_in_a_forum_channel_with_their_guild_nickname() {
        given(vec![])
            .when(create("forum", "ann"))
            .then_expect_events(expect(vec![created()]));
    }

    #[test]
    fn a_post_whose_channel_or_guild_is_gone_takes_no_more_commands() {
        let in_deleted_channel = PostEvent::PostCreated {
            guild_id: "g".into(),
            channel_id: "deleted".into(),
            author_id: "ann".into(),
            author_nickname: "Ann".into(),
            guild_version: 7,
            title: "Hello".into(),
            content: "World".into(),
        };
        let comment = PostCommand::AddComment {
            actor: "ann".into(),
            comment_id: "c1".into(),
            content: "still here?".into(),
        };
        given(vec![in_deleted_channel.clone()])
            .when(comment)
            .then_expect_error(PostError::ChannelGone);
        given(vec![in_deleted_channel])
            .when(PostCommand::Delete {
                actor: "ann".into(),
            })
            .then_expect_error(PostError::ChannelGone);
    }

    #[test]
    fn strangers_text_channels_and_unknown_channels_are_refused() {
        given(vec![])
            .when(create("forum", "stranger"))
            .then_expect_error(PostError::NotMember);
        given(vec![])
            .when(create("chat", "ann"))
            .then_expect_error(PostError::NotAForum);
        given(vec![])
            .when(create("nope", "ann"))
            .then_expect_error(PostError::ChannelNotFound);
    }

    #[test]
    fn titles_and_contents_are_bounded() {
        for (title, content, field) in [
            ("", "c", "title"),
            (&*"t".repeat(201), "c", "title"),
            ("t", "", "content"),
            ("t", &*"c".repeat(20_001), "content"),
        ] {
            given(vec![])
                .when(PostCommand::Create {
                    channel_id: "forum".into(),
                    author_id: "ann".into(),
                    title: title.into(),
                    content: content.into(),
                })
                .then_expect_error(PostError::Invalid { field });
        }
    }

    #[test]
    fn only_the_author_edits_and_the_author_or_owner_deletes() {
        let edit = |actor: &str| PostCommand::Edit {
            actor: actor.into(),
            title: Some("New".into()),
            content: None,
        };
        given(vec![created()])
            .when(edit("bob"))
            .then_expect_error(PostError::NotAuthor);
        given(vec![created()])
            .when(edit("ann"))
            .then_expect_events(expect(vec![PostEvent::PostEdited {
                title: "New".into(),
                content: "World".into(),
            }]));
        given(vec![created()])
            .when(PostCommand::Delete {
                actor: "bob".into(),
            })
            .then_expect_error(PostError::NotAuthorOrOwner);
        given(vec![created()])
            .when(PostCommand::Delete {
                actor: "owner".into(),
            })
            .then_expect_events(expect(vec![PostEvent::PostDeleted { by: "owner".into() }]));
        given(vec![created(), PostEvent::PostDeleted { by: "ann".into() }])
            .when(edit("ann"))
            .then_expect_error(PostError::Gone);
    }

    #[test]
    fn comments_belong_to_their_author() {
        given(vec![created()])
            .when(PostCommand::AddComment {
                actor: "bob".into(),
                comment_id: "c1".into(),
                content: "hi".into(),
            })
            .then_expect_events(expect(vec![comment("c1", "bob", "Bob")]));
        given(vec![created()])
            .when(PostCommand::AddComment {
                actor: "stranger".into(),
                comment_id: "c1".into(),
                content: "hi".into(),
            })
            .then_expect_error(PostError::NotMember);
        given(vec![created(), comment("c1", "bob", "Bob")])
            .when(PostCommand::EditComment {
                actor: "ann".into(),
                comment_id: "c1".into(),
                content: "mine now".into(),
            })
            .then_expect_error(PostError::NotAuthor);
        given(vec![created(), comment("c1", "bob", "Bob")])
            .when(PostCommand::DeleteComment {
                actor: "bob".into(),
                comment_id: "c1".into(),
            })
            .then_expect_events(expect(vec![PostEvent::CommentDeleted {
                comment_id: "c1".into(),
            }]));
        given(vec![
            created(),
            comment("c1", "bob", "Bob"),
            PostEvent::CommentDeleted {
                comment_id: "c1".into(),
            },
        ])
        .when(PostCommand::EditComment {
            actor: "bob".into(),
            comment_id: "c1".into(),
            content: "x".into(),
        })
        .then_expect_error(PostError::CommentNotFound);
        given(vec![created()])
            .when(PostCommand::AddComment {
                actor: "bob".into(),
                comment_id: "c1".into(),
                content: "x".repeat(2_001),
            })
            .then_expect_error(PostError::Invalid { field: "content" });
    }

    #[test]
    fn one_reaction_per_user_per_emoji_and_both_ways_are_idempotent() {
        let added = PostEvent::ReactionAdded {
            user_id: "bob".into(),
            emoji: "👍".into(),
            post_author_id: Some("ann".into()),
        };
        let react = PostCommand::React {
            actor: "bob".into(),
            emoji: "👍".into(),
        };
        given(vec![created()])
            .when(react.clone())
            .then_expect_events(expect(vec![added.clone()]));
        given(vec![created(), added.clone()])
            .when(react)
            .then_expect_events(vec![]);
        let unreact = PostCommand::Unreact {
            actor: "bob".into(),
            emoji: "👍".into(),
        };
        given(vec![created(), added])
            .when(unreact.clone())
            .then_expect_events(expect(vec![PostEvent::ReactionRemoved {
                user_id: "bob".into(),
                emoji: "👍".into(),
            }]));
        given(vec![created()])
            .when(unreact)
            .then_expect_events(vec![]);
        given(vec![created()])
            .when(PostCommand::React {
                actor: "bob".into(),
                emoji: "x".repeat(33),
            })
            .then_expect_error(PostError::Invalid { field: "emoji" });
    }
}
