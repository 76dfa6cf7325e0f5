//! Orders: created with the prices of the moment, paid by a saga over the
//! products' stock, the coupon and the points, cancelled by the buyer (or
//! an admin) with everything given back.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::context;
use crate::app::WriteState;
use crate::http::caller::Caller;
use crate::orders::{self, Wanted};
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiJson;
use tessera_http::ApiPath;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(pay_order))
        .routes(routes!(cancel_order))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    /// A product's id: no control characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub product_id: String,
    /// 1..=100 units.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"product_id": "0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a80", "quantity": 2}], "idempotency_key": "lamp-1"}))]
pub struct OrderRequest {
    /// 1..=20 items. A product named twice is one line with the quantities
    /// added up (400 `quantity` if they pass 100).
    #[schema(min_items = 1, max_items = 20)]
    pub items: Vec<OrderItem>,
    /// Sending a key again answers the order it made, whatever the items.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub idempotency_key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderResponse {
    pub order_id: String,
    /// `created` for a new order; a repeated key answers the order's status.
    pub status: String,
    /// The price of the items, fixed now.
    pub amount: i64,
    pub version: u64,
}

/// Create an order with the products' current prices. Nothing is taken
/// from the stock until the payment; the order expires unpaid after
/// `TESSERA_ORDER_TTL_SECONDS` (900 s).
#[utoipa::path(post, path = "/v1/orders", tag = "shop", request_body = OrderRequest, security(("bearer" = [])),
    responses((status = 201, body = OrderResponse, description = "the same answer for a repeated key"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "an unknown product (`details.product_id`)")))]
pub async fn create_order(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<OrderRequest>,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    let wanted = req
        .items
        .into_iter()
        .map(|i| Wanted {
            product_id: i.product_id,
            quantity: i.quantity,
        })
        .collect();
    let ctx = context(&user.user_id, request_id);
    let created = orders::create(&ws, &user.user_id, wanted, req.idempotency_key, &ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(OrderResponse {
            order_id: created.order_id,
            status: created.status.to_owned(),
            amount: created.amount,
            version: created.version,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"coupon_id": "0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a81"}))]
pub struct OrderPaymentRequest {
    /// A coupon of the caller's to take off the price.
    #[schema(min_length = 1, max_length = 64)]
    pub coupon_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPaymentResponse {
    pub order_id: String,
    /// `paid`
    pub status: String,
    pub paid_amount: i64,
    /// The caller's balance right after this payment.
    pub balance: i64,
}

/// Pay for an order: every item's stock, the coupon and the points, or
/// none of them. Repeating the payment (also concurrently) answers the
/// same and pays once.
#[utoipa::path(post, path = "/v1/orders/{order_id}/payment", tag = "shop", request_body = OrderPaymentRequest,
    security(("bearer" = [])), params(("order_id" = String, Path)),
    responses((status = 200, body = OrderPaymentResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "someone else's order"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`out_of_stock` (nothing taken, no points spent; `details.available`), `order_cancelled`, `payment_in_progress`"),
        (status = 422, body = ErrorBody, description = "`insufficient_points` (stock given back), `order_expired`, `coupon_not_issued`, `coupon_already_used`")))]
pub async fn pay_order(
    Caller(ws, user, request_id): Caller,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(req): ApiJson<OrderPaymentRequest>,
) -> Result<Json<OrderPaymentResponse>, ApiError> {
    let ctx = context(&user.user_id, request_id);
    let paid = orders::pay(&ws, &user.user_id, &order_id, req.coupon_id, &ctx).await?;
    Ok(Json(OrderPaymentResponse {
        order_id: paid.order_id,
        status: "paid".into(),
        paid_amount: paid.paid_amount,
        balance: paid.balance,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelOrderResponse {
    pub order_id: String,
    /// `cancelled`
    pub status: String,
    pub version: u64,
}

/// Cancel an order (its buyer or an admin). A paid order gives its stock
/// back and refunds the points (and the coupon) it paid with, once.
#[utoipa::path(post, path = "/v1/orders/{order_id}/cancel", tag = "shop",
    security(("bearer" = [])), params(("order_id" = String, Path)),
    responses((status = 200, body = CancelOrderResponse, description = "cancelling again answers the same"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`payment_in_progress`"),
        (status = 422, body = ErrorBody, description = "`order_expired`")))]
pub async fn cancel_order(
    Caller(ws, user, request_id): Caller,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<CancelOrderResponse>, ApiError> {
    let ctx = context(&user.user_id, request_id);
    let version = orders::cancel(&ws, &user.user_id, user.is_admin(), &order_id, &ctx).await?;
    Ok(Json(CancelOrderResponse {
        order_id,
        status: "cancelled".into(),
        version,
    }))
}
