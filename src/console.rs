//! The web console's wiring (`serve` and the read API): its routes over
//! the process's document store and event log, and the sampler that keeps
//! the projections' last minutes for its charts.

use std::sync::Arc;

use axum::Router;
use tessera_console::{Console, Pulse};
use tessera_documents::store::DocumentStore;
use tessera_events::EventLog;
use tessera_http::auth::Authenticator;
use tokio_util::sync::CancellationToken;

/// The console's router and OpenAPI document; its sampler runs until
/// `shutdown`.
pub(crate) fn start(
    docs: Arc<dyn DocumentStore>,
    log: Arc<dyn EventLog>,
    auth: Arc<Authenticator>,
    shutdown: &CancellationToken,
) -> (Router, utoipa::openapi::OpenApi) {
    let pulse = Arc::new(Pulse::default());
    // ends with the shutdown; nothing waits for a sample in flight
    tessera_console::pulse::sample(
        Arc::clone(&docs),
        Arc::clone(&log),
        Arc::clone(&pulse),
        shutdown.clone(),
    );
    let console = Console {
        docs,
        log,
        auth,
        projections: tessera_projector::projection::all().into(),
        pulse,
    };
    (tessera_console::router(console), tessera_console::openapi())
}
