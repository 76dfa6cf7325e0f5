//! Board commands: posts in forum channels, comments, reactions.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{run, Version};
use crate::app::WriteState;
use crate::domain::post::PostCommand;
use crate::http::caller::Caller;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiJson;
use tessera_http::ApiPath;

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(create_post))
        .routes(routes!(edit_post, delete_post))
        .routes(routes!(add_comment))
        .routes(routes!(edit_comment, delete_comment))
        .routes(routes!(react, unreact))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Rust meetup in Seoul", "content": "Who is coming on Friday?"}))]
pub struct CreatePostRequest {
    /// 1..=200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub title: String,
    /// 1..=20,000 characters.
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatePostResponse {
    pub post_id: String,
    pub version: u64,
}

/// Write a post in a forum channel (members of the channel's guild only).
#[utoipa::path(post, path = "/v1/channels/{channel_id}/posts", tag = "board", request_body = CreatePostRequest,
    security(("bearer" = [])), params(("channel_id" = String, Path)),
    responses((status = 201, body = CreatePostResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`not_member`"), (status = 404, body = ErrorBody, description = "`channel_not_found`"),
        (status = 410, body = ErrorBody, description = "the channel or its guild is deleted"),
        (status = 422, body = ErrorBody, description = "`not_a_forum_channel`")))]
pub async fn create_post(
    Caller(ws, user, request_id): Caller,
    ApiPath(channel_id): ApiPath<String>,
    ApiJson(req): ApiJson<CreatePostRequest>,
) -> Result<(StatusCode, Json<CreatePostResponse>), ApiError> {
    let post_id = uuid::Uuid::now_v7().to_string();
    let command = PostCommand::Create {
        channel_id,
        author_id: user.user_id.clone(),
        title: req.title,
        content: req.content,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatePostResponse { post_id, version }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Rust meetup in Seoul (moved)"}))]
pub struct EditPostRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub title: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub content: Option<String>,
}

/// Edit a post (its author only).
#[utoipa::path(patch, path = "/v1/posts/{post_id}", tag = "board", request_body = EditPostRequest,
    security(("bearer" = [])), params(("post_id" = String, Path)),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn edit_post(
    Caller(ws, user, request_id): Caller,
    ApiPath(post_id): ApiPath<String>,
    ApiJson(req): ApiJson<EditPostRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = PostCommand::Edit {
        actor: user.user_id.clone(),
        title: req.title,
        content: req.content,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// Delete a post (its author or the guild owner). Reads answer 404 afterwards.
#[utoipa::path(delete, path = "/v1/posts/{post_id}", tag = "board",
    security(("bearer" = [])), params(("post_id" = String, Path)),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn delete_post(
    Caller(ws, user, request_id): Caller,
    ApiPath(post_id): ApiPath<String>,
) -> Result<Json<Version>, ApiError> {
    let command = PostCommand::Delete {
        actor: user.user_id.clone(),
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"content": "Count me in"}))]
pub struct CommentRequest {
    /// 1..=2,000 characters.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommentResponse {
    pub comment_id: String,
    pub version: u64,
}

/// Comment on a post (members of its guild).
#[utoipa::path(post, path = "/v1/posts/{post_id}/comments", tag = "board", request_body = CommentRequest,
    security(("bearer" = [])), params(("post_id" = String, Path)),
    responses((status = 201, body = CommentResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn add_comment(
    Caller(ws, user, request_id): Caller,
    ApiPath(post_id): ApiPath<String>,
    ApiJson(req): ApiJson<CommentRequest>,
) -> Result<(StatusCode, Json<CommentResponse>), ApiError> {
    let comment_id = uuid::Uuid::now_v7().to_string();
    let command = PostCommand::AddComment {
        actor: user.user_id.clone(),
        comment_id: comment_id.clone(),
        content: req.content,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CommentResponse {
            comment_id,
            version,
        }),
    ))
}

/// Edit a comment (its author only).
#[utoipa::path(patch, path = "/v1/posts/{post_id}/comments/{comment_id}", tag = "board", request_body = CommentRequest,
    security(("bearer" = [])), params(("post_id" = String, Path), ("comment_id" = String, Path)),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn edit_comment(
    Caller(ws, user, request_id): Caller,
    ApiPath((post_id, comment_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CommentRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = PostCommand::EditComment {
        actor: user.user_id.clone(),
        comment_id,
        content: req.content,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// Delete a comment (its author only).
#[utoipa::path(delete, path = "/v1/posts/{post_id}/comments/{comment_id}", tag = "board",
    security(("bearer" = [])), params(("post_id" = String, Path), ("comment_id" = String, Path)),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn delete_comment(
    Caller(ws, user, request_id): Caller,
    ApiPath((post_id, comment_id)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let command = PostCommand::DeleteComment {
        actor: user.user_id.clone(),
        comment_id,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// React with an emoji (once per user per emoji; repeating changes nothing).
#[utoipa::path(put, path = "/v1/posts/{post_id}/reactions/{emoji}", tag = "board",
    security(("bearer" = [])), params(("post_id" = String, Path), ("emoji" = String, Path, description = "1..=32 characters, percent-encoded", min_length = 1, max_length = 32, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")),
    responses((status = 200, body = Version), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn react(
    Caller(ws, user, request_id): Caller,
    ApiPath((post_id, emoji)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let command = PostCommand::React {
        actor: user.user_id.clone(),
        emoji,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

/// Take a reaction back (repeating changes nothing).
#[utoipa::path(delete, path = "/v1/posts/{post_id}/reactions/{emoji}", tag = "board",
    security(("bearer" = [])), params(("post_id" = String, Path), ("emoji" = String, Path, min_length = 1, max_length = 32, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")),
    responses((status = 200, body = Version), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn unreact(
    Caller(ws, user, request_id): Caller,
    ApiPath((post_id, emoji)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let command = PostCommand::Unreact {
        actor: user.user_id.clone(),
        emoji,
    };
    let version = run(&ws.posts, &post_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}
