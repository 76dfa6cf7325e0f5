//! The command line (API.md, CLI section).

use clap::{Parser, Subcommand, ValueEnum};

use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Strict CQRS / event-sourced backend platform",
    long_about = "Strict CQRS / event-sourced backend platform.\n\nWithout a command, `tessera` runs `serve`: everything in one process on embedded storage. Every setting below is also an environment variable."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// All in one process on embedded storage (data in TESSERA_DATA_DIR)
    Serve,
    /// The command API (needs TESSERA_DATABASE_URL)
    WriteApi,
    /// The query API (needs TESSERA_MONGODB_URI)
    ReadApi,
    /// Publishes committed events to Kafka in commit order (needs TESSERA_DATABASE_URL, TESSERA_KAFKA_BROKERS)
    Relay,
    /// Builds the read documents from Kafka (needs TESSERA_KAFKA_BROKERS, TESSERA_MONGODB_URI)
    Projector {
        /// Run only these projections (default: all)
        #[arg(long = "only", value_name = "PROJECTION")]
        only: Vec<String>,
    },
    /// Applies the migrations (PostgreSQL with TESSERA_DATABASE_URL, else the embedded store)
    Migrate,
    /// Checks each configured dependency (PostgreSQL, Kafka, MongoDB, Redis, or the embedded files): reachable, version, migrations applied, clock skew; exits non-zero and says what is wrong
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Prints a shell completion script, e.g. `tessera completions bash > /etc/bash_completion.d/tessera`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Operator commands
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Mints an access token for operators and tests
    Token {
        /// The user id the token speaks for
        #[arg(long)]
        user: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// Lifetime (default: TESSERA_TOKEN_TTL_SECONDS)
        #[arg(long)]
        ttl_seconds: Option<u64>,
        /// Print `{"access_token": ..., "expires_in": ...}` instead of the bare token
        #[arg(long)]
        json: bool,
    },
    /// Each projection's collection, position, lag behind the log and dead letters
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Rebuilds projections from the event store into new collections and switches to them without downtime
    Rebuild {
        /// The projection to rebuild
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        projection: Option<String>,
        /// Rebuild every projection, one after the other
        #[arg(long)]
        all: bool,
        /// Do not ask for confirmation (needed with --all when not on a terminal)
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Rebuilds the documents of one aggregate from its events
    Replay {
        #[arg(long)]
        aggregate_type: String,
        #[arg(long)]
        aggregate_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Exports the event log, ordered by global position, with a SHA-256 hash chain
    Export {
        #[arg(long)]
        aggregate_type: Option<String>,
        #[arg(long)]
        aggregate_id: Option<String>,
        /// Recorded at or after (RFC 3339)
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Recorded before (RFC 3339)
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write here instead of standard output
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Checks an export's hash chain; says which record was edited, deleted, inserted or moved
    VerifyExport {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Dead letters: events a projection could not apply
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Writes the event contract (AsyncAPI document of TESSERA_KAFKA_TOPIC and a JSON Schema per event type and version) into a folder
    Schemas {
        /// The folder (the repository keeps it in `docs`)
        #[arg(long, default_value = "docs")]
        out: std::path::PathBuf,
    },
    /// Webhooks and their dead letters: deliveries that ran out of attempts
    Webhooks {
        #[command(subcommand)]
        command: Option<WebhooksCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Every webhook with its counts, and its dead letters (the default)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delivers a dead letter again now (or every one); it is gone once the receiver answers 2xx
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Drops a dead letter without delivering it
    Discard { id: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Pending dead letters, by projection, aggregate and sequence
    List {
        #[arg(long)]
        projection: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Retries a letter's aggregate in order (or every pending letter)
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Drops a letter without applying it
    Discard { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    User,
    Admin,
}
