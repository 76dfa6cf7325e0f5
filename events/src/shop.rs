use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Events of the `product` aggregate: something a user sells (C2C), its
/// stock, and the units orders took from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum ProductEvent {
    ProductListed {
        seller_id: String,
        name: String,
        description: Option<String>,
        price: i64,
        stock: u32,
    },
    /// The whole new name, description and price, not a patch.
    ProductEdited {
        name: String,
        description: Option<String>,
        price: i64,
    },
    /// `stock` is the stock after it.
    ProductRestocked { quantity: u32, stock: u32 },
    /// An order's units, taken at its payment.
    StockTaken {
        order_id: String,
        quantity: u32,
        stock: u32,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The units of an order given back (a refused payment, a cancel);
    /// `taken_at` says when they were taken, so that a day's sales count
    /// can give them back.
    StockReturned {
        order_id: String,
        quantity: u32,
        stock: u32,
        taken_at: chrono::DateTime<chrono::Utc>,
    },
}

event_kind!(ProductEvent: aggregate::PRODUCT, version "1.0" {
    ProductListed,
    ProductEdited,
    ProductRestocked,
    StockTaken,
    StockReturned,
});

/// A line of an order, its price fixed when the order is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderLine {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub price: i64,
    pub quantity: u32,
}

/// Events of the `order` aggregate. Its payment is a saga: the order marks
/// it started, the steps (stock, coupon, points) run on their aggregates
/// keyed by the order, then the order is paid or the payment is given up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum OrderEvent {
    OrderCreated {
        buyer_id: String,
        lines: Vec<OrderLine>,
        amount: i64,
        idempotency_key: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// `attempt` names this run of the saga: only it may finish it. A
    /// payment that stalled (its process died) is taken over by a new
    /// attempt with the coupon it recorded.
    PaymentStarted {
        attempt: String,
        coupon_id: Option<String>,
        started_at: chrono::DateTime<chrono::Utc>,
    },
    /// The steps were compensated: the order can be paid again. `reason`
    /// is the refusal's error code.
    PaymentAborted {
        reason: String,
    },
    /// `buyer_id` and `seller_ids` (sorted, each once): whom the payment
    /// notifies (since 1.1; `null` and empty in older events).
    OrderPaid {
        paid_amount: i64,
        paid_at: chrono::DateTime<chrono::Utc>,
        buyer_id: Option<String>,
        seller_ids: Vec<String>,
    },
    /// `refund`: the points a paid order gives back (its stock goes back too).
    OrderCancelled {
        by: String,
        refund: Option<i64>,
    },
    OrderExpired,
}

event_kind!(OrderEvent: aggregate::ORDER, version "1.1" {
    OrderCreated,
    PaymentStarted,
    PaymentAborted,
    OrderPaid,
    OrderCancelled,
    OrderExpired,
});
