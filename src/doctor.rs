//! `tessera doctor`: checks each dependency the settings name (or the
//! embedded files when none is named) and says plainly what is wrong.
//!
//! Every check is bounded in time, so a server that hangs is reported, not
//! waited for; addresses are printed without their credentials.

use std::io::Write as _;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::Row as _;

use crate::admin::say;
use crate::settings::Settings;
use crate::wiring::{data_file, files};

/// How long one dependency may take to answer all its checks.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Clock difference with PostgreSQL past which holds, queue tokens and
/// access tokens expire at the wrong time.
const SKEW_LIMIT_MS: i64 = 1000;

#[derive(Debug, Serialize)]
struct Finding {
    dependency: &'static str,
    /// Where it was looked for, without credentials.
    target: String,
    ok: bool,
    version: Option<String>,
    /// What was found (migrations, clock skew, topic).
    details: Vec<String>,
    /// What is wrong, as a sentence; none when `ok`.
    problem: Option<String>,
}

impl Finding {
    fn new(dependency: &'static str, target: String) -> Self {
        Self {
            dependency,
            target,
            ok: true,
            version: None,
            details: Vec::new(),
            problem: None,
        }
    }

    fn fail(mut self, problem: impl Into<String>) -> Self {
        self.ok = false;
        self.problem = Some(problem.into());
        self
    }
}

pub async fn doctor(s: &Settings, json: bool) -> Result<()> {
    let mut findings = Vec::new();
    match &s.database_url {
        Some(url) => findings.push(bounded("postgresql", postgres(url.expose_secret())).await),
        None => findings.push(bounded("embedded", embedded(s)).await),
    }
    if let Some(brokers) = &s.kafka_brokers {
        findings.push(bounded("kafka", kafka(brokers.clone(), s.kafka_topic.clone())).await);
    }
    if let Some(uri) = &s.mongodb_uri {
        findings.push(bounded("mongodb", mongodb(uri.expose_secret(), &s.mongodb_database)).await);
    }
    if let Some(url) = &s.redis_url {
        findings.push(bounded("redis", redis(url.expose_secret())).await);
    }
    let problems = findings.iter().filter(|f| !f.ok).count();
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": problems == 0,
                "checks": findings,
            }))?
        )?;
    } else {
        print_table(&findings)?;
    }
    match problems {
        0 => Ok(()),
        1 => bail!("1 dependency has a problem"),
        n => bail!("{n} dependencies have a problem"),
    }
}

fn print_table(findings: &[Finding]) -> Result<()> {
    say!(
        "{:<12} {:<8} {:<16} {:<34} details",
        "dependency",
        "status",
        "version",
        "target"
    )?;
    for f in findings {
        say!(
            "{:<12} {:<8} {:<16} {:<34} {}",
            f.dependency,
            if f.ok { "ok" } else { "PROBLEM" },
            f.version.as_deref().unwrap_or("-"),
            f.target,
            f.details.join("; ")
        )?;
    }
    for f in findings {
        if let Some(problem) = &f.problem {
            say!("{}: {problem}", f.dependency)?;
        }
    }
    Ok(())
}

/// A check that did not finish in time is a problem of its own.
async fn bounded(
    dependency: &'static str,
    check: impl std::future::Future<Output = Finding>,
) -> Finding {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(f) => f,
        Err(_) => Finding::new(dependency, String::new()).fail(format!(
            "{dependency} did not answer within {} s",
            started.elapsed().as_secs()
        )),
    }
}

/// `scheme://host:port/path` of a URL, without user, password or query.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split('?').next().unwrap_or(rest);
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

/// Compares the migrations a database recorded with those this binary
/// carries: `(details, problem)`.
fn compare_migrations(known: &Migrator, applied: &[(i64, Vec<u8>)]) -> (String, Option<String>) {
    let known: Vec<_> = known
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    let missing: Vec<i64> = known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .map(|m| m.version)
        .collect();
    let changed: Vec<i64> = known
        .iter()
        .filter(|m| {
            applied
                .iter()
                .any(|(v, sum)| *v == m.version && sum.as_slice() != &*m.checksum)
        })
        .map(|m| m.version)
        .collect();
    let unknown: Vec<i64> = applied
        .iter()
        .filter(|(v, _)| !known.iter().any(|m| m.version == *v))
        .map(|(v, _)| *v)
        .collect();
    let details = format!(
        "migrations {}/{} applied",
        known.len() - missing.len(),
        known.len()
    );
    let problem = if !missing.is_empty() {
        Some(format!(
            "migrations {missing:?} are not applied: run `tessera migrate` with the same settings"
        ))
    } else if !changed.is_empty() {
        Some(format!(
            "migrations {changed:?} were applied from a different file than this binary carries: the database was migrated by another build"
        ))
    } else if !unknown.is_empty() {
        Some(format!(
            "the database has migrations {unknown:?} that this binary does not know: it was migrated by a newer Tessera"
        ))
    } else {
        None
    };
    (details, problem)
}

async fn postgres(url: &str) -> Finding {
    let target = sqlx::postgres::PgConnectOptions::from_str(url).map_or_else(
        |_| redact(url),
        |o| {
            format!(
                "{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            )
        },
    );
    let f = Finding::new("postgresql", target.clone());
    let pool = match tessera_write_side::store::postgres::connect(url, 1).await {
        Ok(pool) => pool,
        Err(e) => {
            return f.fail(format!(
                "cannot connect to PostgreSQL at {target} (TESSERA_DATABASE_URL): {e}"
            ))
        }
    };
    postgres_checks(f, &pool).await
}

async fn postgres_checks(mut f: Finding, pool: &sqlx::PgPool) -> Finding {
    let before = Utc::now();
    let row = sqlx::query(
        "select current_setting('server_version') as version, \
         (extract(epoch from clock_timestamp()) * 1000000)::int8 as now_us",
    )
    .fetch_one(pool)
    .await;
    let after = Utc::now();
    let row = match row {
        Ok(row) => row,
        Err(e) => return f.fail(format!("PostgreSQL answered an error: {e}")),
    };
    // "15.20 (Debian 15.20-0+deb12u1)": the release is the first word
    f.version = row
        .try_get::<String, _>("version")
        .ok()
        .and_then(|v| v.split_whitespace().next().map(str::to_owned));
    let server_us: i64 = row.try_get("now_us").unwrap_or_default();
    // the server read its clock somewhere between our two readings
    let local_us = (before.timestamp_micros() + after.timestamp_micros()) / 2;
    let skew_ms = (server_us - local_us) / 1000;
    f.details.push(format!("clock skew {skew_ms} ms"));
    let applied: Result<Vec<(i64, Vec<u8>)>, _> = sqlx::query_as(
        "select version, checksum from _sqlx_migrations where success order by version",
    )
    .fetch_all(pool)
    .await;
    let applied = match applied {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return f.fail(format!("cannot read the applied migrations: {e}")),
    };
    let (details, problem) =
        compare_migrations(tessera_write_side::store::postgres::migrator(), &applied);
    f.details.push(details);
    if let Some(problem) = problem {
        return f.fail(problem);
    }
    if skew_ms.abs() > SKEW_LIMIT_MS {
        return f.fail(format!(
            "this machine's clock is {skew_ms} ms off PostgreSQL's: holds, queue tokens and access tokens would expire at the wrong time; synchronise the clocks (NTP)"
        ));
    }
    f
}

/// The embedded files `serve` keeps in the data folder.
async fn embedded(s: &Settings) -> Finding {
    let path = data_file(s, files::EVENTS);
    let mut f = Finding::new("embedded", s.data_dir.display().to_string());
    if !path.exists() {
        f.details
            .push("no event store yet: `tessera serve` or `tessera migrate` creates it".into());
        return f;
    }
    let pool = match tessera_write_side::store::sqlite::open(&path, 1).await {
        Ok(pool) => pool,
        Err(e) => return f.fail(format!("cannot open {}: {e}", path.display())),
    };
    if let Ok(v) = sqlx::query_scalar::<_, String>("select sqlite_version()")
        .fetch_one(&pool)
        .await
    {
        f.version = Some(format!("sqlite {v}"));
    }
    let applied: Result<Vec<(i64, Vec<u8>)>, _> = sqlx::query_as(
        "select version, checksum from _sqlx_migrations where success order by version",
    )
    .fetch_all(&pool)
    .await;
    let applied = applied.unwrap_or_default();
    let (details, problem) =
        compare_migrations(tessera_write_side::store::sqlite::migrator(), &applied);
    f.details.push(details);
    match problem {
        Some(problem) => f.fail(problem),
        None => f,
    }
}

async fn kafka(brokers: String, topic: String) -> Finding {
    let target = brokers.clone();
    let mut f = Finding::new("kafka", target.clone());
    let (_, client_version) = rdkafka::util::get_rdkafka_version();
    // the Kafka protocol does not tell a broker's release; the client's is
    // what decides the features used
    f.version = Some(format!("client {client_version}"));
    let answer = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("socket.timeout.ms", "3000")
            .create()
            .map_err(|e| e.to_string())?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len());
        Ok::<_, String>((metadata.brokers().len(), topic, partitions))
    })
    .await;
    match answer {
        Ok(Ok((brokers, topic, partitions))) => {
            f.details.push(format!("{brokers} broker(s)"));
            f.details.push(match partitions {
                Some(p) => format!("topic {topic}: {p} partitions"),
                None => format!("topic {topic} not created yet (the relay creates it)"),
            });
            f
        }
        Ok(Err(e)) => f.fail(format!(
            "cannot reach the Kafka brokers at {target} (TESSERA_KAFKA_BROKERS): {e}"
        )),
        Err(e) => f.fail(format!("the Kafka check failed: {e}")),
    }
}

async fn mongodb(uri: &str, database: &str) -> Finding {
    use mongodb::bson::doc;
    let target = redact(uri);
    let mut f = Finding::new("mongodb", target.clone());
    let options = match mongodb::options::ClientOptions::parse(uri).await {
        Ok(mut o) => {
            o.server_selection_timeout = Some(Duration::from_secs(3));
            o.connect_timeout = Some(Duration::from_secs(3));
            o
        }
        Err(e) => return f.fail(format!("TESSERA_MONGODB_URI is not a MongoDB URI: {e}")),
    };
    let client = match mongodb::Client::with_options(options) {
        Ok(c) => c,
        Err(e) => return f.fail(format!("cannot create a MongoDB client: {e}")),
    };
    let db = client.database(database);
    if let Err(e) = db.run_command(doc! { "ping": 1 }).await {
        return f.fail(format!(
            "cannot reach MongoDB at {target} (TESSERA_MONGODB_URI): {e}"
        ));
    }
    match db.run_command(doc! { "buildInfo": 1 }).await {
        Ok(info) => f.version = info.get_str("version").ok().map(str::to_owned),
        Err(_) => f
            .details
            .push("the server does not tell its version".into()),
    }
    f.details.push(format!("database {database}"));
    f
}

async fn redis(url: &str) -> Finding {
    let target = redact(url);
    let mut f = Finding::new("redis", target.clone());
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => return f.fail(format!("TESSERA_REDIS_URL is not a Redis URL: {e}")),
    };
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => {
            return f.fail(format!(
                "cannot reach Redis at {target} (TESSERA_REDIS_URL): {e}"
            ))
        }
    };
    let info: Result<String, _> = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await;
    match info {
        Ok(info) => {
            f.version = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .map(|v| v.trim().to_owned());
            f
        }
        Err(e) => f.fail(format!("Redis answered an error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn addresses_are_printed_without_credentials() {
        assert_eq!(
            redact("mongodb://user:secret@db.example:27017/?authSource=admin"),
            "mongodb://db.example:27017/"
        );
        assert_eq!(
            redact("redis://:pw@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("127.0.0.1:9092"), "127.0.0.1:9092");
    }
}
