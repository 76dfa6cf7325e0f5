//! SQLite adapters for the embedded mode: the event store (through
//! sqlite-es), the log in commit order, and credentials.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlite_es::SqliteEventRepository;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tessera_events::{EventLog, LogError, LogFilter, LogPosition, LogRecord};

use super::log::SqlEventLog;
use super::{LogRow, Repo};

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Opens (creating if needed) a SQLite database file in WAL mode. Writers
/// wait for each other (busy timeout) instead of failing.
pub async fn open(path: &Path, max_connections: u32) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
}

pub async fn migrate(pool: &SqlitePool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// The migrations this build carries (what `tessera doctor` compares the
/// database with).
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}

pub fn repo(pool: SqlitePool) -> Repo {
    Repo::Sqlite(Arc::new(SqliteEventRepository::new(pool.clone())), pool)
}

/// The embedded event log. SQLite has one writer at a time, so the order of
/// `global_position` is the commit order and `tx_id` is always 0.
pub type SqliteEventLog = SqlEventLog<SqlitePool>;

#[async_trait]
impl EventLog for SqlEventLog<SqlitePool> {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        let sql = format!(
            "SELECT 0 AS tx_id, {cols} FROM events
              WHERE global_position > ?1 ORDER BY global_position LIMIT ?2",
            cols = LogRow::COLUMNS
        );
        let rows: Vec<LogRow> = sqlx::query_as(&sql)
            .bind(after.position)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(LogError::new)?;
        Ok(LogRow::into_records(rows, self.upcasters))
    }

    async fn read_filtered(
        &self,
        after_position: i64,
        limit: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogRecord>, LogError> {
        let sql = format!(
            "SELECT 0 AS tx_id, {cols} FROM events
              WHERE global_position > ?1
                AND (?2 IS NULL OR aggregate_type = ?2)
                AND (?3 IS NULL OR aggregate_id = ?3)
                AND (?4 IS NULL OR recorded_at >= ?4)
                AND (?5 IS NULL OR recorded_at < ?5)
              ORDER BY global_position LIMIT ?6",
            cols = LogRow::COLUMNS
        );
        // recorded_at is stored as `%Y-%m-%dT%H:%M:%fZ`: compare in that form
        let text = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        };
        let rows: Vec<LogRow> = sqlx::query_as(&sql)
            .bind(after_position)
            .bind(filter.aggregate_type.as_deref())
            .bind(filter.aggregate_id.as_deref())
            .bind(text(filter.since))
            .bind(text(filter.until))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(LogError::new)?;
        Ok(LogRow::into_records(rows, self.upcasters))
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        let (position,): (Option<i64>,) = sqlx::query_as("SELECT max(global_position) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(LogError::new)?;
        Ok(LogPosition {
            tx_id: 0,
            position: position.unwrap_or(0),
        })
    }
}
