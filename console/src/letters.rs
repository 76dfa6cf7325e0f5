//! `/v1/admin/dead-letters`: the projections' pending dead letters, and
//! retrying or discarding one, as `tessera admin dlq` does. A retry keeps
//! per-aggregate order: it retries the letters of the letter's aggregate
//! from the earliest up and stops at the first that still fails.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiQuery};
use tessera_http::ApiPath;
use tessera_projector::deadletters::{self, Letter};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Console;

pub(crate) fn routes() -> OpenApiRouter<Console> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(retry))
        .routes(routes!(discard))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LettersQuery {
    /// Only this projection's letters.
    #[param(min_length = 1, max_length = 100, example = "accounts")]
    pub projection: Option<String>,
}

/// A pending dead letter.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LetterView {
    /// Pass it to retry or discard the letter.
    pub letter_id: String,
    pub projection: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub global_position: i64,
    /// `null` when the delivery was not an event at all.
    pub event_type: Option<String>,
    /// The event's payload, or the raw delivery that was not an event.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Why the projection refused it (the last attempt's error).
    pub error: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

impl From<Letter> for LetterView {
    fn from(l: Letter) -> Self {
        let d = l.doc;
        let (event_type, payload) = match d.envelope {
            Some(e) => (Some(e.event_type), e.payload),
            None => (None, d.raw.map_or(Value::Null, Value::String)),
        };
        Self {
            letter_id: l.id,
            projection: d.projection,
            aggregate_type: d.aggregate_type,
            aggregate_id: d.aggregate_id,
            sequence: d.sequence,
            global_position: d.global_position,
            event_type,
            payload,
            error: d.error,
            attempts: d.attempts,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"items": [{"letter_id": "accounts:account:01939d6e-0000-7000-8000-000000000001:00000000000000000003", "projection": "accounts", "aggregate_type": "account", "aggregate_id": "01939d6e-0000-7000-8000-000000000001", "sequence": 3, "global_position": 17, "event_type": "PointsCharged", "payload": {"type": "PointsCharged", "amount": 10, "balance": 20, "idempotency_key": "b"}, "error": "the document cannot be read", "attempts": 4, "created_at": "2026-01-01T12:00:00Z"}]}))]
pub struct LetterList {
    /// By projection, aggregate and sequence. Every pending letter (there
    /// are few; there is no paging).
    pub items: Vec<LetterView>,
}

/// Pending dead letters of every projection (or of one).
#[utoipa::path(get, path = "/v1/admin/dead-letters", tag = "console", params(LettersQuery), security(("bearer" = [])),
    responses((status = 200, body = LetterList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(c): State<Console>,
    AdminUser(_): AdminUser,
    ApiQuery(q): ApiQuery<LettersQuery>,
) -> Result<Json<LetterList>, ApiError> {
    if let Some(p) = &q.projection {
        if !c.projections.iter().any(|known| known.name() == p) {
            return Err(ApiError::invalid(
                "projection",
                format!("no projection {p:?}"),
            ));
        }
    }
    let letters = deadletters::pending(&*c.docs, &c.projections, q.projection.as_deref())
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(LetterList {
        items: letters.into_iter().map(LetterView::from).collect(),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StillFailing {
    pub letter_id: String,
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"retried": ["accounts:account:01939d6e-0000-7000-8000-000000000001:00000000000000000003"], "repaired_from_log": 0, "still_failing": []}))]
pub struct RetryView {
    /// Letters applied and resolved, in order.
    pub retried: Vec<String>,
    /// Events the projection had missed before a letter, applied from the log.
    pub repaired_from_log: usize,
    /// The letter that failed again and why; the letters after it stay parked.
    pub still_failing: Vec<StillFailing>,
}

/// Retry a dead letter, with the letters of its aggregate before it, in
/// order; answers what was applied and what still fails.
#[utoipa::path(post, path = "/v1/admin/dead-letters/{letter_id}/retry", tag = "console", security(("bearer" = [])),
    params(("letter_id" = String, Path, description = "`letter_id` of the listing")),
    responses((status = 200, body = RetryView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such pending letter", body = ErrorBody)))]
pub async fn retry(
    State(c): State<Console>,
    AdminUser(admin): AdminUser,
    ApiPath(letter_id): ApiPath<String>,
) -> Result<Json<RetryView>, ApiError> {
    let pending = deadletters::pending(&*c.docs, &c.projections, None)
        .await
        .map_err(ApiError::unavailable)?;
    if !pending.iter().any(|l| l.id == letter_id) {
        return Err(ApiError::not_found("dead letter"));
    }
    let report = deadletters::retry(&*c.docs, &*c.log, &c.projections, Some(&letter_id))
        .await
        .map_err(ApiError::unavailable)?;
    tracing::info!(letter_id = %letter_id, admin = %admin.user_id, retried = report.retried.len(), still_failing = report.still_failing.len(), "dead letter retried");
    Ok(Json(RetryView {
        retried: report.retried,
        repaired_from_log: report.repaired_from_log,
        still_failing: report
            .still_failing
            .into_iter()
            .map(|(letter_id, error)| StillFailing { letter_id, error })
            .collect(),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Discarded {
    pub letter_id: String,
    pub discarded: bool,
}

/// Discard a dead letter: its event stays in the log, the projection never
/// applies it (`tessera admin replay` rebuilds the aggregate's documents
/// from the log).
#[utoipa::path(delete, path = "/v1/admin/dead-letters/{letter_id}", tag = "console", security(("bearer" = [])),
    params(("letter_id" = String, Path, description = "`letter_id` of the listing")),
    responses((status = 200, body = Discarded), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such pending letter", body = ErrorBody)))]
pub async fn discard(
    State(c): State<Console>,
    AdminUser(admin): AdminUser,
    ApiPath(letter_id): ApiPath<String>,
) -> Result<Json<Discarded>, ApiError> {
    if !deadletters::discard(&*c.docs, &letter_id)
        .await
        .map_err(ApiError::unavailable)?
    {
        return Err(ApiError::not_found("dead letter"));
    }
    tracing::info!(letter_id = %letter_id, admin = %admin.user_id, "dead letter discarded");
    Ok(Json(Discarded {
        letter_id,
        discarded: true,
    }))
}
