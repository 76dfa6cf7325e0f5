use tessera_documents::documents::{collections, ReservationDoc};
use tessera_events::{aggregate, DomainEvent, Envelope};

use super::schedule::{fold_reservation, reservation_of};
use super::{Fold, Folded, Targets};

/// `reservations`: one document per reservation.
pub struct Reservations;

impl Fold for Reservations {
    type Doc = ReservationDoc;
    const NAME: &'static str = collections::RESERVATIONS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::SCHEDULE];

    fn targets(&self, _: &Envelope, event: &DomainEvent) -> Targets {
        reservation_of(event).map_or(Targets::None, |(_, rid, _)| {
            Targets::Ids(vec![rid.to_owned()])
        })
    }

    fn fold(
        &self,
        doc: Option<ReservationDoc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<ReservationDoc> {
        fold_reservation(doc, envelope, event)
    }
}
