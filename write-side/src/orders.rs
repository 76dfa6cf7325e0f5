//! Creating, paying for, cancelling and expiring orders: the application
//! service that spans the order, product, coupon and account aggregates.
//!
//! Payment is a saga, like a reservation's, with one run at a time per
//! order (`PaymentStarted` names the run):
//! 1. take each line's stock, products in id order — all or nothing: a
//!    refused product gives back the ones taken before it;
//! 2. use the coupon and debit the points — the steps every purchase
//!    shares ([`payment`]);
//! 3. mark the order paid.
//!
//! Every step is keyed by the order id, so a retried run takes once. A
//! refusal compensates in reverse (points and coupon, then stock) and
//! aborts the run, which leaves the order payable again. A copy of a
//! payment that arrives while a run is under way waits for its end and
//! answers the same. A run whose process died is finished by the next
//! payment of the order (it takes over after [`PAYMENT_STALE_AFTER`]) or,
//! once the order is due, compensated by the sweeper, which then expires
//! the order: an unpaid order ends holding no stock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::WriteSide;
use crate::bus::{AppError, Cause, CommandContext, CommandError, Rejection};
use crate::domain::order::{Order, OrderCommand, OrderError, OrderStatus, PAYMENT_STALE_AFTER};
use crate::domain::product::ProductCommand;
use crate::domain::DomainError;
use crate::payment::{self, Purchase};
use crate::store::state::OrderRef;
use tessera_events::OrderLine;

/// How long a copy of a payment waits for the run under way to end.
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// What an order line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub order_id: String,
    pub status: &'static str,
    pub amount: i64,
    pub version: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Paid {
    pub order_id: String,
    pub paid_amount: i64,
    pub balance: i64,
}

fn state_failed(e: impl Into<Cause>) -> AppError {
    AppError::failed(e)
}

/// How the API names an order's status.
pub fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::None | OrderStatus::Created => "created",
        OrderStatus::Paying => "paying",
        OrderStatus::Paid => "paid",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Expired => "expired",
    }
}

/// Creates an order with the products' current prices, or answers the
/// order the buyer's idempotency key made before.
pub async fn create(
    ws: &WriteSide,
    buyer_id: &str,
    wanted: Vec<Wanted>,
    idempotency_key: String,
    ctx: &CommandContext,
) -> Result<Created, AppError> {
    let refused = |e: OrderError| AppError::Rejected(Rejection::of(&e));
    Order::check_shape(
        wanted.len(),
        wanted.iter().map(|w| (w.product_id.as_str(), w.quantity)),
        &idempotency_key,
    )
    .map_err(refused)?;
    let claimed = ws
        .directory
        .claim_order(&OrderRef {
            order_id: uuid::Uuid::now_v7().to_string(),
            buyer_id: buyer_id.to_owned(),
            idempotency_key: idempotency_key.clone(),
            due_at: Utc::now() + chrono::Duration::from_std(ws.order_ttl).unwrap_or_default(),
        })
        .await
        .map_err(state_failed)?;
    let order_id = claimed.order_id;
    // a repeated key answers the order it made, whatever it asks for now
    let (status, amount, version) = ws
        .orders
        .read(&order_id, |o| (o.status(), o.amount(), o.version()))
        .await?;
    if status != OrderStatus::None {
        return Ok(Created {
            order_id,
            status: status_name(status),
            amount,
            version,
        });
    }
    // priced before the merged lines are checked: an unknown product is a
    // 404 whatever its quantities (a refused request leaves its key
    // claimed for no order, which the sweeper settles when it is due)
    let lines = priced(ws, merged(wanted)).await?;
    Order::check_request(
        lines.iter().map(|l| (l.product_id.as_str(), l.quantity)),
        &idempotency_key,
    )
    .map_err(refused)?;
    let command = OrderCommand::Create {
        buyer_id: buyer_id.to_owned(),
        lines,
        idempotency_key,
        expires_at: claimed.due_at,
    };
    let done = ws
        .orders
        .execute(&order_id, command, ctx, |o| (o.status(), o.amount()))
        .await?;
    let (status, amount) = done.output;
    Ok(Created {
        order_id,
        status: status_name(status),
        amount,
        version: done.version,
    })
}

/// One line per product: a product named twice is asked for once, with the
/// quantities added up (and the sum bounded like any quantity).
fn merged(wanted: Vec<Wanted>) -> Vec<Wanted> {
    let mut lines: Vec<Wanted> = Vec::with_capacity(wanted.len());
    for w in wanted {
        match lines.iter_mut().find(|l| l.product_id == w.product_id) {
            Some(line) => line.quantity = line.quantity.saturating_add(w.quantity),
            None => lines.push(w),
        }
    }
    lines
}

/// The lines of an order: each product's name, seller and price now.
async fn priced(ws: &WriteSide, wanted: Vec<Wanted>) -> Result<Vec<OrderLine>, AppError> {
    let mut lines = Vec::with_capacity(wanted.len());
    for w in wanted {
        let product = ws
            .products
            .read(&w.product_id, |p| {
                p.exists()
                    .then(|| (p.name().to_owned(), p.seller_id().to_owned(), p.price()))
            })
            .await?;
        let Some((name, seller_id, price)) = product else {
            let unknown = OrderError::UnknownProduct {
                product_id: w.product_id,
            };
            return Err(AppError::Rejected(Rejection::of(&unknown)));
        };
        lines.push(OrderLine {
            product_id: w.product_id,
            seller_id,
            name,
            price,
            quantity: w.quantity,
        });
    }
    Ok(lines)
}

/// What a payment reads off the order after starting.
struct Run {
    status: OrderStatus,
    attempt: Option<String>,
    lines: Vec<OrderLine>,
    amount: i64,
    coupon_id: Option<String>,
    paid_amount: Option<i64>,
}

fn run_of(o: &Order) -> Run {
    Run {
        status: o.status(),
        attempt: o.attempt().map(str::to_owned),
        lines: o.lines().to_vec(),
        amount: o.amount(),
        coupon_id: o.coupon_id().map(str::to_owned),
        paid_amount: o.paid_amount(),
    }
}

/// Pays for an order. A copy of a payment under way waits for it and
/// answers the same; a paid order answers what it paid.
pub async fn pay(
    ws: &WriteSide,
    user_id: &str,
    order_id: &str,
    coupon_id: Option<String>,
    ctx: &CommandContext,
) -> Result<Paid, AppError> {
    let attempt = uuid::Uuid::now_v7().to_string();
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    let mut nap = Duration::from_millis(5);
    loop {
        let command = OrderCommand::StartPayment {
            actor: user_id.to_owned(),
            coupon_id: coupon_id.clone(),
            attempt: attempt.clone(),
            now: Utc::now(),
        };
        match ws.orders.execute(order_id, command, ctx, run_of).await {
            Ok(done) => {
                let run = done.output;
                if run.status == OrderStatus::Paid {
                    return answer(ws, user_id, order_id, run.paid_amount).await;
                }
                if run.attempt.as_deref() == Some(attempt.as_str()) {
                    return pay_run(ws, user_id, order_id, &attempt, run, ctx).await;
                }
                // another run started between our view and the command
            }
            Err(CommandError::Rejected(OrderError::PaymentRunning))
                if tokio::time::Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
        // a run is under way: its end answers this copy too
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(Duration::from_millis(100));
    }
}

async fn answer(
    ws: &WriteSide,
    user_id: &str,
    order_id: &str,
    paid_amount: Option<i64>,
) -> Result<Paid, AppError> {
    Ok(Paid {
        order_id: order_id.to_owned(),
        paid_amount: paid_amount.unwrap_or_default(),
        balance: payment::balance(ws, user_id, order_id).await?,
    })
}

/// The saga of one run.
async fn pay_run(
    ws: &WriteSide,
    user_id: &str,
    order_id: &str,
    attempt: &str,
    run: Run,
    ctx: &CommandContext,
) -> Result<Paid, AppError> {
    let mut lines = run.lines;
    lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    let now = Utc::now();

    // 1. the stock, all or nothing
    for (i, line) in lines.iter().enumerate() {
        let take = ProductCommand::Take {
            order_id: order_id.to_owned(),
            quantity: line.quantity,
            at: now,
        };
        if let Err(e) = ws
            .products
            .execute(&line.product_id, take, ctx, |_| ())
            .await
        {
            let refused: AppError = e.into();
            return_stock(ws, order_id, &lines[..i], ctx).await;
            abort(ws, order_id, attempt, &refused, ctx).await;
            return Err(refused);
        }
    }

    // 2. the coupon and the points
    let purchase = Purchase {
        user_id,
        reference: order_id,
        coupon_id: run.coupon_id.as_deref(),
        amount: run.amount,
    };
    let paid_amount = match payment::charge(ws, purchase, ctx).await {
        Ok(paid) => paid,
        Err(refused) => {
            return_stock(ws, order_id, &lines, ctx).await;
            abort(ws, order_id, attempt, &refused, ctx).await;
            return Err(refused);
        }
    };

    // 3. the order
    let complete = OrderCommand::CompletePayment {
        attempt: attempt.to_owned(),
        paid_amount,
        paid_at: Utc::now(),
    };
    if let Err(e) = ws.orders.execute(order_id, complete, ctx, |_| ()).await {
        // not this run's any more (the sweeper gave it up): give back
        let refused: AppError = e.into();
        payment::undo(
            ws,
            user_id,
            order_id,
            run.coupon_id.as_deref().into_iter(),
            ctx,
        )
        .await;
        return_stock(ws, order_id, &lines, ctx).await;
        return Err(refused);
    }
    if let Err(error) = ws.directory.settle_order(order_id).await {
        // only bookkeeping: the sweeper will find the order paid and settle it
        tracing::warn!(%error, order_id, "settling a paid order failed");
    }
    answer(ws, user_id, order_id, Some(paid_amount)).await
}

/// Gives back the stock an order took from these lines' products.
async fn give_stock_back(
    ws: &WriteSide,
    order_id: &str,
    lines: &[OrderLine],
    ctx: &CommandContext,
) -> Result<(), AppError> {
    for line in lines.iter().rev() {
        let back = ProductCommand::Return {
            order_id: order_id.to_owned(),
        };
        ws.products
            .execute(&line.product_id, back, ctx, |_| ())
            .await?;
    }
    Ok(())
}

/// [`give_stock_back`] inside a request: a failure is logged, and the
/// sweeper gives back again when the order is due.
async fn return_stock(ws: &WriteSide, order_id: &str, lines: &[OrderLine], ctx: &CommandContext) {
    if let Err(error) = give_stock_back(ws, order_id, lines, ctx).await {
        tracing::error!(%error, order_id, "giving stock back failed; the sweeper will retry");
    }
}

/// Ends a refused run: the order is payable again. A failure leaves the run
/// to stall, and the sweeper gives it up.
async fn abort(
    ws: &WriteSide,
    order_id: &str,
    attempt: &str,
    refused: &AppError,
    ctx: &CommandContext,
) {
    let command = OrderCommand::AbortPayment {
        attempt: attempt.to_owned(),
        reason: refused.code().unwrap_or("failed").to_owned(),
    };
    if let Err(error) = ws.orders.execute(order_id, command, ctx, |_| ()).await {
        tracing::error!(%error, order_id, "aborting a refused payment failed; the sweeper will finish it");
    }
}

/// Everything an order may hold, given back: its stock, its points and
/// every coupon a payment of it named. Safe to run any number of times.
async fn give_back_all(
    ws: &WriteSide,
    order_id: &str,
    order: &Order,
    ctx: &CommandContext,
) -> Result<(), AppError> {
    payment::give_back(
        ws,
        order.buyer_id(),
        order_id,
        order.coupons_tried().iter().map(String::as_str),
        ctx,
    )
    .await?;
    give_stock_back(ws, order_id, order.lines(), ctx).await
}

/// Cancels an order (buyer or admin); a paid one gives its stock, points
/// and coupon back. Returns the order's version.
pub async fn cancel(
    ws: &WriteSide,
    actor: &str,
    admin: bool,
    order_id: &str,
    ctx: &CommandContext,
) -> Result<u64, AppError> {
    let paid = ws
        .orders
        .read(order_id, |o| o.status() == OrderStatus::Paid)
        .await?;
    if paid {
        // back on the sweeper's list first: the giving back must finish
        // even if this process dies after the cancel
        ws.directory
            .reopen_order(order_id, Utc::now() + PAYMENT_STALE_AFTER)
            .await
            .map_err(state_failed)?;
    }
    let command = OrderCommand::Cancel {
        actor: actor.to_owned(),
        admin,
    };
    let done = ws
        .orders
        .execute(order_id, command, ctx, Clone::clone)
        .await?;
    let order = done.output;
    if order.paid_amount().is_some() {
        give_back_all(ws, order_id, &order, ctx).await?;
    }
    if let Err(error) = ws.directory.settle_order(order_id).await {
        tracing::warn!(%error, order_id, "settling a cancelled order failed");
    }
    Ok(done.version)
}

/// Looks at one due order: expires it unpaid, giving up a stalled run
/// first, then gives back whatever a run that died took; finishes a
/// cancel's giving back. The order's own decision comes first (the expiry
/// refuses while a live run pays), the giving back after it, so a payment
/// that starts at the last moment is never undone under its feet.
/// `Ok(true)` when the order owes nothing any more.
pub async fn settle(ws: &WriteSide, order_id: &str, now: DateTime<Utc>) -> Result<bool, AppError> {
    let ctx = CommandContext::new(tessera_events::SYSTEM_ACTOR, None);
    let order = ws.orders.read(order_id, Clone::clone).await?;
    let ended = match order.status() {
        OrderStatus::None | OrderStatus::Paid => return settled(ws, order_id).await,
        OrderStatus::Paying if !order.payment_stalled(now) => return Ok(false),
        OrderStatus::Paying | OrderStatus::Created => {
            if let Some(attempt) = order.attempt() {
                let give_up = OrderCommand::AbortPayment {
                    attempt: attempt.to_owned(),
                    reason: "stalled".to_owned(),
                };
                ws.orders.execute(order_id, give_up, &ctx, |_| ()).await?;
            }
            let done = ws
                .orders
                .execute(order_id, OrderCommand::Expire { now }, &ctx, Clone::clone)
                .await?;
            if done.output.status() != OrderStatus::Expired {
                return Ok(false); // not due yet, or a run started just now
            }
            done.output
        }
        OrderStatus::Cancelled | OrderStatus::Expired => order,
    };
    give_back_all(ws, order_id, &ended, &ctx).await?;
    settled(ws, order_id).await
}

async fn settled(ws: &WriteSide, order_id: &str) -> Result<bool, AppError> {
    ws.directory
        .settle_order(order_id)
        .await
        .map_err(state_failed)?;
    Ok(true)
}

/// One sweep: settles up to `limit` due orders. Returns how many.
pub async fn sweep(ws: &WriteSide, now: DateTime<Utc>, limit: usize) -> Result<usize, AppError> {
    let due = ws
        .directory
        .due_orders(now, limit)
        .await
        .map_err(state_failed)?;
    Ok(crate::background::settle_each(
        &due,
        "order",
        |o| o.order_id.as_str(),
        |o| settle(ws, &o.order_id, now),
    )
    .await)
}

/// Whether a rejection is the order's own (for tests and callers that
/// tell a refused payment from a gone order).
pub fn is_order_gone(e: &AppError) -> bool {
    matches!(e.code(), Some(code) if code == OrderError::Expired.code() || code == OrderError::Cancelled.code())
}
