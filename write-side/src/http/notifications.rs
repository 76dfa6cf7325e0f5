//! Marking notifications read.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::context;
use crate::app::WriteState;
use crate::domain::account::AccountCommand;
use crate::http::caller::Caller;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiJson;

/// Most unread notifications an answer counts.
pub const UNREAD_CAP: usize = 1000;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new().routes(routes!(mark_read))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"up_to": "0000000000000000042-comment_on_your_post"}))]
pub struct MarkReadRequest {
    /// A `notification_id`: it and every older notification are read.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub up_to: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarkReadResponse {
    /// The caller's notifications still unread, counted up to 1,000, as
    /// the notifications read model holds them now.
    pub unread: u64,
    /// The account's version.
    pub version: u64,
}

/// Mark the caller's notifications up to one read. Marking an older one
/// than before changes nothing.
#[utoipa::path(post, path = "/v1/me/notifications/read", tag = "notifications", request_body = MarkReadRequest,
    security(("bearer" = [])),
    responses((status = 200, body = MarkReadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no account for the token"),
        (status = 503, body = ErrorBody, description = "the notifications read model does not answer")))]
pub async fn mark_read(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<MarkReadRequest>,
) -> Result<Json<MarkReadResponse>, ApiError> {
    let ctx = context(&user.user_id, request_id);
    let command = AccountCommand::MarkNotificationsRead { up_to: req.up_to };
    let done = ws
        .accounts
        .execute(&user.user_id, command, &ctx, |a| {
            a.notifications_read_up_to().map(str::to_owned)
        })
        .await?;
    let Some(unread) = &ws.unread else {
        return Err(ApiError::unavailable(
            "no notifications read model is configured (TESSERA_MONGODB_URI)",
        ));
    };
    let up_to = done.output.unwrap_or_default();
    let unread = unread
        .unread_after(&user.user_id, &up_to, UNREAD_CAP)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(MarkReadResponse {
        unread,
        version: done.version,
    }))
}
