//! Products (C2C): any signed-in user lists one and is its seller; only the
//! seller edits and restocks it.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{context, double_option, run, Version};
use crate::app::WriteState;
use crate::domain::product::ProductCommand;
use crate::http::caller::Caller;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiJson;
use tessera_http::ApiPath;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(list_product))
        .routes(routes!(edit_product))
        .routes(routes!(restock))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Desk lamp", "price": 120, "stock": 3, "description": "Warm light, barely used"}))]
pub struct ProductRequest {
    /// 1..=100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Points per unit, 1..=10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub price: i64,
    /// Units for sale, 0..=1,000,000.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub stock: u32,
    /// 1..=2,000 characters; lines and tabs allowed.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductResponse {
    pub product_id: String,
    pub version: u64,
}

/// List a product for sale; the caller is its seller.
#[utoipa::path(post, path = "/v1/products", tag = "shop", request_body = ProductRequest, security(("bearer" = [])),
    responses((status = 201, body = ProductResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_product(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<ProductRequest>,
) -> Result<(StatusCode, Json<ProductResponse>), ApiError> {
    let product_id = uuid::Uuid::now_v7().to_string();
    let command = ProductCommand::List {
        seller_id: user.user_id.clone(),
        name: req.name,
        description: req.description,
        price: req.price,
        stock: req.stock,
    };
    let version = run(&ws.products, &product_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProductResponse {
            product_id,
            version,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": 100}))]
pub struct EditProductRequest {
    /// 1..=100 characters; leaving the field out keeps the name.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// 1..=10,000,000; orders created before keep the price they fixed.
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub price: Option<i64>,
    /// `null` removes the description; leaving the field out keeps it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, min_length = 1, max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$")]
    pub description: Option<Option<String>>,
}

/// Edit a product (its seller).
#[utoipa::path(patch, path = "/v1/products/{product_id}", tag = "shop", request_body = EditProductRequest,
    security(("bearer" = [])), params(("product_id" = String, Path)),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn edit_product(
    Caller(ws, user, request_id): Caller,
    ApiPath(product_id): ApiPath<String>,
    ApiJson(req): ApiJson<EditProductRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = ProductCommand::Edit {
        actor: user.user_id.clone(),
        name: req.name,
        description: req.description,
        price: req.price,
    };
    let version = run(&ws.products, &product_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 5}))]
pub struct RestockRequest {
    /// Units added, 1..=1,000,000 (the stock stays at most 1,000,000).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RestockResponse {
    /// The stock after the restock.
    pub stock: u32,
    pub version: u64,
}

/// Add stock (its seller).
#[utoipa::path(post, path = "/v1/products/{product_id}/restock", tag = "shop", request_body = RestockRequest,
    security(("bearer" = [])), params(("product_id" = String, Path)),
    responses((status = 200, body = RestockResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`stock_full`: the stock would pass 1,000,000")))]
pub async fn restock(
    Caller(ws, user, request_id): Caller,
    ApiPath(product_id): ApiPath<String>,
    ApiJson(req): ApiJson<RestockRequest>,
) -> Result<Json<RestockResponse>, ApiError> {
    let command = ProductCommand::Restock {
        actor: user.user_id.clone(),
        quantity: req.quantity,
    };
    let ctx = context(&user.user_id, request_id);
    let done = ws
        .products
        .execute(&product_id, command, &ctx, |p| p.stock())
        .await?;
    Ok(Json(RestockResponse {
        stock: done.output,
        version: done.version,
    }))
}
