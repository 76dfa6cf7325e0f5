//! Tessera's projector: folds events into read documents.
//!
//! - [`projection`]: the projections, pure folds from events to documents;
//! - [`feed`]: where events come from (Kafka, or a tail of the event log);
//! - [`runner`]: the loop that ties them together, with retries, dead
//!   letters and checkpoints;
//! - [`rebuild`] and [`deadletters`]: what operators run.
//!
//! The documents themselves, the document store port and its adapters, and
//! the live-collection routing are `tessera-documents`.

pub mod deadletters;
pub mod feed;
pub mod projection;
pub mod rebuild;
pub mod runner;
