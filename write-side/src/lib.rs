//! Tessera's write side: aggregates, the command bus, event store adapters,
//! the relay to Kafka, the command REST API and authentication.

pub mod app;
pub mod auth;
pub mod bus;
pub mod domain;
pub mod health;
pub mod http;
pub mod relay;
pub mod store;
