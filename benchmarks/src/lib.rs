//! Benchmarks of Tessera's write path and projection rebuild, each beside
//! a baseline measured in the same run on the same PostgreSQL:
//!
//! - [`write`]: commands through Tessera's command bus against plain
//!   cqrs-es `CqrsFramework::execute` with a retry loop, on distinct
//!   aggregates and on one hot aggregate; appends through Tessera's store
//!   against a raw `INSERT` loop (the physical limit);
//! - [`rebuild`]: a projection rebuild against cqrs-es `QueryReplay`;
//! - [`catchup`]: a projector catching up a Kafka backlog into MongoDB
//!   against the document store's raw upsert rate.
//!
//! Figures are ratios against the baseline, never absolute thresholds:
//! the machine is described in the report, not assumed.

pub mod catchup;
pub mod machine;
pub mod measure;
pub mod rebuild;
pub mod report;
pub mod suite;
pub mod write;
