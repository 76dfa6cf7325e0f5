use tessera_documents::documents::{collections, ReservationDoc};
use tessera_events::ScheduleEvent;

use super::schedule::{fold_reservation, reservation_of};
use super::{At, Fold, Folded, Targets};

/// `reservations`: one document per reservation.
pub struct Reservations;

impl Fold for Reservations {
    type Doc = ReservationDoc;
    type Event = ScheduleEvent;
    const NAME: &'static str = collections::RESERVATIONS;

    fn touches(&self, at: At<ScheduleEvent>) -> Targets {
        reservation_of(at.event).map_or(Targets::None, |(id, _)| Targets::Ids(vec![id.into()]))
    }

    fn fold_in(&self, doc: Option<ReservationDoc>, at: At<ScheduleEvent>) -> Folded<Self::Doc> {
        fold_reservation(doc, at)
    }
}
