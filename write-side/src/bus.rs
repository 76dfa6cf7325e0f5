//! The command bus: load → handle → commit over cqrs-es's `EventStore`,
//! returning what was committed.
//!
//! `CqrsFramework::execute` returns nothing; Tessera needs the new version
//! (for read-your-writes), bounded retries of optimistic conflicts, commands
//! on one aggregate serialized inside the process and decided in batches
//! (see [`CommandBus`]), and appends grouped across aggregates (the store's
//! group commit).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateError};
use tessera_runtime::{Backoff, Jitter};
use tokio::sync::oneshot;

use crate::domain::{DomainError, ErrorKind, Named};
use crate::store::Store;

/// Who sent a command, and as part of what: becomes the events' metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub request_id: Option<String>,
    /// The W3C trace context of the work that issued the command (the
    /// request's span), kept on its events so the relay and the projectors
    /// continue the same trace.
    pub traceparent: Option<String>,
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
            traceparent: tessera_runtime::trace::current().map(|t| t.to_string()),
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
        if let Some(t) = &self.traceparent {
            m.insert("traceparent".into(), t.clone());
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

/// An aggregate as the bus keeps it: its state and the sequence it is at.
struct Slot<A> {
    aggregate: A,
    sequence: usize,
}

/// What a command came to: appended (or nothing to append) at a version.
#[derive(Debug, Clone, Copy)]
struct Done {
    version: u64,
    appended: usize,
}

type Answer<A> = Result<Done, CommandError<<A as Aggregate>::Error>>;

/// A caller waiting for its command, its output type erased so that one
/// queue holds the commands of every call site.
trait Waiter<A: Aggregate>: Send
where
    A::Error: DomainError,
{
    /// Reads the caller's output off the state right after its command (and
    /// again if the command is decided again after a conflict).
    fn view(&mut self, aggregate: &A);
    fn answer(self: Box<Self>, answer: Answer<A>);
}

struct Reply<A: Aggregate, T, F>
where
    A::Error: DomainError,
{
    view: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<Committed<T>, CommandError<A::Error>>>,
}

impl<A, T, F> Waiter<A> for Reply<A, T, F>
where
    A: Aggregate,
    A::Error: DomainError,
    T: Send + 'static,
    F: Fn(&A) -> T + Send + 'static,
{
    fn view(&mut self, aggregate: &A) {
        self.output = Some((self.view)(aggregate));
    }

    fn answer(self: Box<Self>, answer: Answer<A>) {
        let Reply { output, reply, .. } = *self;
        let result = answer.and_then(|done| match output {
            Some(output) => Ok(Committed {
                version: done.version,
                appended: done.appended,
                output,
            }),
            None => Err(CommandError::Failed(
                "a command was answered before it was decided".into(),
            )),
        });
        let _ = reply.send(result);
    }
}

/// A command (or a read) waiting for its aggregate.
struct Queued<A: Aggregate>
where
    A::Error: DomainError,
{
    /// `None`: a read, decided like a command that changes nothing.
    command: Option<A::Command>,
    metadata: HashMap<String, String>,
    waiter: Box<dyn Waiter<A>>,
}

/// How one queued command was decided in a batch.
enum Decision<E> {
    Done(Done),
    Rejected(E),
    /// Not decided in this round (an earlier rule wrote events and then
    /// refused, leaving the state changed): decided again on a fresh load.
    Deferred,
}

/// One aggregate in the bus: the cached state and the commands waiting for
/// it. One worker at a time owns the state while `working`.
struct Entry<A: Aggregate>
where
    A::Error: DomainError,
{
    state: Mutex<EntryState<A>>,
}

struct EntryState<A: Aggregate>
where
    A::Error: DomainError,
{
    slot: Option<Slot<A>>,
    queue: VecDeque<Queued<A>>,
    working: bool,
}

impl<A: Aggregate> Entry<A>
where
    A::Error: DomainError,
{
    fn new() -> Self {
        Self {
            state: Mutex::new(EntryState {
                slot: None,
                queue: VecDeque::new(),
                working: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EntryState<A>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    /// Attempts per command before an optimistic conflict becomes a 409.
    pub max_attempts: u32,
    /// Aggregates kept in memory; idle ones beyond this are dropped.
    pub cache_capacity: usize,
    /// Commands on one aggregate decided one after another and committed as
    /// one append, at the most.
    pub max_batch: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            cache_capacity: 50_000,
            max_batch: 256,
        }
    }
}

/// Runs commands of one aggregate type.
///
/// Commands on one aggregate queue up behind each other. A worker task per
/// busy aggregate takes everything queued, decides it in order against the
/// in-memory state and appends all the accepted events at once (through the
/// store's group commit, together with other aggregates' appends), then
/// answers each command. So a hot aggregate (a coupon drop, two seats)
/// costs one append per batch, not per command, and a rejection costs no
/// I/O of its own.
///
/// The state is decided on as cached: the append proves it was current (it
/// conflicts if another writer appended first, and then the batch is
/// decided again on a fresh load). A batch that appends nothing (only
/// rejections, repeats or reads) proves nothing, so it checks the store for
/// newer events once before it answers: another write-side instance may
/// have appended, and deciding on stale state could wrongly reject.
pub struct CommandBus<A: Aggregate>
where
    A::Error: DomainError,
{
    shared: Arc<Shared<A>>,
}

struct Shared<A: Aggregate>
where
    A::Error: DomainError,
{
    store: Store,
    services: A::Services,
    entries: Mutex<HashMap<String, Arc<Entry<A>>>>,
    config: BusConfig,
}

impl<A> CommandBus<A>
where
    A: Aggregate + 'static,
    A::Command: Clone + Named + Send + 'static,
    A::Error: DomainError,
    A::Services: 'static,
{
    pub fn new(store: Store, services: A::Services, config: BusConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                services,
                entries: Mutex::new(HashMap::new()),
                config,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Queues `item` on the aggregate and starts its worker if none runs.
    fn enqueue<T>(
        &self,
        id: &str,
        command: Option<A::Command>,
        metadata: HashMap<String, String>,
        view: impl Fn(&A) -> T + Send + 'static,
    ) -> oneshot::Receiver<Result<Committed<T>, CommandError<A::Error>>>
    where
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let item = Queued {
            command,
            metadata,
            waiter: Box::new(Reply {
                view,
                output: None,
                reply,
            }),
        };
        let entry = self.shared.entry(id);
        let start = {
            let mut state = entry.lock();
            state.queue.push_back(item);
            !std::mem::replace(&mut state.working, true)
        };
        if start {
            // the worker is a task of its own: a caller that goes away does
            // not strand the commands queued behind it
            tokio::spawn(work(Arc::clone(&self.shared), id.to_owned(), entry));
        }
        answer
    }

    /// Reads the current state of an aggregate without changing it.
    pub async fn read<T>(
        &self,
        id: &str,
        view: impl Fn(&A) -> T + Send + 'static,
    ) -> Result<T, CommandError<A::Error>>
    where
        T: Send + 'static,
    {
        let answer = self.enqueue(id, None, HashMap::new(), view);
        answer
            .await
            .unwrap_or_else(|_| Err(worker_lost()))
            .map(|c| c.output)
    }

    /// Runs a command and reads `view` off the aggregate right after it.
    /// Records `tessera_command_duration_seconds` and
    /// `tessera_commands_total` by aggregate, command and outcome, and
    /// `tessera_events_appended_total`.
    pub async fn execute<T>(
        &self,
        id: &str,
        command: A::Command,
        context: &CommandContext,
        view: impl Fn(&A) -> T + Send + 'static,
    ) -> Result<Committed<T>, CommandError<A::Error>>
    where
        T: Send + 'static,
    {
        let name = command.name();
        let started = std::time::Instant::now();
        let answer = self.enqueue(id, Some(command), context.metadata(), view);
        let result = answer.await.unwrap_or_else(|_| Err(worker_lost()));
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
}

fn worker_lost<E: DomainError>() -> CommandError<E> {
    CommandError::Failed("the aggregate's worker ended without an answer".into())
}

/// Drains an aggregate's queue batch by batch, then hands the state back.
async fn work<A>(shared: Arc<Shared<A>>, id: String, entry: Arc<Entry<A>>)
where
    A: Aggregate + 'static,
    A::Command: Clone + Send + 'static,
    A::Error: DomainError,
    A::Services: 'static,
{
    let guard = WorkGuard(&entry);
    let mut slot = entry.lock().slot.take();
    loop {
        let batch: Vec<Queued<A>> = {
            let mut state = entry.lock();
            if state.queue.is_empty() {
                state.slot = slot;
                state.working = false;
                break;
            }
            let take = state.queue.len().min(shared.config.max_batch.max(1));
            state.queue.drain(..take).collect()
        };
        metrics::histogram!("tessera_bus_batch_commands", "aggregate" => A::TYPE)
            .record(batch.len() as f64);
        slot = shared.run_batch(&id, slot, batch).await;
    }
    drop(guard);
}

/// Leaves the aggregate workable if its worker panics: the queued callers
/// are answered (their channels close) and the next command starts afresh.
struct WorkGuard<'a, A: Aggregate>(&'a Entry<A>)
where
    A::Error: DomainError;

impl<A: Aggregate> Drop for WorkGuard<'_, A>
where
    A::Error: DomainError,
{
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.lock();
            state.queue.clear();
            state.slot = None;
            state.working = false;
        }
    }
}

impl<A> Shared<A>
where
    A: Aggregate + 'static,
    A::Command: Clone + Send + 'static,
    A::Error: DomainError,
    A::Services: 'static,
{
    fn entry(&self, id: &str) -> Arc<Entry<A>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get(id) {
            return Arc::clone(entry);
        }
        if entries.len() >= self.config.cache_capacity {
            // drop idle aggregates (no worker holds them)
            entries.retain(|_, e| Arc::strong_count(e) > 1);
        }
        Arc::clone(
            entries
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Entry::new())),
        )
    }

    /// Brings a slot up to date with the store: loads only the events after
    /// its sequence (all of them without a slot). Says whether any came.
    async fn refresh(
        &self,
        id: &str,
        slot: Option<Slot<A>>,
    ) -> Result<(Slot<A>, bool), AggregateError<A::Error>> {
        let mut slot = slot.unwrap_or_else(|| Slot {
            aggregate: A::default(),
            sequence: 0,
        });
        let mut changed = false;
        for envelope in self.store.load_after::<A>(id, slot.sequence).await? {
            slot.sequence = envelope.sequence;
            slot.aggregate.apply(envelope.payload);
            changed = true;
        }
        Ok((slot, changed))
    }

    /// Decides a batch against the state and appends what it accepted as
    /// one append; answers every command in it. Returns the state to keep
    /// cached (`None` when it must be loaded afresh).
    async fn run_batch(
        &self,
        id: &str,
        mut slot: Option<Slot<A>>,
        mut items: Vec<Queued<A>>,
    ) -> Option<Slot<A>> {
        // whether the state is known current: loaded in this batch
        let mut current_known = false;
        let mut attempt = 0;
        while !items.is_empty() {
            attempt += 1;
            let mut state = match slot.take() {
                Some(s) => s,
                None => match self.refresh(id, None).await {
                    Ok((s, _)) => {
                        current_known = true;
                        s
                    }
                    Err(e) => {
                        answer_all(items, CommandError::from_aggregate(e));
                        return None;
                    }
                },
            };
            let base = state.sequence;
            let (events, decisions, tainted) = self.decide(&mut state, &mut items).await;
            if events.is_empty() {
                if !current_known && !tainted {
                    // nothing appended proves the state current: look once
                    match self.refresh(id, Some(state)).await {
                        Ok((fresh, changed)) => {
                            current_known = true;
                            slot = Some(fresh);
                            if changed {
                                attempt -= 1; // not a conflict: decide again
                                continue;
                            }
                        }
                        Err(e) => {
                            answer_all(items, CommandError::from_aggregate(e));
                            return None;
                        }
                    }
                } else {
                    slot = (!tainted).then_some(state);
                }
                items = answer_decided(items, decisions);
                if !items.is_empty() {
                    slot = None; // deferred after a tainted state
                }
                continue;
            }
            let appended = events.len();
            let borrowed: Vec<(&A::Event, &HashMap<String, String>)> = events
                .iter()
                .map(|(e, i)| (e, &items[*i].metadata))
                .collect();
            match self.store.append_borrowed::<A>(id, base, &borrowed).await {
                Ok(_) => {
                    state.sequence = base + appended;
                    slot = (!tainted).then_some(state);
                    current_known = !tainted;
                    items = answer_decided(items, decisions);
                    if !items.is_empty() {
                        slot = None;
                        current_known = false;
                    }
                }
                Err(AggregateError::AggregateConflict) => {
                    // another instance appended first: the state holds our
                    // unwritten events, so it is dropped and loaded again
                    if attempt >= self.config.max_attempts {
                        answer_all(items, CommandError::Conflict { attempts: attempt });
                        return None;
                    }
                    tracing::debug!(attempt, aggregate_id = id, "optimistic conflict, retrying");
                    tokio::time::sleep(CONFLICT_BACKOFF.delay(attempt)).await;
                    current_known = false;
                }
                Err(e) => {
                    answer_all(items, CommandError::from_aggregate(e));
                    return None;
                }
            }
        }
        slot
    }

    /// Decides each queued command in order on `state`, applying what it
    /// accepts. Returns the accepted events with their commands' places in
    /// `items` (whose metadata they are stored with),
    /// a decision per command, and whether a refusing rule left the state
    /// changed (then the commands after it are deferred).
    async fn decide(
        &self,
        state: &mut Slot<A>,
        items: &mut [Queued<A>],
    ) -> (Vec<(A::Event, usize)>, Vec<Decision<A::Error>>, bool) {
        let base = state.sequence;
        let mut events = Vec::new();
        let mut decisions = Vec::with_capacity(items.len());
        let mut tainted = false;
        for (place, item) in items.iter_mut().enumerate() {
            if tainted {
                decisions.push(Decision::Deferred);
                continue;
            }
            let Some(command) = &item.command else {
                item.waiter.view(&state.aggregate);
                decisions.push(Decision::Done(Done {
                    version: (base + events.len()) as u64,
                    appended: 0,
                }));
                continue;
            };
            let sink = EventSink::default();
            let decided = state
                .aggregate
                .handle(command.clone(), &self.services, &sink)
                .await;
            let new = sink.collect().await;
            match decided {
                Ok(()) => {
                    let appended = new.len();
                    events.extend(new.into_iter().map(|e| (e, place)));
                    item.waiter.view(&state.aggregate);
                    decisions.push(Decision::Done(Done {
                        version: (base + events.len()) as u64,
                        appended,
                    }));
                }
                Err(e) => {
                    tainted = !new.is_empty();
                    decisions.push(Decision::Rejected(e));
                }
            }
        }
        (events, decisions, tainted)
    }
}

/// Answers the decided commands; returns the deferred ones.
fn answer_decided<A: Aggregate>(
    items: Vec<Queued<A>>,
    decisions: Vec<Decision<A::Error>>,
) -> Vec<Queued<A>>
where
    A::Error: DomainError,
{
    let mut deferred = Vec::new();
    for (item, decision) in items.into_iter().zip(decisions) {
        match decision {
            Decision::Done(done) => item.waiter.answer(Ok(done)),
            Decision::Rejected(e) => item.waiter.answer(Err(CommandError::from_aggregate(
                AggregateError::UserError(e),
            ))),
            Decision::Deferred => deferred.push(item),
        }
    }
    deferred
}

/// Answers every command of a batch with the same failure.
fn answer_all<A: Aggregate>(items: Vec<Queued<A>>, error: CommandError<A::Error>)
where
    A::Error: DomainError,
{
    let error = SharedError::from(error);
    for item in items {
        item.waiter.answer(Err(error.copy()));
    }
}

/// A batch-wide failure (a load or an append), copied to every command of
/// the batch.
enum SharedError {
    Conflict(u32),
    Failed(Arc<dyn std::error::Error + Send + Sync>),
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
}

impl<E: DomainError> From<CommandError<E>> for SharedError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            // a load or an append is not a decision: a rejection here is a
            // stored event the domain refuses, a failure of the store
            CommandError::Rejected(e) => Self::Failed(Arc::new(e)),
            CommandError::Conflict { attempts } => Self::Conflict(attempts),
            CommandError::Failed(c) => Self::Failed(Arc::from(c)),
            CommandError::Unavailable(c) => Self::Unavailable(Arc::from(c)),
        }
    }
}

impl SharedError {
    fn copy<E: DomainError>(&self) -> CommandError<E> {
        match self {
            Self::Conflict(attempts) => CommandError::Conflict {
                attempts: *attempts,
            },
            Self::Failed(c) => CommandError::Failed(Box::new(SharedCause(Arc::clone(c)))),
            Self::Unavailable(c) => CommandError::Unavailable(Box::new(SharedCause(Arc::clone(c)))),
        }
    }
}

/// One cause reported to several callers.
#[derive(Debug)]
pub struct SharedCause(pub Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
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
