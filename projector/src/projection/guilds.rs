use tessera_events::GuildEvent;

use super::{open, At, Fold, FoldError, Folded, Live, Outcome};
use tessera_documents::documents::{collections, CategoryDoc, ChannelDoc, GuildDoc};

/// `guilds`: one document per guild, following every guild event.
pub struct Guilds;

impl Fold for Guilds {
    type Doc = GuildDoc;
    type Event = GuildEvent;
    const NAME: &'static str = collections::GUILDS;
    const LIVE: Live = Live::ById;

    fn fold_in(&self, doc: Option<GuildDoc>, at: At<GuildEvent>) -> Folded<GuildDoc> {
        let created = || match at.event {
            GuildEvent::GuildCreated {
                name,
                profile_image,
                owner_id,
                ..
            } => Some(GuildDoc {
                guild_id: at.aggregate_id.clone(),
                name: name.clone(),
                profile_image: profile_image.clone(),
                owner_id: owner_id.clone(),
                member_count: 1,
                categories: Vec::new(),
                channels: Vec::new(),
                deleted: false,
                created_at: at.metadata.occurred_at,
                version: 1,
            }),
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            match at.event {
                GuildEvent::GuildCreated { .. } => {
                    return Err(FoldError::Inapplicable("guild created twice".into()))
                }
                GuildEvent::GuildUpdated {
                    name,
                    profile_image,
                } => {
                    doc.name.clone_from(name);
                    doc.profile_image.clone_from(profile_image);
                }
                GuildEvent::GuildDeleted => doc.deleted = true,
                GuildEvent::MemberJoined { .. } => doc.member_count += 1,
                GuildEvent::MemberLeft { .. } => {
                    doc.member_count = doc.member_count.saturating_sub(1)
                }
                GuildEvent::MemberNicknameChanged { .. } => {}
                GuildEvent::CategoryCreated { category_id, name } => {
                    doc.categories.push(CategoryDoc {
                        category_id: category_id.clone(),
                        name: name.clone(),
                    })
                }
                GuildEvent::ChannelCreated {
                    channel_id,
                    name,
                    kind,
                    category_id,
                } => doc.channels.push(ChannelDoc {
                    channel_id: channel_id.clone(),
                    name: name.clone(),
                    kind: *kind,
                    category_id: category_id.clone(),
                }),
                GuildEvent::ChannelDeleted { channel_id } => {
                    doc.channels.retain(|c| &c.channel_id != channel_id);
                }
            }
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

#[cfg(test)]
mod tests {
    use tessera_events::ChannelKind;

    use super::*;
    use crate::projection::testing::guild;

    fn apply(events: Vec<GuildEvent>) -> GuildDoc {
        let mut doc = None;
        for (i, e) in events.into_iter().enumerate() {
            let (env, ev) = guild("g1", i as u64 + 1, e);
            if let Outcome::Put(d) = Guilds.fold(doc.clone(), &env, &ev).unwrap() {
                doc = Some(d);
            }
        }
        doc.unwrap()
    }

    fn created() -> GuildEvent {
        GuildEvent::GuildCreated {
            name: "Crabs".into(),
            profile_image: None,
            owner_id: "o".into(),
            owner_nickname: "Olive".into(),
        }
    }

    #[test]
    fn the_guild_document_follows_members_categories_and_channels() {
        let doc = apply(vec![
            created(),
            GuildEvent::MemberJoined {
                user_id: "a".into(),
                nickname: "A".into(),
                guild_name: "Crabs".into(),
                guild_profile_image: None,
            },
            GuildEvent::CategoryCreated {
                category_id: "k".into(),
                name: "Talk".into(),
            },
            GuildEvent::ChannelCreated {
                channel_id: "c1".into(),
                name: "general".into(),
                kind: ChannelKind::Forum,
                category_id: Some("k".into()),
            },
            GuildEvent::ChannelCreated {
                channel_id: "c2".into(),
                name: "random".into(),
                kind: ChannelKind::Text,
                category_id: None,
            },
            GuildEvent::ChannelDeleted {
                channel_id: "c1".into(),
            },
            GuildEvent::MemberLeft {
                user_id: "a".into(),
            },
            GuildEvent::GuildUpdated {
                name: "Lobsters".into(),
                profile_image: Some("img".into()),
            },
        ]);
        assert_eq!(doc.member_count, 1);
        assert_eq!(doc.name, "Lobsters");
        assert_eq!(doc.categories.len(), 1);
        assert_eq!(
            doc.channels
                .iter()
                .map(|c| c.channel_id.as_str())
                .collect::<Vec<_>>(),
            ["c2"]
        );
        assert_eq!(doc.version, 8);
    }

    #[test]
    fn deletion_keeps_a_tombstone_that_still_moves_the_version() {
        let doc = apply(vec![created(), GuildEvent::GuildDeleted]);
        assert!(doc.deleted);
        assert_eq!(doc.version, 2);
    }

    #[test]
    fn duplicates_change_nothing_and_gaps_are_refused() {
        let doc = apply(vec![created()]);
        let (env, ev) = guild("g1", 1, created());
        assert_eq!(
            Guilds.fold(Some(doc.clone()), &env, &ev),
            Ok(Outcome::Unchanged)
        );
        let (env, ev) = guild("g1", 3, GuildEvent::GuildDeleted);
        assert_eq!(
            Guilds.fold(Some(doc), &env, &ev),
            Err(FoldError::Gap {
                expected: 2,
                got: 3
            })
        );
    }
}
