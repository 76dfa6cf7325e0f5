//! The read documents, as stored and as the read API serves them.
//!
//! Every document that follows one aggregate carries `version`: the sequence
//! of the last event of that aggregate it reflects.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_events::ChannelKind;

/// Collection names (DESIGN.md §5), plus the projector's own bookkeeping.
pub mod collections {
    pub const ACCOUNTS: &str = "accounts";
    pub const POINT_HISTORY: &str = "point_history";
    pub const GUILDS: &str = "guilds";
    pub const GUILD_MEMBERS: &str = "guild_members";
    pub const USER_GUILDS: &str = "user_guilds";
    /// One document per projection: its checkpoint and counters.
    pub const PROJECTIONS: &str = "projections";
    pub const DEAD_LETTERS: &str = "dead_letters";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDoc {
    pub account_id: String,
    pub email: String,
    pub nickname: String,
    pub profile_image: Option<String>,
    pub balance: i64,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

/// One change of an account's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointEntryDoc {
    pub account_id: String,
    pub sequence: u64,
    /// `charge`, `use` or `refund`.
    pub kind: String,
    /// Signed: a use is negative.
    pub amount: i64,
    pub balance: i64,
    /// The idempotency key of a charge, the reference of a use or refund.
    pub reference: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryDoc {
    pub category_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDoc {
    pub channel_id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub category_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildDoc {
    pub guild_id: String,
    pub name: String,
    pub profile_image: Option<String>,
    pub owner_id: String,
    pub member_count: u64,
    pub categories: Vec<CategoryDoc>,
    pub channels: Vec<ChannelDoc>,
    /// A deleted guild keeps its document (reads answer 410) so that its
    /// version still moves forward for readers waiting on it.
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

/// A member of a guild (id `{guild_id}:{user_id}`). A member who left keeps
/// the document with `member_of` unset: the tombstone keeps the sequence, so
/// a late duplicate of the join cannot bring the member back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildMemberDoc {
    pub guild_id: String,
    pub user_id: String,
    pub nickname: String,
    /// The guild id while a member, `None` after leaving: lists filter on it.
    pub member_of: Option<String>,
    pub joined_at: DateTime<Utc>,
    pub version: u64,
}

/// One guild in a user's guild list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGuildEntry {
    pub guild_id: String,
    pub name: String,
    pub profile_image: Option<String>,
    pub nickname: String,
    pub joined_at: DateTime<Utc>,
}

/// The guilds a user belongs to, denormalized (the seed's `guild_read`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGuildsDoc {
    pub user_id: String,
    /// In joining order.
    pub guilds: Vec<UserGuildEntry>,
    /// The ids of `guilds`, indexed so a guild's rename finds its members.
    pub guild_ids: Vec<String>,
    /// Last applied sequence per guild, kept after leaving (idempotency).
    pub seqs: BTreeMap<String, u64>,
}

/// Id of a member document.
pub fn member_id(guild_id: &str, user_id: &str) -> String {
    format!("{guild_id}:{user_id}")
}

/// Id of a point history entry: sorts by sequence within the account.
pub fn point_entry_id(account_id: &str, sequence: u64) -> String {
    format!("{account_id}:{sequence:020}")
}

/// Where a projection stands (collection `projections`, id = its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionStatus {
    pub name: String,
    pub collection: String,
    /// The log position of the last event handled (transaction id and global
    /// position; see `tessera_events::LogPosition`).
    pub tx_id: u64,
    pub position: i64,
    /// Events handled since this document was created.
    pub events: u64,
    pub updated_at: DateTime<Utc>,
}

/// An event a projection could not apply, kept with the reason (collection
/// `dead_letters`). Later events of the same aggregate wait here behind it
/// (per-aggregate order is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterDoc {
    pub projection: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub global_position: i64,
    /// The event, when the delivery was one.
    pub envelope: Option<tessera_events::Envelope>,
    /// The raw delivery, when it was not an event at all.
    pub raw: Option<String>,
    pub error: String,
    pub attempts: u32,
    /// The projection's name while the letter waits for retry or discard;
    /// indexed, so a projector finds what blocks it in one query.
    pub pending_for: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Id of a dead letter: one per projection and event, so recording the same
/// failure twice is harmless.
pub fn dead_letter_id(
    projection: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: u64,
) -> String {
    format!("{projection}:{aggregate_type}:{aggregate_id}:{sequence:020}")
}

/// The aggregate (`type:id`) a dead letter id belongs to.
pub fn dead_letter_aggregate<'a>(projection: &str, id: &'a str) -> Option<&'a str> {
    let rest = id.strip_prefix(projection)?.strip_prefix(':')?;
    rest.rsplit_once(':')
        .map(|(aggregate, _sequence)| aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_id_names_its_aggregate_even_with_colons_in_the_id() {
        let id = dead_letter_id("guilds", "guild", "a:b", 7);
        assert_eq!(dead_letter_aggregate("guilds", &id), Some("guild:a:b"));
        assert_eq!(dead_letter_aggregate("accounts", &id), None);
    }
}
