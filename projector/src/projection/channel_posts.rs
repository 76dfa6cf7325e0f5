use tessera_events::{aggregate, DomainEvent, PostEvent};

use super::posts::{fan_out_nickname, post_targets, unreact};
use super::{open, At, Fold, FoldError, Folded, Outcome, Targets};
use tessera_documents::documents::{collections, ChannelPostDoc};

/// `channel_posts`: a summary per post (id = post id, which is
/// time-ordered), listed by channel newest first (comment count, reactions,
/// author nickname).
pub struct ChannelPosts;

impl Fold for ChannelPosts {
    type Doc = ChannelPostDoc;
    type Event = DomainEvent;
    const NAME: &'static str = collections::CHANNEL_POSTS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::POST, aggregate::GUILD];
    const INDEXES: &'static [&'static str] = &["listed_in", "nick_keys"];
    const SINGLE_SOURCE: bool = false;

    fn touches(&self, at: At<DomainEvent>) -> Targets {
        post_targets(at)
    }

    fn fold_in(&self, doc: Option<ChannelPostDoc>, at: At<DomainEvent>) -> Folded<Self::Doc> {
        let DomainEvent::Post(event) = at.event else {
            let rename = |doc: &mut ChannelPostDoc, user_id: &str, nickname: &str| {
                let theirs = doc.author_id == user_id;
                if theirs {
                    nickname.clone_into(&mut doc.author_nickname);
                }
                theirs
            };
            return fan_out_nickname(doc, at, |d| &mut d.guild_version, rename);
        };
        let created = || match event {
            PostEvent::PostCreated {
                guild_id,
                channel_id,
                author_id,
                author_nickname,
                guild_version,
                title,
                ..
            } => Some(ChannelPostDoc {
                channel_id: channel_id.clone(),
                post_id: at.aggregate_id.clone(),
                title: title.clone(),
                author_id: author_id.clone(),
                author_nickname: author_nickname.clone(),
                comment_count: 0,
                reactions: Default::default(),
                created_at: at.metadata.occurred_at,
                listed_in: Some(channel_id.clone()),
                version: 1,
                guild_version: *guild_version,
                nick_keys: vec![format!("{guild_id}:{author_id}")],
            }),
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            match event {
                PostEvent::PostCreated { .. } => {
                    return Err(FoldError::Inapplicable("post created twice".into()))
                }
                PostEvent::PostEdited { title, .. } => doc.title.clone_from(title),
                PostEvent::PostDeleted { .. } => doc.listed_in = None,
                PostEvent::CommentAdded { .. } => doc.comment_count += 1,
                PostEvent::CommentDeleted { .. } => {
                    doc.comment_count = doc.comment_count.saturating_sub(1)
                }
                PostEvent::CommentEdited { .. } => {}
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
