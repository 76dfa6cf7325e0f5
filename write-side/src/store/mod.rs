//! Event store adapters behind cqrs-es's `EventStore` trait.
//!
//! Appends and per-aggregate loads go through cqrs-es's persistence port
//! (`PersistedEventRepository`), implemented by postgres-es and sqlite-es.
//! [`Store`] adds what Tessera needs on top, in event-store mode only (no
//! snapshots): per-event metadata with its own event id, upcasting on load,
//! incremental loads for the command bus cache, and a commit signal for the
//! embedded projector feed.

pub mod credentials;
pub mod group;
pub mod log;
pub mod places;
pub mod postgres;
pub mod sqlite;
pub mod state;

use std::collections::HashMap;

use chrono::Utc;
use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventRepository, PersistenceError, ReplayStream,
    SerializedEvent, SerializedSnapshot,
};
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope, EventStore};
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use tessera_events::{upcast_parts, Upcaster, UPCASTERS};
use tokio::sync::watch;

use group::{AppendError, GroupCommit, GroupConfig, Row, Target};
use uuid::Uuid;

/// The two repositories Tessera runs on. An enum, not a trait object:
/// `PersistedEventRepository` has generic methods and cannot be made `dyn`.
#[derive(Clone)]
pub enum Repo {
    Postgres(std::sync::Arc<PostgresEventRepository>, sqlx::PgPool),
    Sqlite(std::sync::Arc<SqliteEventRepository>, sqlx::SqlitePool),
}

impl Repo {
    /// Where the group committer writes: the repository's own database.
    fn target(&self) -> Target {
        match self {
            Self::Postgres(_, pool) => Target::Postgres(pool.clone()),
            Self::Sqlite(_, pool) => Target::Sqlite(pool.clone()),
        }
    }

    fn group_config(&self) -> GroupConfig {
        match self {
            Self::Postgres(..) => GroupConfig::POSTGRES,
            Self::Sqlite(..) => GroupConfig::SQLITE,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $r:ident => $call:expr) => {
        match $self {
            Repo::Postgres($r, _) => $call,
            Repo::Sqlite($r, _) => $call,
        }
    };
}

/// An id no event can be stored under: PostgreSQL's text holds no NUL, so
/// looking one up fails instead of finding nothing (schemathesis sent
/// `a\0b` as a concert's id and got a 500). Both stores answer such an id
/// as an aggregate without events, which the commands refuse as unknown.
fn never_stored(aggregate_id: &str) -> bool {
    aggregate_id.contains('\0')
}

impl PersistedEventRepository for Repo {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        if never_stored(aggregate_id) {
            return Ok(Vec::new());
        }
        delegate!(self, r => r.get_events::<A>(aggregate_id).await)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        if never_stored(aggregate_id) {
            return Ok(Vec::new());
        }
        delegate!(self, r => r.get_last_events::<A>(aggregate_id, last_sequence).await)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        if never_stored(aggregate_id) {
            return Ok(None);
        }
        delegate!(self, r => r.get_snapshot::<A>(aggregate_id).await)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        delegate!(self, r => r.persist::<A>(events, snapshot_update).await)
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, r => r.stream_events::<A>(aggregate_id).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, r => r.stream_all_events::<A>().await)
    }
}

/// How long one load or append may take before the command fails as
/// unavailable (a server that does not answer must not hold a request for
/// TCP's timeouts).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The event store did not answer within its timeout.
#[derive(Debug, thiserror::Error)]
#[error("the event store did not answer within {0:?}")]
pub struct TimedOut(pub std::time::Duration);

/// postgres-es and sqlite-es report a pool that timed out or a socket that
/// broke as an unknown error; Tessera answers those as "unavailable" (503),
/// not as a failure of its own (500).
fn unavailable_as_connection(e: PersistenceError) -> PersistenceError {
    match e {
        PersistenceError::UnknownError(inner)
            if inner
                .downcast_ref::<sqlx::Error>()
                .is_some_and(is_unavailable) =>
        {
            PersistenceError::ConnectionError(inner)
        }
        other => other,
    }
}

/// A pool that timed out or a broken socket: the store is unavailable
/// (503), not broken (500).
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// Tessera's event store: cqrs-es's `EventStore` over a [`Repo`], loads
/// through the repository, appends through the [`GroupCommit`].
#[derive(Clone)]
pub struct Store {
    repo: Repo,
    group: GroupCommit,
    commits: watch::Sender<u64>,
    timeout: std::time::Duration,
}

impl Store {
    pub fn new(repo: Repo) -> Self {
        let commits = watch::Sender::new(0);
        let group = GroupCommit::new(
            repo.target(),
            repo.group_config(),
            DEFAULT_TIMEOUT,
            commits.clone(),
        );
        Self {
            repo,
            group,
            commits,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Fails loads and appends that take longer than `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self.group = self.group.with_timeout(timeout);
        self
    }

    /// Groups appends by `config` instead of the store's default.
    #[must_use]
    pub fn with_group_commit(mut self, config: GroupConfig) -> Self {
        self.group = self.group.with_config(config);
        self
    }

    async fn bounded<T, E: std::error::Error>(
        &self,
        op: impl std::future::Future<Output = Result<T, PersistenceError>>,
    ) -> Result<T, AggregateError<E>> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(|e| AggregateError::from(unavailable_as_connection(e))),
            Err(_) => Err(AggregateError::DatabaseConnectionError(Box::new(TimedOut(
                self.timeout,
            )))),
        }
    }

    /// Ticks after every successful commit in this process: the embedded
    /// projector feed waits on it instead of polling.
    pub fn commit_signal(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The events of an aggregate after `after_sequence`, upcast and decoded:
    /// how the command bus brings a cached aggregate up to date.
    pub async fn load_after<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after_sequence: usize,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let rows = if after_sequence == 0 {
            self.bounded(self.repo.get_events::<A>(aggregate_id))
                .await?
        } else {
            self.bounded(self.repo.get_last_events::<A>(aggregate_id, after_sequence))
                .await?
        };
        rows.into_iter().map(decode::<A>).collect()
    }
}

fn decode<A: Aggregate>(
    mut row: SerializedEvent,
) -> Result<EventEnvelope<A>, AggregateError<A::Error>> {
    upcast_parts(
        &row.aggregate_type,
        &row.event_type,
        &mut row.event_version,
        &mut row.payload,
        UPCASTERS,
    );
    let payload = serde_json::from_value(row.payload)?;
    let metadata = match row.metadata {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => HashMap::new(),
    };
    Ok(EventEnvelope {
        aggregate_id: row.aggregate_id,
        sequence: row.sequence,
        payload,
        metadata,
    })
}

impl<A: Aggregate> EventStore<A> for Store {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.load_after::<A>(aggregate_id, 0).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let mut aggregate = A::default();
        let mut current_sequence = 0;
        for envelope in self.load_after::<A>(aggregate_id, 0).await? {
            current_sequence = envelope.sequence;
            aggregate.apply(envelope.payload);
        }
        Ok(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            current_sequence,
            current_snapshot: None,
        })
    }

    /// Appends `events` after `context.current_sequence`, all with the same
    /// `metadata` (see [`Store::append`]). The context's aggregate is not
    /// read: this store keeps no snapshots, so callers may pass a default one.
    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let events = events.into_iter().map(|e| (e, metadata.clone())).collect();
        self.append::<A>(&context.aggregate_id, context.current_sequence, events)
            .await
    }
}

impl Store {
    /// Appends `events` to an aggregate after `after_sequence`, each with its
    /// own metadata, through the group commit: answered once durable.
    /// Each event gets its own `event_id` (UUID v7) and `occurred_at` on top
    /// of the metadata it comes with.
    pub async fn append<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after_sequence: usize,
        events: Vec<(A::Event, HashMap<String, String>)>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let borrowed: Vec<(&A::Event, &HashMap<String, String>)> =
            events.iter().map(|(e, m)| (e, m)).collect();
        let stamps = stamps(events.len());
        let rows = rows::<A>(aggregate_id, after_sequence, &borrowed, &stamps)?;
        self.append_rows::<A>(rows).await?;
        Ok(events
            .into_iter()
            .zip(stamps)
            .zip(after_sequence + 1..)
            .map(|(((payload, mut metadata), stamp), sequence)| {
                metadata.insert("event_id".into(), stamp.event_id);
                metadata.insert("occurred_at".into(), stamp.occurred_at);
                EventEnvelope {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence,
                    payload,
                    metadata,
                }
            })
            .collect())
    }

    /// [`Store::append`] for the command bus: the events' metadata borrowed
    /// from their commands and nothing handed back, so an append costs no
    /// copy of either (the bus appends tens of thousands a second).
    pub(crate) async fn append_borrowed<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after_sequence: usize,
        events: &[(&A::Event, &HashMap<String, String>)],
    ) -> Result<(), AggregateError<A::Error>> {
        let rows = rows::<A>(aggregate_id, after_sequence, events, &stamps(events.len()))?;
        self.append_rows::<A>(rows).await
    }

    async fn append_rows<A: Aggregate>(
        &self,
        rows: Vec<Row>,
    ) -> Result<(), AggregateError<A::Error>> {
        match self.group.append(rows).await {
            Ok(()) => Ok(()),
            Err(AppendError::Conflict) => Err(AggregateError::AggregateConflict),
            Err(AppendError::Unavailable(cause)) => {
                Err(AggregateError::DatabaseConnectionError(cause))
            }
            Err(AppendError::Failed(cause)) => Err(AggregateError::UnexpectedError(cause)),
        }
    }
}

/// What the store adds to an event's metadata.
struct Stamp {
    event_id: String,
    occurred_at: String,
}

/// One stamp per event of an append: its own id, the append's time.
fn stamps(events: usize) -> Vec<Stamp> {
    let occurred_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    (0..events)
        .map(|_| Stamp {
            event_id: Uuid::now_v7().to_string(),
            occurred_at: occurred_at.clone(),
        })
        .collect()
}

/// The rows of `events`, serialized once each: the payload straight from
/// the event, the metadata from the command's with the event's stamp
/// beside it.
fn rows<A: Aggregate>(
    aggregate_id: &str,
    after_sequence: usize,
    events: &[(&A::Event, &HashMap<String, String>)],
    stamps: &[Stamp],
) -> Result<Vec<Row>, serde_json::Error> {
    events
        .iter()
        .zip(stamps)
        .zip(after_sequence + 1..)
        .map(|(((payload, metadata), stamp), sequence)| {
            Ok(Row {
                aggregate_type: A::TYPE,
                aggregate_id: aggregate_id.to_owned(),
                sequence,
                event_type: payload.event_type(),
                event_version: payload.event_version(),
                payload: serde_json::to_string(payload)?,
                metadata: serde_json::to_string(&StoredMetadata {
                    command: metadata,
                    stamp,
                })?,
            })
        })
        .collect()
}

/// An event's stored metadata: its command's, then its own id and time
/// (which replace any the command's metadata named the same).
struct StoredMetadata<'a> {
    command: &'a HashMap<String, String>,
    stamp: &'a Stamp,
}

impl serde::Serialize for StoredMetadata<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let own = |k: &str| k == "event_id" || k == "occurred_at";
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in self.command.iter().filter(|(k, _)| !own(k)) {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("event_id", &self.stamp.event_id)?;
        map.serialize_entry("occurred_at", &self.stamp.occurred_at)?;
        map.end()
    }
}

/// One row of the events table as both adapters select it for the log.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LogRow {
    pub tx_id: i64,
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: chrono::DateTime<Utc>,
}

impl LogRow {
    /// The columns [`LogRow`] reads, for `SELECT` lists.
    pub(crate) const COLUMNS: &'static str = "global_position, aggregate_type, aggregate_id, \
         sequence, event_type, event_version, payload, metadata, recorded_at";

    /// The records of the rows a read fetched, in their order, each upcast.
    pub(crate) fn into_records(
        rows: Vec<LogRow>,
        upcasters: &[Upcaster],
    ) -> Vec<tessera_events::LogRecord> {
        rows.into_iter().map(|r| r.into_record(upcasters)).collect()
    }

    /// Builds the envelope with its payload upcast to the current shape.
    pub(crate) fn into_record(self, upcasters: &[Upcaster]) -> tessera_events::LogRecord {
        let metadata = tessera_events::Metadata::from_stored(&self.metadata);
        let mut envelope = tessera_events::Envelope {
            event_id: metadata.event_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: u64::try_from(self.sequence).unwrap_or_default(),
            global_position: self.global_position,
            event_type: self.event_type,
            event_version: self.event_version,
            payload: self.payload,
            metadata,
            recorded_at: self.recorded_at,
        };
        tessera_events::upcast(&mut envelope, upcasters);
        tessera_events::LogRecord {
            at: tessera_events::LogPosition {
                tx_id: u64::try_from(self.tx_id).unwrap_or_default(),
                position: self.global_position,
            },
            envelope,
        }
    }
}
