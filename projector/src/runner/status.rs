//! The projection's status document: the highest log position any of its
//! instances applied, and how many events they handled.

use tessera_events::LogPosition;

use tessera_documents::documents::{collections, ProjectionStatus};
use tessera_documents::store::{DocumentStore, StoreError, Write, Written};

/// Records `at` and `events` more handled. With several instances (each on
/// its own partitions) the document keeps the highest position any of them
/// reached, so a quiet instance behind an idle partition does not show a
/// lag that is not there; one behind on its own partitions tells its lag
/// in its heartbeat, which the operators' view adds. Returns whether it was
/// written (another instance may keep winning: its position is at least as
/// fresh).
pub(crate) async fn save_status(
    docs: &dyn DocumentStore,
    name: &str,
    at: LogPosition,
    events: u64,
) -> Result<bool, StoreError> {
    for _ in 0..5 {
        let current = docs.get(collections::PROJECTIONS, name).await?;
        let stored = current
            .as_ref()
            .and_then(|d| serde_json::from_value::<ProjectionStatus>(d.body.clone()).ok());
        let highest = stored
            .as_ref()
            .map(|s| LogPosition {
                tx_id: s.tx_id,
                position: s.position,
            })
            .filter(|s| s.position > at.position)
            .unwrap_or(at);
        let status = ProjectionStatus {
            name: name.to_owned(),
            collection: name.to_owned(),
            tx_id: highest.tx_id,
            position: highest.position,
            events: stored.map_or(0, |s| s.events) + events,
            updated_at: chrono::Utc::now(),
        };
        let body = serde_json::to_value(&status).map_err(StoreError::new)?;
        let written = docs
            .write(
                collections::PROJECTIONS,
                vec![Write::Put {
                    id: name.to_owned(),
                    expected_rev: current.map(|d| d.rev),
                    body,
                }],
            )
            .await?;
        if matches!(written.first(), Some(Written::Ok(_))) {
            return Ok(true);
        }
    }
    Ok(false)
}
