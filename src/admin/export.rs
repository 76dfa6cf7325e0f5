//! `admin export` and `admin verify-export`: the audit trail with its hash chain, and the check that names each kind of tampering.

use std::io::{BufRead, BufReader, BufWriter, Write as _};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tessera_events::audit::{self, AuditRecord, Chain, Link, Trailer};
use tessera_events::{EventLog, LogFilter};
use tessera_projector::rebuild::Progress;

use crate::cli::ExportFormat;
use crate::progress::Reporter;

use super::{print_json, say};

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

pub(super) fn verify_export(path: &std::path::Path, json: bool) -> Result<()> {
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
