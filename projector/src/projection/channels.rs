use tessera_documents::documents::{collections, ChannelRefDoc};
use tessera_events::GuildEvent;

use super::{monotonic, At, Fold, Folded, Outcome, Step, Targets};

/// `channels`: where each channel lives, for the reads scoped to a channel
/// (its post list, its posts, later its messages): they find the guild
/// whose members may read them here, and answer 410 once the channel or its
/// guild is deleted.
pub struct Channels;

impl Fold for Channels {
    type Doc = ChannelRefDoc;
    type Event = GuildEvent;
    const NAME: &'static str = collections::CHANNELS;
    const INDEXES: &'static [&'static str] = &["in_guild"];

    fn touches(&self, at: At<GuildEvent>) -> Targets {
        match at.event {
            GuildEvent::ChannelCreated { channel_id, .. }
            | GuildEvent::ChannelDeleted { channel_id } => Targets::Ids(vec![channel_id.clone()]),
            GuildEvent::GuildDeleted => Targets::Where {
                field: "in_guild",
                value: at.aggregate_id.clone(),
            },
            _ => Targets::None,
        }
    }

    fn fold_in(&self, doc: Option<ChannelRefDoc>, at: At<GuildEvent>) -> Folded<ChannelRefDoc> {
        let sequence = at.sequence;
        if monotonic(doc.as_ref().map(|d| d.version), sequence) == Step::Duplicate {
            return Ok(Outcome::Unchanged);
        }
        Ok(match (at.event, doc) {
            (
                GuildEvent::ChannelCreated {
                    channel_id, kind, ..
                },
                _,
            ) => Outcome::Put(ChannelRefDoc {
                channel_id: channel_id.clone(),
                guild_id: at.aggregate_id.clone(),
                kind: *kind,
                in_guild: Some(at.aggregate_id.clone()),
                deleted: false,
                version: sequence,
            }),
            (GuildEvent::ChannelDeleted { .. } | GuildEvent::GuildDeleted, Some(mut d)) => {
                d.deleted = true;
                d.in_guild = None;
                d.version = sequence;
                Outcome::Put(d)
            }
            _ => Outcome::Unchanged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::guild;
    use tessera_events::ChannelKind;

    fn run(doc: Option<ChannelRefDoc>, sequence: u64, e: GuildEvent) -> Folded<ChannelRefDoc> {
        let (env, ev) = guild("g", sequence, e);
        Channels.fold(doc, &env, &ev)
    }

    fn put(o: Folded<ChannelRefDoc>) -> ChannelRefDoc {
        match o {
            Ok(Outcome::Put(d)) => d,
            other => panic!("expected a put, got {other:?}"),
        }
    }

    fn created() -> GuildEvent {
        GuildEvent::ChannelCreated {
            channel_id: "c".into(),
            name: "general".into(),
            kind: ChannelKind::Forum,
            category_id: None,
        }
    }

    #[test]
    fn a_channel_names_its_guild_until_it_or_the_guild_is_deleted() {
        let doc = put(run(None, 3, created()));
        assert_eq!(
            (doc.guild_id.as_str(), doc.in_guild.as_deref(), doc.deleted),
            ("g", Some("g"), false)
        );
        let gone = put(run(Some(doc.clone()), 5, GuildEvent::GuildDeleted));
        assert_eq!((gone.deleted, gone.in_guild, gone.version), (true, None, 5));
        let gone = put(run(
            Some(doc),
            4,
            GuildEvent::ChannelDeleted {
                channel_id: "c".into(),
            },
        ));
        assert!(gone.deleted);
    }

    #[test]
    fn a_duplicate_changes_nothing_and_other_events_touch_no_channel() {
        let doc = put(run(None, 3, created()));
        assert_eq!(
            run(Some(doc.clone()), 3, GuildEvent::GuildDeleted),
            Ok(Outcome::Unchanged)
        );
        let (env, ev) = guild(
            "g",
            4,
            GuildEvent::MemberLeft {
                user_id: "u".into(),
            },
        );
        assert_eq!(Channels.targets(&env, &ev), Targets::None);
        assert_eq!(Channels.fold(Some(doc), &env, &ev), Ok(Outcome::Unchanged));
    }
}
