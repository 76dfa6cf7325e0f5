//! Coupon campaigns and a user's coupons.

use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_documents::documents::collections;
use tessera_documents::store::Order;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiQuery;
use tessera_http::ApiPath;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cursor::Paging;
use crate::query::{list_page, page_schema, typed, MinVersion, Page, PageParams};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(coupon))
        .routes(routes!(my_coupons))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CouponView {
    pub coupon_id: String,
    pub name: String,
    pub total_quantity: u32,
    pub issued: u32,
    pub remaining: u32,
    pub discount_amount: i64,
    pub version: u64,
}

/// A campaign: how many were issued and remain.
#[utoipa::path(get, path = "/v1/coupons/{coupon_id}", tag = "coupons", params(("coupon_id" = String, Path), MinVersion),
    security(("bearer" = [])),
    responses((status = 200, body = CouponView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn coupon(
    Reader(rs, _): Reader,
    ApiPath(coupon_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<CouponView>), (HeaderMap, ApiError)> {
    rs.view(collections::COUPONS, &coupon_id, q.min_version, "coupon")
        .await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MyCouponView {
    pub coupon_id: String,
    pub name: String,
    pub discount_amount: i64,
    pub used: bool,
}

page_schema!(MyCouponPage of MyCouponView);

/// The caller's coupons.
#[utoipa::path(get, path = "/v1/me/coupons", tag = "coupons", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = MyCouponPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_coupons(
    Reader(rs, user): Reader,
    page: Paging,
) -> Result<Json<Page<MyCouponView>>, ApiError> {
    list_page(
        &*rs.docs,
        &rs.live(collections::USER_COUPONS).await?,
        Some(("user_id", &user.user_id)),
        Order::Asc,
        &page,
        typed,
    )
    .await
}
