//! Tessera's events: what happened, as pure data.
//!
//! This crate holds the event enums of every aggregate, the envelope that
//! carries an event on the wire and out of the log, the version of every event
//! and the upcasters that turn old payloads into the current shape. It does no
//! I/O: the one trait in here ([`EventLog`]) is a port that the store adapters
//! implement and the projector and relay consume.

mod account;
pub mod audit;
mod board;
mod chat;
pub mod contract;
mod coupon;
mod envelope;
mod guild;
mod log;
mod reservation;
mod shop;
mod upcast;

pub use account::AccountEvent;
pub use board::PostEvent;
pub use chat::{MessageEvent, MessagePlace, RoomEvent};
pub use coupon::CouponEvent;
pub use envelope::{Envelope, Metadata, SYSTEM_ACTOR};
pub use guild::{ChannelKind, GuildEvent};
pub use log::{EventLog, LogError, LogFilter, LogPosition, LogRecord};
pub use reservation::{ConcertEvent, ScheduleEvent, SeatSpec};
pub use shop::{OrderEvent, OrderLine, ProductEvent};
pub use upcast::{upcast, upcast_parts, Upcaster, UPCASTERS};

/// Aggregate type names as they are stored in the event log and on the wire.
pub mod aggregate {
    pub const ACCOUNT: &str = "account";
    pub const GUILD: &str = "guild";
    pub const POST: &str = "post";
    pub const CONCERT: &str = "concert";
    pub const SCHEDULE: &str = "schedule";
    pub const COUPON: &str = "coupon";
    pub const PRODUCT: &str = "product";
    pub const ORDER: &str = "order";
    pub const MESSAGE: &str = "message";
    pub const DM_ROOM: &str = "dm_room";
}

/// An event enum of one aggregate: it names its type and the version of its shape.
pub trait EventKind {
    /// The aggregate type this event belongs to (`account`, `guild`, ...).
    const AGGREGATE_TYPE: &'static str;
    /// The variant's name, stored beside the payload (`AccountRegistered`, ...).
    fn event_type(&self) -> &'static str;
    /// The semantic version of the variant's current shape.
    fn event_version(&self) -> &'static str;
    /// Every variant's name.
    const EVENT_TYPES: &'static [&'static str];
    /// The version every variant is at now.
    const EVENT_VERSION: &'static str;
}

/// Every event type any aggregate records (`OrderPaid`, ...): what a webhook
/// may subscribe to.
pub fn event_types() -> impl Iterator<Item = &'static str> {
    [
        AccountEvent::EVENT_TYPES,
        GuildEvent::EVENT_TYPES,
        PostEvent::EVENT_TYPES,
        ConcertEvent::EVENT_TYPES,
        ScheduleEvent::EVENT_TYPES,
        CouponEvent::EVENT_TYPES,
        ProductEvent::EVENT_TYPES,
        OrderEvent::EVENT_TYPES,
        MessageEvent::EVENT_TYPES,
        RoomEvent::EVENT_TYPES,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// Declares the error of a port (a trait adapters implement): what failed,
/// with the adapter's own error kept as its source, never flattened into a
/// string.
///
/// ```
/// tessera_events::port_error!(
///     /// The cache failed; the adapter's error is the source.
///     CacheError, "cache failed"
/// );
/// let e = CacheError::new("connection refused");
/// assert_eq!(e.to_string(), "cache failed: connection refused");
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[macro_export]
macro_rules! port_error {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name(pub Box<dyn std::error::Error + Send + Sync>);

        impl $name {
            pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
                Self(source.into())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}: {}", $what, self.0)
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
    };
}

/// Implements [`EventKind`] for an event enum: the aggregate it belongs to,
/// the schema version its variants are at, and each variant's name as its
/// event type. A variant renamed here is a new event type in the log, so
/// names only ever get added.
macro_rules! event_kind {
    ($ty:ty: $aggregate:expr, version $version:literal { $($variant:ident),* $(,)? }) => {
        impl $crate::EventKind for $ty {
            const AGGREGATE_TYPE: &'static str = $aggregate;
            const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];
            const EVENT_VERSION: &'static str = $version;

            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant),)*
                }
            }

            fn event_version(&self) -> &'static str {
                Self::EVENT_VERSION
            }
        }
    };
}
pub(crate) use event_kind;

/// Any event of any aggregate, decoded from an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Account(AccountEvent),
    Guild(GuildEvent),
    Post(PostEvent),
    Concert(ConcertEvent),
    Schedule(ScheduleEvent),
    Coupon(CouponEvent),
    Product(ProductEvent),
    Order(OrderEvent),
    Message(MessageEvent),
    Room(RoomEvent),
}

/// Why an envelope's payload could not be turned into a [`DomainEvent`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregateType(String),
    #[error("payload of {event_type} v{event_version} does not match its shape: {reason}")]
    BadPayload {
        event_type: String,
        event_version: String,
        reason: String,
    },
}

impl DomainEvent {
    /// Decodes the payload of an (already upcast) envelope.
    pub fn decode(envelope: &Envelope) -> Result<Self, DecodeError> {
        let bad = |e: serde_json::Error| DecodeError::BadPayload {
            event_type: envelope.event_type.clone(),
            event_version: envelope.event_version.clone(),
            reason: e.to_string(),
        };
        let payload = envelope.payload.clone();
        match envelope.aggregate_type.as_str() {
            aggregate::ACCOUNT => serde_json::from_value(payload).map(DomainEvent::Account),
            aggregate::GUILD => serde_json::from_value(payload).map(DomainEvent::Guild),
            aggregate::POST => serde_json::from_value(payload).map(DomainEvent::Post),
            aggregate::CONCERT => serde_json::from_value(payload).map(DomainEvent::Concert),
            aggregate::SCHEDULE => serde_json::from_value(payload).map(DomainEvent::Schedule),
            aggregate::COUPON => serde_json::from_value(payload).map(DomainEvent::Coupon),
            aggregate::PRODUCT => serde_json::from_value(payload).map(DomainEvent::Product),
            aggregate::ORDER => serde_json::from_value(payload).map(DomainEvent::Order),
            aggregate::MESSAGE => serde_json::from_value(payload).map(DomainEvent::Message),
            aggregate::DM_ROOM => serde_json::from_value(payload).map(DomainEvent::Room),
            other => return Err(DecodeError::UnknownAggregateType(other.to_string())),
        }
        .map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn every_event_type_is_listed_once() {
        let all: Vec<_> = super::event_types().collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "an event type is listed twice");
        for name in [
            "OrderPaid",
            "AccountRegistered",
            "CommentAdded",
            "RoomCreated",
        ] {
            assert!(all.contains(&name), "{name} is missing");
        }
    }
}
