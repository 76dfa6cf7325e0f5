use tessera_documents::documents::{collections, pair_id, ReservationDoc};
use tessera_events::{aggregate, DomainEvent, Envelope};

use super::schedule::{fold_reservation, reservation_of};
use super::{Fold, Folded, Targets};

/// `user_reservations`: a user's reservations (id `{user_id}:{reservation_id}`;
/// reservation ids are time-ordered, so id order is newest last).
pub struct UserReservations;

impl Fold for UserReservations {
    type Doc = ReservationDoc;
    const NAME: &'static str = collections::USER_RESERVATIONS;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::SCHEDULE];
    const INDEXES: &'static [&'static str] = &["user_id"];

    fn targets(&self, _: &Envelope, event: &DomainEvent) -> Targets {
        reservation_of(event).map_or(Targets::None, |(_, rid, user)| {
            Targets::Ids(vec![pair_id(user, rid)])
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
