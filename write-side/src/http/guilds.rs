//! Guild commands: guilds, membership, nicknames, categories, channels.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_events::ChannelKind;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{double_option, run, Version};
use crate::app::WriteState;
use crate::domain::guild::GuildCommand;
use crate::http::caller::Caller;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiJson;
use tessera_http::ApiPath;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(create_guild))
        .routes(routes!(update_guild, delete_guild))
        .routes(routes!(join_guild))
        .routes(routes!(leave_guild))
        .routes(routes!(set_nickname))
        .routes(routes!(create_category))
        .routes(routes!(create_channel))
        .routes(routes!(delete_channel))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Crabs", "profile_image": "https://img.example.com/crab.png"}))]
pub struct CreateGuildRequest {
    /// 1..=50 characters.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub profile_image: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateGuildResponse {
    pub guild_id: String,
    pub version: u64,
}

/// Create a guild; the caller becomes its owner and first member.
#[utoipa::path(post, path = "/v1/guilds", tag = "guilds", request_body = CreateGuildRequest,
    security(("bearer" = [])),
    responses((status = 201, body = CreateGuildResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "`account_not_found`")))]
pub async fn create_guild(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<CreateGuildRequest>,
) -> Result<(StatusCode, Json<CreateGuildResponse>), ApiError> {
    let guild_id = uuid::Uuid::now_v7().to_string();
    let command = GuildCommand::Create {
        name: req.name,
        profile_image: req.profile_image,
        owner_id: user.user_id.clone(),
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateGuildResponse { guild_id, version }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Crabs of Seoul"}))]
pub struct UpdateGuildRequest {
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// `null` removes the image; leaving the field out keeps it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, min_length = 1, max_length = 2048, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    pub profile_image: Option<Option<String>>,
}

/// Rename a guild or change its image (owner only).
#[utoipa::path(patch, path = "/v1/guilds/{guild_id}", tag = "guilds", request_body = UpdateGuildRequest,
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn update_guild(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateGuildRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = GuildCommand::Update {
        actor: user.user_id.clone(),
        name: req.name,
        profile_image: req.profile_image,
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// Delete a guild (owner only). Later commands on it answer 410.
#[utoipa::path(delete, path = "/v1/guilds/{guild_id}", tag = "guilds",
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn delete_guild(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
) -> Result<Json<Version>, ApiError> {
    let command = GuildCommand::Delete {
        actor: user.user_id.clone(),
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// Join a guild as the caller.
#[utoipa::path(post, path = "/v1/guilds/{guild_id}/members", tag = "guilds",
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 201, body = Version), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`already_member`"), (status = 410, body = ErrorBody)))]
pub async fn join_guild(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
) -> Result<(StatusCode, Json<Version>), ApiError> {
    let command = GuildCommand::Join {
        user_id: user.user_id.clone(),
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok((StatusCode::CREATED, Json(Version { version })))
}

/// Leave a guild. The owner cannot leave (409 `owner_cannot_leave`).
#[utoipa::path(delete, path = "/v1/guilds/{guild_id}/members/me", tag = "guilds",
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`not_member`"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`owner_cannot_leave`"), (status = 410, body = ErrorBody)))]
pub async fn leave_guild(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
) -> Result<Json<Version>, ApiError> {
    let command = GuildCommand::Leave {
        user_id: user.user_id.clone(),
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"nickname": "ferris"}))]
pub struct NicknameRequest {
    /// 1..=32 characters.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub nickname: String,
}

/// Set the caller's nickname in this guild.
#[utoipa::path(put, path = "/v1/guilds/{guild_id}/members/me/nickname", tag = "guilds", request_body = NicknameRequest,
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`not_member`"), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn set_nickname(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
    ApiJson(req): ApiJson<NicknameRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = GuildCommand::SetNickname {
        user_id: user.user_id.clone(),
        nickname: req.nickname,
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Meetups"}))]
pub struct CategoryRequest {
    /// 1..=50 characters, unique among the guild's categories.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryResponse {
    pub category_id: String,
    pub version: u64,
}

/// Add a category (owner only).
#[utoipa::path(post, path = "/v1/guilds/{guild_id}/categories", tag = "guilds", request_body = CategoryRequest,
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 201, body = CategoryResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`name_taken`"), (status = 410, body = ErrorBody)))]
pub async fn create_category(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
    ApiJson(req): ApiJson<CategoryRequest>,
) -> Result<(StatusCode, Json<CategoryResponse>), ApiError> {
    let category_id = uuid::Uuid::now_v7().to_string();
    let command = GuildCommand::CreateCategory {
        actor: user.user_id.clone(),
        category_id: category_id.clone(),
        name: req.name,
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CategoryResponse {
            category_id,
            version,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "announcements", "kind": "forum", "category_id": "0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a80"}))]
pub struct ChannelRequest {
    /// 1..=50 characters, unique among the guild's channels.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// `text` or `forum`.
    #[schema(value_type = String, example = "forum", pattern = "^(text|forum)$")]
    pub kind: ChannelKind,
    pub category_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelResponse {
    pub channel_id: String,
    pub version: u64,
}

/// Add a `text` or `forum` channel (owner only).
#[utoipa::path(post, path = "/v1/guilds/{guild_id}/channels", tag = "guilds", request_body = ChannelRequest,
    security(("bearer" = [])), params(("guild_id" = String, Path)),
    responses((status = 201, body = ChannelResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`name_taken`"), (status = 410, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`unknown_category`")))]
pub async fn create_channel(
    Caller(ws, user, request_id): Caller,
    ApiPath(guild_id): ApiPath<String>,
    ApiJson(req): ApiJson<ChannelRequest>,
) -> Result<(StatusCode, Json<ChannelResponse>), ApiError> {
    let channel_id = uuid::Uuid::now_v7().to_string();
    // the directory only says where to look: the guild decides below
    ws.directory
        .put_channel(&channel_id, &guild_id)
        .await
        .map_err(ApiError::internal)?;
    let command = GuildCommand::CreateChannel {
        actor: user.user_id.clone(),
        channel_id: channel_id.clone(),
        name: req.name,
        kind: req.kind,
        category_id: req.category_id,
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelResponse {
            channel_id,
            version,
        }),
    ))
}

/// Delete a channel (owner only).
#[utoipa::path(delete, path = "/v1/guilds/{guild_id}/channels/{channel_id}", tag = "guilds",
    security(("bearer" = [])), params(("guild_id" = String, Path), ("channel_id" = String, Path)),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn delete_channel(
    Caller(ws, user, request_id): Caller,
    ApiPath((guild_id, channel_id)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let command = GuildCommand::DeleteChannel {
        actor: user.user_id.clone(),
        channel_id,
    };
    let version = run(&ws.guilds, &guild_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}
