//! Guilds, their members, and the caller's guild list.

use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_documents::documents::{collections, GuildDoc};
use tessera_documents::store::Order;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiQuery;
use tessera_http::ApiPath;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{guild_gone, Access};
use crate::cursor::Paging;
use crate::query::{list_page, page_schema, store_failed, typed, MinVersion, Page, PageParams};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(guild))
        .routes(routes!(members))
        .routes(routes!(my_guilds))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryView {
    pub category_id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub channel_id: String,
    pub name: String,
    /// `text` or `forum`.
    pub kind: String,
    pub category_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GuildView {
    pub guild_id: String,
    pub name: String,
    pub profile_image: Option<String>,
    pub owner_id: String,
    pub member_count: u64,
    pub categories: Vec<CategoryView>,
    pub channels: Vec<ChannelView>,
    pub version: u64,
}

/// A guild with its categories and channels. A deleted guild answers 410.
#[utoipa::path(get, path = "/v1/guilds/{guild_id}", tag = "guilds",
    params(("guild_id" = String, Path), MinVersion), security(("bearer" = [])),
    responses((status = 200, body = GuildView, headers(("X-Stale" = String, description = "`true` when older than `min_version`"))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn guild(
    Reader(rs, _): Reader,
    ApiPath(guild_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<GuildView>), (HeaderMap, ApiError)> {
    let (headers, g, view): (_, GuildDoc, GuildView) = rs
        .one_with_view(collections::GUILDS, &guild_id, q.min_version, "guild")
        .await?;
    if g.deleted {
        return Err((headers, guild_gone()));
    }
    Ok((headers, Json(view)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    /// The member's nickname in this guild.
    pub nickname: String,
}

page_schema!(MemberPage of MemberView);

/// Members of a guild with their nicknames there (members and admins).
#[utoipa::path(get, path = "/v1/guilds/{guild_id}/members", tag = "guilds",
    params(("guild_id" = String, Path), PageParams), security(("bearer" = [])),
    responses((status = 200, body = MemberPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a member"),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn members(
    Reader(rs, user): Reader,
    ApiPath(guild_id): ApiPath<String>,
    page: Paging,
) -> Result<Json<Page<MemberView>>, ApiError> {
    Access::new(&rs, &user, None).guild(&guild_id).await?;
    list_page(
        &*rs.docs,
        &rs.live(collections::GUILD_MEMBERS).await?,
        Some(("member_of", &guild_id)),
        Order::Asc,
        &page,
        typed,
    )
    .await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MyGuildView {
    pub guild_id: String,
    pub name: String,
    pub profile_image: Option<String>,
    /// The caller's nickname in that guild.
    pub nickname: String,
}

page_schema!(MyGuildPage of MyGuildView);

/// The caller's `user_guilds` document, its entries read as views.
#[derive(Deserialize)]
pub(crate) struct MyGuilds {
    guilds: Vec<MyGuildView>,
}

/// The guilds the caller belongs to, in joining order.
#[utoipa::path(get, path = "/v1/me/guilds", tag = "guilds", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = MyGuildPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_guilds(
    Reader(rs, user): Reader,
    page: Paging,
) -> Result<Json<Page<MyGuildView>>, ApiError> {
    let limit = page.limit;
    // the list lives in one document; the cursor is the last guild id seen
    let after = page.after.clone();
    let doc = rs
        .docs
        .get(&rs.live(collections::USER_GUILDS).await?, &user.user_id)
        .await
        .map_err(|e| store_failed(&e))?;
    let guilds = match doc {
        Some(d) => typed::<MyGuilds>(d)?.guilds,
        None => Vec::new(),
    };
    let start = match after {
        Some(after) => guilds
            .iter()
            .position(|g| g.guild_id == after)
            .map_or(guilds.len(), |i| i + 1),
        None => 0,
    };
    let mut items: Vec<MyGuildView> = guilds.into_iter().skip(start).collect();
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = more
        .then(|| items.last().map(|g| page.next(&g.guild_id)))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}
