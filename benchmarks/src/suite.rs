//! All the benchmarks in one run, in the order the report shows them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use tessera_projector::runner::DEFAULT_BATCH_SIZE as BATCH;

use crate::catchup::{self, CatchupConfig};
use crate::machine::Machine;
use crate::measure::Run;
use crate::rebuild::{self, Replayed};
use crate::report::{thousands, Report, Section};
use crate::write::{self, Target, WriteConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Commands,
    Appends,
    Rebuild,
    Catchup,
}

#[derive(Debug, Clone)]
pub struct SuiteConfig {
    pub write: WriteConfig,
    /// Events in the log the rebuilds fold.
    pub rebuild_events: u64,
    pub catchup: CatchupConfig,
    pub parts: Vec<Part>,
}

fn latency(run: &Run) -> String {
    let mut s = format!("p50 {:.1} ms, p99 {:.1} ms", run.p50_ms, run.p99_ms);
    if run.retries > 0 {
        s.push_str(&format!(
            ", {} conflict retries",
            thousands(run.retries as f64)
        ));
    }
    if run.failed > 0 {
        s.push_str(&format!(", {} failed", run.failed));
    }
    s
}

fn folded(r: &Replayed) -> String {
    format!(
        "{} events in {:.1} s",
        thousands(r.events as f64),
        r.seconds
    )
}

/// The bus beside plain cqrs-es on `target`; returns the bus's run.
async fn commands_section(
    w: &WriteConfig,
    target: Target,
    title: String,
    sections: &mut Vec<Section>,
) -> Result<Run> {
    let plain = write::cqrs_es_commands(w, target).await?;
    let bus = write::tessera_commands(w, target).await?;
    let mut s = Section::new(
        title,
        "commands",
        (
            "plain `CqrsFramework::execute` + retry (postgres-es)",
            plain.per_second,
            latency(&plain),
        ),
    );
    s.add(
        "Tessera `CommandBus::execute`",
        bus.per_second,
        latency(&bus),
    );
    sections.push(s);
    Ok(bus)
}

pub async fn run(config: &SuiteConfig) -> Result<Report> {
    let (_db, pool) = write::database(2).await?;
    let machine = Machine::describe(&pool).await;
    drop(pool);
    let w = config.write;
    let mut sections = Vec::new();
    let mut bus_distinct = None;
    if config.parts.contains(&Part::Commands) {
        progress("commands on distinct aggregates");
        let title = format!(
            "`Charge` commands on distinct aggregates ({} senders, {} accounts)",
            w.workers,
            w.workers * w.accounts_per_worker
        );
        let bus = commands_section(&w, Target::Distinct, title, &mut sections).await?;
        bus_distinct = Some(bus);
        progress("commands on one hot aggregate");
        let title = format!(
            "`Charge` commands on one hot aggregate ({} senders)",
            w.workers
        );
        commands_section(&w, Target::Hot, title, &mut sections).await?;
    }
    if config.parts.contains(&Part::Appends) {
        progress("appends");
        let raw = write::raw_inserts(&w).await?;
        let store = write::store_appends(&w).await?;
        let mut s = Section::new(
            format!(
                "Appended events, one per transaction ({} senders)",
                w.workers
            ),
            "events",
            (
                "single-row `INSERT` loop of ready rows, autocommit",
                raw.events_per_second,
                latency(&raw),
            ),
        );
        s.add(
            "Tessera event store `commit` (no aggregate)",
            store.events_per_second,
            latency(&store),
        );
        let bus = match bus_distinct {
            Some(bus) => bus,
            None => write::tessera_commands(&w, Target::Distinct).await?,
        };
        s.add(
            "Tessera `CommandBus::execute`, distinct aggregates",
            bus.events_per_second,
            latency(&bus),
        );
        sections.push(s);
        // the baseline keeps 50 rows in flight per sender; a group can only
        // hold the commands that are in flight, so the bus is also measured
        // with as many
        let wide = write::in_flight(&w, 50);
        let grouped = write::tessera_commands(&wide, Target::Distinct).await?;
        let grouped_rows = |s: &mut Section| {
            for (workers, run) in [(w.workers, &bus), (wide.workers, &grouped)] {
                s.add(
                    &format!(
                        "Tessera `CommandBus::execute`, distinct aggregates (group commit), {workers} commands in flight"
                    ),
                    run.events_per_second,
                    latency(run),
                );
            }
        };
        let fifty = write::raw_batches(&w, 50).await?;
        let mut s = Section::new(
            "Grouped appends against PostgreSQL's 50-row limit".to_owned(),
            "events",
            (
                "50-row `INSERT` transactions of ready rows",
                fifty.events_per_second,
                latency(&fifty),
            ),
        );
        grouped_rows(&mut s);
        sections.push(s);
        let distinct = write::raw_distinct_batches(&w, 50).await?;
        let mut s = Section::new(
            "Grouped appends against 50-row transactions of distinct rows".to_owned(),
            "events",
            (
                "50-row `INSERT` transactions of ready rows, each row its own aggregate, payload and metadata, bound as JSON text",
                distinct.events_per_second,
                latency(&distinct),
            ),
        );
        grouped_rows(&mut s);
        sections.push(s);
    }
    if config.parts.contains(&Part::Rebuild) {
        progress("rebuild");
        let (_db, pool) = write::database(8).await?;
        let log = rebuild::generate(&pool, config.rebuild_events).await?;
        let baseline = rebuild::query_replay(&pool, log).await?;
        let dir = tempfile::tempdir()?;
        let tessera = rebuild::tessera(&pool, log, dir.path()).await?;
        let memory = rebuild::query_replay_in_memory(&pool, log).await?;
        let mut s = Section::new(
            format!(
                "Rebuilding the accounts view from {} events ({} accounts)",
                thousands(log.events as f64),
                thousands(log.accounts as f64)
            ),
            "events",
            (
                "cqrs-es `QueryReplay` into a `PostgresViewRepository`",
                baseline.events_per_second,
                folded(&baseline),
            ),
        );
        s.add(
            "Tessera `admin rebuild accounts` (embedded document store)",
            tessera.events_per_second,
            folded(&tessera),
        );
        s.add(
            "reference: `QueryReplay` into memory (read and decode only)",
            memory.events_per_second,
            folded(&memory),
        );
        sections.push(s);
    }
    if config.parts.contains(&Part::Catchup) {
        progress("catch-up from Kafka into MongoDB");
        let c = config.catchup;
        // tansu acknowledges about 20 one-message batches a second: the
        // baseline publishes a sample of ten accounts, not the backlog
        let sample = CatchupConfig {
            accounts: c.accounts.min(10),
            ..c
        };
        let (_, sampled, one_per_batch) = catchup::publish_backlog(sample, 1).await?;
        let (topic, events, relay_rate) =
            catchup::publish_backlog(c, tessera_write_side::relay::MESSAGES_PER_BATCH).await?;
        let mut publish = Section::new(
            format!(
                "Publishing {} events to Kafka with the relay's producer",
                thousands(events as f64)
            ),
            "events",
            (
                "one message per batch",
                one_per_batch,
                format!("a sample of {} events", thousands(sampled as f64)),
            ),
        );
        publish.add(
            &format!(
                "{} messages per batch (the relay)",
                tessera_write_side::relay::MESSAGES_PER_BATCH
            ),
            relay_rate,
            String::new(),
        );
        sections.push(publish);
        let raw = catchup::raw_upserts(events, false).await?;
        let indexed = catchup::raw_upserts(events, true).await?;
        let mut s = Section::new(
            format!(
                "Catching up a backlog of {} events from Kafka into MongoDB ({} accounts)",
                thousands(events as f64),
                thousands(c.accounts as f64)
            ),
            "events (documents for the baseline)",
            (
                "raw upserts, 16 at a time (the document store's write rate)",
                raw.per_second,
                format!(
                    "{} documents in {:.1} s",
                    thousands(raw.documents as f64),
                    raw.seconds
                ),
            ),
        );
        s.add(
            "raw upserts into a collection with one secondary index",
            indexed.per_second,
            format!(
                "{} documents in {:.1} s",
                thousands(indexed.documents as f64),
                indexed.seconds
            ),
        );
        // one event per batch: one document round trip per event, the live
        // projector's write pattern before it coalesced batches. About 170
        // events/s here (bench-20261202T022305Z), so it reads a backlog of
        // fifty accounts of its own.
        let few = CatchupConfig {
            accounts: c.accounts.min(50),
            ..c
        };
        let (few_topic, _, _) =
            catchup::publish_backlog(few, tessera_write_side::relay::MESSAGES_PER_BATCH).await?;
        let single = catchup::project(
            Arc::new(tessera_projector::projection::Accounts),
            &few_topic,
            few,
            1,
        )
        .await?;
        s.add(
            "projector `accounts`, one event per batch (one write per event)",
            single.per_second,
            single.detail(),
        );
        for p in catchup::projections() {
            let name = p.name();
            let run = catchup::project(p, &topic, c, BATCH).await?;
            s.add(
                &format!("projector `{name}` from the start of the topic, batches of {BATCH}"),
                run.per_second,
                run.detail(),
            );
        }
        sections.push(s);
    }
    Ok(Report {
        when: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine,
        settings: format!(
            "{} s per measurement, each in a fresh database; the load generator runs in the same process",
            w.duration.as_secs_f64()
        ),
        sections,
    })
}

fn progress(what: &str) {
    eprintln!("[bench] {what}");
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            write: WriteConfig {
                workers: 32,
                accounts_per_worker: 64,
                duration: Duration::from_secs(8),
            },
            rebuild_events: 100_000,
            catchup: CatchupConfig {
                accounts: 500,
                charges_per_account: 40,
            },
            parts: vec![Part::Commands, Part::Appends, Part::Rebuild, Part::Catchup],
        }
    }
}
