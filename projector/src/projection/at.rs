//! What a fold is handed: the event it reads, typed, in its envelope.

use std::ops::Deref;

use tessera_events::{
    AccountEvent, ConcertEvent, CouponEvent, DomainEvent, Envelope, EventKind, GuildEvent,
    MessageEvent, OrderEvent, PostEvent, ProductEvent, RoomEvent, ScheduleEvent,
};

/// The events a projection reads: one aggregate's event type, narrowed from
/// every [`DomainEvent`], or [`DomainEvent`] itself for a projection that
/// joins several streams.
pub trait Reads: Sync + 'static {
    /// The aggregate types these events come from (none for [`DomainEvent`]:
    /// such a projection names its own).
    const AGGREGATE_TYPES: &'static [&'static str];

    /// The event as this type, or `None` for an event of another stream.
    fn narrow(event: &DomainEvent) -> Option<&Self>;
}

impl Reads for DomainEvent {
    const AGGREGATE_TYPES: &'static [&'static str] = &[];

    fn narrow(event: &DomainEvent) -> Option<&Self> {
        Some(event)
    }
}

macro_rules! one_stream {
    ($($event:ident => $variant:ident),* $(,)?) => {$(
        impl Reads for $event {
            const AGGREGATE_TYPES: &'static [&'static str] = &[<$event as EventKind>::AGGREGATE_TYPE];

            fn narrow(event: &DomainEvent) -> Option<&Self> {
                match event {
                    DomainEvent::$variant(event) => Some(event),
                    _ => None,
                }
            }
        }
    )*};
}

one_stream! {
    AccountEvent => Account,
    GuildEvent => Guild,
    PostEvent => Post,
    ConcertEvent => Concert,
    ScheduleEvent => Schedule,
    CouponEvent => Coupon,
    ProductEvent => Product,
    OrderEvent => Order,
    MessageEvent => Message,
    RoomEvent => Room,
}

/// An event in its envelope, as a fold sees it: `at.event` is the typed
/// event, and the envelope's fields read through (`at.sequence`,
/// `at.aggregate_id`, `at.metadata`).
#[derive(Debug)]
pub struct At<'a, E> {
    pub envelope: &'a Envelope,
    pub event: &'a E,
}

// by hand: a derive would ask `E: Copy`, and events are not
impl<E> Clone for At<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for At<'_, E> {}

impl<E> Deref for At<'_, E> {
    type Target = Envelope;

    fn deref(&self) -> &Envelope {
        self.envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_events::aggregate;

    #[test]
    fn an_aggregate_s_events_narrow_from_every_event_and_name_their_stream() {
        let event = DomainEvent::Coupon(CouponEvent::CouponReleased {
            user_id: "u1".into(),
            reservation_id: "r1".into(),
        });
        assert!(CouponEvent::narrow(&event).is_some());
        assert!(GuildEvent::narrow(&event).is_none());
        assert!(DomainEvent::narrow(&event).is_some());
        assert_eq!(CouponEvent::AGGREGATE_TYPES, &[aggregate::COUPON]);
        assert!(DomainEvent::AGGREGATE_TYPES.is_empty());
    }
}
