//! Webhook wiring: the store of the configured mode (beside the event log),
//! the admin routes of the write API and `serve`, and the deliverer of the
//! relay role and `serve`.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use tessera_events::EventLog;
use tessera_http::auth::Authenticator;
use tessera_runtime::leader::Leadership;
use tessera_webhooks::http::{Half, WebhookAdmin};
use tessera_webhooks::store::postgres::PgWebhooks;
use tessera_webhooks::store::sqlite::SqliteWebhooks;
use tessera_webhooks::{Deliverer, Sender, WebhookStore};
use tessera_write_side::store::sqlite;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::wiring::{event_store, EventStore};

/// The webhook tables of the configured mode, for the admin commands.
pub(crate) async fn webhook_store(s: &Settings) -> Result<Arc<dyn WebhookStore>> {
    Ok(match event_store(s, 2).await? {
        EventStore::Postgres(pool) => Arc::new(PgWebhooks::new(pool)),
        EventStore::Sqlite(pool) => {
            // an embedded store older than the webhook tables gets them
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
