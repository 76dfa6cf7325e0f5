//! `admin status`: where each projection stands.

use std::io::Write as _;

use anyhow::Result;

use crate::settings::Settings;
use crate::wiring::{documents, event_log};

use super::{print_json, say};

pub(super) async fn status(s: &Settings, json: bool) -> Result<()> {
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
