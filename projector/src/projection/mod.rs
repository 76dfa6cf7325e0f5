//! Projections: pure folds from events to documents.
//!
//! A projection says which documents an event touches ([`Fold::targets`]) and
//! folds the event into each of them ([`Fold::fold`]). The same code serves
//! live projection, rebuilds, the embedded mode and the tests; nothing here
//! does I/O.
//!
//! Folds are idempotent and order-safe: every document remembers the last
//! sequence it applied per source aggregate, so a duplicate changes nothing.
//! A document that follows every event of its aggregate refuses an event that
//! leaves a gap ([`FoldError::Gap`]).

mod accounts;
mod at;
mod channel_posts;
mod channels;
mod concerts;
mod coupons;
mod dm_rooms;
mod guild_members;
mod guilds;
mod messages;
mod notifications;
mod orders;
mod point_history;
mod popular_products;
mod posts;
mod products;
mod reservations;
mod schedule;
mod schedules;
mod seat_maps;
mod seller_sales;
mod user_guilds;
mod user_reservations;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tessera_events::{DomainEvent, Envelope};

pub use accounts::Accounts;
pub use at::{At, Reads};
pub use channel_posts::ChannelPosts;
pub use channels::Channels;
pub use concerts::Concerts;
pub use coupons::{Coupons, UserCoupons};
pub use dm_rooms::DmRooms;
pub use guild_members::GuildMembers;
pub use guilds::Guilds;
pub use messages::Messages;
pub use notifications::{notices, Notice, Notifications};
pub use orders::{Orders, UserOrders};
pub use point_history::PointHistory;
pub use popular_products::PopularProducts;
pub use posts::Posts;
pub use products::Products;
pub use reservations::Reservations;
pub use schedules::Schedules;
pub use seat_maps::SeatMaps;
pub use seller_sales::SellerSales;
pub use user_guilds::UserGuilds;
pub use user_reservations::UserReservations;

/// Which documents of the projection's collection an event touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    None,
    Ids(Vec<String>),
    /// Every document whose indexed `field` holds `value` (a fan-out, like a
    /// guild rename reaching each member's guild list).
    Where {
        field: &'static str,
        value: String,
    },
}

/// How live streams follow a projection's documents (DESIGN.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Not at all: its writes are not announced.
    Quiet,
    /// By document id (a post, a guild, a product).
    ById,
    /// By the value of this field (a message's place, a notification's user).
    ByField(&'static str),
}

/// What a fold does to one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<D> {
    /// A duplicate, or an event that does not concern this document.
    Unchanged,
    Put(D),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("gap in the event stream: expected sequence {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("event cannot be decoded: {0}")]
    Undecodable(String),
    #[error("stored document does not match its shape: {0}")]
    CorruptDocument(String),
    #[error("event cannot apply: {0}")]
    Inapplicable(String),
}

/// What a fold answers for one document.
pub type Folded<D> = Result<Outcome<D>, FoldError>;

/// A projection with typed documents.
pub trait Fold: Send + Sync + 'static {
    type Doc: Serialize + DeserializeOwned + Send;
    /// The events it reads: one aggregate's event type, or [`DomainEvent`]
    /// for a projection that joins several streams.
    type Event: Reads;
    /// The projection's name (`admin rebuild <name>`), also its collection.
    const NAME: &'static str;
    /// Aggregate types whose events this projection reads; a projection over
    /// [`DomainEvent`] names them.
    const AGGREGATE_TYPES: &'static [&'static str] = <Self::Event as Reads>::AGGREGATE_TYPES;
    /// Document fields that [`Targets::Where`] and list queries filter on.
    const INDEXES: &'static [&'static str] = &[];
    /// Every document is made by the events of exactly one aggregate (so one
    /// aggregate's documents can be replayed on their own).
    const SINGLE_SOURCE: bool = true;
    /// How live streams follow the documents.
    const LIVE: Live = Live::Quiet;

    /// The documents an event touches: by default the one its aggregate
    /// names, as for every projection that mirrors one stream.
    fn touches(&self, at: At<'_, Self::Event>) -> Targets {
        Targets::Ids(vec![at.aggregate_id.clone()])
    }

    /// The document after the event.
    fn fold_in(&self, doc: Option<Self::Doc>, at: At<'_, Self::Event>) -> Folded<Self::Doc>;

    /// [`fold_in`](Self::fold_in) for a document that must know its id to
    /// be made (one of several an event creates, such as each seller's lines
    /// of an order). By default the id is not needed.
    fn fold_in_at(
        &self,
        _id: &str,
        doc: Option<Self::Doc>,
        at: At<'_, Self::Event>,
    ) -> Folded<Self::Doc> {
        self.fold_in(doc, at)
    }

    /// [`touches`](Self::touches) for any event: one it does not read
    /// touches nothing.
    fn targets(&self, envelope: &Envelope, event: &DomainEvent) -> Targets {
        Self::Event::narrow(event)
            .map_or(Targets::None, |event| self.touches(At { envelope, event }))
    }

    /// [`fold_in`](Self::fold_in) for any event: one it does not read
    /// changes nothing.
    fn fold(
        &self,
        doc: Option<Self::Doc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<Self::Doc> {
        Self::Event::narrow(event).map_or(Ok(Outcome::Unchanged), |event| {
            self.fold_in(doc, At { envelope, event })
        })
    }

    /// [`fold_in_at`](Self::fold_in_at) for any event.
    fn fold_at(
        &self,
        id: &str,
        doc: Option<Self::Doc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<Self::Doc> {
        Self::Event::narrow(event).map_or(Ok(Outcome::Unchanged), |event| {
            self.fold_in_at(id, doc, At { envelope, event })
        })
    }
}

/// A projection over JSON documents, as the runner drives it.
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn aggregate_types(&self) -> &'static [&'static str];
    fn indexes(&self) -> &'static [&'static str];
    fn single_source(&self) -> bool;
    fn live(&self) -> Live;
    fn targets(&self, envelope: &Envelope, event: &DomainEvent) -> Targets;
    /// Folds the event into the document `id` (present or not).
    fn apply(
        &self,
        id: &str,
        doc: Option<&Value>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Result<Outcome<Value>, FoldError>;
}

impl<F: Fold> Projection for F {
    fn name(&self) -> &'static str {
        F::NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        F::AGGREGATE_TYPES
    }

    fn indexes(&self) -> &'static [&'static str] {
        F::INDEXES
    }

    fn single_source(&self) -> bool {
        F::SINGLE_SOURCE
    }

    fn live(&self) -> Live {
        F::LIVE
    }

    fn targets(&self, envelope: &Envelope, event: &DomainEvent) -> Targets {
        Fold::targets(self, envelope, event)
    }

    fn apply(
        &self,
        id: &str,
        doc: Option<&Value>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<Value> {
        let doc = doc
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .map_err(|e| FoldError::CorruptDocument(e.to_string()))?;
        Ok(match self.fold_at(id, doc, envelope, event)? {
            Outcome::Unchanged => Outcome::Unchanged,
            Outcome::Delete => Outcome::Delete,
            Outcome::Put(d) => Outcome::Put(
                serde_json::to_value(d).map_err(|e| FoldError::CorruptDocument(e.to_string()))?,
            ),
        })
    }
}

/// Every projection, in the order they are listed and rebuilt.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(Accounts),
        Arc::new(PointHistory),
        Arc::new(Guilds),
        Arc::new(GuildMembers),
        Arc::new(Channels),
        Arc::new(UserGuilds),
        Arc::new(Posts),
        Arc::new(ChannelPosts),
        Arc::new(Concerts),
        Arc::new(Schedules),
        Arc::new(SeatMaps),
        Arc::new(Reservations),
        Arc::new(UserReservations),
        Arc::new(Coupons),
        Arc::new(UserCoupons),
        Arc::new(Products),
        Arc::new(PopularProducts),
        Arc::new(Orders),
        Arc::new(UserOrders),
        Arc::new(SellerSales),
        Arc::new(Messages),
        Arc::new(DmRooms),
        Arc::new(Notifications),
    ]
}

/// Where an event falls relative to a document that follows its aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Apply,
    Duplicate,
}

/// For documents that follow every event of their aggregate: the next
/// sequence applies, an older one is a duplicate, a later one is a gap.
pub fn follow(current: u64, sequence: u64) -> Result<Step, FoldError> {
    if sequence <= current {
        Ok(Step::Duplicate)
    } else if sequence == current + 1 {
        Ok(Step::Apply)
    } else {
        Err(FoldError::Gap {
            expected: current + 1,
            got: sequence,
        })
    }
}

/// Where an event leaves a document that follows every event of one
/// aggregate (see [`open`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Opening<D> {
    /// The stream's first event made the document.
    Created(D),
    /// The document, ready for the event that comes next in its stream.
    Next(D),
    /// An event the document already holds.
    Duplicate,
}

/// The opening every stream-following fold shares: a missing document is
/// made by the stream's first event (`create` returns it when the event is
/// the one that creates it), anything else on a missing document is a gap;
/// an event the document holds is a duplicate, one past the next is a gap.
pub fn open<D>(
    doc: Option<D>,
    version: impl Fn(&D) -> u64,
    sequence: u64,
    create: impl FnOnce() -> Option<D>,
) -> Result<Opening<D>, FoldError> {
    match doc {
        Some(doc) => Ok(match follow(version(&doc), sequence)? {
            Step::Apply => Opening::Next(doc),
            Step::Duplicate => Opening::Duplicate,
        }),
        None => match (sequence == 1).then(create).flatten() {
            Some(doc) => Ok(Opening::Created(doc)),
            None => Err(FoldError::Gap {
                expected: 1,
                got: sequence,
            }),
        },
    }
}

impl<D> Opening<D> {
    /// The outcome: a created document is put as it is, a duplicate changes
    /// nothing, and `next` folds the event into the document that was there.
    pub fn then(self, next: impl FnOnce(D) -> Result<Outcome<D>, FoldError>) -> Folded<D> {
        match self {
            Self::Created(doc) => Ok(Outcome::Put(doc)),
            Self::Next(doc) => next(doc),
            Self::Duplicate => Ok(Outcome::Unchanged),
        }
    }
}

/// For documents that pick only some events: anything newer applies.
pub fn monotonic(current: Option<u64>, sequence: u64) -> Step {
    match current {
        Some(c) if sequence <= c => Step::Duplicate,
        _ => Step::Apply,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for fold tests.

    use chrono::{TimeZone, Utc};
    use tessera_events::{
        AccountEvent, ConcertEvent, CouponEvent, DomainEvent, Envelope, EventKind, GuildEvent,
        MessageEvent, OrderEvent, PostEvent, ProductEvent, RoomEvent, ScheduleEvent,
    };

    pub fn at(minute: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap()
    }

    fn envelope<E: EventKind + serde::Serialize>(id: &str, sequence: u64, event: &E) -> Envelope {
        let position = i64::try_from(sequence).unwrap();
        let minute = u32::try_from(sequence).unwrap_or(0) % 60;
        Envelope::fresh(id, sequence, position, event, at(minute)).unwrap()
    }

    /// One builder per aggregate: the event in its envelope, and as the
    /// folds see it (`guild("g1", 1, GuildEvent::GuildCreated { .. })`).
    macro_rules! builders {
        ($($name:ident: $event:ident => $variant:ident),* $(,)?) => {$(
            // not every aggregate has a fold test that builds its events
            #[allow(dead_code)]
            pub fn $name(id: &str, sequence: u64, event: $event) -> (Envelope, DomainEvent) {
                (envelope(id, sequence, &event), DomainEvent::$variant(event))
            }
        )*};
    }

    builders! {
        guild: GuildEvent => Guild,
        account: AccountEvent => Account,
        post: PostEvent => Post,
        concert: ConcertEvent => Concert,
        schedule: ScheduleEvent => Schedule,
        product: ProductEvent => Product,
        order: OrderEvent => Order,
        coupon: CouponEvent => Coupon,
        message: MessageEvent => Message,
        room: RoomEvent => Room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_crate_lists_every_projection_in_order() {
        let names: Vec<&str> = all().iter().map(|p| p.name()).collect();
        assert_eq!(names, tessera_documents::documents::collections::PROJECTED);
    }

    #[test]
    fn follow_applies_the_next_skips_the_old_and_refuses_gaps() {
        assert_eq!(follow(0, 1), Ok(Step::Apply));
        assert_eq!(follow(4, 5), Ok(Step::Apply));
        assert_eq!(follow(4, 4), Ok(Step::Duplicate));
        assert_eq!(follow(4, 2), Ok(Step::Duplicate));
        assert_eq!(
            follow(4, 6),
            Err(FoldError::Gap {
                expected: 5,
                got: 6
            })
        );
    }

    #[test]
    fn monotonic_applies_anything_newer() {
        assert_eq!(monotonic(None, 7), Step::Apply);
        assert_eq!(monotonic(Some(3), 7), Step::Apply);
        assert_eq!(monotonic(Some(7), 7), Step::Duplicate);
    }

    #[test]
    fn every_projection_names_the_streams_it_reads() {
        for p in all() {
            assert!(!p.aggregate_types().is_empty(), "{}", p.name());
        }
    }

    #[test]
    fn projection_names_are_unique() {
        let mut names: Vec<_> = all().iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }
}
