//! Where each projection stands, from what the projectors write beside
//! their documents: status (position), pending dead letters, live route.
//! The read API's operator view and `tessera admin status` both show it.

use chrono::Utc;
use serde::Serialize;

use crate::documents::{collections, ProjectionStatus};
use crate::live;
use crate::store::{DocumentStore, StoreError};

/// Where a projection stands: its live collection, position, lag behind the
/// head of the log, and pending dead letters.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionReport {
    pub name: String,
    pub collection: String,
    pub last_position: i64,
    pub lag: i64,
    pub dead_letters: usize,
    pub updated_at: Option<chrono::DateTime<Utc>>,
}

pub async fn report(
    docs: &dyn DocumentStore,
    projections: &[&str],
    head: tessera_events::LogPosition,
) -> Result<Vec<ProjectionReport>, StoreError> {
    let mut out = Vec::new();
    for &name in projections {
        let status = docs
            .get(collections::PROJECTIONS, name)
            .await?
            .and_then(|d| serde_json::from_value::<ProjectionStatus>(d.body).ok());
        let dead_letters = docs
            .find_ids(collections::DEAD_LETTERS, "pending_for", name)
            .await?
            .len();
        let position = status.as_ref().map_or(0, |s| s.position);
        out.push(ProjectionReport {
            name: name.to_owned(),
            collection: live::live(docs, name).await?,
            last_position: position,
            lag: (head.position - position).max(0),
            dead_letters,
            updated_at: status.map(|s| s.updated_at),
        });
    }
    Ok(out)
}
