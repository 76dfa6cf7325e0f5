//! Webhook wiring: the store of the configured mode (beside the event log),
//! the admin routes of the write API and `serve`, and the deliverer of the
//! relay role and `serve`.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::Router;
use secrecy::ExposeSecret;
use tessera_events::EventLog;
use tessera_http::auth::Authenticator;
use tessera_runtime::leader::Leadership;
use tessera_webhooks::http::{Half, WebhookAdmin};
use tessera_webhooks::store::postgres::PgWebhooks;
use tessera_webhooks::store::sqlite::SqliteWebhooks;
use tessera_webhooks::{Deliverer, Sender, WebhookStore};
use tessera_write_side::store::{postgres, sqlite};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::wiring::{data_file, files};

/// The webhook tables of the configured mode, for the admin commands.
pub(crate) async fn webhook_store(s: &Settings) -> Result<Arc<dyn WebhookStore>> {
    Ok(match &s.database_url {
        Some(url) => {
            let pool = postgres::connect(url.expose_secret(), 2)
                .await
                .context("cannot connect to PostgreSQL")?;
            Arc::new(PgWebhooks::new(pool))
        }
        None => {
            let path = data_file(s, files::EVENTS);
            if !path.exists() {
                bail!("no embedded event store at {}", path.display());
            }
            let pool = sqlite::open(&path, 2).await?;
            sqlite::migrate(&pool).await?;
            Arc::new(SqliteWebhooks::new(pool))
        }
    })
}

/// `/v1/admin/webhooks`: the commands or the reads (`half`).
pub(crate) fn admin_router(
    s: &Settings,
    store: Arc<dyn WebhookStore>,
    log: Arc<dyn EventLog>,
    auth: Arc<Authenticator>,
    half: Half,
) -> Router {
    tessera_webhooks::http::router(
        WebhookAdmin {
            store,
            log,
            auth,
            policy: s.webhook_policy(),
        },
        half,
    )
}

/// Delivers webhooks until `shutdown`, one process at a time.
pub(crate) fn spawn_deliverer(
    s: &Settings,
    store: Arc<dyn WebhookStore>,
    log: Arc<dyn EventLog>,
    leadership: Leadership,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let sender = Sender::new(s.webhook_policy(), s.webhook_timeout())
        .context("cannot build the webhook client")?;
    let deliverer = Deliverer::new(store, log, sender, s.webhook_delivery());
    Ok(tokio::spawn(deliverer.run(leadership, shutdown)))
}
