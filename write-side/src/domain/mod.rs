//! Pure domain: aggregates, their commands and the rules they enforce.
//!
//! Nothing in here does I/O. Cross-aggregate facts arrive through each
//! aggregate's `Services` trait, implemented in the adapter layer.

pub mod account;
pub mod concert;
pub mod coupon;
pub mod guild;
pub mod history;
pub mod message;
pub mod order;
pub mod post;
pub mod product;
pub mod room;
pub mod schedule;
#[cfg(test)]
pub(crate) mod testkit;

use std::fmt::Debug;
use std::sync::Arc;

use cqrs_es::DomainEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_events::EventKind;

/// An event of the `events` crate as cqrs-es sees it.
///
/// The `events` crate stays free of cqrs-es (and so of tokio); this wrapper is
/// where the two meet. It serializes exactly like the event it wraps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recorded<E>(pub E);

impl<E> DomainEvent for Recorded<E>
where
    E: EventKind + Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync,
{
    fn event_type(&self) -> String {
        self.0.event_type().to_owned()
    }

    fn event_version(&self) -> String {
        self.0.event_version().to_owned()
    }
}

/// How a domain error is to be answered. Everything but `Unavailable` is a
/// rejection of the command (a 4xx); `Unavailable` means a fact the domain
/// needed could not be fetched, an infrastructure failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    Unprocessable,
    Unavailable,
}

/// A domain error with a stable, machine-readable code.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
    /// `snake_case` code clients can match on (`already_member`, ...).
    fn code(&self) -> &'static str;
    /// Machine-readable specifics for the error body's `details`.
    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// A fact from another aggregate that a decision needed could not be read.
/// It keeps its cause; two are equal whatever their causes, because tests
/// compare what a rule decided, not why a store failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a fact needed to decide is unavailable: {0}")]
pub struct FactUnavailable(#[source] pub Arc<dyn std::error::Error + Send + Sync>);

impl FactUnavailable {
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(Arc::from(cause.into()))
    }
}

impl PartialEq for FactUnavailable {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FactUnavailable {}

/// A command's name, for metrics and logs (never its data).
pub trait Named {
    fn name(&self) -> &'static str;
}

/// Implements [`Named`] for a command enum: each variant's name.
macro_rules! named {
    ($ty:ty { $($variant:ident),* $(,)? }) => {
        impl $crate::domain::Named for $ty {
            fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant),)*
                }
            }
        }
    };
}
pub(crate) use named;

/// Implements cqrs-es's `Aggregate` for a domain type from its two pure
/// methods, so each domain file holds only its rules:
///
/// - `decide(&self, command) -> Result<E, Error>` (with `services` last, and
///   `async`, when the aggregate needs facts from outside), where `E` is any
///   `IntoIterator` of events: `Option` for zero or one, `Vec` for several;
/// - `evolve(&mut self, event)`, the state after an event.
///
/// Every decided event is written in order; a rejection writes none.
macro_rules! impl_aggregate {
    ($ty:ty: $type:expr, $command:ty => $event:ty, $error:ty) => {
        impl ::cqrs_es::Aggregate for $ty {
            const TYPE: &'static str = $type;
            type Command = $command;
            type Event = $crate::domain::Recorded<$event>;
            type Error = $error;
            type Services = ();

            // `decide` answers an `Option` or a `Vec`; both iterate
            #[allow(for_loops_over_fallibles)]
            async fn handle(
                &mut self,
                command: $command,
                _: &(),
                sink: &::cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), $error> {
                for event in self.decide(command)? {
                    sink.write($crate::domain::Recorded(event), self).await;
                }
                Ok(())
            }

            fn apply(&mut self, $crate::domain::Recorded(event): Self::Event) {
                self.evolve(event);
            }
        }
    };
    ($ty:ty: $type:expr, $command:ty => $event:ty, $error:ty, services $services:ty) => {
        impl ::cqrs_es::Aggregate for $ty {
            const TYPE: &'static str = $type;
            type Command = $command;
            type Event = $crate::domain::Recorded<$event>;
            type Error = $error;
            type Services = $services;

            // `decide` answers an `Option` or a `Vec`; both iterate
            #[allow(for_loops_over_fallibles)]
            async fn handle(
                &mut self,
                command: $command,
                services: &$services,
                sink: &::cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), $error> {
                for event in self.decide(command, services).await? {
                    sink.write($crate::domain::Recorded(event), self).await;
                }
                Ok(())
            }

            fn apply(&mut self, $crate::domain::Recorded(event): Self::Event) {
                self.evolve(event);
            }
        }
    };
}
pub(crate) use impl_aggregate;

/// Checks that a text has between `min` and `max` characters (not bytes).
pub fn char_len_within(value: &str, min: usize, max: usize) -> bool {
    let n = value.chars().count();
    (min..=max).contains(&n)
}

/// A name (nickname, guild, channel, category, concert, coupon): between
/// `min` and `max` characters, not blank, and no control characters (a NUL
/// or an escape in a name breaks every client that shows it).
pub fn name_ok(value: &str, min: usize, max: usize) -> bool {
    char_len_within(value, min, max)
        && !value.trim().is_empty()
        && !value.chars().any(char::is_control)
}

/// Free text (posts, comments): like a name, but lines and tabs are text.
pub fn text_ok(value: &str, min: usize, max: usize) -> bool {
    char_len_within(value, min, max)
        && !value.trim().is_empty()
        && !value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A profile image, when set, is a non-blank reference of bounded length.
pub fn image_ok(image: Option<&str>) -> bool {
    let (min, max) = limits::PROFILE_IMAGE;
    image.is_none_or(|i| name_ok(i, min, max))
}

/// Limits of the contract (API.md), shared by the HTTP layer and the domain.
pub mod limits {
    pub const NICKNAME: (usize, usize) = (1, 32);
    pub const PASSWORD: (usize, usize) = (8, 128);
    pub const GUILD_NAME: (usize, usize) = (1, 50);
    pub const PROFILE_IMAGE: (usize, usize) = (1, 2048);
    pub const CHARGE_AMOUNT: (i64, i64) = (1, 1_000_000);
    pub const IDEMPOTENCY_KEY: (usize, usize) = (1, 128);
    pub const NOTIFICATION_ID: (usize, usize) = (1, 64);
    /// Upper bound of a balance, so that no sequence of charges overflows.
    pub const MAX_BALANCE: i64 = 1_000_000_000_000;
}
