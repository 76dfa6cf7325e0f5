use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// What a channel is for: chat (`text`) or posts with comments (`forum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Text,
    Forum,
}

/// Events of the `guild` aggregate (a community server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum GuildEvent {
    GuildCreated {
        name: String,
        profile_image: Option<String>,
        owner_id: String,
        owner_nickname: String,
    },
    /// The whole new name and image, not a patch.
    GuildUpdated {
        name: String,
        profile_image: Option<String>,
    },
    GuildDeleted,
    /// Carries the guild's name and image at the time, so that a member's
    /// guild list can be built from this event alone.
    MemberJoined {
        user_id: String,
        nickname: String,
        guild_name: String,
        guild_profile_image: Option<String>,
    },
    MemberLeft {
        user_id: String,
    },
    MemberNicknameChanged {
        user_id: String,
        nickname: String,
    },
    CategoryCreated {
        category_id: String,
        name: String,
    },
    ChannelCreated {
        channel_id: String,
        name: String,
        kind: ChannelKind,
        category_id: Option<String>,
    },
    ChannelDeleted {
        channel_id: String,
    },
}

event_kind!(GuildEvent: aggregate::GUILD, version "1.0" {
    GuildCreated,
    GuildUpdated,
    GuildDeleted,
    MemberJoined,
    MemberLeft,
    MemberNicknameChanged,
    CategoryCreated,
    ChannelCreated,
    ChannelDeleted,
});

impl GuildEvent {
    /// The member whose membership this event makes, changes or ends (a
    /// created guild's owner is its first member); `None` for events about
    /// the guild as a whole or its channels.
    pub fn member(&self) -> Option<&str> {
        match self {
            Self::GuildCreated {
                owner_id: user_id, ..
            }
            | Self::MemberJoined { user_id, .. }
            | Self::MemberLeft { user_id }
            | Self::MemberNicknameChanged { user_id, .. } => Some(user_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_events_name_their_member_and_others_none() {
        let created = GuildEvent::GuildCreated {
            name: "g".into(),
            profile_image: None,
            owner_id: "owner".into(),
            owner_nickname: "o".into(),
        };
        let left = GuildEvent::MemberLeft {
            user_id: "u1".into(),
        };
        assert_eq!(created.member(), Some("owner"));
        assert_eq!(left.member(), Some("u1"));
        assert_eq!(GuildEvent::GuildDeleted.member(), None);
    }
}
