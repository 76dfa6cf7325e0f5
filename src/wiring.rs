//! Where the roles and the admin commands get their parts: the embedded
//! files in the data folder, the stores of the configured mode, the JWT
//! secret and the authenticator. Both `roles` and `admin` use this; neither
//! uses the other's internals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use tessera_documents::store::embedded::EmbeddedStore;
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::DocumentStore;
use tessera_events::EventLog;
use tessera_http::auth::Authenticator;
use tessera_write_side::store::postgres::{self, PgEventLog};
use tessera_write_side::store::sqlite::{self, SqliteEventLog};

use crate::settings::Settings;

/// The embedded mode's files in `TESSERA_DATA_DIR`.
pub(crate) mod files {
    pub const EVENTS: &str = "events.db";
    pub const CREDENTIALS: &str = "credentials.db";
    pub const STATE: &str = "state.db";
    pub const DOCUMENTS: &str = "documents.db";
    pub const JWT_SECRET: &str = "jwt_secret";
}

/// `name` in the data folder.
pub(crate) fn data_file(s: &Settings, name: &str) -> PathBuf {
    s.data_dir.join(name)
}

pub(crate) fn authenticator(s: &Settings, secret: &SecretString) -> Result<Arc<Authenticator>> {
    let mut auth = Authenticator::hs256(
        secret.expose_secret().as_bytes(),
        &s.jwt_issuer,
        &s.jwt_audience,
        s.token_ttl(),
    )?;
    if let Some(path) = &s.jwt_public_key_file {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        auth = auth.with_rs256_pem(&pem)?;
    }
    if let Some(path) = &s.jwks_file {
        let json =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        auth = auth.with_jwks(&json)?;
    }
    Ok(Arc::new(auth))
}

/// The configured secret; for the embedded mode, one generated once and
/// kept in the data folder.
pub(crate) fn jwt_secret(s: &Settings, embedded: bool) -> Result<SecretString> {
    if let Some(secret) = &s.jwt_secret {
        return Ok(secret.clone());
    }
    if !embedded {
        bail!("TESSERA_JWT_SECRET is required outside the embedded mode");
    }
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("cannot create {}", s.data_dir.display()))?;
    let path = data_file(s, files::JWT_SECRET);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(existing.trim().to_owned()));
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret)?;
    Ok(SecretString::from(secret))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

pub(crate) async fn mongo(s: &Settings) -> Result<Arc<dyn DocumentStore>> {
    mongo_with_timeout(s, s.mongodb_timeout()).await
}

pub(crate) async fn mongo_with_timeout(
    s: &Settings,
    timeout: Duration,
) -> Result<Arc<dyn DocumentStore>> {
    let uri = s
        .mongodb_uri
        .as_ref()
        .context("TESSERA_MONGODB_URI is required for this role")?;
    let store = MongoStore::connect(uri.expose_secret(), &s.mongodb_database)
        .await
        .context("cannot connect to MongoDB")?
        .with_timeout(timeout);
    Ok(Arc::new(store))
}

/// The event store of the configured mode, as the admin commands reach
/// it: PostgreSQL, or the embedded file that `serve` made.
pub(crate) enum EventStore {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

pub(crate) async fn event_store(s: &Settings, connections: u32) -> Result<EventStore> {
    Ok(match &s.database_url {
        Some(url) => EventStore::Postgres(
            postgres::connect(url.expose_secret(), connections)
                .await
                .context("cannot connect to PostgreSQL")?,
        ),
        None => {
            let path = data_file(s, files::EVENTS);
            if !path.exists() {
                bail!("no embedded event store at {}", path.display());
            }
            EventStore::Sqlite(sqlite::open(&path, connections).await?)
        }
    })
}

/// The event log of the configured mode (read only).
pub(crate) async fn event_log(s: &Settings) -> Result<Arc<dyn EventLog>> {
    Ok(match event_store(s, 4).await? {
        EventStore::Postgres(pool) => Arc::new(PgEventLog::new(pool)),
        EventStore::Sqlite(pool) => Arc::new(SqliteEventLog::new(pool)),
    })
}

/// The document store of the configured mode.
pub(crate) async fn documents(s: &Settings) -> Result<Arc<dyn DocumentStore>> {
    if s.mongodb_uri.is_some() {
        return mongo(s).await;
    }
    Ok(Arc::new(
        EmbeddedStore::open(&data_file(s, files::DOCUMENTS))
            .await
            .context("cannot open the embedded document store")?,
    ))
}
