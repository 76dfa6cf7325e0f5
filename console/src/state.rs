//! `/v1/admin/aggregates/{type}/{id}/state`: an aggregate's state after
//! any of its events (time travel). The aggregate's own events 1..=N are
//! read from the log and folded with the write side's real `apply`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiQuery};
use tessera_http::ApiPath;
use tessera_write_side::domain::history::{self, HistoryError};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Console;

pub(crate) fn routes() -> OpenApiRouter<Console> {
    OpenApiRouter::new().routes(routes!(state))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// The state after this event of the aggregate (1..=its last); default
    /// its last.
    #[param(minimum = 1, example = 2)]
    pub sequence: Option<u64>,
}

/// The event a state is the state after.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StepEvent {
    pub event_type: String,
    pub event_version: String,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"aggregate_type": "account", "aggregate_id": "01939d6e-0000-7000-8000-000000000001", "sequence": 2, "last_sequence": 3,
    "event": {"event_type": "PointsCharged", "event_version": "1.0", "global_position": 12, "recorded_at": "2026-01-01T12:00:00Z", "payload": {"type": "PointsCharged", "amount": 500, "balance": 500, "idempotency_key": "first"}},
    "state": {"registered": true, "nickname": "kim", "balance": 500, "version": 2}}))]
pub struct AggregateState {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The state is the one after this event.
    pub sequence: u64,
    /// The aggregate's last event now.
    pub last_sequence: u64,
    pub event: StepEvent,
    /// The aggregate as the write side holds it after `sequence` (its
    /// internal state, as JSON).
    #[schema(value_type = Object)]
    pub state: Value,
}

/// An aggregate's state after one of its events: its events 1..=`sequence`
/// folded with the write side's own `apply`.
#[utoipa::path(get, path = "/v1/admin/aggregates/{aggregate_type}/{aggregate_id}/state", tag = "console", security(("bearer" = [])),
    params(("aggregate_type" = String, Path, example = "account", description = "`account`, `guild`, `post`, `concert`, `schedule`, `coupon`, `product`, `order`, `message` or `dm_room`"),
        ("aggregate_id" = String, Path), StateQuery),
    responses((status = 200, body = AggregateState), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "no event of that aggregate", body = ErrorBody)))]
pub async fn state(
    State(c): State<Console>,
    AdminUser(_): AdminUser,
    ApiPath((aggregate_type, aggregate_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<StateQuery>,
) -> Result<Json<AggregateState>, ApiError> {
    if !history::TYPES.contains(&aggregate_type.as_str()) {
        return Err(ApiError::invalid(
            "aggregate_type",
            format!("one of {}", history::TYPES.join(", ")),
        ));
    }
    let mut events = tessera_projector::rebuild::history(&*c.log, &aggregate_type, &aggregate_id)
        .await
        .map_err(ApiError::unavailable)?;
    let Some(last) = events.last().map(|e| e.sequence) else {
        return Err(ApiError::not_found("aggregate"));
    };
    let sequence = q.sequence.unwrap_or(last);
    if !(1..=last).contains(&sequence) {
        return Err(ApiError::invalid(
            "sequence",
            format!("1..={last} (the aggregate's events)"),
        ));
    }
    events.retain(|e| e.sequence <= sequence);
    let state = history::state_after(&aggregate_type, &events).map_err(|e| match e {
        HistoryError::UnknownType(_) => ApiError::invalid("aggregate_type", e.to_string()),
        other => ApiError::internal(other),
    })?;
    let Some(e) = events.pop() else {
        return Err(ApiError::not_found("aggregate"));
    };
    Ok(Json(AggregateState {
        aggregate_type,
        aggregate_id,
        sequence,
        last_sequence: last,
        event: StepEvent {
            event_type: e.event_type,
            event_version: e.event_version,
            global_position: e.global_position,
            recorded_at: e.recorded_at,
            payload: e.payload,
        },
        state,
    }))
}
