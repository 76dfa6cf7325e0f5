//! Which collection serves a projection, and the handshake that lets a
//! rebuild switch it while everything keeps running.
//!
//! Readers and the live projector resolve a projection's collection through
//! its route document. A rebuild builds a new collection beside the live
//! one, then *freezes* the route: every live projector instance finishes
//! the batch in hand, acknowledges the freeze and waits. The rebuild catches
//! the new collection up to the head of the log (which no live instance can
//! be ahead of), points the route at it and unfreezes. Live instances resume
//! on the new collection: what they deliver again is skipped as duplicate,
//! what is new follows on without a gap.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{DocumentStore, StoreError, Write, Written};

/// Collection of route documents (id = projection name).
pub const ROUTES: &str = "projection_routes";
/// Collection of live projector instances (id `{projection}:{instance}`).
pub const INSTANCES: &str = "projector_instances";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    /// The collection readers read and the live projector writes.
    pub live: String,
    /// Moves by one at every freeze.
    pub epoch: u64,
    /// Live instances must pause (a switch is under way).
    pub freeze: bool,
    /// The collection a rebuild is filling, if one runs.
    pub building: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A freeze older than this is left over by a rebuild that died mid-switch
/// (a live rebuild moves on within its acknowledgement timeout): live
/// projectors carry on instead of waiting for good.
pub const FREEZE_LIMIT: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

impl Route {
    /// Whether live instances must pause now.
    pub fn is_frozen(&self) -> bool {
        self.freeze && Utc::now() - self.updated_at < FREEZE_LIMIT
    }

    /// The route of a projection that was never rebuilt.
    pub fn initial(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            live: name.to_owned(),
            epoch: 0,
            freeze: false,
            building: None,
            updated_at: Utc::now(),
        }
    }
}

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

/// The route and its revision (`None`: no document yet).
pub async fn load(
    docs: &dyn DocumentStore,
    name: &str,
) -> Result<(Route, Option<u64>), StoreError> {
    match docs.get(ROUTES, name).await? {
        Some(d) => Ok((serde_json::from_value(d.body).map_err(err)?, Some(d.rev))),
        None => Ok((Route::initial(name), None)),
    }
}

/// The live collection of a projection.
pub async fn live(docs: &dyn DocumentStore, name: &str) -> Result<String, StoreError> {
    Ok(load(docs, name).await?.0.live)
}

/// Writes a route if nobody changed it since `rev` was read.
pub async fn save(
    docs: &dyn DocumentStore,
    route: &Route,
    rev: Option<u64>,
) -> Result<bool, StoreError> {
    let mut route = route.clone();
    route.updated_at = Utc::now();
    let body = serde_json::to_value(&route).map_err(err)?;
    let written = docs
        .write(
            ROUTES,
            vec![Write::Put {
                id: route.name.clone(),
                expected_rev: rev,
                body,
            }],
        )
        .await?;
    Ok(matches!(written.first(), Some(Written::Ok(_))))
}

/// A live projector instance's heartbeat and the freeze it acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub projection: String,
    pub instance: String,
    pub heartbeat_at: DateTime<Utc>,
    /// The epoch of the last freeze this instance paused for.
    pub acked_epoch: u64,
    /// Events the instance last saw waiting in what it reads (its Kafka
    /// partitions' ends past its offsets; `None`: not measured). With
    /// several instances the status document keeps the leading one's
    /// position, so this is how one behind on its own partitions shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

pub async fn beat(docs: &dyn DocumentStore, instance: &Instance) -> Result<(), StoreError> {
    let body = serde_json::to_value(instance).map_err(err)?;
    docs.write(
        INSTANCES,
        vec![Write::Upsert {
            id: format!("{}:{}", instance.projection, instance.instance),
            body,
        }],
    )
    .await
    .map(drop)
}

/// Takes an instance out of the registry (it stopped cleanly).
pub async fn forget(
    docs: &dyn DocumentStore,
    projection: &str,
    instance: &str,
) -> Result<(), StoreError> {
    let id = format!("{projection}:{instance}");
    let Some(current) = docs.get(INSTANCES, &id).await? else {
        return Ok(());
    };
    docs.write(
        INSTANCES,
        vec![Write::Delete {
            id,
            expected_rev: current.rev,
        }],
    )
    .await
    .map(drop)
}

/// Instances of a projection that beat within `within`.
pub async fn alive(
    docs: &dyn DocumentStore,
    projection: &str,
    within: chrono::Duration,
) -> Result<Vec<Instance>, StoreError> {
    let ids = docs.find_ids(INSTANCES, "projection", projection).await?;
    let now = Utc::now();
    Ok(docs
        .get_many(INSTANCES, &ids)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_value::<Instance>(d.body).ok())
        .filter(|i| now - i.heartbeat_at <= within)
        .collect())
}

/// Instances of every projection that beat within `within`, read in
/// pages of the whole (small) registry: one query where asking per
/// projection would be two for each.
pub async fn alive_everywhere(
    docs: &dyn DocumentStore,
    within: chrono::Duration,
) -> Result<Vec<Instance>, StoreError> {
    let now = Utc::now();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = docs
            .list(
                INSTANCES,
                crate::store::ListQuery {
                    filter: None,
                    order: crate::store::Order::Asc,
                    after: after.as_deref(),
                    limit: 500,
                },
            )
            .await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.id.clone());
        out.extend(
            page.into_iter()
                .filter_map(|d| serde_json::from_value::<Instance>(d.body).ok())
                .filter(|i| now - i.heartbeat_at <= within),
        );
    }
}

/// Readers' view of the routes: each projection's live collection, cached
/// for `ttl`. A switch reaches a reader within `ttl`; a rebuild waits longer
/// than that before dropping the old collection.
pub struct LiveCollections {
    docs: std::sync::Arc<dyn DocumentStore>,
    ttl: std::time::Duration,
    cache: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

/// How long readers keep a route.
pub const READER_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl LiveCollections {
    pub fn new(docs: std::sync::Arc<dyn DocumentStore>) -> Self {
        Self {
            docs,
            ttl: READER_TTL,
            cache: std::sync::Mutex::default(),
        }
    }

    pub async fn get(&self, name: &str) -> Result<String, StoreError> {
        if let Some((live, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            if at.elapsed() < self.ttl {
                return Ok(live.clone());
            }
        }
        let live = live(&*self.docs, name).await?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), (live.clone(), std::time::Instant::now()));
        Ok(live)
    }
}
