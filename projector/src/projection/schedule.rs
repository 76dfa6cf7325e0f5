//! What the projections fed by a schedule share: opening a document on
//! the schedule's first event (or reporting a gap), and what an event does
//! to a reservation. The five schedule-fed folds are tested together here.

use tessera_documents::documents::ReservationDoc;
use tessera_events::{ScheduleEvent, SeatSpec};

use super::{monotonic, open, At, FoldError, Folded, Opening, Outcome, Step};

/// For documents that follow every event of a schedule: the document to
/// update, `None` for a duplicate, an error for a gap. `create` builds it
/// from the first event.
pub(super) fn follow_schedule<D>(
    doc: Option<D>,
    version: impl Fn(&D) -> u64,
    at: At<ScheduleEvent>,
    create: impl FnOnce(&str, chrono::DateTime<chrono::Utc>, &[SeatSpec]) -> D,
) -> Result<Option<D>, FoldError> {
    let created = || match at.event {
        ScheduleEvent::ScheduleCreated {
            concert_id,
            starts_at,
            seats,
        } => Some(create(concert_id, *starts_at, seats)),
        _ => None,
    };
    Ok(match open(doc, version, at.sequence, created)? {
        Opening::Created(doc) | Opening::Next(doc) => Some(doc),
        Opening::Duplicate => None,
    })
}

/// What an event does to one reservation document (the fold of both
/// `reservations` and `user_reservations`, which differ only in the id).
pub(super) fn fold_reservation(
    doc: Option<ReservationDoc>,
    at: At<ScheduleEvent>,
) -> Folded<ReservationDoc> {
    if reservation_of(at.event).is_none()
        || monotonic(doc.as_ref().map(|d| d.version), at.sequence) == Step::Duplicate
    {
        return Ok(Outcome::Unchanged);
    }
    let (mut doc, status) = match (doc, at.event) {
        (
            _,
            ScheduleEvent::SeatsHeld {
                reservation_id,
                user_id,
                seat_nos,
                amount,
                expires_at,
            },
        ) => (
            ReservationDoc {
                reservation_id: reservation_id.clone(),
                schedule_id: at.aggregate_id.clone(),
                user_id: user_id.clone(),
                seat_nos: seat_nos.clone(),
                status: String::new(),
                amount: *amount,
                paid_amount: None,
                coupon_id: None,
                expires_at: *expires_at,
                created_at: at.metadata.occurred_at,
                version: 0,
            },
            "held",
        ),
        (
            Some(mut d),
            ScheduleEvent::HoldPaid {
                paid_amount,
                coupon_id,
                ..
            },
        ) => {
            d.paid_amount = Some(*paid_amount);
            d.coupon_id.clone_from(coupon_id);
            (d, "paid")
        }
        (Some(d), ScheduleEvent::HoldCancelled { .. }) => (d, "cancelled"),
        (Some(d), ScheduleEvent::HoldExpired { .. }) => (d, "expired"),
        (None, _) => {
            return Err(FoldError::Inapplicable(
                "an outcome for a hold that was never seen".into(),
            ));
        }
        (Some(_), ScheduleEvent::ScheduleCreated { .. }) => return Ok(Outcome::Unchanged),
    };
    status.clone_into(&mut doc.status);
    doc.version = at.sequence;
    Ok(Outcome::Put(doc))
}

/// The reservation and the user an event is about.
pub(super) fn reservation_of(event: &ScheduleEvent) -> Option<(&str, &str)> {
    match event {
        ScheduleEvent::SeatsHeld {
            reservation_id,
            user_id,
            ..
        }
        | ScheduleEvent::HoldPaid {
            reservation_id,
            user_id,
            ..
        }
        | ScheduleEvent::HoldCancelled {
            reservation_id,
            user_id,
            ..
        }
        | ScheduleEvent::HoldExpired {
            reservation_id,
            user_id,
            ..
        } => Some((reservation_id, user_id)),
        ScheduleEvent::ScheduleCreated { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::projection::testing::schedule;
    use crate::projection::{Fold, Reservations, Schedules, SeatMaps, Targets, UserReservations};
    use tessera_documents::documents::SeatState;

    fn created() -> ScheduleEvent {
        ScheduleEvent::ScheduleCreated {
            concert_id: "c".into(),
            starts_at: Utc.with_ymd_and_hms(2026, 12, 24, 19, 0, 0).unwrap(),
            seats: (1..=4)
                .map(|n| SeatSpec {
                    seat_no: n,
                    price: 100,
                })
                .collect(),
        }
    }

    fn held(rid: &str, seats: &[u32]) -> ScheduleEvent {
        ScheduleEvent::SeatsHeld {
            reservation_id: rid.into(),
            user_id: "ann".into(),
            seat_nos: seats.to_vec(),
            amount: 100 * seats.len() as i64,
            expires_at: Utc.with_ymd_and_hms(2026, 12, 24, 12, 5, 0).unwrap(),
        }
    }

    fn run<F: Fold>(f: &F, events: Vec<ScheduleEvent>) -> F::Doc
    where
        F::Doc: Clone,
    {
        let mut doc = None;
        for (i, e) in events.into_iter().enumerate() {
            let (env, ev) = schedule("s", i as u64 + 1, e);
            if let Outcome::Put(d) = f.fold(doc.clone(), &env, &ev).unwrap() {
                doc = Some(d);
            }
        }
        doc.unwrap()
    }

    fn paid(rid: &str) -> ScheduleEvent {
        ScheduleEvent::HoldPaid {
            reservation_id: rid.into(),
            user_id: "ann".into(),
            paid_amount: 100,
            coupon_id: None,
        }
    }

    fn expired(rid: &str, seats: &[u32]) -> ScheduleEvent {
        ScheduleEvent::HoldExpired {
            reservation_id: rid.into(),
            user_id: "ann".into(),
            seat_nos: seats.to_vec(),
        }
    }

    #[test]
    fn the_seat_map_follows_holds_payments_and_expiries() {
        let map = run(
            &SeatMaps,
            vec![
                created(),
                held("r1", &[1, 2]),
                paid("r1"),
                held("r2", &[3]),
                expired("r2", &[3]),
            ],
        );
        let states: Vec<_> = map.seats.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                SeatState::Sold,
                SeatState::Sold,
                SeatState::Free,
                SeatState::Free
            ]
        );
        assert_eq!(map.free_seats(), 2);
        assert!(map.seats[2].reservation_id.is_none());
    }

    #[test]
    fn the_calendar_counts_seats_held_away() {
        let doc = run(&Schedules, vec![created(), held("r1", &[1, 2])]);
        assert_eq!((doc.total_seats, doc.available_seats), (4, 2));
        let doc = run(
            &Schedules,
            vec![
                created(),
                held("r1", &[1, 2]),
                held("r2", &[3]),
                expired("r2", &[3]),
                paid("r1"),
            ],
        );
        // 4 seats, 2 held and paid, 1 held and expired back
        assert_eq!(doc.available_seats, 2);
        assert_eq!(doc.concert_start, "c|2026-12-24T19:00:00Z");
    }

    #[test]
    fn a_reservation_follows_its_hold() {
        let (env, ev) = schedule("s", 2, held("r1", &[1]));
        assert_eq!(
            Reservations.targets(&env, &ev),
            Targets::Ids(vec!["r1".into()])
        );
        assert_eq!(
            UserReservations.targets(&env, &ev),
            Targets::Ids(vec!["ann:r1".into()])
        );
        let Outcome::Put(doc) = Reservations.fold(None, &env, &ev).unwrap() else {
            panic!()
        };
        assert_eq!((doc.status.as_str(), doc.version), ("held", 2));
        let (env, ev) = schedule("s", 5, paid("r1"));
        let Outcome::Put(doc) = Reservations.fold(Some(doc), &env, &ev).unwrap() else {
            panic!()
        };
        assert_eq!(
            (doc.status.as_str(), doc.paid_amount, doc.version),
            ("paid", Some(100), 5)
        );
        assert_eq!(
            Reservations.fold(Some(doc), &env, &ev),
            Ok(Outcome::Unchanged)
        );
    }
}
