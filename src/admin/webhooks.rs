//! `admin webhooks`: the webhooks with their counts, and their dead letters
//! listed, retried (delivered again from this process) and discarded.

use std::io::Write as _;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cli::WebhooksCommand;
use crate::settings::Settings;
use crate::webhooks::webhook_store;

use super::{print_json, say};

#[derive(Serialize)]
struct Listed {
    webhooks: Vec<serde_json::Value>,
    dead_letters: Vec<serde_json::Value>,
}

#[derive(Serialize, Default)]
struct Retried {
    delivered: Vec<i64>,
    still_failing: Vec<(i64, String)>,
}

pub(super) async fn webhooks(s: &Settings, command: Option<WebhooksCommand>) -> Result<()> {
    let store = webhook_store(s).await?;
    match command.unwrap_or(WebhooksCommand::List { json: false }) {
        WebhooksCommand::List { json } => {
            let hooks = store.list().await?;
            let letters = store.dead_letters(None).await?;
            if json {
                let mut webhooks = Vec::new();
                for w in &hooks {
                    let backlog = store.backlog(w).await?;
                    webhooks.push(serde_json::json!({
                        "webhook_id": w.webhook_id, "url": w.url, "event_types": w.event_types,
                        "delivered": w.delivered, "failed": backlog.failed, "pending": backlog.pending,
                        "last_error": w.last_error,
                    }));
                }
                let dead_letters = letters
                    .iter()
                    .map(|l| serde_json::json!({
                        "letter_id": l.letter_id, "webhook_id": l.webhook_id, "event_id": l.event_id,
                        "event_type": l.event_type, "aggregate_type": l.aggregate_type,
                        "aggregate_id": l.aggregate_id, "sequence": l.sequence, "attempts": l.attempts,
                        "last_error": l.last_error, "dead_at": l.dead_at,
                    }))
                    .collect();
                return print_json(&Listed {
                    webhooks,
                    dead_letters,
                });
            }
            if hooks.is_empty() {
                say!("no webhooks")?;
            }
            for w in &hooks {
                let backlog = store.backlog(w).await?;
                say!(
                    "{}  {}\n  {}  delivered {}  pending {}  failed {}{}",
                    w.webhook_id,
                    w.url,
                    w.event_types.join(","),
                    w.delivered,
                    backlog.pending,
                    backlog.failed,
                    w.last_error
                        .as_deref()
                        .map(|e| format!("\n  last error: {e}"))
                        .unwrap_or_default()
                )?;
            }
            if letters.is_empty() {
                say!("no dead letters")?;
            }
            for l in letters {
                say!(
                    "dead letter {}  webhook {}\n  {} {}:{} #{}  attempts {}  since {}\n  {}",
                    l.letter_id,
                    l.webhook_id,
                    l.event_type,
                    l.aggregate_type,
                    l.aggregate_id,
                    l.sequence,
                    l.attempts,
                    l.dead_at.to_rfc3339(),
                    l.last_error
                )?;
            }
            Ok(())
        }
        WebhooksCommand::Retry { id, all, json } => {
            let sender = tessera_webhooks::Sender::new(s.webhook_policy(), s.webhook_timeout())?;
            let hooks = store.list().await?;
            let letters: Vec<_> = store
                .dead_letters(None)
                .await?
                .into_iter()
                .filter(|l| all || Some(l.letter_id) == id)
                .collect();
            if let (Some(id), true) = (id, letters.is_empty()) {
                bail!("no dead letter {id}");
            }
            let mut report = Retried::default();
            for letter in letters {
                let Some(webhook) = hooks.iter().find(|w| w.webhook_id == letter.webhook_id) else {
                    continue;
                };
                match tessera_webhooks::retry_letter(&*store, &sender, webhook, &letter).await? {
                    Ok(()) => report.delivered.push(letter.letter_id),
                    Err(refused) => report
                        .still_failing
                        .push((letter.letter_id, refused.to_string())),
                }
            }
            if json {
                return print_json(&report);
            }
            say!("delivered {} letters", report.delivered.len())?;
            for (id, why) in &report.still_failing {
                say!("still failing: {id}: {why}")?;
            }
            if report.still_failing.is_empty() {
                Ok(())
            } else {
                bail!("{} letters still failing", report.still_failing.len())
            }
        }
        WebhooksCommand::Discard { id } => {
            if store.discard(id).await? {
                say!("discarded {id}")?;
                Ok(())
            } else {
                bail!("no dead letter {id}")
            }
        }
    }
}
