//! Tessera's projector: folds events into read documents.
//!
//! - [`projection`]: the projections, pure folds from events to documents;
//! - [`store`]: the document store port with MongoDB and embedded adapters;
//! - [`feed`]: where events come from (Kafka, or a tail of the event log);
//! - [`runner`]: the loop that ties them together, with retries, dead
//!   letters and checkpoints.

pub mod deadletters;
pub mod documents;
pub mod feed;
pub mod projection;
pub mod rebuild;
pub mod routes;
pub mod runner;
pub mod store;
