//! Tessera's web console, served at `/console` by `serve` and the read
//! API: its page (HTML, CSS and JS compiled into the binary, nothing
//! fetched from a network) and the admin routes it needs beyond the read
//! API's own: the projections' dead letters (list, retry, discard), an
//! aggregate's state after any of its events (time travel) and the
//! projections' lag and throughput over the last minutes.
//!
//! Everything here reads the stores the read API has (the document store
//! and the event log); the dead letters are written back to the document
//! store, as `tessera admin dlq` does.

mod assets;
mod letters;
pub mod pulse;
mod state;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use tessera_documents::store::DocumentStore;
use tessera_events::EventLog;
use tessera_http::auth::Authenticator;
use tessera_projector::projection::Projection;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use assets::CONSOLE_PATH;
pub use pulse::Pulse;

/// What the console's routes need.
#[derive(Clone)]
pub struct Console {
    pub docs: Arc<dyn DocumentStore>,
    pub log: Arc<dyn EventLog>,
    pub auth: Arc<Authenticator>,
    /// The projections whose dead letters can be retried.
    pub projections: Arc<[Arc<dyn Projection>]>,
    /// The projections' recent history, sampled by [`pulse::sample`].
    pub pulse: Arc<Pulse>,
}

impl FromRef<Console> for Arc<Authenticator> {
    fn from_ref(c: &Console) -> Self {
        Arc::clone(&c.auth)
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "console", description = "What the web console at /console reads and does besides the other admin routes: dead letters, an aggregate's state after any event, projection history (admin role)")))]
struct ConsoleDoc;

fn routes() -> OpenApiRouter<Console> {
    OpenApiRouter::with_openapi(ConsoleDoc::openapi())
        .merge(letters::routes())
        .merge(state::routes())
        .merge(pulse::routes())
}

/// The console's page and routes.
pub fn router(console: Console) -> Router {
    routes()
        .split_for_parts()
        .0
        .with_state(console)
        .merge(assets::router())
}

/// The OpenAPI document of the console's routes (the page is not in it,
/// as `/docs` is not).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    utoipa::Modify::modify(&tessera_http::openapi::StandardErrors, &mut doc);
    doc
}
