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
    pub const CHANNELS: &str = "channels";
    pub const USER_GUILDS: &str = "user_guilds";
    pub const POSTS: &str = "posts";
    pub const CHANNEL_POSTS: &str = "channel_posts";
    pub const CONCERTS: &str = "concerts";
    pub const SCHEDULES: &str = "schedules";
    pub const SEAT_MAPS: &str = "seat_maps";
    pub const RESERVATIONS: &str = "reservations";
    pub const USER_RESERVATIONS: &str = "user_reservations";
    pub const COUPONS: &str = "coupons";
    pub const USER_COUPONS: &str = "user_coupons";
    pub const PRODUCTS: &str = "products";
    pub const POPULAR_PRODUCTS: &str = "popular_products";
    pub const ORDERS: &str = "orders";
    pub const USER_ORDERS: &str = "user_orders";
    pub const SELLER_SALES: &str = "seller_sales";
    pub const MESSAGES: &str = "messages";
    pub const DM_ROOMS: &str = "dm_rooms";
    pub const NOTIFICATIONS: &str = "notifications";
    /// Every projected collection, one per projection (the projector's
    /// `projection::all()` in the same order; a test keeps them equal).
    pub const PROJECTED: &[&str] = &[
        ACCOUNTS,
        POINT_HISTORY,
        GUILDS,
        GUILD_MEMBERS,
        CHANNELS,
        USER_GUILDS,
        POSTS,
        CHANNEL_POSTS,
        CONCERTS,
        SCHEDULES,
        SEAT_MAPS,
        RESERVATIONS,
        USER_RESERVATIONS,
        COUPONS,
        USER_COUPONS,
        PRODUCTS,
        POPULAR_PRODUCTS,
        ORDERS,
        USER_ORDERS,
        SELLER_SALES,
        MESSAGES,
        DM_ROOMS,
        NOTIFICATIONS,
    ];
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
    /// The newest of the account's notifications it marked read.
    #[serde(default)]
    pub notifications_read_up_to: Option<String>,
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

/// Where a channel lives (collection `channels`, id = the channel id): the
/// guild whose members may read it. A deleted channel, or a channel of a
/// deleted guild, keeps its document marked `deleted`, so that reads of
/// what lived in it answer 410.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRefDoc {
    pub channel_id: String,
    pub guild_id: String,
    pub kind: ChannelKind,
    /// The guild id while the channel lives: a guild's deletion reaches
    /// its channels through it.
    pub in_guild: Option<String>,
    pub deleted: bool,
    /// The guild's sequence this reflects.
    pub version: u64,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentDoc {
    pub comment_id: String,
    pub author_id: String,
    pub author_nickname: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
}

/// A post with its comments and reaction counts (the seed's
/// post-with-comments document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostDoc {
    pub post_id: String,
    pub guild_id: String,
    pub channel_id: String,
    pub author_id: String,
    pub author_nickname: String,
    pub title: String,
    pub content: String,
    pub comments: Vec<CommentDoc>,
    pub reactions: BTreeMap<String, u64>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    /// Kept as a tombstone: reads answer 404, the version still moves.
    pub deleted: bool,
    pub version: u64,
    /// The last guild event (nickname) reflected here.
    pub guild_version: u64,
    /// `{guild_id}:{user_id}` of everyone whose nickname shows here, indexed
    /// so a nickname change finds the documents to update.
    pub nick_keys: Vec<String>,
}

/// A post's summary in its channel's list (id `{channel_id}:{post_id}`;
/// post ids are time-ordered, so id order is creation order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPostDoc {
    pub channel_id: String,
    pub post_id: String,
    pub title: String,
    pub author_id: String,
    pub author_nickname: String,
    pub comment_count: u64,
    pub reactions: BTreeMap<String, u64>,
    pub created_at: DateTime<Utc>,
    /// The channel while listed, `None` once the post is deleted.
    pub listed_in: Option<String>,
    pub version: u64,
    pub guild_version: u64,
    pub nick_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcertDoc {
    pub concert_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

/// A schedule in its concert's calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleDoc {
    pub schedule_id: String,
    pub concert_id: String,
    pub starts_at: DateTime<Utc>,
    pub total_seats: u64,
    pub available_seats: u64,
    /// `{concert_id}|{starts_at}`: indexed, so a date range of one concert
    /// is one range scan.
    pub concert_start: String,
    pub version: u64,
}

/// The sortable key of a schedule's start.
pub fn concert_start(concert_id: &str, starts_at: DateTime<Utc>) -> String {
    format!(
        "{concert_id}|{}",
        starts_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeatState {
    Free,
    Held,
    Sold,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatDoc {
    pub seat_no: u32,
    pub price: i64,
    pub state: SeatState,
    /// The reservation holding or owning the seat.
    pub reservation_id: Option<String>,
    /// When a hold runs out: a held seat is free again after it, even before
    /// the sweeper records the expiry.
    pub held_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatMapDoc {
    pub schedule_id: String,
    pub concert_id: String,
    pub seats: Vec<SeatDoc>,
    pub version: u64,
}

impl SeatMapDoc {
    /// Seats not held or sold (a held seat whose hold ran out counts as free
    /// only once the expiry is recorded).
    pub fn free_seats(&self) -> u64 {
        self.seats
            .iter()
            .filter(|s| s.state == SeatState::Free)
            .count() as u64
    }
}

/// A reservation (a hold on a schedule and what became of it). The same
/// shape serves `reservations` (id = reservation id) and
/// `user_reservations` (id `{user_id}:{reservation_id}`, listed by user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationDoc {
    pub reservation_id: String,
    pub schedule_id: String,
    pub user_id: String,
    pub seat_nos: Vec<u32>,
    /// `held`, `paid`, `cancelled` or `expired`.
    pub status: String,
    pub amount: i64,
    pub paid_amount: Option<i64>,
    pub coupon_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The schedule's version this reflects.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponDoc {
    pub coupon_id: String,
    pub name: String,
    pub total_quantity: u32,
    pub issued: u32,
    pub remaining: u32,
    pub discount_amount: i64,
    pub version: u64,
}

/// A coupon a user holds (id `{user_id}:{coupon_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCouponDoc {
    pub user_id: String,
    pub coupon_id: String,
    pub name: String,
    pub discount_amount: i64,
    pub used: bool,
    pub reservation_id: Option<String>,
    pub version: u64,
}

/// Id of a document keyed by an owner and a thing (`{owner}:{id}`).
pub fn pair_id(owner: &str, id: &str) -> String {
    format!("{owner}:{id}")
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
    /// `retried` or `discarded` once dealt with.
    #[serde(default)]
    pub resolution: Option<String>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
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
