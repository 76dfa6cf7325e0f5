//! `admin rebuild` and `admin replay`: folding the log again into fresh collections, or one aggregate into the live ones.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{bail, Result};
use tessera_projector::projection;
use tessera_projector::rebuild::{self, RebuildConfig};

use crate::progress::Reporter;
use crate::settings::Settings;
use crate::wiring::{documents, event_log};

use super::{confirm, find, print_json, say};

pub(super) async fn rebuild(
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

pub(super) async fn replay(
    s: &Settings,
    aggregate_type: &str,
    aggregate_id: &str,
    json: bool,
) -> Result<()> {
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
