use tessera_events::GuildEvent;

use super::{monotonic, At, Fold, FoldError, Folded, Outcome, Step, Targets};
use tessera_documents::documents::{collections, member_id, GuildMemberDoc};

/// `guild_members`: one document per (guild, user), listed by `member_of`.
pub struct GuildMembers;

impl Fold for GuildMembers {
    type Doc = GuildMemberDoc;
    type Event = GuildEvent;
    const NAME: &'static str = collections::GUILD_MEMBERS;
    const INDEXES: &'static [&'static str] = &["member_of"];

    fn touches(&self, at: At<GuildEvent>) -> Targets {
        let guild = &at.aggregate_id;
        if let Some(user_id) = at.event.member() {
            return Targets::Ids(vec![member_id(guild, user_id)]);
        }
        match at.event {
            GuildEvent::GuildDeleted => Targets::Where {
                field: "member_of",
                value: guild.clone(),
            },
            _ => Targets::None,
        }
    }

    fn fold_in(&self, doc: Option<GuildMemberDoc>, at: At<GuildEvent>) -> Folded<Self::Doc> {
        let sequence = at.sequence;
        if monotonic(doc.as_ref().map(|d| d.version), sequence) == Step::Duplicate {
            return Ok(Outcome::Unchanged);
        }
        let guild_id = at.aggregate_id.clone();
        let member = |user_id: &str, nickname: &str| GuildMemberDoc {
            guild_id: guild_id.clone(),
            user_id: user_id.to_owned(),
            nickname: nickname.to_owned(),
            member_of: Some(guild_id.clone()),
            joined_at: at.metadata.occurred_at,
            version: sequence,
        };
        let next = match (at.event, doc) {
            (
                GuildEvent::GuildCreated {
                    owner_id,
                    owner_nickname,
                    ..
                },
                _,
            ) => member(owner_id, owner_nickname),
            (
                GuildEvent::MemberJoined {
                    user_id, nickname, ..
                },
                _,
            ) => member(user_id, nickname),
            (GuildEvent::MemberLeft { user_id }, doc) => {
                // keep a tombstone: it holds the sequence of the leave
                let mut d = doc.unwrap_or_else(|| member(user_id, ""));
                d.member_of = None;
                d.version = sequence;
                d
            }
            (GuildEvent::MemberNicknameChanged { nickname, .. }, Some(mut d)) => {
                d.nickname.clone_from(nickname);
                d.version = sequence;
                d
            }
            (GuildEvent::MemberNicknameChanged { user_id, .. }, None) => {
                return Err(FoldError::Inapplicable(format!(
                    "nickname change for {user_id}, who never joined"
                )))
            }
            (GuildEvent::GuildDeleted, Some(mut d)) => {
                d.member_of = None;
                d.version = sequence;
                d
            }
            _ => return Ok(Outcome::Unchanged),
        };
        Ok(Outcome::Put(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::guild;

    fn joined(user: &str) -> GuildEvent {
        GuildEvent::MemberJoined {
            user_id: user.into(),
            nickname: user.to_uppercase(),
            guild_name: "G".into(),
            guild_profile_image: None,
        }
    }

    fn put(o: Result<Outcome<GuildMemberDoc>, FoldError>) -> GuildMemberDoc {
        match o {
            Ok(Outcome::Put(d)) => d,
            other => panic!("expected a put, got {other:?}"),
        }
    }

    #[test]
    fn a_member_who_leaves_leaves_a_tombstone_that_a_late_join_cannot_undo() {
        let (env, ev) = guild("g", 2, joined("ann"));
        assert_eq!(
            GuildMembers.targets(&env, &ev),
            Targets::Ids(vec!["g:ann".into()])
        );
        let d = put(GuildMembers.fold(None, &env, &ev));
        assert_eq!(d.member_of.as_deref(), Some("g"));
        let (env3, ev3) = guild(
            "g",
            3,
            GuildEvent::MemberLeft {
                user_id: "ann".into(),
            },
        );
        let d = put(GuildMembers.fold(Some(d), &env3, &ev3));
        assert_eq!(d.member_of, None);
        // the join delivered again after the leave
        assert_eq!(
            GuildMembers.fold(Some(d.clone()), &env, &ev),
            Ok(Outcome::Unchanged)
        );
        // a real rejoin later does apply
        let (env4, ev4) = guild("g", 4, joined("ann"));
        assert_eq!(
            put(GuildMembers.fold(Some(d), &env4, &ev4))
                .member_of
                .as_deref(),
            Some("g")
        );
    }

    #[test]
    fn nicknames_follow_and_deletion_reaches_every_member() {
        let (env, ev) = guild("g", 2, joined("ann"));
        let d = put(GuildMembers.fold(None, &env, &ev));
        let (env, ev) = guild(
            "g",
            3,
            GuildEvent::MemberNicknameChanged {
                user_id: "ann".into(),
                nickname: "Annie".into(),
            },
        );
        let d = put(GuildMembers.fold(Some(d), &env, &ev));
        assert_eq!(d.nickname, "Annie");
        let (env, ev) = guild("g", 4, GuildEvent::GuildDeleted);
        assert_eq!(
            GuildMembers.targets(&env, &ev),
            Targets::Where {
                field: "member_of",
                value: "g".into()
            }
        );
        assert_eq!(put(GuildMembers.fold(Some(d), &env, &ev)).member_of, None);
    }

    #[test]
    fn a_nickname_change_for_someone_who_never_joined_is_refused() {
        let (env, ev) = guild(
            "g",
            3,
            GuildEvent::MemberNicknameChanged {
                user_id: "ghost".into(),
                nickname: "x".into(),
            },
        );
        assert!(matches!(
            GuildMembers.fold(None, &env, &ev),
            Err(FoldError::Inapplicable(_))
        ));
    }
}
