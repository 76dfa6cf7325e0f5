//! Typed settings. Every setting is an environment variable (and a flag);
//! `tessera --help` lists them with their defaults. Secrets are never
//! printed: their values are hidden from `--help` and `Debug`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use tessera_write_side::store::group::GroupConfig;

/// Loads the TOML file named by `--config FILE` (or `TESSERA_CONFIG`) into
/// the environment, where the settings are read from. A variable already
/// set wins, and a flag wins over both: flag > environment > file > default.
///
/// Keys are the settings' names, as flags (`http_addr`, `http-addr`) or as
/// variables (`TESSERA_HTTP_ADDR`); values are strings, numbers or booleans.
/// A key that names no setting is an error, not a setting silently ignored.
pub fn load_config_file() -> anyhow::Result<()> {
    use anyhow::{bail, Context as _};
    let Some(path) = config_path() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {path}"))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("the config file {path} is not TOML"))?;
    let known = setting_variables();
    for (key, value) in table {
        // a setting's own variable (`OTEL_SERVICE_NAME`), else Tessera's
        let upper = key.replace('-', "_").to_uppercase();
        let var = if known.contains(&upper) || key.starts_with("TESSERA_") {
            upper
        } else {
            format!("TESSERA_{upper}")
        };
        if !known.contains(&var) || var == "TESSERA_CONFIG" {
            bail!("the config file {path} names {key:?}, which is no setting; `tessera --help` lists them");
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "the config file {path} gives {key:?} a {}; a setting is a string, number or boolean",
                other.type_str()
            ),
        };
        if std::env::var_os(&var).is_none() {
            std::env::set_var(&var, value);
        }
    }
    Ok(())
}

/// `--config FILE`, `--config=FILE` or `TESSERA_CONFIG`: the file is read
/// before the command line is parsed, since it feeds the parse.
fn config_path() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next();
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_owned());
        }
    }
    std::env::var("TESSERA_CONFIG").ok()
}

/// The environment variable of every setting.
fn setting_variables() -> std::collections::HashSet<String> {
    let cmd = <Settings as Args>::augment_args(clap::Command::new("tessera"));
    cmd.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// A TOML file of settings (`http_addr = "0.0.0.0:8080"` or `TESSERA_HTTP_ADDR = "..."`); flags and the environment win over it
    #[arg(long, env = "TESSERA_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Listen address of the API process (port 0 picks a free port)
    #[arg(
        long,
        env = "TESSERA_HTTP_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub http_addr: SocketAddr,

    /// Embedded storage folder (`serve`)
    #[arg(
        long,
        env = "TESSERA_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// PostgreSQL event store, e.g. postgres://user@host:5432/db (unset: embedded)
    #[arg(long, env = "TESSERA_DATABASE_URL", hide_env_values = true, value_parser = secret, global = true)]
    pub database_url: Option<SecretString>,

    /// Connections in the event store pool
    #[arg(
        long,
        env = "TESSERA_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub database_max_connections: u32,

    /// How long one event store load or append may take before the command answers 503 with Retry-After
    #[arg(
        long,
        env = "TESSERA_DATABASE_TIMEOUT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub database_timeout_ms: u64,

    /// Kafka bootstrap servers, e.g. 127.0.0.1:9092 (unset: embedded feed)
    #[arg(long, env = "TESSERA_KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,

    /// Topic the relay publishes events to
    #[arg(
        long,
        env = "TESSERA_KAFKA_TOPIC",
        default_value = "tessera.events",
        global = true
    )]
    pub kafka_topic: String,

    /// Partitions of the topic when the relay creates it
    #[arg(
        long,
        env = "TESSERA_KAFKA_PARTITIONS",
        default_value_t = 8,
        global = true
    )]
    pub kafka_partitions: i32,

    /// librdkafka debug contexts for the relay and projector (e.g. `cgrp,topic,fetch`), logged at debug level
    #[arg(long, env = "TESSERA_KAFKA_DEBUG", global = true)]
    pub kafka_debug: Option<String>,

    /// How long the relay may wait for the broker to acknowledge a batch before it builds a new producer and sends the batch again
    #[arg(
        long,
        env = "TESSERA_RELAY_PUBLISH_TIMEOUT_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub relay_publish_timeout_seconds: u64,

    /// Seconds with events waiting and none published after which the relay's /readyz answers 503
    #[arg(
        long,
        env = "TESSERA_RELAY_STALL_SECONDS",
        default_value_t = 15,
        global = true
    )]
    pub relay_stall_seconds: u64,

    /// Seconds with events waiting and none projected after which the projector's /readyz names the projection stalled
    #[arg(
        long,
        env = "TESSERA_PROJECTOR_STALL_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub projector_stall_seconds: u64,

    /// MongoDB read store, e.g. mongodb://127.0.0.1:27017 (unset: embedded)
    #[arg(long, env = "TESSERA_MONGODB_URI", hide_env_values = true, value_parser = secret, global = true)]
    pub mongodb_uri: Option<SecretString>,

    /// How long one MongoDB operation may take before it fails (reads then answer 503 with Retry-After)
    #[arg(
        long,
        env = "TESSERA_MONGODB_TIMEOUT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub mongodb_timeout_ms: u64,

    /// How long one MongoDB operation of the projector may take before its batch is tried again (longer than readers wait: catching up after an outage writes a lot)
    #[arg(
        long,
        env = "TESSERA_PROJECTOR_STORE_TIMEOUT_MS",
        default_value_t = 15000,
        global = true
    )]
    pub projector_store_timeout_ms: u64,

    /// Redis shared by the read APIs for presence, e.g. redis://127.0.0.1:6379 (unset: each read API knows only its own streams)
    #[arg(long, env = "TESSERA_REDIS_URL", hide_env_values = true, value_parser = secret, global = true)]
    pub redis_url: Option<SecretString>,

    /// Prefix of Tessera's Redis keys (deployments and tests sharing a server)
    #[arg(
        long,
        env = "TESSERA_REDIS_PREFIX",
        default_value = "tessera",
        global = true
    )]
    pub redis_prefix: String,

    /// How long a user stays online after their last live stream closed
    #[arg(
        long,
        env = "TESSERA_PRESENCE_GRACE_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub presence_grace_seconds: u64,

    /// Live streams one user may hold open on one read API
    #[arg(
        long,
        env = "TESSERA_STREAMS_PER_USER",
        default_value_t = 20,
        global = true
    )]
    pub streams_per_user: usize,

    /// Deliver webhooks to loopback, private and link-local addresses too
    /// (tests and private networks); otherwise such URLs are refused
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub webhook_allow_private: bool,

    /// How long a webhook receiver has to answer a delivery
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub webhook_timeout_ms: u64,

    /// Attempts of one webhook delivery before it becomes a dead letter
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 12,
        global = true
    )]
    pub webhook_max_attempts: u32,

    /// First pause between webhook attempts; it doubles (full jitter) up to
    /// TESSERA_WEBHOOK_BACKOFF_MAX_MS
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_BACKOFF_BASE_MS",
        default_value_t = 500,
        global = true
    )]
    pub webhook_backoff_base_ms: u64,

    /// Longest pause between webhook attempts
    #[arg(
        long,
        env = "TESSERA_WEBHOOK_BACKOFF_MAX_MS",
        default_value_t = 60_000,
        global = true
    )]
    pub webhook_backoff_max_ms: u64,

    /// MongoDB database holding the read documents
    #[arg(
        long,
        env = "TESSERA_MONGODB_DATABASE",
        default_value = "tessera",
        global = true
    )]
    pub mongodb_database: String,

    /// HS256 signing secret, at least 32 bytes (`serve` generates and keeps one in the data folder when unset)
    #[arg(long, env = "TESSERA_JWT_SECRET", hide_env_values = true, value_parser = secret, global = true)]
    pub jwt_secret: Option<SecretString>,

    /// Issuer (`iss`) of access tokens, checked on every request
    #[arg(
        long,
        env = "TESSERA_JWT_ISSUER",
        default_value = "tessera",
        global = true
    )]
    pub jwt_issuer: String,

    /// Audience (`aud`) of access tokens, checked on every request
    #[arg(
        long,
        env = "TESSERA_JWT_AUDIENCE",
        default_value = "tessera-api",
        global = true
    )]
    pub jwt_audience: String,

    /// RS256: also accept tokens signed by this public key (a PEM file), as an identity provider issues them
    #[arg(long, env = "TESSERA_JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key_file: Option<PathBuf>,

    /// RS256: also accept tokens signed by a key of this JWKS file, chosen by the token's `kid`
    #[arg(long, env = "TESSERA_JWKS_FILE", global = true)]
    pub jwks_file: Option<PathBuf>,

    /// Lifetime of access tokens
    #[arg(
        long,
        env = "TESSERA_TOKEN_TTL_SECONDS",
        default_value_t = 3600,
        global = true
    )]
    pub token_ttl_seconds: u64,

    /// Abuse limits: registrations and token requests per second per client IP (0: no limit)
    #[arg(
        long,
        env = "TESSERA_RATE_LIMIT_AUTH_PER_SECOND",
        default_value_t = 50,
        global = true
    )]
    pub rate_limit_auth_per_second: u32,

    /// Abuse limits: how many of those may come at once
    #[arg(
        long,
        env = "TESSERA_RATE_LIMIT_AUTH_BURST",
        default_value_t = 1000,
        global = true
    )]
    pub rate_limit_auth_burst: u32,

    /// Abuse limits: queue token requests per second per caller (0: no limit)
    #[arg(
        long,
        env = "TESSERA_RATE_LIMIT_QUEUE_PER_SECOND",
        default_value_t = 20,
        global = true
    )]
    pub rate_limit_queue_per_second: u32,

    /// Abuse limits: how many of those may come at once
    #[arg(
        long,
        env = "TESSERA_RATE_LIMIT_QUEUE_BURST",
        default_value_t = 40,
        global = true
    )]
    pub rate_limit_queue_burst: u32,

    /// Abuse limits: other commands per second per caller (0: no limit)
    #[arg(
        long,
        env = "TESSERA_RATE_LIMIT_COMMANDS_PER_SECOND",
        default_value_t = 200,
        global = true
    )]
    pub rate_limit_commands_per_second: u32,

    /// Abuse limits: how many of those may come at once
    #[arg(
        long,
        env = "TESSERA_RATE_LIMIT_COMMANDS_BURST",
        default_value_t = 1000,
        global = true
    )]
    pub rate_limit_commands_burst: u32,

    /// How long a command may take before it is answered 503 `timeout`
    #[arg(
        long,
        env = "TESSERA_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_seconds: u32,

    /// How long a read with `min_version` waits for the document
    #[arg(
        long,
        env = "TESSERA_MIN_VERSION_WAIT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub min_version_wait_ms: u64,

    /// Attempts per command when other writers keep changing the aggregate
    #[arg(
        long,
        env = "TESSERA_COMMAND_MAX_ATTEMPTS",
        default_value_t = 12,
        global = true
    )]
    pub command_max_attempts: u32,

    /// How long `serve` serves a document it read from memory, at most, in milliseconds (0: never; its own projector's writes are seen at once, this bounds what other processes write, such as `tessera admin replay`)
    #[arg(
        long,
        env = "TESSERA_READ_CACHE_MS",
        default_value_t = 1000,
        global = true
    )]
    pub read_cache_ms: u64,

    /// Documents `serve` keeps in memory for reads, at most
    #[arg(
        long,
        env = "TESSERA_READ_CACHE_ENTRIES",
        default_value_t = 100_000,
        global = true
    )]
    pub read_cache_entries: u64,

    /// Commands on one aggregate decided together and committed as one append, at the most
    #[arg(
        long,
        env = "TESSERA_COMMAND_BATCH",
        default_value_t = 256,
        global = true
    )]
    pub command_batch: usize,

    /// Appends of different aggregates written in one transaction (group commit), at the most
    #[arg(
        long,
        env = "TESSERA_GROUP_COMMIT_MAX",
        default_value_t = 512,
        global = true
    )]
    pub group_commit_max: usize,

    /// Group-commit transactions in flight at once on PostgreSQL (the embedded store writes one at a time)
    #[arg(
        long,
        env = "TESSERA_GROUP_COMMIT_IN_FLIGHT",
        default_value_t = 2,
        global = true
    )]
    pub group_commit_in_flight: usize,

    /// Group-commit transactions in flight at once on PostgreSQL while a full group (`TESSERA_GROUP_COMMIT_MAX` appends) waits for one
    #[arg(
        long,
        env = "TESSERA_GROUP_COMMIT_BUSY_IN_FLIGHT",
        default_value_t = 4,
        global = true
    )]
    pub group_commit_busy_in_flight: usize,

    /// How long a group commit waits for more appends before it writes, in microseconds (0: it never waits, so nothing is added at low load)
    #[arg(
        long,
        env = "TESSERA_GROUP_COMMIT_WAIT_US",
        default_value_t = 0,
        global = true
    )]
    pub group_commit_wait_us: u64,

    /// Events a projector or relay handles per batch
    #[arg(long, env = "TESSERA_BATCH_SIZE", default_value_t = 500, global = true)]
    pub batch_size: usize,

    /// Attempts at folding an event before it is dead-lettered
    #[arg(
        long,
        env = "TESSERA_PROJECTOR_ATTEMPTS",
        default_value_t = 4,
        global = true
    )]
    pub projector_attempts: u32,

    /// Waiting queue: positions admitted per tick
    #[arg(
        long,
        env = "TESSERA_QUEUE_ADMIT_BATCH",
        default_value_t = 100,
        global = true
    )]
    pub queue_admit_batch: u64,

    /// Waiting queue: the admission tick
    #[arg(
        long,
        env = "TESSERA_QUEUE_ADMIT_INTERVAL_MS",
        default_value_t = 1000,
        global = true
    )]
    pub queue_admit_interval_ms: u64,

    /// Waiting queue: how long an active token lasts
    #[arg(
        long,
        env = "TESSERA_QUEUE_ACTIVE_TTL_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub queue_active_ttl_seconds: u64,

    /// Waiting queue: how often an active token may be extended (`POST /v1/queue/extend`)
    #[arg(
        long,
        env = "TESSERA_QUEUE_MAX_EXTENSIONS",
        default_value_t = 2,
        global = true
    )]
    pub queue_max_extensions: u32,

    /// Waiting queue: how long a token may wait to be admitted
    #[arg(
        long,
        env = "TESSERA_QUEUE_MAX_WAIT_SECONDS",
        default_value_t = 3600,
        global = true
    )]
    pub queue_max_wait_seconds: u64,

    /// How long a seat hold lasts unpaid
    #[arg(
        long,
        env = "TESSERA_HOLD_TTL_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub hold_ttl_seconds: u64,

    /// How long an order may stay unpaid before it expires
    #[arg(
        long,
        env = "TESSERA_ORDER_TTL_SECONDS",
        default_value_t = 900,
        global = true
    )]
    pub order_ttl_seconds: u64,

    /// How often expired seat holds are looked for and recorded
    #[arg(
        long,
        env = "TESSERA_SWEEP_INTERVAL_MS",
        default_value_t = 1000,
        global = true
    )]
    pub sweep_interval_ms: u64,

    /// Log filter: a default level and `target=level` pairs, e.g. `warn,tessera=info`
    #[arg(long, env = "TESSERA_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log format: `json` (one object per line) or `text`
    #[arg(
        long,
        env = "TESSERA_LOG_FORMAT",
        default_value = "json",
        global = true
    )]
    pub log_format: String,

    /// OpenTelemetry collector to send spans to over OTLP/HTTP with JSON bodies, e.g. http://127.0.0.1:4318 (spans go to `{endpoint}/v1/traces`; unset: no export, the logs still carry trace ids)
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otel_exporter_otlp_endpoint: Option<url::Url>,

    /// Extra headers for the collector, `key=value,key=value` (an API key: hidden like every secret)
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", hide_env_values = true, value_parser = secret, global = true)]
    pub otel_exporter_otlp_headers: Option<SecretString>,

    /// `service.name` in logs and spans (unset: `tessera-<role>`, e.g. `tessera-write-api`)
    #[arg(long, env = "OTEL_SERVICE_NAME", global = true)]
    pub otel_service_name: Option<String>,

    /// Longest wait before finished spans are sent, in milliseconds
    #[arg(
        long,
        env = "OTEL_BSP_SCHEDULE_DELAY",
        default_value_t = 5000,
        global = true
    )]
    pub otel_bsp_schedule_delay: u64,
}

impl Settings {
    pub fn abuse_limits(&self) -> tessera_http::limits::AbuseLimits {
        use tessera_http::limits::{AbuseLimits, Rate};
        AbuseLimits {
            auth: Rate {
                per_second: self.rate_limit_auth_per_second,
                burst: self.rate_limit_auth_burst,
            },
            queue: Rate {
                per_second: self.rate_limit_queue_per_second,
                burst: self.rate_limit_queue_burst,
            },
            commands: Rate {
                per_second: self.rate_limit_commands_per_second,
                burst: self.rate_limit_commands_burst,
            },
            request_timeout: Duration::from_secs(u64::from(self.request_timeout_seconds.max(1))),
        }
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_seconds)
    }

    pub fn queue(&self) -> tessera_queue::QueueConfig {
        tessera_queue::QueueConfig {
            admit_batch: self.queue_admit_batch.max(1),
            admit_interval: Duration::from_millis(self.queue_admit_interval_ms.max(1)),
            active_ttl: Duration::from_secs(self.queue_active_ttl_seconds),
            max_wait: Duration::from_secs(self.queue_max_wait_seconds),
            max_extensions: self.queue_max_extensions,
        }
    }

    pub fn pace(&self) -> tessera_write_side::background::Pace {
        tessera_write_side::background::Pace {
            sweep_interval: Duration::from_millis(self.sweep_interval_ms.max(10)),
        }
    }

    pub fn hold_ttl(&self) -> Duration {
        Duration::from_secs(self.hold_ttl_seconds)
    }

    pub fn order_ttl(&self) -> Duration {
        Duration::from_secs(self.order_ttl_seconds)
    }

    pub fn webhook_policy(&self) -> tessera_webhooks::UrlPolicy {
        tessera_webhooks::UrlPolicy {
            allow_private: self.webhook_allow_private,
        }
    }

    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms.max(1))
    }

    pub fn webhook_delivery(&self) -> tessera_webhooks::DeliveryConfig {
        tessera_webhooks::DeliveryConfig {
            batch_size: self.batch_size.clamp(1, 1000),
            max_attempts: self.webhook_max_attempts.max(1),
            backoff: tessera_runtime::Backoff::new(
                Duration::from_millis(self.webhook_backoff_base_ms.max(1)),
                Duration::from_millis(
                    self.webhook_backoff_max_ms
                        .max(self.webhook_backoff_base_ms)
                        .max(1),
                ),
                tessera_runtime::Jitter::Full,
            ),
            ..tessera_webhooks::DeliveryConfig::default()
        }
    }

    pub fn presence_grace(&self) -> Duration {
        Duration::from_secs(self.presence_grace_seconds)
    }

    pub fn min_version_wait(&self) -> Duration {
        Duration::from_millis(self.min_version_wait_ms)
    }

    /// How long a remembered document may be served; `None`: no cache.
    pub fn read_cache(&self) -> Option<Duration> {
        (self.read_cache_ms > 0).then(|| Duration::from_millis(self.read_cache_ms))
    }

    /// How the event store groups appends; `embedded`: SQLite, one writer.
    pub fn group_commit(&self, embedded: bool) -> GroupConfig {
        GroupConfig {
            max_batch: self.group_commit_max.max(1),
            max_in_flight: if embedded {
                1
            } else {
                self.group_commit_in_flight.max(1)
            },
            busy_in_flight: if embedded {
                1
            } else {
                self.group_commit_busy_in_flight.max(1)
            },
            wait: Duration::from_micros(self.group_commit_wait_us),
        }
    }

    pub fn database_timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms.max(1))
    }

    pub fn mongodb_timeout(&self) -> Duration {
        Duration::from_millis(self.mongodb_timeout_ms.max(1))
    }
}
