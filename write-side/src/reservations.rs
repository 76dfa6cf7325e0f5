//! Holding, paying for and cancelling seats: the application service that
//! spans the schedule, account and coupon aggregates.
//!
//! Payment is an explicit saga. Each step is idempotent under the
//! reservation id, so a retried payment pays once:
//! 1. use the coupon, if any, and
//! 2. debit the account — the steps every purchase shares ([`payment`]);
//! 3. mark the hold paid (schedule aggregate) — refused if it expired or was
//!    cancelled meanwhile.
//!
//! When a later step is refused, the earlier ones are compensated: the
//! points are refunded and the coupon given back. If the process dies
//! mid-saga, the hold is left unpaid; when it runs out, the sweeper expires
//! it and runs the same compensation, so points are right either way.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::WriteSide;
use crate::bus::{AppError, Cause, CommandContext};
use crate::domain::schedule::{Hold, HoldStatus, ScheduleCommand, ScheduleError};
use crate::domain::{DomainError, ErrorKind};
use crate::payment::{self, Purchase};
use crate::store::state::HoldRef;

#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub reservation_id: String,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    /// The schedule's version after the hold.
    pub version: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Paid {
    pub reservation_id: String,
    pub paid_amount: i64,
    pub balance: i64,
}

fn not_found() -> AppError {
    AppError::rejected(ErrorKind::NotFound, "not_found", "reservation not found")
}

fn state_failed(e: impl Into<Cause>) -> AppError {
    AppError::failed(e)
}

/// Holds seats for `user_id` (all or nothing).
pub async fn hold(
    ws: &WriteSide,
    user_id: &str,
    schedule_id: &str,
    seat_nos: Vec<u32>,
    ctx: &CommandContext,
) -> Result<Held, AppError> {
    let reservation_id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(ws.hold_ttl).unwrap_or_default();
    // the index first: a hold the sweeper cannot find would never expire
    ws.directory
        .put_hold(&HoldRef {
            reservation_id: reservation_id.clone(),
            schedule_id: schedule_id.to_owned(),
            user_id: user_id.to_owned(),
            expires_at,
            coupon_id: None,
        })
        .await
        .map_err(state_failed)?;
    let command = ScheduleCommand::Hold {
        reservation_id: reservation_id.clone(),
        user_id: user_id.to_owned(),
        seat_nos,
        now,
        expires_at,
    };
    let rid = reservation_id.clone();
    match ws
        .schedules
        .execute(schedule_id, command, ctx, move |s| {
            s.hold(&rid).map(|h| h.amount)
        })
        .await
    {
        Ok(done) => Ok(Held {
            reservation_id,
            amount: done.output.unwrap_or_default(),
            expires_at,
            version: done.version,
        }),
        Err(e) => {
            let _ = ws.directory.settle_hold(&reservation_id).await;
            Err(e.into())
        }
    }
}

/// The hold behind a reservation id, and its schedule.
pub async fn find(ws: &WriteSide, reservation_id: &str) -> Result<(HoldRef, Hold), AppError> {
    let index = ws
        .directory
        .hold(reservation_id)
        .await
        .map_err(state_failed)?
        .ok_or_else(not_found)?;
    let rid = reservation_id.to_owned();
    let hold = ws
        .schedules
        .read(&index.schedule_id, move |s| s.hold(&rid).cloned())
        .await
        .map_err(AppError::from)?
        .ok_or_else(not_found)?;
    Ok((index, hold))
}

/// Gives back what a reservation took: its points and its coupon. Safe to
/// run any number of times.
pub async fn compensate(
    ws: &WriteSide,
    user_id: &str,
    reservation_id: &str,
    coupon_id: Option<&str>,
    ctx: &CommandContext,
) -> Result<(), AppError> {
    payment::give_back(ws, user_id, reservation_id, coupon_id.into_iter(), ctx).await
}

/// Pays for a hold with the user's points, after an optional coupon discount.
pub async fn pay(
    ws: &WriteSide,
    user_id: &str,
    reservation_id: &str,
    coupon_id: Option<String>,
    ctx: &CommandContext,
) -> Result<Paid, AppError> {
    let (index, hold) = find(ws, reservation_id).await?;
    if hold.user_id != user_id {
        return Err(AppError::rejected(
            ErrorKind::Forbidden,
            "forbidden",
            "this reservation belongs to someone else",
        ));
    }
    if hold.status == HoldStatus::Paid {
        return Ok(Paid {
            reservation_id: reservation_id.to_owned(),
            paid_amount: hold.paid_amount.unwrap_or(hold.amount),
            balance: payment::balance(ws, user_id, reservation_id).await?,
        });
    }
    if hold.status == HoldStatus::Cancelled {
        return Err(AppError::Rejected(crate::bus::Rejection::of(
            &ScheduleError::Cancelled,
        )));
    }
    if !hold.live(Utc::now()) {
        return Err(AppError::Rejected(crate::bus::Rejection::of(
            &ScheduleError::HoldExpired,
        )));
    }

    // 1. and 2. the coupon and the points
    if let Some(coupon_id) = &coupon_id {
        // recorded first, so an unfinished payment's coupon can be given back
        ws.directory
            .set_hold_coupon(reservation_id, coupon_id)
            .await
            .map_err(state_failed)?;
    }
    let purchase = Purchase {
        user_id,
        reference: reservation_id,
        coupon_id: coupon_id.as_deref(),
        amount: hold.amount,
    };
    let paid_amount = payment::charge(ws, purchase, ctx).await?;

    // 3. the hold
    let command = ScheduleCommand::Pay {
        reservation_id: reservation_id.to_owned(),
        user_id: user_id.to_owned(),
        paid_amount,
        coupon_id: coupon_id.clone(),
        now: Utc::now(),
    };
    if let Err(e) = ws
        .schedules
        .execute(&index.schedule_id, command, ctx, |_| ())
        .await
    {
        let refused: AppError = e.into();
        payment::undo(
            ws,
            user_id,
            reservation_id,
            coupon_id.as_deref().into_iter(),
            ctx,
        )
        .await;
        return Err(refused);
    }
    if let Err(error) = ws.directory.settle_hold(reservation_id).await {
        // only bookkeeping: the sweeper will find the hold paid and settle it
        tracing::warn!(%error, reservation_id, "settling a paid hold failed");
    }
    Ok(Paid {
        reservation_id: reservation_id.to_owned(),
        paid_amount,
        balance: payment::balance(ws, user_id, reservation_id).await?,
    })
}

/// Cancels a reservation; a paid one gets its points (and coupon) back.
pub async fn cancel(
    ws: &WriteSide,
    actor: &str,
    as_admin: bool,
    reservation_id: &str,
    ctx: &CommandContext,
) -> Result<u64, AppError> {
    let (index, hold) = find(ws, reservation_id).await?;
    let command = ScheduleCommand::Cancel {
        reservation_id: reservation_id.to_owned(),
        actor: actor.to_owned(),
        as_admin,
    };
    let done = ws
        .schedules
        .execute(&index.schedule_id, command, ctx, |_| ())
        .await?;
    if hold.status == HoldStatus::Paid {
        compensate(
            ws,
            &hold.user_id,
            reservation_id,
            hold.coupon_id.as_deref(),
            ctx,
        )
        .await?;
    }
    if let Err(error) = ws.directory.settle_hold(reservation_id).await {
        tracing::warn!(%error, reservation_id, "settling a cancelled hold failed");
    }
    Ok(done.version)
}

/// Expires one hold that ran out, compensating whatever a payment that did
/// not finish took. `Ok(true)` when the hold is settled.
pub async fn expire(ws: &WriteSide, index: &HoldRef, now: DateTime<Utc>) -> Result<bool, AppError> {
    let ctx = CommandContext::new(tessera_events::SYSTEM_ACTOR, None);
    let command = ScheduleCommand::Expire {
        reservation_id: index.reservation_id.clone(),
        now,
    };
    match ws
        .schedules
        .execute(&index.schedule_id, command, &ctx, |_| ())
        .await
    {
        Ok(_) => {
            // a payment may have died between its first step and the hold
            compensate(
                ws,
                &index.user_id,
                &index.reservation_id,
                index.coupon_id.as_deref(),
                &ctx,
            )
            .await?;
        }
        Err(crate::bus::CommandError::Rejected(
            ScheduleError::AlreadyPaid
            | ScheduleError::Cancelled
            | ScheduleError::ReservationNotFound
            | ScheduleError::NotFound,
        )) => {}
        Err(crate::bus::CommandError::Rejected(ScheduleError::NotExpiredYet)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    ws.directory
        .settle_hold(&index.reservation_id)
        .await
        .map_err(state_failed)?;
    Ok(true)
}

/// One sweep: expires up to `limit` holds that ran out. Returns how many
/// were settled.
pub async fn sweep(ws: &WriteSide, now: DateTime<Utc>, limit: usize) -> Result<usize, AppError> {
    let due = ws
        .directory
        .due_holds(now, limit)
        .await
        .map_err(state_failed)?;
    Ok(crate::background::settle_each(
        &due,
        "hold",
        |h| h.reservation_id.as_str(),
        |h| expire(ws, h, now),
    )
    .await)
}

/// Whether a rejection came from a hold that can no longer be paid.
pub fn is_hold_gone(e: &AppError) -> bool {
    matches!(e.code(), Some(code) if code == ScheduleError::HoldExpired.code() || code == ScheduleError::Cancelled.code())
}
