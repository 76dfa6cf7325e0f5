//! Credentials (email → account id and password hash), kept outside the
//! event log.
//!
//! A registration reserves the email in a transaction that stays open while
//! the `AccountRegistered` event commits, and commits only after it: a
//! concurrent registration of the same email waits on the unique key and is
//! then refused, and a failed append leaves no credential behind.

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub account_id: String,
    pub password_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("email already registered")]
    EmailTaken,
    #[error("credential store failed: {0}")]
    Failed(#[source] sqlx::Error),
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(classify)`
fn classify(e: sqlx::Error) -> CredentialError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => CredentialError::EmailTaken,
        _ => CredentialError::Failed(e),
    }
}

/// An email held for an account that is being registered.
#[async_trait]
pub trait Reservation: Send {
    /// Makes the credential permanent (after the account's event committed).
    async fn confirm(self: Box<Self>) -> Result<(), CredentialError>;
    /// Gives the email back (the registration failed).
    async fn release(self: Box<Self>);
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Holds `email` for `account_id`; `EmailTaken` if someone has it.
    async fn reserve(
        &self,
        email: &str,
        account_id: &str,
        password_hash: &str,
    ) -> Result<Box<dyn Reservation>, CredentialError>;

    async fn find(&self, email: &str) -> Result<Option<Credential>, CredentialError>;

    async fn ping(&self) -> Result<(), CredentialError>;
}

const INSERT: &str =
    "INSERT INTO credentials (email, account_id, password_hash) VALUES ($1, $2, $3)";
const FIND: &str = "SELECT account_id, password_hash FROM credentials WHERE email = $1";

/// Both SQL adapters are the same code over a different sqlx database.
macro_rules! sql_credentials {
    ($(#[$doc:meta])* $store:ident, $reservation:ident, $db:ty, $pool:ty) => {
        $(#[$doc])*
        pub struct $store {
            pool: $pool,
        }

        struct $reservation(Transaction<'static, $db>);

        #[async_trait]
        impl Reservation for $reservation {
            async fn confirm(self: Box<Self>) -> Result<(), CredentialError> {
                self.0.commit().await.map_err(classify)
            }

            async fn release(self: Box<Self>) {
                if let Err(error) = self.0.rollback().await {
                    tracing::warn!(%error, "rolling back a credential reservation failed");
                }
            }
        }

        #[async_trait]
        impl CredentialStore for $store {
            async fn reserve(
                &self,
                email: &str,
                account_id: &str,
                password_hash: &str,
            ) -> Result<Box<dyn Reservation>, CredentialError> {
                let mut tx = self.pool.begin().await.map_err(classify)?;
                sqlx::query(INSERT)
                    .bind(email)
                    .bind(account_id)
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                Ok(Box::new($reservation(tx)))
            }

            async fn find(&self, email: &str) -> Result<Option<Credential>, CredentialError> {
                let row: Option<(String, String)> = sqlx::query_as(FIND)
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(classify)?;
                Ok(row.map(|(account_id, password_hash)| Credential {
                    account_id,
                    password_hash,
                }))
            }

            async fn ping(&self) -> Result<(), CredentialError> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(classify)
            }
        }
    };
}

sql_credentials!(
    /// PostgreSQL credentials. Give it its own pool: a registration holds one
    /// of its connections while the event append takes another from the event
    /// store's pool, and sharing one pool could starve both.
    PgCredentials,
    PgReservation,
    Postgres,
    PgPool
);

sql_credentials!(
    /// Embedded credentials, in a SQLite file of their own so that a held
    /// reservation does not block the event store's writer.
    SqliteCredentials,
    SqliteReservation,
    Sqlite,
    SqlitePool
);

impl PgCredentials {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite-credentials");

impl SqliteCredentials {
    pub async fn new(pool: SqlitePool) -> Result<Self, MigrateError> {
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}
