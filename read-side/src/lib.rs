//! Tessera's read side: serves the projected documents.
//!
//! Reads are eventually consistent. A client that just wrote passes the
//! version its command returned as `?min_version=N`; the read waits (bounded)
//! until the document reflects it, then answers, marking a still-older
//! answer with `X-Stale: true`.
//!
//! A view names the fields of its document that the API shows, under the
//! document's names, and is read straight from the stored document (see
//! `query::typed`); code maps a document only where a view computes
//! something (who may read it, what is unread, what is free now).

mod access;
mod accounts;
mod admin;
mod board;
mod chat;
mod concerts;
mod coupons;
mod cursor;
mod etag;
mod guilds;
mod notifications;
pub mod presence;
mod query;
mod reader;
mod shop;
mod stream;
pub mod stream_limit;
#[cfg(test)]
mod view_fields;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::Router;
use tessera_documents::store::DocumentStore;
use tessera_events::EventLog;
use tessera_http::auth::Authenticator;
use tessera_queue::QueueGate;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use cursor::CursorKey;
pub use query::{Page, PageParams};
pub use stream::LiveFeed;

pub struct ReadSide {
    pub docs: Arc<dyn DocumentStore>,
    /// The event log, read only (the audit view and projection lag).
    pub log: Arc<dyn EventLog>,
    /// Each projection's live collection (switched by rebuilds).
    pub live: tessera_documents::live::LiveCollections,
    pub auth: Arc<Authenticator>,
    /// The waiting queue (status, and the gate of the seat map).
    pub queue: Arc<QueueGate>,
    /// How long a read with `min_version` waits for the document.
    pub min_version_wait: Duration,
    /// Signs the cursors of lists.
    pub cursors: CursorKey,
    /// The change feed live streams follow (`None`: no `/v1/stream`).
    pub live_feed: Option<LiveFeed>,
    /// Who has a stream open, shared by every read API.
    pub presence: Arc<dyn presence::Presence>,
    /// How long a user stays online after their last stream closed.
    pub presence_grace: Duration,
}

#[derive(Clone)]
pub struct ReadState(pub Arc<ReadSide>);

impl Deref for ReadState {
    type Target = ReadSide;

    fn deref(&self) -> &ReadSide {
        &self.0
    }
}

impl ReadSide {
    /// The collection serving a projection now.
    pub(crate) async fn live(
        &self,
        projection: &str,
    ) -> Result<String, tessera_http::error::ApiError> {
        self.live
            .get(projection)
            .await
            .map_err(|e| query::store_failed(&e))
    }
}

impl FromRef<ReadState> for Arc<Authenticator> {
    fn from_ref(state: &ReadState) -> Self {
        Arc::clone(&state.0.auth)
    }
}

/// Every query route with its OpenAPI entry, from one list: a route
/// cannot be served undocumented, nor documented unserved.
fn routes() -> OpenApiRouter<ReadState> {
    OpenApiRouter::with_openapi(ReadApiDoc::openapi())
        .merge(accounts::router())
        .merge(guilds::router())
        .merge(board::router())
        .merge(concerts::router())
        .merge(coupons::router())
        .merge(shop::router())
        .merge(chat::router())
        .merge(notifications::router())
        .merge(stream::router())
        .merge(presence::router())
        .merge(admin::router())
}

/// The query routes (no ops routes, no layers).
pub fn router(state: ReadState) -> Router {
    // exported at zero before the first stream opens
    metrics::gauge!("tessera_streams_open").increment(0.0);
    routes()
        .split_for_parts()
        .0
        .with_state(state)
        .layer(axum::middleware::from_fn(etag::conditional))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera read API", description = "Queries over projected documents. Reads of one document accept `min_version`: the server waits up to 2 s for the document to reach it and marks an older answer with `X-Stale: true`. Lists take `limit` (1..=100, default 20) and the opaque `cursor` of the previous page. Every 200 JSON answer carries a strong `ETag` (a hash of its body); a GET sending it back in `If-None-Match` is answered `304 Not Modified` with no body. Every request may send a W3C `traceparent` header (an absent or malformed one starts a new trace); every answer names its request's span in `traceresponse`."),
    tags((name = "accounts"), (name = "guilds"), (name = "board"), (name = "concerts"), (name = "queue"),
        (name = "reservations"), (name = "coupons"), (name = "shop"), (name = "chat"), (name = "notifications"), (name = "live"), (name = "admin")),
)]
pub struct ReadApiDoc;

/// The OpenAPI document of the read API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    utoipa::Modify::modify(&tessera_http::openapi::StandardErrors, &mut doc);
    doc
}
