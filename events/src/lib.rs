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
mod coupon;
mod envelope;
mod guild;
mod log;
mod reservation;
mod upcast;

pub use account::AccountEvent;
pub use board::PostEvent;
pub use coupon::CouponEvent;
pub use envelope::{Envelope, Metadata, SYSTEM_ACTOR};
pub use guild::{ChannelKind, GuildEvent};
pub use log::{EventLog, LogError, LogFilter, LogPosition, LogRecord};
pub use reservation::{ConcertEvent, ScheduleEvent, SeatSpec};
pub use upcast::{upcast, upcast_parts, Upcaster, UPCASTERS};

/// Aggregate type names as they are stored in the event log and on the wire.
pub mod aggregate {
    pub const ACCOUNT: &str = "account";
    pub const GUILD: &str = "guild";
    pub const POST: &str = "post";
    pub const CONCERT: &str = "concert";
    pub const SCHEDULE: &str = "schedule";
    pub const COUPON: &str = "coupon";
}

/// An event enum of one aggregate: it names its type and the version of its shape.
pub trait EventKind {
    /// The aggregate type this event belongs to (`account`, `guild`, ...).
    const AGGREGATE_TYPE: &'static str;
    /// The variant's name, stored beside the payload (`AccountRegistered`, ...).
    fn event_type(&self) -> &'static str;
    /// The semantic version of the variant's current shape.
    fn event_version(&self) -> &'static str;
}

/// Any event of any aggregate, decoded from an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Account(AccountEvent),
    Guild(GuildEvent),
    Post(PostEvent),
    Concert(ConcertEvent),
    Schedule(ScheduleEvent),
    Coupon(CouponEvent),
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
            other => return Err(DecodeError::UnknownAggregateType(other.to_string())),
        }
        .map_err(bad)
    }
}
