//! What the write side asks of the notifications read model: how many of a
//! user's notifications lie past their read mark. Notifications are derived
//! from events by a projection, so only the read models can count them;
//! the count is as fresh as that projection.

use async_trait::async_trait;

use crate::bus::Cause;

#[async_trait]
pub trait UnreadCount: Send + Sync {
    /// The user's notifications newer than `up_to` (a notification id),
    /// counted up to `cap`.
    async fn unread_after(&self, user_id: &str, up_to: &str, cap: usize) -> Result<u64, Cause>;
}
