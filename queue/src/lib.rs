//! The waiting queue in front of seat queries, holds and payments: signed
//! queue tokens, admission by a cursor every process agrees on, and how a
//! refusal answers over HTTP. Used by the write API (taking a token,
//! holding seats, paying) and the read API (seat maps), so it depends on
//! neither.

pub mod gate;
mod http;
pub mod store;

pub use gate::*;
pub use store::{Holder, Placed, QueueCursor, QueueStore, StateError};
