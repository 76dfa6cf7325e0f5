//! Chat's reads: a text channel's messages, a DM room's messages and the
//! caller's DM rooms by most recent activity.

use std::collections::BTreeMap;

use axum::http::{StatusCode, Uri};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::chat::DmRoomDoc;
use tessera_documents::documents::{collections, pair_id, AccountDoc};
use tessera_documents::store::{ListQuery, Order, RangeQuery};
use tessera_events::ChannelKind;
use tessera_http::auth::Principal;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::ApiQuery;
use tessera_http::ApiPath;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Access;
use crate::cursor::Paging;
use crate::query::{page_of, page_schema, store_failed, typed, PageParams};
use crate::reader::Reader;
use crate::{ReadSide, ReadState};

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(channel_messages))
        .routes(routes!(room_messages))
        .routes(routes!(my_rooms))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub message_id: String,
    pub author_id: String,
    /// The author's nickname in the guild (in a room: their account's, as
    /// it was when they wrote).
    pub author_nickname: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
}

page_schema!(MessagePage of MessageView);

/// `?before=&limit=&cursor=`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// Only messages older than this one (a message id); ignored with a
    /// `cursor`, which goes on from where its page ended.
    #[param(min_length = 1, max_length = 64)]
    pub before: Option<String>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A page of the messages listed in `place`, newest first.
impl MessageQuery {
    /// The paging of the list at `uri` for `user`, checked before anything
    /// else is.
    fn paging(&self, rs: &ReadState, uri: &Uri, user: &Principal) -> Result<Paging, ApiError> {
        let cursor = self.cursor.as_deref();
        Paging::for_list(&rs.cursors, uri.path(), &user.user_id, self.limit, cursor)
    }
}

/// A page of the messages listed in `place` (a channel or a room).
async fn message_page(
    rs: &ReadState,
    place: &str,
    q: MessageQuery,
    page: Paging,
) -> Result<Json<MessagePage>, ApiError> {
    if q.before
        .as_ref()
        .is_some_and(|b| !(1..=64).contains(&b.chars().count()))
    {
        return Err(ApiError::invalid("before", "1..=64 characters"));
    }
    // message ids are time-ordered: older messages have lower ids
    let upper = page.after.clone().or(q.before);
    let found = rs
        .docs
        .list(
            &rs.live(collections::MESSAGES).await?,
            ListQuery {
                filter: Some(("listed_in", place)),
                order: Order::Desc,
                after: upper.as_deref(),
                limit: page.limit + 1,
            },
        )
        .await
        .map_err(|e| store_failed(&e))?;
    let Json(p) = page_of(found, &page, typed::<MessageView>)?;
    Ok(Json(MessagePage {
        items: p.items,
        next_cursor: p.next_cursor,
    }))
}

fn not_a_text_channel() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_a_text_channel",
        "only text channels hold messages",
    )
}

/// A text channel's messages, newest first (members of its guild and
/// admins).
#[utoipa::path(get, path = "/v1/channels/{channel_id}/messages", tag = "chat", params(("channel_id" = String, Path), MessageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a member of the channel's guild"), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "the channel or its guild is deleted"),
        (status = 422, body = ErrorBody, description = "`not_a_text_channel`")))]
pub async fn channel_messages(
    Reader(rs, user): Reader,
    uri: Uri,
    ApiPath(channel_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let page = q.paging(&rs, &uri, &user)?;
    let channel = Access::new(&rs, &user, None).channel(&channel_id).await?;
    if channel.kind != ChannelKind::Text {
        return Err(not_a_text_channel());
    }
    message_page(&rs, &channel_id, q, page).await
}

/// The caller's view of a room, if they are one of its members.
pub(crate) async fn my_room(
    rs: &ReadSide,
    user_id: &str,
    room_id: &str,
) -> Result<DmRoomDoc, ApiError> {
    rs.docs
        .get(
            &rs.live(collections::DM_ROOMS).await?,
            &pair_id(user_id, room_id),
        )
        .await
        .map_err(|e| store_failed(&e))?
        .map(typed)
        .transpose()?
        .ok_or_else(|| ApiError::not_found("room"))
}

/// A DM room's messages, newest first (its members only; any other caller,
/// admins included, gets 404 as for a room that does not exist).
#[utoipa::path(get, path = "/v1/dm/rooms/{room_id}/messages", tag = "chat", params(("room_id" = String, Path), MessageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such room of the caller's")))]
pub async fn room_messages(
    Reader(rs, user): Reader,
    uri: Uri,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let page = q.paging(&rs, &uri, &user)?;
    my_room(&rs, &user.user_id, &room_id).await?;
    message_page(&rs, &room_id, q, page).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoomMemberView {
    pub user_id: String,
    /// Their account's nickname now.
    pub nickname: String,
    /// Whether one of their live streams is open (presence).
    pub online: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LastMessageView {
    pub message_id: String,
    pub author_id: String,
    pub author_nickname: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoomView {
    pub room_id: String,
    pub members: Vec<RoomMemberView>,
    pub last_message: Option<LastMessageView>,
    /// The others' messages since the caller's own last one, counted up to
    /// 100.
    pub unread: u64,
}

page_schema!(RoomPage of RoomView);

/// What a room list reads of a caller's `dm_rooms` document, its last
/// message as the view shows it.
#[derive(Deserialize)]
pub(crate) struct ListedRoom {
    room_id: String,
    members: Vec<String>,
    last_message: Option<LastMessageView>,
    unread: Vec<i64>,
    listed: String,
}

/// The caller's DM rooms, most recent activity first.
#[utoipa::path(get, path = "/v1/me/dm/rooms", tag = "chat", params(PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = RoomPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_rooms(Reader(rs, user): Reader, page: Paging) -> Result<Json<RoomPage>, ApiError> {
    // the cursor holds the `listed` key the page ended at; keys are unique
    // per caller, so the next page starts just above it
    let from = match &page.after {
        Some(after) => format!("{after}\u{1}"),
        None => format!("{}:", user.user_id),
    };
    let to = format!("{};", user.user_id);
    let found = rs
        .docs
        .range(
            &rs.live(collections::DM_ROOMS).await?,
            RangeQuery {
                field: "listed",
                from: &from,
                to: &to,
                limit: page.limit + 1,
            },
        )
        .await
        .map_err(|e| store_failed(&e))?;
    let more = found.len() > page.limit;
    let rooms: Vec<ListedRoom> = found
        .into_iter()
        .take(page.limit)
        .map(typed)
        .collect::<Result<_, _>>()?;
    let next_cursor = more
        .then(|| rooms.last().map(|r| page.next(&r.listed)))
        .flatten();
    let mut ids: Vec<String> = rooms.iter().flat_map(|r| r.members.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    // a room list still reads when presence does not answer: nobody online
    let online = rs
        .presence
        .online(&ids, Utc::now())
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "presence does not answer; rooms show nobody online");
            Default::default()
        });
    let nicknames: BTreeMap<String, String> = rs
        .docs
        .get_many(&rs.live(collections::ACCOUNTS).await?, &ids)
        .await
        .map_err(|e| store_failed(&e))?
        .into_iter()
        .map(typed::<AccountDoc>)
        .map(|a| a.map(|a| (a.account_id, a.nickname)))
        .collect::<Result<_, _>>()?;
    let items = rooms
        .into_iter()
        .map(|r| RoomView {
            members: r
                .members
                .iter()
                .map(|u| RoomMemberView {
                    user_id: u.clone(),
                    nickname: nicknames.get(u).cloned().unwrap_or_default(),
                    online: online.contains(u),
                })
                .collect(),
            last_message: r.last_message,
            unread: r.unread.len() as u64,
            room_id: r.room_id,
        })
        .collect();
    Ok(Json(RoomPage { items, next_cursor }))
}
