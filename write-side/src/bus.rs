//! The command bus: load → handle → commit over cqrs-es's `EventStore`,
//! returning what was committed.
//!
//! `CqrsFramework::execute` returns nothing; Tessera needs the new version
//! (for read-your-writes), bounded retries of optimistic conflicts, and
//! commands on one aggregate serialized inside the process. The bus keeps
//! each recently used aggregate in memory and, before every command, loads
//! only the events after the cached sequence: another write-side instance may
//! have appended, and deciding on stale state could wrongly reject.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use tessera_runtime::{Backoff, Jitter};
use tokio::sync::Mutex as AsyncMutex;

use crate::domain::{DomainError, ErrorKind, Named};
use crate::store::Store;

/// Who sent a command, and as part of what: becomes the events' metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub request_id: Option<String>,
}

impl CommandContext {
    pub fn new(actor: impl Into<String>, request_id: Option<String>) -> Self {
        let correlation_id = request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        Self {
            actor: actor.into(),
            correlation_id,
            causation_id: None,
            request_id,
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::with_capacity(6);
        m.insert("actor".into(), self.actor.clone());
        m.insert("correlation_id".into(), self.correlation_id.clone());
        if let Some(c) = &self.causation_id {
            m.insert("causation_id".into(), c.clone());
        }
        if let Some(r) = &self.request_id {
            m.insert("request_id".into(), r.clone());
        }
        m
    }
}

/// A command that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<T> {
    /// The aggregate's version (sequence of its last event) after the command.
    pub version: u64,
    /// How many events the command appended (0 for an idempotent repeat).
    pub appended: usize,
    /// What the caller read off the aggregate after the command.
    pub output: T,
}

/// Why a command did not go through. Rejections are the domain's answer
/// (4xx); failures are infrastructure's (5xx, logged, details withheld).
/// The cause an infrastructure failure keeps.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: DomainError> {
    #[error("rejected: {0}")]
    Rejected(E),
    #[error("gave up after {attempts} optimistic conflicts")]
    Conflict { attempts: u32 },
    #[error("infrastructure failed: {0}")]
    Failed(#[source] Cause),
    /// The event store did not answer (in time): nothing is known to be
    /// written; a retry is safe for idempotent commands.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] Cause),
}

impl<E: DomainError> CommandError<E> {
    fn from_aggregate(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) if e.kind() == ErrorKind::Unavailable => {
                Self::Failed(Box::new(e))
            }
            AggregateError::UserError(e) => Self::Rejected(e),
            AggregateError::AggregateConflict => Self::Conflict { attempts: 1 },
            AggregateError::DatabaseConnectionError(e) => Self::Unavailable(e),
            other => Self::Failed(Box::new(other)),
        }
    }
}

struct Slot<A> {
    aggregate: A,
    sequence: usize,
}

type Entry<A> = Arc<AsyncMutex<Option<Slot<A>>>>;

#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    /// Attempts per command before an optimistic conflict becomes a 409.
    pub max_attempts: u32,
    /// Aggregates kept in memory; idle ones beyond this are dropped.
    pub cache_capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            cache_capacity: 50_000,
        }
    }
}

pub struct CommandBus<A: Aggregate> {
    store: Store,
    services: A::Services,
    entries: Mutex<HashMap<String, Entry<A>>>,
    config: BusConfig,
}

impl<A> CommandBus<A>
where
    A: Aggregate,
    A::Command: Clone + Named,
    A::Error: DomainError,
{
    pub fn new(store: Store, services: A::Services, config: BusConfig) -> Self {
        Self {
            store,
            services,
            entries: Mutex::new(HashMap::new()),
            config,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn entry(&self, id: &str) -> Entry<A> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.config.cache_capacity && !entries.contains_key(id) {
            // drop idle aggregates (nobody holds or waits for them)
            entries.retain(|_, e| Arc::strong_count(e) > 1);
        }
        Arc::clone(entries.entry(id.to_owned()).or_default())
    }

    /// Brings the slot up to date with the store: loads only the events
    /// after the cached sequence (all of them on a miss).
    async fn refresh(
        &self,
        id: &str,
        slot: Option<Slot<A>>,
    ) -> Result<Slot<A>, AggregateError<A::Error>> {
        let mut slot = slot.unwrap_or_else(|| Slot {
            aggregate: A::default(),
            sequence: 0,
        });
        for envelope in self.store.load_after::<A>(id, slot.sequence).await? {
            slot.sequence = envelope.sequence;
            slot.aggregate.apply(envelope.payload);
        }
        Ok(slot)
    }

    /// Reads the current state of an aggregate without changing it.
    pub async fn read<T>(
        &self,
        id: &str,
        view: impl FnOnce(&A) -> T,
    ) -> Result<T, CommandError<A::Error>> {
        let entry = self.entry(id);
        let mut guard = entry.lock().await;
        let slot = self
            .refresh(id, guard.take())
            .await
            .map_err(CommandError::from_aggregate)?;
        let out = view(&slot.aggregate);
        *guard = Some(slot);
        Ok(out)
    }

    /// Runs a command and reads `view` off the aggregate after it. Records
    /// `tessera_command_duration_seconds` and `tessera_commands_total` by
    /// aggregate, command and outcome, and `tessera_events_appended_total`.
    pub async fn execute<T>(
        &self,
        id: &str,
        command: A::Command,
        context: &CommandContext,
        view: impl FnOnce(&A) -> T,
    ) -> Result<Committed<T>, CommandError<A::Error>> {
        let name = command.name();
        let started = std::time::Instant::now();
        let result = self.run(id, command, context, view).await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Conflict { .. }) => "conflict",
            Err(CommandError::Failed(_) | CommandError::Unavailable(_)) => "failed",
        };
        metrics::histogram!("tessera_command_duration_seconds", "aggregate" => A::TYPE, "command" => name)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("tessera_commands_total", "aggregate" => A::TYPE, "command" => name, "outcome" => outcome)
            .increment(1);
        if let Ok(done) = &result {
            metrics::counter!("tessera_events_appended_total", "aggregate" => A::TYPE)
                .increment(done.appended as u64);
        }
        result
    }

    async fn run<T>(
        &self,
        id: &str,
        command: A::Command,
        context: &CommandContext,
        view: impl FnOnce(&A) -> T,
    ) -> Result<Committed<T>, CommandError<A::Error>> {
        let entry = self.entry(id);
        let mut guard = entry.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut slot = match self.refresh(id, guard.take()).await {
                Ok(slot) => slot,
                Err(e) => return Err(CommandError::from_aggregate(e)),
            };
            let sink = EventSink::default();
            let decided = slot
                .aggregate
                .handle(command.clone(), &self.services, &sink)
                .await;
            let events = sink.collect().await;
            if let Err(e) = decided {
                if events.is_empty() {
                    *guard = Some(slot); // untouched: keep it cached
                }
                return Err(CommandError::from_aggregate(AggregateError::UserError(e)));
            }
            if events.is_empty() {
                let output = view(&slot.aggregate);
                let version = slot.sequence as u64;
                *guard = Some(slot);
                return Ok(Committed {
                    version,
                    appended: 0,
                    output,
                });
            }
            let appended = events.len();
            // The sink applied the events to the cached aggregate already; the
            // context's aggregate is not read by `Store::commit`.
            let context_for_commit = EventStoreAggregateContext {
                aggregate_id: id.to_owned(),
                aggregate: A::default(),
                current_sequence: slot.sequence,
                current_snapshot: None,
            };
            match self
                .store
                .commit(events, context_for_commit, context.metadata())
                .await
            {
                Ok(_) => {
                    slot.sequence += appended;
                    let output = view(&slot.aggregate);
                    let version = slot.sequence as u64;
                    *guard = Some(slot);
                    return Ok(Committed {
                        version,
                        appended,
                        output,
                    });
                }
                Err(AggregateError::AggregateConflict) => {
                    // Another instance appended first. The slot holds our
                    // uncommitted events, so it is dropped and reloaded.
                    if attempt >= self.config.max_attempts {
                        return Err(CommandError::Conflict { attempts: attempt });
                    }
                    tracing::debug!(attempt, aggregate_id = id, "optimistic conflict, retrying");
                    tokio::time::sleep(CONFLICT_BACKOFF.delay(attempt)).await;
                }
                Err(e) => return Err(CommandError::from_aggregate(e)),
            }
        }
    }
}

/// How the bus waits between attempts after an optimistic conflict: full
/// jitter over a ceiling doubling from 2 ms to 200 ms, which spreads out
/// instances that collided on the same aggregate. Public so that benchmarks
/// give a baseline the same retry policy.
pub const CONFLICT_BACKOFF: Backoff = Backoff::new(
    Duration::from_millis(2),
    Duration::from_millis(200),
    Jitter::Full,
);

/// A domain rejection with the aggregate's type erased, for application
/// services that span several aggregates (the payment saga).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

impl Rejection {
    pub fn of<E: DomainError>(e: &E) -> Self {
        Self {
            kind: e.kind(),
            code: e.code(),
            message: e.to_string(),
            details: e.details(),
        }
    }

    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }
}

/// Why an application service did not complete: the domain said no, the
/// aggregate kept changing, or infrastructure failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("rejected: {}", .0.message)]
    Rejected(Rejection),
    #[error("gave up after {attempts} optimistic conflicts")]
    Conflict { attempts: u32 },
    #[error("infrastructure failed: {0}")]
    Failed(#[source] Cause),
    #[error("unavailable: {0}")]
    Unavailable(#[source] Cause),
}

impl AppError {
    pub fn rejected(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected(Rejection::new(kind, code, message))
    }

    pub fn failed(cause: impl Into<Cause>) -> Self {
        Self::Failed(cause.into())
    }

    /// The rejection code, if the domain rejected.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Rejected(r) => Some(r.code),
            _ => None,
        }
    }
}

impl<E: DomainError> From<CommandError<E>> for AppError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(e) => Self::Rejected(Rejection::of(&e)),
            CommandError::Conflict { attempts } => Self::Conflict { attempts },
            CommandError::Failed(cause) => Self::Failed(cause),
            CommandError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}
