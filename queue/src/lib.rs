//! The waiting queue in front of seat queries, holds and payments: signed
//! queue tokens, admission by a cursor every process agrees on, and how a
//! refusal answers over HTTP. Used by the write API (taking a token,
//! holding seats, paying) and the read API (seat maps), so it depends on
//! neither.

mod admissions;
mod batch;
pub mod gate;
mod http;
mod placer;
pub mod store;

pub use gate::*;
pub use store::{Holder, PlaceRequest, Placed, QueueStore, StateError, Tick};
