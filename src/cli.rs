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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    User,
    Admin,
}
