//! Readiness: whether the dependencies a process needs are reachable.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};

/// One dependency's answer to a readiness probe.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub result: Result<(), String>,
}

/// What a process needs reachable to serve (its stores, its broker).
#[async_trait]
pub trait Readiness: Send + Sync {
    async fn check(&self) -> Vec<Check>;
}

/// Several readiness sources as one (the all-in-one process).
pub struct AllOf(pub Vec<Arc<dyn Readiness>>);

#[async_trait]
impl Readiness for AllOf {
    async fn check(&self) -> Vec<Check> {
        let mut all = Vec::new();
        for r in &self.0 {
            all.extend(r.check().await);
        }
        all
    }
}

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
}
