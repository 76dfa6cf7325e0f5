//! `admin dlq`: list, retry and discard dead letters.

use std::io::Write as _;

use anyhow::{bail, Result};
use tessera_projector::deadletters;
use tessera_projector::projection::{self};

use crate::cli::DlqCommand;
use crate::settings::Settings;
use crate::wiring::{documents, event_log};

use super::{print_json, say};

pub(super) async fn dlq(s: &Settings, command: DlqCommand) -> Result<()> {
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
