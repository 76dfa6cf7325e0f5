use tessera_documents::documents::{collections, concert_start, ScheduleDoc};
use tessera_events::ScheduleEvent;

use super::schedule::follow_schedule;
use super::{At, Fold, FoldError, Folded, Live, Outcome};

/// `schedules`: a concert's calendar, with seats still free per schedule.
pub struct Schedules;

impl Fold for Schedules {
    type Doc = ScheduleDoc;
    type Event = ScheduleEvent;
    const NAME: &'static str = collections::SCHEDULES;
    const LIVE: Live = Live::ById;
    const INDEXES: &'static [&'static str] = &["concert_start"];

    fn fold_in(&self, doc: Option<ScheduleDoc>, at: At<ScheduleEvent>) -> Folded<ScheduleDoc> {
        let created = matches!(at.event, ScheduleEvent::ScheduleCreated { .. });
        let Some(mut doc) = follow_schedule(
            doc,
            |d| d.version,
            at,
            |concert_id, starts_at, seats| ScheduleDoc {
                schedule_id: at.aggregate_id.clone(),
                concert_id: concert_id.to_owned(),
                starts_at,
                total_seats: seats.len() as u64,
                available_seats: seats.len() as u64,
                concert_start: concert_start(concert_id, starts_at),
                version: 0,
            },
        )?
        else {
            return Ok(Outcome::Unchanged);
        };
        match at.event {
            ScheduleEvent::ScheduleCreated { .. } if !created || doc.version > 0 => {
                return Err(FoldError::Inapplicable("schedule created twice".into()))
            }
            ScheduleEvent::ScheduleCreated { .. } | ScheduleEvent::HoldPaid { .. } => {}
            ScheduleEvent::SeatsHeld { seat_nos, .. } => {
                doc.available_seats = doc.available_seats.saturating_sub(seat_nos.len() as u64);
            }
            ScheduleEvent::HoldCancelled { seat_nos, .. }
            | ScheduleEvent::HoldExpired { seat_nos, .. } => {
                doc.available_seats =
                    (doc.available_seats + seat_nos.len() as u64).min(doc.total_seats);
            }
        }
        doc.version = at.sequence;
        Ok(Outcome::Put(doc))
    }
}
