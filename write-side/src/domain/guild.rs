//! The `guild` aggregate: a community server with members, categories and
//! channels.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, ChannelKind, GuildEvent};

use super::{image_ok, impl_aggregate, limits, name_ok, DomainError, ErrorKind, FactUnavailable};

super::named!(GuildCommand {
    Create,
    Update,
    Delete,
    Join,
    Leave,
    SetNickname,
    CreateCategory,
    CreateChannel,
    DeleteChannel,
});

/// Facts from other aggregates that guild decisions need.
#[async_trait]
pub trait GuildServices: Send + Sync {
    /// The current nickname of an account, `None` if there is no such account.
    /// `Err` means the answer could not be fetched (infrastructure).
    async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable>;
}

pub type GuildServicesRef = Arc<dyn GuildServices>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuildCommand {
    Create {
        name: String,
        profile_image: Option<String>,
        owner_id: String,
    },
    /// `None` leaves a field as it is; `Some(None)` clears the image.
    Update {
        actor: String,
        name: Option<String>,
        profile_image: Option<Option<String>>,
    },
    Delete {
        actor: String,
    },
    Join {
        user_id: String,
    },
    Leave {
        user_id: String,
    },
    SetNickname {
        user_id: String,
        nickname: String,
    },
    CreateCategory {
        actor: String,
        category_id: String,
        name: String,
    },
    CreateChannel {
        actor: String,
        channel_id: String,
        name: String,
        kind: ChannelKind,
        category_id: Option<String>,
    },
    DeleteChannel {
        actor: String,
        channel_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuildError {
    #[error("guild not found")]
    NotFound,
    #[error("guild already exists")]
    AlreadyExists,
    #[error("guild has been deleted")]
    Gone,
    #[error("only the guild owner may do this")]
    NotOwner,
    #[error("account not found")]
    AccountNotFound,
    #[error("already a member of this guild")]
    AlreadyMember,
    #[error("not a member of this guild")]
    NotMember,
    #[error("the owner cannot leave the guild")]
    OwnerCannotLeave,
    #[error("a {0} with this name already exists in the guild")]
    NameTaken(&'static str),
    #[error("no such category in this guild")]
    UnknownCategory,
    #[error("no such channel in this guild")]
    ChannelNotFound,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error(transparent)]
    Unavailable(FactUnavailable),
}

impl DomainError for GuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::AccountNotFound | Self::ChannelNotFound => ErrorKind::NotFound,
            Self::AlreadyExists
            | Self::AlreadyMember
            | Self::OwnerCannotLeave
            | Self::NameTaken(_) => ErrorKind::Conflict,
            Self::Gone => ErrorKind::Gone,
            Self::NotOwner | Self::NotMember => ErrorKind::Forbidden,
            Self::UnknownCategory => ErrorKind::Unprocessable,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::ChannelNotFound => "not_found",
            Self::AccountNotFound => "account_not_found",
            Self::AlreadyExists => "conflict",
            Self::Gone => "gone",
            Self::NotOwner => "forbidden",
            Self::AlreadyMember => "already_member",
            Self::NotMember => "not_member",
            Self::OwnerCannotLeave => "owner_cannot_leave",
            Self::NameTaken(_) => "name_taken",
            Self::UnknownCategory => "unknown_category",
            Self::Invalid { .. } => "invalid_input",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::NameTaken(what) => serde_json::json!({ "field": "name", "kind": what }),
            _ => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Channel {
    name: String,
    kind: ChannelKind,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guild {
    created: bool,
    deleted: bool,
    name: String,
    profile_image: Option<String>,
    owner_id: String,
    /// user id -> per-guild nickname
    members: HashMap<String, String>,
    /// category id -> name
    categories: HashMap<String, String>,
    channels: HashMap<String, Channel>,
    /// Channels deleted from the guild: what lived in them answers 410.
    deleted_channels: BTreeSet<String>,
    version: u64,
}

impl Guild {
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn exists(&self) -> bool {
        self.created && !self.deleted
    }

    pub fn is_member(&self, user_id: &str) -> bool {
        self.members.contains_key(user_id)
    }

    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// The member's nickname in this guild, `None` if not a member.
    pub fn member_nickname(&self, user_id: &str) -> Option<&str> {
        self.members.get(user_id).map(String::as_str)
    }

    pub fn channel_kind(&self, channel_id: &str) -> Option<ChannelKind> {
        self.channels.get(channel_id).map(|c| c.kind)
    }

    /// The guild or this channel of it was deleted.
    pub fn channel_gone(&self, channel_id: &str) -> bool {
        (self.created && self.deleted) || self.deleted_channels.contains(channel_id)
    }

    fn check_name(name: &str) -> Result<(), GuildError> {
        let (min, max) = limits::GUILD_NAME;
        if name_ok(name, min, max) {
            Ok(())
        } else {
            Err(GuildError::Invalid { field: "name" })
        }
    }

    fn check_image(image: Option<&str>) -> Result<(), GuildError> {
        if image_ok(image) {
            Ok(())
        } else {
            Err(GuildError::Invalid {
                field: "profile_image",
            })
        }
    }

    fn check_owner(&self, actor: &str) -> Result<(), GuildError> {
        if self.owner_id == actor {
            Ok(())
        } else {
            Err(GuildError::NotOwner)
        }
    }

    fn name_taken<'a>(mut names: impl Iterator<Item = &'a String>, name: &str) -> bool {
        let wanted = name.trim().to_lowercase();
        names.any(|n| n.trim().to_lowercase() == wanted)
    }

    async fn nickname_of(services: &GuildServicesRef, user_id: &str) -> Result<String, GuildError> {
        services
            .account_nickname(user_id)
            .await
            .map_err(GuildError::Unavailable)?
            .ok_or(GuildError::AccountNotFound)
    }

    /// The event a command leads to, if any (`Ok(None)`: accepted, no change).
    async fn decide(
        &self,
        command: GuildCommand,
        services: &GuildServicesRef,
    ) -> Result<Option<GuildEvent>, GuildError> {
        if let GuildCommand::Create {
            name,
            profile_image,
            owner_id,
        } = command
        {
            if self.created {
                return Err(GuildError::AlreadyExists);
            }
            Self::check_name(&name)?;
            Self::check_image(profile_image.as_deref())?;
            let owner_nickname = Self::nickname_of(services, &owner_id).await?;
            return Ok(Some(GuildEvent::GuildCreated {
                name,
                profile_image,
                owner_id,
                owner_nickname,
            }));
        }
        if !self.created {
            return Err(GuildError::NotFound);
        }
        if self.deleted {
            return Err(GuildError::Gone);
        }
        let event = match command {
            GuildCommand::Create { .. } => return Err(GuildError::AlreadyExists),
            GuildCommand::Update {
                actor,
                name,
                profile_image,
            } => {
                self.check_owner(&actor)?;
                let name = name.unwrap_or_else(|| self.name.clone());
                Self::check_name(&name)?;
                let profile_image = profile_image.unwrap_or_else(|| self.profile_image.clone());
                Self::check_image(profile_image.as_deref())?;
                if name == self.name && profile_image == self.profile_image {
                    return Ok(None);
                }
                GuildEvent::GuildUpdated {
                    name,
                    profile_image,
                }
            }
            GuildCommand::Delete { actor } => {
                self.check_owner(&actor)?;
                GuildEvent::GuildDeleted
            }
            GuildCommand::Join { user_id } => {
                if self.members.contains_key(&user_id) {
                    return Err(GuildError::AlreadyMember);
                }
                let nickname = Self::nickname_of(services, &user_id).await?;
                GuildEvent::MemberJoined {
                    user_id,
                    nickname,
                    guild_name: self.name.clone(),
                    guild_profile_image: self.profile_image.clone(),
                }
            }
            GuildCommand::Leave { user_id } => {
                if user_id == self.owner_id {
                    return Err(GuildError::OwnerCannotLeave);
                }
                if !self.members.contains_key(&user_id) {
                    return Err(GuildError::NotMember);
                }
                GuildEvent::MemberLeft { user_id }
            }
            GuildCommand::SetNickname { user_id, nickname } => {
                let (min, max) = limits::NICKNAME;
                if !name_ok(&nickname, min, max) {
                    return Err(GuildError::Invalid { field: "nickname" });
                }
                match self.members.get(&user_id) {
                    None => return Err(GuildError::NotMember),
                    Some(current) if *current == nickname => return Ok(None),
                    Some(_) => GuildEvent::MemberNicknameChanged { user_id, nickname },
                }
            }
            GuildCommand::CreateCategory {
                actor,
                category_id,
                name,
            } => {
                self.check_owner(&actor)?;
                Self::check_name(&name)?;
                if Self::name_taken(self.categories.values(), &name) {
                    return Err(GuildError::NameTaken("category"));
                }
                if self.categories.contains_key(&category_id) {
                    return Err(GuildError::AlreadyExists);
                }
                GuildEvent::CategoryCreated { category_id, name }
            }
            GuildCommand::CreateChannel {
                actor,
                channel_id,
                name,
                kind,
                category_id,
            } => {
                self.check_owner(&actor)?;
                Self::check_name(&name)?;
                if let Some(category) = &category_id {
                    if !self.categories.contains_key(category) {
                        return Err(GuildError::UnknownCategory);
                    }
                }
                if Self::name_taken(self.channels.values().map(|c| &c.name), &name) {
                    return Err(GuildError::NameTaken("channel"));
                }
                if self.channels.contains_key(&channel_id) {
                    return Err(GuildError::AlreadyExists);
                }
                GuildEvent::ChannelCreated {
                    channel_id,
                    name,
                    kind,
                    category_id,
                }
            }
            GuildCommand::DeleteChannel { actor, channel_id } => {
                self.check_owner(&actor)?;
                if !self.channels.contains_key(&channel_id) {
                    return Err(GuildError::ChannelNotFound);
                }
                GuildEvent::ChannelDeleted { channel_id }
            }
        };
        Ok(Some(event))
    }
}

impl_aggregate!(Guild: aggregate::GUILD, GuildCommand => GuildEvent, GuildError, services GuildServicesRef);

impl Guild {
    fn evolve(&mut self, event: GuildEvent) {
        self.version += 1;
        match event {
            GuildEvent::GuildCreated {
                name,
                profile_image,
                owner_id,
                owner_nickname,
            } => {
                self.created = true;
                self.name = name;
                self.profile_image = profile_image;
                self.members.insert(owner_id.clone(), owner_nickname);
                self.owner_id = owner_id;
            }
            GuildEvent::GuildUpdated {
                name,
                profile_image,
            } => {
                self.name = name;
                self.profile_image = profile_image;
            }
            GuildEvent::GuildDeleted => self.deleted = true,
            GuildEvent::MemberJoined {
                user_id, nickname, ..
            }
            | GuildEvent::MemberNicknameChanged { user_id, nickname } => {
                self.members.insert(user_id, nickname);
            }
            GuildEvent::MemberLeft { user_id } => {
                self.members.remove(&user_id);
            }
            GuildEvent::CategoryCreated { category_id, name } => {
                self.categories.insert(category_id, name);
            }
            GuildEvent::ChannelCreated {
                channel_id,
                name,
                kind,
                ..
            } => {
                self.channels.insert(channel_id, Channel { name, kind });
            }
            GuildEvent::ChannelDeleted { channel_id } => {
                self.channels.remove(&channel_id);
                self.deleted_channels.insert(channel_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::domain::testkit::{self, recorded as expect};

    /// A directory of accounts that answers from memory, or fails on demand.
    struct Directory {
        nicknames: HashMap<String, String>,
        down: bool,
    }

    #[async_trait]
    impl GuildServices for Directory {
        async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable> {
            if self.down {
                return Err(FactUnavailable::new("account store unreachable"));
            }
            Ok(self.nicknames.get(user_id).cloned())
        }
    }

    fn directory() -> GuildServicesRef {
        let nicknames = [("owner", "Olive"), ("ann", "Ann"), ("bob", "Bob")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Arc::new(Directory {
            nicknames,
            down: false,
        })
    }

    fn given(events: Vec<GuildEvent>) -> cqrs_es::test::AggregateTestExecutor<Guild> {
        testkit::given(directory(), events)
    }

    fn created() -> GuildEvent {
        GuildEvent::GuildCreated {
            name: "Rustaceans".into(),
            profile_image: None,
            owner_id: "owner".into(),
            owner_nickname: "Olive".into(),
        }
    }

    fn joined(user: &str, nickname: &str) -> GuildEvent {
        GuildEvent::MemberJoined {
            user_id: user.into(),
            nickname: nickname.into(),
            guild_name: "Rustaceans".into(),
            guild_profile_image: None,
        }
    }

    fn category(id: &str, name: &str) -> GuildEvent {
        GuildEvent::CategoryCreated {
            category_id: id.into(),
            name: name.into(),
        }
    }

    fn channel(id: &str, name: &str) -> GuildEvent {
        GuildEvent::ChannelCreated {
            channel_id: id.into(),
            name: name.into(),
            kind: ChannelKind::Forum,
            category_id: None,
        }
    }

    #[test]
    fn creating_a_guild_makes_the_creator_its_owner_with_their_nickname() {
        given(vec![])
            .when(GuildCommand::Create {
                name: "Rustaceans".into(),
                profile_image: None,
                owner_id: "owner".into(),
            })
            .then_expect_events(expect(vec![created()]));
    }

    #[test]
    fn a_guild_name_must_have_1_to_50_characters() {
        for name in ["", " ", &"n".repeat(51)] {
            given(vec![])
                .when(GuildCommand::Create {
                    name: name.into(),
                    profile_image: None,
                    owner_id: "owner".into(),
                })
                .then_expect_error(GuildError::Invalid { field: "name" });
        }
    }

    #[test]
    fn an_unknown_account_cannot_create_a_guild() {
        given(vec![])
            .when(GuildCommand::Create {
                name: "x".into(),
                profile_image: None,
                owner_id: "ghost".into(),
            })
            .then_expect_error(GuildError::AccountNotFound);
    }

    #[test]
    fn an_unreachable_directory_is_a_failure_not_a_rejection() {
        let down: GuildServicesRef = Arc::new(Directory {
            nicknames: HashMap::new(),
            down: true,
        });
        let err = testkit::given::<Guild, _>(down, vec![created()])
            .when(GuildCommand::Join {
                user_id: "ann".into(),
            })
            .inspect_result()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn commands_on_a_missing_guild_are_not_found() {
        given(vec![])
            .when(GuildCommand::Join {
                user_id: "ann".into(),
            })
            .then_expect_error(GuildError::NotFound);
    }

    #[test]
    fn only_the_owner_updates_the_guild() {
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::Update {
                actor: "ann".into(),
                name: Some("Mine".into()),
                profile_image: None,
            })
            .then_expect_error(GuildError::NotOwner);
        given(vec![created()])
            .when(GuildCommand::Update {
                actor: "owner".into(),
                name: Some("Crabs".into()),
                profile_image: None,
            })
            .then_expect_events(expect(vec![GuildEvent::GuildUpdated {
                name: "Crabs".into(),
                profile_image: None,
            }]));
    }

    #[test]
    fn only_the_owner_deletes_and_a_deleted_guild_rejects_everything() {
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::Delete {
                actor: "ann".into(),
            })
            .then_expect_error(GuildError::NotOwner);
        given(vec![created()])
            .when(GuildCommand::Delete {
                actor: "owner".into(),
            })
            .then_expect_events(expect(vec![GuildEvent::GuildDeleted]));
        let deleted = vec![created(), GuildEvent::GuildDeleted];
        for command in [
            GuildCommand::Join {
                user_id: "ann".into(),
            },
            GuildCommand::Delete {
                actor: "owner".into(),
            },
            GuildCommand::Update {
                actor: "owner".into(),
                name: Some("again".into()),
                profile_image: None,
            },
            GuildCommand::CreateChannel {
                actor: "owner".into(),
                channel_id: "c".into(),
                name: "general".into(),
                kind: ChannelKind::Text,
                category_id: None,
            },
        ] {
            given(deleted.clone())
                .when(command)
                .then_expect_error(GuildError::Gone);
        }
    }

    #[test]
    fn joining_records_the_members_current_nickname() {
        given(vec![created()])
            .when(GuildCommand::Join {
                user_id: "ann".into(),
            })
            .then_expect_events(expect(vec![joined("ann", "Ann")]));
    }

    #[test]
    fn joining_twice_is_a_conflict() {
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::Join {
                user_id: "ann".into(),
            })
            .then_expect_error(GuildError::AlreadyMember);
        // the owner is a member from the start
        given(vec![created()])
            .when(GuildCommand::Join {
                user_id: "owner".into(),
            })
            .then_expect_error(GuildError::AlreadyMember);
    }

    #[test]
    fn the_owner_cannot_leave_and_strangers_have_nothing_to_leave() {
        given(vec![created()])
            .when(GuildCommand::Leave {
                user_id: "owner".into(),
            })
            .then_expect_error(GuildError::OwnerCannotLeave);
        given(vec![created()])
            .when(GuildCommand::Leave {
                user_id: "bob".into(),
            })
            .then_expect_error(GuildError::NotMember);
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::Leave {
                user_id: "ann".into(),
            })
            .then_expect_events(expect(vec![GuildEvent::MemberLeft {
                user_id: "ann".into(),
            }]));
    }

    #[test]
    fn a_member_who_left_may_join_again() {
        given(vec![
            created(),
            joined("ann", "Ann"),
            GuildEvent::MemberLeft {
                user_id: "ann".into(),
            },
        ])
        .when(GuildCommand::Join {
            user_id: "ann".into(),
        })
        .then_expect_events(expect(vec![joined("ann", "Ann")]));
    }

    #[test]
    fn members_set_their_own_guild_nickname() {
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::SetNickname {
                user_id: "ann".into(),
                nickname: "Annie".into(),
            })
            .then_expect_events(expect(vec![GuildEvent::MemberNicknameChanged {
                user_id: "ann".into(),
                nickname: "Annie".into(),
            }]));
        given(vec![created()])
            .when(GuildCommand::SetNickname {
                user_id: "bob".into(),
                nickname: "B".into(),
            })
            .then_expect_error(GuildError::NotMember);
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::SetNickname {
                user_id: "ann".into(),
                nickname: "x".repeat(33),
            })
            .then_expect_error(GuildError::Invalid { field: "nickname" });
    }

    #[test]
    fn categories_are_owner_only_with_unique_names() {
        given(vec![created(), joined("ann", "Ann")])
            .when(GuildCommand::CreateCategory {
                actor: "ann".into(),
                category_id: "k1".into(),
                name: "Talk".into(),
            })
            .then_expect_error(GuildError::NotOwner);
        given(vec![created(), category("k1", "Talk")])
            .when(GuildCommand::CreateCategory {
                actor: "owner".into(),
                category_id: "k2".into(),
                name: " talk ".into(),
            })
            .then_expect_error(GuildError::NameTaken("category"));
        given(vec![created()])
            .when(GuildCommand::CreateCategory {
                actor: "owner".into(),
                category_id: "k1".into(),
                name: "Talk".into(),
            })
            .then_expect_events(expect(vec![category("k1", "Talk")]));
    }

    #[test]
    fn channels_are_owner_only_with_unique_names_in_known_categories() {
        let create =
            |actor: &str, name: &str, category: Option<&str>| GuildCommand::CreateChannel {
                actor: actor.into(),
                channel_id: "c2".into(),
                name: name.into(),
                kind: ChannelKind::Text,
                category_id: category.map(Into::into),
            };
        given(vec![created(), joined("ann", "Ann")])
            .when(create("ann", "general", None))
            .then_expect_error(GuildError::NotOwner);
        given(vec![created(), channel("c1", "General")])
            .when(create("owner", "general", None))
            .then_expect_error(GuildError::NameTaken("channel"));
        given(vec![created()])
            .when(create("owner", "general", Some("nope")))
            .then_expect_error(GuildError::UnknownCategory);
        given(vec![created(), category("k1", "Talk")])
            .when(create("owner", "general", Some("k1")))
            .then_expect_events(expect(vec![GuildEvent::ChannelCreated {
                channel_id: "c2".into(),
                name: "general".into(),
                kind: ChannelKind::Text,
                category_id: Some("k1".into()),
            }]));
    }

    #[test]
    fn a_deleted_channel_frees_its_name() {
        given(vec![created(), channel("c1", "general")])
            .when(GuildCommand::DeleteChannel {
                actor: "owner".into(),
                channel_id: "c1".into(),
            })
            .then_expect_events(expect(vec![GuildEvent::ChannelDeleted {
                channel_id: "c1".into(),
            }]));
        given(vec![
            created(),
            channel("c1", "general"),
            GuildEvent::ChannelDeleted {
                channel_id: "c1".into(),
            },
        ])
        .when(GuildCommand::CreateChannel {
            actor: "owner".into(),
            channel_id: "c2".into(),
            name: "general".into(),
            kind: ChannelKind::Forum,
            category_id: None,
        })
        .then_expect_events(expect(vec![GuildEvent::ChannelCreated {
            channel_id: "c2".into(),
            name: "general".into(),
            kind: ChannelKind::Forum,
            category_id: None,
        }]));
        given(vec![created()])
            .when(GuildCommand::DeleteChannel {
                actor: "owner".into(),
                channel_id: "nope".into(),
            })
            .then_expect_error(GuildError::ChannelNotFound);
    }
}
