use tessera_documents::documents::{collections, SeatDoc, SeatMapDoc, SeatState};
use tessera_events::ScheduleEvent;

use super::schedule::follow_schedule;
use super::{At, Fold, Folded, Outcome};

/// `seat_maps`: every seat of a schedule with its price and state.
pub struct SeatMaps;

/// Marks the reservation's seats (or `seats`, when given) as `state`.
fn set_seats(
    doc: &mut SeatMapDoc,
    reservation_id: &str,
    state: SeatState,
    until: Option<chrono::DateTime<chrono::Utc>>,
    seats: Option<&[u32]>,
) {
    for seat in &mut doc.seats {
        let ours = match seats {
            Some(nos) => nos.contains(&seat.seat_no),
            None => seat.reservation_id.as_deref() == Some(reservation_id),
        };
        if !ours {
            continue;
        }
        seat.state = state;
        seat.held_until = until;
        seat.reservation_id = (state != SeatState::Free).then(|| reservation_id.to_owned());
    }
}

impl Fold for SeatMaps {
    type Doc = SeatMapDoc;
    type Event = ScheduleEvent;
    const NAME: &'static str = collections::SEAT_MAPS;

    fn fold_in(&self, doc: Option<SeatMapDoc>, at: At<ScheduleEvent>) -> Folded<SeatMapDoc> {
        let Some(mut doc) = follow_schedule(
            doc,
            |d| d.version,
            at,
            |concert_id, _, seats| SeatMapDoc {
                schedule_id: at.aggregate_id.clone(),
                concert_id: concert_id.to_owned(),
                seats: seats
                    .iter()
                    .map(|s| SeatDoc {
                        seat_no: s.seat_no,
                        price: s.price,
                        state: SeatState::Free,
                        reservation_id: None,
                        held_until: None,
                    })
                    .collect(),
                version: 0,
            },
        )?
        else {
            return Ok(Outcome::Unchanged);
        };
        match at.event {
            ScheduleEvent::ScheduleCreated { .. } => {}
            ScheduleEvent::SeatsHeld {
                reservation_id,
                seat_nos,
                expires_at,
                ..
            } => set_seats(
                &mut doc,
                reservation_id,
                SeatState::Held,
                Some(*expires_at),
                Some(seat_nos),
            ),
            ScheduleEvent::HoldPaid { reservation_id, .. } => {
                set_seats(&mut doc, reservation_id, SeatState::Sold, None, None)
            }
            ScheduleEvent::HoldCancelled { reservation_id, .. }
            | ScheduleEvent::HoldExpired { reservation_id, .. } => {
                set_seats(&mut doc, reservation_id, SeatState::Free, None, None);
            }
        }
        doc.version = at.sequence;
        Ok(Outcome::Put(doc))
    }
}
