//! The caller's notifications, newest first, each with whether it is read.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::documents::{collections, AccountDoc};
use tessera_documents::notifications::NotificationDoc;
use tessera_documents::store::Order;
use tessera_http::error::{ApiError, ErrorBody};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cursor::Paging;
use crate::query::{list_page, page_schema, store_failed, typed, PageParams};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new().routes(routes!(my_notifications))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// Sorts by age; pass the newest one read as `up_to` to mark it and
    /// everything older read.
    pub notification_id: String,
    /// `comment_on_your_post`, `reaction_on_your_post`, `coupon_issued`,
    /// `reservation_expired`, `order_paid`, `product_sold` or `dm_message`.
    pub kind: String,
    /// The post, coupon, reservation, order or DM room it is about.
    pub subject: String,
    /// Who caused it (`system` for an expiry).
    pub actor_id: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

page_schema!(NotificationPage of NotificationView);

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/v1/me/notifications", tag = "notifications", params(PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = NotificationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_notifications(
    Reader(rs, user): Reader,
    page: Paging,
) -> Result<Json<NotificationPage>, ApiError> {
    let read_up_to = rs
        .docs
        .get(&rs.live(collections::ACCOUNTS).await?, &user.user_id)
        .await
        .map_err(|e| store_failed(&e))?
        .map(typed::<AccountDoc>)
        .transpose()?
        .and_then(|a| a.notifications_read_up_to);
    let Json(p) = list_page(
        &*rs.docs,
        &rs.live(collections::NOTIFICATIONS).await?,
        Some(("user_id", &user.user_id)),
        Order::Desc,
        &page,
        |d| {
            let n: NotificationDoc = typed(d)?;
            Ok(NotificationView {
                read: read_up_to.as_ref().is_some_and(|r| n.notification_id <= *r),
                notification_id: n.notification_id,
                kind: n.kind,
                subject: n.subject,
                actor_id: n.actor_id,
                created_at: n.created_at,
            })
        },
    )
    .await?;
    Ok(Json(NotificationPage {
        items: p.items,
        next_cursor: p.next_cursor,
    }))
}
