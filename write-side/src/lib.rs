//! Tessera's write side: aggregates, the command bus, event store adapters,
//! the relay to Kafka, the command REST API and password hashing. What the
//! HTTP processes share is `tessera-http`; the waiting queue `tessera-queue`.

pub mod app;
pub mod auth;
pub mod background;
pub mod bus;
pub mod domain;
pub mod health;
pub mod http;
pub mod inbox;
/// Leadership moved to `tessera-runtime` (the webhook deliverer needs it too).
pub use tessera_runtime::leader;
pub mod orders;
pub mod payment;
pub mod relay;
pub mod reservations;
pub mod store;
