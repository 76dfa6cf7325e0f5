//! `tessera admin`: operator commands. They open the stores of the
//! configured mode themselves (the embedded files in the data folder, or
//! PostgreSQL and MongoDB), so they work beside a running deployment.

use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use secrecy::ExposeSecret;
use serde_json::json;
use tessera_documents::store::embedded::EmbeddedStore;
use tessera_documents::store::DocumentStore;
use tessera_events::audit::{self, AuditRecord, Chain, Link, Trailer};
use tessera_events::{EventLog, LogFilter};
use tessera_http::auth::Role;
use tessera_projector::deadletters;
use tessera_projector::projection::{self, Projection};
use tessera_projector::rebuild::{self, Progress, RebuildConfig};
use tessera_write_side::store::postgres::{self, PgEventLog};
use tessera_write_side::store::sqlite::{self, SqliteEventLog};

/// `println!` that hands back write errors (a reader that closed the pipe,
/// as `| head` does) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

use crate::cli::{AdminCommand, DlqCommand, ExportFormat, RoleArg};
use crate::progress::Reporter;
use crate::roles;
use crate::settings::Settings;

/// The event log of the configured mode (read only).
pub(crate) async fn event_log(s: &Settings) -> Result<Arc<dyn EventLog>> {
    Ok(match &s.database_url {
        Some(url) => {
            let pool = postgres::connect(url.expose_secret(), 4)
                .await
                .context("cannot connect to PostgreSQL")?;
            Arc::new(PgEventLog::new(pool))
        }
        None => {
            let path = s.data_dir.join("events.db");
            if !path.exists() {
                bail!("no embedded event store at {}", path.display());
            }
            Arc::new(SqliteEventLog::new(sqlite::open(&path, 4).await?))
        }
    })
}

/// The document store of the configured mode.
pub(crate) async fn documents(s: &Settings) -> Result<Arc<dyn DocumentStore>> {
    if s.mongodb_uri.is_some() {
        return roles::mongo(s).await;
    }
    Ok(Arc::new(
        EmbeddedStore::open(&s.data_dir.join("documents.db"))
            .await
            .context("cannot open the embedded document store")?,
    ))
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

fn find(name: &str) -> Result<Arc<dyn Projection>> {
    let all = projection::all();
    all.iter()
        .find(|p| p.name() == name)
        .cloned()
        .with_context(|| {
            format!(
                "unknown projection {name:?}; known: {}",
                all.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            )
        })
}

pub async fn run(s: &Settings, command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Token {
            user,
            role,
            ttl_seconds,
            json,
        } => token(s, &user, role, ttl_seconds, json),
        AdminCommand::Status { json } => status(s, json).await,
        AdminCommand::Rebuild {
            projection,
            all,
            yes,
            json,
        } => rebuild(s, projection, all, yes, json).await,
        AdminCommand::Replay {
            aggregate_type,
            aggregate_id,
            json,
        } => replay(s, &aggregate_type, &aggregate_id, json).await,
        AdminCommand::Export {
            aggregate_type,
            aggregate_id,
            since,
            until,
            format,
            output,
        } => {
            let filter = LogFilter {
                aggregate_type,
                aggregate_id,
                since,
                until,
            };
            export(&*event_log(s).await?, &filter, format, output.as_deref()).await
        }
        AdminCommand::VerifyExport { file, json } => verify_export(&file, json),
        AdminCommand::Dlq { command } => dlq(s, command).await,
    }
}

fn token(
    s: &Settings,
    user: &str,
    role: RoleArg,
    ttl_seconds: Option<u64>,
    json: bool,
) -> Result<()> {
    if user.trim().is_empty() {
        bail!("--user must not be empty");
    }
    let auth = roles::authenticator(s, &roles::jwt_secret(s, s.database_url.is_none())?)?;
    let role = match role {
        RoleArg::User => Role::User,
        RoleArg::Admin => Role::Admin,
    };
    let ttl = ttl_seconds.map_or_else(|| s.token_ttl(), Duration::from_secs);
    let token = auth.issue_with_ttl(user, role, ttl);
    if json {
        say!(
            "{}",
            json!({ "access_token": token.access_token, "token_type": "Bearer", "expires_in": token.expires_in })
        )?;
    } else {
        say!("{}", token.access_token)?;
    }
    Ok(())
}

async fn status(s: &Settings, json: bool) -> Result<()> {
    let head = event_log(s).await?.head().await?;
    let docs = documents(s).await?;
    let report = tessera_documents::status::report(
        &*docs,
        tessera_documents::documents::collections::PROJECTED,
        head,
    )
    .await?;
    if json {
        return print_json(&report);
    }
    say!("head of the log: position {}", head.position)?;
    say!(
        "{:<18} {:<34} {:>10} {:>8} {:>12}  updated",
        "projection",
        "collection",
        "position",
        "lag",
        "dead letters"
    )?;
    for r in report {
        say!(
            "{:<18} {:<34} {:>10} {:>8} {:>12}  {}",
            r.name,
            r.collection,
            r.last_position,
            r.lag,
            r.dead_letters,
            r.updated_at
                .map_or_else(|| "never".into(), |t| t.to_rfc3339())
        )?;
    }
    Ok(())
}

async fn rebuild(
    s: &Settings,
    projection: Option<String>,
    all: bool,
    yes: bool,
    json: bool,
) -> Result<()> {
    let targets = if all {
        let all = projection::all();
        if !yes {
            confirm(&format!("Rebuild all {} projections?", all.len()))?;
        }
        all
    } else {
        vec![find(projection.as_deref().unwrap_or_default())?]
    };
    let log = event_log(s).await?;
    let docs = documents(s).await?;
    let config = RebuildConfig::default();
    let mut reports = Vec::new();
    let mut failed = None;
    for p in targets {
        let reporter = Reporter::new(p.name(), json);
        let report =
            rebuild::rebuild(p, Arc::clone(&docs), Arc::clone(&log), &config, &reporter).await;
        reporter.finish();
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        if !json {
            say!(
                "rebuilt {} from {} events in {:.1}s ({:.0} events/s); {} → {}; live projectors paused {} ms",
                report.projection, report.events, report.seconds, report.events_per_second, report.from, report.to, report.frozen_ms
            )?;
        }
        reports.push(report);
    }
    // the projections switched before a failure still retire their old collections
    if !json && !reports.is_empty() {
        say!("dropping the old collections once readers moved")?;
    }
    rebuild::retire(&*docs, &reports, &config).await?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if json {
        print_json(&reports)?;
    }
    Ok(())
}

fn confirm(question: &str) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("{question} Pass --yes to confirm when not on a terminal");
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed")
    }
}

async fn replay(s: &Settings, aggregate_type: &str, aggregate_id: &str, json: bool) -> Result<()> {
    let log = event_log(s).await?;
    let docs = documents(s).await?;
    let reports = rebuild::replay(
        &projection::all(),
        &*docs,
        &*log,
        aggregate_type,
        aggregate_id,
    )
    .await?;
    if reports.is_empty() {
        bail!("no projection reads {aggregate_type:?} events");
    }
    if json {
        return print_json(&reports);
    }
    for r in reports {
        match r.skipped {
            Some(why) => say!("{}: skipped, {why}", r.projection)?,
            None => say!(
                "{}: {} documents refolded from {} events",
                r.projection,
                r.documents,
                r.events
            )?,
        }
    }
    Ok(())
}

const CSV_HEADER: [&str; 13] = [
    "record",
    "global_position",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "recorded_at",
    "payload",
    "metadata",
    "prev_hash",
    "hash",
];

/// Where export records go: JSON lines or CSV rows, both buffered.
enum Sink {
    Json(BufWriter<Box<dyn std::io::Write>>),
    Csv(Box<csv::Writer<Box<dyn std::io::Write>>>),
}

impl Sink {
    fn new(format: ExportFormat, sink: Box<dyn std::io::Write>) -> Result<Self> {
        Ok(match format {
            ExportFormat::Jsonl => Self::Json(BufWriter::with_capacity(1 << 20, sink)),
            ExportFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .buffer_capacity(1 << 20)
                    .from_writer(sink);
                w.write_record(CSV_HEADER)?;
                Self::Csv(Box::new(w))
            }
        })
    }

    fn record(&mut self, r: &AuditRecord) -> Result<()> {
        match self {
            Self::Json(out) => {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
            Self::Csv(w) => {
                let e = &r.envelope;
                let recorded_at = serde_json::to_value(e.recorded_at)?;
                w.write_record([
                    "event",
                    &e.global_position.to_string(),
                    &e.event_id.to_string(),
                    &e.aggregate_type,
                    &e.aggregate_id,
                    &e.sequence.to_string(),
                    &e.event_type,
                    &e.event_version,
                    recorded_at.as_str().unwrap_or_default(),
                    &e.payload.to_string(),
                    &serde_json::to_string(&e.metadata)?,
                    &r.prev_hash,
                    &r.hash,
                ])?;
            }
        }
        Ok(())
    }

    fn finish(self, trailer: &Trailer) -> Result<()> {
        match self {
            Self::Json(mut out) => {
                serde_json::to_writer(&mut out, trailer)?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
            Self::Csv(mut w) => {
                // The count sits in the `sequence` column and the head hash in
                // `hash`, so the trailer row keeps the header's shape.
                let count = trailer.count.to_string();
                w.write_record([
                    Trailer::TYPE,
                    "",
                    "",
                    "",
                    "",
                    &count,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    &trailer.head,
                ])?;
                w.flush()?;
            }
        }
        Ok(())
    }
}

/// Streams the log out page by page: memory stays flat however long it is.
pub(crate) async fn export(
    log: &dyn EventLog,
    filter: &LogFilter,
    format: ExportFormat,
    output: Option<&std::path::Path>,
) -> Result<()> {
    let target: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = Sink::new(format, target)?;
    let reporter = Reporter::new("export", output.is_none());
    let total = u64::try_from(log.head().await?.position).unwrap_or(0);
    let mut chain = Chain::default();
    let mut after = 0;
    loop {
        let page = log.read_filtered(after, 10_000, filter).await?;
        let Some(last) = page.last().map(|r| r.envelope.global_position) else {
            break;
        };
        for record in page {
            sink.record(&chain.link(record.envelope))?;
        }
        after = last;
        let done = chain.trailer().count;
        reporter.update(done, total.max(done));
    }
    let trailer = chain.trailer();
    sink.finish(&trailer)?;
    reporter.finish();
    if output.is_some() {
        eprintln!(
            "exported {} events; head hash {}",
            trailer.count, trailer.head
        );
    }
    Ok(())
}

/// Reads an export (JSON lines or CSV) back into chain links.
pub(crate) fn read_export(
    path: &std::path::Path,
) -> Result<(Vec<Link>, Option<Trailer>, Vec<audit::Problem>)> {
    let mut file = BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    // JSON lines start with an object; CSV with its header
    let json = file.fill_buf()?.first() == Some(&b'{');
    let mut links = Vec::new();
    let mut trailer = None;
    let mut unreadable = Vec::new();
    if json {
        for (n, line) in file.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    unreadable.push(audit::Problem::Unreadable {
                        line: n as u64 + 1,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            if value.get("record_type").and_then(|v| v.as_str()) == Some(Trailer::TYPE) {
                trailer = serde_json::from_value(value).ok();
                continue;
            }
            match serde_json::from_value::<AuditRecord>(value) {
                Ok(r) => links.push(Link::of(&r)),
                Err(e) => unreadable.push(audit::Problem::Unreadable {
                    line: n as u64 + 1,
                    reason: e.to_string(),
                }),
            }
        }
    } else {
        let mut reader = csv::ReaderBuilder::new().from_reader(file);
        for (n, row) in reader.records().enumerate() {
            let line = n as u64 + 2;
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    unreadable.push(audit::Problem::Unreadable {
                        line,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let field = |i: usize| row.get(i).unwrap_or_default();
            if field(0) == "trailer" {
                trailer = Some(Trailer::new(
                    field(5).parse().unwrap_or(0),
                    field(12).to_owned(),
                ));
                continue;
            }
            let parsed = (|| -> Result<AuditRecord> {
                let envelope = tessera_events::Envelope {
                    global_position: field(1).parse()?,
                    event_id: field(2).parse()?,
                    aggregate_type: field(3).to_owned(),
                    aggregate_id: field(4).to_owned(),
                    sequence: field(5).parse()?,
                    event_type: field(6).to_owned(),
                    event_version: field(7).to_owned(),
                    recorded_at: field(8).parse()?,
                    payload: serde_json::from_str(field(9))?,
                    metadata: serde_json::from_str(field(10))?,
                };
                Ok(AuditRecord {
                    envelope,
                    prev_hash: field(11).to_owned(),
                    hash: field(12).to_owned(),
                })
            })();
            match parsed {
                Ok(r) => links.push(Link::of(&r)),
                Err(e) => unreadable.push(audit::Problem::Unreadable {
                    line,
                    reason: e.to_string(),
                }),
            }
        }
    }
    Ok((links, trailer, unreadable))
}

fn verify_export(path: &std::path::Path, json: bool) -> Result<()> {
    let (links, trailer, mut problems) = read_export(path)?;
    problems.extend(audit::verify(&links, trailer.as_ref()));
    if json {
        print_json(&json!({
            "records": links.len(),
            "intact": problems.is_empty(),
            "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))?;
    } else if problems.is_empty() {
        say!(
            "intact: {} records, head hash {}",
            links.len(),
            trailer.map_or_else(String::new, |t| t.head)
        )?;
    } else {
        for p in &problems {
            say!("{p}")?;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("the export is not intact ({} problems)", problems.len())
    }
}

async fn dlq(s: &Settings, command: DlqCommand) -> Result<()> {
    let docs = documents(s).await?;
    let all = projection::all();
    match command {
        DlqCommand::List { projection, json } => {
            let letters = deadletters::pending(&*docs, &all, projection.as_deref()).await?;
            if json {
                return print_json(&letters);
            }
            if letters.is_empty() {
                say!("no pending dead letters")?;
            }
            for l in letters {
                say!(
                    "{}\n  {} {}:{} #{}  attempts {}  since {}\n  {}",
                    l.id,
                    l.doc.projection,
                    l.doc.aggregate_type,
                    l.doc.aggregate_id,
                    l.doc.sequence,
                    l.doc.attempts,
                    l.doc.created_at.to_rfc3339(),
                    l.doc.error
                )?;
            }
            Ok(())
        }
        DlqCommand::Retry {
            id,
            all: every,
            json,
        } => {
            let log = event_log(s).await?;
            let report = deadletters::retry(
                &*docs,
                &*log,
                &all,
                if every { None } else { id.as_deref() },
            )
            .await?;
            if json {
                return print_json(&report);
            }
            say!("retried {} letters", report.retried.len())?;
            if report.repaired_from_log > 0 {
                say!(
                    "applied {} missing events from the event log first",
                    report.repaired_from_log
                )?;
            }
            for (id, why) in &report.still_failing {
                say!("still failing: {id}: {why}")?;
            }
            Ok(())
        }
        DlqCommand::Discard { id } => {
            if deadletters::discard(&*docs, &id).await? {
                say!("discarded {id}")?;
                Ok(())
            } else {
                bail!("no pending dead letter {id}")
            }
        }
    }
}
