//! What Tessera's background loops share.
//!
//! - [`Backoff`]: the one retry policy, exponential backoff with jitter, used
//!   by the command bus (optimistic conflicts), the relay, the projector and
//!   the background loops;
//! - [`drive`]: runs a step function until shutdown, pausing with the
//!   backoff after failures. Every loop exposes its step function
//!   (`relay_next`, `project_next`, ...) so that tests drain it instead of
//!   sleeping; `drive` is the only place that turns a step into a loop;
//! - [`trace`]: W3C trace contexts for spans, carried across processes as
//!   `traceparent`;
//! - [`leader`] (feature `postgres`): one process at a time leads a loop
//!   (a PostgreSQL advisory lock).

mod backoff;
mod driver;
#[cfg(feature = "postgres")]
pub mod leader;
pub mod trace;

pub use backoff::{Backoff, Jitter};
pub use driver::{drive, sleep_or_shutdown, Step, Stepped};
