use tessera_documents::documents::{collections, pair_id, ReservationDoc};
use tessera_events::ScheduleEvent;

use super::schedule::{fold_reservation, reservation_of};
use super::{At, Fold, Folded, Targets};

/// `user_reservations`: a user's reservations (id `{user_id}:{reservation_id}`;
/// reservation ids are time-ordered, so id order is newest last).
pub struct UserReservations;

impl Fold for UserReservations {
    type Doc = ReservationDoc;
    type Event = ScheduleEvent;
    const NAME: &'static str = collections::USER_RESERVATIONS;
    const INDEXES: &'static [&'static str] = &["user_id"];

    fn touches(&self, at: At<ScheduleEvent>) -> Targets {
        let of = reservation_of(at.event);
        of.map_or(Targets::None, |(id, user)| {
            Targets::Ids(vec![pair_id(user, id)])
        })
    }

    fn fold_in(&self, doc: Option<Self::Doc>, at: At<ScheduleEvent>) -> Folded<ReservationDoc> {
        fold_reservation(doc, at)
    }
}
