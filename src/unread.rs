//! The write side's count of unread notifications, read from the
//! notifications projection's live collection.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_documents::documents::{collections, pair_id};
use tessera_documents::live::LiveCollections;
use tessera_documents::store::{DocumentStore, ListQuery, Order};
use tessera_write_side::bus::Cause;
use tessera_write_side::inbox::UnreadCount;

pub struct DocsUnread {
    docs: Arc<dyn DocumentStore>,
    live: LiveCollections,
}

impl DocsUnread {
    pub fn new(docs: Arc<dyn DocumentStore>) -> Self {
        Self {
            live: LiveCollections::new(Arc::clone(&docs)),
            docs,
        }
    }
}

#[async_trait]
impl UnreadCount for DocsUnread {
    async fn unread_after(&self, user_id: &str, up_to: &str, cap: usize) -> Result<u64, Cause> {
        let collection = self.live.get(collections::NOTIFICATIONS).await?;
        // a user's notification ids sort by age, so the unread ones are
        // those after the mark
        let after = pair_id(user_id, up_to);
        let found = self
            .docs
            .list(
                &collection,
                ListQuery {
                    filter: Some(("user_id", user_id)),
                    order: Order::Asc,
                    after: Some(&after),
                    limit: cap,
                },
            )
            .await?;
        Ok(found.len() as u64)
    }
}
