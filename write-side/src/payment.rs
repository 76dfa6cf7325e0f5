//! The payment steps every purchase shares — a reservation's and an
//! order's: use the coupon, debit the points, and give both back. Each step
//! is keyed by the purchase (its reservation or order id is the coupon use's
//! and the debit's reference), so a retried or duplicated payment takes
//! once, and a compensation run twice gives back once.
//!
//! What is bought differs (seats held on a schedule; stock taken from
//! products) and stays with its saga (`reservations`, `orders`); both run
//! these steps after they secured the goods and before they mark the
//! purchase paid.

use crate::app::WriteSide;
use crate::bus::{AppError, CommandContext, CommandError};
use crate::domain::account::{AccountCommand, AccountError};
use crate::domain::coupon::CouponCommand;

/// Who pays how much for what.
#[derive(Debug, Clone, Copy)]
pub struct Purchase<'a> {
    pub user_id: &'a str,
    /// The reservation or order id.
    pub reference: &'a str,
    pub coupon_id: Option<&'a str>,
    /// The price before the coupon.
    pub amount: i64,
}

/// Uses the coupon and debits what is left of the amount. Points refused
/// give the coupon back before the refusal is answered. Returns the amount
/// paid in points.
pub async fn charge(
    ws: &WriteSide,
    purchase: Purchase<'_>,
    ctx: &CommandContext,
) -> Result<i64, AppError> {
    let discount = match purchase.coupon_id {
        Some(coupon_id) => {
            let command = CouponCommand::Use {
                user_id: purchase.user_id.to_owned(),
                reservation_id: purchase.reference.to_owned(),
            };
            ws.coupons
                .execute(coupon_id, command, ctx, |c| c.discount_amount())
                .await?
                .output
        }
        None => 0,
    };
    let paid_amount = (purchase.amount - discount).max(0);
    if paid_amount > 0 {
        let command = AccountCommand::Use {
            amount: paid_amount,
            reference: purchase.reference.to_owned(),
        };
        if let Err(e) = ws
            .accounts
            .execute(purchase.user_id, command, ctx, |_| ())
            .await
        {
            let refused: AppError = e.into();
            undo(
                ws,
                purchase.user_id,
                purchase.reference,
                purchase.coupon_id.into_iter(),
                ctx,
            )
            .await;
            return Err(refused);
        }
    }
    Ok(paid_amount)
}

/// Gives back what [`charge`] took under `reference`: the points, then each
/// coupon named. Safe to run any number of times, and before or without a
/// charge.
pub async fn give_back<'c>(
    ws: &WriteSide,
    user_id: &str,
    reference: &str,
    coupons: impl Iterator<Item = &'c str>,
    ctx: &CommandContext,
) -> Result<(), AppError> {
    let refund = AccountCommand::Refund {
        reference: reference.to_owned(),
    };
    match ws.accounts.execute(user_id, refund, ctx, |_| ()).await {
        Ok(_) | Err(CommandError::Rejected(AccountError::UnknownReference)) => {}
        Err(e) => return Err(e.into()),
    }
    for coupon_id in coupons {
        let release = CouponCommand::Release {
            user_id: user_id.to_owned(),
            reservation_id: reference.to_owned(),
        };
        ws.coupons.execute(coupon_id, release, ctx, |_| ()).await?;
    }
    Ok(())
}

/// [`give_back`] inside a request: a failure is logged, and the sweeper
/// gives back again when the purchase runs out.
pub async fn undo<'c>(
    ws: &WriteSide,
    user_id: &str,
    reference: &str,
    coupons: impl Iterator<Item = &'c str>,
    ctx: &CommandContext,
) {
    if let Err(error) = give_back(ws, user_id, reference, coupons, ctx).await {
        tracing::error!(%error, reference, "compensating a failed payment failed; the sweeper will retry");
    }
}

/// The balance a payment left: the same figure however often the payment
/// is repeated. A payment that took no points (a coupon covered it) moved
/// nothing, so the current balance answers it.
pub async fn balance(ws: &WriteSide, user_id: &str, reference: &str) -> Result<i64, AppError> {
    Ok(ws
        .accounts
        .read(user_id, {
            let reference = reference.to_owned();
            move |a| {
                a.balance_after_spend(&reference)
                    .unwrap_or_else(|| a.balance())
            }
        })
        .await?)
}
