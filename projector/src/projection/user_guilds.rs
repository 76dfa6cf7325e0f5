use tessera_events::GuildEvent;

use super::{monotonic, At, Fold, Folded, Outcome, Step, Targets};
use tessera_documents::documents::{collections, UserGuildEntry, UserGuildsDoc};

/// `user_guilds`: one document per user listing their guilds with each
/// guild's name and image and the user's nickname there. A guild's rename or
/// deletion fans out to its members' documents through the `guild_ids` index.
pub struct UserGuilds;

impl Fold for UserGuilds {
    type Doc = UserGuildsDoc;
    type Event = GuildEvent;
    const NAME: &'static str = collections::USER_GUILDS;
    const INDEXES: &'static [&'static str] = &["guild_ids"];
    const SINGLE_SOURCE: bool = false;

    fn touches(&self, at: At<GuildEvent>) -> Targets {
        if let Some(user_id) = at.event.member() {
            return Targets::Ids(vec![user_id.to_owned()]);
        }
        match at.event {
            GuildEvent::GuildUpdated { .. } | GuildEvent::GuildDeleted => Targets::Where {
                field: "guild_ids",
                value: at.aggregate_id.clone(),
            },
            _ => Targets::None,
        }
    }

    fn fold_in(&self, doc: Option<UserGuildsDoc>, at: At<GuildEvent>) -> Folded<UserGuildsDoc> {
        let guild_id = &at.aggregate_id;
        let mut doc = doc.unwrap_or_default();
        if monotonic(doc.seqs.get(guild_id).copied(), at.sequence) == Step::Duplicate {
            return Ok(Outcome::Unchanged);
        }
        let joined_at = at.metadata.occurred_at;
        match at.event {
            GuildEvent::GuildCreated {
                name,
                profile_image,
                owner_id,
                owner_nickname,
            } => {
                doc.user_id.clone_from(owner_id);
                join(
                    &mut doc,
                    UserGuildEntry {
                        guild_id: guild_id.clone(),
                        name: name.clone(),
                        profile_image: profile_image.clone(),
                        nickname: owner_nickname.clone(),
                        joined_at,
                    },
                );
            }
            GuildEvent::MemberJoined {
                user_id,
                nickname,
                guild_name,
                guild_profile_image,
            } => {
                doc.user_id.clone_from(user_id);
                join(
                    &mut doc,
                    UserGuildEntry {
                        guild_id: guild_id.clone(),
                        name: guild_name.clone(),
                        profile_image: guild_profile_image.clone(),
                        nickname: nickname.clone(),
                        joined_at,
                    },
                );
            }
            GuildEvent::MemberLeft { user_id } => {
                doc.user_id.clone_from(user_id);
                leave(&mut doc, guild_id);
            }
            GuildEvent::GuildDeleted => leave(&mut doc, guild_id),
            GuildEvent::MemberNicknameChanged { nickname, .. } => {
                if let Some(entry) = entry_mut(&mut doc, guild_id) {
                    entry.nickname.clone_from(nickname);
                }
            }
            GuildEvent::GuildUpdated {
                name,
                profile_image,
            } => {
                if let Some(entry) = entry_mut(&mut doc, guild_id) {
                    entry.name.clone_from(name);
                    entry.profile_image.clone_from(profile_image);
                }
            }
            _ => return Ok(Outcome::Unchanged),
        }
        doc.seqs.insert(guild_id.clone(), at.sequence);
        Ok(Outcome::Put(doc))
    }
}

/// Keeps the guilds ordered by when the user joined (then by id): events
/// of different guilds travel on different partitions and may arrive in
/// any order, and a document must not depend on that order.
fn join(doc: &mut UserGuildsDoc, entry: UserGuildEntry) {
    leave(doc, &entry.guild_id);
    let key = |g: &UserGuildEntry| (g.joined_at, g.guild_id.clone());
    let at = doc.guilds.partition_point(|g| key(g) < key(&entry));
    doc.guild_ids.insert(at, entry.guild_id.clone());
    doc.guilds.insert(at, entry);
}

fn leave(doc: &mut UserGuildsDoc, guild_id: &str) {
    doc.guilds.retain(|g| g.guild_id != guild_id);
    doc.guild_ids.retain(|g| g != guild_id);
}

fn entry_mut<'d>(doc: &'d mut UserGuildsDoc, guild_id: &str) -> Option<&'d mut UserGuildEntry> {
    doc.guilds.iter_mut().find(|g| g.guild_id == guild_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::guild;

    fn step(doc: Option<UserGuildsDoc>, g: &str, seq: u64, e: GuildEvent) -> Option<UserGuildsDoc> {
        let (env, ev) = guild(g, seq, e);
        match UserGuilds.fold(doc.clone(), &env, &ev).unwrap() {
            Outcome::Put(d) => Some(d),
            Outcome::Unchanged => doc,
            Outcome::Delete => None,
        }
    }

    fn joined(g: &str, nickname: &str) -> GuildEvent {
        GuildEvent::MemberJoined {
            user_id: "ann".into(),
            nickname: nickname.into(),
            guild_name: format!("{g}-name"),
            guild_profile_image: None,
        }
    }

    #[test]
    fn a_users_guild_list_follows_joins_renames_nicknames_and_leaves() {
        let doc = step(None, "g1", 2, joined("g1", "Ann"));
        let doc = step(doc, "g2", 5, joined("g2", "Annie"));
        let doc = step(
            doc,
            "g1",
            3,
            GuildEvent::GuildUpdated {
                name: "renamed".into(),
                profile_image: Some("i".into()),
            },
        );
        let doc = step(
            doc,
            "g2",
            6,
            GuildEvent::MemberNicknameChanged {
                user_id: "ann".into(),
                nickname: "A.".into(),
            },
        )
        .unwrap();
        assert_eq!(doc.user_id, "ann");
        assert_eq!(doc.guild_ids, ["g1", "g2"]);
        assert_eq!(doc.guilds[0].name, "renamed");
        assert_eq!(doc.guilds[1].nickname, "A.");
        let doc = step(
            Some(doc),
            "g1",
            4,
            GuildEvent::MemberLeft {
                user_id: "ann".into(),
            },
        )
        .unwrap();
        assert_eq!(doc.guild_ids, ["g2"]);
        // the join of g1 delivered again does not bring it back
        let doc = step(Some(doc), "g1", 2, joined("g1", "Ann")).unwrap();
        assert_eq!(doc.guild_ids, ["g2"]);
        let doc = step(Some(doc), "g2", 7, GuildEvent::GuildDeleted).unwrap();
        assert!(doc.guilds.is_empty());
    }

    #[test]
    fn joins_arriving_in_any_order_list_the_guilds_in_joining_order() {
        // g1 at minute 2, g2 at minute 5, g3 at minute 9 (the builder's clock)
        let in_log_order = step(None, "g1", 2, joined("g1", "A"));
        let in_log_order = step(in_log_order, "g2", 5, joined("g2", "A"));
        let in_log_order = step(in_log_order, "g3", 9, joined("g3", "A")).unwrap();
        let shuffled = step(None, "g3", 9, joined("g3", "A"));
        let shuffled = step(shuffled, "g1", 2, joined("g1", "A"));
        let shuffled = step(shuffled, "g2", 5, joined("g2", "A")).unwrap();
        assert_eq!(in_log_order.guild_ids, ["g1", "g2", "g3"]);
        assert_eq!(shuffled, in_log_order);
    }

    #[test]
    fn renames_and_deletions_fan_out_by_the_guild_index() {
        let (env, ev) = guild("g9", 4, GuildEvent::GuildDeleted);
        assert_eq!(
            UserGuilds.targets(&env, &ev),
            Targets::Where {
                field: "guild_ids",
                value: "g9".into()
            }
        );
    }
}
