//! The command REST API.

pub mod accounts;
pub mod answer;
pub mod board;
pub mod caller;
pub mod chat;
pub mod concerts;
pub mod coupons;
pub mod guilds;
pub mod notifications;
pub mod orders;
pub mod products;

use axum::Router;
use serde::{Deserialize, Deserializer, Serialize};
use tessera_http::error;
use tessera_http::openapi::BearerAuth;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::app::WriteState;
use crate::bus::{CommandBus, CommandContext};
use crate::domain::{DomainError, Named};
use tessera_http::auth::Principal;
use tessera_http::error::ApiError;

/// Every command route with its OpenAPI entry, from one list: a route
/// cannot be served undocumented, nor documented unserved.
fn routes() -> OpenApiRouter<WriteState> {
    OpenApiRouter::with_openapi(WriteApiDoc::openapi())
        .merge(accounts::router())
        .merge(guilds::router())
        .merge(board::router())
        .merge(concerts::router())
        .merge(coupons::router())
        .merge(products::router())
        .merge(orders::router())
        .merge(chat::router())
        .merge(notifications::router())
}

/// The command routes (no ops routes, no layers).
pub fn router(state: WriteState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

/// The aggregate's version after a command.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Version {
    pub version: u64,
}

pub(crate) fn context(actor: &str, request_id: Option<String>) -> CommandContext {
    CommandContext::new(actor, request_id)
}

/// Runs `command` on the aggregate `id` for `actor`; answers the
/// aggregate's version after it.
pub(crate) async fn run<A>(
    bus: &CommandBus<A>,
    id: &str,
    command: A::Command,
    actor: &Principal,
    request_id: Option<String>,
) -> Result<u64, ApiError>
where
    A: cqrs_es::Aggregate + 'static,
    A::Command: Clone + Named + Send + 'static,
    A::Error: DomainError,
    A::Services: 'static,
{
    let ctx = context(&actor.user_id, request_id);
    Ok(bus.execute(id, command, &ctx, |_| ()).await?.version)
}

/// Tells "field absent" (`None`) from "field is null" (`Some(None)`).
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera write API", description = "Commands. Every 2xx answer carries the aggregate's new `version`; pass it as `min_version` to a read to see your own write. Every request may send a W3C `traceparent` header (an absent or malformed one starts a new trace); every answer names its request's span in `traceresponse`."),
    components(schemas(error::ErrorBody, error::ErrorDetail, Version)),
    modifiers(&BearerAuth),
    tags((name = "accounts"), (name = "guilds"), (name = "board"), (name = "concerts"), (name = "queue"),
        (name = "reservations"), (name = "coupons"), (name = "shop"), (name = "chat"), (name = "notifications")),
)]
pub struct WriteApiDoc;

/// The OpenAPI document of the write API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    utoipa::Modify::modify(&tessera_http::openapi::StandardErrors, &mut doc);
    doc
}
