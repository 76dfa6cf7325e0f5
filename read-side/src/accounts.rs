//! The caller's account and point history.

use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_documents::documents::collections;
use tessera_documents::store::Order;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiQuery;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cursor::Paging;
use crate::query::{list_page, page_schema, typed, MinVersion, Page, PageParams};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(history))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub account_id: String,
    pub email: String,
    pub nickname: String,
    pub profile_image: Option<String>,
    pub balance: i64,
    pub version: u64,
}

/// The caller's profile and balance.
#[utoipa::path(get, path = "/v1/accounts/me", tag = "accounts", params(MinVersion),
    security(("bearer" = [])),
    responses((status = 200, body = AccountView, headers(("X-Stale" = String, description = "`true` when older than `min_version`"))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn me(
    Reader(rs, user): Reader,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<AccountView>), (HeaderMap, ApiError)> {
    rs.view(
        collections::ACCOUNTS,
        &user.user_id,
        q.min_version,
        "account",
    )
    .await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PointEntryView {
    /// The account's version at this change.
    pub sequence: u64,
    /// `charge`, `use` or `refund`.
    pub kind: String,
    /// Signed: spending is negative.
    pub amount: i64,
    pub balance: i64,
    /// Idempotency key of a charge; reference of a use or refund.
    pub reference: String,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

page_schema!(PointHistoryPage of PointEntryView);

/// Every change of the caller's points, newest first.
#[utoipa::path(get, path = "/v1/accounts/me/history", tag = "accounts", params(PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = PointHistoryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn history(
    Reader(rs, user): Reader,
    page: Paging,
) -> Result<Json<Page<PointEntryView>>, ApiError> {
    list_page(
        &*rs.docs,
        &rs.live(collections::POINT_HISTORY).await?,
        Some(("account_id", &user.user_id)),
        Order::Desc,
        &page,
        typed,
    )
    .await
}
