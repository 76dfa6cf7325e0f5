//! Operator views: the audit view of the event log and where each
//! projection stands. Both need the `admin` role.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_events::{Envelope, EventLog, LogFilter, LogRecord};
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiQuery};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::cursor::Paging;
use crate::query::{page_schema, store_failed};
use crate::ReadState;

/// Events per page of the audit view: larger than document pages because
/// auditors page through long stretches of the log.
const DEFAULT_EVENTS: usize = 100;
const MAX_EVENTS: usize = 1000;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(projections))
}

/// `GET /v1/admin/events` filters. `cursor` (from the previous page) and
/// `after_position` both say where to start; pass one of them.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    /// Only events with a larger global position.
    #[param(minimum = 0)]
    pub after_position: Option<i64>,
    /// Recorded at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Only events of this type (`PointsCharged`, ...). The log is not
    /// indexed by type: a page scans at most 10,000 events, so a page may
    /// hold fewer than `limit` events and still have a `next_cursor`.
    #[param(min_length = 1, max_length = 100, example = "PointsCharged")]
    pub event_type: Option<String>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

impl EventsQuery {
    fn paging(&self, rs: &ReadState, admin: &str) -> Result<Paging, ApiError> {
        let scope = Paging::scope("/v1/admin/events", admin);
        Paging::new(
            &rs.cursors,
            scope,
            self.limit,
            MAX_EVENTS,
            DEFAULT_EVENTS,
            self.cursor.as_deref(),
        )
    }

    fn after(&self, paging: &Paging) -> Result<i64, ApiError> {
        match (&paging.after, self.after_position) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "cursor",
                "pass either cursor or after_position, not both",
            )),
            (Some(position), None) => position
                .parse()
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this API handed out")),
            (None, Some(p)) if p < 0 => {
                Err(ApiError::invalid("after_position", "must not be negative"))
            }
            (None, p) => Ok(p.unwrap_or(0)),
        }
    }
}

/// One event as the log holds it (payloads upcast to their current version).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub global_position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Position in the aggregate's stream, from 1 without gaps.
    pub sequence: u64,
    pub event_type: String,
    pub event_version: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `actor`, `correlation_id`, `causation_id`, `request_id`, `occurred_at`.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl EventView {
    fn of(e: Envelope) -> Result<Self, ApiError> {
        Ok(Self {
            global_position: e.global_position,
            event_id: e.event_id,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: serde_json::to_value(e.metadata).map_err(ApiError::internal)?,
            recorded_at: e.recorded_at,
        })
    }
}

page_schema!(EventPage of EventView);

/// The audit view of the event log, in global position order.
#[utoipa::path(get, path = "/v1/admin/events", tag = "admin", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn events(
    State(rs): State<ReadState>,
    AdminUser(admin): AdminUser,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let paging = q.paging(&rs, &admin.user_id)?;
    let (limit, after) = (paging.limit, q.after(&paging)?);
    if let Some(t) = &q.event_type {
        if !tessera_events::event_types().any(|known| known == t) {
            return Err(ApiError::not_one_of(
                "event_type",
                format!("unknown event type {t:?}"),
                tessera_events::event_types(),
            ));
        }
    }
    let filter = LogFilter {
        aggregate_type: q.aggregate_type,
        aggregate_id: q.aggregate_id,
        since: q.since,
        until: q.until,
    };
    let page = read_page(&*rs.log, after, limit, &filter, q.event_type.as_deref()).await?;
    let next_cursor = page.resume.map(|p| paging.next(&p.to_string()));
    let items = page
        .found
        .into_iter()
        .map(|r| EventView::of(r.envelope))
        .collect::<Result<_, _>>()?;
    Ok(Json(EventPage { items, next_cursor }))
}

/// Events of the log the store reads per request while it looks for one
/// event type, and how many it reads at most for one page.
const TYPE_SCAN_CHUNK: usize = 1000;
const TYPE_SCAN_MAX: usize = 10_000;

/// One page of the audit view and the position the next one starts after
/// (`None`: this was the last).
struct Page {
    found: Vec<LogRecord>,
    resume: Option<i64>,
}

async fn read_page(
    log: &dyn EventLog,
    mut after: i64,
    limit: usize,
    filter: &LogFilter,
    event_type: Option<&str>,
) -> Result<Page, ApiError> {
    let Some(event_type) = event_type else {
        // one more than asked: it only tells whether there is a next page
        let mut found = log
            .read_filtered(after, limit + 1, filter)
            .await
            .map_err(ApiError::unavailable)?;
        let more = found.len() > limit;
        found.truncate(limit);
        let resume = more
            .then(|| found.last().map(|r| r.envelope.global_position))
            .flatten();
        return Ok(Page { found, resume });
    };
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let chunk = log
            .read_filtered(after, TYPE_SCAN_CHUNK, filter)
            .await
            .map_err(ApiError::unavailable)?;
        let whole = chunk.len() == TYPE_SCAN_CHUNK;
        scanned += chunk.len();
        for r in chunk {
            if r.envelope.event_type != event_type {
                after = r.envelope.global_position;
                continue;
            }
            if found.len() == limit {
                // a match beyond the page: the next page starts after this one's last
                let resume = found.last().map(|r: &LogRecord| r.envelope.global_position);
                return Ok(Page { found, resume });
            }
            after = r.envelope.global_position;
            found.push(r);
        }
        if !whole {
            return Ok(Page {
                found,
                resume: None,
            });
        }
        if scanned >= TYPE_SCAN_MAX {
            return Ok(Page {
                found,
                resume: Some(after),
            });
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectionView {
    pub name: String,
    /// The collection readers are served from (changes on rebuild).
    pub collection: String,
    /// Global position of the last event the projection applied.
    pub last_position: i64,
    /// Events in the log the projection has not applied yet: past its
    /// position, or, with several instances, the most any live one last
    /// measured waiting in its own partitions (measured every 2 s).
    pub lag: i64,
    /// Pending dead letters.
    pub dead_letters: usize,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Each projection's live collection, position, lag behind the head of the
/// log and pending dead letters.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [ProjectionView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn projections(
    State(rs): State<ReadState>,
    AdminUser(_): AdminUser,
) -> Result<Json<Vec<ProjectionView>>, ApiError> {
    let head = rs.log.head().await.map_err(ApiError::unavailable)?;
    let reports = tessera_documents::status::report(
        &*rs.docs,
        tessera_documents::documents::collections::PROJECTED,
        head,
    )
    .await
    .map_err(|e| store_failed(&e))?;
    Ok(Json(
        reports
            .into_iter()
            .map(|r| ProjectionView {
                name: r.name,
                collection: r.collection,
                last_position: r.last_position,
                lag: r.lag,
                dead_letters: r.dead_letters,
                updated_at: r.updated_at,
            })
            .collect(),
    ))
}
