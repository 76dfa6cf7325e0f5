//! The event log over one SQL pool. Each adapter reads it in its own
//! dialect: PostgreSQL in commit order across concurrent writers
//! ([`super::postgres::PgEventLog`]), SQLite by position, its one writer's
//! order ([`super::sqlite::SqliteEventLog`]).

use tessera_events::{Upcaster, UPCASTERS};

/// The log of the events table behind `pool`, read through `upcasters`.
#[derive(Clone)]
pub struct SqlEventLog<P> {
    pub(super) pool: P,
    pub(super) upcasters: &'static [Upcaster],
}

impl<P> SqlEventLog<P> {
    pub fn new(pool: P) -> Self {
        Self {
            pool,
            upcasters: UPCASTERS,
        }
    }

    /// Reads with `upcasters` instead of [`UPCASTERS`] (tests bring steps
    /// for versions the code no longer writes).
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: &'static [Upcaster]) -> Self {
        self.upcasters = upcasters;
        self
    }
}
