use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Events of the `coupon` aggregate: a first-come-first-served campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CouponEvent {
    CouponCreated {
        name: String,
        total_quantity: u32,
        discount_amount: i64,
    },
    /// `issued` is the running count; name and discount travel along, so
    /// readers need no earlier state.
    CouponIssued {
        user_id: String,
        issued: u32,
        name: String,
        discount_amount: i64,
    },
    CouponUsed {
        user_id: String,
        reservation_id: String,
    },
    /// A use given back (the payment it was for did not complete).
    CouponReleased {
        user_id: String,
        reservation_id: String,
    },
}

event_kind!(CouponEvent: aggregate::COUPON, version "1.0" {
    CouponCreated,
    CouponIssued,
    CouponUsed,
    CouponReleased,
});
