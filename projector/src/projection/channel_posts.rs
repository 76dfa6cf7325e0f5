use tessera_events::{aggregate, DomainEvent, Envelope, PostEvent};

use super::posts::unreact;
use super::posts::{nickname_change, post_targets};
use super::{monotonic, open, Fold, FoldError, Folded, Outcome, Step, Targets};
use tessera_documents::documents::{collections, ChannelPostDoc};

/// `channel_posts`: a summary per post (id = post id, which is
/// time-ordered), listed by channel newest first (comment count, reactions,
/// author nickname).
pub struct ChannelPosts;

impl Fold for ChannelPosts {
    type Doc = ChannelPostDoc;
    const NAME: &'static str = collections::CHANNEL_POSTS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::POST, aggregate::GUILD];
    const INDEXES: &'static [&'static str] = &["listed_in", "nick_keys"];
    const SINGLE_SOURCE: bool = false;

    fn targets(&self, envelope: &Envelope, event: &DomainEvent) -> Targets {
        post_targets(envelope, event, || envelope.aggregate_id.clone())
    }

    fn fold(
        &self,
        doc: Option<ChannelPostDoc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<ChannelPostDoc> {
        let sequence = envelope.sequence;
        let event = match event {
            DomainEvent::Post(e) => e,
            other => {
                let (Some(mut doc), Some((user_id, nickname))) = (doc, nickname_change(other))
                else {
                    return Ok(Outcome::Unchanged);
                };
                if monotonic(Some(doc.guild_version), sequence) == Step::Duplicate
                    || doc.author_id != user_id
                {
                    return Ok(Outcome::Unchanged);
                }
                nickname.clone_into(&mut doc.author_nickname);
                doc.guild_version = sequence;
                return Ok(Outcome::Put(doc));
            }
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
                post_id: envelope.aggregate_id.clone(),
                title: title.clone(),
                author_id: author_id.clone(),
                author_nickname: author_nickname.clone(),
                comment_count: 0,
                reactions: Default::default(),
                created_at: envelope.metadata.occurred_at,
                listed_in: Some(channel_id.clone()),
                version: 1,
                guild_version: *guild_version,
                nick_keys: vec![format!("{guild_id}:{author_id}")],
            }),
            _ => None,
        };
        open(doc, |d| d.version, sequence, created)?.then(|mut doc| {
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
            doc.version = sequence;
            Ok(Outcome::Put(doc))
        })
    }
}
