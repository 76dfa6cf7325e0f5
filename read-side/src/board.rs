//! Posts with their comments, and a channel's post list.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::documents::{collections, PostDoc};
use tessera_documents::store::Order;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiQuery;
use tessera_http::ApiPath;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Access;
use crate::cursor::Paging;
use crate::query::{list_page, page_schema, plain, typed, MinVersion, Page, PageParams};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(post))
        .routes(routes!(channel_posts))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommentView {
    pub comment_id: String,
    pub author_id: String,
    pub author_nickname: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostView {
    pub post_id: String,
    pub guild_id: String,
    pub channel_id: String,
    pub author_id: String,
    /// The author's nickname in the guild.
    pub author_nickname: String,
    pub title: String,
    pub content: String,
    pub comments: Vec<CommentView>,
    /// emoji -> count
    pub reactions: BTreeMap<String, u64>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub version: u64,
}

/// A post with its comments (the post-with-comments document). A deleted
/// post answers 404.
#[utoipa::path(get, path = "/v1/posts/{post_id}", tag = "board", params(("post_id" = String, Path), MinVersion),
    security(("bearer" = [])),
    responses((status = 200, body = PostView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a member of the post's guild"), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "the post's channel or guild is deleted")))]
pub async fn post(
    Reader(rs, user): Reader,
    ApiPath(post_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<PostView>), (HeaderMap, ApiError)> {
    let (headers, p, view): (_, PostDoc, PostView) = rs
        .one_with_view(collections::POSTS, &post_id, q.min_version, "post")
        .await?;
    if p.deleted {
        return Err((headers, ApiError::not_found("post")));
    }
    Access::new(&rs, &user, q.min_version)
        .channel(&p.channel_id)
        .await
        .map_err(plain)?;
    Ok((headers, Json(view)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostSummaryView {
    pub post_id: String,
    pub title: String,
    pub author_id: String,
    pub author_nickname: String,
    pub comment_count: u64,
    pub reactions: BTreeMap<String, u64>,
    pub created_at: DateTime<Utc>,
}

page_schema!(PostSummaryPage of PostSummaryView);

/// A channel's posts, newest first (members of its guild and admins).
#[utoipa::path(get, path = "/v1/channels/{channel_id}/posts", tag = "board", params(("channel_id" = String, Path), PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = PostSummaryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a member of the channel's guild"), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "the channel or its guild is deleted")))]
pub async fn channel_posts(
    Reader(rs, user): Reader,
    ApiPath(channel_id): ApiPath<String>,
    page: Paging,
) -> Result<Json<Page<PostSummaryView>>, ApiError> {
    Access::new(&rs, &user, None).channel(&channel_id).await?;
    list_page(
        &*rs.docs,
        &rs.live(collections::CHANNEL_POSTS).await?,
        Some(("listed_in", &channel_id)),
        Order::Desc,
        &page,
        typed,
    )
    .await
}
