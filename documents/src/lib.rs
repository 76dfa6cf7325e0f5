//! Tessera's read models: the document types the projections write and the
//! read API serves, the document store port with its MongoDB and embedded
//! (SQLite) adapters, the routing of each projection to its live collection
//! (with the freeze handshake a rebuild's switch uses), and where each
//! projection stands. No event feed, no broker: the read API links only
//! this, `tessera-http` and `tessera-events`.

pub mod changes;
pub mod chat;
pub mod documents;
pub mod live;
pub mod notifications;
pub mod shop;
pub mod status;
pub mod store;
