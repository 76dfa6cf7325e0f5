//! An order (seed 001): its lines with prices fixed at creation, and the
//! one way it ends: paid, cancelled or expired, never two of them.
//!
//! The payment is a saga (like a reservation's). The order first records
//! that it started; the steps run on their own aggregates, each keyed by
//! the order (take every line's stock, use the coupon, debit the points);
//! then the order is paid, or the steps are compensated and the payment is
//! aborted. While a payment runs, neither a cancel nor the expiry can end
//! the order: the sweeper finishes or compensates a payment a crash left
//! half done, then the order expires. A cancelled paid order says what it
//! gives back (its stock, and the points paid), once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, OrderEvent, OrderLine};

use super::product::limits::QUANTITY;
use super::{impl_aggregate, limits as common, name_ok, DomainError, ErrorKind};

/// Lines of one order (API.md "Shop").
pub const LINES: (usize, usize) = (1, 20);

/// How long a running payment keeps others off: after it, the payment is
/// taken to have died with its process and may be taken over (a retry) or
/// compensated (the sweeper). Twice the request timeout
/// (`TESSERA_REQUEST_TIMEOUT_SECONDS`, 30 s), which ends every request's
/// saga, so a live payment is never taken over.
pub const PAYMENT_STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    Create {
        buyer_id: String,
        lines: Vec<OrderLine>,
        idempotency_key: String,
        expires_at: DateTime<Utc>,
    },
    /// Starts a payment run named `attempt`, takes over a stalled one, or
    /// changes nothing when the order is paid already.
    StartPayment {
        actor: String,
        coupon_id: Option<String>,
        attempt: String,
        now: DateTime<Utc>,
    },
    CompletePayment {
        attempt: String,
        paid_amount: i64,
        paid_at: DateTime<Utc>,
    },
    AbortPayment {
        attempt: String,
        reason: String,
    },
    Cancel {
        actor: String,
        admin: bool,
    },
    Expire {
        now: DateTime<Utc>,
    },
}

super::named!(OrderCommand {
    Create,
    StartPayment,
    CompletePayment,
    AbortPayment,
    Cancel,
    Expire
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    NotFound,
    #[error("this order belongs to someone else")]
    NotBuyer,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
    #[error("the order has been cancelled")]
    Cancelled,
    #[error("the order expired unpaid")]
    Expired,
    #[error("the order is paid")]
    AlreadyPaid,
    #[error("a payment of this order is running")]
    PaymentRunning,
    #[error("no payment of this order is running")]
    NoPaymentRunning,
    #[error("no product {product_id}")]
    UnknownProduct { product_id: String },
}

impl DomainError for OrderError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::UnknownProduct { .. } => ErrorKind::NotFound,
            Self::NotBuyer => ErrorKind::Forbidden,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::Cancelled | Self::AlreadyPaid | Self::PaymentRunning | Self::NoPaymentRunning => {
                ErrorKind::Conflict
            }
            Self::Expired => ErrorKind::Unprocessable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::UnknownProduct { .. } => "not_found",
            Self::NotBuyer => "forbidden",
            Self::Invalid { .. } => "invalid_input",
            Self::Cancelled => "order_cancelled",
            Self::Expired => "order_expired",
            Self::AlreadyPaid => "already_paid",
            Self::PaymentRunning => "payment_in_progress",
            Self::NoPaymentRunning => "conflict",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::UnknownProduct { product_id } => {
                serde_json::json!({ "field": "items", "product_id": product_id })
            }
            _ => serde_json::Value::Null,
        }
    }
}

/// Where an order stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    #[default]
    None,
    Created,
    Paying,
    Paid,
    Cancelled,
    Expired,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    status: OrderStatus,
    buyer_id: String,
    lines: Vec<OrderLine>,
    amount: i64,
    idempotency_key: String,
    expires_at: Option<DateTime<Utc>>,
    coupon_id: Option<String>,
    paid_amount: Option<i64>,
    /// The payment run under way and when it started.
    attempt: Option<(String, DateTime<Utc>)>,
    /// Every coupon a payment of this order named: what a compensation
    /// gives back.
    coupons_tried: Vec<String>,
    /// Events applied: the order's version.
    version: u64,
}

impl Order {
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    /// The sequence of the order's last event.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn buyer_id(&self) -> &str {
        &self.buyer_id
    }

    /// The coupon of the payment under way, or of the paid order.
    pub fn coupon_id(&self) -> Option<&str> {
        self.coupon_id.as_deref()
    }

    pub fn coupons_tried(&self) -> &[String] {
        &self.coupons_tried
    }

    pub fn paid_amount(&self) -> Option<i64> {
        self.paid_amount
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// The payment run under way.
    pub fn attempt(&self) -> Option<&str> {
        self.attempt.as_ref().map(|(a, _)| a.as_str())
    }

    /// A payment is under way and has run longer than any request can.
    pub fn payment_stalled(&self, now: DateTime<Utc>) -> bool {
        self.status == OrderStatus::Paying
            && self
                .attempt
                .as_ref()
                .is_some_and(|(_, started)| now - *started >= PAYMENT_STALE_AFTER)
    }

    /// The bounds of a request, as its schema gives them: 1..=20 items of
    /// 1..=100 units each, product ids of 1..=64 characters with no control
    /// character (a NUL is no id, and PostgreSQL cannot even look it up), an
    /// idempotency key of 1..=128 characters.
    pub fn check_shape<'a>(
        count: usize,
        items: impl Iterator<Item = (&'a str, u32)>,
        idempotency_key: &str,
    ) -> Result<(), OrderError> {
        let (min, max) = common::IDEMPOTENCY_KEY;
        if !name_ok(idempotency_key, min, max) {
            return Err(OrderError::Invalid {
                field: "idempotency_key",
            });
        }
        if !(LINES.0..=LINES.1).contains(&count) {
            return Err(OrderError::Invalid { field: "items" });
        }
        for (product_id, quantity) in items {
            if !name_ok(product_id, 1, 64) {
                return Err(OrderError::Invalid {
                    field: "product_id",
                });
            }
            if !(QUANTITY.0..=QUANTITY.1).contains(&quantity) {
                return Err(OrderError::Invalid { field: "quantity" });
            }
        }
        Ok(())
    }

    /// The bounds of an order's lines: [`check_shape`](Self::check_shape),
    /// and each product once.
    pub fn check_request<'a>(
        items: impl ExactSizeIterator<Item = (&'a str, u32)> + Clone,
        idempotency_key: &str,
    ) -> Result<(), OrderError> {
        Self::check_shape(items.len(), items.clone(), idempotency_key)?;
        let mut products: Vec<&str> = items.map(|(p, _)| p).collect();
        let count = products.len();
        products.sort_unstable();
        products.dedup();
        if products.len() != count {
            return Err(OrderError::Invalid { field: "items" });
        }
        Ok(())
    }

    fn create(
        &self,
        buyer_id: String,
        lines: Vec<OrderLine>,
        idempotency_key: String,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<OrderEvent>, OrderError> {
        if self.status != OrderStatus::None {
            // the order id comes from the buyer and the key: a retry
            return Ok(None);
        }
        Self::check_request(
            lines.iter().map(|l| (l.product_id.as_str(), l.quantity)),
            &idempotency_key,
        )?;
        // at most 20 lines of 100 units of 10,000,000: no overflow
        let amount = lines.iter().map(|l| l.price * i64::from(l.quantity)).sum();
        Ok(Some(OrderEvent::OrderCreated {
            buyer_id,
            lines,
            amount,
            idempotency_key,
            expires_at,
        }))
    }

    /// Why the order cannot start a payment (or end), if it cannot.
    fn ended(&self) -> Result<(), OrderError> {
        match self.status {
            OrderStatus::None => Err(OrderError::NotFound),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
            OrderStatus::Expired => Err(OrderError::Expired),
            OrderStatus::Created | OrderStatus::Paying | OrderStatus::Paid => Ok(()),
        }
    }

    fn decide(&self, command: OrderCommand) -> Result<Option<OrderEvent>, OrderError> {
        let event = match command {
            OrderCommand::Create {
                buyer_id,
                lines,
                idempotency_key,
                expires_at,
            } => return self.create(buyer_id, lines, idempotency_key, expires_at),
            OrderCommand::StartPayment {
                actor,
                coupon_id,
                attempt,
                now,
            } => {
                self.ended()?;
                if actor != self.buyer_id {
                    return Err(OrderError::NotBuyer);
                }
                match self.status {
                    // a repeated payment answers what the first one paid
                    OrderStatus::Paid => return Ok(None),
                    // a stalled run is finished by a new one, with the
                    // coupon it may have used already
                    OrderStatus::Paying if self.payment_stalled(now) => {
                        OrderEvent::PaymentStarted {
                            attempt,
                            coupon_id: self.coupon_id.clone(),
                            started_at: now,
                        }
                    }
                    OrderStatus::Paying => return Err(OrderError::PaymentRunning),
                    _ if self.expires_at.is_some_and(|t| now >= t) => {
                        return Err(OrderError::Expired)
                    }
                    _ => OrderEvent::PaymentStarted {
                        attempt,
                        coupon_id,
                        started_at: now,
                    },
                }
            }
            OrderCommand::CompletePayment {
                attempt,
                paid_amount,
                paid_at,
            } => match self.status {
                OrderStatus::Paying if self.attempt() == Some(attempt.as_str()) => {
                    let mut seller_ids: Vec<String> =
                        self.lines.iter().map(|l| l.seller_id.clone()).collect();
                    seller_ids.sort_unstable();
                    seller_ids.dedup();
                    OrderEvent::OrderPaid {
                        paid_amount,
                        paid_at,
                        buyer_id: Some(self.buyer_id.clone()),
                        seller_ids,
                    }
                }
                OrderStatus::Paid => return Ok(None),
                _ => return Err(OrderError::NoPaymentRunning),
            },
            OrderCommand::AbortPayment { attempt, reason } => match self.status {
                OrderStatus::Paying if self.attempt() == Some(attempt.as_str()) => {
                    OrderEvent::PaymentAborted { reason }
                }
                _ => return Ok(None), // not this run's any more: a compensation retried
            },
            OrderCommand::Cancel { actor, admin } => {
                if self.status == OrderStatus::None {
                    return Err(OrderError::NotFound);
                }
                if actor != self.buyer_id && !admin {
                    return Err(OrderError::NotBuyer);
                }
                if self.status == OrderStatus::Cancelled {
                    return Ok(None);
                }
                self.ended()?;
                match self.status {
                    OrderStatus::Paying => return Err(OrderError::PaymentRunning),
                    _ => OrderEvent::OrderCancelled {
                        by: actor,
                        refund: self.paid_amount,
                    },
                }
            }
            OrderCommand::Expire { now } => match self.status {
                OrderStatus::Created if self.expires_at.is_some_and(|t| now >= t) => {
                    OrderEvent::OrderExpired
                }
                // paid, ended, not due yet, or a payment the sweeper must
                // finish or compensate first
                _ => return Ok(None),
            },
        };
        Ok(Some(event))
    }

    fn evolve(&mut self, event: OrderEvent) {
        self.version += 1;
        match event {
            OrderEvent::OrderCreated {
                buyer_id,
                lines,
                amount,
                idempotency_key,
                expires_at,
            } => {
                self.status = OrderStatus::Created;
                self.buyer_id = buyer_id;
                self.lines = lines;
                self.amount = amount;
                self.idempotency_key = idempotency_key;
                self.expires_at = Some(expires_at);
            }
            OrderEvent::PaymentStarted {
                attempt,
                coupon_id,
                started_at,
            } => {
                self.status = OrderStatus::Paying;
                self.attempt = Some((attempt, started_at));
                if let Some(c) = &coupon_id {
                    if !self.coupons_tried.contains(c) {
                        self.coupons_tried.push(c.clone());
                    }
                }
                self.coupon_id = coupon_id;
            }
            OrderEvent::PaymentAborted { .. } => {
                self.status = OrderStatus::Created;
                self.attempt = None;
                self.coupon_id = None;
            }
            OrderEvent::OrderPaid { paid_amount, .. } => {
                self.status = OrderStatus::Paid;
                self.attempt = None;
                self.paid_amount = Some(paid_amount);
            }
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
            OrderEvent::OrderExpired => self.status = OrderStatus::Expired,
        }
    }
}

impl_aggregate!(Order: aggregate::ORDER, OrderCommand => OrderEvent, OrderError);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::testkit::{self, recorded as expect};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap()
    }

    fn given(events: Vec<OrderEvent>) -> cqrs_es::test::AggregateTestExecutor<Order> {
        testkit::given((), events)
    }

    fn line(product: &str, price: i64, quantity: u32) -> OrderLine {
        OrderLine {
            product_id: product.into(),
            seller_id: "sam".into(),
            name: format!("{product} name"),
            price,
            quantity,
        }
    }

    fn create(lines: Vec<OrderLine>) -> OrderCommand {
        OrderCommand::Create {
            buyer_id: "bo".into(),
            lines,
            idempotency_key: "k1".into(),
            expires_at: at(15),
        }
    }

    fn created() -> OrderEvent {
        OrderEvent::OrderCreated {
            buyer_id: "bo".into(),
            lines: vec![line("p1", 500, 2), line("p2", 300, 1)],
            amount: 1300,
            idempotency_key: "k1".into(),
            expires_at: at(15),
        }
    }

    fn start(actor: &str, minute: u32) -> OrderCommand {
        OrderCommand::StartPayment {
            actor: actor.into(),
            coupon_id: None,
            attempt: format!("a{minute}"),
            now: at(minute),
        }
    }

    fn started() -> OrderEvent {
        started_at(1)
    }

    fn started_at(minute: u32) -> OrderEvent {
        OrderEvent::PaymentStarted {
            attempt: format!("a{minute}"),
            coupon_id: None,
            started_at: at(minute),
        }
    }

    fn paid() -> OrderEvent {
        OrderEvent::OrderPaid {
            paid_amount: 1300,
            paid_at: at(5),
            buyer_id: Some("bo".into()),
            seller_ids: vec!["sam".into()],
        }
    }

    #[test]
    fn prices_are_fixed_at_creation_and_a_retried_creation_changes_nothing() {
        given(vec![])
            .when(create(vec![line("p1", 500, 2), line("p2", 300, 1)]))
            .then_expect_events(expect(vec![created()]));
        given(vec![created()])
            .when(create(vec![line("p1", 999, 1)]))
            .then_expect_events(vec![]);
    }

    #[test]
    fn lines_and_quantities_are_bounded() {
        let many: Vec<OrderLine> = (0..21).map(|i| line(&format!("p{i}"), 1, 1)).collect();
        for (lines, field) in [
            (vec![], "items"),
            (many, "items"),
            (vec![line("p1", 1, 1), line("p1", 1, 2)], "items"),
            (vec![line("p1", 1, 0)], "quantity"),
            (vec![line("p1", 1, 101)], "quantity"),
            (vec![line("a\u{0}b", 1, 1)], "product_id"),
            (vec![line("", 1, 1)], "product_id"),
            (vec![line(&"p".repeat(65), 1, 1)], "product_id"),
        ] {
            given(vec![])
                .when(create(lines))
                .then_expect_error(OrderError::Invalid { field });
        }
    }

    #[test]
    fn only_the_buyer_pays_before_the_order_expires_and_one_payment_runs_at_a_time() {
        given(vec![created()])
            .when(start("bo", 1))
            .then_expect_events(expect(vec![started()]));
        given(vec![created()])
            .when(start("eve", 1))
            .then_expect_error(OrderError::NotBuyer);
        given(vec![created()])
            .when(start("bo", 15))
            .then_expect_error(OrderError::Expired);
        // a second payment waits for the first; a paid order answers as paid
        given(vec![created(), started()])
            .when(start("bo", 1))
            .then_expect_error(OrderError::PaymentRunning);
        given(vec![created(), started(), paid()])
            .when(start("bo", 20))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_stalled_payment_is_taken_over_with_its_coupon_and_only_its_run_finishes_it() {
        let with_coupon = OrderEvent::PaymentStarted {
            attempt: "a1".into(),
            coupon_id: Some("c1".into()),
            started_at: at(1),
        };
        given(vec![created(), with_coupon.clone()])
            .when(start("bo", 2))
            .then_expect_events(expect(vec![OrderEvent::PaymentStarted {
                attempt: "a2".into(),
                coupon_id: Some("c1".into()),
                started_at: at(2),
            }]));
        let complete = |attempt: &str| OrderCommand::CompletePayment {
            attempt: attempt.into(),
            paid_amount: 1300,
            paid_at: at(5),
        };
        given(vec![created(), started()])
            .when(complete("a1"))
            .then_expect_events(expect(vec![paid()]));
        given(vec![created(), started(), started_at(3)])
            .when(complete("a1"))
            .then_expect_error(OrderError::NoPaymentRunning);
        given(vec![created(), started(), started_at(3)])
            .when(OrderCommand::AbortPayment {
                attempt: "a1".into(),
                reason: "out_of_stock".into(),
            })
            .then_expect_events(vec![]);
        given(vec![created(), started(), paid()])
            .when(complete("a1"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn payment_cancel_and_expiry_exclude_each_other() {
        let cancel = |actor: &str| OrderCommand::Cancel {
            actor: actor.into(),
            admin: false,
        };
        let expire = OrderCommand::Expire { now: at(30) };
        // a running payment holds both off
        given(vec![created(), started()])
            .when(cancel("bo"))
            .then_expect_error(OrderError::PaymentRunning);
        given(vec![created(), started()])
            .when(expire.clone())
            .then_expect_events(vec![]);
        // a paid order does not expire, and a cancelled or expired one is
        // not paid
        given(vec![created(), started(), paid()])
            .when(expire.clone())
            .then_expect_events(vec![]);
        let cancelled = OrderEvent::OrderCancelled {
            by: "bo".into(),
            refund: None,
        };
        given(vec![created(), cancelled.clone()])
            .when(start("bo", 1))
            .then_expect_error(OrderError::Cancelled);
        given(vec![created(), OrderEvent::OrderExpired])
            .when(start("bo", 1))
            .then_expect_error(OrderError::Expired);
        given(vec![created(), OrderEvent::OrderExpired])
            .when(cancel("bo"))
            .then_expect_error(OrderError::Expired);
        // an unpaid order expires when due, not before
        given(vec![created()])
            .when(OrderCommand::Expire { now: at(14) })
            .then_expect_events(vec![]);
        given(vec![created()])
            .when(expire)
            .then_expect_events(expect(vec![OrderEvent::OrderExpired]));
        // an aborted payment leaves the order payable again
        given(vec![
            created(),
            started(),
            OrderEvent::PaymentAborted {
                reason: "insufficient_points".into(),
            },
        ])
        .when(start("bo", 3))
        .then_expect_events(expect(vec![started_at(3)]));
    }

    #[test]
    fn a_cancelled_paid_order_gives_back_what_was_paid_once() {
        let cancel = OrderCommand::Cancel {
            actor: "bo".into(),
            admin: false,
        };
        let refunded = OrderEvent::OrderCancelled {
            by: "bo".into(),
            refund: Some(1300),
        };
        given(vec![created(), started(), paid()])
            .when(cancel.clone())
            .then_expect_events(expect(vec![refunded.clone()]));
        given(vec![created(), started(), paid(), refunded.clone()])
            .when(cancel)
            .then_expect_events(vec![]);
        given(vec![created(), started(), paid(), refunded])
            .when(OrderCommand::Cancel {
                actor: "eve".into(),
                admin: false,
            })
            .then_expect_error(OrderError::NotBuyer);
        given(vec![created()])
            .when(OrderCommand::Cancel {
                actor: "eve".into(),
                admin: false,
            })
            .then_expect_error(OrderError::NotBuyer);
        given(vec![created()])
            .when(OrderCommand::Cancel {
                actor: "root".into(),
                admin: true,
            })
            .then_expect_events(expect(vec![OrderEvent::OrderCancelled {
                by: "root".into(),
                refund: None,
            }]));
    }
}
