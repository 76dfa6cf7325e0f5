//! Concerts, schedules, the waiting queue, and seat reservations with
//! payment.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_events::SeatSpec;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{context, run};
use crate::app::WriteState;
use crate::bus::{AppError, CommandError};
use crate::domain::concert::ConcertCommand;
use crate::domain::schedule::{HoldStatus, ScheduleCommand};
use crate::http::caller::Caller;
use crate::reservations;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiJson, CurrentUser, QueueToken, RequestId};
use tessera_http::ApiPath;
use tessera_queue::{QueueDenied, QueueState};

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(create_concert))
        .routes(routes!(create_schedule))
        .routes(routes!(queue_token))
        .routes(routes!(extend_queue_token))
        .routes(routes!(hold_seats))
        .routes(routes!(pay))
        .routes(routes!(cancel))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Winter concert"}))]
pub struct ConcertRequest {
    /// 1..=100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConcertResponse {
    pub concert_id: String,
    pub version: u64,
}

/// Create a concert (admin).
#[utoipa::path(post, path = "/v1/concerts", tag = "concerts", request_body = ConcertRequest, security(("bearer" = [])),
    responses((status = 201, body = ConcertResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn create_concert(
    State(ws): State<WriteState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<ConcertRequest>,
) -> Result<(StatusCode, Json<ConcertResponse>), ApiError> {
    let concert_id = uuid::Uuid::now_v7().to_string();
    let command = ConcertCommand::Create { name: req.name };
    let version = run(&ws.concerts, &concert_id, command, &admin, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConcertResponse {
            concert_id,
            version,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatRequest {
    /// 1 or more, unique in the schedule.
    #[schema(minimum = 1)]
    pub seat_no: u32,
    /// Points, 0..=1,000,000.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub price: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"starts_at": "2026-12-24T19:00:00Z", "seats": [{"seat_no": 1, "price": 120}, {"seat_no": 2, "price": 120}]}))]
pub struct ScheduleRequest {
    pub starts_at: DateTime<Utc>,
    /// 1..=10,000 seats.
    #[schema(min_items = 1, max_items = 10_000)]
    pub seats: Vec<SeatRequest>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleResponse {
    pub schedule_id: String,
    pub version: u64,
}

/// Add a schedule with its seat layout and prices (admin).
#[utoipa::path(post, path = "/v1/concerts/{concert_id}/schedules", tag = "concerts", request_body = ScheduleRequest,
    security(("bearer" = [])), params(("concert_id" = String, Path)),
    responses((status = 201, body = ScheduleResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "`concert_not_found`")))]
pub async fn create_schedule(
    State(ws): State<WriteState>,
    AdminUser(admin): AdminUser,
    RequestId(request_id): RequestId,
    ApiPath(concert_id): ApiPath<String>,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<ScheduleResponse>), ApiError> {
    let schedule_id = uuid::Uuid::now_v7().to_string();
    let seats = req
        .seats
        .into_iter()
        .map(|s| SeatSpec {
            seat_no: s.seat_no,
            price: s.price,
        })
        .collect();
    let command = ScheduleCommand::Create {
        concert_id,
        starts_at: req.starts_at,
        seats,
    };
    let version = run(&ws.schedules, &schedule_id, command, &admin, request_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ScheduleResponse {
            schedule_id,
            version,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"concert_id": "0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a80"}))]
pub struct QueueTokenRequest {
    pub concert_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueTokenResponse {
    /// Send as `X-Queue-Token`.
    pub token: String,
    pub position: u64,
    /// `waiting` or `active`.
    pub status: String,
    /// End of the active window once admitted; of the token while waiting.
    pub expires_at: DateTime<Utc>,
}

/// Take a place in a concert's waiting queue. One place per user and
/// concert: asking again while the place is waiting or active answers 200
/// with the same position and a fresh token for it.
#[utoipa::path(post, path = "/v1/queue/tokens", tag = "queue", request_body = QueueTokenRequest, security(("bearer" = [])),
    responses((status = 201, body = QueueTokenResponse, description = "a new place"),
        (status = 200, body = QueueTokenResponse, description = "the place the caller already holds"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such concert")))]
pub async fn queue_token(
    State(ws): State<WriteState>,
    CurrentUser(user): CurrentUser,
    ApiJson(req): ApiJson<QueueTokenRequest>,
) -> Result<(StatusCode, Json<QueueTokenResponse>), ApiError> {
    let exists = ws.concerts.read(&req.concert_id, |c| c.exists()).await?;
    if !exists {
        return Err(ApiError::not_found("concert"));
    }
    let issued = ws.queue.issue(&user.user_id, &req.concert_id).await?;
    let status = match issued.status.state {
        QueueState::Waiting => "waiting",
        QueueState::Active => "active",
        QueueState::Expired => "expired",
    };
    let code = if issued.new_place {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(QueueTokenResponse {
            token: issued.token,
            position: issued.status.position,
            status: status.into(),
            expires_at: issued.status.expires_at,
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExtendedToken {
    /// The token to send as `X-Queue-Token` from now on.
    pub token: String,
    /// The new end of the active window.
    pub expires_at: DateTime<Utc>,
}

/// Extend an active queue token by `TESSERA_QUEUE_ACTIVE_TTL_SECONDS` from
/// now, at most `TESSERA_QUEUE_MAX_EXTENSIONS` (default 2) times per place.
#[utoipa::path(post, path = "/v1/queue/extend", tag = "queue", security(("bearer" = [])),
    params(("X-Queue-Token" = String, Header, description = "an active queue token")),
    responses((status = 200, body = ExtendedToken), (status = 401, body = ErrorBody, description = "no, an invalid or an expired queue token"),
        (status = 403, body = ErrorBody, description = "another user's queue token"),
        (status = 409, body = ErrorBody, description = "`extension_limit`: extended the most times allowed"),
        (status = 423, body = ErrorBody, description = "`queue_not_active`: still waiting")))]
pub async fn extend_queue_token(
    State(ws): State<WriteState>,
    CurrentUser(user): CurrentUser,
    QueueToken(token): QueueToken,
) -> Result<Json<ExtendedToken>, ApiError> {
    let extended = ws.queue.extend(token.as_deref(), &user.user_id).await?;
    Ok(Json(ExtendedToken {
        token: extended.token,
        expires_at: extended.status.expires_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"schedule_id": "0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a80", "seat_nos": [1, 2]}))]
pub struct HoldRequest {
    pub schedule_id: String,
    /// 1..=4 distinct seats.
    #[schema(value_type = std::collections::BTreeSet<u32>, min_items = 1, max_items = 4)]
    pub seat_nos: Vec<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoldResponse {
    pub reservation_id: String,
    /// `held`
    pub status: String,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    /// The schedule's version (use as `min_version` on the reservation).
    pub version: u64,
}

/// Hold seats (all or nothing) with an active queue token.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations", request_body = HoldRequest,
    security(("bearer" = [])), params(("X-Queue-Token" = String, Header, description = "an active queue token for the schedule's concert")),
    responses((status = 201, body = HoldResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "`queue_token_required` / `queue_token_expired`"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`seat_unavailable`: nothing was held"),
        (status = 422, body = ErrorBody, description = "`unknown_seat`"), (status = 423, body = ErrorBody, description = "`queue_not_active`")))]
pub async fn hold_seats(
    Caller(ws, user, request_id): Caller,
    QueueToken(token): QueueToken,
    ApiJson(req): ApiJson<HoldRequest>,
) -> Result<(StatusCode, Json<HoldResponse>), ApiError> {
    // the token is checked before anything is looked up
    let pass = ws.queue.verify(token.as_deref(), &user.user_id)?;
    let seats = req.seat_nos.clone();
    let now = Utc::now();
    let (concert_id, refused) = ws
        .schedules
        .read(&req.schedule_id, move |s| {
            s.exists()
                .then(|| (s.concert_id().to_owned(), s.refuses_hold(&seats, now)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    ws.queue.admit(pass, &concert_id).await?;
    if let Some(refusal) = refused {
        // the state read is current (the bus checks the store for newer
        // events before answering a read), so the seats are taken now
        return Err(AppError::from(CommandError::Rejected(refusal)).into());
    }
    let ctx = context(&user.user_id, request_id);
    let held = reservations::hold(&ws, &user.user_id, &req.schedule_id, req.seat_nos, &ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(HoldResponse {
            reservation_id: held.reservation_id,
            status: "held".into(),
            amount: held.amount,
            expires_at: held.expires_at,
            version: held.version,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"coupon_id": "0193a1f4-7c2e-7b3a-9f10-2c4d5e6f7a81"}))]
pub struct PaymentRequest {
    /// A coupon of the caller's to take off the price.
    pub coupon_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentResponse {
    pub reservation_id: String,
    /// `paid`
    pub status: String,
    pub paid_amount: i64,
    /// The caller's balance after paying.
    pub balance: i64,
}

/// Pay for a hold with points (and an optional coupon). Ends the queue token.
#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/payment", tag = "reservations", request_body = PaymentRequest,
    security(("bearer" = [])), params(("reservation_id" = String, Path), ("X-Queue-Token" = String, Header)),
    responses((status = 200, body = PaymentResponse, description = "paying again answers the same"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`insufficient_points`, `hold_expired`, `coupon_not_issued`, `coupon_already_used`"),
        (status = 423, body = ErrorBody)))]
pub async fn pay(
    Caller(ws, user, request_id): Caller,
    QueueToken(token): QueueToken,
    ApiPath(reservation_id): ApiPath<String>,
    ApiJson(req): ApiJson<PaymentRequest>,
) -> Result<Json<PaymentResponse>, ApiError> {
    // a token sent is checked before anything is looked up; none at all may
    // still be a replay of a payment that ended it (below)
    let pass = token
        .is_some()
        .then(|| ws.queue.verify(token.as_deref(), &user.user_id))
        .transpose()?;
    let (index, hold) = reservations::find(&ws, &reservation_id).await?;
    let ctx = context(&user.user_id, request_id);
    // an already paid reservation answers again without a token: the token
    // ended with the first payment
    let ticket = if hold.status == HoldStatus::Paid && hold.user_id == user.user_id {
        None
    } else {
        let concert_id = ws
            .schedules
            .read(&index.schedule_id, |s| s.concert_id().to_owned())
            .await?;
        let admitted = match pass {
            Some(pass) => ws.queue.admit(pass, &concert_id).await,
            None => Err(QueueDenied::Missing),
        };
        match admitted {
            Ok(ticket) => Some(ticket),
            Err(refused) => {
                // a duplicate racing the first payment finds the token ended
                // by it: if the reservation is paid by now, answer the same
                let (_, now) = reservations::find(&ws, &reservation_id).await?;
                if now.status == HoldStatus::Paid && now.user_id == user.user_id {
                    None
                } else {
                    return Err(refused.into());
                }
            }
        }
    };
    let paid = reservations::pay(&ws, &user.user_id, &reservation_id, req.coupon_id, &ctx).await?;
    if let Some(ticket) = ticket {
        if let Err(error) = ws.queue.end(&ticket).await {
            tracing::warn!(%error, "ending the queue token failed; it runs out on its own");
        }
    }
    Ok(Json(PaymentResponse {
        reservation_id: paid.reservation_id,
        status: "paid".into(),
        paid_amount: paid.paid_amount,
        balance: paid.balance,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    pub reservation_id: String,
    /// `cancelled`
    pub status: String,
    pub version: u64,
}

/// Cancel a reservation (its owner or an admin); its seats are free again,
/// and a paid one is refunded.
#[utoipa::path(delete, path = "/v1/reservations/{reservation_id}", tag = "reservations",
    security(("bearer" = [])), params(("reservation_id" = String, Path)),
    responses((status = 200, body = CancelResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "`hold_expired`")))]
pub async fn cancel(
    Caller(ws, user, request_id): Caller,
    ApiPath(reservation_id): ApiPath<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    let ctx = context(&user.user_id, request_id);
    let version =
        reservations::cancel(&ws, &user.user_id, user.is_admin(), &reservation_id, &ctx).await?;
    Ok(Json(CancelResponse {
        reservation_id,
        status: "cancelled".into(),
        version,
    }))
}
