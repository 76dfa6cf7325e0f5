//! First-come-first-served coupon campaigns.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::run;
use crate::app::WriteState;
use crate::domain::coupon::CouponCommand;
use crate::http::caller::Caller;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiJson, RequestId};
use tessera_http::ApiPath;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(create_coupon))
        .routes(routes!(issue_coupon))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "First 100 buyers", "total_quantity": 100, "discount_amount": 50}))]
pub struct CouponRequest {
    /// 1..=100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// 1..=1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub total_quantity: u32,
    /// Points off a payment, 1..=1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub discount_amount: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CouponResponse {
    pub coupon_id: String,
    pub version: u64,
}

/// Create a campaign (admin).
#[utoipa::path(post, path = "/v1/coupons", tag = "coupons", request_body = CouponRequest, security(("bearer" = [])),
    responses((status = 201, body = CouponResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn create_coupon(
    State(ws): State<WriteState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<CouponRequest>,
) -> Result<(StatusCode, Json<CouponResponse>), ApiError> {
    let coupon_id = uuid::Uuid::now_v7().to_string();
    let command = CouponCommand::Create {
        name: req.name,
        total_quantity: req.total_quantity,
        discount_amount: req.discount_amount,
    };
    let version = run(&ws.coupons, &coupon_id, command, &admin, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CouponResponse { coupon_id, version }),
    ))
}

/// Take one coupon of a campaign: at most one per user, never more than the
/// total, whatever the concurrency.
#[utoipa::path(post, path = "/v1/coupons/{coupon_id}/issue", tag = "coupons", security(("bearer" = [])),
    params(("coupon_id" = String, Path)),
    responses((status = 201, body = CouponResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`sold_out` or `already_issued`")))]
pub async fn issue_coupon(
    Caller(ws, user, request_id): Caller,
    ApiPath(coupon_id): ApiPath<String>,
) -> Result<(StatusCode, Json<CouponResponse>), ApiError> {
    let command = CouponCommand::Issue {
        user_id: user.user_id.clone(),
    };
    let version = run(&ws.coupons, &coupon_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CouponResponse { coupon_id, version }),
    ))
}
