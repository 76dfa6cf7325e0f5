//! `/v1/admin/webhooks`: register, list and delete webhooks (admin role).
//! Registering and deleting are served by the write API, listing by the
//! read API (both reach the event store the webhooks live beside); `serve`
//! has both.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_events::{EventLog, LogFilter, LogRecord};
use tessera_http::auth::Authenticator;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiJson, ApiQuery};
use tessera_http::ApiPath;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::deliver::start_position;
use crate::store::{Webhook, WebhookStore};
use crate::target::{UrlPolicy, UrlRefused, MAX_URL_LEN};

/// Longest secret accepted.
pub const MAX_SECRET_LEN: usize = 1024;
/// Most event types one webhook subscribes to.
pub const MAX_EVENT_TYPES: usize = 100;

/// What the admin routes need.
#[derive(Clone)]
pub struct WebhookAdmin {
    pub store: Arc<dyn WebhookStore>,
    pub log: Arc<dyn EventLog>,
    pub auth: Arc<Authenticator>,
    pub policy: UrlPolicy,
}

impl FromRef<WebhookAdmin> for Arc<Authenticator> {
    fn from_ref(s: &WebhookAdmin) -> Self {
        Arc::clone(&s.auth)
    }
}

/// Which half of the routes a process serves: commands go to the write
/// API, reads to the read API (API.md), `serve` has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// `POST` and `DELETE`.
    Commands,
    /// `GET`.
    Reads,
}

fn routes(half: Half) -> OpenApiRouter<WebhookAdmin> {
    let r = OpenApiRouter::with_openapi(WebhooksDoc::openapi());
    match half {
        Half::Commands => r.routes(routes!(register)).routes(routes!(delete)),
        Half::Reads => r.routes(routes!(list)).routes(routes!(deliveries)),
    }
}

pub fn router(state: WebhookAdmin, half: Half) -> Router {
    routes(half).split_for_parts().0.with_state(state)
}

/// The OpenAPI document of those routes.
pub fn openapi(half: Half) -> utoipa::openapi::OpenApi {
    let mut doc = routes(half).split_for_parts().1;
    utoipa::Modify::modify(&tessera_http::openapi::StandardErrors, &mut doc);
    doc
}

#[derive(OpenApi)]
#[openapi(tags((name = "webhooks", description = "Outbound webhooks: matching events committed after registration, POSTed with an HMAC-SHA256 signature")))]
struct WebhooksDoc;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/tessera", "event_types": ["OrderPaid"], "secret": "a shared secret of the receiver"}))]
pub struct WebhookRequest {
    /// `http` or `https`, at most 2048 characters; a host that resolves to a
    /// loopback, private or link-local address → 422 `url_not_allowed`
    /// (unless `TESSERA_WEBHOOK_ALLOW_PRIVATE=true`).
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "https://example.com/hooks/tessera"
    )]
    pub url: String,
    /// 1..=100 event type names (`OrderPaid`, `StockTaken`, ...).
    #[schema(min_items = 1, max_items = 100, example = json!(["OrderPaid"]))]
    pub event_types: Vec<String>,
    /// 1..=1024 characters; keys the `X-Tessera-Signature` HMAC. Use at
    /// least 32 random bytes.
    #[schema(min_length = 1, max_length = 1024)]
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    pub webhook_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub webhook_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    /// Deliveries answered 2xx.
    pub delivered: u64,
    /// Dead letters waiting (`tessera admin webhooks`).
    pub failed: u64,
    /// Matching events committed and not delivered yet.
    pub pending: u64,
    /// The last failed attempt's reason; `null` after a delivery went through.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeleted {
    pub webhook_id: Uuid,
    pub deleted: bool,
}

fn validate(req: &WebhookRequest) -> Result<Vec<String>, ApiError> {
    if req.url.is_empty() || req.url.len() > MAX_URL_LEN {
        return Err(ApiError::invalid(
            "url",
            format!("1..={MAX_URL_LEN} characters"),
        ));
    }
    if req.secret.is_empty() || req.secret.chars().count() > MAX_SECRET_LEN {
        return Err(ApiError::invalid(
            "secret",
            format!("1..={MAX_SECRET_LEN} characters"),
        ));
    }
    if req.event_types.is_empty() || req.event_types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::invalid(
            "event_types",
            format!("1..={MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut types: Vec<String> = Vec::with_capacity(req.event_types.len());
    for t in &req.event_types {
        if !tessera_events::event_types().any(|known| known == t) {
            return Err(ApiError::not_one_of(
                "event_types",
                format!("unknown event type {t:?}"),
                tessera_events::event_types(),
            ));
        }
        if !types.contains(t) {
            types.push(t.clone());
        }
    }
    Ok(types)
}

fn refused(reason: &UrlRefused) -> ApiError {
    match reason {
        UrlRefused::Malformed(_) | UrlRefused::TooLong | UrlRefused::NoHost => {
            ApiError::invalid("url", reason.to_string())
        }
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_not_allowed",
            reason.to_string(),
        )
        .with_details(serde_json::json!({ "field": "url", "reason": reason.to_string() })),
    }
}

/// Register a webhook (admin). Only events committed from now on are
/// delivered.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "webhooks", request_body = WebhookRequest, security(("bearer" = [])),
    responses((status = 201, body = WebhookCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, description = "`url_not_allowed`", body = ErrorBody)))]
pub async fn register(
    State(st): State<WebhookAdmin>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let event_types = validate(&req)?;
    let url = st.policy.check(&req.url).await.map_err(|r| refused(&r))?;
    let checkpoint = start_position(&*st.log)
        .await
        .map_err(ApiError::unavailable)?;
    let webhook = Webhook {
        webhook_id: Uuid::now_v7(),
        url: url.to_string(),
        event_types,
        secret: req.secret,
        checkpoint,
        delivered: 0,
        last_error: None,
        created_at: Utc::now(),
    };
    st.store
        .register(&webhook)
        .await
        .map_err(ApiError::unavailable)?;
    tracing::info!(webhook_id = %webhook.webhook_id, admin = %admin.user_id, url = %webhook.url, "webhook registered");
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook_id: webhook.webhook_id,
        }),
    ))
}

/// Every webhook with its deliveries (admin). Secrets are never shown.
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Vec<WebhookView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(st): State<WebhookAdmin>,
    AdminUser(_): AdminUser,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let hooks = st.store.list().await.map_err(ApiError::unavailable)?;
    let mut views = Vec::with_capacity(hooks.len());
    for w in hooks {
        let backlog = st.store.backlog(&w).await.map_err(ApiError::unavailable)?;
        views.push(WebhookView {
            webhook_id: w.webhook_id,
            url: w.url,
            event_types: w.event_types,
            delivered: w.delivered,
            failed: backlog.failed,
            pending: backlog.pending,
            last_error: w.last_error,
            created_at: w.created_at,
        });
    }
    Ok(Json(views))
}

/// Delete a webhook and its dead letters (admin); deliveries stop within a
/// second.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookDeleted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<WebhookAdmin>,
    AdminUser(admin): AdminUser,
    ApiPath(webhook_id): ApiPath<Uuid>,
) -> Result<Json<WebhookDeleted>, ApiError> {
    if !st
        .store
        .delete(webhook_id)
        .await
        .map_err(ApiError::unavailable)?
    {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(%webhook_id, admin = %admin.user_id, "webhook deleted");
    Ok(Json(WebhookDeleted {
        webhook_id,
        deleted: true,
    }))
}

/// Events at the head of the log a deliveries listing looks through.
const DELIVERY_WINDOW: i64 = 5_000;
const DEFAULT_DELIVERIES: usize = 20;
const MAX_DELIVERIES: usize = 100;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<usize>,
}

/// Where one matching event stands with a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// Out of attempts: a dead letter waiting for `tessera admin webhooks`.
    Failed,
    /// Committed, not delivered yet (being attempted or queued behind others).
    Pending,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub event_id: Uuid,
    pub global_position: i64,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub recorded_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    /// Attempts of a failed delivery.
    pub attempts: Option<u32>,
    /// Why a failed delivery failed.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"items": [{"event_id": "01939d6e-7a1b-7c2d-9e3f-0a1b2c3d4e5f", "global_position": 42, "event_type": "OrderPaid", "aggregate_type": "order", "aggregate_id": "01939d6e-0000-7000-8000-000000000001", "sequence": 2, "recorded_at": "2026-01-01T12:00:00Z", "status": "delivered", "attempts": null, "error": null}]}))]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<DeliveryView>,
}

/// A webhook's most recent deliveries (admin): the matching events among
/// the last 5,000 of the log, newest first, each delivered, failed (a dead
/// letter, with its attempts and error) or pending.
#[utoipa::path(get, path = "/v1/admin/webhooks/{webhook_id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(st): State<WebhookAdmin>,
    AdminUser(_): AdminUser,
    ApiPath(webhook_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = match q.limit {
        None => DEFAULT_DELIVERIES,
        Some(n) if (1..=MAX_DELIVERIES).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid("limit", format!("1..={MAX_DELIVERIES}"))),
    };
    let webhook = st
        .store
        .list()
        .await
        .map_err(ApiError::unavailable)?
        .into_iter()
        .find(|w| w.webhook_id == webhook_id)
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let head = st.log.head().await.map_err(ApiError::unavailable)?;
    let filter = LogFilter {
        since: Some(webhook.created_at),
        ..LogFilter::default()
    };
    let mut after = (head.position - DELIVERY_WINDOW).max(0);
    let mut matching: Vec<LogRecord> = Vec::new();
    loop {
        let chunk = st
            .log
            .read_filtered(after, 1000, &filter)
            .await
            .map_err(ApiError::unavailable)?;
        let Some(last) = chunk.last() else { break };
        after = last.envelope.global_position;
        matching.extend(
            chunk
                .into_iter()
                .filter(|r| webhook.wants(&r.envelope.event_type)),
        );
        if after >= head.position {
            break;
        }
    }
    let letters = st
        .store
        .dead_letters(Some(webhook_id))
        .await
        .map_err(ApiError::unavailable)?;
    let items = matching
        .into_iter()
        .rev()
        .take(limit)
        .map(|r| {
            let letter = letters.iter().find(|l| l.event_id == r.envelope.event_id);
            let status = match letter {
                Some(_) => DeliveryStatus::Failed,
                None if r.at <= webhook.checkpoint => DeliveryStatus::Delivered,
                None => DeliveryStatus::Pending,
            };
            let e = r.envelope;
            DeliveryView {
                event_id: e.event_id,
                global_position: e.global_position,
                event_type: e.event_type,
                aggregate_type: e.aggregate_type,
                aggregate_id: e.aggregate_id,
                sequence: e.sequence,
                recorded_at: e.recorded_at,
                status,
                attempts: letter.map(|l| l.attempts),
                error: letter.map(|l| l.last_error.clone()),
            }
        })
        .collect();
    Ok(Json(DeliveryPage { items }))
}
