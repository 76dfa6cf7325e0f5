use tessera_documents::chat::MessageDoc;
use tessera_documents::documents::collections;
use tessera_events::{aggregate, DomainEvent, MessageEvent, MessagePlace};

use super::posts::{fan_out_nickname, nick_key, post_targets};
use super::{open, At, Fold, FoldError, Folded, Live, Outcome, Targets};

/// `messages`: every message of channels and DM rooms (id = message id),
/// listed by its place newest first; a channel author's nickname follows
/// their nickname in the guild.
pub struct Messages;

impl Fold for Messages {
    type Doc = MessageDoc;
    type Event = DomainEvent;
    const NAME: &'static str = collections::MESSAGES;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::MESSAGE, aggregate::GUILD];
    const INDEXES: &'static [&'static str] = &["listed_in", "nick_keys"];
    const SINGLE_SOURCE: bool = false;
    const LIVE: Live = Live::ByField("listed_in");

    fn touches(&self, at: At<DomainEvent>) -> Targets {
        post_targets(at)
    }

    fn fold_in(&self, doc: Option<MessageDoc>, at: At<DomainEvent>) -> Folded<MessageDoc> {
        let DomainEvent::Message(event) = at.event else {
            let rename = |doc: &mut MessageDoc, user_id: &str, nickname: &str| {
                let theirs = doc.guild_id.as_deref() == Some(at.aggregate_id.as_str())
                    && doc.author_id == user_id;
                if theirs {
                    nickname.clone_into(&mut doc.author_nickname);
                }
                theirs
            };
            return fan_out_nickname(doc, at, |d| &mut d.guild_version, rename);
        };
        let occurred = at.metadata.occurred_at;
        let created = || match event {
            MessageEvent::MessagePosted {
                place,
                author_id,
                author_nickname,
                content,
            } => {
                let (guild_id, channel_id, room_id, guild_version) = match place {
                    MessagePlace::Channel {
                        guild_id,
                        channel_id,
                        guild_version,
                    } => (
                        Some(guild_id.clone()),
                        Some(channel_id.clone()),
                        None,
                        *guild_version,
                    ),
                    MessagePlace::Room { room_id, .. } => (None, None, Some(room_id.clone()), 0),
                };
                Some(MessageDoc {
                    message_id: at.aggregate_id.clone(),
                    nick_keys: guild_id.iter().map(|g| nick_key(g, author_id)).collect(),
                    listed_in: channel_id.clone().or_else(|| room_id.clone()),
                    guild_id,
                    channel_id,
                    room_id,
                    author_id: author_id.clone(),
                    author_nickname: author_nickname.clone(),
                    content: content.clone(),
                    created_at: occurred,
                    edited_at: None,
                    guild_version,
                    version: 1,
                })
            }
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            match event {
                MessageEvent::MessagePosted { .. } => {
                    return Err(FoldError::Inapplicable("message posted twice".into()))
                }
                MessageEvent::MessageEdited { content } => {
                    doc.content.clone_from(content);
                    doc.edited_at = Some(occurred);
                }
                // kept, unlisted: a late duplicate of the post finds it
                MessageEvent::MessageDeleted { .. } => doc.listed_in = None,
            }
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

#[cfg(test)]
mod tests {
    use tessera_events::{Envelope, GuildEvent};

    use super::*;
    use crate::projection::testing::{guild, message};

    fn run(events: Vec<(Envelope, DomainEvent)>) -> MessageDoc {
        let mut doc = None;
        for (env, ev) in events {
            match Messages.fold(doc.clone(), &env, &ev).unwrap() {
                Outcome::Put(d) => doc = Some(d),
                Outcome::Unchanged => {}
                Outcome::Delete => doc = None,
            }
        }
        doc.unwrap()
    }

    fn in_channel() -> MessageEvent {
        MessageEvent::MessagePosted {
            place: MessagePlace::Channel {
                guild_id: "g".into(),
                channel_id: "c".into(),
                guild_version: 4,
            },
            author_id: "ann".into(),
            author_nickname: "Ann".into(),
            content: "hi".into(),
        }
    }

    #[test]
    fn a_channel_message_is_listed_edited_and_unlisted_when_deleted() {
        let doc = run(vec![
            message("m", 1, in_channel()),
            message(
                "m",
                2,
                MessageEvent::MessageEdited {
                    content: "hello".into(),
                },
            ),
        ]);
        assert_eq!(doc.listed_in.as_deref(), Some("c"));
        assert_eq!(doc.content, "hello");
        assert!(doc.edited_at.is_some());
        assert_eq!(doc.nick_keys, ["g:ann"]);
        let doc = run(vec![
            message("m", 1, in_channel()),
            message("m", 2, MessageEvent::MessageDeleted { by: "ann".into() }),
            // the post again, late: the deleted message stays unlisted
            message("m", 1, in_channel()),
        ]);
        assert_eq!(doc.listed_in, None);
    }

    #[test]
    fn a_room_message_is_listed_in_its_room() {
        let doc = run(vec![message(
            "m",
            1,
            MessageEvent::MessagePosted {
                place: MessagePlace::Room {
                    room_id: "r".into(),
                    members: vec!["ann".into(), "bob".into()],
                },
                author_id: "bob".into(),
                author_nickname: "Bob".into(),
                content: "hey".into(),
            },
        )]);
        assert_eq!(doc.listed_in.as_deref(), Some("r"));
        assert_eq!(doc.room_id.as_deref(), Some("r"));
        assert!(doc.nick_keys.is_empty());
    }

    #[test]
    fn the_authors_later_guild_nickname_wins_and_an_older_one_does_not() {
        let change = |seq: u64, nick: &str| {
            guild(
                "g",
                seq,
                GuildEvent::MemberNicknameChanged {
                    user_id: "ann".into(),
                    nickname: nick.into(),
                },
            )
        };
        let (env, ev) = change(6, "Annie");
        assert_eq!(
            Messages.targets(&env, &ev),
            Targets::Where {
                field: "nick_keys",
                value: "g:ann".into()
            }
        );
        let doc = run(vec![
            message("m", 1, in_channel()),
            change(6, "Annie"),
            change(5, "Older"),
        ]);
        assert_eq!(doc.author_nickname, "Annie");
    }
}
