//! `tessera-bench`: runs the benchmarks and prints the report (Markdown on
//! standard output; `--json` writes the same figures for tools). Needs
//! `TESSERA_TEST_PG_URL` (a PostgreSQL where it may create databases);
//! `scripts/bench` provides it.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use tessera_bench::suite::{self, Part, SuiteConfig};
use tessera_bench::write::WriteConfig;

/// The allocator the `tessera` binary ships with: the in-process command
/// path is measured as it runs there (with glibc's malloc, allocation was
/// about a third of this process's CPU in the grouped appends run).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Tessera's write path and rebuild beside cqrs-es baselines")]
struct Args {
    /// Concurrent senders.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Accounts per sender in the distinct-aggregates runs.
    #[arg(long, default_value_t = 64)]
    accounts_per_worker: usize,
    /// Seconds per timed measurement.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Events in the log the rebuilds fold.
    #[arg(long, default_value_t = 100_000)]
    rebuild_events: u64,
    /// Accounts in the catch-up backlog (41 events each).
    #[arg(long, default_value_t = 500)]
    catchup_accounts: u64,
    /// Run only these parts (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = SuiteConfig {
        write: WriteConfig {
            workers: args.workers.max(1),
            accounts_per_worker: args.accounts_per_worker.max(1),
            duration: Duration::from_secs_f64(args.seconds.max(0.1)),
        },
        rebuild_events: args.rebuild_events,
        catchup: tessera_bench::catchup::CatchupConfig {
            accounts: args.catchup_accounts.max(1),
            charges_per_account: 40,
        },
        ..SuiteConfig::default()
    };
    if !args.only.is_empty() {
        config.parts = args.only;
    }
    let report = suite::run(&config).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    print!("{}", report.markdown());
    Ok(())
}
