//! Chat commands: messages in text channels, DM rooms and their messages.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{context, run, Version};
use crate::app::WriteState;
use crate::domain::message::MessageCommand;
use crate::domain::room::{one_to_one_id, RoomCommand};
use crate::http::caller::Caller;
use tessera_http::auth::Principal;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiJson;
use tessera_http::ApiPath;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(post_channel_message))
        .routes(routes!(edit_channel_message, delete_channel_message))
        .routes(routes!(create_room))
        .routes(routes!(post_room_message))
}

/// A new message, in a channel or a room alike: it gets its id here.
async fn post(
    ws: &WriteState,
    command: MessageCommand,
    author: &Principal,
    request_id: Option<String>,
) -> Result<(StatusCode, Json<MessageCreated>), ApiError> {
    let message_id = uuid::Uuid::now_v7().to_string();
    let version = run(&ws.messages, &message_id, command, author, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageCreated {
            message_id,
            version,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"content": "hello, everyone"}))]
pub struct MessageRequest {
    /// 1..=4,000 characters, not blank; lines and tabs are text, other
    /// control characters are refused.
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageCreated {
    pub message_id: String,
    pub version: u64,
}

/// Post a message in a text channel (members of its guild only).
#[utoipa::path(post, path = "/v1/channels/{channel_id}/messages", tag = "chat", request_body = MessageRequest,
    security(("bearer" = [])), params(("channel_id" = String, Path)),
    responses((status = 201, body = MessageCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`not_member`"), (status = 404, body = ErrorBody, description = "`channel_not_found`"),
        (status = 410, body = ErrorBody, description = "the channel or its guild is deleted"),
        (status = 422, body = ErrorBody, description = "`not_a_text_channel`")))]
pub async fn post_channel_message(
    Caller(ws, user, request_id): Caller,
    ApiPath(channel_id): ApiPath<String>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> Result<(StatusCode, Json<MessageCreated>), ApiError> {
    let command = MessageCommand::PostInChannel {
        channel_id,
        author_id: user.user_id.clone(),
        content: req.content,
    };
    post(&ws, command, &user, request_id).await
}

/// Edit a channel message (its author only).
#[utoipa::path(patch, path = "/v1/channels/{channel_id}/messages/{message_id}", tag = "chat", request_body = MessageRequest,
    security(("bearer" = [])), params(("channel_id" = String, Path), ("message_id" = String, Path)),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such message in this channel"),
        (status = 410, body = ErrorBody, description = "the message, its channel or its guild is deleted")))]
pub async fn edit_channel_message(
    Caller(ws, user, request_id): Caller,
    ApiPath((channel_id, message_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = MessageCommand::Edit {
        actor: user.user_id.clone(),
        channel_id,
        content: req.content,
    };
    let version = run(&ws.messages, &message_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// Delete a channel message (its author or the guild owner). Reads leave
/// it out afterwards.
#[utoipa::path(delete, path = "/v1/channels/{channel_id}/messages/{message_id}", tag = "chat",
    security(("bearer" = [])), params(("channel_id" = String, Path), ("message_id" = String, Path)),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such message in this channel"),
        (status = 410, body = ErrorBody, description = "the message, its channel or its guild is deleted")))]
pub async fn delete_channel_message(
    Caller(ws, user, request_id): Caller,
    ApiPath((channel_id, message_id)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let command = MessageCommand::Delete {
        actor: user.user_id.clone(),
        channel_id,
    };
    let version = run(&ws.messages, &message_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_ids": ["0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a80"]}))]
pub struct CreateRoomRequest {
    /// The other members: 1..=9 distinct registered users, not the caller
    /// (an id no account has is a 404 `user_not_found`).
    #[schema(value_type = std::collections::BTreeSet<String>, min_items = 1, max_items = 9)]
    pub user_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoomCreated {
    pub room_id: String,
    pub version: u64,
}

/// Make a DM room with 1..=9 others. The 1:1 room of two people is unique:
/// asking for it again (either of them) answers 200 with the same room.
#[utoipa::path(post, path = "/v1/dm/rooms", tag = "chat", request_body = CreateRoomRequest,
    security(("bearer" = [])),
    responses((status = 201, body = RoomCreated), (status = 200, body = RoomCreated, description = "the 1:1 room, made before"),
        (status = 400, body = ErrorBody, description = "`invalid_input`: 1..=9 distinct others, not the caller"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "`user_not_found`")))]
pub async fn create_room(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<CreateRoomRequest>,
) -> Result<(StatusCode, Json<RoomCreated>), ApiError> {
    let others = req.user_ids;
    let room_id = match others.as_slice() {
        [other] => one_to_one_id(&user.user_id, other),
        _ => uuid::Uuid::now_v7().to_string(),
    };
    let command = RoomCommand::Create {
        creator: user.user_id.clone(),
        others,
    };
    let ctx = context(&user.user_id, request_id);
    let done = ws.rooms.execute(&room_id, command, &ctx, |_| ()).await?;
    let status = if done.appended == 0 {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(RoomCreated {
            room_id,
            version: done.version,
        }),
    ))
}

/// Post a message in a DM room (its members only).
#[utoipa::path(post, path = "/v1/dm/rooms/{room_id}/messages", tag = "chat", request_body = MessageRequest,
    security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 201, body = MessageCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`not_member` of the room"),
        (status = 404, body = ErrorBody, description = "`room_not_found`")))]
pub async fn post_room_message(
    Caller(ws, user, request_id): Caller,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> Result<(StatusCode, Json<MessageCreated>), ApiError> {
    let command = MessageCommand::PostInRoom {
        room_id,
        author_id: user.user_id.clone(),
        content: req.content,
    };
    post(&ws, command, &user, request_id).await
}
