//! Readiness of the SQL stores (the probe itself is `tessera_http::health`).

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use tessera_http::health::{Check, Readiness};

/// A SQL database that answers `SELECT 1`.
#[derive(Clone)]
pub enum SqlReady {
    Postgres(&'static str, PgPool),
    Sqlite(&'static str, SqlitePool),
}

#[async_trait]
impl Readiness for SqlReady {
    async fn check(&self) -> Vec<Check> {
        let (name, result) = match self {
            Self::Postgres(name, pool) => {
                (*name, sqlx::query("SELECT 1").execute(pool).await.map(drop))
            }
            Self::Sqlite(name, pool) => {
                (*name, sqlx::query("SELECT 1").execute(pool).await.map(drop))
            }
        };
        vec![Check {
            name,
            result: result.map_err(|e| e.to_string()),
        }]
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Postgres(name, _) | Self::Sqlite(name, _) => name,
        }
    }
}
