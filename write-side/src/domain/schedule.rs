//! The `schedule` aggregate: one performance of a concert, its seat map and
//! every hold on it. Holding, paying, cancelling and expiring all go through
//! here, so a seat is never held or sold twice, and a hold is either paid or
//! expired, never both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, ScheduleEvent, SeatSpec};

use super::{impl_aggregate, DomainError, ErrorKind, FactUnavailable};

super::named!(ScheduleCommand {
    Create,
    Hold,
    Pay,
    Cancel,
    Expire
});

/// Seats per hold (API.md).
pub const SEATS_PER_HOLD: (usize, usize) = (1, 4);
/// Seats per schedule and price bounds.
pub const MAX_SEATS: usize = 10_000;
pub const MAX_PRICE: i64 = 1_000_000;

/// Facts from other aggregates that schedule decisions need.
#[async_trait]
pub trait ScheduleServices: Send + Sync {
    async fn concert_exists(&self, concert_id: &str) -> Result<bool, FactUnavailable>;
}

pub type ScheduleServicesRef = Arc<dyn ScheduleServices>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleCommand {
    Create {
        concert_id: String,
        starts_at: DateTime<Utc>,
        seats: Vec<SeatSpec>,
    },
    Hold {
        reservation_id: String,
        user_id: String,
        seat_nos: Vec<u32>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Pay {
        reservation_id: String,
        user_id: String,
        paid_amount: i64,
        coupon_id: Option<String>,
        now: DateTime<Utc>,
    },
    Cancel {
        reservation_id: String,
        actor: String,
        as_admin: bool,
    },
    Expire {
        reservation_id: String,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule not found")]
    NotFound,
    #[error("schedule already exists")]
    AlreadyExists,
    #[error("concert not found")]
    ConcertNotFound,
    #[error("{field} is invalid")]
    Invalid { field: &'static str },
    #[error("seat {0} is not in this schedule")]
    UnknownSeat(u32),
    #[error("seats {0:?} are held or sold")]
    SeatUnavailable(Vec<u32>),
    #[error("reservation not found")]
    ReservationNotFound,
    #[error("this reservation belongs to someone else")]
    NotYours,
    #[error("the hold has expired")]
    HoldExpired,
    #[error("the reservation was cancelled")]
    Cancelled,
    #[error("the reservation is already paid")]
    AlreadyPaid,
    #[error("the hold has not expired yet")]
    NotExpiredYet,
    #[error(transparent)]
    Unavailable(FactUnavailable),
}

impl DomainError for ScheduleError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::ConcertNotFound | Self::ReservationNotFound => {
                ErrorKind::NotFound
            }
            Self::AlreadyExists
            | Self::SeatUnavailable(_)
            | Self::Cancelled
            | Self::AlreadyPaid
            | Self::NotExpiredYet => ErrorKind::Conflict,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::UnknownSeat(_) | Self::HoldExpired => ErrorKind::Unprocessable,
            Self::NotYours => ErrorKind::Forbidden,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::ReservationNotFound => "not_found",
            Self::ConcertNotFound => "concert_not_found",
            Self::AlreadyExists | Self::NotExpiredYet => "conflict",
            Self::Invalid { .. } => "invalid_input",
            Self::UnknownSeat(_) => "unknown_seat",
            Self::SeatUnavailable(_) => "seat_unavailable",
            Self::NotYours => "forbidden",
            Self::HoldExpired => "hold_expired",
            Self::Cancelled => "reservation_cancelled",
            Self::AlreadyPaid => "already_paid",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::UnknownSeat(seat) => serde_json::json!({ "seat_no": seat }),
            Self::SeatUnavailable(seats) => serde_json::json!({ "seat_nos": seats }),
            _ => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    Held,
    Paid,
    Cancelled,
    Expired,
}

/// A hold as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub user_id: String,
    pub seat_nos: Vec<u32>,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    pub status: HoldStatus,
    pub paid_amount: Option<i64>,
    pub coupon_id: Option<String>,
}

impl Hold {
    /// Held and not past its expiry at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.status == HoldStatus::Held && now < self.expires_at
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    created: bool,
    concert_id: String,
    starts_at: Option<DateTime<Utc>>,
    prices: BTreeMap<u32, i64>,
    holds: HashMap<String, Hold>,
    /// seat -> the reservation that holds or bought it
    taken: BTreeMap<u32, String>,
}

impl Schedule {
    pub fn exists(&self) -> bool {
        self.created
    }

    pub fn concert_id(&self) -> &str {
        &self.concert_id
    }

    /// Why holding `seat_nos` at `now` would be refused, if it would: the
    /// same decision as the hold command's, so a caller can answer a crowd
    /// racing for taken seats from the state it read, with no index entry
    /// written and undone for each of them.
    pub fn refuses_hold(&self, seat_nos: &[u32], now: DateTime<Utc>) -> Option<ScheduleError> {
        self.decide_hold(String::new(), String::new(), seat_nos, now, now)
            .err()
    }

    pub fn hold(&self, reservation_id: &str) -> Option<&Hold> {
        self.holds.get(reservation_id)
    }

    fn hold_of(&self, reservation_id: &str) -> Result<&Hold, ScheduleError> {
        self.holds
            .get(reservation_id)
            .ok_or(ScheduleError::ReservationNotFound)
    }

    fn check_seats(seats: &[SeatSpec]) -> Result<(), ScheduleError> {
        let invalid = ScheduleError::Invalid { field: "seats" };
        if seats.is_empty() || seats.len() > MAX_SEATS {
            return Err(invalid);
        }
        let mut seen = BTreeSet::new();
        for s in seats {
            if s.seat_no == 0 || !seen.insert(s.seat_no) || !(0..=MAX_PRICE).contains(&s.price) {
                return Err(invalid);
            }
        }
        Ok(())
    }

    async fn decide(
        &self,
        command: ScheduleCommand,
        services: &ScheduleServicesRef,
    ) -> Result<Vec<ScheduleEvent>, ScheduleError> {
        if let ScheduleCommand::Create {
            concert_id,
            starts_at,
            seats,
        } = command
        {
            if self.created {
                return Err(ScheduleError::AlreadyExists);
            }
            Self::check_seats(&seats)?;
            if !services
                .concert_exists(&concert_id)
                .await
                .map_err(ScheduleError::Unavailable)?
            {
                return Err(ScheduleError::ConcertNotFound);
            }
            return Ok(vec![ScheduleEvent::ScheduleCreated {
                concert_id,
                starts_at,
                seats,
            }]);
        }
        if !self.created {
            return Err(ScheduleError::NotFound);
        }
        match command {
            ScheduleCommand::Create { .. } => Err(ScheduleError::AlreadyExists),
            ScheduleCommand::Hold {
                reservation_id,
                user_id,
                seat_nos,
                now,
                expires_at,
            } => self.decide_hold(reservation_id, user_id, &seat_nos, now, expires_at),
            ScheduleCommand::Pay {
                reservation_id,
                user_id,
                paid_amount,
                coupon_id,
                now,
            } => {
                let hold = self.hold_of(&reservation_id)?;
                if hold.user_id != user_id {
                    return Err(ScheduleError::NotYours);
                }
                match hold.status {
                    HoldStatus::Paid => Ok(vec![]), // a retried payment pays once
                    HoldStatus::Cancelled => Err(ScheduleError::Cancelled),
                    HoldStatus::Expired => Err(ScheduleError::HoldExpired),
                    HoldStatus::Held if now >= hold.expires_at => Err(ScheduleError::HoldExpired),
                    HoldStatus::Held => {
                        if !(0..=hold.amount).contains(&paid_amount) {
                            return Err(ScheduleError::Invalid {
                                field: "paid_amount",
                            });
                        }
                        Ok(vec![ScheduleEvent::HoldPaid {
                            reservation_id,
                            user_id,
                            paid_amount,
                            coupon_id,
                        }])
                    }
                }
            }
            ScheduleCommand::Cancel {
                reservation_id,
                actor,
                as_admin,
            } => {
                let hold = self.hold_of(&reservation_id)?;
                if hold.user_id != actor && !as_admin {
                    return Err(ScheduleError::NotYours);
                }
                match hold.status {
                    HoldStatus::Cancelled => Ok(vec![]),
                    HoldStatus::Expired => Err(ScheduleError::HoldExpired),
                    HoldStatus::Held | HoldStatus::Paid => Ok(vec![ScheduleEvent::HoldCancelled {
                        user_id: hold.user_id.clone(),
                        seat_nos: hold.seat_nos.clone(),
                        reservation_id,
                        by: actor,
                    }]),
                }
            }
            ScheduleCommand::Expire {
                reservation_id,
                now,
            } => {
                let hold = self.hold_of(&reservation_id)?;
                match hold.status {
                    HoldStatus::Held if now >= hold.expires_at => {
                        Ok(vec![ScheduleEvent::HoldExpired {
                            user_id: hold.user_id.clone(),
                            seat_nos: hold.seat_nos.clone(),
                            reservation_id,
                        }])
                    }
                    HoldStatus::Held => Err(ScheduleError::NotExpiredYet),
                    HoldStatus::Paid => Err(ScheduleError::AlreadyPaid),
                    HoldStatus::Cancelled => Err(ScheduleError::Cancelled),
                    HoldStatus::Expired => Ok(vec![]),
                }
            }
        }
    }

    /// All or nothing: every seat must be free. A seat whose hold has run
    /// out is free; its expiry is recorded in the same commit.
    fn decide_hold(
        &self,
        reservation_id: String,
        user_id: String,
        seat_nos: &[u32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<ScheduleEvent>, ScheduleError> {
        let distinct: BTreeSet<u32> = seat_nos.iter().copied().collect();
        let (min, max) = SEATS_PER_HOLD;
        if !(min..=max).contains(&seat_nos.len()) || distinct.len() != seat_nos.len() {
            return Err(ScheduleError::Invalid { field: "seat_nos" });
        }
        if self.holds.contains_key(&reservation_id) {
            return Err(ScheduleError::Invalid {
                field: "reservation_id",
            });
        }
        let mut amount = 0;
        let mut stale = BTreeMap::new();
        let mut unavailable = Vec::new();
        for seat in &distinct {
            amount += self
                .prices
                .get(seat)
                .ok_or(ScheduleError::UnknownSeat(*seat))?;
            if let Some(holder) = self.taken.get(seat) {
                match self.holds.get(holder) {
                    Some(h) if h.status == HoldStatus::Held && now >= h.expires_at => {
                        stale.insert(holder.clone(), (h.user_id.clone(), h.seat_nos.clone()));
                    }
                    _ => unavailable.push(*seat),
                }
            }
        }
        if !unavailable.is_empty() {
            return Err(ScheduleError::SeatUnavailable(unavailable));
        }
        let mut events: Vec<ScheduleEvent> = stale
            .into_iter()
            .map(
                |(reservation_id, (user_id, seat_nos))| ScheduleEvent::HoldExpired {
                    reservation_id,
                    user_id,
                    seat_nos,
                },
            )
            .collect();
        events.push(ScheduleEvent::SeatsHeld {
            reservation_id,
            user_id,
            seat_nos: distinct.into_iter().collect(),
            amount,
            expires_at,
        });
        Ok(events)
    }

    fn release(&mut self, reservation_id: &str) {
        self.taken.retain(|_, holder| holder != reservation_id);
    }

    fn set_status(&mut self, reservation_id: &str, status: HoldStatus) {
        if let Some(h) = self.holds.get_mut(reservation_id) {
            h.status = status;
        }
    }
}

impl_aggregate!(Schedule: aggregate::SCHEDULE, ScheduleCommand => ScheduleEvent, ScheduleError, services ScheduleServicesRef);

impl Schedule {
    fn evolve(&mut self, event: ScheduleEvent) {
        match event {
            ScheduleEvent::ScheduleCreated {
                concert_id,
                starts_at,
                seats,
            } => {
                self.created = true;
                self.concert_id = concert_id;
                self.starts_at = Some(starts_at);
                self.prices = seats.into_iter().map(|s| (s.seat_no, s.price)).collect();
            }
            ScheduleEvent::SeatsHeld {
                reservation_id,
                user_id,
                seat_nos,
                amount,
                expires_at,
            } => {
                for seat in &seat_nos {
                    self.taken.insert(*seat, reservation_id.clone());
                }
                self.holds.insert(
                    reservation_id,
                    Hold {
                        user_id,
                        seat_nos,
                        amount,
                        expires_at,
                        status: HoldStatus::Held,
                        paid_amount: None,
                        coupon_id: None,
                    },
                );
            }
            ScheduleEvent::HoldPaid {
                reservation_id,
                paid_amount,
                coupon_id,
                ..
            } => {
                if let Some(h) = self.holds.get_mut(&reservation_id) {
                    h.status = HoldStatus::Paid;
                    h.paid_amount = Some(paid_amount);
                    h.coupon_id = coupon_id;
                }
            }
            ScheduleEvent::HoldCancelled { reservation_id, .. } => {
                self.set_status(&reservation_id, HoldStatus::Cancelled);
                self.release(&reservation_id);
            }
            ScheduleEvent::HoldExpired { reservation_id, .. } => {
                self.set_status(&reservation_id, HoldStatus::Expired);
                self.release(&reservation_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::testkit::{self, recorded as expect};

    struct Concerts;

    #[async_trait]
    impl ScheduleServices for Concerts {
        async fn concert_exists(&self, concert_id: &str) -> Result<bool, FactUnavailable> {
            Ok(concert_id == "c1")
        }
    }

    fn t(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 24, 19, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn given(events: Vec<ScheduleEvent>) -> cqrs_es::test::AggregateTestExecutor<Schedule> {
        let concerts: ScheduleServicesRef = Arc::new(Concerts);
        testkit::given(concerts, events)
    }

    fn created() -> ScheduleEvent {
        ScheduleEvent::ScheduleCreated {
            concert_id: "c1".into(),
            starts_at: t(600),
            seats: (1..=6)
                .map(|n| SeatSpec {
                    seat_no: n,
                    price: 100 * i64::from(n),
                })
                .collect(),
        }
    }

    fn held(rid: &str, user: &str, seats: &[u32], expires: i64) -> ScheduleEvent {
        ScheduleEvent::SeatsHeld {
            reservation_id: rid.into(),
            user_id: user.into(),
            seat_nos: seats.to_vec(),
            amount: seats.iter().map(|s| 100 * i64::from(*s)).sum(),
            expires_at: t(expires),
        }
    }

    fn hold(rid: &str, user: &str, seats: &[u32], now: i64) -> ScheduleCommand {
        ScheduleCommand::Hold {
            reservation_id: rid.into(),
            user_id: user.into(),
            seat_nos: seats.to_vec(),
            now: t(now),
            expires_at: t(now + 5),
        }
    }

    fn pay(rid: &str, user: &str, now: i64) -> ScheduleCommand {
        ScheduleCommand::Pay {
            reservation_id: rid.into(),
            user_id: user.into(),
            paid_amount: 300,
            coupon_id: None,
            now: t(now),
        }
    }

    #[test]
    fn a_schedule_needs_its_concert_and_a_sane_seat_layout() {
        given(vec![])
            .when(ScheduleCommand::Create {
                concert_id: "nope".into(),
                starts_at: t(0),
                seats: vec![SeatSpec {
                    seat_no: 1,
                    price: 1,
                }],
            })
            .then_expect_error(ScheduleError::ConcertNotFound);
        for seats in [
            vec![],
            vec![
                SeatSpec {
                    seat_no: 1,
                    price: 1,
                },
                SeatSpec {
                    seat_no: 1,
                    price: 2,
                },
            ],
            vec![SeatSpec {
                seat_no: 0,
                price: 1,
            }],
            vec![SeatSpec {
                seat_no: 1,
                price: -1,
            }],
        ] {
            given(vec![])
                .when(ScheduleCommand::Create {
                    concert_id: "c1".into(),
                    starts_at: t(0),
                    seats,
                })
                .then_expect_error(ScheduleError::Invalid { field: "seats" });
        }
    }

    #[test]
    fn holding_free_seats_prices_them() {
        given(vec![created()])
            .when(hold("r1", "ann", &[1, 2], 0))
            .then_expect_events(expect(vec![held("r1", "ann", &[1, 2], 5)]));
    }

    #[test]
    fn a_hold_is_all_or_nothing() {
        given(vec![created(), held("r1", "ann", &[2], 5)])
            .when(hold("r2", "bob", &[1, 2, 3], 1))
            .then_expect_error(ScheduleError::SeatUnavailable(vec![2]));
        given(vec![created()])
            .when(hold("r2", "bob", &[1, 9], 1))
            .then_expect_error(ScheduleError::UnknownSeat(9));
        for seats in [&[][..], &[1, 2, 3, 4, 5][..], &[1, 1][..]] {
            given(vec![created()])
                .when(hold("r2", "bob", seats, 1))
                .then_expect_error(ScheduleError::Invalid { field: "seat_nos" });
        }
    }

    #[test]
    fn the_refusal_read_from_the_state_is_the_hold_commands_own() {
        let mut schedule = Schedule::default();
        for e in expect(vec![created(), held("r1", "ann", &[2], 5)]) {
            cqrs_es::Aggregate::apply(&mut schedule, e);
        }
        assert_eq!(
            schedule.refuses_hold(&[1, 2, 3], t(1)),
            Some(ScheduleError::SeatUnavailable(vec![2]))
        );
        assert_eq!(
            schedule.refuses_hold(&[1, 9], t(1)),
            Some(ScheduleError::UnknownSeat(9))
        );
        assert_eq!(schedule.refuses_hold(&[1, 3], t(1)), None);
        // an expired hold does not refuse: the command takes its seats
        assert_eq!(schedule.refuses_hold(&[2], t(5)), None);
    }

    #[test]
    fn an_expired_hold_frees_its_seats_for_the_next_buyer_at_once() {
        given(vec![created(), held("r1", "ann", &[1, 2], 5)])
            .when(hold("r2", "bob", &[2, 3], 5))
            .then_expect_events(expect(vec![
                ScheduleEvent::HoldExpired {
                    reservation_id: "r1".into(),
                    user_id: "ann".into(),
                    seat_nos: vec![1, 2],
                },
                held("r2", "bob", &[2, 3], 10),
            ]));
    }

    #[test]
    fn a_sold_seat_stays_sold() {
        given(vec![
            created(),
            held("r1", "ann", &[1, 2], 5),
            ScheduleEvent::HoldPaid {
                reservation_id: "r1".into(),
                user_id: "ann".into(),
                paid_amount: 300,
                coupon_id: None,
            },
        ])
        .when(hold("r2", "bob", &[1], 60))
        .then_expect_error(ScheduleError::SeatUnavailable(vec![1]));
    }

    #[test]
    fn payment_needs_a_live_hold_of_the_payer_and_is_idempotent() {
        let base = vec![created(), held("r1", "ann", &[1, 2], 5)];
        let paid = ScheduleEvent::HoldPaid {
            reservation_id: "r1".into(),
            user_id: "ann".into(),
            paid_amount: 300,
            coupon_id: None,
        };
        given(base.clone())
            .when(pay("r1", "ann", 4))
            .then_expect_events(expect(vec![paid.clone()]));
        given(base.clone())
            .when(pay("r1", "bob", 4))
            .then_expect_error(ScheduleError::NotYours);
        given(base.clone())
            .when(pay("r1", "ann", 5))
            .then_expect_error(ScheduleError::HoldExpired);
        given(base.clone())
            .when(pay("r9", "ann", 1))
            .then_expect_error(ScheduleError::ReservationNotFound);
        let mut paid_already = base.clone();
        paid_already.push(paid);
        given(paid_already)
            .when(pay("r1", "ann", 4))
            .then_expect_events(vec![]);
    }

    #[test]
    fn payment_and_expiry_exclude_each_other() {
        let expired = ScheduleEvent::HoldExpired {
            reservation_id: "r1".into(),
            user_id: "ann".into(),
            seat_nos: vec![1, 2],
        };
        let base = vec![created(), held("r1", "ann", &[1, 2], 5)];
        // expiry first: payment is refused
        let mut after_expiry = base.clone();
        after_expiry.push(expired.clone());
        given(after_expiry)
            .when(pay("r1", "ann", 4))
            .then_expect_error(ScheduleError::HoldExpired);
        // payment first: expiry is refused
        let mut after_payment = base.clone();
        after_payment.push(ScheduleEvent::HoldPaid {
            reservation_id: "r1".into(),
            user_id: "ann".into(),
            paid_amount: 300,
            coupon_id: None,
        });
        given(after_payment)
            .when(ScheduleCommand::Expire {
                reservation_id: "r1".into(),
                now: t(9),
            })
            .then_expect_error(ScheduleError::AlreadyPaid);
        // expiry before its time is refused
        given(base.clone())
            .when(ScheduleCommand::Expire {
                reservation_id: "r1".into(),
                now: t(4),
            })
            .then_expect_error(ScheduleError::NotExpiredYet);
        given(base)
            .when(ScheduleCommand::Expire {
                reservation_id: "r1".into(),
                now: t(5),
            })
            .then_expect_events(expect(vec![expired]));
    }

    #[test]
    fn cancelling_frees_the_seats_and_only_the_owner_or_an_admin_may() {
        let base = vec![created(), held("r1", "ann", &[1, 2], 5)];
        let cancel = |actor: &str, admin: bool| ScheduleCommand::Cancel {
            reservation_id: "r1".into(),
            actor: actor.into(),
            as_admin: admin,
        };
        given(base.clone())
            .when(cancel("bob", false))
            .then_expect_error(ScheduleError::NotYours);
        given(base.clone())
            .when(cancel("root", true))
            .then_expect_events(expect(vec![ScheduleEvent::HoldCancelled {
                reservation_id: "r1".into(),
                user_id: "ann".into(),
                seat_nos: vec![1, 2],
                by: "root".into(),
            }]));
        let mut cancelled = base;
        cancelled.push(ScheduleEvent::HoldCancelled {
            reservation_id: "r1".into(),
            user_id: "ann".into(),
            seat_nos: vec![1, 2],
            by: "ann".into(),
        });
        given(cancelled.clone())
            .when(cancel("ann", false))
            .then_expect_events(vec![]);
        given(cancelled)
            .when(hold("r2", "bob", &[1, 2], 1))
            .then_expect_events(expect(vec![held("r2", "bob", &[1, 2], 6)]));
    }
}
