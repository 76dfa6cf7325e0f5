//! `tessera admin`: operator commands, one file per command. They open the
//! stores of the configured mode themselves (`crate::wiring`: the embedded
//! files in the data folder, or PostgreSQL and MongoDB), so they work beside
//! a running deployment.

mod dlq;
mod export;
mod rebuilds;
mod status;
mod token;
mod webhooks;

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tessera_events::LogFilter;
use tessera_projector::projection::{self, Projection};

use crate::cli::AdminCommand;
use crate::settings::Settings;
use crate::wiring::event_log;

/// `println!` that hands back write errors (a reader that closed the pipe,
/// as `| head` does) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

pub(crate) use say;

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

/// `admin schemas`: the event contract of the configured topic as files.
fn schemas(s: &Settings, out: &std::path::Path) -> Result<()> {
    let files = tessera_events::contract::files(&s.kafka_topic);
    for (path, text) in &files {
        let path = out.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    say!("{} files written under {}", files.len(), out.display())?;
    Ok(())
}

pub async fn run(s: &Settings, command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Token {
            user,
            role,
            ttl_seconds,
            json,
        } => token::token(s, &user, role, ttl_seconds, json),
        AdminCommand::Status { json } => status::status(s, json).await,
        AdminCommand::Rebuild {
            projection,
            all,
            yes,
            json,
        } => rebuilds::rebuild(s, projection, all, yes, json).await,
        AdminCommand::Replay {
            aggregate_type,
            aggregate_id,
            json,
        } => rebuilds::replay(s, &aggregate_type, &aggregate_id, json).await,
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
            export::export(&*event_log(s).await?, &filter, format, output.as_deref()).await
        }
        AdminCommand::VerifyExport { file, json } => export::verify_export(&file, json),
        AdminCommand::Dlq { command } => dlq::dlq(s, command).await,
        AdminCommand::Webhooks { command } => webhooks::webhooks(s, command).await,
        AdminCommand::Schemas { out } => schemas(s, &out),
    }
}
