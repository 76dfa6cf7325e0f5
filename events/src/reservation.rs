use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{aggregate, event_kind};

/// Events of the `concert` aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum ConcertEvent {
    ConcertCreated { name: String },
}

event_kind!(ConcertEvent: aggregate::CONCERT, version "1.0" {
    ConcertCreated,
});

/// A seat of a schedule and its price in points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeatSpec {
    pub seat_no: u32,
    pub price: i64,
}

/// Events of the `schedule` aggregate: one performance, its seat map, and
/// every hold (reservation) on it. Holding is decided here, so a seat can
/// never be held or sold twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum ScheduleEvent {
    ScheduleCreated {
        concert_id: String,
        starts_at: DateTime<Utc>,
        seats: Vec<SeatSpec>,
    },
    SeatsHeld {
        reservation_id: String,
        user_id: String,
        seat_nos: Vec<u32>,
        amount: i64,
        expires_at: DateTime<Utc>,
    },
    HoldPaid {
        reservation_id: String,
        user_id: String,
        paid_amount: i64,
        coupon_id: Option<String>,
    },
    HoldCancelled {
        reservation_id: String,
        user_id: String,
        seat_nos: Vec<u32>,
        by: String,
    },
    HoldExpired {
        reservation_id: String,
        user_id: String,
        seat_nos: Vec<u32>,
    },
}

event_kind!(ScheduleEvent: aggregate::SCHEDULE, version "1.0" {
    ScheduleCreated,
    SeatsHeld,
    HoldPaid,
    HoldCancelled,
    HoldExpired,
});
