//! What the aggregates' unit tests share: starting an aggregate from its
//! history, and the one guild the board and chat rules are tried against.

use std::collections::HashMap;

use async_trait::async_trait;
use cqrs_es::test::{AggregateTestExecutor, TestFramework};
use cqrs_es::Aggregate;
use tessera_events::ChannelKind;

use super::post::{BoardServices, ChannelFacts, ChannelLookup, Membership};
use super::{FactUnavailable, Recorded};

/// The aggregate after `events`, deciding with `services`.
pub fn given<A, E>(services: A::Services, events: Vec<E>) -> AggregateTestExecutor<A>
where
    A: Aggregate<Event = Recorded<E>>,
{
    TestFramework::<A>::with(services).given(recorded(events))
}

/// Events as the aggregate writes them.
pub fn recorded<E>(events: Vec<E>) -> Vec<Recorded<E>> {
    events.into_iter().map(Recorded).collect()
}

/// Guild "g" owned by "owner" (Olive), with members ann (Ann) and bob (Bob),
/// a forum "forum", a text channel "chat" and a deleted channel "deleted";
/// every other channel is unknown.
pub struct OneGuild {
    members: HashMap<&'static str, &'static str>,
    /// What the membership answers as the guild's version.
    guild_version: u64,
}

impl OneGuild {
    pub fn at_version(guild_version: u64) -> Self {
        Self {
            members: [("owner", "Olive"), ("ann", "Ann"), ("bob", "Bob")]
                .into_iter()
                .collect(),
            guild_version,
        }
    }
}

#[async_trait]
impl BoardServices for OneGuild {
    async fn channel(&self, channel_id: &str) -> Result<ChannelLookup, FactUnavailable> {
        let kind = match channel_id {
            "forum" => ChannelKind::Forum,
            "chat" => ChannelKind::Text,
            "deleted" => return Ok(ChannelLookup::Gone),
            _ => return Ok(ChannelLookup::Unknown),
        };
        Ok(ChannelLookup::Live(ChannelFacts {
            guild_id: "g".into(),
            kind,
        }))
    }

    async fn membership(
        &self,
        _guild_id: &str,
        user_id: &str,
    ) -> Result<Membership, FactUnavailable> {
        Ok(Membership {
            guild_alive: true,
            owner_id: "owner".into(),
            nickname: self.members.get(user_id).map(|n| (*n).to_owned()),
            guild_version: self.guild_version,
        })
    }
}
