//! Concerts, their calendars, the waiting queue's status, seat maps and
//! reservations.

use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::documents::{collections, ReservationDoc, SeatMapDoc, SeatState};
use tessera_documents::store::{Order, RangeQuery};
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{ApiQuery, QueueToken};
use tessera_http::ApiPath;
use tessera_queue::{QueueDenied, QueueState};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cursor::Paging;
use crate::query::{
    list_page, page_schema, plain, store_failed, typed, DateRange, MinVersion, Page, PageParams,
};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(concerts))
        .routes(routes!(concert))
        .routes(routes!(schedules))
        .routes(routes!(queue_status))
        .routes(routes!(seats))
        .routes(routes!(reservation))
        .routes(routes!(my_reservations))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConcertView {
    pub concert_id: String,
    pub name: String,
    pub version: u64,
}

page_schema!(ConcertPage of ConcertView);

/// All concerts, oldest first.
#[utoipa::path(get, path = "/v1/concerts", tag = "concerts", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = ConcertPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn concerts(
    Reader(rs, _): Reader,
    page: Paging,
) -> Result<Json<Page<ConcertView>>, ApiError> {
    list_page(
        &*rs.docs,
        &rs.live(collections::CONCERTS).await?,
        None,
        Order::Asc,
        &page,
        typed,
    )
    .await
}

/// One concert.
#[utoipa::path(get, path = "/v1/concerts/{concert_id}", tag = "concerts", params(("concert_id" = String, Path), MinVersion),
    security(("bearer" = [])),
    responses((status = 200, body = ConcertView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn concert(
    Reader(rs, _): Reader,
    ApiPath(concert_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<ConcertView>), (HeaderMap, ApiError)> {
    rs.view(collections::CONCERTS, &concert_id, q.min_version, "concert")
        .await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    pub schedule_id: String,
    pub starts_at: DateTime<Utc>,
    pub available_seats: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    pub items: Vec<ScheduleView>,
}

/// Most schedules one calendar query returns.
const MAX_SCHEDULES: usize = 1000;

/// A concert's schedules starting in `[from, to)`, by start time.
#[utoipa::path(get, path = "/v1/concerts/{concert_id}/schedules", tag = "concerts",
    params(("concert_id" = String, Path), DateRange), security(("bearer" = [])),
    responses((status = 200, body = ScheduleList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn schedules(
    Reader(rs, _): Reader,
    ApiPath(concert_id): ApiPath<String>,
    ApiQuery(range): ApiQuery<DateRange>,
) -> Result<Json<ScheduleList>, ApiError> {
    // an empty range (`to` before `from`) finds nothing, like any other
    if let (Some(from), Some(to)) = (range.from, range.to) {
        if from >= to {
            return Ok(Json(ScheduleList { items: Vec::new() }));
        }
    }
    let exists = rs
        .docs
        .get(&rs.live(collections::CONCERTS).await?, &concert_id)
        .await
        .map_err(|e| store_failed(&e))?
        .is_some();
    if !exists {
        return Err(ApiError::not_found("concert"));
    }
    let key = |t: Option<DateTime<Utc>>, open_end: &str| match t {
        Some(t) => tessera_documents::documents::concert_start(&concert_id, t),
        None => format!("{concert_id}|{open_end}"),
    };
    // "|" sorts before digits and "~" after them: the open ends of the range
    let docs = rs
        .docs
        .range(
            &rs.live(collections::SCHEDULES).await?,
            RangeQuery {
                field: "concert_start",
                from: &key(range.from, ""),
                to: &key(range.to, "~"),
                limit: MAX_SCHEDULES,
            },
        )
        .await
        .map_err(|e| store_failed(&e))?;
    let items = docs
        .into_iter()
        .map(typed)
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(ScheduleList { items }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueStatusView {
    /// `waiting`, `active` or `expired`.
    pub status: String,
    pub position: u64,
    /// Positions to be admitted before this one.
    pub ahead: u64,
    pub estimated_wait_seconds: u64,
    /// End of the active window (active), or of the token (waiting).
    pub expires_at: DateTime<Utc>,
}

/// Where a queue token stands.
#[utoipa::path(get, path = "/v1/queue/status", tag = "queue", security(("bearer" = [])),
    params(("X-Queue-Token" = String, Header)),
    responses((status = 200, body = QueueStatusView), (status = 401, body = ErrorBody, description = "`queue_token_required`, `queue_token_invalid`"),
        (status = 403, body = ErrorBody)))]
pub async fn queue_status(
    Reader(rs, user): Reader,
    QueueToken(token): QueueToken,
) -> Result<Json<QueueStatusView>, ApiError> {
    let token = token.ok_or(QueueDenied::Missing)?;
    let s = match rs.queue.status(&token).await {
        Ok(s) => s,
        Err(QueueDenied::Expired) => {
            return Ok(Json(QueueStatusView {
                status: "expired".into(),
                position: 0,
                ahead: 0,
                estimated_wait_seconds: 0,
                expires_at: Utc::now(),
            }))
        }
        Err(e) => return Err(e.into()),
    };
    if s.user_id != user.user_id {
        return Err(QueueDenied::OtherUser.into());
    }
    let status = match s.state {
        QueueState::Waiting => "waiting",
        QueueState::Active => "active",
        QueueState::Expired => "expired",
    };
    Ok(Json(QueueStatusView {
        status: status.into(),
        position: s.position,
        ahead: s.ahead,
        estimated_wait_seconds: s.estimated_wait_seconds,
        expires_at: s.expires_at,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatView {
    pub seat_no: u32,
    pub price: i64,
    pub available: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatMapView {
    pub schedule_id: String,
    pub seats: Vec<SeatView>,
    pub version: u64,
}

/// A schedule's seats and which are free (needs an active queue token). A
/// held seat is free again as soon as its hold runs out.
#[utoipa::path(get, path = "/v1/schedules/{schedule_id}/seats", tag = "concerts",
    params(("schedule_id" = String, Path), ("X-Queue-Token" = String, Header), MinVersion), security(("bearer" = [])),
    responses((status = 200, body = SeatMapView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 423, body = ErrorBody, description = "`queue_not_active`")))]
pub async fn seats(
    Reader(rs, user): Reader,
    QueueToken(token): QueueToken,
    ApiPath(schedule_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<SeatMapView>), (HeaderMap, ApiError)> {
    // the token is checked before anything is looked up
    let pass = rs
        .queue
        .verify(token.as_deref(), &user.user_id)
        .map_err(|e| plain(e.into()))?;
    let (headers, map): (_, SeatMapDoc) = rs
        .one(
            collections::SEAT_MAPS,
            &schedule_id,
            q.min_version,
            "schedule",
        )
        .await?;
    rs.queue
        .admit(pass, &map.concert_id)
        .await
        .map_err(|e| plain(e.into()))?;
    let now = Utc::now();
    let seats = map
        .seats
        .into_iter()
        .map(|s| SeatView {
            seat_no: s.seat_no,
            price: s.price,
            available: match s.state {
                SeatState::Free => true,
                SeatState::Held => s.held_until.is_some_and(|until| now >= until),
                SeatState::Sold => false,
            },
        })
        .collect();
    Ok((
        headers,
        Json(SeatMapView {
            schedule_id: map.schedule_id,
            seats,
            version: map.version,
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    pub reservation_id: String,
    pub schedule_id: String,
    pub seat_nos: Vec<u32>,
    /// `held`, `paid`, `cancelled` or `expired`.
    pub status: String,
    pub amount: i64,
    pub paid_amount: Option<i64>,
    pub expires_at: DateTime<Utc>,
    pub version: u64,
}

/// One reservation (its owner or an admin).
#[utoipa::path(get, path = "/v1/reservations/{reservation_id}", tag = "reservations",
    params(("reservation_id" = String, Path), MinVersion), security(("bearer" = [])),
    responses((status = 200, body = ReservationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn reservation(
    Reader(rs, user): Reader,
    ApiPath(reservation_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<ReservationView>), (HeaderMap, ApiError)> {
    let (headers, r, view): (_, ReservationDoc, ReservationView) = rs
        .one_with_view(
            collections::RESERVATIONS,
            &reservation_id,
            q.min_version,
            "reservation",
        )
        .await?;
    if r.user_id != user.user_id && !user.is_admin() {
        return Err(plain(ApiError::forbidden(
            "this reservation belongs to someone else",
        )));
    }
    Ok((headers, Json(view)))
}

page_schema!(ReservationPage of ReservationView);

/// The caller's reservations, newest first.
#[utoipa::path(get, path = "/v1/me/reservations", tag = "reservations", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = ReservationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_reservations(
    Reader(rs, user): Reader,
    page: Paging,
) -> Result<Json<Page<ReservationView>>, ApiError> {
    list_page(
        &*rs.docs,
        &rs.live(collections::USER_RESERVATIONS).await?,
        Some(("user_id", &user.user_id)),
        Order::Desc,
        &page,
        typed,
    )
    .await
}
