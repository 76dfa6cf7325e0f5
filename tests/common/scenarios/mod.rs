//! The contract of API.md end to end, one file per context. Both run modes
//! (and the rebuild and restart tests) run the same scenarios.

mod accounts;
mod board;
mod chat;
mod concerts;
mod coupons;
mod guilds;
mod notifications;
mod shop;

use super::Client;

pub struct Outcome {
    pub owner_token: String,
    pub ann_token: String,
    pub guild_id: String,
    pub balance: i64,
}

/// The accounts and guilds sections of API.md, end to end: commands, then
/// reads that see them (read-your-writes by `min_version`), pagination, and
/// the fan-out of a rename and a deletion to members' guild lists.
pub async fn accounts_and_guilds(c: &Client) -> Outcome {
    let people = accounts::accounts(c).await;
    guilds::guilds(c, people).await
}

/// The people of the board and commerce scenarios.
#[derive(Clone)]
pub struct Cast {
    pub poster: String,
    pub fan_id: String,
    pub fan: String,
    pub rival: String,
}

/// The board, chat, concerts/queue/reservations, coupons, shop and
/// notifications sections of API.md end to end. Expects the hold TTL and the order TTL to be a few
/// seconds and the queue to admit within a second.
pub async fn board_and_commerce(c: &Client, admin: &str) {
    let (_, poster) = c.register("poster@example.com", "poster").await;
    let (fan_id, fan) = c.register("fan@example.com", "fan").await;
    let (_, rival) = c.register("rival@example.com", "rival").await;
    let cast = Cast {
        poster,
        fan_id,
        fan,
        rival,
    };
    board::board(c, &cast).await;
    chat::chat(c).await;
    concerts::concerts_and_reservations(c, admin, &cast).await;
    shop::shop(c, admin).await;
    notifications::notifications(c, admin).await;
}
