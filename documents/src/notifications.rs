//! Notifications: what happened that concerns a user, derived from events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A notification (collection `notifications`, id = `user_id:notification_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationDoc {
    /// The log position of the event it comes from, zero-padded, and its
    /// kind: ids sort by age, the same in every rebuild.
    pub notification_id: String,
    /// Whom it is for.
    pub user_id: String,
    /// `comment_on_your_post`, `reaction_on_your_post`, `coupon_issued`,
    /// `reservation_expired`, `order_paid`, `product_sold`, `dm_message`.
    pub kind: String,
    /// What it is about: a post, coupon, reservation, order or DM room id.
    pub subject: String,
    /// Who caused it (`system` for the sweeper).
    pub actor_id: String,
    pub created_at: DateTime<Utc>,
}

/// The id of the notification of `kind` an event at `position` makes.
pub fn notification_id(position: i64, kind: &str) -> String {
    format!("{:019}-{kind}", position.max(0))
}

/// Most unread notifications counted: past it the count stays there.
pub const UNREAD_CAP: usize = 1000;
