use tessera_events::{aggregate, DomainEvent, GuildEvent, PostEvent};

use super::{monotonic, open, At, Fold, FoldError, Folded, Live, Outcome, Step, Targets};
use tessera_documents::documents::{collections, CommentDoc, PostDoc};

/// `posts`: one document per post with its comments and reaction counts,
/// author nicknames included. A member's nickname change in the guild
/// reaches every post and comment of theirs through the `nick_keys` index.
pub struct Posts;

pub(super) fn nick_key(guild_id: &str, user_id: &str) -> String {
    format!("{guild_id}:{user_id}")
}

/// A nickname change of a guild member, if the event is one.
pub(super) fn nickname_change(event: &DomainEvent) -> Option<(&str, &str)> {
    match event {
        DomainEvent::Guild(
            GuildEvent::MemberNicknameChanged { user_id, nickname }
            | GuildEvent::MemberJoined {
                user_id, nickname, ..
            },
        ) => Some((user_id, nickname)),
        _ => None,
    }
}

/// Targets of a projection that shows members' nicknames (posts, their
/// summaries, messages): the documents showing a member's nickname for
/// nickname changes, nothing for other guild events, and the aggregate's
/// own document for the events of its own stream (the only other stream
/// such a projection lists).
pub(super) fn post_targets(at: At<DomainEvent>) -> Targets {
    if let Some((user_id, _)) = nickname_change(at.event) {
        return Targets::Where {
            field: "nick_keys",
            value: nick_key(&at.aggregate_id, user_id),
        };
    }
    match at.event {
        DomainEvent::Guild(_) => Targets::None,
        _ => Targets::Ids(vec![at.aggregate_id.clone()]),
    }
}

/// A nickname change fanned out to a document that shows the member's
/// nickname. `rename` applies it and says whether the document shows that
/// member of that guild; a duplicate, or an event that is no nickname
/// change, changes nothing.
pub(super) fn fan_out_nickname<D>(
    doc: Option<D>,
    at: At<DomainEvent>,
    guild_version: fn(&mut D) -> &mut u64,
    rename: impl FnOnce(&mut D, &str, &str) -> bool,
) -> Folded<D> {
    let (Some(mut doc), Some((user_id, nickname))) = (doc, nickname_change(at.event)) else {
        return Ok(Outcome::Unchanged);
    };
    if monotonic(Some(*guild_version(&mut doc)), at.sequence) == Step::Duplicate
        || !rename(&mut doc, user_id, nickname)
    {
        return Ok(Outcome::Unchanged);
    }
    *guild_version(&mut doc) = at.sequence;
    Ok(Outcome::Put(doc))
}

impl Fold for Posts {
    type Doc = PostDoc;
    type Event = DomainEvent;
    const NAME: &'static str = collections::POSTS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::POST, aggregate::GUILD];
    const LIVE: Live = Live::ById;
    const INDEXES: &'static [&'static str] = &["nick_keys"];
    const SINGLE_SOURCE: bool = false;

    fn touches(&self, at: At<DomainEvent>) -> Targets {
        post_targets(at)
    }

    fn fold_in(&self, doc: Option<PostDoc>, at: At<DomainEvent>) -> Folded<PostDoc> {
        let DomainEvent::Post(event) = at.event else {
            let rename = |doc: &mut PostDoc, user_id: &str, nickname: &str| {
                if doc.guild_id != at.aggregate_id {
                    return false;
                }
                if doc.author_id == user_id {
                    nickname.clone_into(&mut doc.author_nickname);
                }
                for c in doc.comments.iter_mut().filter(|c| c.author_id == user_id) {
                    nickname.clone_into(&mut c.author_nickname);
                }
                true
            };
            return fan_out_nickname(doc, at, |d| &mut d.guild_version, rename);
        };
        let occurred = at.metadata.occurred_at;
        let created = || match event {
            PostEvent::PostCreated {
                guild_id,
                channel_id,
                author_id,
                author_nickname,
                guild_version,
                title,
                content,
            } => Some(PostDoc {
                post_id: at.aggregate_id.clone(),
                nick_keys: vec![nick_key(guild_id, author_id)],
                guild_id: guild_id.clone(),
                channel_id: channel_id.clone(),
                author_id: author_id.clone(),
                author_nickname: author_nickname.clone(),
                title: title.clone(),
                content: content.clone(),
                comments: Vec::new(),
                reactions: Default::default(),
                created_at: occurred,
                edited_at: None,
                deleted: false,
                version: 1,
                guild_version: *guild_version,
            }),
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            match event {
                PostEvent::PostCreated { .. } => {
                    return Err(FoldError::Inapplicable("post created twice".into()))
                }
                PostEvent::PostEdited { title, content } => {
                    doc.title.clone_from(title);
                    doc.content.clone_from(content);
                    doc.edited_at = Some(occurred);
                }
                PostEvent::PostDeleted { .. } => doc.deleted = true,
                PostEvent::CommentAdded {
                    comment_id,
                    author_id,
                    author_nickname,
                    guild_version,
                    content,
                    ..
                } => {
                    let key = nick_key(&doc.guild_id, author_id);
                    if !doc.nick_keys.contains(&key) {
                        doc.nick_keys.push(key);
                    }
                    // the event read the nickname at `guild_version`; if this
                    // document has already seen a later change of this author's
                    // nickname, that one is newer
                    let known = (doc.author_id == *author_id)
                        .then(|| doc.author_nickname.clone())
                        .or_else(|| {
                            doc.comments
                                .iter()
                                .find(|c| &c.author_id == author_id)
                                .map(|c| c.author_nickname.clone())
                        });
                    let nickname = match known {
                        Some(known) if *guild_version < doc.guild_version => known,
                        _ => author_nickname.clone(),
                    };
                    doc.comments.push(CommentDoc {
                        comment_id: comment_id.clone(),
                        author_id: author_id.clone(),
                        author_nickname: nickname,
                        content: content.clone(),
                        created_at: occurred,
                        edited_at: None,
                    });
                }
                PostEvent::CommentEdited {
                    comment_id,
                    content,
                } => {
                    if let Some(c) = doc
                        .comments
                        .iter_mut()
                        .find(|c| &c.comment_id == comment_id)
                    {
                        c.content.clone_from(content);
                        c.edited_at = Some(occurred);
                    }
                }
                PostEvent::CommentDeleted { comment_id } => {
                    doc.comments.retain(|c| &c.comment_id != comment_id)
                }
                PostEvent::ReactionAdded { emoji, .. } => {
                    *doc.reactions.entry(emoji.clone()).or_default() += 1
                }
                PostEvent::ReactionRemoved { emoji, .. } => unreact(&mut doc.reactions, emoji),
            }
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

/// One reaction with `emoji` fewer; an emoji nobody reacts with is gone.
pub(super) fn unreact(reactions: &mut std::collections::BTreeMap<String, u64>, emoji: &str) {
    if let Some(n) = reactions.get_mut(emoji) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            reactions.remove(emoji);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::{guild, post};
    use tessera_events::Envelope;

    fn run(events: Vec<(Envelope, DomainEvent)>) -> PostDoc {
        let mut doc = None;
        for (env, ev) in events {
            if let Outcome::Put(d) = Posts.fold(doc.clone(), &env, &ev).unwrap() {
                doc = Some(d);
            }
        }
        doc.unwrap()
    }

    fn created() -> PostEvent {
        PostEvent::PostCreated {
            guild_id: "g".into(),
            channel_id: "c".into(),
            author_id: "ann".into(),
            author_nickname: "Ann".into(),
            guild_version: 5,
            title: "T".into(),
            content: "C".into(),
        }
    }

    fn commented(id: &str, by: &str, nick: &str, guild_version: u64) -> PostEvent {
        PostEvent::CommentAdded {
            comment_id: id.into(),
            author_id: by.into(),
            author_nickname: nick.into(),
            guild_version,
            content: "hi".into(),
            post_author_id: Some("ann".into()),
        }
    }

    #[test]
    fn a_post_collects_comments_and_reaction_counts() {
        let doc = run(vec![
            post("p", 1, created()),
            post("p", 2, commented("c1", "bob", "Bob", 5)),
            post("p", 3, commented("c2", "ann", "Ann", 5)),
            post(
                "p",
                4,
                PostEvent::ReactionAdded {
                    user_id: "bob".into(),
                    emoji: "👍".into(),
                    post_author_id: Some("ann".into()),
                },
            ),
            post(
                "p",
                5,
                PostEvent::ReactionAdded {
                    user_id: "ann".into(),
                    emoji: "👍".into(),
                    post_author_id: Some("ann".into()),
                },
            ),
            post(
                "p",
                6,
                PostEvent::ReactionRemoved {
                    user_id: "bob".into(),
                    emoji: "👍".into(),
                },
            ),
            post(
                "p",
                7,
                PostEvent::CommentDeleted {
                    comment_id: "c1".into(),
                },
            ),
            post(
                "p",
                8,
                PostEvent::CommentEdited {
                    comment_id: "c2".into(),
                    content: "edited".into(),
                },
            ),
        ]);
        assert_eq!(doc.comments.len(), 1);
        assert_eq!(doc.comments[0].content, "edited");
        assert!(doc.comments[0].edited_at.is_some());
        assert_eq!(doc.reactions.get("👍"), Some(&1));
        assert_eq!(doc.version, 8);
        assert_eq!(doc.nick_keys, ["g:ann", "g:bob"]);
    }

    #[test]
    fn a_nickname_change_reaches_the_author_and_their_comments_once() {
        let change = |seq: u64, user: &str, nick: &str| {
            guild(
                "g",
                seq,
                GuildEvent::MemberNicknameChanged {
                    user_id: user.into(),
                    nickname: nick.into(),
                },
            )
        };
        let (env, ev) = change(6, "bob", "Bobby");
        assert_eq!(
            Posts.targets(&env, &ev),
            Targets::Where {
                field: "nick_keys",
                value: "g:bob".into()
            }
        );
        let doc = run(vec![
            post("p", 1, created()),
            post("p", 2, commented("c1", "bob", "Bob", 5)),
            change(6, "bob", "Bobby"),
            change(7, "ann", "Annie"),
        ]);
        assert_eq!(doc.author_nickname, "Annie");
        assert_eq!(doc.comments[0].author_nickname, "Bobby");
        // the older change delivered again does not win
        let (env, ev) = change(6, "ann", "Old");
        assert_eq!(Posts.fold(Some(doc), &env, &ev), Ok(Outcome::Unchanged));
    }

    #[test]
    fn duplicates_are_skipped_and_gaps_refused() {
        let doc = run(vec![post("p", 1, created())]);
        let (env, ev) = post("p", 1, created());
        assert_eq!(
            Posts.fold(Some(doc.clone()), &env, &ev),
            Ok(Outcome::Unchanged)
        );
        let (env, ev) = post("p", 3, PostEvent::PostDeleted { by: "ann".into() });
        assert_eq!(
            Posts.fold(Some(doc), &env, &ev),
            Err(FoldError::Gap {
                expected: 2,
                got: 3
            })
        );
    }
}
