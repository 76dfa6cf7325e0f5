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
    let instances = live::alive_everywhere(docs, chrono::Duration::seconds(15)).await?;
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
        // the status holds the leading instance's position: an instance
        // behind on its own partitions tells its lag in its heartbeat
        let behind = instances
            .iter()
            .filter(|i| i.projection == name)
            .filter_map(|i| i.lag)
            .max()
            .map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX));
        out.push(ProjectionReport {
            name: name.to_owned(),
            collection: live::live(docs, name).await?,
            last_position: position,
            lag: (head.position - position).max(behind).max(0),
            dead_letters,
            updated_at: status.map(|s| s.updated_at),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::Write;
    use tessera_events::LogPosition;

    async fn lag_of(docs: &dyn DocumentStore, head: LogPosition) -> i64 {
        report(docs, &["accounts"], head).await.unwrap()[0].lag
    }

    async fn beat(docs: &dyn DocumentStore, instance: &str, ago_s: i64, lag: Option<u64>) {
        let me = live::Instance {
            projection: "accounts".into(),
            instance: instance.into(),
            heartbeat_at: Utc::now() - chrono::Duration::seconds(ago_s),
            acked_epoch: 0,
            lag,
        };
        live::beat(docs, &me).await.unwrap();
    }

    /// Two instances on their own partitions: the status holds the leading
    /// one's position (at the head), the other tells its lag in its
    /// heartbeat; a dead instance's old word does not count.
    #[tokio::test]
    async fn an_instance_behind_on_its_partitions_shows_although_another_is_at_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let docs = EmbeddedStore::open(&dir.path().join("d.db")).await.unwrap();
        // as a projector declares it before it beats
        docs.ensure_indexes(live::INSTANCES, &["projection"])
            .await
            .unwrap();
        let status = ProjectionStatus {
            name: "accounts".into(),
            collection: "accounts".into(),
            tx_id: 9,
            position: 100,
            events: 100,
            updated_at: Utc::now(),
        };
        docs.write(
            collections::PROJECTIONS,
            vec![Write::Upsert {
                id: "accounts".into(),
                body: serde_json::to_value(&status).unwrap(),
            }],
        )
        .await
        .unwrap();
        let head = LogPosition {
            tx_id: 9,
            position: 100,
        };
        assert_eq!(lag_of(&docs, head).await, 0, "no instance says otherwise");
        beat(&docs, "leading", 0, Some(0)).await;
        beat(&docs, "behind", 0, Some(7)).await;
        beat(&docs, "dead", 600, Some(50)).await;
        assert_eq!(lag_of(&docs, head).await, 7);
        beat(&docs, "behind", 0, Some(0)).await;
        assert_eq!(lag_of(&docs, head).await, 0, "caught up");
    }
}
